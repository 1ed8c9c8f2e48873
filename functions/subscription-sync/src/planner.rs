//! The pure subscriptions planner: from what each AD user name holds (as resolved by the
//! target) and what the event wants, the typed steps, in execution order.
//!
//! Billing for a user continues until they are disassociated from every instance and their
//! product subscriptions are stopped, so a release disassociates first, then stops.

use std::collections::{BTreeMap, BTreeSet};

use jml_core::contract::{EventKind, Subscription};
use jml_core::engine::{Decision, Step};

use crate::codes::Code;
use crate::port::SubscriptionInstance;

/// The Remote Desktop Services subscriber access license, subscribed automatically with other
/// products.
pub const RDS_SAL: &str = "REMOTE_DESKTOP_SERVICES";

/// A user's subscriptions as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentSubscriptions {
    pub products: BTreeSet<String>,
    pub instances: BTreeSet<String>,
}

impl CurrentSubscriptions {
    pub fn is_empty(&self) -> bool {
        self.products.is_empty() && self.instances.is_empty()
    }
}

/// What one AD user holds, by the user name exactly as License Manager holds each row (the list
/// calls return it): a row under another spelling is released, and re-granted under the name the
/// event gives, so that the service holds the person under one spelling, the latest.
pub type Holdings = BTreeMap<String, CurrentSubscriptions>;

/// One write, under the user name exactly as License Manager holds (or will hold) the row.
/// A person's steps run in this order for each name: disassociations, stops, starts,
/// associations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionStep {
    Disassociate { user: String, instance_id: String },
    Stop { user: String, product: String },
    Start { user: String, product: String },
    Associate { user: String, instance_id: String },
}

impl SubscriptionStep {
    /// The AD user name the step writes under (personal data: never logged).
    pub fn user(&self) -> &str {
        match self {
            Self::Disassociate { user, .. }
            | Self::Stop { user, .. }
            | Self::Start { user, .. }
            | Self::Associate { user, .. } => user,
        }
    }
}

impl Step for SubscriptionStep {
    /// The action without the user name (the outcome, the audit, dry run).
    fn describe(&self) -> String {
        match self {
            Self::Disassociate { instance_id, .. } => format!("DisassociateUser {instance_id}"),
            Self::Stop { product, .. } => format!("StopProductSubscription {product}"),
            Self::Start { product, .. } => format!("StartProductSubscription {product}"),
            Self::Associate { instance_id, .. } => format!("AssociateUser {instance_id}"),
        }
    }

    fn revokes(&self) -> bool {
        matches!(self, Self::Disassociate { .. } | Self::Stop { .. })
    }
}

