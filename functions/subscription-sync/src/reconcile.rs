//! Reconciliation of License Manager user-based subscriptions against an HR snapshot: the state
//! read with list calls only (ListInstances; ListUserAssociations once per instance, unfiltered;
//! ListProductSubscriptions once, every product, unfiltered), and the pure diff.
//!
//! The accounts are the directory's, not jml-sync's: an AD user name is ours when the ledger's
//! inventory (the name claim) gives it to a person. Another person's name in the snapshot is a
//! collision. AD compares names without case: so does the diff.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use jml_core::reconcile::{Drift, DriftKind, Findings, LedgerView, Reconciler, Snapshot};

use crate::port::{ServiceError, SubscriptionInstance, UserSubscriptions};
use crate::target::{
    CurrentSubscriptions, DirectoryUserNameRule, SUBSCRIPTIONS_TARGET, claim_key, directory_user_name,
    plan_subscriptions,
};

/// What the list calls read, keyed by the AD user name's claim key (lower case).
#[derive(Clone, Debug, Default)]
pub struct SubscriptionState {
    pub instances: Vec<SubscriptionInstance>,
    pub held: BTreeMap<String, CurrentSubscriptions>,
}

/// Reads every instance's associations and every product subscription.
pub async fn read(service: &dyn UserSubscriptions) -> Result<SubscriptionState, ServiceError> {
    let instances = service.instances().await?;
    let mut held: BTreeMap<String, CurrentSubscriptions> = BTreeMap::new();
    for (user, product) in service.subscribers().await? {
        held.entry(claim_key(&user)).or_default().products.insert(product);
    }
    for i in &instances {
        for user in service.associated_users(&i.instance_id).await? {
            held.entry(claim_key(&user)).or_default().instances.insert(i.instance_id.clone());
        }
    }
    Ok(SubscriptionState { instances, held })
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
        let key = claim_key(name.as_str());
        let held = state.held.get(&key).unwrap_or(&none);
        if owner.get(&key).is_some_and(|o| *o != person.as_str()) {
            out.push(drift(person, DriftKind::Collision, "the AD user name is another person's (ledger claim)".into()));
            continue;
        }
        current.insert(key);
        match plan_subscriptions(Some(&profile.subscriptions), held, &state.instances) {
            Ok(actions) if actions.is_empty() => {}
            Ok(actions) => {
                let list: Vec<String> = actions.iter().map(|a| a.describe()).collect();
                out.push(drift(person, DriftKind::Subscriptions, format!("to do: {}", list.join(", "))));
            }
            Err((code, _)) => out.push(drift(person, DriftKind::Subscriptions, format!("not achievable: {code}"))),
        }
    }
    let mut managed_with_access = BTreeSet::new();
    for (key, person) in &owner {
        let Some(held) = state.held.get(key).filter(|h| !h.products.is_empty() || !h.instances.is_empty()) else {
            continue;
        };
        managed_with_access.insert(person.to_string());
        if current.contains(key) {
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
