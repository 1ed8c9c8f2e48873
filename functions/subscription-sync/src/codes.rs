//! subscription-sync's parking codes: why one of its events was put aside, and what the operator
//! does about it (the runbook's table is generated from these comments).

jml_core::parking_codes! {
    /// The parking codes of subscription-sync.
    pub enum Code("subscription-sync") {
        /// `person.directoryUserName` was not sent and no AD user name could be derived:
        /// `DIRECTORY_USERNAME_RULE=required`, or the userName's local part is not a valid
        /// sAMAccountName (the reason names the rule).
        /// Do: send `person.directoryUserName` from HR (or correct the userName), then redrive.
        NoDirectoryUserName,
        /// The AD user name (sent or derived) is claimed in the ledger by another person: one
        /// person's event never changes another's AD user; nothing was written.
        /// Do: find which person the AD user belongs to and correct the other's
        /// `directoryUserName` (or userName) in HR, then redrive.
        SubscriptionUserOwnedByAnother,
        /// A subscription names an instance that License Manager does not list (ListInstances)
        /// for user-based subscriptions; instances are never guessed, nothing was written.
        /// Do: correct the instance id in HR, or register the instance with License Manager
        /// user-based subscriptions, then redrive.
        UnknownInstance,
        /// A subscription names an instance that does not provide its product (the reason lists
        /// what the instance provides); nothing was written.
        /// Do: correct the product or the instance in HR, then redrive.
        ProductNotOnInstance,
    }
}
