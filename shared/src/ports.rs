//! Ports: what the sync engine needs from each service, as small async traits over plain data.
//! AWS adapters (`crate::aws`) and in-memory simulators (`crate::sim`) implement them.

use std::fmt;

use async_trait::async_trait;
use serde_json::Value;

use crate::contract::{ExternalId, GroupName, UserName};

/// An Identity Store UserId (opaque).
pub type UserId = String;
/// An Identity Store GroupId (opaque).
pub type GroupId = String;
/// An Identity Store MembershipId (opaque).
pub type MembershipId = String;

/// Which call failed, for error messages and call accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    GetUserIdByUserName,
    GetUserIdByExternalId,
    DescribeUser,
    ListUsers,
    CreateUser,
    UpdateUser,
    GetGroupId,
    DescribeGroup,
    ListGroupMembershipsForMember,
    CreateGroupMembership,
    DeleteGroupMembership,
    SendMessage,
    LedgerRead,
    LedgerWrite,
    ListInstances,
    ListUserAssociations,
    ListProductSubscriptions,
    StartProductSubscription,
    StopProductSubscription,
    AssociateUser,
    DisassociateUser,
    // AppStream 2.0
    AppStreamCreateUser,
    /// CreateUser with MessageAction RESEND.
    AppStreamResendWelcome,
    EnableUser,
    DisableUser,
    DescribeUserStackAssociations,
    BatchAssociateUserStack,
    BatchDisassociateUserStack,
    // IAM
    GetUser,
    IamCreateUser,
    IamUpdateUser,
    PutUserPermissionsBoundary,
    TagUser,
    UntagUser,
    ListGroupsForUser,
    AddUserToGroup,
    RemoveUserFromGroup,
    DeleteLoginProfile,
    GetLoginProfile,
    ListAccessKeys,
    UpdateAccessKey,
    ListSSHPublicKeys,
    UpdateSSHPublicKey,
    ListServiceSpecificCredentials,
    UpdateServiceSpecificCredential,
    ListSigningCertificates,
    UpdateSigningCertificate,
}

impl Op {
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::CreateUser
                | Self::UpdateUser
                | Self::CreateGroupMembership
                | Self::DeleteGroupMembership
                | Self::StartProductSubscription
                | Self::StopProductSubscription
                | Self::AssociateUser
                | Self::DisassociateUser
                | Self::AppStreamCreateUser
                | Self::AppStreamResendWelcome
                | Self::EnableUser
                | Self::DisableUser
                | Self::BatchAssociateUserStack
                | Self::BatchDisassociateUserStack
                | Self::IamCreateUser
                | Self::IamUpdateUser
                | Self::PutUserPermissionsBoundary
                | Self::TagUser
                | Self::UntagUser
                | Self::AddUserToGroup
                | Self::RemoveUserFromGroup
                | Self::DeleteLoginProfile
                | Self::UpdateAccessKey
                | Self::UpdateSSHPublicKey
                | Self::UpdateServiceSpecificCredential
                | Self::UpdateSigningCertificate
        )
    }

    /// The service's operation name.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::GetUserIdByUserName | Self::GetUserIdByExternalId => "GetUserId",
            Self::DescribeUser => "DescribeUser",
            Self::ListUsers => "ListUsers",
            Self::CreateUser => "CreateUser",
            Self::UpdateUser => "UpdateUser",
            Self::GetGroupId => "GetGroupId",
            Self::DescribeGroup => "DescribeGroup",
            Self::ListGroupMembershipsForMember => "ListGroupMembershipsForMember",
            Self::CreateGroupMembership => "CreateGroupMembership",
            Self::DeleteGroupMembership => "DeleteGroupMembership",
            Self::SendMessage => "SendMessage",
            Self::LedgerRead => "GetItem",
            Self::LedgerWrite => "TransactWriteItems",
            Self::ListInstances => "ListInstances",
            Self::ListUserAssociations => "ListUserAssociations",
            Self::ListProductSubscriptions => "ListProductSubscriptions",
            Self::StartProductSubscription => "StartProductSubscription",
            Self::StopProductSubscription => "StopProductSubscription",
            Self::AssociateUser => "AssociateUser",
            Self::DisassociateUser => "DisassociateUser",
            Self::AppStreamCreateUser | Self::AppStreamResendWelcome | Self::IamCreateUser => "CreateUser",
            Self::EnableUser => "EnableUser",
            Self::DisableUser => "DisableUser",
            Self::DescribeUserStackAssociations => "DescribeUserStackAssociations",
            Self::BatchAssociateUserStack => "BatchAssociateUserStack",
            Self::BatchDisassociateUserStack => "BatchDisassociateUserStack",
            Self::GetUser => "GetUser",
            Self::IamUpdateUser => "UpdateUser",
            Self::PutUserPermissionsBoundary => "PutUserPermissionsBoundary",
            Self::TagUser => "TagUser",
            Self::UntagUser => "UntagUser",
            Self::ListGroupsForUser => "ListGroupsForUser",
            Self::AddUserToGroup => "AddUserToGroup",
            Self::RemoveUserFromGroup => "RemoveUserFromGroup",
            Self::DeleteLoginProfile => "DeleteLoginProfile",
            Self::GetLoginProfile => "GetLoginProfile",
            Self::ListAccessKeys => "ListAccessKeys",
            Self::UpdateAccessKey => "UpdateAccessKey",
            Self::ListSSHPublicKeys => "ListSSHPublicKeys",
            Self::UpdateSSHPublicKey => "UpdateSSHPublicKey",
            Self::ListServiceSpecificCredentials => "ListServiceSpecificCredentials",
            Self::UpdateServiceSpecificCredential => "UpdateServiceSpecificCredential",
            Self::ListSigningCertificates => "ListSigningCertificates",
            Self::UpdateSigningCertificate => "UpdateSigningCertificate",
        }
    }
}

