//! The IAM users port, over plain data.

use async_trait::async_trait;

pub use jml_core::ports::{ConflictReason, DeadLetterQueue, Op, ParkedMessage, ServiceError};

/// An IAM user as GetUser returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamUser {
    /// As IAM stores it (IAM names are unique case-insensitively; GetUser may return another case).
    pub user_name: String,
    pub user_id: String,
    pub path: String,
    pub permissions_boundary: Option<String>,
    pub tags: std::collections::BTreeMap<String, String>,
}

/// A CreateUser request for IAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamNewUser {
    pub user_name: String,
    pub path: String,
    pub permissions_boundary: String,
    pub tags: std::collections::BTreeMap<String, String>,
}

/// An access key's id and status (`Active`, `Inactive`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub status: String,
}

/// The credentials besides the password and access keys that let an IAM user in: SSH public keys
/// (CodeCommit), service-specific credentials (CodeCommit HTTPS, Keyspaces, Bedrock...) and X.509
/// signing certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CredentialKind {
    SshPublicKey,
    ServiceSpecific,
    SigningCertificate,
}

impl CredentialKind {
    /// The call that deactivates one.
    pub fn update_op(self) -> Op {
        match self {
            Self::SshPublicKey => op::UPDATE_SSH_PUBLIC_KEY,
            Self::ServiceSpecific => op::UPDATE_SERVICE_SPECIFIC_CREDENTIAL,
            Self::SigningCertificate => op::UPDATE_SIGNING_CERTIFICATE,
        }
    }
}

/// One such credential of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherCredential {
    pub kind: CredentialKind,
    pub id: String,
    pub active: bool,
}

/// IAM users, as jml-sync manages them (users, groups, tags, console password, access keys).
#[async_trait]
pub trait IamUsers: Send + Sync {
    /// GetUser. `None`: NoSuchEntity.
    async fn get_user(&self, user_name: &str) -> Result<Option<IamUser>, ServiceError>;
    /// CreateUser. `Ok(None)`: EntityAlreadyExists; else the new user's id.
    async fn create_user(&self, user: &IamNewUser) -> Result<Option<String>, ServiceError>;
    /// UpdateUser with NewPath and/or NewUserName.
    async fn update_user(
        &self,
        user_name: &str,
        new_path: Option<&str>,
        new_user_name: Option<&str>,
    ) -> Result<(), ServiceError>;
    async fn put_permissions_boundary(&self, user_name: &str, arn: &str) -> Result<(), ServiceError>;
    async fn tag_user(
        &self,
        user_name: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ServiceError>;
    async fn untag_user(&self, user_name: &str, keys: &[String]) -> Result<(), ServiceError>;
    /// ListGroupsForUser, all pages: group names.
    async fn groups(&self, user_name: &str) -> Result<Vec<String>, ServiceError>;
    async fn add_to_group(&self, user_name: &str, group: &str) -> Result<(), ServiceError>;
    async fn remove_from_group(&self, user_name: &str, group: &str) -> Result<(), ServiceError>;
    /// DeleteLoginProfile. `Ok(false)`: the user had no console password.
    async fn delete_login_profile(&self, user_name: &str) -> Result<bool, ServiceError>;
    /// GetLoginProfile: whether the user has a console password (NoSuchEntity: none).
    async fn has_login_profile(&self, user_name: &str) -> Result<bool, ServiceError>;
    /// ListAccessKeys, all pages.
    async fn access_keys(&self, user_name: &str) -> Result<Vec<AccessKey>, ServiceError>;
    /// UpdateAccessKey to `Inactive`.
    async fn deactivate_access_key(&self, user_name: &str, access_key_id: &str) -> Result<(), ServiceError>;
    /// ListSSHPublicKeys, ListServiceSpecificCredentials and ListSigningCertificates, all pages.
    async fn other_credentials(&self, user_name: &str) -> Result<Vec<OtherCredential>, ServiceError>;
    /// UpdateSSHPublicKey / UpdateServiceSpecificCredential / UpdateSigningCertificate to `Inactive`.
    async fn deactivate_credential(&self, user_name: &str, credential: &OtherCredential) -> Result<(), ServiceError>;
    /// DeleteUser. jml-sync never deletes a person's user (audit needs the principal); `jml
    /// doctor --canary` removes its test user with it. `Ok(false)`: NoSuchEntity.
    async fn delete_user(&self, user_name: &str) -> Result<bool, ServiceError>;
    /// GetAccountAuthorizationDetails (Filter User), all pages of 1000: every IAM user with its
    /// path, boundary, tags and groups. ListUsers returns neither tags nor the boundary, and
    /// ownership is a tag: this one listing is what reconciliation reads.
    async fn account_users(&self) -> Result<Vec<(IamUser, Vec<String>)>, ServiceError>;
    /// GetPolicy: whether the managed policy exists (the permissions boundary).
    async fn policy_exists(&self, arn: &str) -> Result<bool, ServiceError>;
    /// GetGroup (one page): whether the group exists.
    async fn group_exists(&self, group: &str) -> Result<bool, ServiceError>;
    /// GetGroup (one page): the group's IAM path (`jml doctor`: AddUserToGroup is granted under
    /// `IAM_GROUP_PATH` only). `Ok(None)`: no such group, or a backend that models no group
    /// paths (the simulator), which the doctor reports as not checked.
    async fn group_path(&self, _group: &str) -> Result<Option<String>, ServiceError> {
        Ok(None)
    }
}

/// The operations of this target's service, and the core's (queues, ledger).
pub mod op {
    use jml_core::ports::Op;
    pub use jml_core::ports::op::*;

