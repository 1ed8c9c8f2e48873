//! appstream-sync's parking codes: the `ErrorCode` of a record it parks (DLQ attribute, logs,
//! the `Parked` metric). Each code's doc comment is its runbook line (`jml codes`).

jml_core::parking_codes! {
    /// Why appstream-sync parks a record.
    pub enum Code("appstream-sync") {
        /// The person's work e-mail, trimmed and lower-cased, is not an AppStream user name: it
        /// must be 1 to 128 characters (`Username`).
        /// Do: correct the e-mail address in HR and send the event again.
        AppStreamUserName,
        /// The AppStream user at the person's e-mail address belongs to another person: the
        /// ledger's name claim (`claim#appstream-user-pool#<address>`, first claimant wins, kept
        /// after a leaver) names someone else, and a takeover is refused; that user is untouched.
        /// Do: check in HR which person the address belongs to and correct the other's e-mail,
        /// then redrive.
        AppStreamUserOwnedByAnother,
        /// CreateUser answered LimitExceededException: the AppStream user pool is at its user
        /// quota (small by default).
        /// Do: raise the user pool quota (Service Quotas), then redrive.
        AppStreamUserPoolLimit,
        /// A stack the event's `appstreamStacks` or the department rule names does not exist
        /// (STACK_NOT_FOUND); the reason names every missing stack.
        /// Do: create the stack, or correct `appstreamStacks` in HR or
        /// `APPSTREAM_STACKS_BY_DEPARTMENT`, then redrive.
        StackNotFound,
        /// A stack association answered DIRECTORY_NOT_FOUND for the named stack(s): the
        /// directory the association needs does not exist.
        /// Do: fix the named stacks' directory configuration in AppStream (or stop naming those
        /// stacks), then redrive.
        DirectoryNotFound,
    }
}
