//! Reconciliation of the Identity Store against an HR snapshot: the state read with list calls
//! only (ListUsers; ListGroupMemberships per managed group), and the pure diff.
//!
//! Only users carrying a jml-sync marker are ours; an unmanaged user counts only where it holds a
//! snapshot person's userName (a collision). Attributes compared: names, display name, e-mail,
//! phone, address, title, user type, language, locale, time zone, userName, and the manager
//! (ListUsers is asked for the enterprise extension: the UserId of the user holding the manager's
//! userName, or none when nobody holds it). The other enterprise attributes are not compared.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
pub use jml_core::reconcile::person_of_marker;
use jml_core::reconcile::{Drift, DriftKind, Findings, LedgerView, Reconciler, Snapshot};
use jml_core::reconcile::{hashed_markers, resolve_marker};

use crate::planner::{ManagedGroups, attribute_changes, desired_attributes};
use crate::port::{IdentityStore, ServiceError, UserId, UserRecord, UserStatus};
use crate::target::IDENTITY_TARGET;

/// What the list calls read.
#[derive(Clone, Debug, Default)]
pub struct IdentityState {
    pub users: Vec<UserRecord>,
    /// Managed group name -> its members' UserIds.
    pub members: BTreeMap<String, BTreeSet<UserId>>,
}

/// Reads the state: ListUsers (all pages), ListGroups, and ListGroupMemberships for each
/// managed group. Calls: ceil(users/100) + ceil(groups/100) + sum of ceil(members/100).
pub async fn read(store: &dyn IdentityStore, managed: &ManagedGroups) -> Result<IdentityState, ServiceError> {
    let users = store.list_users().await?;
    let mut members = BTreeMap::new();
    for (gid, name) in store.groups().await? {
        if managed.contains(&name) {
            members.insert(name, store.group_members(&gid).await?.into_iter().collect());
        }
    }
    Ok(IdentityState { users, members })
}

/// The paths compared: of the enterprise extension, only the manager.
fn listed(path: &str) -> bool {
    !path.starts_with("aws:identitystore:enterprise") || path == "aws:identitystore:enterprise.manager"
}

/// The Identity Store's [`Reconciler`].
pub struct IdentityReconciler {
    pub store: Arc<dyn IdentityStore>,
    pub managed: ManagedGroups,
}

impl std::fmt::Debug for IdentityReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityReconciler").finish_non_exhaustive()
    }
}

#[async_trait]
impl Reconciler for IdentityReconciler {
    fn target(&self) -> &str {
        IDENTITY_TARGET
    }

    async fn reconcile(&self, snapshot: &Snapshot, known: &LedgerView) -> Result<Findings, ServiceError> {
        let state = read(self.store.as_ref(), &self.managed).await?;
        // A hashed marker names nobody by itself: the person the snapshot or the ledger knows.
        let hashed = hashed_markers(known.keys().chain(snapshot.people.keys()));
        let managed = managed_with_access(&state)
            .into_iter()
            .map(|p| p.strip_prefix("marker:").and_then(|m| hashed.get(m).cloned()).unwrap_or(p))
            .collect();
        Ok(Findings { drift: diff(snapshot, &state, known), managed_with_access: managed })
    }
}

