//! An in-memory IAM with the rules jml-sync relies on: user names unique case-insensitively and
//! looked up case-insensitively (GetUser returns the stored capitalisation), `userNameType` and
//! `pathType` patterns, tag keys/values in the tag alphabet and at most 50 tags, groups that must
//! exist (NoSuchEntity), at most 10 groups per user (LimitExceeded), login profiles and access
//! keys; call counting and injected faults.

use crate::port::op;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::port::{AccessKey, CredentialKind, IamNewUser, IamUser, IamUsers, Op, OtherCredential, ServiceError};
use jml_core::sim::{CallCounts, Calls};

/// The IAM groups of the demo deployment.
pub const DEMO_IAM_GROUPS: &[&str] = &["all-staff", "engineers", "vpn-users", "finance", "oncall"];
/// The demo deployment's `IAM_GROUP_MAP` (HR group -> IAM groups).
pub const DEMO_IAM_GROUP_MAP: &str = r#"{"jml-all-staff": ["all-staff"], "jml-engineering": ["engineers"], "jml-vpn": ["vpn-users"], "jml-finance": ["finance"], "jml-oncall": ["oncall"]}"#;
/// The demo deployment's permissions boundary.
pub const DEMO_BOUNDARY: &str = "arn:aws:iam::123456789012:policy/jml-sync-user-boundary";
/// IAM's quota of groups per user.
pub const GROUPS_PER_USER: usize = 10;

/// A simulated IAM user with everything jml-sync manages, for assertions and the CLI's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimIamUser {
    pub user: IamUser,
    pub groups: BTreeSet<String>,
    pub login_profile: bool,
    pub access_keys: Vec<AccessKey>,
    /// SSH public keys, service-specific credentials, signing certificates.
    pub other_credentials: Vec<OtherCredential>,
}

#[derive(Debug, Default)]
struct State {
    /// Keyed by the lower-cased name.
    users: BTreeMap<String, SimIamUser>,
    groups: BTreeSet<String>,
    /// Managed policy ARNs that exist (the permissions boundary).
    policies: BTreeSet<String>,
    next_id: u64,
    calls: Calls,
}

#[derive(Debug, Default)]
pub struct SimIam {
    state: Mutex<State>,
    /// Latency, quota and pacing of the list calls, for benchmarks (off by default).
    pub quota: jml_core::sim::Quota,
}

/// GetAccountAuthorizationDetails' page (MaxItems 1,000, as the adapter asks; IAM's maximum).
pub const AUTHORIZATION_DETAILS_PAGE: usize = 1000;

fn invalid(op: Op, m: &str) -> ServiceError {
    ServiceError::Validation { op, message: m.to_string() }
}

