//! iam-sync's pure planner: given the person's users as read from IAM and the desired state, the
//! typed steps ([`Step`]) that converge them, the decision and the status they leave. No I/O:
//! [`crate::target`] reads, calls these, and executes the steps.

use std::collections::{BTreeMap, BTreeSet};

use jml_core::contract::{EventKind, ExternalId};
use jml_core::engine::Decision;
use jml_core::ledger::PersonStatus;

use crate::naming::{TAG_DISABLED_AT, TAG_STATUS, is_disabled};
use crate::port::{AccessKey, CredentialKind, IamNewUser, IamUser, OtherCredential};

/// What the person's IAM user should look like (joiner, mover, rehire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamDesired {
    pub path: String,
    pub permissions_boundary: String,
    pub tags: BTreeMap<String, String>,
    pub groups: BTreeSet<String>,
}

/// One change to an existing user, in execution order.
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

    /// Whether it takes access away: a way in (password, key, credential), a group, or the
    /// lock-down mark. A path or a permissions boundary put back is not counted (it follows the
    /// profile, it is not a revocation HR asked for).
    pub fn revokes(&self) -> bool {
        match self {
            Self::RemoveFromGroup { .. }
            | Self::DeleteLoginProfile
            | Self::DeactivateAccessKey { .. }
            | Self::DeactivateCredential { .. } => true,
            Self::Tag { tags } => tags.get(TAG_STATUS).is_some_and(|s| s == "disabled"),
            Self::UpdatePath { .. }
            | Self::PutPermissionsBoundary { .. }
            | Self::Untag { .. }
            | Self::AddToGroup { .. } => false,
        }
    }
}

/// One write of iam-sync, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Claims the name (in lower case) in the ledger, then CreateUser with path, boundary and
    /// tags. EntityAlreadyExists: the user found is refused unless it is the person's, then
    /// planned again.
    CreateUser(IamNewUser),
    /// HR renamed the person: claims the new name, refuses a user of the new name that is not
    /// the person's, then UpdateUser NewUserName (same UserId, same history).
    RenameUser { from: String, to: String },
    /// A change to the person's user (under the name it has once the steps before it ran).
    Change { user_name: String, action: IamAction },
    /// After a lost ledger race: locks down another user of the person (one a concurrent
    /// delivery created under another name).
    Sweep { user_name: String, action: IamAction },
}

impl jml_core::target::Step for Step {
    fn describe(&self) -> String {
        match self {
            Self::CreateUser(new) => format!("CreateUser Path={}", new.path),
            Self::RenameUser { .. } => "UpdateUser NewUserName".to_string(),
            Self::Change { action, .. } => action.describe(),
            Self::Sweep { action, .. } => format!("sweep: {}", action.describe()),
        }
    }

    fn revokes(&self) -> bool {
        match self {
            Self::CreateUser(_) | Self::RenameUser { .. } => false,
            Self::Change { action, .. } | Self::Sweep { action, .. } => action.revokes(),
        }
    }
}

/// The accounts a plan resolved: whose they are, what they are left as, and the users it locks
/// down (a leaver's users, which its read-back reads again; or a sweep's).
#[derive(Clone, Debug)]
pub struct IamAccounts {
    /// The person (a user found at apply time is judged by this person's tag).
    pub person: ExternalId,
    /// The person's status on IAM once the plan is applied.
    pub status: PersonStatus,
    /// The users the plan locks down, as they were read.
    pub locked_down: Vec<IamUser>,
}

/// One user of the person as read from IAM, with what a lock-down looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserState {
    pub user: IamUser,
    pub access_keys: Vec<AccessKey>,
    pub others: Vec<OtherCredential>,
    pub groups: BTreeSet<String>,
}

/// What the planner decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub decision: Decision,
    pub steps: Vec<Step>,
    /// The person's user once the steps ran (a user to be created has no id yet: empty).
    pub user: Option<IamUser>,
    /// The person's status on IAM once the steps ran.
    pub status: PersonStatus,
    /// Non-fatal observations, free of personal data.
    pub notes: Vec<String>,
}

/// A joiner or mover for a user tagged disabled is ignored: only a rehire restores access.
pub fn ignored(kind: EventKind, user: &IamUser) -> bool {
    matches!(kind, EventKind::Joiner | EventKind::Mover) && is_disabled(user)
}