    pub const GET_USER: Op = Op::read("iam", "GetUser");
    pub const DELETE_USER: Op = Op::write("iam", "DeleteUser");
    pub const GET_POLICY: Op = Op::read("iam", "GetPolicy");
    pub const GET_ACCOUNT_AUTHORIZATION_DETAILS: Op = Op::read("iam", "GetAccountAuthorizationDetails");
    pub const GET_GROUP: Op = Op::read("iam", "GetGroup");
    pub const CREATE_USER: Op = Op::write("iam", "CreateUser");
    pub const UPDATE_USER: Op = Op::write("iam", "UpdateUser");
    pub const PUT_USER_PERMISSIONS_BOUNDARY: Op = Op::write("iam", "PutUserPermissionsBoundary");
    pub const TAG_USER: Op = Op::write("iam", "TagUser");
    pub const UNTAG_USER: Op = Op::write("iam", "UntagUser");
    pub const LIST_GROUPS_FOR_USER: Op = Op::read("iam", "ListGroupsForUser");
    pub const ADD_USER_TO_GROUP: Op = Op::write("iam", "AddUserToGroup");
    pub const REMOVE_USER_FROM_GROUP: Op = Op::write("iam", "RemoveUserFromGroup");
    pub const DELETE_LOGIN_PROFILE: Op = Op::write("iam", "DeleteLoginProfile");
    pub const GET_LOGIN_PROFILE: Op = Op::read("iam", "GetLoginProfile");
    pub const LIST_ACCESS_KEYS: Op = Op::read("iam", "ListAccessKeys");
    pub const UPDATE_ACCESS_KEY: Op = Op::write("iam", "UpdateAccessKey");
    pub const LIST_SSH_PUBLIC_KEYS: Op = Op::read("iam", "ListSSHPublicKeys");
    pub const UPDATE_SSH_PUBLIC_KEY: Op = Op::write("iam", "UpdateSSHPublicKey");
    pub const LIST_SERVICE_SPECIFIC_CREDENTIALS: Op = Op::read("iam", "ListServiceSpecificCredentials");
    pub const UPDATE_SERVICE_SPECIFIC_CREDENTIAL: Op = Op::write("iam", "UpdateServiceSpecificCredential");
    pub const LIST_SIGNING_CERTIFICATES: Op = Op::read("iam", "ListSigningCertificates");
    pub const UPDATE_SIGNING_CERTIFICATE: Op = Op::write("iam", "UpdateSigningCertificate");
}

/// What iam-sync's event path sends to IAM (the core's ledger and DLQ calls are
/// `op::TARGET_FUNCTION`), the leaver's read-back (GetLoginProfile) included: its role in
/// template.yaml grants exactly these (`jml operations`, scripts/test_template.py), and `jml
/// doctor` simulates its deployed role against them.
pub const OPERATIONS: &[Op] = &[
    op::GET_USER,
    op::CREATE_USER,
    op::UPDATE_USER,
    op::PUT_USER_PERMISSIONS_BOUNDARY,
    op::TAG_USER,
    op::UNTAG_USER,
    op::LIST_GROUPS_FOR_USER,
    op::ADD_USER_TO_GROUP,
    op::REMOVE_USER_FROM_GROUP,
    op::DELETE_LOGIN_PROFILE,
    op::GET_LOGIN_PROFILE,
    op::LIST_ACCESS_KEYS,
    op::UPDATE_ACCESS_KEY,
    op::LIST_SSH_PUBLIC_KEYS,
    op::UPDATE_SSH_PUBLIC_KEY,
    op::LIST_SERVICE_SPECIFIC_CREDENTIALS,
    op::UPDATE_SERVICE_SPECIFIC_CREDENTIAL,
    op::LIST_SIGNING_CERTIFICATES,
    op::UPDATE_SIGNING_CERTIFICATE,
    // A leaver's users by the person's tag (renamed by hand, copies): ListUsers returns no tags.
    op::GET_ACCOUNT_AUTHORIZATION_DETAILS,
];

/// What the reconcile function reads of IAM: one listing, and the credentials of each user that
/// looks locked down of a person HR does not list (a password or key re-activated by hand).
pub const RECONCILE_OPERATIONS: &[Op] = &[
    op::GET_ACCOUNT_AUTHORIZATION_DETAILS,
    op::GET_LOGIN_PROFILE,
    op::LIST_ACCESS_KEYS,
    op::LIST_SSH_PUBLIC_KEYS,
    op::LIST_SERVICE_SPECIFIC_CREDENTIALS,
    op::LIST_SIGNING_CERTIFICATES,
];

/// Sent only by `jml doctor` with the operator's credentials (the canary's cleanup, the
/// preflight's boundary and group checks): in no function's role.
pub const DOCTOR_OPERATIONS: &[Op] = &[op::DELETE_USER, op::GET_POLICY, op::GET_GROUP];

/// Everything the function sends on an event's path: its service's `OPERATIONS` and the core's
/// (`op::TARGET_FUNCTION`: ledger and DLQ).
pub fn function_operations() -> Vec<Op> {
    [OPERATIONS, op::TARGET_FUNCTION].concat()
}