impl Op {
    /// The operation name, with the lookup kind for GetUserId.
    pub fn label(self) -> &'static str {
        match self {
            Self::GetUserIdByUserName => "GetUserId(userName)",
            Self::GetUserIdByExternalId => "GetUserId(ExternalId)",
            Self::AppStreamResendWelcome => "CreateUser(RESEND)",
            other => other.api_name(),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_name())
    }
}

/// Why a ConflictException was raised (`ConflictExceptionReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictReason {
    UniquenessConstraintViolation,
    ConcurrentModification,
    Unspecified,
}

/// A service error, classified once in the adapter. Messages carry no personal data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{op}: ConflictException ({reason:?})")]
    Conflict { op: Op, reason: ConflictReason },
    #[error("{op}: ResourceNotFoundException")]
    NotFound { op: Op },
    #[error("{op}: ThrottlingException (retry after {retry_after_seconds:?} s)")]
    Throttled { op: Op, retry_after_seconds: Option<i32> },
    #[error("{op}: ValidationException: {message}")]
    Validation { op: Op, message: String },
    #[error("{op}: AccessDeniedException: {message}")]
    AccessDenied { op: Op, message: String },
    #[error("{op}: ServiceQuotaExceededException")]
    QuotaExceeded { op: Op },
    #[error("{op}: service unavailable: {message}")]
    Unavailable { op: Op, message: String },
}

impl ServiceError {
    /// Worth retrying later (the record goes back to the queue): throttling, 5xx, timeouts,
    /// concurrent modification, and access denied (a permissions fix makes it succeed; the
    /// queue's maxReceiveCount bounds the retries).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Unavailable { .. } | Self::AccessDenied { .. } => true,
            Self::Conflict { reason, .. } => *reason != ConflictReason::UniquenessConstraintViolation,
            Self::NotFound { .. } | Self::Validation { .. } | Self::QuotaExceeded { .. } => false,
        }
    }

    pub fn op(&self) -> Op {
        match self {
            Self::Conflict { op, .. }
            | Self::NotFound { op }
            | Self::Throttled { op, .. }
            | Self::Validation { op, .. }
            | Self::AccessDenied { op, .. }
            | Self::QuotaExceeded { op }
            | Self::Unavailable { op, .. } => *op,
        }
    }
}

/// `UserStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum UserStatus {
    Enabled,
    Disabled,
}

