//! The License Manager user-based subscriptions target: I/O only. [`Target::plan`] resolves the
//! person's AD user names, lists the instances once and reads what the names hold, then asks the
//! pure [`crate::planner`] for the steps; [`Target::apply`] claims the name and executes those
//! steps (waiting on License Manager's asynchronous states); [`Target::verify_revoked`] reads
//! the planned names' holdings again on the planned instance list.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::codes::Code;
use crate::naming::{DirectoryUserNameRule, SUBSCRIPTIONS_TARGET, claim_key, directory_user_name, hint_is_known};
use crate::planner::{Holdings, SubscriptionStep, decision, plan_person, residual};
use crate::port::{SubscriptionInstance, UserSubscriptions};
use jml_core::contract::{Change, EventKind, HrEvent};
use jml_core::engine::{Applied, Ctx, Decision, Desired, Plan, SyncError, Target};
use jml_core::ledger::PersonStatus;

/// How long the ListInstances answer is trusted in a warm container, by a joiner, mover or
/// rehire only: a revocation (a leaver, the release of a previous AD user name) lists the
/// instances afresh, and its read-back reads every instance of that list, so a seat on an
/// instance added since the cache was filled is never missed.
const INSTANCES_TTL: Duration = Duration::from_secs(5 * 60);

/// Product subscription statuses that let a user be associated.
const ACTIVE_PRODUCT: [&str; 2] = ["ACTIVE", "SUBSCRIBED"];

/// The pauses between status reads while a License Manager step completes: about 10 s in all,
/// well within the function's 60 s timeout.
pub const SETTLE_WAITS_MS: [u64; 7] = [250, 500, 1_000, 2_000, 2_000, 2_000, 2_000];

/// What a plan resolved: the names it read, on which instance list, and the name it converges.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionAccounts {
    /// The AD user name a joiner, mover or rehire converges, exactly as the event gives (or
    /// derives) it: claimed, and its spelling remembered, before the first write. `None`: a
    /// leaver.
    pub user: Option<String>,
    /// Every AD user name whose holdings the plan read (filtered reads; each answers every row
    /// of that AD user under the service's own spelling): a leaver's are every spelling the
    /// person was ever given here, and its read-back reads them again.
    pub names: BTreeSet<String>,
    /// The instance list the plan was made on (listed afresh for any revocation); the steps'
    /// waits and the read-back use it, never listing again.
    pub instances: Vec<SubscriptionInstance>,
    /// Names of the inventory nobody has claimed (a name written ahead by an event that never
    /// reached its claim): `apply` claims each before the first write under it.
    pub unclaimed: BTreeSet<String>,
}

/// The names of the person's inventory (and record) they may release: those whose claim is
/// theirs, and those nobody claimed (returned apart: claimed before the first write). A name
/// another person owns is never released, whatever the inventory says: an event refused as
/// `SubscriptionUserOwnedByAnother` wrote its name ahead with the lease before the claim that
/// refused it. One ledger read per distinct claim (usually one).
async fn own_names(ctx: &Ctx<'_>, names: BTreeSet<String>) -> Result<(BTreeSet<String>, BTreeSet<String>), SyncError> {
    let mut owners = std::collections::BTreeMap::new();
    let (mut owned, mut unclaimed) = (BTreeSet::new(), BTreeSet::new());
    for name in names {
        let key = claim_key(&name);
        let owner = match owners.get(&key) {
            Some(owner) => owner,
            None => owners.entry(key.clone()).or_insert(ctx.owner(&key).await?),
        };
        match owner.as_deref() {
            Some(o) if o == ctx.person() => {
                owned.insert(name);
            }
            None => {
                unclaimed.insert(name);
            }
            Some(_) => {
                tracing::warn!(
                    decision = "inventory-name-of-another",
                    "an inventory AD user name is another person's claim: never released"
                );
            }
        }
    }
    Ok((owned, unclaimed))
}

/// Reads `done` until it holds, pausing [`SETTLE_WAITS_MS`] between reads; `InProgress` after.
async fn settle<F, Fut>(step: &str, mut done: F) -> Result<(), SyncError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, SyncError>>,
{
    for pause in std::iter::once(0).chain(SETTLE_WAITS_MS) {
        if pause > 0 {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        if done().await? {
            return Ok(());
        }
    }
    tracing::info!(decision = "in-progress", step, "License Manager step still running; retried");
    Err(SyncError::InProgress(step.to_string()))
}

/// The subscriptions target.
pub struct SubscriptionSync {
    service: Arc<dyn UserSubscriptions>,
    rule: DirectoryUserNameRule,
    instances: Mutex<Option<(Instant, Vec<SubscriptionInstance>)>>,
}

impl std::fmt::Debug for SubscriptionSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionSync").field("rule", &self.rule).finish_non_exhaustive()
    }
}

type SubscriptionPlan = Plan<SubscriptionStep, SubscriptionAccounts>;

impl SubscriptionSync {
    pub fn new(service: Arc<dyn UserSubscriptions>, rule: DirectoryUserNameRule) -> Self {
        Self { service, rule, instances: Mutex::new(None) }
    }