/// Plans the change of the AD user `user` from `current` to `desired` (`None`: release
/// everything). Desired instances must be among those the service lists and offer the product;
/// else the event can never succeed (`Err((code, reason))`).
///
/// The products wanted are the event's, nothing else: never what happened to be subscribed
/// before. The one exception is the service's own: when License Manager subscribes the RDS SAL
/// with the other products (`service_adds_rds`), the SAL held beside a wanted product other
/// than itself is License Manager's doing, neither drift nor stopped. Where the service does not
/// add it, a SAL the event does not ask for is stopped like any other product. Either way the
/// end state is a function of the event (and the service), not of the order events came in.
pub fn plan_subscriptions(
    desired: Option<&[Subscription]>,
    user: &str,
    current: &CurrentSubscriptions,
    instances: &[SubscriptionInstance],
    service_adds_rds: bool,
) -> Result<Vec<SubscriptionStep>, (Code, String)> {
    let mut want_products = BTreeSet::new();
    let mut want_instances = BTreeSet::new();
    for (i, s) in desired.unwrap_or_default().iter().enumerate() {
        for id in &s.instance_ids {
            let Some(instance) = instances.iter().find(|x| x.instance_id == id.as_str()) else {
                return Err((
                    Code::UnknownInstance,
                    format!(
                        "subscriptions[{i}]: instance {id} is not a License Manager user-based subscriptions instance (ListInstances)"
                    ),
                ));
            };
            if !instance.products.iter().any(|p| p == s.product.as_str()) {
                return Err((
                    Code::ProductNotOnInstance,
                    format!(
                        "subscriptions[{i}]: instance {id} does not provide {} (it provides {})",
                        s.product,
                        instance.products.join(", ")
                    ),
                ));
            }
            want_instances.insert(id.as_str().to_string());
        }
        want_products.insert(s.product.as_str().to_string());
    }
    let user = || user.to_string();
    let mut steps = Vec::new();
    steps.extend(
        current
            .instances
            .difference(&want_instances)
            .map(|i| SubscriptionStep::Disassociate { user: user(), instance_id: i.clone() }),
    );
    // The Remote Desktop Services SAL, where License Manager subscribes it itself with the other
    // products: held next to a wanted product that triggers it, it is not drift and is never
    // stopped; otherwise (nothing else wanted, or a service that does not add it) it is stopped
    // unless wanted, after the others.
    let others_stay = service_adds_rds && want_products.iter().any(|p| p != RDS_SAL);
    let (rds, stops): (Vec<&String>, Vec<&String>) = current
        .products
        .difference(&want_products)
        .filter(|p| !(p.as_str() == RDS_SAL && others_stay))
        .partition(|p| p.as_str() == RDS_SAL);
    steps.extend(stops.into_iter().chain(rds).map(|p| SubscriptionStep::Stop { user: user(), product: p.clone() }));
    steps.extend(
        want_products
            .difference(&current.products)
            .map(|p| SubscriptionStep::Start { user: user(), product: p.clone() }),
    );
    steps.extend(
        want_instances
            .difference(&current.instances)
            .map(|i| SubscriptionStep::Associate { user: user(), instance_id: i.clone() }),
    );
    Ok(steps)
}

/// The person's steps, given what every name read holds (`held`, by the exact name of each
/// row) and what is wanted: `None` (a leaver) releases everything under every name; `Some((user,
/// subscriptions))` first releases everything held under any other name (a previous AD user
/// name, another spelling of this one), then converges `user`, exactly as spelt, to
/// `subscriptions`. Nothing is released when the wanted state cannot be planned.
pub fn plan_person(
    want: Option<(&str, &[Subscription])>,
    held: &Holdings,
    instances: &[SubscriptionInstance],
    service_adds_rds: bool,
) -> Result<Vec<SubscriptionStep>, (Code, String)> {
    let none = CurrentSubscriptions::default();
    let converge = match want {
        Some((user, desired)) => {
            plan_subscriptions(Some(desired), user, held.get(user).unwrap_or(&none), instances, service_adds_rds)?
        }
        None => Vec::new(),
    };
    let mut steps = Vec::new();
    for (name, other) in held.iter().filter(|(name, _)| want.is_none_or(|(user, _)| name.as_str() != user)) {
        steps.extend(plan_subscriptions(None, name, other, instances, service_adds_rds)?);
    }
    steps.extend(converge);
    Ok(steps)
}

/// What the steps make of the event, for the outcome and the audit.
pub fn decision(kind: EventKind, steps: &[SubscriptionStep]) -> Decision {
    match (steps.is_empty(), kind) {
        (true, _) => Decision::NoChange,
        (false, EventKind::Leaver) => Decision::Disable,
        (false, EventKind::Joiner) => Decision::Create,
        (false, EventKind::Mover) => Decision::Update,
        (false, EventKind::Rehire) => Decision::Rehire,
    }
}

/// What still grants access in `held`, free of personal data (the names are numbered, never
/// given): a leaver's read-back.
pub fn residual(held: &Holdings) -> Vec<String> {
    let mut left = Vec::new();
    for (n, current) in held.values().filter(|h| !h.is_empty()).enumerate() {
        if !current.products.is_empty() {
            left.push(format!("AD user #{}: {} product subscription(s)", n + 1, current.products.len()));
        }
        if !current.instances.is_empty() {
            left.push(format!("AD user #{}: associated with {} instance(s)", n + 1, current.instances.len()));
        }
    }
    left
}
