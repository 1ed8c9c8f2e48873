//! The IAM users target (for organisations that still need IAM users), I/O only: [`Target::plan`]
//! reads the person's users and asks the pure [`planner`] for the steps, [`Target::apply`]
//! executes them through the `IamUsers` port, [`Target::verify_revoked`] reads a leaver's users
//! back. Names, paths, tags and ownership are [`crate::naming`]'s rules.
//!
//! A leaver, from the engine to IAM: `plan` -> `plan_leaver` -> `leaver_users`
//! (GetUser of the ledger's name, then one paged GetAccountAuthorizationDetails for every user
//! carrying the person's tag) and `read_user` (ListAccessKeys, the other credentials,
//! ListGroupsForUser) -> [`planner::plan_leaver`]. The engine's breaker reads that plan, `apply`
//! executes it, and `verify_revoked` reads the same users again (GetUser, GetLoginProfile, the
//! credentials, the groups), without looking them up by tag again.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::codes::Code;
use crate::naming::{
    GroupMap, IAM_TARGET, Ownership, TAG_EXTERNAL_ID, active_tags, is_disabled, ownership, path, refuse, user_name,
};
use crate::planner::{self, IamAccounts, IamAction, IamDesired, Planned, Step, UserState};
use crate::port::{IamNewUser, IamUser, IamUsers, ServiceError, op};
use jml_core::contract::{Change, EventKind, ExternalId, HrEvent, Profile};
use jml_core::engine::{Applied, Ctx, Desired, Plan, SyncError, Target};
use jml_core::ledger::{PersonRecord, PersonStatus};
use jml_core::target::Step as _;

/// A lock-down step whose target vanished between List and Update is already revoked: the
/// lock-down goes on with the rest instead of stopping half way.
fn gone_is_done(r: Result<bool, ServiceError>) -> Result<bool, ServiceError> {
    match r {
        Err(ServiceError::NotFound { .. }) => Ok(false),
        other => other,
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

/// LimitExceeded (groups per user, users per account) is a permanent, clearly worded error.
fn quota(e: ServiceError) -> SyncError {
    match e {
        ServiceError::QuotaExceeded { op } => Code::IamLimitExceeded.error(format!(
            "{op}: LimitExceeded (an IAM quota such as users per account or groups per user is reached)"
        )),
        other => SyncError::Service(other),
    }
}

/// The IAM target.
pub struct IamSync {
    service: Arc<dyn IamUsers>,
    groups: GroupMap,
    path_prefix: String,
    permissions_boundary: String,
}

impl std::fmt::Debug for IamSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamSync").field("path_prefix", &self.path_prefix).finish_non_exhaustive()
    }
}

#[async_trait]
impl Target for IamSync {
    type Step = Step;
    type Accounts = IamAccounts;

