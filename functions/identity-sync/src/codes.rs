//! identity-sync's parking codes (the runbook's table is generated from these comments).

jml_core::parking_codes! {
    /// Why identity-sync parks a record.
    pub enum IdentityCode("identity-sync") {
        /// The event names a group outside the managed set (`MANAGED_GROUP_PREFIX` /
        /// `MANAGED_GROUPS`): jml-sync never adds or removes memberships of other groups.
        /// Do: fix the group in HR, or add it to the managed set, then redrive.
        UnmanagedGroup,
        /// A managed group the event names does not exist in the identity store (GetGroupId
        /// found no group with that DisplayName); nothing was written.
        /// Do: create the group (or fix its name in HR), then redrive.
        GroupNotFound,
        /// The userName is held by another person's user or by a user jml-sync does not manage;
        /// it is never modified, disabled or adopted.
        /// Do: find who holds the name; rename one of them in HR or by hand, then redrive.
        UserNameOwnedByAnother,
        /// The user the ledger records for this person no longer carries their managed marker
        /// or ExternalId; a leaver does not disable it on inference.
        /// Do: check the user; disable it by hand or restore the marker, then redrive.
        IdentityLeaverUserChanged,
        /// A rehire starts from a fresh user and deletes the previous employment's users; one it
        /// found does not carry the person's marker (an ExternalId another system set, a user that
        /// lost its marker) and is never deleted on inference.
        /// Do: check who owns the user; delete it by hand or stamp the marker, then redrive.
        RehireUserNotMarked,
        /// A leaver's memberships were removed but the service refused to disable the user
        /// (UpdateUser userStatus); the leaver is recorded, so nothing grants access again.
        /// Do: disable the user by hand (console or CLI), then redrive to verify.
        DisableUnsupported,
    }
}
