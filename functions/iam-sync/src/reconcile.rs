//! Reconciliation of IAM users against an HR snapshot: the state read with one listing
//! (GetAccountAuthorizationDetails, Filter User: path, boundary, tags and groups of every user;
//! ListUsers returns neither tags nor the boundary, and ownership is a tag), and the pure diff.
//!
//! A user is ours when it carries `jml-sync:external-id` and is under the deployment's path prefix
//! or its person is known (snapshot or ledger); any other user counts only where its
//! name is a snapshot person's derived name (a collision). A leaver's user stays (audit needs the
//! principal) tagged `jml-sync:status=disabled` and in no group. The listing shows neither a
//! console password nor keys, and a human can re-activate them after the leaver: so for every
//! such user of a person HR does not list, its credentials are read (GetLoginProfile,
//! ListAccessKeys, ListSSHPublicKeys, ListServiceSpecificCredentials, ListSigningCertificates:
//! 5 calls per locked-down user per run), and one that still lets the user in is access
//! (`leaver-still-active` when the ledger says the person left; `--apply` sends a leaver, whose
//! lock-down deletes the password and deactivates every key and credential again).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use jml_core::contract::ExternalId;
use jml_core::reconcile::{Drift, DriftKind, Findings, LedgerView, Reconciler, Snapshot};

use crate::naming::{
    GroupMap, IAM_TARGET, TAG_EXTERNAL_ID, TAG_STATUS, active_tags, external_id_of_tag, external_id_tag, path,
    user_name,
};
use crate::port::{IamUser, IamUsers, ServiceError};

/// The IAM [`Reconciler`].
pub struct IamReconciler {
    pub service: Arc<dyn IamUsers>,
    pub groups: GroupMap,
    pub path_prefix: String,
    pub permissions_boundary: String,
}

impl std::fmt::Debug for IamReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamReconciler").field("path_prefix", &self.path_prefix).finish_non_exhaustive()
    }
}

#[async_trait]
impl Reconciler for IamReconciler {
    fn target(&self) -> &str {
        IAM_TARGET
    }

    async fn reconcile(&self, snapshot: &Snapshot, known: &LedgerView) -> Result<Findings, ServiceError> {
        let users = self.service.account_users().await?;
        let mut credentials = Credentials::new();
        for user in self.locked_down(snapshot, &users, known) {
            let found = live_credentials(self.service.as_ref(), &user.user_name).await?;
            if !found.is_empty() {
                credentials.insert(user.user_id.clone(), found);
            }
        }
        Ok(self.diff_with_credentials(snapshot, &users, known, &credentials))
    }
}

/// What still lets a locked-down user in, by UserId: `console password`, `N active access
/// key(s)`, `N active SSH key(s)/service credential(s)/certificate(s)` (no personal data).
pub type Credentials = BTreeMap<String, Vec<String>>;

/// A user's credentials that let it in (empty: none). NoSuchEntity (the user went between the
/// listing and the read) is none.
pub async fn live_credentials(service: &dyn IamUsers, user_name: &str) -> Result<Vec<String>, ServiceError> {
    let gone = |r: Result<usize, ServiceError>| match r {
        Err(ServiceError::NotFound { .. }) => Ok(0),
        other => other,
    };
    let mut out = Vec::new();
    if gone(service.has_login_profile(user_name).await.map(usize::from))? > 0 {
        out.push("console password".to_string());
    }
    let keys = service.access_keys(user_name).await.map(|k| k.iter().filter(|k| k.status == "Active").count());
    let keys = gone(keys)?;
    if keys > 0 {
        out.push(format!("{keys} active access key(s)"));
    }
    let others = gone(service.other_credentials(user_name).await.map(|c| c.iter().filter(|c| c.active).count()))?;
    if others > 0 {
        out.push(format!("{others} active SSH key(s)/service credential(s)/certificate(s)"));
    }
    Ok(out)
}

/// The person a `jml-sync:external-id` tag names, as a person key ([`ExternalId::key`]); a
/// hashed tag, or one not in the exact form jml-sync writes, is `tag:<value>` (never a person key:
/// reported, and its correction held). [`IamReconciler::diff`] looks hashed tags up among the
/// snapshot's and the ledger's people first.
pub fn person_of_tag(value: &str) -> String {
    external_id_of_tag(value).map_or_else(|| format!("tag:{value}"), |p| p.key())
}

fn disabled(u: &IamUser) -> bool {
    u.tags.get(TAG_STATUS).map(String::as_str) == Some("disabled")
}