/// Plans a joiner, mover or rehire. `found`: the person's user (resolved by the ledger's name,
/// then the derived `name`) and its groups, `None` when there is none. No user: CreateUser, then
/// the desired groups. A user under another name: renamed (a user under the same name in
/// another case is kept as it is). Then the user is updated towards `desired`
/// ([`plan_update`]).
pub fn plan_profile(
    kind: EventKind,
    name: &str,
    desired: &IamDesired,
    found: Option<(&IamUser, &BTreeSet<String>)>,
    managed: &BTreeSet<String>,
) -> Planned {
    let mut notes = Vec::new();
    if let Some((user, _)) = found.filter(|(u, _)| ignored(kind, u)) {
        let (decision, user) = (Decision::IgnoredForDisabledUser, Some(user.clone()));
        return Planned { decision, steps: vec![], user, status: PersonStatus::Disabled, notes };
    }
    let no_groups = BTreeSet::new();
    let mut steps = Vec::new();
    let (user, groups, created) = match found {
        Some((u, groups)) if u.user_name != name && !u.user_name.eq_ignore_ascii_case(name) => {
            steps.push(Step::RenameUser { from: u.user_name.clone(), to: name.to_string() });
            (IamUser { user_name: name.to_string(), ..u.clone() }, groups, false)
        }
        Some((u, groups)) => (u.clone(), groups, false),
        None => {
            let new = IamNewUser {
                user_name: name.to_string(),
                path: desired.path.clone(),
                permissions_boundary: desired.permissions_boundary.clone(),
                tags: desired.tags.clone(),
            };
            let user = IamUser {
                user_name: new.user_name.clone(),
                user_id: String::new(),
                path: new.path.clone(),
                permissions_boundary: Some(new.permissions_boundary.clone()),
                tags: new.tags.clone(),
            };
            steps.push(Step::CreateUser(new));
            (user, &no_groups, true)
        }
    };
    let update = plan_update(desired, &user, groups, managed);
    steps.extend(update.into_iter().map(|action| Step::Change { user_name: user.user_name.clone(), action }));
    let unmanaged = groups.difference(managed).count();
    if unmanaged > 0 {
        notes.push(format!("{unmanaged} IAM group(s) outside IAM_GROUP_MAP left as they are"));
    }
    if kind == EventKind::Rehire {
        notes.push(
            "rehire: groups restored; console password and access keys stay off (new credentials are a human step)"
                .into(),
        );
    }
    let decision = profile_decision(kind, created, !steps.is_empty());
    Planned { decision, steps, user: Some(user), status: PersonStatus::Active, notes }
}

/// A joiner's, mover's or rehire's decision: `changed` when any write (besides a sweep) is made.
fn profile_decision(kind: EventKind, created: bool, changed: bool) -> Decision {
    match (kind, created, changed) {
        (EventKind::Rehire, _, _) => Decision::Rehire,
        (_, true, _) => Decision::Create,
        (_, false, false) => Decision::NoChange,
        (_, false, true) => Decision::Update,
    }
}

/// Plans a leaver: every user of the person locked down ([`lockdown`]), in the order found (the
/// first is the one reported). No user: nothing to revoke (`known`: the ledger knew a user of
/// the person, all gone since).
pub fn plan_leaver(users: &[UserState], known: bool, disabled_at: &str) -> Planned {
    let Some(first) = users.first() else {
        let decision = if known { Decision::NoChange } else { Decision::LeaverWithoutAccount };
        return Planned { decision, steps: vec![], user: None, status: PersonStatus::Deleted, notes: vec![] };
    };
    let steps: Vec<Step> = users
        .iter()
        .flat_map(|u| {
            lockdown(u, disabled_at)
                .into_iter()
                .map(|action| Step::Change { user_name: u.user.user_name.clone(), action })
        })
        .collect();
    let decision = if steps.is_empty() { Decision::NoChange } else { Decision::Disable };
    Planned { decision, steps, user: Some(first.user.clone()), status: PersonStatus::Disabled, notes: vec![] }
}

