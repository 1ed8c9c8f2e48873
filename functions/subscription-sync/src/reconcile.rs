//! Reconciliation of License Manager user-based subscriptions against an HR snapshot: the state
//! read with list calls only (ListInstances; ListUserAssociations once per instance, unfiltered;
//! ListProductSubscriptions once, every product, unfiltered), and the pure diff.
//!
//! The accounts are the directory's, not jml-sync's: an AD user name is ours when the ledger's
//! inventory (the name claim) gives it to a person. Another person's name in the snapshot is a
//! collision. AD compares names without case: so does ownership. What is held is keyed by the
//! name exactly as License Manager lists it: a row under another spelling than the snapshot's
//! (a case-only rename) is a previous AD user name to release, as the converge step does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use jml_core::engine::Step;
use jml_core::reconcile::{Drift, DriftKind, Findings, LedgerView, Reconciler, Snapshot};

use crate::naming::{DirectoryUserNameRule, SUBSCRIPTIONS_TARGET, claim_key, directory_user_name};
use crate::planner::{CurrentSubscriptions, plan_subscriptions};
use crate::port::{ServiceError, SubscriptionInstance, UserSubscriptions};

/// What the list calls read, keyed by the user name exactly as the service holds it.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionState {
    pub instances: Vec<SubscriptionInstance>,
    pub held: BTreeMap<String, CurrentSubscriptions>,
    /// License Manager subscribes the RDS SAL with the other products.
    pub service_adds_rds: bool,
}

/// Reads every instance's associations and every product subscription.
pub async fn read(service: &dyn UserSubscriptions) -> Result<SubscriptionState, ServiceError> {
    let instances = service.instances().await?;
    let mut held: BTreeMap<String, CurrentSubscriptions> = BTreeMap::new();
    for (user, product) in service.subscribers().await? {
        held.entry(user).or_default().products.insert(product);
    }
    for i in &instances {
        for user in service.associated_users(&i.instance_id).await? {
            held.entry(user).or_default().instances.insert(i.instance_id.clone());
        }
    }
    Ok(SubscriptionState { instances, held, service_adds_rds: service.adds_rds_with_other_products() })
}

/// The subscriptions [`Reconciler`].
pub struct SubscriptionReconciler {
    pub service: Arc<dyn UserSubscriptions>,
    pub rule: DirectoryUserNameRule,
}

impl std::fmt::Debug for SubscriptionReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionReconciler").field("rule", &self.rule).finish_non_exhaustive()
    }
}

#[async_trait]
impl Reconciler for SubscriptionReconciler {
    fn target(&self) -> &str {
        SUBSCRIPTIONS_TARGET
    }

    async fn reconcile(&self, snapshot: &Snapshot, known: &LedgerView) -> Result<Findings, ServiceError> {
        let state = read(self.service.as_ref()).await?;
        Ok(diff(snapshot, &state, known, self.rule))
    }
}

/// Drift of every snapshot person and every AD user name the ledger gives to a person.
pub fn diff(
    snapshot: &Snapshot,
    state: &SubscriptionState,
    known: &LedgerView,
    rule: DirectoryUserNameRule,
) -> Findings {
    let drift = |person: &str, kind, detail: String| Drift {
        person: person.to_string(),
        target: SUBSCRIPTIONS_TARGET.to_string(),
        kind,
        detail,
    };
    let owner: BTreeMap<String, &str> = known
        .iter()
        .flat_map(|(p, k)| {
            k.accounts
                .iter()
                .chain(k.record.as_ref().and_then(|r| r.user_name.as_ref()))
                .map(move |a| (claim_key(a), p.as_str()))
        })
        .collect();
    let none = CurrentSubscriptions::default();
    let mut out = Vec::new();
    let mut current: BTreeSet<String> = BTreeSet::new();
    for (person, event) in &snapshot.people {
        let Some(profile) = event.profile() else { continue };
        let record = known.get(person).and_then(|k| k.record.as_ref());
        let Ok(Some(name)) = directory_user_name(event, record, rule) else { continue };
        let held = state.held.get(name.as_str()).unwrap_or(&none);
        if owner.get(&claim_key(name.as_str())).is_some_and(|o| *o != person.as_str()) {
            out.push(drift(person, DriftKind::Collision, "the AD user name is another person's (ledger claim)".into()));
            continue;
        }
        current.insert(name.as_str().to_string());
        match plan_subscriptions(
            Some(&profile.subscriptions),
            name.as_str(),
            held,
            &state.instances,
            state.service_adds_rds,
        ) {
            Ok(steps) if steps.is_empty() => {}
            Ok(steps) => {
                let list: Vec<String> = steps.iter().map(Step::describe).collect();
                out.push(drift(person, DriftKind::Subscriptions, format!("to do: {}", list.join(", "))));
            }
            Err((code, _)) => out.push(drift(person, DriftKind::Subscriptions, format!("not achievable: {code}"))),
        }
    }
    let mut managed_with_access = BTreeSet::new();
    for (name, held) in state.held.iter().filter(|(_, h)| !h.is_empty()) {
        let Some(person) = owner.get(&claim_key(name)) else { continue };
        managed_with_access.insert(person.to_string());
        if current.contains(name) {
            continue;
        }
        let employed = snapshot.people.contains_key(*person);
        let detail = format!(
            "{}{} product(s), {} instance(s)",
            if employed { "a previous AD user name: " } else { "" },
            held.products.len(),
            held.instances.len()
        );
        let kind = if !employed && known.get(*person).is_some_and(|k| k.left()) {
            DriftKind::LeaverStillActive
        } else {
            DriftKind::OrphanAccount
        };
        out.push(drift(person, kind, detail));
    }
    out.sort();
    Findings { drift: out, managed_with_access }
}
