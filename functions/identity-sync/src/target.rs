//! The Identity Store target: [`Target::plan`] resolves the person's users and reads their
//! state (reads only; every decision is `crate::planner`'s), [`Target::apply`] executes that
//! plan, [`Target::verify_revoked`] reads a leaver's planned users back.
//!
//! All service access goes through the `IdentityStore` port; the ledger guard, the lease, dry
//! run, the breaker and the commit are the engine's (`jml_core::engine`).

use crate::port::op;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::codes::IdentityCode;
use crate::naming::{id_key, inventory_ids, inventory_names, name_key};
use crate::planner::{self, Action, CurrentUser, Decision, ManagedGroups, Ownership};
use crate::port::{AttributeChange, GroupId, IdentityStore, ServiceError, UserId, UserRecord, UserStatus};
use jml_core::contract::{EventKind, HrEvent, UserName};
use jml_core::engine::{Applied, Ctx, Desired, SyncError, Target};
use jml_core::ledger::{Knowledge, LEASE_SECONDS, Ledger, PersonRecord, PersonStatus};

pub use crate::naming::{IDENTITY_TARGET, MANAGER_LINKS, links_key, rehire_key};

/// The parking code of a leaver whose user the service refused to disable.
pub const DISABLE_UNSUPPORTED: &str = IdentityCode::DisableUnsupported.as_str();

/// At most this many reports are brought up to date by one manager's event (each costs a ledger
/// lease, a ledger read, DescribeUser and maybe UpdateUser); the others are left to the
/// reconciliation, which reports a wrong manager as drift and `--apply` corrects it.
pub const MAX_REPORTS_PER_EVENT: usize = 50;

/// The enterprise extension's manager attribute path (UpdateUser).
const MANAGER_PATH: &str = "aws:identitystore:enterprise.manager";

/// How long a manager's userName -> UserId mapping is trusted in a warm container.
const USER_CACHE_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a group name <-> id mapping is trusted in a warm container (an admin may rename a
/// group: `jml-admins` -> `prod-admins` leaves the managed set).
const GROUP_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Name <-> id lookups that live across invocations of a warm container, each for at most
/// [`GROUP_CACHE_TTL`]; before a membership write, a mapping neither read in this converge step
/// nor confirmed within `SyncSettings::group_recheck` (30 s by default: a bulk load pays one
/// DescribeGroup per group and half-minute, not one per membership) is checked against the
/// service (DescribeGroup): a group whose name changed is never written.
#[derive(Debug, Default)]
pub struct DirectoryCache {
    groups_by_name: Mutex<HashMap<String, (GroupId, Instant)>>,
    group_names_by_id: Mutex<HashMap<GroupId, (String, Instant)>>,
    users_by_name: Mutex<HashMap<String, (UserId, Instant)>>,
}

impl DirectoryCache {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember_group(&self, name: &str, id: &str) {
        let now = Instant::now();
        Self::lock(&self.groups_by_name).insert(name.to_string(), (id.to_string(), now));
        Self::lock(&self.group_names_by_id).insert(id.to_string(), (name.to_string(), now));
    }

    fn forget_group(&self, name: &str) {
        if let Some((id, _)) = Self::lock(&self.groups_by_name).remove(name) {
            Self::lock(&self.group_names_by_id).remove(&id);
        }
    }

    fn forget_group_id(&self, id: &str) {
        if let Some((name, _)) = Self::lock(&self.group_names_by_id).remove(id) {
            Self::lock(&self.groups_by_name).remove(&name);
        }
    }

    /// A cached group id and when it was read, if within the TTL.
    fn group_id(&self, name: &str) -> Option<(GroupId, Instant)> {
        Self::lock(&self.groups_by_name).get(name).filter(|(_, at)| at.elapsed() < GROUP_CACHE_TTL).cloned()
    }

    fn forget_user(&self, user_name: &str) {
        Self::lock(&self.users_by_name).remove(user_name);
    }

    fn group_name(&self, id: &str) -> Option<String> {
        Self::lock(&self.group_names_by_id)
            .get(id)
            .filter(|(_, at)| at.elapsed() < GROUP_CACHE_TTL)
            .map(|(name, _)| name.clone())
    }
}

/// Settings of the Identity Store target.
#[derive(Clone, Debug, Default)]
pub struct SyncSettings {
    pub managed_groups: ManagedGroups,
    /// A cached group name confirmed longer ago than this (and before the converge step began)
    /// is confirmed again with DescribeGroup before a membership write.
    pub group_recheck: Duration,
}

/// The Identity Store target. Cheap to clone; the cache is shared.
#[derive(Clone)]
pub struct IdentitySync {
    store: Arc<dyn IdentityStore>,
    cache: Arc<DirectoryCache>,
    settings: SyncSettings,
    /// The ledger of the manager links (see [`MANAGER_LINKS`]); without it a report whose
    /// manager joins later is left to the reconciliation.
    links: Option<Arc<dyn Ledger>>,
}

impl std::fmt::Debug for IdentitySync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySync").field("settings", &self.settings).finish_non_exhaustive()
    }
}

