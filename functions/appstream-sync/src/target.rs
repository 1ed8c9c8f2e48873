//! The AppStream 2.0 user pool target, I/O only: [`Target::plan`] reads (the person's addresses
//! from the ledger, each one's stacks from AppStream) and asks the [`planner`]; [`Target::apply`]
//! sends that plan's steps in order; a leaver's read-back reads the planned users' stacks again.
//!
//! A user pool user carries nothing jml-sync could stamp: only the ledger knows the person's
//! users (the name claims and the write-ahead inventory, see [`crate::naming`]).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use jml_core::contract::{Change, EventKind, Profile};
use jml_core::engine::{Decision, SyncError};
use jml_core::ledger::PersonStatus;
use jml_core::target::{Applied, Ctx, Desired, Plan, Target};

use crate::codes::Code;
use crate::naming::{self, APPSTREAM_TARGET, StackRules};
use crate::planner::{self, Accounts, IfExists, ProfileState, Read, Step, Wanted};
use crate::port::{AppStreamNewUser, AppStreamUsers, ServiceError, WelcomeEmail, op};

/// How this target finds a person's users: the ledger's name claims and inventory.
const RESOLVED_BY: &str = "ledger-claim";

/// The AppStream target.
pub struct AppStreamSync {
    service: Arc<dyn AppStreamUsers>,
    rules: StackRules,
    welcome: WelcomeEmail,
}

impl std::fmt::Debug for AppStreamSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStreamSync").field("welcome", &self.welcome).finish_non_exhaustive()
    }
}

/// What CreateUser left, when it had to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Made {
    Created,
    /// A user from before was deleted and created again (its stacks went with it).
    Recreated,
    /// The user existed, enabled: an earlier attempt of this same change created it.
    Kept,
}

/// What an apply did so far: its actions and notes (free of personal data).
struct Run<'p> {
    wanted: Option<&'p Wanted>,
    actions: Vec<String>,
    notes: Vec<String>,
    created: bool,
    /// A profile's previous address was released (something was written to it).
    released: bool,
}

impl Run<'_> {
    fn did(&mut self, user: &str, actions: impl IntoIterator<Item = String>) {
        let before = self.actions.len();
        self.actions.extend(actions);
        if self.actions.len() > before && self.wanted.is_some_and(|w| w.user.user_name != user) {
            self.released = true;
        }
    }

    fn note(&mut self, note: &str) {
        if !self.notes.iter().any(|n| n == note) {
            self.notes.push(note.to_string());
        }
    }
}

impl AppStreamSync {
    pub fn new(service: Arc<dyn AppStreamUsers>, rules: StackRules, welcome: WelcomeEmail) -> Self {
        Self { service, rules, welcome }
    }

    /// DescribeUserStackAssociations of each user.
    async fn read(&self, users: BTreeSet<String>) -> Result<Read, SyncError> {
        let mut read = Read::new();
        for user in users {
            let stacks = self.service.stacks(&user).await?.into_iter().collect();
            read.insert(user, stacks);
        }
        Ok(read)
    }

    /// A joiner, mover or rehire: every address of the person read, and the planner's steps.
    async fn plan_profile(
        &self,
        kind: EventKind,
        profile: &Profile,
        ctx: &Ctx<'_>,
    ) -> Result<Plan<Step, Accounts>, SyncError> {
        let name = naming::user_name(profile.email.as_str()).map_err(|rule| Code::AppStreamUserName.error(rule))?;
        let record = ctx.record;
        let known = record.filter(|r| r.status != PersonStatus::Deleted).and_then(|r| r.user_name.as_deref());
        if matches!(kind, EventKind::Joiner | EventKind::Mover)
            && record.is_some_and(|r| r.status == PersonStatus::Disabled)
        {
            let mut plan = Plan::nothing(Decision::IgnoredForDisabledUser, Accounts::default(), RESOLVED_BY);
            plan.user_name = known.map(str::to_string);
            return Ok(plan);
        }
        // Every address of the inventory and the record (after a lost race too, `ctx.sweep`: an
        // address a concurrent delivery created is in it), and the current one.
        let mut addresses = ctx.known_accounts().await?;
        addresses.insert(name.clone());
        let read = self.read(addresses).await?;
        let user = AppStreamNewUser {
            user_name: name.clone(),
            first_name: naming::pool_name(profile.name.given_name.as_str()),
            last_name: naming::pool_name(profile.name.family_name.as_str()),
            welcome: self.welcome,
        };
        let wanted = Wanted { user, stacks: self.rules.desired(profile) };
        let rehire = kind == EventKind::Rehire;
        let (steps, notes) = planner::profile(&ProfileState {
            rehire,
            user: &wanted.user,
            known,
            desired: &wanted.stacks,
            read: &read,
            renamed: known == Some(name.as_str()) && planner::names_changed(profile, record),
        });
        let creates = steps.iter().any(|s| matches!(s, Step::CreateUser { .. }));
        Ok(Plan {
            decision: planner::profile_decision(rehire, creates, !steps.is_empty()),
            steps,
            accounts: Accounts { read, wanted: Some(wanted) },
            user_id: None,
            user_name: Some(name),
            resolved_by: RESOLVED_BY,
            notes,
        })
    }

