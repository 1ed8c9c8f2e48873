//! The License Manager user-based subscriptions port, over plain data.

use async_trait::async_trait;

pub use jml_core::ports::{ConflictReason, DeadLetterQueue, Op, ParkedMessage, ServiceError};

/// An EC2 instance that provides user-based subscriptions (ListInstances).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionInstance {
    pub instance_id: String,
    pub products: Vec<String>,
    pub status: String,
}

/// License Manager user-based subscriptions for Active Directory users, as jml-sync uses them.
/// The adapter holds the identity provider (the Active Directory) and the domain.
///
/// User names: Active Directory compares them without case, and the service's documentation
/// says nothing of how License Manager does; the list calls return each row's user name as the
/// service holds it. So a filtered read returns every row whose user name equals `username`
/// without case, with the name as the service spells it (`crate::naming::same_ad_user`), and the
/// caller acts on that exact spelling.
#[async_trait]
pub trait UserSubscriptions: Send + Sync {
    /// ListInstances, all pages.
    async fn instances(&self) -> Result<Vec<SubscriptionInstance>, ServiceError>;
    /// ListUserAssociations on one instance, filtered to `username`: the user names (as the
    /// service holds them) associated (or being associated) with it that name this AD user.
    async fn associated_as(&self, instance_id: &str, username: &str) -> Result<Vec<String>, ServiceError>;
    /// ListUserAssociations on one instance, unfiltered, all pages: every user associated (or
    /// being associated) with it (reconciliation).
    async fn associated_users(&self, instance_id: &str) -> Result<Vec<String>, ServiceError>;
    /// ListProductSubscriptions, every product, unfiltered, all pages: (username, product) of
    /// every subscription active or being activated (reconciliation).
    async fn subscribers(&self) -> Result<Vec<(String, String)>, ServiceError>;
    /// ListProductSubscriptions filtered to `username`: (user name as the service holds it,
    /// product) of every subscription of this AD user active or being activated.
    async fn products(&self, username: &str) -> Result<Vec<(String, String)>, ServiceError>;
    /// Whether starting another product also subscribes the user to the Remote Desktop Services
    /// SAL (`crate::planner::RDS_SAL`), as License Manager's documentation says it does.
    fn adds_rds_with_other_products(&self) -> bool;
    /// StartProductSubscription; one that already exists is success.
    async fn start_product_subscription(&self, username: &str, product: &str) -> Result<(), ServiceError>;
    /// StopProductSubscription; one already stopped is success.
    async fn stop_product_subscription(&self, username: &str, product: &str) -> Result<(), ServiceError>;
    /// AssociateUser; an association that already exists is success.
    async fn associate_user(&self, username: &str, instance_id: &str) -> Result<(), ServiceError>;
    /// DisassociateUser; an association already gone is success.
    async fn disassociate_user(&self, username: &str, instance_id: &str) -> Result<(), ServiceError>;
    /// ListUserAssociations on one instance, filtered to `username`: the association's status
    /// (`None`: no row). License Manager works asynchronously: `ASSOCIATING`, `DISASSOCIATING`.
    async fn association_status(&self, instance_id: &str, username: &str) -> Result<Option<String>, ServiceError>;
    /// ListProductSubscriptions filtered to `username`: the product's status (`None`: none),
    /// e.g. `PENDING` until the subscription is active.
    async fn product_status(&self, username: &str, product: &str) -> Result<Option<String>, ServiceError>;
}

/// The operations of this target's service, and the core's (queues, ledger).
pub mod op {
    use jml_core::ports::Op;
    pub use jml_core::ports::op::*;

    pub const LIST_INSTANCES: Op = Op::read("license-manager-user-subscriptions", "ListInstances");
    pub const LIST_USER_ASSOCIATIONS: Op = Op::read("license-manager-user-subscriptions", "ListUserAssociations");
    pub const LIST_PRODUCT_SUBSCRIPTIONS: Op =
        Op::read("license-manager-user-subscriptions", "ListProductSubscriptions");
    pub const START_PRODUCT_SUBSCRIPTION: Op =
        Op::write("license-manager-user-subscriptions", "StartProductSubscription");
    pub const STOP_PRODUCT_SUBSCRIPTION: Op =
        Op::write("license-manager-user-subscriptions", "StopProductSubscription");
    pub const ASSOCIATE_USER: Op = Op::write("license-manager-user-subscriptions", "AssociateUser");
    pub const DISASSOCIATE_USER: Op = Op::write("license-manager-user-subscriptions", "DisassociateUser");
}

/// What subscription-sync's event path sends to License Manager user subscriptions (the core's
/// ledger and DLQ calls are `op::TARGET_FUNCTION`): its role in template.yaml grants exactly
/// these (`jml operations`, scripts/test_template.py); `jml doctor` simulates its deployed role.
pub const OPERATIONS: &[Op] = &[
    op::LIST_INSTANCES,
    op::LIST_USER_ASSOCIATIONS,
    op::LIST_PRODUCT_SUBSCRIPTIONS,
    op::START_PRODUCT_SUBSCRIPTION,
    op::STOP_PRODUCT_SUBSCRIPTION,
    op::ASSOCIATE_USER,
    op::DISASSOCIATE_USER,
];

/// What the reconcile function reads of user subscriptions (list calls only).
pub const RECONCILE_OPERATIONS: &[Op] =
    &[op::LIST_INSTANCES, op::LIST_USER_ASSOCIATIONS, op::LIST_PRODUCT_SUBSCRIPTIONS];

/// Sent only by `jml doctor` with the operator's credentials: none beyond the function's.
pub const DOCTOR_OPERATIONS: &[Op] = &[];

/// Everything the function sends on an event's path: its service's `OPERATIONS` and the core's
/// (`op::TARGET_FUNCTION`: ledger and DLQ).
pub fn function_operations() -> Vec<Op> {
    [OPERATIONS, op::TARGET_FUNCTION].concat()
}
