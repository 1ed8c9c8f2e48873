//! The IAM users target (for organisations that still need IAM users): the user name, path and
//! tags derived from the person by documented rules, the pure planner, and the converge step
//! through the `IamUsers` port.
//!
//! Ownership is a tag: every user jml-sync creates carries `jml-sync:external-id` (the person's
//! ExternalId) and `jml-sync:managed-by`. A user of that name without this person's tag is never
//! taken over. IAM user names are unique case-insensitively, so the name is claimed in the ledger
//! in lower case before CreateUser, and a user found under another capitalisation is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::port::{CredentialKind, IamNewUser, IamUser, IamUsers, OtherCredential, ServiceError};
use jml_core::contract::{Change, EventKind, ExternalId, HrEvent, Profile};
use jml_core::engine::Decision;
use jml_core::engine::{Ctx, Outcome, SyncError, Target};
use jml_core::ledger::{Ledger, PersonRecord, PersonStatus};

/// The ledger target name of iam-sync.
pub const IAM_TARGET: &str = "iam-users";
/// `userNameType`: 1 to 64 of `[\w+=,.@-]`.
pub const MAX_USER_NAME: usize = 64;
/// `pathType`: at most 512.
pub const MAX_PATH: usize = 512;
pub const TAG_EXTERNAL_ID: &str = "jml-sync:external-id";
pub const TAG_MANAGED_BY: &str = "jml-sync:managed-by";
pub const TAG_STATUS: &str = "jml-sync:status";
pub const TAG_DISABLED_AT: &str = "jml-sync:disabled-at";
pub const MANAGED_BY: &str = "jml-sync";

/// The IAM user name of a person: their Identity Store userName transliterated to ASCII and
/// lower-cased, every character outside `[a-z0-9_+=,.@-]` replaced by `-`. Lower case keeps
/// IAM's case-insensitive uniqueness from ever surprising us. `Err`: the rule it breaks.
pub fn user_name(source: &str) -> Result<String, String> {
    let ascii = deunicode::deunicode(source).to_lowercase();
    let name: String =
        ascii.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).collect();
    if name.is_empty() || name.len() > MAX_USER_NAME {
        return Err(format!(
            "person.userName: the derived IAM user name is {} characters; IAM allows 1 to {MAX_USER_NAME} ([\\w+=,.@-]+)",
            name.len()
        ));
    }
    Ok(name)
}

/// The IAM path of a person: `prefix` + their department as a slug + `/` (`/jml/platform-engineering/`);
/// no department: `prefix`. The slug is the department transliterated, lower-cased, with runs of
/// characters outside `[a-z0-9_]` turned into one `-`. Checked against `pathType`.
pub fn path(prefix: &str, department: Option<&str>) -> Result<String, String> {
    let slug = department.map(|d| {
        let ascii = deunicode::deunicode(d).to_lowercase();
        let mut out = String::new();
        for c in ascii.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_matches('-').to_string()
    });
    let path = match slug.filter(|s| !s.is_empty()) {
        Some(s) => format!("{prefix}{s}/"),
        None => prefix.to_string(),
    };
    check_path(&path)?;
    Ok(path)
}