fn user_name_taken(owner: &str) -> SyncError {
    IdentityCode::UserNameOwnedByAnother.error(format!(
        "person.userName: the userName is already used by {owner}; jml-sync never modifies, disables or adopts it"
    ))
}

fn group_not_found(group: &str) -> SyncError {
    IdentityCode::GroupNotFound.error(format!(
        "groups: group '{group}' does not exist in the identity store (GetGroupId found no group with this DisplayName)"
    ))
}

/// One write of an Identity Store plan, on a user of the person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A rehire's fresh start: a previous employment's user is deleted (and read back gone).
    DeleteUser { user: UserId, user_name: String },
    /// A planner action on the person's user (`None`: the user this plan creates).
    On { user: Option<UserId>, action: Action },
    /// After a lost race: another user of the person (a concurrent creation) is revoked.
    Sweep { user: UserId, action: Action },
}

impl jml_core::engine::Step for Step {
    fn describe(&self) -> String {
        match self {
            Self::DeleteUser { user, .. } => format!("DeleteUser {user} (the previous employment's user)"),
            Self::On { action, .. } => action.describe(),
            Self::Sweep { action, .. } => format!("sweep: {}", action.describe()),
        }
    }

    fn revokes(&self) -> bool {
        match self {
            Self::DeleteUser { .. } | Self::Sweep { .. } => true,
            Self::On { action, .. } => {
                matches!(action, Action::RemoveFromGroup { .. } | Action::SetStatus(UserStatus::Disabled))
            }
        }
    }
}

/// What an Identity Store plan resolved.
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    /// The users a leaver revokes (what its read-back reads), or the person's user.
    users: Vec<UserId>,
    /// The manager's UserId (`None`: no manager named, or none found yet).
    manager_id: Option<UserId>,
    /// The name the user had before this plan's rename (its cached mapping is stale).
    renamed_from: Option<String>,
    /// Whether the plan writes the manager attribute.
    sets_manager: bool,
    /// A rehire's fresh start: the rehire key is recorded with the commit.
    fresh: Option<String>,
    /// A joiner, mover or rehire (`None`: a leaver): what the manager links need.
    links: Option<Links>,
}

/// The manager links of a profile's plan (see [`MANAGER_LINKS`]).
#[derive(Clone, Debug)]
pub struct Links {
    /// The manager's userName the profile names.
    manager: Option<String>,
    /// The person's userName after the plan.
    user_name: String,
    event_id: String,
}

type IdPlan = jml_core::engine::Plan<Step, Accounts>;