fn name_ok(n: &str) -> bool {
    (1..=64).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

fn tags_ok(tags: &BTreeMap<String, String>) -> bool {
    let alphabet = |s: &str| s.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
    tags.iter()
        .all(|(k, v)| (1..=128).contains(&k.chars().count()) && v.chars().count() <= 256 && alphabet(k) && alphabet(v))
}

impl SimIam {
    pub fn demo() -> Self {
        let sim = Self::default();
        for g in DEMO_IAM_GROUPS {
            sim.add_group(g);
        }
        sim.lock().policies.insert(DEMO_BOUNDARY.to_string());
        sim
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn add_group(&self, name: &str) {
        self.lock().groups.insert(name.to_string());
    }

    /// A user created outside jml-sync (or by it, with `tags`).
    pub fn seed_user(&self, name: &str, tags: &[(&str, &str)]) {
        let mut s = self.lock();
        s.next_id += 1;
        let user = IamUser {
            user_name: name.to_string(),
            user_id: format!("AIDASEED{:012}", s.next_id),
            path: "/".to_string(),
            permissions_boundary: None,
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        s.users.insert(
            name.to_lowercase(),
            SimIamUser {
                user,
                groups: BTreeSet::new(),
                login_profile: false,
                access_keys: vec![],
                other_credentials: vec![],
            },
        );
    }

    /// A console password and an access key, as a human would add them.
    pub fn add_credentials(&self, name: &str, access_key_id: &str) {
        if let Some(u) = self.lock().users.get_mut(&name.to_lowercase()) {
            u.login_profile = true;
            u.access_keys.push(AccessKey { access_key_id: access_key_id.to_string(), status: "Active".to_string() });
        }
    }

    /// An SSH public key, a service-specific credential and a signing certificate, as a human
    /// would add them (ids derived from `tag`).
    pub fn add_other_credentials(&self, name: &str, tag: &str) {
        if let Some(u) = self.lock().users.get_mut(&name.to_lowercase()) {
            for (kind, prefix) in [
                (CredentialKind::SshPublicKey, "APKA"),
                (CredentialKind::ServiceSpecific, "ACCA"),
                (CredentialKind::SigningCertificate, "CERT"),
            ] {
                u.other_credentials.push(OtherCredential { kind, id: format!("{prefix}{tag}"), active: true });
            }
        }
    }

    /// What a human might do to a locked-down user, outside jml-sync: a console password again
    /// (CreateLoginProfile), every access key `Active` again (UpdateAccessKey), every SSH key,
    /// service-specific credential and signing certificate `Active` again. Tags and groups stay.
    pub fn reactivate_by_hand(&self, name: &str) {
        if let Some(u) = self.lock().users.get_mut(&name.to_lowercase()) {
            u.login_profile = true;
            for k in &mut u.access_keys {
                k.status = "Active".to_string();
            }
            for c in &mut u.other_credentials {
                c.active = true;
            }
        }
    }

    /// Adds a user to a group directly (an unmanaged or manual membership).
    pub fn add_membership(&self, name: &str, group: &str) {
        if let Some(u) = self.lock().users.get_mut(&name.to_lowercase()) {
            u.groups.insert(group.to_string());
        }
    }

    pub fn fail_next(&self, op: Op, error: ServiceError) {
        self.lock().calls.fail_next(op, error);
    }

    pub fn calls(&self) -> CallCounts {
        self.lock().calls.counts()
    }

    pub fn reset_calls(&self) {
        self.lock().calls.reset();
    }

    pub fn user(&self, name: &str) -> Option<SimIamUser> {
        self.lock().users.get(&name.to_lowercase()).cloned()
    }

    pub fn all(&self) -> Vec<SimIamUser> {
        self.lock().users.values().cloned().collect()
    }

    fn enter(&self, op: Op) -> Result<std::sync::MutexGuard<'_, State>, ServiceError> {
        let mut s = self.lock();
        s.calls.enter(op)?;
        Ok(s)
    }

    fn with_user<T>(
        &self,
        op: Op,
        name: &str,
        f: impl FnOnce(&mut SimIamUser, &BTreeSet<String>) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let mut s = self.enter(op)?;
        let groups = s.groups.clone();
        match s.users.get_mut(&name.to_lowercase()) {
            Some(u) => f(u, &groups),
            None => Err(ServiceError::NotFound { op }),
        }
    }
}

#[async_trait]
impl IamUsers for SimIam {
    async fn get_user(&self, user_name: &str) -> Result<Option<IamUser>, ServiceError> {
        let s = self.enter(op::GET_USER)?;
        Ok(s.users.get(&user_name.to_lowercase()).map(|u| u.user.clone()))
    }

    async fn create_user(&self, user: &IamNewUser) -> Result<Option<String>, ServiceError> {
        let op = op::CREATE_USER;
        let mut s = self.enter(op)?;
        if !name_ok(&user.user_name) {
            return Err(invalid(op, "UserName: 1 to 64 of [\\w+=,.@-]"));
        }
        if crate::naming::check_path(&user.path).is_err() {
            return Err(invalid(op, "Path: pathType"));
        }
        if !tags_ok(&user.tags) || user.tags.len() > 50 {
            return Err(invalid(op, "Tags: tag alphabet, at most 50"));
        }
        let key = user.user_name.to_lowercase();
        if s.users.contains_key(&key) {
            return Ok(None);
        }
        s.next_id += 1;
        let user_id = format!("AIDAJML{:013}", s.next_id);
        let new = IamUser {
            user_name: user.user_name.clone(),
            user_id: user_id.clone(),
            path: user.path.clone(),
            permissions_boundary: Some(user.permissions_boundary.clone()),
            tags: user.tags.clone(),
        };
        s.users.insert(
            key,
            SimIamUser {
                user: new,
                groups: BTreeSet::new(),
                login_profile: false,
                access_keys: vec![],
                other_credentials: vec![],
            },
        );
        Ok(Some(user_id))
    }

    async fn update_user(
        &self,
        user_name: &str,
        new_path: Option<&str>,
        new_user_name: Option<&str>,
    ) -> Result<(), ServiceError> {
        let op = op::UPDATE_USER;
        let mut s = self.enter(op)?;
        let key = user_name.to_lowercase();
        let Some(mut u) = s.users.remove(&key) else { return Err(ServiceError::NotFound { op }) };
        if let Some(p) = new_path {
            if crate::naming::check_path(p).is_err() {
                s.users.insert(key, u);
                return Err(invalid(op, "NewPath: pathType"));
            }
            u.user.path = p.to_string();
        }
        let mut new_key = key.clone();
        if let Some(n) = new_user_name {
            if !name_ok(n) || (n.to_lowercase() != key && s.users.contains_key(&n.to_lowercase())) {
                s.users.insert(key, u);
                return Err(ServiceError::Conflict {
                    op,
                    reason: crate::port::ConflictReason::UniquenessConstraintViolation,
                });
            }
            u.user.user_name = n.to_string();
            new_key = n.to_lowercase();
        }
        s.users.insert(new_key, u);
        Ok(())
    }

    async fn put_permissions_boundary(&self, user_name: &str, arn: &str) -> Result<(), ServiceError> {
        self.with_user(op::PUT_USER_PERMISSIONS_BOUNDARY, user_name, |u, _| {
            u.user.permissions_boundary = Some(arn.to_string());
            Ok(())
        })
    }

    async fn tag_user(&self, user_name: &str, tags: &BTreeMap<String, String>) -> Result<(), ServiceError> {
        let op = op::TAG_USER;
        self.with_user(op, user_name, |u, _| {
            let mut next = u.user.tags.clone();
            next.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            if !tags_ok(tags) {
                return Err(invalid(op, "Tags: tag alphabet"));
            }
            if next.len() > 50 {
                return Err(ServiceError::QuotaExceeded { op });
            }
            u.user.tags = next;
            Ok(())
        })
    }

    async fn untag_user(&self, user_name: &str, keys: &[String]) -> Result<(), ServiceError> {
        self.with_user(op::UNTAG_USER, user_name, |u, _| {
            for k in keys {
                u.user.tags.remove(k);
            }
            Ok(())
        })
    }

    async fn account_users(&self) -> Result<Vec<(IamUser, Vec<String>)>, ServiceError> {
        let op = op::GET_ACCOUNT_AUTHORIZATION_DETAILS;
        let out: Vec<(IamUser, Vec<String>)> = {
            let mut s = self.enter(op)?;
            let out: Vec<_> = s.users.values().map(|u| (u.user.clone(), u.groups.iter().cloned().collect())).collect();
            s.calls.further_pages(op, out.len(), AUTHORIZATION_DETAILS_PAGE);
            out
        };
        self.quota.pages(op, out.len(), AUTHORIZATION_DETAILS_PAGE).await?;
        Ok(out)
    }

    async fn groups(&self, user_name: &str) -> Result<Vec<String>, ServiceError> {
        self.with_user(op::LIST_GROUPS_FOR_USER, user_name, |u, _| Ok(u.groups.iter().cloned().collect()))
    }

    async fn add_to_group(&self, user_name: &str, group: &str) -> Result<(), ServiceError> {
        let op = op::ADD_USER_TO_GROUP;
        self.with_user(op, user_name, |u, groups| {
            if !groups.contains(group) {
                return Err(ServiceError::NotFound { op });
            }
            if !u.groups.contains(group) && u.groups.len() >= GROUPS_PER_USER {
                return Err(ServiceError::QuotaExceeded { op });
            }
            u.groups.insert(group.to_string());
            Ok(())
        })
    }

    async fn remove_from_group(&self, user_name: &str, group: &str) -> Result<(), ServiceError> {
        let op = op::REMOVE_USER_FROM_GROUP;
        self.with_user(
            op,
            user_name,
            |u, _| if u.groups.remove(group) { Ok(()) } else { Err(ServiceError::NotFound { op }) },
        )
    }

    async fn delete_user(&self, user_name: &str) -> Result<bool, ServiceError> {
        let op = op::DELETE_USER;
        let mut s = self.enter(op)?;
        let key = user_name.to_lowercase();
        match s.users.get(&key) {
            None => Ok(false),
            // As IAM: DeleteConflict while the user still has groups, a password or keys.
            Some(u) if !u.groups.is_empty() || u.login_profile || !u.access_keys.is_empty() => {
                Err(ServiceError::Validation { op, message: "DeleteConflict: the user has attachments".into() })
            }
            Some(_) => Ok(s.users.remove(&key).is_some()),
        }
    }

    async fn policy_exists(&self, arn: &str) -> Result<bool, ServiceError> {
        Ok(self.enter(op::GET_POLICY)?.policies.contains(arn))
    }

    async fn group_exists(&self, group: &str) -> Result<bool, ServiceError> {
        Ok(self.enter(op::GET_GROUP)?.groups.contains(group))
    }

    async fn delete_login_profile(&self, user_name: &str) -> Result<bool, ServiceError> {
        self.with_user(op::DELETE_LOGIN_PROFILE, user_name, |u, _| Ok(std::mem::take(&mut u.login_profile)))
    }

    async fn has_login_profile(&self, user_name: &str) -> Result<bool, ServiceError> {
        self.with_user(op::GET_LOGIN_PROFILE, user_name, |u, _| Ok(u.login_profile))
    }

    async fn access_keys(&self, user_name: &str) -> Result<Vec<AccessKey>, ServiceError> {
        self.with_user(op::LIST_ACCESS_KEYS, user_name, |u, _| Ok(u.access_keys.clone()))
    }

    async fn deactivate_access_key(&self, user_name: &str, access_key_id: &str) -> Result<(), ServiceError> {
        let op = op::UPDATE_ACCESS_KEY;
        self.with_user(op, user_name, |u, _| {
            match u.access_keys.iter_mut().find(|k| k.access_key_id == access_key_id) {
                Some(k) => {
                    k.status = "Inactive".to_string();
                    Ok(())
                }
                None => Err(ServiceError::NotFound { op }),
            }
        })
    }

    async fn other_credentials(&self, user_name: &str) -> Result<Vec<OtherCredential>, ServiceError> {
        // Three list calls, as the service needs.
        for op in [op::LIST_SSH_PUBLIC_KEYS, op::LIST_SERVICE_SPECIFIC_CREDENTIALS] {
            self.with_user(op, user_name, |_, _| Ok(()))?;
        }
        self.with_user(op::LIST_SIGNING_CERTIFICATES, user_name, |u, _| Ok(u.other_credentials.clone()))
    }

    async fn deactivate_credential(&self, user_name: &str, credential: &OtherCredential) -> Result<(), ServiceError> {
        let op = credential.kind.update_op();
        self.with_user(op, user_name, |u, _| {
            match u.other_credentials.iter_mut().find(|c| c.kind == credential.kind && c.id == credential.id) {
                Some(c) => {
                    c.active = false;
                    Ok(())
                }
                None => Err(ServiceError::NotFound { op }),
            }
        })
    }
}
