//! iam-sync's parking codes: why an event was put aside, and what the operator does about it.
//! Each code string is a contract (the DLQ message's `ErrorCode`, metrics, tests, the runbook).

jml_core::parking_codes! {
    /// The codes iam-sync parks an event with.
    pub enum Code("iam-sync") {
        /// The person's `userName` gives no valid IAM user name: transliterated, lower-cased and
        /// cleaned, it is not 1 to 64 of `[\w+=,.@-]` (`userNameType`).
        /// Do: correct the userName in HR (it must give 1 to 64 characters), then send the event again.
        IamUserName,
        /// The person's department gives no valid IAM path (`IAM_PATH_PREFIX` + the department
        /// slug is longer than 512 characters or breaks `pathType`).
        /// Do: shorten the department in HR, or change `IAM_PATH_PREFIX`, then redrive.
        IamPath,
        /// Another person's IAM user has the same derived name (the name is claimed in the ledger
        /// in lower case; IAM names are unique case-insensitively).
        /// Do: give one of the two people another userName in HR, then redrive.
        IamUserNameClaimedByAnother,
        /// An IAM user exists whose name differs from the derived one only by case (or CreateUser
        /// answered EntityAlreadyExists for a name GetUser cannot find), and it is not this
        /// person's: it is never taken over.
        /// Do: find who owns that user; rename or remove it, or give the person another userName in HR, then redrive.
        IamUserNameCaseCollision,
        /// The IAM user of the derived name carries another person's `jml-sync:external-id` tag:
        /// it is never taken over.
        /// Do: find out which person the user belongs to; give one of them another userName in HR, then redrive.
        IamUserOwnedByAnother,
        /// An IAM user of the derived name exists without the `jml-sync:external-id` tag (made by
        /// hand, or before jml-sync): it is never taken over.
        /// Do: if it is the person's, tag it `jml-sync:external-id` with the person's tag value (or delete it), then redrive; else give the person another userName in HR.
        IamUserNotManaged,
        /// A leaver whose ledger-recorded IAM user no longer carries the person's
        /// `jml-sync:external-id` tag (someone changed it): not locked down automatically, never
        /// skipped silently.
        /// Do: check the user; lock it down by hand, or restore the tag, then redrive the leaver.
        IamLeaverUserChanged,
        /// A group of `IAM_GROUP_MAP` does not exist (AddUserToGroup: NoSuchEntity); the reason
        /// names it.
        /// Do: create the group (under `IAM_GROUP_PATH`) or correct `IAM_GROUP_MAP`, then redrive.
        IamGroupNotFound,
        /// An IAM quota is reached (LimitExceeded: users per account, groups per user).
        /// Do: raise the quota or remove unused users or group mappings, then redrive.
        IamLimitExceeded,
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn every_code_keeps_its_string_and_says_what_to_do() {
        let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            codes,
            [
                "IamUserName",
                "IamPath",
                "IamUserNameClaimedByAnother",
                "IamUserNameCaseCollision",
                "IamUserOwnedByAnother",
                "IamUserNotManaged",
                "IamLeaverUserChanged",
                "IamGroupNotFound",
                "IamLimitExceeded",
            ]
        );
        for doc in Code::docs() {
            assert!(!doc.meaning().is_empty() && !doc.action().is_empty(), "{}", doc.code);
            assert_eq!(doc.owner, "iam-sync");
        }
        assert_eq!(Code::IamPath.error("why").code(), "IamPath");
    }
}