#[async_trait]
impl Target for IdentitySync {
    fn name(&self) -> &'static str {
        IDENTITY_TARGET
    }

    fn check(&self, event: &HrEvent) -> Result<(), SyncError> {
        match event.profile() {
            Some(profile) => planner::check_groups(profile, &self.settings.managed_groups)
                .map_err(|r| IdentityCode::UnmanagedGroup.error(r.to_string())),
            None => Ok(()),
        }
    }

    fn ahead(&self, event: &HrEvent) -> Vec<String> {
        // The name a joiner, mover or rehire may create or rename to.
        event.profile().map(|p| name_key(p.user_name.as_str())).into_iter().collect()
    }

    type Step = Step;
    type Accounts = Accounts;

    async fn plan(&self, desired: &Desired<'_>, ctx: &Ctx<'_>) -> Result<IdPlan, SyncError> {
        let mut plan = self.plan_profile(desired.state, ctx).await?;
        if ctx.sweep && desired.state.kind() != EventKind::Leaver {
            let keep = plan.user_id.clone();
            let swept = self.plan_sweep(desired.state, ctx, keep.as_deref(), plan.user_name.as_deref()).await?;
            plan.steps.extend(swept);
        }
        Ok(plan)
    }

    async fn apply(&self, plan: &IdPlan, ctx: &Ctx<'_>) -> Result<Applied, SyncError> {
        let steps = plan.steps.as_slice();
        // A rehire's fresh start first: the previous employment's users, deleted and read back
        // gone; then its key, with the commit (a retry of this rehire keeps the user it creates).
        let deletes = steps.iter().take_while(|s| matches!(s, Step::DeleteUser { .. })).count();
        for step in &steps[..deletes] {
            if let Step::DeleteUser { user, user_name } = step {
                self.delete_previous(user, user_name).await?;
            }
        }
        let acc = &plan.accounts;
        if let Some(key) = &acc.fresh {
            ctx.remember_at_commit(key).await?;
            if let Some(name) = &plan.user_name {
                self.cache.forget_user(name);
            }
        }
        let mut user_id = plan.user_id.clone();
        let mut created = false;
        let mut rest = &steps[deletes..];
        while let Some(step) = rest.first() {
            match step {
                Step::On { user, .. } => {
                    // This user's run of actions (a run of membership additions goes out at once).
                    let run = rest.iter().take_while(|s| matches!(s, Step::On { user: u, .. } if u == user)).count();
                    let actions: Vec<Action> = rest[..run]
                        .iter()
                        .filter_map(|s| match s {
                            Step::On { action, .. } => Some(action.clone()),
                            _ => None,
                        })
                        .collect();
                    rest = &rest[run..];
                    let mut id = user.clone();
                    match self.execute(&actions, &mut id, ctx).await {
                        Ok(()) => {}
                        // A concurrent delivery created the user first: plan again.
                        Err(SyncError::Service(ServiceError::Conflict { op: op::CREATE_USER, .. })) => {
                            tracing::info!(decision = "create-conflict", "CreateUser conflicted; planning again");
                            return Err(SyncError::Replan("CreateUser".into()));
                        }
                        Err(e) => return Err(e),
                    }
                    if user.is_none() {
                        created = true;
                        user_id = id;
                    }
                }
                Step::Sweep { user, action } => {
                    rest = &rest[1..];
                    self.execute(std::slice::from_ref(action), &mut Some(user.clone()), ctx).await?;
                    tracing::warn!(
                        decision = "sweep",
                        "a second account of the person (concurrent creation) was disabled"
                    );
                }
                Step::DeleteUser { .. } => {
                    // Planned first only; never reached.
                    rest = &rest[1..];
                }
            }
        }
        let (mut actions, mut notes) = (plan.actions(), plan.notes.clone());
        if let Some(links) = &acc.links {
            if let Some(old) = &acc.renamed_from {
                self.cache.forget_user(old);
            }
            // The report's side: the manager it names, remembered for when the manager's user is
            // created or replaced (its UserId is then new).
            if let Some(m) = &links.manager
                && (acc.manager_id.is_none() || acc.sets_manager)
            {
                self.link_report(m, ctx.person()).await?;
            }
            // The manager's side: a new UserId (created, or a rehire's fresh user) or a new
            // userName is what reports that named it could not find before.
            if let Some(id) = &user_id
                && (created || acc.renamed_from.is_some())
            {
                let (more, why) = self.update_reports(&links.user_name, id, ctx.person(), &links.event_id).await?;
                actions.extend(more);
                notes.extend(why);
            }
        }
        let status = match (acc.links.is_some(), plan.decision) {
            // A leaver: its users are disabled; none found, none exists.
            (false, _) if acc.users.is_empty() => PersonStatus::Deleted,
            (false, _) | (true, Decision::IgnoredForDisabledUser) => PersonStatus::Disabled,
            (true, _) => PersonStatus::Active,
        };
        Ok(Applied {
            decision: plan.decision,
            actions,
            user_id,
            user_name: plan.user_name.clone(),
            status,
            resolved_by: if created { "created" } else { plan.resolved_by },
            notes,
        })
    }

    async fn verify_revoked(&self, plan: &IdPlan, _ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError> {
        let mut left = Vec::new();
        for id in &plan.accounts.users {
            // A real read of every user the plan revoked.
            let Some(record) = self.store.describe_user(id).await? else { continue };
            if record.status == UserStatus::Enabled {
                left.push(format!("Identity Store user {id}: enabled"));
            }
            let managed = self.current(record, "verify").await?.current.map_or(0, |c| c.managed_memberships.len());
            if managed > 0 {
                left.push(format!("Identity Store user {id}: {managed} managed group membership(s)"));
            }
        }
        Ok(left)
    }
}

fn leaver_user_changed() -> SyncError {
    IdentityCode::IdentityLeaverUserChanged.error(
        "the Identity Store user the ledger records for this person no longer carries their managed marker or ExternalId; not disabled automatically: check it, disable it by hand or restore the marker, then redrive",
    )
}

struct Resolved {
    current: Option<CurrentUser>,
    by: &'static str,
}

impl IdentitySync {
    pub fn new(store: Arc<dyn IdentityStore>, settings: SyncSettings) -> Self {
        Self { store, cache: Arc::default(), settings, links: None }
    }