    /// ListInstances: through the warm-container cache, or (`fresh`: a revocation) from the
    /// service, refreshing the cache.
    async fn instances(&self, fresh: bool) -> Result<Vec<SubscriptionInstance>, SyncError> {
        if !fresh
            && let Some((at, list)) = self.instances.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref()
            && at.elapsed() < INSTANCES_TTL
        {
            return Ok(list.clone());
        }
        let list = self.service.instances().await?;
        *self.instances.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// What the AD users `names` name hold, by the exact name of each row (a row answering
    /// several of the names is held once): ListProductSubscriptions and, on each instance,
    /// ListUserAssociations, both filtered to the name.
    async fn holdings(
        &self,
        names: &BTreeSet<String>,
        instances: &[SubscriptionInstance],
    ) -> Result<Holdings, SyncError> {
        let mut held = Holdings::new();
        for username in names {
            for (name, product) in self.service.products(username).await? {
                held.entry(name).or_default().products.insert(product);
            }
            for i in instances {
                for name in self.service.associated_as(&i.instance_id, username).await? {
                    held.entry(name).or_default().instances.insert(i.instance_id.clone());
                }
            }
        }
        Ok(held)
    }

    /// A leaver: every AD user name the person was ever given here (the write-ahead inventory)
    /// and the ledger's, read on a fresh instance list (a revocation never trusts the cache),
    /// everything released.
    async fn plan_leaver(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<SubscriptionPlan, SyncError> {
        let resolved_by = if ctx.record.is_some() { "ledger" } else { "event" };
        let (mut names, unclaimed) = own_names(ctx, ctx.known_accounts().await?).await?;
        names.extend(unclaimed.iter().cloned());
        // The leaver's directoryUserName hint counts only if it is the person's own (it always
        // is among `names` then): a leaver never releases another person's AD user.
        if let Change::Leaver { directory_user_name: Some(hint), .. } = &event.change
            && !hint_is_known(&names, hint.as_str())
        {
            tracing::info!(decision = "leaver-hint-ignored", "directoryUserName hint is not in the inventory");
        }
        if names.is_empty() {
            return Ok(Plan::nothing(Decision::LeaverWithoutAccount, SubscriptionAccounts::default(), resolved_by));
        }
        let instances = self.instances(true).await?;
        let held = self.holdings(&names, &instances).await?;
        let steps = plan_person(None, &held, &instances, self.service.adds_rds_with_other_products())
            .map_err(|(code, reason)| code.error(reason))?;
        let user_name = ctx.record.and_then(|r| r.user_name.clone()).or_else(|| names.last().cloned());
        Ok(Plan {
            decision: decision(EventKind::Leaver, &steps),
            steps,
            accounts: SubscriptionAccounts { user: None, names, instances, unclaimed },
            user_id: None,
            user_name,
            resolved_by,
            notes: Vec::new(),
        })
    }

    /// A joiner, mover or rehire: the AD user name exactly as the event gives (or derives) it,
    /// converged to the event's subscriptions; rows the service holds under another spelling of
    /// it are released first, and so, after an AD rename (if only in case) or a lost race
    /// (`ctx.sweep`), is everything held under every other name the person was given, on a
    /// fresh instance list.
    async fn plan_profile(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<SubscriptionPlan, SyncError> {
        let resolved_by = if ctx.record.is_some() { "ledger" } else { "event" };
        let Some(username) = directory_user_name(event, ctx.record, self.rule)? else {
            return Ok(Plan::nothing(Decision::LeaverWithoutAccount, SubscriptionAccounts::default(), resolved_by));
        };
        let user = username.as_str();
        let revoke_others = ctx.sweep || ctx.record.and_then(|r| r.user_name.as_deref()).is_some_and(|old| old != user);
        let mut names = BTreeSet::from([user.to_string()]);
        let mut unclaimed = BTreeSet::new();
        if revoke_others {
            let (owned, others) = own_names(ctx, ctx.known_accounts().await?).await?;
            names.extend(owned);
            names.extend(others.iter().cloned());
            unclaimed = others;
            // The name this event converges is claimed in `apply` like any other.
            unclaimed.remove(user);
        }
        let desired = event.profile().map(|p| p.subscriptions.as_slice()).unwrap_or_default();
        let rds = self.service.adds_rds_with_other_products();
        let mut instances = self.instances(revoke_others).await?;
        let mut held = self.holdings(&names, &instances).await?;
        let mut steps = plan_person(Some((user, desired)), &held, &instances, rds);
        if steps.is_err() && !revoke_others {
            // An instance the event names that the cached list does not know is looked up
            // afresh before the event is refused.
            instances = self.instances(true).await?;
            held = self.holdings(&names, &instances).await?;
            steps = plan_person(Some((user, desired)), &held, &instances, rds);
        }
        let steps = steps.map_err(|(code, reason)| code.error(reason))?;
        Ok(Plan {
            decision: decision(event.kind(), &steps),
            steps,
            accounts: SubscriptionAccounts { user: Some(user.to_string()), names, instances, unclaimed },
            user_id: None,
            user_name: Some(user.to_string()),
            resolved_by,
            notes: Vec::new(),
        })
    }

    /// One step. License Manager works asynchronously (AWS's own sample waits on both): a
    /// product is stopped only once every disassociation from an instance providing it has
    /// completed, and a user is associated only once a product subscription the instance
    /// provides is active. Those status reads depend on the writes before them, so they are made
    /// here, not in the plan. Each wait is bounded ([`SETTLE_WAITS_MS`]); a step still running
    /// after it is `InProgress`: the record goes back to its queue and the next delivery plans
    /// again from the service's state.
    async fn execute(&self, step: &SubscriptionStep, instances: &[SubscriptionInstance]) -> Result<(), SyncError> {
        let username = step.user();
        match step {
            SubscriptionStep::Disassociate { instance_id, .. } => {
                self.service.disassociate_user(username, instance_id).await?
            }
            SubscriptionStep::Stop { product, .. } => {
                let providing = instances.iter().filter(|i| i.products.iter().any(|p| p == product));
                for instance_id in providing.map(|i| i.instance_id.as_str()) {
                    settle("DisassociateUser", || async {
                        let status = self.service.association_status(instance_id, username).await?;
                        Ok(status.as_deref() != Some("DISASSOCIATING"))
                    })
                    .await?;
                }
                self.service.stop_product_subscription(username, product).await?
            }
            SubscriptionStep::Start { product, .. } => {
                self.service.start_product_subscription(username, product).await?
            }
            SubscriptionStep::Associate { instance_id, .. } => {
                let products: &[String] =
                    instances.iter().find(|i| &i.instance_id == instance_id).map_or(&[], |i| i.products.as_slice());
                settle("StartProductSubscription", || async {
                    for product in products {
                        let status = self.service.product_status(username, product).await?;
                        if status.as_deref().is_some_and(|s| ACTIVE_PRODUCT.contains(&s)) {
                            return Ok(true);
                        }
                    }
                    Ok(false)
                })
                .await?;
                self.service.associate_user(username, instance_id).await?
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Target for SubscriptionSync {
    type Step = SubscriptionStep;
    type Accounts = SubscriptionAccounts;

    fn name(&self) -> &'static str {
        SUBSCRIPTIONS_TARGET
    }

    /// The AD user name, exactly as the event gives (or derives) it: the spelling `apply`
    /// remembers before writing under it.
    fn ahead(&self, event: &HrEvent) -> Vec<String> {
        match event.change {
            Change::Leaver { .. } => Vec::new(),
            _ => directory_user_name(event, None, self.rule)
                .ok()
                .flatten()
                .map(|n| n.as_str().to_string())
                .into_iter()
                .collect(),
        }
    }

    async fn plan(&self, desired: &Desired<'_>, ctx: &Ctx<'_>) -> Result<SubscriptionPlan, SyncError> {
        match desired.state.kind() {
            EventKind::Leaver => self.plan_leaver(desired.state, ctx).await,
            _ => self.plan_profile(desired.state, ctx).await,
        }
    }

    async fn apply(&self, plan: &SubscriptionPlan, ctx: &Ctx<'_>) -> Result<Applied, SyncError> {
        if let Some(user) = &plan.accounts.user {
            // Ownership: the AD user name is claimed before any write, even when there is
            // nothing to write (first claimant wins, compared case-insensitively as AD does).
            if !ctx.claim(&claim_key(user)).await? {
                return Err(Code::SubscriptionUserOwnedByAnother.error(
                    "person.directoryUserName: this Active Directory user name (sent or derived) belongs to another person (ledger claim); refusing to change its subscriptions",
                ));
            }
            // The exact spelling enters the inventory before any write under it (free: it was
            // written ahead with the lease), so a leaver finds every spelling ever used.
            ctx.remember(user).await?;
        }
        // A name nobody had claimed is claimed before the first write under it; claimed first
        // by another person meanwhile, the service changed under the plan: planned again (and
        // then left alone).
        for name in &plan.accounts.unclaimed {
            if plan.steps.iter().any(|s| s.user() == name) && !ctx.claim(&claim_key(name)).await? {
                return Err(SyncError::Replan("the claim of an AD user name of the inventory".into()));
            }
        }
        for step in &plan.steps {
            self.execute(step, &plan.accounts.instances).await?;
        }
        let status = match (&plan.accounts.user, &plan.user_name) {
            (Some(_), _) => PersonStatus::Active,
            (None, Some(_)) => PersonStatus::Disabled,
            (None, None) => PersonStatus::Deleted,
        };
        Ok(Applied {
            decision: plan.decision,
            actions: plan.actions(),
            user_id: None,
            user_name: plan.user_name.clone(),
            status,
            resolved_by: plan.resolved_by,
            notes: plan.notes.clone(),
        })
    }

    /// The planned names' holdings read again (a real read) on the planned instance list;
    /// what the service holds under any name that answers one of them is reported (without
    /// the name).
    async fn verify_revoked(&self, plan: &SubscriptionPlan, _ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError> {
        let held = self.holdings(&plan.accounts.names, &plan.accounts.instances).await?;
        Ok(residual(&held))
    }
}
