//! Reconciliation of the AppStream user pool against an HR snapshot: the state read with list
//! calls only (DescribeUsers for the pool; DescribeUserStackAssociations once per managed stack,
//! and by user name for each existing pool user at an address its owner no longer has), and the
//! pure diff.
//!
//! Pool users carry no owner: a user is ours only when the ledger's inventory gives its name to
//! a person (the name claim). Any other pool user counts only where it holds a snapshot person's
//! address (a collision). The managed stacks are those of the deployment's rules and of the
//! snapshot's lines.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use jml_core::reconcile::{Drift, DriftKind, Findings, LedgerView, Reconciler, Snapshot};

use crate::naming::{APPSTREAM_TARGET, StackRules, user_name};
use crate::port::{AppStreamUsers, PoolEntry, ServiceError};

/// What the list calls read: every pool user (name -> enabled) and each managed stack's users.
#[derive(Clone, Debug, Default)]
pub struct PoolState {
    pub users: BTreeMap<String, bool>,
    /// User name -> its managed stacks.
    pub stacks: BTreeMap<String, BTreeSet<String>>,
}

/// The stacks reconciliation looks at: every stack the rules name and every stack a snapshot
/// line asks for.
pub fn managed_stacks(rules: &StackRules, snapshot: &Snapshot) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = rules.0.values().flatten().map(|s| s.as_str().to_string()).collect();
    for event in snapshot.people.values() {
        if let Some(p) = event.profile() {
            out.extend(rules.desired(p));
        }
    }
    out
}

/// Reads the pool: DescribeUsers (all pages) and DescribeUserStackAssociations per stack; then,
/// for each pool user of `previous` (addresses the ledger gives to a person who no longer has
/// them, see [`previous_addresses`]), DescribeUserStackAssociations by user name: every stack,
/// managed or not (a parked joiner's own `appstreamStacks` may be in no rule and on no snapshot
/// line, and still grants). Only users that exist are read: a released address is deleted.
pub async fn read(
    service: &dyn AppStreamUsers,
    stacks: &BTreeSet<String>,
    previous: &BTreeSet<String>,
) -> Result<PoolState, ServiceError> {
    let users: BTreeMap<String, bool> =
        service.users().await?.into_iter().map(|PoolEntry { user_name, enabled }| (user_name, enabled)).collect();
    let mut by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for stack in stacks {
        for user in service.stack_users(stack).await? {
            by_user.entry(user).or_default().insert(stack.clone());
        }
    }
    for name in previous.iter().filter(|n| users.contains_key(n.as_str())) {
        by_user.entry(name.clone()).or_default().extend(service.stacks(name).await?);
    }
    Ok(PoolState { users, stacks: by_user })
}

/// Every address of the ledger's inventories that is not its owner's current address in the
/// snapshot: a previous address, a parked joiner's, or any address of a person HR no longer
/// lists. Whatever of these still exists grants nothing only if it is disabled in no stack.
pub fn previous_addresses(snapshot: &Snapshot, known: &LedgerView) -> BTreeSet<String> {
    let current = |person: &str| {
        snapshot.people.get(person).and_then(|e| e.profile()).and_then(|p| user_name(p.email.as_str()).ok())
    };
    known
        .iter()
        .flat_map(|(person, k)| {
            let now = current(person);
            k.accounts.iter().filter(move |a| now.as_deref() != Some(a.as_str())).cloned()
        })
        .collect()
}

/// The pool's [`Reconciler`].
pub struct AppStreamReconciler {
    pub service: Arc<dyn AppStreamUsers>,
    pub rules: StackRules,
}

impl std::fmt::Debug for AppStreamReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStreamReconciler").finish_non_exhaustive()
    }
}

#[async_trait]
impl Reconciler for AppStreamReconciler {
    fn target(&self) -> &str {
        APPSTREAM_TARGET
    }

    async fn reconcile(&self, snapshot: &Snapshot, known: &LedgerView) -> Result<Findings, ServiceError> {
        let previous = previous_addresses(snapshot, known);
        let state = read(self.service.as_ref(), &managed_stacks(&self.rules, snapshot), &previous).await?;
        Ok(diff(snapshot, &state, known, &self.rules))
    }
}

/// Drift of every snapshot person and every pool user the ledger gives to a person, and the
/// people managed with access (an owned user that is enabled or in a managed stack).
pub fn diff(snapshot: &Snapshot, state: &PoolState, known: &LedgerView, rules: &StackRules) -> Findings {
    let drift = |person: &str, kind, detail: String| Drift {
        person: person.to_string(),
        target: APPSTREAM_TARGET.to_string(),
        kind,
        detail,
    };
    let owner: BTreeMap<&str, &str> =
        known.iter().flat_map(|(p, k)| k.accounts.iter().map(move |a| (a.as_str(), p.as_str()))).collect();
    let no_stacks = BTreeSet::new();
    let stacks_of = |name: &str| state.stacks.get(name).unwrap_or(&no_stacks);
    let access = |name: &str| state.users.get(name).copied().unwrap_or(false) || !stacks_of(name).is_empty();
    let mut out = Vec::new();
    let mut current: BTreeSet<&str> = BTreeSet::new();
    for (person, event) in &snapshot.people {
        let Some(profile) = event.profile() else { continue };
        let Ok(name) = user_name(profile.email.as_str()) else { continue };
        let Some((stored, &enabled)) = state.users.get_key_value(name.as_str()) else {
            out.push(drift(person, DriftKind::MissingAccount, "no user pool user at the person's address".into()));
            continue;
        };
        if owner.get(name.as_str()) != Some(&person.as_str()) {
            let whose =
                if owner.contains_key(name.as_str()) { "another person's (ledger claim)" } else { "not managed" };
            out.push(drift(
                person,
                DriftKind::Collision,
                format!("the user pool user at the person's address is {whose}"),
            ));
            continue;
        }
        current.insert(stored.as_str());
        if !enabled {
            out.push(drift(person, DriftKind::Status, "disabled while employed".into()));
        }
        let want = rules.desired(profile);
        let have = stacks_of(&name);
        let missing: Vec<&str> = want.iter().filter(|s| !have.contains(*s)).map(String::as_str).collect();
        let extra: Vec<&str> = have.iter().filter(|s| !want.contains(*s)).map(String::as_str).collect();
        if !missing.is_empty() || !extra.is_empty() {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("missing {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                parts.push(format!("extra {}", extra.join(", ")));
            }
            out.push(drift(person, DriftKind::Stacks, parts.join("; ")));
        }
    }
    let mut managed_with_access = BTreeSet::new();
    for (name, person) in &owner {
        if !state.users.contains_key(*name) || !access(name) {
            continue;
        }
        managed_with_access.insert(person.to_string());
        if current.contains(name) {
            continue;
        }
        let enabled = state.users.get(*name).copied().unwrap_or(false);
        // Every stack of such a user was read (`read`), managed or not.
        let detail = format!("{}, {} stack(s)", if enabled { "enabled" } else { "disabled" }, stacks_of(name).len());
        // Employed, but at an address the person no longer has: still access (orphan).
        let (kind, detail) = if snapshot.people.contains_key(*person) {
            (DriftKind::OrphanAccount, format!("a previous address's user: {detail}"))
        } else if known.get(*person).is_some_and(|k| k.left()) {
            (DriftKind::LeaverStillActive, detail)
        } else {
            (DriftKind::OrphanAccount, detail)
        };
        out.push(drift(person, kind, detail));
    }
    out.sort();
    Findings { drift: out, managed_with_access }
}