    /// Keeps the manager links in `ledger` (the deployment's ledger table).
    pub fn with_manager_links(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.links = Some(ledger);
        self
    }

    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// A joiner, mover or rehire: the person's user resolved and read, the manager's UserId,
    /// every group the plan adds checked to exist (a missing group parks the event with nothing
    /// half-applied), and, for a rehire not yet started afresh, the previous employment's users
    /// to delete.
    async fn plan_profile(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<IdPlan, SyncError> {
        let Some(profile) = event.profile() else { return self.plan_leaver(event, ctx).await };
        // Independent reads are sent at once: the manager's UserId, and, for a joiner, the ids
        // of its groups (the cache keeps them; any failure is met again where it matters).
        let manager = async {
            match &profile.enterprise.manager {
                Some(m) => self.manager_id(m).await,
                None => Ok(None),
            }
        };
        let groups = async {
            if event.kind() == EventKind::Joiner {
                let _ = futures::future::join_all(profile.groups.iter().map(|g| self.group_id(g.as_str()))).await;
            }
        };
        let (manager_id, resolved, ()) = futures::join!(manager, self.resolve_first(event, ctx), groups);
        let (manager_id, mut resolved) = (manager_id?, resolved?);
        let mut notes = Vec::new();
        if profile.enterprise.manager.is_some() && manager_id.is_none() {
            notes.push(
                "person.enterprise.manager: no user with this userName yet; set when the manager's user is created"
                    .to_string(),
            );
        }
        // A rehire starts from nothing the person held before: the previous employment's users
        // are deleted and a new one is created (see `previous_users`), once per rehire event.
        let mut steps = Vec::new();
        let mut fresh = None;
        if event.kind() == EventKind::Rehire {
            let inventory = ctx.accounts().await?;
            let key = rehire_key(event.event_id.as_str());
            if !inventory.contains(&key) {
                for old in self.previous_users(event, ctx, inventory).await? {
                    steps.push(Step::DeleteUser { user: old.user_id, user_name: old.attributes.user_name });
                }
                fresh = Some(key);
                resolved = Resolved { current: None, by: "rehire-fresh" };
            }
        }
        let planner::Plan { mut decision, actions } =
            planner::plan(event, resolved.current.as_ref(), manager_id.clone());
        let user = resolved.current.as_ref().map(|c| c.record.user_id.clone());
        let user_name = profile.user_name.as_str().to_string();
        // The name the user had before a rename (its cached manager mapping is stale).
        let renamed_from =
            resolved.current.as_ref().map(|c| c.record.attributes.user_name.clone()).filter(|old| *old != user_name);
        let sets_manager = actions.iter().any(|a| match a {
            Action::CreateUser(_) => true,
            Action::UpdateUser(changes) => changes.iter().any(|c| c.path == MANAGER_PATH),
            _ => false,
        });
        // Every group must exist before the first write. The lookups are independent: sent at
        // once (each still takes its slot of the pacer).
        futures::future::try_join_all(actions.iter().filter_map(|a| match a {
            Action::AddToGroup(group) => Some(self.group_id(group.as_str())),
            _ => None,
        }))
        .await?;
        if fresh.is_some() && decision == Decision::Create {
            decision = Decision::Rehire;
        }
        steps.extend(actions.into_iter().map(|action| Step::On { user: user.clone(), action }));
        let links = Links {
            manager: profile.enterprise.manager.as_ref().map(|m| m.as_str().to_string()),
            user_name: user_name.clone(),
            event_id: event.event_id.to_string(),
        };
        Ok(IdPlan {
            decision,
            steps,
            accounts: Accounts {
                users: user.iter().cloned().collect(),
                manager_id,
                renamed_from,
                sets_manager,
                fresh,
                links: Some(links),
            },
            user_id: user,
            user_name: Some(user_name),
            resolved_by: resolved.by,
            notes,
        })
    }

    /// The previous employment's users a rehire deletes ([`Self::leaver_users`]: the ledger's,
    /// the inventory's, the resolution chain's). Identity Center keeps a disabled user's group
    /// memberships and account assignments ("use disable user access for temporary access
    /// removal when you might need to restore access later", user guide, disableuser.html), so
    /// re-enabling the same UserId would give back whatever was added by hand during the
    /// previous employment: memberships of unmanaged groups and permission sets assigned to the
    /// user directly (sso-admin, which this function never calls). Deleting is final: only a
    /// user that carries this person's marker is deleted; one found another way (an ExternalId
    /// another system set, a user that lost the marker) is parked for a human.
    async fn previous_users(
        &self,
        event: &HrEvent,
        ctx: &Ctx<'_>,
        inventory: BTreeSet<String>,
    ) -> Result<Vec<UserRecord>, SyncError> {
        let (old, _, _) = self.leaver_users_in(event, ctx, inventory).await?;
        let marker = event.external_id.marker();
        if let Some(other) = old.iter().find(|r| r.attributes.marker.as_deref() != Some(marker.as_str())) {
            return Err(IdentityCode::RehireUserNotMarked.error(format!(
                "rehire: user {} would be deleted for a fresh start but does not carry this person's marker; \
                 check who owns it, then delete it or stamp the marker and redrive",
                other.user_id
            )));
        }
        Ok(old)
    }

    /// Deletes a previous employment's user (its memberships go with it; its assignments name a
    /// UserId no later user gets) and reads the deletion back.
    async fn delete_previous(&self, id: &str, user_name: &str) -> Result<(), SyncError> {
        self.store.delete_user(id).await?;
        if self.store.describe_user(id).await?.is_some() {
            return Err(SyncError::InProgress(format!("DeleteUser of the previous employment's user {id}")));
        }
        tracing::warn!(
            decision = "rehire-fresh-start",
            user_id = %id,
            "the previous employment's user was deleted; the rehire creates a new one"
        );
        self.cache.forget_user(user_name);
        Ok(())
    }

    async fn execute(&self, actions: &[Action], user_id: &mut Option<UserId>, ctx: &Ctx<'_>) -> Result<(), SyncError> {
        let mut rest = actions;
        while let Some((action, after)) = rest.split_first() {
            rest = after;
            match action {
                Action::CreateUser(attrs) => {
                    // Write-ahead: the name enters the inventory before the user exists.
                    ctx.remember(&name_key(&attrs.user_name)).await?;
                    let id = self.store.create_user(attrs).await?;
                    ctx.remember_at_commit(&id_key(&id)).await?;
                    *user_id = Some(id);
                }
                Action::UpdateUser(changes) => {
                    let id = user_id.as_deref().ok_or(SyncError::ConflictPersisted)?;
                    let rename = changes.iter().find(|c| c.path == "userName").and_then(|c| c.value.as_ref()?.as_str());
                    if let Some(name) = rename {
                        ctx.remember(&name_key(name)).await?;
                    }
                    match self.store.update_user(id, changes).await {
                        // ConflictException carries no Reason outside KMS errors (API reference):
                        // for a rename, who holds the name now decides.
                        Err(e @ ServiceError::Conflict { .. }) => match rename {
                            Some(name) if self.name_held_by_another(name, id).await? => {
                                return Err(user_name_taken("another user"));
                            }
                            _ => return Err(e.into()),
                        },
                        other => other?,
                    }
                }
                Action::SetStatus(status) => {
                    let id = user_id.as_deref().ok_or(SyncError::ConflictPersisted)?;
                    match self.store.set_user_status(id, *status).await {
                        // UpdateUser on userStatus is in no production code found and the API
                        // reference lists UserStatus on User only. Should the service refuse it,
                        // a leaver has already lost every managed membership (removed first);
                        // the read-back then finds the user enabled and the event is parked as
                        // DisableUnsupported, the leaver recorded so no later event grants again.
                        Err(ServiceError::Validation { .. }) if *status == crate::port::UserStatus::Disabled => {
                            tracing::warn!(decision = "disable-unsupported", "UpdateUser userStatus refused");
                            ctx.explain_residual(DISABLE_UNSUPPORTED);
                        }
                        other => other?,
                    }
                }
                Action::RemoveFromGroup { membership_id, group } => {
                    if !self.still_managed(group, ctx).await? {
                        tracing::warn!(
                            decision = "group-renamed",
                            "the membership's group left the managed set; not written"
                        );
                        continue;
                    }
                    self.store.remove_membership(membership_id).await?;
                }
                Action::AddToGroup(group) => {
                    let id = user_id.as_deref().ok_or(SyncError::ConflictPersisted)?;
                    // A run of membership additions is independent: sent at once.
                    let more = rest.iter().take_while(|a| matches!(a, Action::AddToGroup(_))).count();
                    let (run, after) = rest.split_at(more);
                    rest = after;
                    let groups = std::iter::once(group).chain(run.iter().filter_map(|a| match a {
                        Action::AddToGroup(g) => Some(g),
                        _ => None,
                    }));
                    futures::future::try_join_all(groups.map(|g| self.add_to_group(g.as_str(), id, ctx))).await?;
                }
            }
        }
        Ok(())
    }

    /// Whether a user other than `user_id` holds `name` (a rename's conflict is then permanent).
    async fn name_held_by_another(&self, name: &str, user_id: &str) -> Result<bool, SyncError> {
        let Ok(name) = UserName::parse(name) else { return Ok(false) };
        Ok(self.store.find_user_by_user_name(&name).await?.is_some_and(|holder| holder != user_id))
    }

    /// One membership addition, to the group's current id.
    async fn add_to_group(&self, group: &str, user_id: &str, ctx: &Ctx<'_>) -> Result<(), SyncError> {
        let group_id = self.checked_group_id(group, ctx).await?;
        match self.store.add_membership(&group_id, user_id).await {
            Err(ServiceError::NotFound { .. }) => {
                // The cached group was deleted (and maybe re-created): look it up again once.
                self.cache.forget_group(group);
                let group_id = self.group_id(group).await?;
                self.add_membership(&group_id, user_id).await
            }
            Err(ServiceError::Conflict { .. }) => self.verify_member(&group_id, user_id).await,
            other => Ok(other?),
        }
    }

    /// CreateGroupMembership, a ConflictException verified (see `verify_member`).
    async fn add_membership(&self, group_id: &str, user_id: &str) -> Result<(), SyncError> {
        match self.store.add_membership(group_id, user_id).await {
            Err(ServiceError::Conflict { .. }) => self.verify_member(group_id, user_id).await,
            other => Ok(other?),
        }
    }

    /// CreateGroupMembership answered ConflictException: its Reason is absent for non-KMS errors
    /// (API reference), so "already a member" is read back, never assumed; otherwise retried.
    async fn verify_member(&self, group_id: &str, user_id: &str) -> Result<(), SyncError> {
        if self.store.memberships(user_id).await?.iter().any(|m| m.group_id == group_id) {
            return Ok(());
        }
        Err(SyncError::Service(ServiceError::Conflict {
            op: op::CREATE_GROUP_MEMBERSHIP,
            reason: crate::port::ConflictReason::ConcurrentModification,
        }))
    }

    /// Group name -> id through the warm-container cache (GetGroupId on a miss).
    async fn group_id(&self, name: &str) -> Result<GroupId, SyncError> {
        if let Some((id, _)) = self.cache.group_id(name) {
            return Ok(id);
        }
        let parsed = jml_core::contract::GroupName::parse(name).map_err(|_| group_not_found(name))?;
        match self.store.find_group_by_name(&parsed).await? {
            Some(id) => {
                self.cache.remember_group(name, &id);
                Ok(id)
            }
            None => Err(group_not_found(name)),
        }
    }

    /// The id of the group named `name` now, for a membership write: a cached mapping not read
    /// in this converge step is confirmed with DescribeGroup, and looked up again if the group was
    /// renamed (the managed name may be gone, or held by another group).
    async fn checked_group_id(&self, name: &str, ctx: &Ctx<'_>) -> Result<GroupId, SyncError> {
        let id = self.group_id(name).await?;
        if self.cache.group_id(name).is_some_and(|(_, at)| self.confirmed(at, ctx)) {
            return Ok(id);
        }
        match self.store.group_name(&id).await? {
            Some(now) if now == name => {
                self.cache.remember_group(name, &id);
                Ok(id)
            }
            _ => {
                tracing::warn!(decision = "group-renamed", group_id = %id, "a cached managed group was renamed or deleted; looking it up again");
                self.cache.forget_group(name);
                self.cache.forget_group_id(&id);
                self.group_id(name).await
            }
        }
    }

    /// A mapping read in this converge step, or confirmed within `group_recheck`, is current.
    fn confirmed(&self, at: Instant, ctx: &Ctx<'_>) -> bool {
        at >= ctx.started || at.elapsed() < self.settings.group_recheck
    }

    /// Whether the membership's group (known to the cache by its managed name) still has that
    /// name: a group renamed out of the managed set is never written.
    async fn still_managed(&self, name: &str, ctx: &Ctx<'_>) -> Result<bool, SyncError> {
        let Some((id, at)) = self.cache.group_id(name) else {
            // Not cached: `current` read the name from the service in this step.
            return Ok(true);
        };
        if self.confirmed(at, ctx) {
            return Ok(true);
        }
        let now = self.store.group_name(&id).await?;
        if now.as_deref() == Some(name) {
            self.cache.remember_group(name, &id);
            return Ok(true);
        }
        self.cache.forget_group(name);
        self.cache.forget_group_id(&id);
        if let Some(n) = &now {
            self.cache.remember_group(n, &id);
        }
        Ok(now.as_deref().is_some_and(|n| self.settings.managed_groups.contains(n)))
    }

    /// Group id -> name through the cache (DescribeGroup on a miss). `None`: group gone.
    async fn group_name(&self, id: &str) -> Result<Option<String>, SyncError> {
        if let Some(name) = self.cache.group_name(id) {
            return Ok(Some(name));
        }
        let name = self.store.group_name(id).await?;
        if let Some(n) = &name {
            self.cache.remember_group(n, id);
        }
        Ok(name)
    }

    /// Remembers that `person` named `manager` (idempotent: a set).
    async fn link_report(&self, manager: &str, person: &str) -> Result<(), SyncError> {
        if let Some(ledger) = &self.links {
            ledger.remember(&links_key(manager), MANAGER_LINKS, person).await?;
        }
        Ok(())
    }

    /// After the manager's user got a new UserId or userName: every report linked to the name
    /// (at most [`MAX_REPORTS_PER_EVENT`]) whose converged profile still names this manager gets
    /// its manager attribute, under the report's own lease (a report being converged is skipped:
    /// its own event or the reconciliation sets it). Returns the actions and notes.
    async fn update_reports(
        &self,
        manager_name: &str,
        manager_id: &str,
        me: &str,
        event_id: &str,
    ) -> Result<(Vec<String>, Vec<String>), SyncError> {
        let Some(ledger) = &self.links else { return Ok(Default::default()) };
        let reports: Vec<String> =
            ledger.accounts(&links_key(manager_name), MANAGER_LINKS).await?.into_iter().filter(|r| *r != me).collect();
        let (mut actions, mut notes) = (Vec::new(), Vec::new());
        if reports.len() > MAX_REPORTS_PER_EVENT {
            tracing::warn!(
                decision = "manager-links-deferred",
                reports = reports.len(),
                "more reports than one event updates"
            );
            notes.push(format!(
                "{} report(s) beyond the first {MAX_REPORTS_PER_EVENT} are left to the reconciliation",
                reports.len() - MAX_REPORTS_PER_EVENT
            ));
        }
        let holder = format!("manager-link#{me}#{event_id}");
        for report in reports.iter().take(MAX_REPORTS_PER_EVENT) {
            let until = chrono::Utc::now().timestamp() + LEASE_SECONDS;
            if !ledger.lease(report, IDENTITY_TARGET, &holder, until).await? {
                tracing::info!(decision = "manager-link-busy", report = %report, "the report is being converged; skipped");
                notes.push("a report being converged by another instance was skipped (its own event or the reconciliation sets its manager)".to_string());
                continue;
            }
            let result = self.update_report(ledger.as_ref(), report, manager_name, manager_id).await;
            let released = ledger.release(report, IDENTITY_TARGET, &holder).await;
            actions.extend(result?);
            released?;
        }
        Ok((actions, notes))
    }

    /// One report: its manager attribute set to `manager_id` if what the ledger converges it to
    /// (never the link alone: the report may have changed manager since, or left) names
    /// `manager_name`, and its user, read back, is enabled and carries the report's marker.
    async fn update_report(
        &self,
        ledger: &dyn Ledger,
        report: &str,
        manager_name: &str,
        manager_id: &str,
    ) -> Result<Option<String>, SyncError> {
        let Some(record) = ledger.get(report, IDENTITY_TARGET).await? else { return Ok(None) };
        let Some(effective) = jml_core::ledger::effective(&Knowledge::of(Some(&record)), Some(record.status)) else {
            return Ok(None);
        };
        let names = effective
            .profile()
            .and_then(|p| p.enterprise.manager.as_ref())
            .is_some_and(|m| m.as_str().to_lowercase() == manager_name.to_lowercase());
        let Some(user_id) = record.user_id.as_deref().filter(|_| names) else { return Ok(None) };
        let Some(user) = self.store.describe_user(user_id).await? else { return Ok(None) };
        if planner::ownership(&user, &effective.external_id) != Ownership::Ours
            || user.status != crate::port::UserStatus::Enabled
            || user.attributes.manager_id.as_deref() == Some(manager_id)
        {
            return Ok(None);
        }
        let change = AttributeChange { path: MANAGER_PATH, value: Some(serde_json::json!({ "value": manager_id })) };
        self.store.update_user(user_id, &[change]).await?;
        tracing::info!(decision = "manager-link", report = %report, user_id = %user_id, "a report's manager set");
        Ok(Some(format!("UpdateUser [{MANAGER_PATH}] of report user {user_id}")))
    }

    async fn manager_id(&self, manager: &UserName) -> Result<Option<UserId>, SyncError> {
        if let Some((id, at)) = DirectoryCache::lock(&self.cache.users_by_name).get(manager.as_str())
            && at.elapsed() < USER_CACHE_TTL
        {
            return Ok(Some(id.clone()));
        }
        let id = self.store.find_user_by_user_name(manager).await?;
        if let Some(id) = &id {
            DirectoryCache::lock(&self.cache.users_by_name)
                .insert(manager.as_str().to_string(), (id.clone(), Instant::now()));
        }
        Ok(id)
    }

    /// The person's user for a converge step: after a lost race (`sweep`), the one holding the
    /// desired userName first, else the chain from the ledger's hint.
    async fn resolve_first(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<Resolved, SyncError> {
        if ctx.sweep {
            let resolved = self.resolve(event, None).await?;
            if resolved.current.is_some() {
                return Ok(resolved);
            }
        }
        self.resolve(event, ctx.record).await
    }

    /// The resolution chain. Order: the ledger's UserId (rename-safe), then userName (accepted only with this person's marker or
    /// ExternalId), then GetUserId(ExternalId) for SCIM-provisioned users, then, for a leaver still not found, a
    /// ListUsers scan for the marker (a missed leaver is a security incident; the scan's cost is
    /// paid only when every cheaper lookup failed).
    async fn resolve(&self, event: &HrEvent, hint: Option<&PersonRecord>) -> Result<Resolved, SyncError> {
        let person = &event.external_id;
        // The ledger knows the account even after a userName change.
        if let Some(id) = hint.and_then(|r| r.user_id.as_deref()) {
            match self.store.describe_user(id).await? {
                Some(record) if planner::ownership(&record, person) == Ownership::Ours => {
                    return self.current(record, "ledger").await;
                }
                Some(_) => {
                    tracing::warn!(decision = "ledger-repair", "ledger account no longer carries this person's marker")
                }
                None => tracing::info!(decision = "ledger-repair", "ledger account no longer exists; resolving again"),
            }
        }
        // The userName and ExternalId lookups are independent reads: sent at once, their
        // answers taken in the chain's order.
        let by_name = async {
            match event.user_name() {
                Some(user_name) => self.store.find_user_by_user_name(user_name).await,
                None => Ok(None),
            }
        };
        let (by_name, by_external_id) = futures::join!(by_name, self.store.find_user_by_external_id(person));
        let (by_name, by_external_id) = (by_name?, by_external_id?);
        if let Some(id) = by_name
            && let Some(record) = self.store.describe_user(&id).await?
        {
            match planner::ownership(&record, person) {
                Ownership::Ours => return self.current(record, "user-name").await,
                Ownership::OtherPerson => {
                    // Our person may still exist under another name (SCIM): a rename onto a taken
                    // name is refused either way, so stop here.
                    return Err(user_name_taken("another person"));
                }
                Ownership::Unmanaged => {
                    return Err(user_name_taken("a user not managed by jml-sync"));
                }
            }
        }
        if let Some(id) = by_external_id
            && let Some(record) = self.store.describe_user(&id).await?
        {
            return self.current(record, "external-id").await;
        }
        if event.kind() == jml_core::contract::EventKind::Leaver
            && let Some(id) = self.store.find_user_by_marker(&person.marker()).await?
            && let Some(record) = self.store.describe_user(&id).await?
            && planner::ownership(&record, person) == Ownership::Ours
        {
            return self.current(record, "marker-scan").await;
        }
        Ok(Resolved { current: None, by: "none" })
    }

    /// Every Identity Store user that is this person's: the ledger's UserId, every UserId and
    /// userName of the inventory, then the resolution chain when the inventory finds none. A
    /// ledger-recorded user that lost the person's marker is parked for an operator, never
    /// skipped. Also returns whether the inventory held any key (a leaver without account is only
    /// possible when it held none and every lookup missed).
    async fn leaver_users(
        &self,
        event: &HrEvent,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<UserRecord>, &'static str, bool), SyncError> {
        self.leaver_users_in(event, ctx, ctx.accounts().await?).await
    }

    /// [`Self::leaver_users`] on an inventory already read.
    async fn leaver_users_in(
        &self,
        event: &HrEvent,
        ctx: &Ctx<'_>,
        inventory: std::collections::BTreeSet<String>,
    ) -> Result<(Vec<UserRecord>, &'static str, bool), SyncError> {
        let person = &event.external_id;
        let mut ids: Vec<String> = ctx.record.and_then(|r| r.user_id.clone()).into_iter().collect();
        ids.extend(inventory.iter().filter_map(|k| k.strip_prefix("id:")).map(str::to_string));
        for name in inventory.iter().filter_map(|k| k.strip_prefix("name:")) {
            if let Ok(name) = UserName::parse(name)
                && let Some(id) = self.store.find_user_by_user_name(&name).await?
            {
                ids.push(id);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut found = Vec::new();
        for id in ids {
            if !seen.insert(id.clone()) {
                continue;
            }
            match self.store.describe_user(&id).await? {
                Some(record) if planner::ownership(&record, person) == Ownership::Ours => found.push(record),
                Some(_) if ctx.record.and_then(|r| r.user_id.as_deref()) == Some(id.as_str()) => {
                    return Err(leaver_user_changed());
                }
                // A name in the inventory now held by someone else (after a rename): not ours.
                Some(_) | None => {}
            }
        }
        let mut by = "inventory";
        if found.is_empty() {
            let resolved = self.resolve(event, None).await?;
            by = resolved.by;
            found.extend(resolved.current.map(|c| c.record));
        }
        Ok((found, by, !inventory.is_empty() || ctx.record.and_then(|r| r.user_id.as_ref()).is_some()))
    }

    /// A leaver: every user of [`Self::leaver_users`] loses its managed memberships and is
    /// disabled.
    async fn plan_leaver(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<IdPlan, SyncError> {
        let (found, by, known) = self.leaver_users(event, ctx).await?;
        if found.is_empty() {
            // The inventory knew accounts, all gone (deleted by hand): nothing left to revoke.
            let decision = if known { Decision::NoChange } else { Decision::LeaverWithoutAccount };
            return Ok(IdPlan::nothing(decision, Accounts::default(), by));
        }
        let (mut steps, mut users, mut last) = (Vec::new(), Vec::new(), None);
        for record in found {
            let (user_id, user_name) = (record.user_id.clone(), record.attributes.user_name.clone());
            let current = self.current(record, by).await?.current;
            let planned = planner::plan(event, current.as_ref(), None).actions;
            steps.extend(planned.into_iter().map(|action| Step::On { user: Some(user_id.clone()), action }));
            users.push(user_id.clone());
            last = Some((user_id, user_name));
        }
        let (user_id, user_name) = last.unzip();
        let decision = if steps.is_empty() { Decision::NoChange } else { Decision::Disable };
        Ok(IdPlan {
            decision,
            steps,
            accounts: Accounts { users, ..Accounts::default() },
            user_id,
            user_name,
            resolved_by: by,
            notes: vec![],
        })
    }

    /// After a lost race: every other user of the person's inventory (a concurrent delivery
    /// created one under another name) loses its managed memberships and is disabled.
    async fn plan_sweep(
        &self,
        event: &HrEvent,
        ctx: &Ctx<'_>,
        keep: Option<&str>,
        keep_name: Option<&str>,
    ) -> Result<Vec<Step>, SyncError> {
        let inventory = ctx.accounts().await?;
        let mut ids: BTreeSet<String> = inventory_ids(&inventory).map(str::to_string).collect();
        for name in inventory_names(&inventory).filter(|n| Some(*n) != keep_name) {
            if let Ok(name) = UserName::parse(name)
                && let Some(id) = self.store.find_user_by_user_name(&name).await?
            {
                ids.insert(id);
            }
        }
        let leaver = HrEvent {
            change: jml_core::contract::Change::Leaver { user_name: None, directory_user_name: None },
            ..event.clone()
        };
        let mut steps = Vec::new();
        for id in ids.iter().filter(|id| Some(id.as_str()) != keep) {
            if let Some(record) = self.store.describe_user(id).await?
                && planner::ownership(&record, &event.external_id) == Ownership::Ours
            {
                let current = self.current(record, "inventory").await?.current;
                let planned = planner::plan(&leaver, current.as_ref(), None).actions;
                steps.extend(planned.into_iter().map(|action| Step::Sweep { user: id.clone(), action }));
            }
        }
        Ok(steps)
    }

    async fn current(&self, record: UserRecord, by: &'static str) -> Result<Resolved, SyncError> {
        let mut managed = BTreeMap::new();
        for m in self.store.memberships(&record.user_id).await? {
            if let Some(name) = self.group_name(&m.group_id).await?
                && self.settings.managed_groups.contains(&name)
            {
                managed.insert(name, m.membership_id);
            }
        }
        Ok(Resolved { current: Some(CurrentUser { record, managed_memberships: managed }), by })
    }
}