impl IamReconciler {
    /// This deployment's users (see [`IamReconciler::diff`]) of people HR does not list that
    /// look locked down in the listing (tagged disabled, in no group): whose credentials must be
    /// read before "no access" can be said.
    pub fn locked_down<'a>(
        &self,
        snapshot: &Snapshot,
        users: &'a [(IamUser, Vec<String>)],
        known: &LedgerView,
    ) -> Vec<&'a IamUser> {
        let listed: BTreeSet<String> = snapshot.people.values().map(|e| external_id_tag(&e.external_id)).collect();
        users
            .iter()
            .filter(|(u, groups)| {
                let Some(tag) = u.tags.get(TAG_EXTERNAL_ID) else { return false };
                let ours = u.path.starts_with(&self.path_prefix) || known.contains_key(&person_of_tag(tag));
                ours && !listed.contains(tag) && disabled(u) && groups.is_empty()
            })
            .map(|(u, _)| u)
            .collect()
    }

    /// [`IamReconciler::diff_with_credentials`] with no credential read.
    pub fn diff(&self, snapshot: &Snapshot, users: &[(IamUser, Vec<String>)], known: &LedgerView) -> Findings {
        self.diff_with_credentials(snapshot, users, known, &Credentials::new())
    }

    /// Drift of every snapshot person and every tagged user; the people managed with access
    /// (a tagged user not tagged disabled, in any group, or with a credential in `credentials`).
    pub fn diff_with_credentials(
        &self,
        snapshot: &Snapshot,
        users: &[(IamUser, Vec<String>)],
        known: &LedgerView,
        credentials: &Credentials,
    ) -> Findings {
        let drift = |person: &str, kind, detail: String| Drift {
            person: person.to_string(),
            target: IAM_TARGET.to_string(),
            kind,
            detail,
        };
        // The tag value of each snapshot person and of each person the ledger knows here (a
        // hashed tag is only recognisable this way).
        let mut person_of: BTreeMap<String, String> = BTreeMap::new();
        for p in known.keys() {
            if let Some(id) = ExternalId::from_key(p) {
                person_of.insert(external_id_tag(&id), p.clone());
            }
        }
        for (p, e) in &snapshot.people {
            person_of.insert(external_id_tag(&e.external_id), p.clone());
        }
        let owner = |u: &IamUser| -> Option<String> {
            let v = u.tags.get(TAG_EXTERNAL_ID)?;
            Some(person_of.get(v).cloned().unwrap_or_else(|| person_of_tag(v)))
        };
        let mut by_person: BTreeMap<String, Vec<&(IamUser, Vec<String>)>> = BTreeMap::new();
        // This deployment's users: tagged, and under its path prefix or of a person it knows
        // (the snapshot's or the ledger's: a user moved out of the path by hand is still
        // ours). Another deployment's users in the same account (another prefix) are not.
        for entry in users {
            if let Some(p) = owner(&entry.0)
                && (entry.0.path.starts_with(&self.path_prefix)
                    || snapshot.people.contains_key(&p)
                    || known.contains_key(&p))
            {
                by_person.entry(p).or_default().push(entry);
            }
        }
        let managed = self.groups.managed();
        let mut out = Vec::new();
        for (person, event) in &snapshot.people {
            let Some(profile) = event.profile() else { continue };
            let Ok(name) = user_name(profile.user_name.as_str()) else { continue };
            let mine = by_person.get(person).map(Vec::as_slice).unwrap_or_default();
            let Some((user, groups)) =
                mine.iter().find(|(u, _)| u.user_name.eq_ignore_ascii_case(&name)).or(mine.first()).copied()
            else {
                match users.iter().find(|(u, _)| u.user_name.eq_ignore_ascii_case(&name)) {
                    Some(_) => out.push(drift(
                        person,
                        DriftKind::Collision,
                        "an IAM user not managed for this person holds the derived name".into(),
                    )),
                    None => out.push(drift(
                        person,
                        DriftKind::MissingAccount,
                        "no IAM user carries the person's tag".into(),
                    )),
                }
                continue;
            };
            for (other, _) in mine.iter().filter(|(u, _)| u.user_id != user.user_id) {
                out.push(drift(
                    person,
                    DriftKind::Collision,
                    format!("a second IAM user carries the person's tag: {}", other.user_id),
                ));
            }
            if disabled(user) {
                out.push(drift(person, DriftKind::Status, "tagged disabled while employed".into()));
            }
            if let Ok(want) = path(&self.path_prefix, profile.enterprise.department.as_ref().map(|d| d.as_str()))
                && user.path != want
            {
                out.push(drift(person, DriftKind::IamPath, format!("{} (want {want})", user.path)));
            }
            let mut attrs = Vec::new();
            if !user.user_name.eq_ignore_ascii_case(&name) {
                attrs.push("userName".to_string());
            }
            if user.permissions_boundary.as_deref() != Some(self.permissions_boundary.as_str()) {
                attrs.push("permissionsBoundary".to_string());
            }
            if !disabled(user) {
                attrs.extend(
                    active_tags(&event.external_id)
                        .into_iter()
                        .filter(|(k, v)| user.tags.get(k) != Some(v))
                        .map(|(k, _)| format!("tag {k}")),
                );
            }
            if !attrs.is_empty() {
                out.push(drift(person, DriftKind::Attributes, attrs.join(", ")));
            }
            let want = self.groups.desired(profile);
            let have: BTreeSet<String> = groups.iter().filter(|g| managed.contains(*g)).cloned().collect();
            let missing: Vec<&str> = want.difference(&have).map(String::as_str).collect();
            let extra: Vec<&str> = have.difference(&want).map(String::as_str).collect();
            if !missing.is_empty() {
                out.push(drift(person, DriftKind::GroupsMissing, missing.join(", ")));
            }
            if !extra.is_empty() {
                out.push(drift(person, DriftKind::GroupsExtra, extra.join(", ")));
            }
        }
        let mut managed_with_access = BTreeSet::new();
        for (person, mine) in &by_person {
            for (user, groups) in mine {
                let live = credentials.get(&user.user_id).map(Vec::as_slice).unwrap_or_default();
                if disabled(user) && groups.is_empty() && live.is_empty() {
                    continue;
                }
                managed_with_access.insert(person.clone());
                if snapshot.people.contains_key(person) {
                    continue;
                }
                let mut detail = format!(
                    "{}, {} group(s)",
                    if disabled(user) { "tagged disabled" } else { "not tagged disabled" },
                    groups.len()
                );
                for c in live {
                    detail.push_str(", ");
                    detail.push_str(c);
                }
                let kind = if known.get(person).is_some_and(|k| k.left()) {
                    DriftKind::LeaverStillActive
                } else {
                    DriftKind::OrphanAccount
                };
                out.push(drift(person, kind, detail));
            }
        }
        out.sort();
        out.dedup();
        Findings { drift: out, managed_with_access }
    }
}