    /// A leaver: every address of the write-ahead inventory and the record's, each released.
    async fn plan_leaver(&self, ctx: &Ctx<'_>) -> Result<Plan<Step, Accounts>, SyncError> {
        let names = ctx.known_accounts().await?;
        if names.is_empty() {
            return Ok(Plan::nothing(Decision::LeaverWithoutAccount, Accounts::default(), RESOLVED_BY));
        }
        let user_name = ctx.record.and_then(|r| r.user_name.clone()).or_else(|| names.last().cloned());
        let read = self.read(names).await?;
        Ok(Plan {
            decision: Decision::Disable,
            steps: planner::leaver_steps(&read),
            accounts: Accounts { read, wanted: None },
            user_id: None,
            user_name,
            resolved_by: RESOLVED_BY,
            notes: Vec::new(),
        })
    }

    /// The name is this person's, or becomes it (the claim also enters the inventory, before
    /// the create); another person's is refused.
    async fn claim(&self, name: &str, ctx: &Ctx<'_>) -> Result<(), SyncError> {
        if ctx.claim(name).await? {
            return Ok(());
        }
        Err(Code::AppStreamUserOwnedByAnother.error(
            "person.email: the AppStream user with this e-mail address belongs to another person (ledger claim); refusing to take it over",
        ))
    }

    /// CreateUser; `Ok(false)`: it already exists (ResourceAlreadyExistsException).
    async fn create(&self, user: &AppStreamNewUser, run: &mut Run<'_>) -> Result<bool, SyncError> {
        if planner::names_omitted(user) {
            run.note(planner::NAME_OMITTED);
        }
        self.service.create_user(user).await.map_err(|e| match e {
            ServiceError::QuotaExceeded { .. } => Code::AppStreamUserPoolLimit.error(
                "CreateUser: LimitExceededException: the AppStream user pool is at its user quota (small by default); raise the quota, then redrive",
            ),
            other => SyncError::Service(other),
        })
    }

    /// CreateUser for an address that is not (or no longer) the person's current user. When the
    /// user already exists (ours by the claim), it was either created by an earlier attempt of
    /// this change that did not commit (enabled: kept, a second welcome e-mail would only
    /// confuse) or it is a user from before (disabled by a leaver or a move; jml-sync before
    /// DeleteUser only disabled): its old password must not come back, so it is deleted and
    /// created again. A rehire always starts afresh (`IfExists::Recreate`), enabled or not.
    ///
    /// Which of them it is can only be read here, after CreateUser answered: AppStream has no
    /// per-user read, and the plan does not read the whole pool (DescribeUsers) for every joiner.
    async fn create_fresh(
        &self,
        user: &AppStreamNewUser,
        if_exists: IfExists,
        run: &mut Run<'_>,
    ) -> Result<Made, SyncError> {
        let name = user.user_name.as_str();
        if self.create(user, run).await? {
            run.did(name, ["CreateUser".to_string()]);
            run.created = true;
            return Ok(Made::Created);
        }
        let enabled = match if_exists {
            IfExists::Recreate => None,
            IfExists::KeepIfEnabled => {
                self.service.users().await?.into_iter().find(|u| u.user_name == name).map(|u| u.enabled)
            }
        };
        if enabled == Some(true) {
            run.note("CreateUser: ResourceAlreadyExistsException; the user is ours by the ledger claim and enabled: an earlier attempt of this change created it");
            return Ok(Made::Kept);
        }
        run.note("CreateUser: ResourceAlreadyExistsException; the user is ours by the ledger claim but from before: deleted and created again, so no earlier password works");
        if self.service.delete_user(name).await? {
            run.did(name, ["DeleteUser".to_string()]);
        }
        if self.create(user, run).await? {
            run.did(name, ["CreateUser".to_string()]);
            run.created = true;
            return Ok(Made::Recreated);
        }
        // Created again by someone else between the two calls: retried, never taken over blind.
        Err(SyncError::Service(ServiceError::Unavailable {
            op: op::CREATE_USER,
            message: "the user exists again right after DeleteUser".into(),
        }))
    }

    /// Decides the wanted user's stack steps again, from a read made now: after apply created
    /// that user anew, the stacks the plan read went with the user it replaced (a read that only
    /// exists after the write).
    async fn restack(&self, wanted: &Wanted, queue: &mut VecDeque<Step>) -> Result<(), SyncError> {
        let name = wanted.user.user_name.as_str();
        let now: BTreeSet<String> = self.service.stacks(name).await?.into_iter().collect();
        queue.retain(|s| s.user() != name);
        queue.extend(planner::stack_steps(name, &wanted.stacks, &now));
        Ok(())
    }
}

#[async_trait]
impl Target for AppStreamSync {
    type Step = Step;
    type Accounts = Accounts;