/// The lock-down of the other users of the person a sweep found (after a lost ledger race).
pub fn plan_sweep(users: &[UserState], disabled_at: &str) -> Vec<Step> {
    users
        .iter()
        .flat_map(|u| {
            lockdown(u, disabled_at)
                .into_iter()
                .map(|action| Step::Sweep { user_name: u.user.user_name.clone(), action })
        })
        .collect()
}

/// The decision an applied plan reports: the planned one, judged again on what was effective
/// (`changed`: a write besides a sweep took effect; a password already gone, a group or key
/// that vanished meanwhile did not). An update or a lock-down that changed nothing is
/// `NoChange`; a create and a rehire stay what they are.
pub fn applied_decision(planned: Decision, changed: bool) -> Decision {
    match planned {
        Decision::Update | Decision::NoChange if !changed => Decision::NoChange,
        Decision::Update | Decision::NoChange => Decision::Update,
        Decision::Disable if !changed => Decision::NoChange,
        other => other,
    }
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

/// [`plan_lockdown`] of one user as read: its active access keys, other credentials and groups.
pub fn lockdown(u: &UserState, disabled_at: &str) -> Vec<IamAction> {
    let keys: Vec<String> =
        u.access_keys.iter().filter(|k| k.status == "Active").map(|k| k.access_key_id.clone()).collect();
    plan_lockdown(&keys, &u.others, &u.groups, &u.user, disabled_at)
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
    if !is_disabled(user) {
        actions.push(IamAction::Tag {
            tags: BTreeMap::from([
                (TAG_STATUS.to_string(), "disabled".to_string()),
                (TAG_DISABLED_AT.to_string(), disabled_at.to_string()),
            ]),
        });
    }
    // GetLoginProfile is not read before: DeleteLoginProfile answers whether there was one.
    actions.push(IamAction::DeleteLoginProfile);
    actions.extend(active_keys.iter().map(|k| IamAction::DeactivateAccessKey { access_key_id: k.clone() }));
    actions
        .extend(others.iter().filter(|c| c.active).map(|c| IamAction::DeactivateCredential { credential: c.clone() }));
    actions.extend(groups.iter().map(|g| IamAction::RemoveFromGroup { group: g.clone() }));
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{Ownership, active_tags, ownership, refuse};
    use jml_core::target::Step as _;
    use proptest::prelude::*;

    fn ext(issuer: &str, id: &str) -> ExternalId {
        let v = serde_json::json!({"issuer": issuer, "id": id});
        let body = serde_json::json!({"eventId": "e", "type": "leaver", "occurredAt": "2026-11-02T09:00:00Z", "person": {"externalId": v}});
        jml_core::contract::event_from_value(&body).unwrap().external_id
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

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn desired(id: &ExternalId, groups: &[&str]) -> IamDesired {
        IamDesired {
            path: "/jml/fin/".into(),
            permissions_boundary: "arn:aws:iam::1:policy/b".into(),
            tags: active_tags(id),
            groups: set(groups),
        }
    }

    #[test]
    fn updates_touch_only_what_differs_and_only_managed_groups() {
        let id = ext("workday", "1");
        let desired = desired(&id, &["finance"]);
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
        let groups = set(&["engineers", "unmanaged"]);
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
        assert!(plan.iter().all(IamAction::revokes), "every lock-down step takes access away");
    }

    #[test]
    fn a_joiner_without_a_user_creates_it_then_adds_its_groups() {
        let id = ext("workday", "1");
        let planned = plan_profile(EventKind::Joiner, "ada", &desired(&id, &["a", "b"]), None, &set(&["a", "b"]));
        let described: Vec<String> = planned.steps.iter().map(|s| s.describe()).collect();
        assert_eq!(described, ["CreateUser Path=/jml/fin/", "AddUserToGroup a", "AddUserToGroup b"]);
        assert_eq!((planned.decision, planned.status), (Decision::Create, PersonStatus::Active));
        assert!(!planned.steps.iter().any(|s| s.revokes()));
        assert_eq!(planned.user.map(|u| u.user_id), Some(String::new()), "the id is known only after CreateUser");
    }

    #[test]
    fn a_renamed_person_renames_the_user_and_changes_it_under_the_new_name() {
        let id = ext("workday", "1");
        let mut u = user("/jml/fin/", &[]);
        u.tags = active_tags(&id);
        let groups = set(&["a", "outside"]);
        let planned =
            plan_profile(EventKind::Mover, "ada.b", &desired(&id, &["b"]), Some((&u, &groups)), &set(&["a", "b"]));
        assert_eq!(
            planned.steps,
            vec![
                Step::RenameUser { from: "ada".into(), to: "ada.b".into() },
                Step::Change { user_name: "ada.b".into(), action: IamAction::RemoveFromGroup { group: "a".into() } },
                Step::Change { user_name: "ada.b".into(), action: IamAction::AddToGroup { group: "b".into() } },
            ]
        );
        assert_eq!(planned.decision, Decision::Update);
        assert_eq!(planned.notes, ["1 IAM group(s) outside IAM_GROUP_MAP left as they are"]);
        // Another capitalisation of the same name is not a rename.
        let planned =
            plan_profile(EventKind::Mover, "ADA", &desired(&id, &["a"]), Some((&u, &set(&["a"]))), &set(&["a"]));
        assert_eq!((planned.decision, planned.steps), (Decision::NoChange, vec![]));
    }

    #[test]
    fn a_joiner_or_mover_for_a_disabled_user_is_ignored_a_rehire_restores_it() {
        let id = ext("workday", "1");
        let mut u = user("/jml/fin/", &[]);
        u.tags = active_tags(&id);
        u.tags.insert(TAG_STATUS.into(), "disabled".into());
        u.tags.insert(TAG_DISABLED_AT.into(), "2026-11-20T17:00:00Z".into());
        let none = BTreeSet::new();
        let ignored = plan_profile(EventKind::Mover, "ada", &desired(&id, &["a"]), Some((&u, &none)), &set(&["a"]));
        assert_eq!((ignored.decision, ignored.status), (Decision::IgnoredForDisabledUser, PersonStatus::Disabled));
        assert!(ignored.steps.is_empty());
        let rehire = plan_profile(EventKind::Rehire, "ada", &desired(&id, &["a"]), Some((&u, &none)), &set(&["a"]));
        let described: Vec<String> = rehire.steps.iter().map(|s| s.describe()).collect();
        assert_eq!(described, ["TagUser jml-sync:status", "UntagUser jml-sync:disabled-at", "AddUserToGroup a"]);
        assert_eq!((rehire.decision, rehire.status), (Decision::Rehire, PersonStatus::Active));
    }

    #[test]
    fn a_leaver_locks_down_every_user_and_without_one_revokes_nothing() {
        let state = |name: &str| UserState {
            user: IamUser { user_name: name.into(), ..user("/jml/", &[]) },
            access_keys: vec![AccessKey { access_key_id: "AKIA1".into(), status: "Inactive".into() }],
            others: vec![],
            groups: set(&["g"]),
        };
        let planned = plan_leaver(&[state("ada"), state("ada.copy")], true, "2026-11-20T17:00:00Z");
        assert_eq!((planned.decision, planned.status), (Decision::Disable, PersonStatus::Disabled));
        assert_eq!(planned.steps.len(), 6, "tag, password, group: each user");
        assert_eq!(planned.user.map(|u| u.user_name).as_deref(), Some("ada"));
        assert!(planned.steps.iter().all(|s| s.revokes()));
        let none = plan_leaver(&[], true, "x");
        assert_eq!((none.decision, none.status, none.steps), (Decision::NoChange, PersonStatus::Deleted, vec![]));
        assert_eq!(plan_leaver(&[], false, "x").decision, Decision::LeaverWithoutAccount);
        let sweep: Vec<String> = plan_sweep(&[state("other")], "x").iter().map(|s| s.describe()).collect();
        assert_eq!(sweep[0], "sweep: TagUser jml-sync:disabled-at,jml-sync:status");
    }

    #[test]
    fn an_applied_decision_is_judged_on_what_took_effect() {
        assert_eq!(applied_decision(Decision::Disable, false), Decision::NoChange);
        assert_eq!(applied_decision(Decision::Disable, true), Decision::Disable);
        assert_eq!(applied_decision(Decision::Update, false), Decision::NoChange);
        assert_eq!(applied_decision(Decision::NoChange, true), Decision::Update);
        assert_eq!(applied_decision(Decision::Create, false), Decision::Create);
        assert_eq!(applied_decision(Decision::Rehire, false), Decision::Rehire);
        assert_eq!(applied_decision(Decision::LeaverWithoutAccount, false), Decision::LeaverWithoutAccount);
        assert_eq!(applied_decision(Decision::IgnoredForDisabledUser, true), Decision::IgnoredForDisabledUser);
    }

    #[test]
    fn refusals_name_why() {
        let id = ext("workday", "1");
        let mut bob = user("/", &[]);
        bob.user_name = "Bob".into();
        assert_eq!(ownership(&bob, &id), Ownership::Unmanaged);
        assert_eq!(refuse(&bob, "bob", &id).unwrap_err().code(), "IamUserNameCaseCollision");
        assert_eq!(refuse(&bob, "Bob", &id).unwrap_err().code(), "IamUserNotManaged");
        bob.tags = active_tags(&ext("workday", "2"));
        assert_eq!(refuse(&bob, "Bob", &id).unwrap_err().code(), "IamUserOwnedByAnother");
        bob.tags = active_tags(&id);
        assert!(refuse(&bob, "bob", &id).is_ok());
    }

    /// The user and groups after `actions` (as IAM would leave them).
    fn applied(user: &IamUser, groups: &BTreeSet<String>, actions: &[IamAction]) -> (IamUser, BTreeSet<String>) {
        let (mut user, mut groups) = (user.clone(), groups.clone());
        for a in actions {
            match a {
                IamAction::UpdatePath { path } => user.path = path.clone(),
                IamAction::PutPermissionsBoundary { arn } => user.permissions_boundary = Some(arn.clone()),
                IamAction::Tag { tags } => user.tags.extend(tags.clone()),
                IamAction::Untag { keys } => user.tags.retain(|k, _| !keys.contains(k)),
                IamAction::RemoveFromGroup { group } => {
                    groups.remove(group);
                }
                IamAction::AddToGroup { group } => {
                    groups.insert(group.clone());
                }
                IamAction::DeleteLoginProfile
                | IamAction::DeactivateAccessKey { .. }
                | IamAction::DeactivateCredential { .. } => {}
            }
        }
        (user, groups)
    }

    fn names() -> impl Strategy<Value = BTreeSet<String>> {
        proptest::collection::btree_set(
            prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(String::from),
            0..5,
        )
    }

    proptest! {
        /// An update converges in one go: applied, nothing is left to plan; groups outside the
        /// managed ones are never touched, and the desired groups are all there.
        #[test]
        fn an_update_converges_and_leaves_unmanaged_groups_alone(
            have in names(), want in names(), managed in names(),
            path in prop::sample::select(vec!["/jml/", "/jml/fin/"]),
            disabled in any::<bool>(),
        ) {
            let id = ext("workday", "1");
            let want: BTreeSet<String> = want.intersection(&managed).cloned().collect();
            let d = IamDesired { groups: want.clone(), ..desired(&id, &[]) };
            let mut u = user(path, &[]);
            if disabled {
                u.tags.insert(TAG_STATUS.into(), "disabled".into());
                u.tags.insert(TAG_DISABLED_AT.into(), "t".into());
            }
            let plan = plan_update(&d, &u, &have, &managed);
            let (after, groups) = applied(&u, &have, &plan);
            prop_assert!(plan_update(&d, &after, &groups, &managed).is_empty());
            prop_assert!(want.is_subset(&groups));
            let outside: BTreeSet<_> = have.difference(&managed).collect();
            prop_assert_eq!(outside, groups.difference(&managed).filter(|g| !want.contains(*g)).collect());
        }

        /// A lock-down leaves the user tagged disabled in no group, and every step revokes.
        #[test]
        fn a_lockdown_leaves_no_group_and_only_revokes(have in names(), tagged in any::<bool>()) {
            let u = user("/jml/", if tagged { &[(TAG_STATUS, "disabled")] } else { &[] });
            let plan = plan_lockdown(&[], &[], &have, &u, "t");
            let (after, groups) = applied(&u, &have, &plan);
            prop_assert!(groups.is_empty());
            prop_assert!(is_disabled(&after));
            prop_assert!(plan.iter().all(IamAction::revokes));
        }
    }
}