    fn name(&self) -> &'static str {
        IAM_TARGET
    }

    async fn plan(&self, desired: &Desired<'_>, ctx: &Ctx<'_>) -> Result<Plan<Step, IamAccounts>, SyncError> {
        let event = desired.state;
        match &event.change {
            Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p) => self.plan_profile(event, p, ctx).await,
            Change::Leaver { .. } => self.plan_leaver(event, ctx).await,
        }
    }

    async fn apply(&self, plan: &Plan<Step, IamAccounts>, ctx: &Ctx<'_>) -> Result<Applied, SyncError> {
        let person = &plan.accounts.person;
        let mut user_id = plan.user_id.clone();
        let mut created: Option<&str> = None;
        let mut actions = Vec::new();
        // Whether a write besides a sweep took effect (the decision is judged on it).
        let mut changed = false;
        for step in &plan.steps {
            let effective = match step {
                Step::CreateUser(new) => {
                    user_id = self.create(new, person, ctx).await?;
                    created = Some(new.user_name.as_str());
                    true
                }
                Step::RenameUser { from, to } => {
                    self.rename(from, to, person, ctx).await?;
                    true
                }
                // Right after CreateUser, NoSuchEntity is IAM's propagation: retried in place.
                Step::Change { user_name, action } => {
                    self.execute(user_name, action, created == Some(user_name.as_str())).await?
                }
                Step::Sweep { user_name, action } => self.execute(user_name, action, false).await?,
            };
            if effective {
                changed |= !matches!(step, Step::Sweep { .. });
                actions.push(step.describe());
            }
        }
        Ok(Applied {
            decision: planner::applied_decision(plan.decision, changed),
            actions,
            user_id,
            user_name: plan.user_name.clone(),
            status: plan.accounts.status,
            resolved_by: plan.resolved_by,
            notes: plan.notes.clone(),
        })
    }

    /// Reads every user the leaver's plan locked down again, by the name the plan found it
    /// under: GetUser (its tags now), then what still lets it in (`residual`). A user
    /// no longer found under that name (renamed or deleted since) cannot be proven locked down:
    /// it is reported, and the engine plans again (which finds it by its tag, if it still exists).
    async fn verify_revoked(&self, plan: &Plan<Step, IamAccounts>, _ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError> {
        let mut left = Vec::new();
        for planned in &plan.accounts.locked_down {
            let read = match self.service.get_user(&planned.user_name).await? {
                Some(now) if now.user_id == planned.user_id => self.residual(&now).await,
                _ => Err(ServiceError::NotFound { op: op::GET_USER }),
            };
            match read {
                Ok(found) => left.extend(found),
                Err(ServiceError::NotFound { .. }) => left.push(format!(
                    "IAM user {}: not found under the name it was locked down by (renamed or deleted since)",
                    planned.user_id
                )),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(left)
    }
}

impl IamSync {
    pub fn new(
        service: Arc<dyn IamUsers>,
        groups: GroupMap,
        path_prefix: String,
        permissions_boundary: String,
    ) -> Self {
        Self { service, groups, path_prefix, permissions_boundary }
    }

    /// A joiner, mover or rehire: the person's user (the ledger's name, then the derived one)
    /// and its groups, planned towards the profile; after a lost race, the person's other users
    /// are locked down too (the sweep).
    async fn plan_profile(
        &self,
        event: &HrEvent,
        profile: &Profile,
        ctx: &Ctx<'_>,
    ) -> Result<Plan<Step, IamAccounts>, SyncError> {
        let kind = event.kind();
        let name = user_name(profile.user_name.as_str()).map_err(|rule| Code::IamUserName.error(rule))?;
        let desired = self.desired(event, profile)?;
        let found = match self.resolve(event, ctx.record, Some(&name)).await? {
            // Ignored by the planner: its groups are not read.
            Some(user) if planner::ignored(kind, &user) => Some((user, BTreeSet::new())),
            Some(user) => {
                let groups = self.service.groups(&user.user_name).await?.into_iter().collect();
                Some((user, groups))
            }
            None => None,
        };
        let found = found.as_ref().map(|(u, g)| (u, g));
        let mut planned = planner::plan_profile(kind, &name, &desired, found, &self.groups.managed());
        let mut swept = Vec::new();
        if ctx.sweep {
            // After a lost race: a concurrent delivery may have created another user.
            let at = disabled_at(event);
            for other in ctx.accounts().await? {
                let Some(mine) = planned.user.as_ref() else { break };
                if mine.user_name.eq_ignore_ascii_case(&other) {
                    continue;
                }
                if let Some(u) = self.service.get_user(&other).await?
                    && ownership(&u, &event.external_id) == Ownership::Ours
                    && mine.user_id != u.user_id
                {
                    swept.push(self.read_user(u).await?);
                }
            }
            planned.steps.extend(planner::plan_sweep(&swept, &at));
        }
        Ok(to_plan(planned, event, swept))
    }

    /// A leaver: every user of the person ([`IamSync::leaver_users`]), each read as it is now,
    /// then locked down.
    async fn plan_leaver(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<Plan<Step, IamAccounts>, SyncError> {
        let (users, known) = self.leaver_users(event, ctx).await?;
        let mut states = Vec::with_capacity(users.len());
        for user in users {
            states.push(self.read_user(user).await?);
        }
        let planned = planner::plan_leaver(&states, known, &disabled_at(event));
        Ok(to_plan(planned, event, states))
    }

    fn desired(&self, event: &HrEvent, profile: &Profile) -> Result<IamDesired, SyncError> {
        let path = path(&self.path_prefix, profile.enterprise.department.as_ref().map(|d| d.as_str()))
            .map_err(|rule| Code::IamPath.error(format!("person.enterprise.department: {rule}")))?;
        Ok(IamDesired {
            path,
            permissions_boundary: self.permissions_boundary.clone(),
            tags: active_tags(&event.external_id),
            groups: self.groups.desired(profile),
        })
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
                return Err(Code::IamLeaverUserChanged.error(format!(
                    "the IAM user the ledger records for this person no longer carries their {TAG_EXTERNAL_ID} tag; not locked down automatically: check it, lock it down by hand or restore the tag and redrive"
                )));
            }
        }
        let Some(derived) = derived else { return Ok(None) };
        match self.service.get_user(derived).await? {
            Some(u) => refuse(&u, derived, &event.external_id).map(|()| Some(u)),
            None => Ok(None),
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

    /// What a lock-down of `user` looks at: its access keys, other credentials and groups.
    async fn read_user(&self, user: IamUser) -> Result<UserState, SyncError> {
        let name = &user.user_name;
        let access_keys = self.service.access_keys(name).await?;
        let others = self.service.other_credentials(name).await?;
        let groups = self.service.groups(name).await?.into_iter().collect();
        Ok(UserState { user, access_keys, others, groups })
    }

    /// What still lets a locked-down user in: a missing disabled tag, a console password, an
    /// active access key or other credential, a group.
    async fn residual(&self, user: &IamUser) -> Result<Vec<String>, ServiceError> {
        let name = &user.user_name;
        let id = &user.user_id;
        let mut left = Vec::new();
        if !is_disabled(user) {
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

    /// Claims `name` for the person in the ledger, in lower case (IAM names are unique
    /// case-insensitively), before the write that uses it.
    async fn claim(&self, name: &str, ctx: &Ctx<'_>) -> Result<(), SyncError> {
        if !ctx.claim(&name.to_lowercase()).await? {
            return Err(Code::IamUserNameClaimedByAnother.error(
                "person.userName: another person's IAM user has the same derived name (compared case-insensitively); refusing",
            ));
        }
        Ok(())
    }

    /// Claim, then CreateUser: the new user's id. EntityAlreadyExists (a concurrent create, or
    /// the name in another case): a user that is not the person's is refused; the person's own,
    /// created meanwhile, is planned again (from what it is, not from what was to be created).
    async fn create(&self, new: &IamNewUser, person: &ExternalId, ctx: &Ctx<'_>) -> Result<Option<String>, SyncError> {
        self.claim(&new.user_name, ctx).await?;
        match retrying(false, || self.service.create_user(new)).await.map_err(quota)? {
            Some(id) => Ok((!id.is_empty()).then_some(id)),
            None => match self.service.get_user(&new.user_name).await? {
                Some(u) => {
                    refuse(&u, &new.user_name, person)?;
                    Err(SyncError::Replan("CreateUser: EntityAlreadyExists, the person's IAM user was created meanwhile".into()))
                }
                None => Err(Code::IamUserNameCaseCollision.error(
                    "person.userName: CreateUser answered EntityAlreadyExists for a name GetUser cannot find: a user exists under another capitalisation; refusing",
                )),
            },
        }
    }

    /// HR renamed the person: claim the new name, refuse a user holding it that is not the
    /// person's (read here, after the claim and right before the write, as the claim decides
    /// first), then UpdateUser NewUserName.
    async fn rename(&self, from: &str, to: &str, person: &ExternalId, ctx: &Ctx<'_>) -> Result<(), SyncError> {
        self.claim(to, ctx).await?;
        if let Some(other) = self.service.get_user(to).await? {
            refuse(&other, to, person)?;
        }
        retrying(false, || self.service.update_user(from, None, Some(to))).await.map_err(quota)
    }

    /// One change to the user `name`: whether it took effect (a password already gone, or a
    /// group, key or credential that vanished since the plan, did not).
    async fn execute(&self, name: &str, action: &IamAction, just_created: bool) -> Result<bool, SyncError> {
        let s = &self.service;
        let effective = match action {
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
                    return Err(Code::IamGroupNotFound.error(format!(
                        "IAM_GROUP_MAP: IAM group {group} does not exist (AddUserToGroup: NoSuchEntity)"
                    )));
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
        effective.map_err(quota)
    }
}

/// The `jml-sync:disabled-at` value of a lock-down: when HR says the person left.
fn disabled_at(event: &HrEvent) -> String {
    event.occurred_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The engine's plan of what the planner decided; `locked_down`: the users it locks down.
fn to_plan(planned: Planned, event: &HrEvent, locked_down: Vec<UserState>) -> Plan<Step, IamAccounts> {
    let Planned { decision, steps, user, status, notes } = planned;
    let (user_id, user_name) = match user {
        Some(u) => ((!u.user_id.is_empty()).then_some(u.user_id), Some(u.user_name)),
        None => (None, None),
    };
    let accounts = IamAccounts {
        person: event.external_id.clone(),
        status,
        locked_down: locked_down.into_iter().map(|s| s.user).collect(),
    };
    Plan { decision, steps, accounts, user_id, user_name, resolved_by: "tag", notes }
}
