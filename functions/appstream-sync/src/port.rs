//! The AppStream 2.0 user pool port, over plain data.

use async_trait::async_trait;

pub use jml_core::ports::{ConflictReason, DeadLetterQueue, Op, ParkedMessage, ServiceError};

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
    /// The e-mail address, normalised (see `naming::user_name`).
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

/// One user of the pool as DescribeUsers lists it.
#[derive(Clone, PartialEq, Eq)]
pub struct PoolEntry {
    pub user_name: String,
    pub enabled: bool,
}

impl std::fmt::Debug for PoolEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolEntry").field("enabled", &self.enabled).finish_non_exhaustive()
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
    /// DisableUser. `Ok(false)`: ResourceNotFoundException (already gone).
    async fn disable_user(&self, user_name: &str) -> Result<bool, ServiceError>;
    /// DeleteUser. `Ok(false)`: ResourceNotFoundException (already gone).
    async fn delete_user(&self, user_name: &str) -> Result<bool, ServiceError>;
    /// DescribeUsers (USERPOOL), all pages: every user of the pool with its Enabled flag. The
    /// service has no per-user read; jml-sync reads the pool only on rare paths (a claimed
    /// address that already exists) and for reconciliation.
    async fn users(&self) -> Result<Vec<PoolEntry>, ServiceError>;
    /// DescribeStacks for one name: whether the stack exists (`jml doctor`).
    async fn stack_exists(&self, stack: &str) -> Result<bool, ServiceError>;
    /// DescribeUserStackAssociations for the user, all pages: stack names.
    async fn stacks(&self, user_name: &str) -> Result<Vec<String>, ServiceError>;
    /// DescribeUserStackAssociations for the stack, all pages: the user pool users associated
    /// with it (reconciliation reads each managed stack once, not each user).
    async fn stack_users(&self, stack: &str) -> Result<Vec<String>, ServiceError>;
    /// BatchAssociateUserStack (at most 25 per call); the per-association errors it reports.
    async fn associate(&self, user_name: &str, stacks: &[String]) -> Result<Vec<StackAssociationError>, ServiceError>;
    /// BatchDisassociateUserStack (at most 25 per call); the per-association errors it reports.
    async fn disassociate(
        &self,
        user_name: &str,
        stacks: &[String],
    ) -> Result<Vec<StackAssociationError>, ServiceError>;
}

/// The operations of this target's service, and the core's (queues, ledger).
pub mod op {
    use jml_core::ports::Op;
    pub use jml_core::ports::op::*;

    pub const CREATE_USER: Op = Op::write("appstream", "CreateUser");
    pub const DISABLE_USER: Op = Op::write("appstream", "DisableUser");
    pub const DELETE_USER: Op = Op::write("appstream", "DeleteUser");
    pub const DESCRIBE_USERS: Op = Op::read("appstream", "DescribeUsers");
    pub const DESCRIBE_STACKS: Op = Op::read("appstream", "DescribeStacks");
    pub const DESCRIBE_USER_STACK_ASSOCIATIONS: Op = Op::read("appstream", "DescribeUserStackAssociations");
    pub const BATCH_ASSOCIATE_USER_STACK: Op = Op::write("appstream", "BatchAssociateUserStack");
    pub const BATCH_DISASSOCIATE_USER_STACK: Op = Op::write("appstream", "BatchDisassociateUserStack");
}

/// What appstream-sync's event path sends to AppStream 2.0 (the core's ledger and DLQ calls are
/// `op::TARGET_FUNCTION`): its role in template.yaml grants exactly these (`jml operations`,
/// scripts/test_template.py); `jml doctor` simulates its deployed role against them.
pub const OPERATIONS: &[Op] = &[
    op::CREATE_USER,
    op::DISABLE_USER,
    op::DELETE_USER,
    op::DESCRIBE_USERS,
    op::DESCRIBE_USER_STACK_ASSOCIATIONS,
    op::BATCH_ASSOCIATE_USER_STACK,
    op::BATCH_DISASSOCIATE_USER_STACK,
];

/// What the reconcile function reads of the user pool (list calls only).
pub const RECONCILE_OPERATIONS: &[Op] = &[op::DESCRIBE_USERS, op::DESCRIBE_USER_STACK_ASSOCIATIONS];

/// Sent only by `jml doctor` with the operator's credentials (the preflight's stack check).
pub const DOCTOR_OPERATIONS: &[Op] = &[op::DESCRIBE_STACKS];

/// Everything the function sends on an event's path: its service's `OPERATIONS` and the core's
/// (`op::TARGET_FUNCTION`: ledger and DLQ).
pub fn function_operations() -> Vec<Op> {
    [OPERATIONS, op::TARGET_FUNCTION].concat()
}