/// The attributes jml-sync manages on a user, as plain strings (current state read from the
/// service, or desired state built from a validated event). `None` = attribute absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserAttributes {
    pub user_name: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub middle_name: Option<String>,
    pub honorific_prefix: Option<String>,
    pub honorific_suffix: Option<String>,
    pub formatted_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<AddressAttributes>,
    pub title: Option<String>,
    pub user_type: Option<String>,
    pub preferred_language: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub employee_number: Option<String>,
    pub cost_center: Option<String>,
    pub organization: Option<String>,
    pub division: Option<String>,
    pub department: Option<String>,
    /// The manager's UserId (`manager.value` in the enterprise extension).
    pub manager_id: Option<UserId>,
    /// The managed marker (`ProfileUrl`), see `ExternalId::marker`.
    pub marker: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressAttributes {
    pub street_address: Option<String>,
    pub locality: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub formatted: Option<String>,
}

/// A user as read from the Identity Store (DescribeUser with the enterprise extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: UserId,
    pub status: UserStatus,
    pub external_ids: Vec<(String, String)>,
    pub attributes: UserAttributes,
}

/// One attribute write of an UpdateUser call: a path from the User data type (or the enterprise
/// extension) and its new value, or `None` to remove the attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeChange {
    pub path: &'static str,
    pub value: Option<Value>,
}

/// A group membership of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub membership_id: MembershipId,
    pub group_id: GroupId,
}

/// IAM Identity Center's Identity Store, as jml-sync uses it.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// GetUserId with `UniqueAttribute` userName.
    async fn find_user_by_user_name(&self, user_name: &UserName) -> Result<Option<UserId>, ServiceError>;
    /// GetUserId with the `ExternalId` alternate identifier (users provisioned over SCIM).
    async fn find_user_by_external_id(&self, external_id: &ExternalId) -> Result<Option<UserId>, ServiceError>;
    /// ListUsers, all pages, returning the user whose managed marker equals `marker`. Costly:
    /// only a leaver with no other way to be found uses it.
    async fn find_user_by_marker(&self, marker: &str) -> Result<Option<UserId>, ServiceError>;
    /// DescribeUser with the enterprise extension; `None` if the user does not exist.
    async fn describe_user(&self, user_id: &str) -> Result<Option<UserRecord>, ServiceError>;
    /// CreateUser with every given attribute and the marker.
    async fn create_user(&self, attributes: &UserAttributes) -> Result<UserId, ServiceError>;
    /// UpdateUser with at most 100 attribute operations.
    async fn update_user(&self, user_id: &str, changes: &[AttributeChange]) -> Result<(), ServiceError>;
    /// UpdateUser of `userStatus` (the API reference lists UserStatus on User but does not
    /// document writing it; adapters keep this detail).
    async fn set_user_status(&self, user_id: &str, status: UserStatus) -> Result<(), ServiceError>;
    /// GetGroupId by DisplayName.
    async fn find_group_by_name(&self, name: &GroupName) -> Result<Option<GroupId>, ServiceError>;
    /// DescribeGroup: the DisplayName of a group id.
    async fn group_name(&self, group_id: &str) -> Result<Option<String>, ServiceError>;
    /// ListGroupMembershipsForMember, all pages.
    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, ServiceError>;
    /// CreateGroupMembership; a membership that already exists is success.
    async fn add_membership(&self, group_id: &str, user_id: &str) -> Result<(), ServiceError>;
    /// DeleteGroupMembership; a membership already gone is success.
    async fn remove_membership(&self, membership_id: &str) -> Result<(), ServiceError>;
}

/// An EC2 instance that provides user-based subscriptions (ListInstances).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionInstance {
    pub instance_id: String,
    pub products: Vec<String>,
    pub status: String,
}

/// License Manager user-based subscriptions for Active Directory users, as jml-sync uses them.
/// The adapter holds the identity provider (the Active Directory) and the domain.
#[async_trait]
pub trait UserSubscriptions: Send + Sync {
    /// ListInstances, all pages.
    async fn instances(&self) -> Result<Vec<SubscriptionInstance>, ServiceError>;
    /// ListUserAssociations on one instance, filtered to `username`: is the user associated
    /// (or being associated) with it?
    async fn is_associated(&self, instance_id: &str, username: &str) -> Result<bool, ServiceError>;
    /// ListProductSubscriptions filtered to `username`: the products the user holds (active or
    /// being activated).
    async fn products(&self, username: &str) -> Result<Vec<String>, ServiceError>;
    /// StartProductSubscription; one that already exists is success.
    async fn start_product_subscription(&self, username: &str, product: &str) -> Result<(), ServiceError>;
    /// StopProductSubscription; one already stopped is success.
    async fn stop_product_subscription(&self, username: &str, product: &str) -> Result<(), ServiceError>;
    /// AssociateUser; an association that already exists is success.
    async fn associate_user(&self, username: &str, instance_id: &str) -> Result<(), ServiceError>;
    /// DisassociateUser; an association already gone is success.
    async fn disassociate_user(&self, username: &str, instance_id: &str) -> Result<(), ServiceError>;
}