/// Drift of every snapshot person and every managed user, against what the ledger knows on this
/// target (who left; which user id its record holds).
pub fn diff(snapshot: &Snapshot, state: &IdentityState, known: &LedgerView) -> Vec<Drift> {
    let left = |p: &str| known.get(p).is_some_and(|k| k.left());
    let drift = |person: &str, kind, detail: String| Drift {
        person: person.to_string(),
        target: IDENTITY_TARGET.to_string(),
        kind,
        detail,
    };
    let mut out = Vec::new();
    let mut by_marker: BTreeMap<&str, Vec<&UserRecord>> = BTreeMap::new();
    for u in &state.users {
        if let Some(m) = u.attributes.marker.as_deref() {
            by_marker.entry(m).or_default().push(u);
        }
    }
    let groups_of = |id: &str| -> BTreeSet<&str> {
        state.members.iter().filter(|(_, m)| m.contains(id)).map(|(g, _)| g.as_str()).collect()
    };
    // userName (lower case: unique regardless of case) -> UserId, for the managers.
    let by_name: BTreeMap<String, &str> =
        state.users.iter().map(|u| (u.attributes.user_name.to_lowercase(), u.user_id.as_str())).collect();
    // A hashed marker names nobody by itself: the people the ledger knows here, by marker.
    let hashed = hashed_markers(known.keys());
    let mut seen = BTreeSet::new();
    for (person, event) in &snapshot.people {
        let Some(profile) = event.profile() else { continue };
        let marker = event.external_id.marker();
        let recorded = known.get(person).and_then(|k| k.record.as_ref()?.user_id.as_deref());
        let mine = by_marker.get(marker.as_str()).map(Vec::as_slice).unwrap_or_default();
        let Some(user) = mine.iter().find(|u| Some(u.user_id.as_str()) == recorded).or(mine.first()).copied() else {
            let holder =
                state.users.iter().find(|u| u.attributes.user_name.eq_ignore_ascii_case(profile.user_name.as_str()));
            match holder {
                Some(_) => out.push(drift(
                    person,
                    DriftKind::Collision,
                    "an account not managed for this person holds the userName".into(),
                )),
                None => {
                    out.push(drift(person, DriftKind::MissingAccount, "no user carries the person's marker".into()))
                }
            }
            continue;
        };
        seen.insert(marker);
        // One person, one account: any other user carrying the marker (made by hand, or copied)
        // is a human's to resolve, and the leaver would not know it.
        for other in mine.iter().filter(|u| u.user_id != user.user_id) {
            out.push(drift(
                person,
                DriftKind::Collision,
                format!("a second user carries the person's marker: {}", other.user_id),
            ));
        }
        if let Some(id) = recorded
            && id != user.user_id
        {
            out.push(drift(
                person,
                DriftKind::Ledger,
                format!("the ledger records user {id}; the marker is on {}", user.user_id),
            ));
        }
        if user.status == UserStatus::Disabled {
            out.push(drift(person, DriftKind::Status, "disabled while employed".into()));
        }
        let manager = profile
            .enterprise
            .manager
            .as_ref()
            .and_then(|m| by_name.get(&m.as_str().to_lowercase()))
            .map(|id| id.to_string());
        let want = desired_attributes(profile, &event.external_id, manager);
        let paths: Vec<&str> =
            attribute_changes(&user.attributes, &want).iter().map(|c| c.path).filter(|p| listed(p)).collect();
        if !paths.is_empty() {
            out.push(drift(person, DriftKind::Attributes, paths.join(", ")));
        }
        let want: BTreeSet<&str> = profile.groups.iter().map(|g| g.as_str()).collect();
        let have = groups_of(&user.user_id);
        let missing: Vec<&str> = want.difference(&have).copied().collect();
        let extra: Vec<&str> = have.difference(&want).copied().collect();
        if !missing.is_empty() {
            out.push(drift(person, DriftKind::GroupsMissing, missing.join(", ")));
        }
        if !extra.is_empty() {
            out.push(drift(person, DriftKind::GroupsExtra, extra.join(", ")));
        }
    }
    for user in &state.users {
        let Some(marker) = user.attributes.marker.as_deref() else { continue };
        if seen.contains(marker) || marker.starts_with(crate::doctor::CANARY_MARKER) {
            continue;
        }
        let Some(person) = resolve_marker(marker, &hashed) else { continue };
        let groups = groups_of(&user.user_id);
        let access = user.status == UserStatus::Enabled || !groups.is_empty();
        if !access {
            continue; // a leaver applied: disabled, in no managed group
        }
        let detail = format!(
            "{}, {} managed group(s)",
            if user.status == UserStatus::Enabled { "enabled" } else { "disabled" },
            groups.len()
        );
        let kind = if left(&person) { DriftKind::LeaverStillActive } else { DriftKind::OrphanAccount };
        out.push(drift(&person, kind, detail));
    }
    out.sort();
    out
}

/// Whether a user grants access in this target (enabled, or a member of a managed group).
pub fn grants_access(user: &UserRecord, state: &IdentityState) -> bool {
    user.status == UserStatus::Enabled || state.members.values().any(|m| m.contains(&user.user_id))
}

/// The people this target manages with access (the base of the partial-snapshot refusal).
pub fn managed_with_access(state: &IdentityState) -> BTreeSet<String> {
    state
        .users
        .iter()
        .filter(|u| grants_access(u, state))
        .filter_map(|u| person_of_marker(u.attributes.marker.as_deref()?))
        .collect()
}