/// `pathType`: `/` or `/` + printable ASCII (`\u0021`-`\u007E`) + `/`, at most 512.
pub fn check_path(p: &str) -> Result<(), String> {
    let ok = p == "/"
        || (p.len() >= 3 && p.starts_with('/') && p.ends_with('/') && p.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    if !ok || p.len() > MAX_PATH {
        return Err(format!(
            "the IAM path must be / or /…/ of printable ASCII, at most {MAX_PATH} characters (pathType)"
        ));
    }
    Ok(())
}

/// The tag alphabet characters the external-id tag keeps as they are: letters (`\p{L}`), numbers
/// (`\p{N}`), the ASCII space and `_ . : + - @` (IAM `tagValueType`:
/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`; `/` and `=` are this encoding's own). Combining marks are not
/// letters (`\p{M}`): IAM refuses them, so they are written as `=XX` too.
static TAG_KEPT: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{N} _.:+\-@]$").expect("static regex compiles"));

/// A tag value's bound (`tagValueType` max 256: Java string length, UTF-16 units).
const TAG_VALUE_MAX: usize = 256;

/// The `jml-sync:external-id` tag value: `issuer/id`, each character outside the kept alphabet
/// (see `TAG_KEPT`) written as `=XX` per UTF-8 byte; longer than a tag value's 256 UTF-16
/// units: `sha256:` + the key's digest (one per person; [`external_id_of_tag`] gives `None`,
/// and reconciliation finds the person through the snapshot or the ledger).
pub fn external_id_tag(id: &ExternalId) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        let mut buf = [0u8; 4];
        for c in s.chars() {
            if TAG_KEPT.is_match(c.encode_utf8(&mut buf)) {
                out.push(c);
            } else {
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("={b:02X}"));
                }
            }
        }
        out
    }
    let value = format!("{}/{}", enc(id.issuer.as_str()), enc(id.id.as_str()));
    if value.encode_utf16().count() <= TAG_VALUE_MAX {
        return value;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.key().as_bytes());
    format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The person a plain external-id tag names: the inverse of [`external_id_tag`], strict (only
/// the exact value `external_id_tag` writes reads back; a hashed tag, or anything else, is `None`).
pub fn external_id_of_tag(value: &str) -> Option<ExternalId> {
    fn dec(s: &str) -> Option<String> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    }
    let (issuer, id) = value.split_once('/')?;
    let person = ExternalId {
        issuer: jml_core::contract::ExternalIdPart::parse(&dec(issuer)?).ok()?,
        id: jml_core::contract::ExternalIdPart::parse(&dec(id)?).ok()?,
    };
    (external_id_tag(&person) == value).then_some(person)
}

/// Which IAM groups a person belongs in: the deployment's map of HR group -> IAM groups
/// (`IAM_GROUP_MAP`). Its values are the managed IAM groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMap(pub BTreeMap<String, BTreeSet<String>>);

impl GroupMap {
    /// Parses `{"hr-group": ["IamGroup", ...]}`; IAM group names are checked (`groupNameType`).
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, BTreeSet<String>> = serde_json::from_str(json)
            .map_err(|_| "must be a JSON object of HR group -> [IAM group names]".to_string())?;
        for groups in raw.values() {
            for g in groups {
                let ok = !g.is_empty()
                    && g.len() <= 128
                    && g.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
                if !ok {
                    return Err("IAM group names must be 1 to 128 of [\\w+=,.@-] (groupNameType)".to_string());
                }
            }
        }
        Ok(Self(raw))
    }

    pub fn desired(&self, profile: &Profile) -> BTreeSet<String> {
        profile.groups.iter().filter_map(|g| self.0.get(g.as_str())).flatten().cloned().collect()
    }

    pub fn managed(&self) -> BTreeSet<String> {
        self.0.values().flatten().cloned().collect()
    }
}

/// What the person's IAM user should look like (joiner, mover, rehire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamDesired {
    pub path: String,
    pub permissions_boundary: String,
    pub tags: BTreeMap<String, String>,
    pub groups: BTreeSet<String>,
}

/// One step, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IamAction {
    UpdatePath { path: String },
    PutPermissionsBoundary { arn: String },
    Tag { tags: BTreeMap<String, String> },
    Untag { keys: Vec<String> },
    RemoveFromGroup { group: String },
    AddToGroup { group: String },
    DeleteLoginProfile,
    DeactivateAccessKey { access_key_id: String },
    DeactivateCredential { credential: OtherCredential },
}

impl IamAction {
    pub fn describe(&self) -> String {
        match self {
            Self::UpdatePath { path } => format!("UpdateUser NewPath={path}"),
            Self::PutPermissionsBoundary { .. } => "PutUserPermissionsBoundary".into(),
            Self::Tag { tags } => format!("TagUser {}", tags.keys().cloned().collect::<Vec<_>>().join(",")),
            Self::Untag { keys } => format!("UntagUser {}", keys.join(",")),
            Self::RemoveFromGroup { group } => format!("RemoveUserFromGroup {group}"),
            Self::AddToGroup { group } => format!("AddUserToGroup {group}"),
            Self::DeleteLoginProfile => "DeleteLoginProfile".into(),
            Self::DeactivateAccessKey { access_key_id } => format!("UpdateAccessKey {access_key_id} Inactive"),
            Self::DeactivateCredential { credential } => {
                let call = match credential.kind {
                    CredentialKind::SshPublicKey => "UpdateSSHPublicKey",
                    CredentialKind::ServiceSpecific => "UpdateServiceSpecificCredential",
                    CredentialKind::SigningCertificate => "UpdateSigningCertificate",
                };
                format!("{call} {} Inactive", credential.id)
            }
        }
    }
}

/// The tags of an active user of this person.
pub fn active_tags(id: &ExternalId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_EXTERNAL_ID.to_string(), external_id_tag(id)),
        (TAG_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (TAG_STATUS.to_string(), "active".to_string()),
    ])
}

/// Plans an existing user of this person towards `desired`: path, boundary, tags, then the
/// managed groups (removals first). Groups outside `managed` are left alone.
pub fn plan_update(
    desired: &IamDesired,
    user: &IamUser,
    groups: &BTreeSet<String>,
    managed: &BTreeSet<String>,
) -> Vec<IamAction> {
    let mut actions = Vec::new();
    if user.path != desired.path {
        actions.push(IamAction::UpdatePath { path: desired.path.clone() });
    }
    if user.permissions_boundary.as_deref() != Some(desired.permissions_boundary.as_str()) {
        actions.push(IamAction::PutPermissionsBoundary { arn: desired.permissions_boundary.clone() });
    }
    let tags: BTreeMap<String, String> = desired
        .tags
        .iter()
        .filter(|(k, v)| user.tags.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !tags.is_empty() {
        actions.push(IamAction::Tag { tags });
    }
    if user.tags.contains_key(TAG_DISABLED_AT) {
        actions.push(IamAction::Untag { keys: vec![TAG_DISABLED_AT.to_string()] });
    }
    for g in groups.intersection(managed).filter(|g| !desired.groups.contains(*g)) {
        actions.push(IamAction::RemoveFromGroup { group: g.clone() });
    }
    for g in desired.groups.difference(groups) {
        actions.push(IamAction::AddToGroup { group: g.clone() });
    }
    actions
}

/// Plans a leaver's lock-down: no console password, every access key, SSH public key,
/// service-specific credential and signing certificate inactive, out of every group (managed or
/// not), tagged disabled. The user itself stays (audit needs the principal).
pub fn plan_lockdown(
    active_keys: &[String],
    others: &[OtherCredential],
    groups: &BTreeSet<String>,
    user: &IamUser,
    disabled_at: &str,
) -> Vec<IamAction> {
    // The disabled tag first: a lock-down interrupted half way is still marked (and redone).
    let mut actions = Vec::new();
    if user.tags.get(TAG_STATUS).map(String::as_str) != Some("disabled") {
        actions.push(IamAction::Tag {
            tags: BTreeMap::from([
                (TAG_STATUS.to_string(), "disabled".to_string()),
                (TAG_DISABLED_AT.to_string(), disabled_at.to_string()),
            ]),
        });
    }
    actions.push(IamAction::DeleteLoginProfile);
    actions.extend(active_keys.iter().map(|k| IamAction::DeactivateAccessKey { access_key_id: k.clone() }));
    actions
        .extend(others.iter().filter(|c| c.active).map(|c| IamAction::DeactivateCredential { credential: c.clone() }));
    actions.extend(groups.iter().map(|g| IamAction::RemoveFromGroup { group: g.clone() }));
    actions
}

/// A lock-down step whose target vanished between List and Update is already revoked: the
/// lock-down goes on with the rest instead of stopping half way.
fn gone_is_done(r: Result<bool, ServiceError>) -> Result<bool, ServiceError> {
    match r {
        Err(ServiceError::NotFound { .. }) => Ok(false),
        other => other,
    }
}

/// Whose user is this?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    AnotherPerson,
    Unmanaged,
}

pub fn ownership(user: &IamUser, id: &ExternalId) -> Ownership {
    match user.tags.get(TAG_EXTERNAL_ID) {
        Some(v) if *v == external_id_tag(id) => Ownership::Ours,
        Some(_) => Ownership::AnotherPerson,
        None => Ownership::Unmanaged,
    }
}

/// Refuses a user that is not this person's (never taken over; parked).
fn refuse(user: &IamUser, wanted: &str, id: &ExternalId) -> Result<(), SyncError> {
    let case_only = user.user_name != wanted && user.user_name.eq_ignore_ascii_case(wanted);
    match (ownership(user, id), case_only) {
        (Ownership::Ours, _) => Ok(()),
        (_, true) => Err(SyncError::permanent(
            "IamUserNameCaseCollision",
            "person.userName: an IAM user exists whose name differs from the derived one only by case (IAM names are case-insensitive) and it is not this person's; refusing",
        )),
        (Ownership::AnotherPerson, false) => Err(SyncError::permanent(
            "IamUserOwnedByAnother",
            format!(
                "person.userName: the IAM user is tagged {TAG_EXTERNAL_ID} of another person; refusing to take it over"
            ),
        )),
        (Ownership::Unmanaged, false) => Err(SyncError::permanent(
            "IamUserNotManaged",
            format!(
                "person.userName: an IAM user of this name exists without the {TAG_EXTERNAL_ID} tag (EntityAlreadyExists); refusing to take it over"
            ),
        )),
    }
}

/// Retries IAM's transient answers in place: ConcurrentModification and throttling (on top of the
/// SDK's own retries), and NoSuchEntity while a just-created user propagates (IAM is eventually
/// consistent). 4 attempts, 100 ms doubling; then the error goes to the queue's redelivery.
pub async fn retrying<T, F, Fut>(retry_not_found: bool, mut call: F) -> Result<T, ServiceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ServiceError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e)
                if attempt < 4
                    && (e.is_retryable() || (retry_not_found && matches!(e, ServiceError::NotFound { .. }))) =>
            {
                tracing::info!(decision = "retry-in-place", error = %e, attempt, "IAM transient answer");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The IAM target.
pub struct IamSync {
    service: Arc<dyn IamUsers>,
    ledger: Arc<dyn Ledger>,
    groups: GroupMap,
    path_prefix: String,
    permissions_boundary: String,
}

impl std::fmt::Debug for IamSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamSync").field("path_prefix", &self.path_prefix).finish_non_exhaustive()
    }
}

impl IamSync {
    pub fn new(
        service: Arc<dyn IamUsers>,
        ledger: Arc<dyn Ledger>,
        groups: GroupMap,
        path_prefix: String,
        permissions_boundary: String,
    ) -> Self {
        Self { service, ledger, groups, path_prefix, permissions_boundary }
    }

    fn desired(&self, event: &HrEvent, profile: &Profile) -> Result<IamDesired, SyncError> {
        let path = path(&self.path_prefix, profile.enterprise.department.as_ref().map(|d| d.as_str()))
            .map_err(|rule| SyncError::permanent("IamPath", format!("person.enterprise.department: {rule}")))?;
        Ok(IamDesired {
            path,
            permissions_boundary: self.permissions_boundary.clone(),
            tags: active_tags(&event.external_id),
            groups: self.groups.desired(profile),
        })
    }

    async fn execute(&self, name: &str, actions: &[IamAction], just_created: bool) -> Result<Vec<String>, SyncError> {
        let s = &self.service;
        let mut done = Vec::new();
        for a in actions {
            let effective = match a {
                IamAction::UpdatePath { path } => {
                    retrying(just_created, || s.update_user(name, Some(path), None)).await.map(|()| true)
                }
                IamAction::PutPermissionsBoundary { arn } => {
                    retrying(just_created, || s.put_permissions_boundary(name, arn)).await.map(|()| true)
                }
                IamAction::Tag { tags } => retrying(just_created, || s.tag_user(name, tags)).await.map(|()| true),
                IamAction::Untag { keys } => retrying(just_created, || s.untag_user(name, keys)).await.map(|()| true),
                IamAction::RemoveFromGroup { group } => {
                    gone_is_done(retrying(false, || s.remove_from_group(name, group)).await.map(|()| true))
                }
                IamAction::AddToGroup { group } => match retrying(true, || s.add_to_group(name, group)).await {
                    Err(ServiceError::NotFound { .. }) => {
                        return Err(SyncError::permanent(
                            "IamGroupNotFound",
                            format!("IAM_GROUP_MAP: IAM group {group} does not exist (AddUserToGroup: NoSuchEntity)"),
                        ));
                    }
                    other => other.map(|()| true),
                },
                IamAction::DeleteLoginProfile => gone_is_done(retrying(false, || s.delete_login_profile(name)).await),
                IamAction::DeactivateAccessKey { access_key_id } => {
                    gone_is_done(retrying(false, || s.deactivate_access_key(name, access_key_id)).await.map(|()| true))
                }
                IamAction::DeactivateCredential { credential } => {
                    gone_is_done(retrying(false, || s.deactivate_credential(name, credential)).await.map(|()| true))
                }
            };
            if effective.map_err(quota)? {
                done.push(a.describe());
            }
        }
        Ok(done)
    }

    /// Finds this person's user: the ledger's name first, then the derived one. A user of the
    /// derived name that is not ours is refused.
    async fn resolve(
        &self,
        event: &HrEvent,
        record: Option<&PersonRecord>,
        derived: Option<&str>,
    ) -> Result<Option<IamUser>, SyncError> {
        if let Some(known) = record.filter(|r| r.status != PersonStatus::Deleted).and_then(|r| r.user_name.as_deref())
            && let Some(u) = self.service.get_user(known).await?
        {
            if ownership(&u, &event.external_id) == Ownership::Ours {
                return Ok(Some(u));
            }
            if event.kind() == EventKind::Leaver {
                // The user this person was given no longer carries their tag: someone changed it.
                // Never skip a leaver silently: park it, so the DLQ alarm brings an operator.
                return Err(SyncError::permanent(
                    "IamLeaverUserChanged",
                    format!(
                        "the IAM user the ledger records for this person no longer carries their {TAG_EXTERNAL_ID} tag; not locked down automatically: check it, lock it down by hand or restore the tag and redrive"
                    ),
                ));
            }
        }
        let Some(derived) = derived else { return Ok(None) };
        match self.service.get_user(derived).await? {
            Some(u) => refuse(&u, derived, &event.external_id).map(|()| Some(u)),
            None => Ok(None),
        }
    }

    async fn claim(&self, event: &HrEvent, name: &str) -> Result<(), SyncError> {
        let me = event.external_id.key();
        if self.ledger.claim(IAM_TARGET, &name.to_lowercase(), &me).await? != me {
            return Err(SyncError::permanent(
                "IamUserNameClaimedByAnother",
                "person.userName: another person's IAM user has the same derived name (compared case-insensitively); refusing",
            ));
        }
        Ok(())
    }

    async fn converge_profile(
        &self,
        event: &HrEvent,
        profile: &Profile,
        record: Option<&PersonRecord>,
        dry_run: bool,
    ) -> Result<Outcome, SyncError> {
        let kind = event.kind();
        let name = user_name(profile.user_name.as_str()).map_err(|rule| SyncError::permanent("IamUserName", rule))?;
        let desired = self.desired(event, profile)?;
        let mut notes = Vec::new();
        let mut actions = Vec::new();
        let user = self.resolve(event, record, Some(&name)).await?;
        let disabled = user.as_ref().is_some_and(|u| u.tags.get(TAG_STATUS).map(String::as_str) == Some("disabled"));
        if matches!(kind, EventKind::Joiner | EventKind::Mover) && disabled {
            return Ok(outcome(
                Decision::IgnoredForDisabledUser,
                vec![],
                user.map(|u| (u.user_id, u.user_name)),
                dry_run,
                notes,
            ));
        }
        let (user, created) = match user {
            Some(u) if u.user_name != name && !u.user_name.eq_ignore_ascii_case(&name) => {
                // HR renamed the person: rename the IAM user (its UserId and history stay).
                if !dry_run {
                    self.claim(event, &name).await?;
                    if let Some(other) = self.service.get_user(&name).await? {
                        refuse(&other, &name, &event.external_id)?;
                    }
                    retrying(false, || self.service.update_user(&u.user_name, None, Some(&name)))
                        .await
                        .map_err(quota)?;
                }
                actions.push("UpdateUser NewUserName".to_string());
                (IamUser { user_name: name.clone(), ..u }, false)
            }
            Some(u) => (u, false),
            None => {
                let new = IamNewUser {
                    user_name: name.clone(),
                    path: desired.path.clone(),
                    permissions_boundary: desired.permissions_boundary.clone(),
                    tags: desired.tags.clone(),
                };
                let user_id = if dry_run { None } else { self.create(event, &new).await? };
                actions.push(format!("CreateUser Path={}", new.path));
                let user = IamUser {
                    user_name: name.clone(),
                    user_id: user_id.unwrap_or_default(),
                    path: new.path,
                    permissions_boundary: Some(new.permissions_boundary),
                    tags: new.tags,
                };
                (user, true)
            }
        };
        let groups: BTreeSet<String> =
            if created { BTreeSet::new() } else { self.service.groups(&user.user_name).await?.into_iter().collect() };
        let plan = plan_update(&desired, &user, &groups, &self.groups.managed());
        let unmanaged = groups.difference(&self.groups.managed()).count();
        if unmanaged > 0 && kind != EventKind::Leaver {
            notes.push(format!("{unmanaged} IAM group(s) outside IAM_GROUP_MAP left as they are"));
        }
        if dry_run {
            actions.extend(plan.iter().map(IamAction::describe));
        } else {
            actions.extend(self.execute(&user.user_name, &plan, created).await?);
        }
        if kind == EventKind::Rehire {
            notes.push(
                "rehire: groups restored; console password and access keys stay off (new credentials are a human step)"
                    .into(),
            );
        }
        let decision = match (kind, created, actions.is_empty()) {
            (EventKind::Rehire, _, _) => Decision::Rehire,
            (_, true, _) => Decision::Create,
            (_, false, true) => Decision::NoChange,
            (_, false, false) => Decision::Update,
        };
        Ok(outcome(decision, actions, Some((user.user_id, user.user_name)), dry_run, notes))
    }

    /// Claim, then CreateUser. EntityAlreadyExists (a concurrent create, or the name in another
    /// case) is accepted only if the user found is ours.
    async fn create(&self, event: &HrEvent, new: &IamNewUser) -> Result<Option<String>, SyncError> {
        self.claim(event, &new.user_name).await?;
        match retrying(false, || self.service.create_user(new)).await.map_err(quota)? {
            Some(id) => Ok(Some(id)),
            None => match self.service.get_user(&new.user_name).await? {
                Some(u) => refuse(&u, &new.user_name, &event.external_id).map(|()| Some(u.user_id)),
                None => Err(SyncError::permanent(
                    "IamUserNameCaseCollision",
                    "person.userName: CreateUser answered EntityAlreadyExists for a name GetUser cannot find: a user exists under another capitalisation; refusing",
                )),
            },
        }
    }

    /// A leaver's users: the ledger's first (a changed tag parks), then every user of the account
    /// that carries this person's `jml-sync:external-id` tag, whatever its name and path: one
    /// paged GetAccountAuthorizationDetails (Filter User, 1,000 users a page, tags included;
    /// IAM has no tag filter on ListUsers, and ListUsers returns no tags). A user renamed by hand
    /// (UpdateUser NewUserName keeps the UserId, tags, keys and groups), moved to another path,
    /// or created by a parked joiner is found by its tag, where names (record, hint, inventory)
    /// miss it. Also whether the inventory or record knew any name.
    async fn leaver_users(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<(Vec<IamUser>, bool), SyncError> {
        let Change::Leaver { user_name: sent, .. } = &event.change else { return Ok((vec![], false)) };
        let derived = sent.as_ref().and_then(|n| user_name(n.as_str()).ok());
        let mut users: Vec<IamUser> = self.resolve(event, ctx.record, derived.as_deref()).await?.into_iter().collect();
        let inventory = ctx.accounts().await?;
        for (u, _) in self.service.account_users().await? {
            if ownership(&u, &event.external_id) == Ownership::Ours && !users.iter().any(|o| o.user_id == u.user_id) {
                users.push(u);
            }
        }
        Ok((users, !inventory.is_empty() || ctx.record.and_then(|r| r.user_name.as_ref()).is_some()))
    }

    /// What still lets a locked-down user in: a console password, an active access key or other
    /// credential, a group, or a missing disabled tag.
    async fn residual(&self, user: &IamUser) -> Result<Vec<String>, SyncError> {
        let name = &user.user_name;
        let id = &user.user_id;
        let mut left = Vec::new();
        if user.tags.get(TAG_STATUS).map(String::as_str) != Some("disabled") {
            left.push(format!("IAM user {id}: not tagged disabled"));
        }
        if self.service.has_login_profile(name).await? {
            left.push(format!("IAM user {id}: console password"));
        }
        let keys = self.service.access_keys(name).await?.into_iter().filter(|k| k.status == "Active").count();
        if keys > 0 {
            left.push(format!("IAM user {id}: {keys} active access key(s)"));
        }
        let others = self.service.other_credentials(name).await?.into_iter().filter(|c| c.active).count();
        if others > 0 {
            left.push(format!("IAM user {id}: {others} active SSH key(s)/service credential(s)/certificate(s)"));
        }
        let groups = self.service.groups(name).await?.len();
        if groups > 0 {
            left.push(format!("IAM user {id}: in {groups} group(s)"));
        }
        Ok(left)
    }

    async fn lockdown(&self, event: &HrEvent, user: &IamUser, dry_run: bool) -> Result<Vec<String>, SyncError> {
        let keys: Vec<String> = self
            .service
            .access_keys(&user.user_name)
            .await?
            .into_iter()
            .filter(|k| k.status == "Active")
            .map(|k| k.access_key_id)
            .collect();
        let others = self.service.other_credentials(&user.user_name).await?;
        let groups: BTreeSet<String> = self.service.groups(&user.user_name).await?.into_iter().collect();
        let at = event.occurred_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let plan = plan_lockdown(&keys, &others, &groups, user, &at);
        if dry_run {
            return Ok(plan.iter().map(IamAction::describe).collect());
        }
        self.execute(&user.user_name, &plan, false).await
    }
}

/// LimitExceeded (groups per user, users per account) is a permanent, clearly worded error.
fn quota(e: ServiceError) -> SyncError {
    match e {
        ServiceError::QuotaExceeded { op } => SyncError::permanent(
            "IamLimitExceeded",
            format!("{op}: LimitExceeded (an IAM quota such as users per account or groups per user is reached)"),
        ),
        other => SyncError::Service(other),
    }
}

fn outcome(
    decision: Decision,
    actions: Vec<String>,
    user: Option<(String, String)>,
    dry_run: bool,
    notes: Vec<String>,
) -> Outcome {
    let (user_id, user_name) = match user {
        Some((id, name)) => ((!id.is_empty()).then_some(id), Some(name)),
        None => (None, None),
    };
    Outcome { decision, actions, user_id, user_name, resolved_by: "tag", dry_run, notes }
}

#[async_trait]
impl Target for IamSync {
    fn name(&self) -> &'static str {
        IAM_TARGET
    }

    async fn converge(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<Outcome, SyncError> {
        let (record, dry_run) = (ctx.record, ctx.dry_run);
        match &event.change {
            Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p) => {
                let mut out = self.converge_profile(event, p, record, dry_run).await?;
                if ctx.sweep && !dry_run {
                    // After a lost race: a concurrent delivery may have created another user.
                    for name in ctx.accounts().await? {
                        if out.user_name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&name)) {
                            continue;
                        }
                        if let Some(u) = self.service.get_user(&name).await?
                            && ownership(&u, &event.external_id) == Ownership::Ours
                            && out.user_id.as_deref() != Some(u.user_id.as_str())
                        {
                            let done = self.lockdown(event, &u, false).await?;
                            out.actions.extend(done.into_iter().map(|a| format!("sweep: {a}")));
                        }
                    }
                }
                Ok(out)
            }
            Change::Leaver { .. } => {
                let (mut users, known) = self.leaver_users(event, ctx).await?;
                if users.is_empty() {
                    // The inventory knew users, all gone (deleted by hand): nothing left to revoke.
                    let decision = if known { Decision::NoChange } else { Decision::LeaverWithoutAccount };
                    return Ok(outcome(decision, vec![], None, dry_run, vec![]));
                }
                let mut actions = Vec::new();
                for user in &users {
                    actions.extend(self.lockdown(event, user, dry_run).await?);
                }
                let decision = if actions.is_empty() { Decision::NoChange } else { Decision::Disable };
                let user = users.swap_remove(0);
                Ok(outcome(decision, actions, Some((user.user_id, user.user_name)), dry_run, vec![]))
            }
        }
    }

    async fn verify_revoked(&self, leaver: &HrEvent, ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError> {
        let mut left = Vec::new();
        for user in self.leaver_users(leaver, ctx).await?.0 {
            left.extend(self.residual(&user).await?);
        }
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(issuer: &str, id: &str) -> ExternalId {
        let v = serde_json::json!({"issuer": issuer, "id": id});
        let body = serde_json::json!({"eventId": "e", "type": "leaver", "occurredAt": "2026-11-02T09:00:00Z", "person": {"externalId": v}});
        jml_core::contract::event_from_value(&body).unwrap().external_id
    }

    #[test]
    fn user_names_follow_the_iam_pattern() {
        assert_eq!(user_name("Ada.Lovelace").unwrap(), "ada.lovelace");
        assert_eq!(user_name("zoë o'brien").unwrap(), "zoe-o-brien");
        assert_eq!(user_name("ada@example.com").unwrap(), "ada@example.com");
        assert!(user_name(&"a".repeat(65)).unwrap_err().contains("1 to 64"));
    }

    #[test]
    fn paths_come_from_the_department() {
        assert_eq!(path("/jml/", Some("Platform Engineering")).unwrap(), "/jml/platform-engineering/");
        assert_eq!(path("/jml/", Some("R&D / Zürich")).unwrap(), "/jml/r-d-zurich/");
        assert_eq!(path("/jml/", None).unwrap(), "/jml/");
        assert_eq!(path("/jml/", Some("&&")).unwrap(), "/jml/");
        assert!(path("/jml/", Some(&"x".repeat(600))).is_err());
        assert!(check_path("/").is_ok());
        assert!(check_path("jml/").is_err());
        assert!(check_path("/a b/").is_err());
    }

    #[test]
    fn external_id_tags_are_injective_and_in_the_tag_alphabet() {
        assert_eq!(external_id_tag(&ext("workday", "100234")), "workday/100234");
        assert_eq!(external_id_tag(&ext("a/b", "c")), "a=2Fb/c");
        assert_ne!(external_id_tag(&ext("a/b", "c")), external_id_tag(&ext("a", "b/c")));
        assert!(external_id_tag(&ext(&"x".repeat(200), &"y".repeat(200))).starts_with("sha256:"));
        let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c);
        assert!(external_id_tag(&ext("é#%!", "∑")).chars().all(allowed));
        // A combining mark is not a letter for IAM (\p{L}): encoded (Devanagari vowel sign AA).
        assert_eq!(external_id_tag(&ext("\u{0930}\u{093E}", "1")), "\u{0930}=E0=A4=BE/1");
        // 241 characters, but 481 UTF-16 units (IAM counts those): hashed.
        let astral = "\u{1D400}".repeat(120);
        assert!(external_id_tag(&ext(&astral, &astral)).starts_with("sha256:"));
    }

    fn user(path: &str, groups_tags: &[(&str, &str)]) -> IamUser {
        IamUser {
            user_name: "ada".into(),
            user_id: "AIDA1".into(),
            path: path.into(),
            permissions_boundary: Some("arn:aws:iam::1:policy/b".into()),
            tags: groups_tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn updates_touch_only_what_differs_and_only_managed_groups() {
        let id = ext("workday", "1");
        let desired = IamDesired {
            path: "/jml/fin/".into(),
            permissions_boundary: "arn:aws:iam::1:policy/b".into(),
            tags: active_tags(&id),
            groups: BTreeSet::from(["finance".to_string()]),
        };
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let mut u = user("/jml/eng/", &[]);
        u.tags = active_tags(&id);
        let plan = plan_update(&desired, &u, &set(&["engineers", "billing-admins"]), &set(&["engineers", "finance"]));
        assert_eq!(
            plan,
            vec![
                IamAction::UpdatePath { path: "/jml/fin/".into() },
                IamAction::RemoveFromGroup { group: "engineers".into() },
                IamAction::AddToGroup { group: "finance".into() },
            ],
            "billing-admins is not managed: left alone"
        );
        u.path = "/jml/fin/".into();
        assert!(plan_update(&desired, &u, &set(&["finance"]), &set(&["finance"])).is_empty());
    }

    #[test]
    fn a_lockdown_removes_every_credential_and_group() {
        let u = user("/jml/", &[(TAG_STATUS, "active")]);
        let groups = BTreeSet::from(["engineers".to_string(), "unmanaged".to_string()]);
        let others = [
            OtherCredential { kind: CredentialKind::SshPublicKey, id: "APKA1".into(), active: true },
            OtherCredential { kind: CredentialKind::ServiceSpecific, id: "ACCA1".into(), active: false },
            OtherCredential { kind: CredentialKind::SigningCertificate, id: "CERT1".into(), active: true },
        ];
        let plan = plan_lockdown(&["AKIA1".to_string()], &others, &groups, &u, "2026-11-20T17:00:00Z");
        let described: Vec<String> = plan.iter().map(IamAction::describe).collect();
        assert_eq!(
            described,
            [
                "TagUser jml-sync:disabled-at,jml-sync:status",
                "DeleteLoginProfile",
                "UpdateAccessKey AKIA1 Inactive",
                "UpdateSSHPublicKey APKA1 Inactive",
                "UpdateSigningCertificate CERT1 Inactive",
                "RemoveUserFromGroup engineers",
                "RemoveUserFromGroup unmanaged",
            ]
        );
    }

    #[test]
    fn ownership_is_the_external_id_tag() {
        let id = ext("workday", "1");
        let mut u = user("/", &[]);
        assert_eq!(ownership(&u, &id), Ownership::Unmanaged);
        u.tags = active_tags(&ext("workday", "2"));
        assert_eq!(ownership(&u, &id), Ownership::AnotherPerson);
        u.tags = active_tags(&id);
        assert_eq!(ownership(&u, &id), Ownership::Ours);
        let mut bob = user("/", &[]);
        bob.user_name = "Bob".into();
        assert_eq!(refuse(&bob, "bob", &id).unwrap_err().code(), "IamUserNameCaseCollision");
    }
}
