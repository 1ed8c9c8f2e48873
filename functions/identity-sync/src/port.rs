//! The Identity Store port: what identity-sync needs from IAM Identity Center's Identity Store,
//! over plain data. The AWS adapter (`crate::aws`) and the simulator (`crate::sim`) implement it.

use async_trait::async_trait;
use serde_json::Value;

use jml_core::contract::{ExternalId, GroupName, UserName};
pub use jml_core::ports::{ConflictReason, DeadLetterQueue, Op, ParkedMessage, ServiceError};

/// An Identity Store UserId (opaque).
pub type UserId = String;
/// An Identity Store GroupId (opaque).
pub type GroupId = String;
/// An Identity Store MembershipId (opaque).
pub type MembershipId = String;

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
    /// DeleteUser. jml-sync never deletes a person's user (a leaver is disabled, the principal
    /// stays for audit); `jml doctor --canary` removes its test user with it. `Ok(false)`:
    /// already gone.
    async fn delete_user(&self, user_id: &str) -> Result<bool, ServiceError>;
    /// ListGroups, all pages: (GroupId, DisplayName).
    async fn groups(&self) -> Result<Vec<(GroupId, String)>, ServiceError>;
    /// ListUsers, all pages (reconciliation): every user as listed (no enterprise extension).
    async fn list_users(&self) -> Result<Vec<UserRecord>, ServiceError>;
    /// ListGroupMemberships of one group, all pages (reconciliation): the members' UserIds.
    async fn group_members(&self, group_id: &str) -> Result<Vec<UserId>, ServiceError>;
}

/// The operations of this target's service, and the core's (queues, ledger).
pub mod op {
    use jml_core::ports::Op;
    pub use jml_core::ports::op::*;

    pub const GET_USER_ID_BY_USER_NAME: Op = Op::read("identitystore", "GetUserId").labelled("GetUserId(userName)");
    pub const GET_USER_ID_BY_EXTERNAL_ID: Op = Op::read("identitystore", "GetUserId").labelled("GetUserId(ExternalId)");
    pub const DESCRIBE_USER: Op = Op::read("identitystore", "DescribeUser");
    pub const LIST_USERS: Op = Op::read("identitystore", "ListUsers");
    pub const CREATE_USER: Op = Op::write("identitystore", "CreateUser");
    pub const UPDATE_USER: Op = Op::write("identitystore", "UpdateUser");
    pub const GET_GROUP_ID: Op = Op::read("identitystore", "GetGroupId");
    pub const DESCRIBE_GROUP: Op = Op::read("identitystore", "DescribeGroup");
    pub const LIST_GROUP_MEMBERSHIPS_FOR_MEMBER: Op = Op::read("identitystore", "ListGroupMembershipsForMember");
    pub const CREATE_GROUP_MEMBERSHIP: Op = Op::write("identitystore", "CreateGroupMembership");
    pub const DELETE_GROUP_MEMBERSHIP: Op = Op::write("identitystore", "DeleteGroupMembership");
    pub const DELETE_USER: Op = Op::write("identitystore", "DeleteUser");
    pub const LIST_GROUPS: Op = Op::read("identitystore", "ListGroups");
    pub const LIST_GROUP_MEMBERSHIPS: Op = Op::read("identitystore", "ListGroupMemberships");
}

/// What identity-sync's event path sends to the Identity Store (the core's ledger and DLQ calls
/// are `op::TARGET_FUNCTION`): its role in template.yaml grants exactly these (`jml operations`,
/// scripts/test_template.py), and `jml doctor` simulates its deployed role against them.
pub const OPERATIONS: &[Op] = &[
    op::GET_USER_ID_BY_USER_NAME,
    op::GET_USER_ID_BY_EXTERNAL_ID,
    op::LIST_USERS,
    op::DESCRIBE_USER,
    op::CREATE_USER,
    op::UPDATE_USER,
    op::GET_GROUP_ID,
    op::DESCRIBE_GROUP,
    op::LIST_GROUP_MEMBERSHIPS_FOR_MEMBER,
    op::CREATE_GROUP_MEMBERSHIP,
    op::DELETE_GROUP_MEMBERSHIP,
    // A rehire deletes the previous employment's user (a fresh start, see `target::fresh_start`).
    op::DELETE_USER,
];

/// What the reconcile function reads of the Identity Store (list calls only).
pub const RECONCILE_OPERATIONS: &[Op] = &[op::LIST_USERS, op::LIST_GROUPS, op::LIST_GROUP_MEMBERSHIPS];

/// Sent by `jml doctor` with the operator's credentials (the canary's cleanup, the preflight's
/// group listing); DeleteUser is also in identity-sync's role (a rehire's fresh start).
pub const DOCTOR_OPERATIONS: &[Op] = &[op::DELETE_USER, op::LIST_GROUPS];

/// Everything the function sends on an event's path: its service's `OPERATIONS` and the core's
/// (`op::TARGET_FUNCTION`: ledger and DLQ).
pub fn function_operations() -> Vec<Op> {
    [OPERATIONS, op::TARGET_FUNCTION].concat()
}