/// The welcome e-mail of a new AppStream user pool user (`MessageAction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WelcomeEmail {
    /// `MessageAction` omitted: AppStream sends the welcome e-mail with a temporary password.
    #[default]
    Send,
    /// `MessageAction` SUPPRESS: no e-mail (the deployment tells users another way).
    Suppress,
}

/// A CreateUser request for an AppStream 2.0 user pool user (`AuthenticationType` USERPOOL).
#[derive(Clone, PartialEq, Eq)]
pub struct AppStreamNewUser {
    /// The e-mail address, normalised (see `appstream::user_name`).
    pub user_name: String,
    /// Only `^[A-Za-z0-9_\-\s]+$`, at most 2048 (see `appstream::pool_name`); `None` omitted.
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub welcome: WelcomeEmail,
}

impl std::fmt::Debug for AppStreamNewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStreamNewUser").field("welcome", &self.welcome).finish_non_exhaustive()
    }
}

/// One failed association of a BatchAssociateUserStack / BatchDisassociateUserStack call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackAssociationError {
    pub stack: String,
    /// `UserStackAssociationErrorCode`: STACK_NOT_FOUND, USER_NAME_NOT_FOUND,
    /// DIRECTORY_NOT_FOUND, INTERNAL_ERROR.
    pub code: String,
}

/// AppStream 2.0 user pool users and their stack associations. User names are e-mail addresses
/// (case-sensitive in the service).
#[async_trait]
pub trait AppStreamUsers: Send + Sync {
    /// CreateUser. `Ok(false)`: ResourceAlreadyExistsException (the user exists).
    async fn create_user(&self, user: &AppStreamNewUser) -> Result<bool, ServiceError>;
    /// CreateUser with `MessageAction` RESEND and no names: the welcome e-mail again.
    async fn resend_welcome(&self, user_name: &str) -> Result<(), ServiceError>;
    /// EnableUser. `Ok(false)`: ResourceNotFoundException (no such user).
    async fn enable_user(&self, user_name: &str) -> Result<bool, ServiceError>;
    /// DisableUser. `Ok(false)`: ResourceNotFoundException (already gone).
    async fn disable_user(&self, user_name: &str) -> Result<bool, ServiceError>;
    /// DescribeUserStackAssociations for the user, all pages: stack names.
    async fn stacks(&self, user_name: &str) -> Result<Vec<String>, ServiceError>;
    /// BatchAssociateUserStack (at most 25 per call); the per-association errors it reports.
    async fn associate(&self, user_name: &str, stacks: &[String]) -> Result<Vec<StackAssociationError>, ServiceError>;
    /// BatchDisassociateUserStack (at most 25 per call); the per-association errors it reports.
    async fn disassociate(
        &self,
        user_name: &str,
        stacks: &[String],
    ) -> Result<Vec<StackAssociationError>, ServiceError>;
}

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
            Self::SshPublicKey => Op::UpdateSSHPublicKey,
            Self::ServiceSpecific => Op::UpdateServiceSpecificCredential,
            Self::SigningCertificate => Op::UpdateSigningCertificate,
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
}

/// A record that cannot succeed, with its reason, put aside for an operator (SQS DLQ).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedMessage {
    /// The original body, byte for byte.
    pub body: String,
    /// Stable machine-readable code, e.g. `InvalidEvent`, `UserNameOwnedByAnother`.
    pub error_code: String,
    /// Human-readable reason naming the field and rule (never personal values).
    pub reason: String,
    pub event_id: Option<String>,
    pub external_id: Option<String>,
    pub source_message_id: Option<String>,
    /// FIFO message group of the source record, reused on a FIFO DLQ.
    pub message_group: Option<String>,
}

/// Where permanently failing records are parked.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    async fn park(&self, message: &ParkedMessage) -> Result<(), ServiceError>;
}