    fn name(&self) -> &'static str {
        APPSTREAM_TARGET
    }

    async fn plan(&self, desired: &Desired<'_>, ctx: &Ctx<'_>) -> Result<Plan<Step, Accounts>, SyncError> {
        match &desired.state.change {
            Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p) => {
                self.plan_profile(desired.state.kind(), p, ctx).await
            }
            Change::Leaver { .. } => self.plan_leaver(ctx).await,
        }
    }

    /// The plan's steps in order, a batch call for consecutive stacks of one user. Two answers
    /// change what follows: CreateUser that had to replace a user from before (its stacks are
    /// read again), and BatchAssociateUserStack's USER_NAME_NOT_FOUND for a user the plan took
    /// as existing (deleted outside jml-sync: created again, then its stacks).
    async fn apply(&self, plan: &Plan<Step, Accounts>, ctx: &Ctx<'_>) -> Result<Applied, SyncError> {
        let wanted = plan.accounts.wanted.as_ref();
        let leaver = plan.decision == Decision::Disable;
        let planned_create = plan.steps.iter().any(|s| matches!(s, Step::CreateUser { .. }));
        let mut run = Run { wanted, actions: Vec::new(), notes: plan.notes.clone(), created: false, released: false };
        let mut recovered = false;
        let mut queue: VecDeque<Step> = plan.steps.iter().cloned().collect();
        while let Some(step) = queue.pop_front() {
            match &step {
                Step::CreateUser { user, claim, if_exists } => {
                    if *claim {
                        self.claim(&user.user_name, ctx).await?;
                    }
                    if self.create_fresh(user, *if_exists, &mut run).await? == Made::Recreated
                        && let Some(wanted) = wanted
                    {
                        self.restack(wanted, &mut queue).await?;
                    }
                }
                Step::Disassociate { user, .. } => {
                    let stacks = planner::batch(&step, &mut queue);
                    let errors = self.service.disassociate(user, &stacks).await?;
                    planner::check_batch(op::BATCH_DISASSOCIATE_USER_STACK, &errors)?;
                    run.did(user, stacks.iter().map(|s| format!("BatchDisassociateUserStack {s}")));
                }
                Step::Associate { user, .. } => {
                    let stacks = planner::batch(&step, &mut queue);
                    let errors = self.service.associate(user, &stacks).await?;
                    let gone = errors.iter().any(|e| e.code == planner::USER_NAME_NOT_FOUND);
                    if let Some(wanted) = wanted.filter(|_| gone && !planned_create && !recovered) {
                        // The ledger's user was deleted outside jml-sync: the event is the desired state.
                        recovered = true;
                        run.note("the AppStream user had been deleted outside jml-sync: created again");
                        self.create_fresh(&wanted.user, IfExists::KeepIfEnabled, &mut run).await?;
                        self.restack(wanted, &mut queue).await?;
                        continue;
                    }
                    // USER_NAME_NOT_FOUND here: just created and still propagating (retried).
                    planner::check_batch(op::BATCH_ASSOCIATE_USER_STACK, &errors)?;
                    run.did(user, stacks.iter().map(|s| format!("BatchAssociateUserStack {s}")));
                }
                Step::DisableUser { user } => {
                    if self.service.disable_user(user).await? {
                        run.did(user, ["DisableUser".to_string()]);
                    } else {
                        // Already gone (an address released before, a user deleted by hand).
                        if leaver {
                            run.note("DisableUser: the user no longer exists (ResourceNotFoundException); nothing to disable");
                        }
                        queue.retain(|s| !(matches!(s, Step::DeleteUser { .. }) && s.user() == user));
                    }
                }
                Step::DeleteUser { user } => {
                    if self.service.delete_user(user).await? {
                        run.did(user, ["DeleteUser".to_string()]);
                    }
                }
            }
        }
        if run.released {
            run.note(
                "the e-mail address changed: every previous AppStream user of the person was released and deleted",
            );
        }
        let decision = planner::applied_decision(plan.decision, run.created, !run.actions.is_empty());
        Ok(Applied {
            decision,
            actions: run.actions,
            user_id: None,
            user_name: plan.user_name.clone(),
            status: planner::status(decision, plan.user_name.as_deref()),
            resolved_by: RESOLVED_BY,
            notes: run.notes,
        })
    }

    /// Every user the plan resolved: no stack left. (AppStream has no per-user read of the
    /// Enabled flag, only DescribeUsers over the whole pool; DisableUser answered success or
    /// ResourceNotFound for each user in `apply`.)
    async fn verify_revoked(&self, plan: &Plan<Step, Accounts>, _ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError> {
        let mut left = Vec::new();
        for (n, name) in plan.accounts.read.keys().enumerate() {
            let stacks = self.service.stacks(name).await?;
            if !stacks.is_empty() {
                left.push(format!("AppStream user #{}: {} stack(s): {}", n + 1, stacks.len(), stacks.join(",")));
            }
        }
        Ok(left)
    }
}
