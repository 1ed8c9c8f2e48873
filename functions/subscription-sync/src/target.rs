//! The License Manager user-based subscriptions target: the person's Active Directory user name,
//! the pure subscription planner, and the converge step through the `UserSubscriptions` port.
//!
//! Billing for a user continues until they are disassociated from every instance and their
//! product subscriptions are stopped, so a leaver releases everything, in that order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::port::{SubscriptionInstance, UserSubscriptions};
use jml_core::contract::{Change, DirectoryUserName, EventKind, HrEvent, Subscription};
use jml_core::engine::Decision;
use jml_core::engine::{Ctx, Outcome, SyncError, Target};
use jml_core::ledger::PersonRecord;

/// The ledger target name of subscription-sync.
pub const SUBSCRIPTIONS_TARGET: &str = "user-subscriptions";
/// How long the ListInstances answer is trusted in a warm container, by a joiner, mover or
/// rehire only: a revocation (a leaver, the release of a previous AD user name) and the leaver's
/// read-back list the instances afresh, so a seat on an instance added since is never missed.
const INSTANCES_TTL: Duration = Duration::from_secs(5 * 60);

/// How to derive the AD user name when HR does not send `person.directoryUserName`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirectoryUserNameRule {
    /// The part of the Identity Store userName before `@` (the whole userName without one).
    #[default]
    UserNameLocalPart,
    /// HR must send `person.directoryUserName`; without it the event is parked.
    Required,
}

impl DirectoryUserNameRule {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user-name-local-part" => Some(Self::UserNameLocalPart),
            "required" => Some(Self::Required),
            _ => None,
        }
    }
}

/// A user's subscriptions as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentSubscriptions {
    pub products: BTreeSet<String>,
    pub instances: BTreeSet<String>,
}

impl CurrentSubscriptions {
    pub fn is_empty(&self) -> bool {
        self.products.is_empty() && self.instances.is_empty()
    }
}

/// What one AD user holds, by the user name exactly as License Manager holds each row (the list
/// calls return it): a row under another spelling is released, and re-granted under the name the
/// event gives, so that the service holds the person under one spelling, the latest.
pub type Holdings = BTreeMap<String, CurrentSubscriptions>;

/// One step, in execution order: disassociations, stops, starts, associations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubscriptionAction {
    Disassociate { instance_id: String },
    Stop { product: String },
    Start { product: String },
    Associate { instance_id: String },
}

impl SubscriptionAction {
    pub fn describe(&self) -> String {
        match self {
            Self::Disassociate { instance_id } => format!("DisassociateUser {instance_id}"),
            Self::Stop { product } => format!("StopProductSubscription {product}"),
            Self::Start { product } => format!("StartProductSubscription {product}"),
            Self::Associate { instance_id } => format!("AssociateUser {instance_id}"),
        }
    }
}

/// The Remote Desktop Services subscriber access license, subscribed automatically with other
/// products.
pub const RDS_SAL: &str = "REMOTE_DESKTOP_SERVICES";

/// Plans the change from `current` to `desired` (`None`: release everything, a leaver).
/// Desired instances must be among those the service lists and offer the product; else the
/// event can never succeed (`Err((code, reason))`).
///
/// The products wanted are the event's, nothing else: never what happened to be subscribed
/// before. The one exception is the service's own: when License Manager subscribes the RDS SAL
/// with the other products (`service_adds_rds`), the SAL held beside a wanted product other
/// than itself is License Manager's doing, neither drift nor stopped. Where the service does not
/// add it, a SAL the event does not ask for is stopped like any other product. Either way the
/// end state is a function of the event (and the service), not of the order events came in.
pub fn plan_subscriptions(
    desired: Option<&[Subscription]>,
    current: &CurrentSubscriptions,
    instances: &[SubscriptionInstance],
    service_adds_rds: bool,
) -> Result<Vec<SubscriptionAction>, (&'static str, String)> {
    let mut want_products = BTreeSet::new();
    let mut want_instances = BTreeSet::new();
    for (i, s) in desired.unwrap_or_default().iter().enumerate() {
        for id in &s.instance_ids {
            let Some(instance) = instances.iter().find(|x| x.instance_id == id.as_str()) else {
                return Err((
                    "UnknownInstance",
                    format!(
                        "subscriptions[{i}]: instance {id} is not a License Manager user-based subscriptions instance (ListInstances)"
                    ),
                ));
            };
            if !instance.products.iter().any(|p| p == s.product.as_str()) {
                return Err((
                    "ProductNotOnInstance",
                    format!(
                        "subscriptions[{i}]: instance {id} does not provide {} (it provides {})",
                        s.product,
                        instance.products.join(", ")
                    ),
                ));
            }
            want_instances.insert(id.as_str().to_string());
        }
        want_products.insert(s.product.as_str().to_string());
    }
    let mut actions = Vec::new();
    actions.extend(
        current
            .instances
            .difference(&want_instances)
            .map(|i| SubscriptionAction::Disassociate { instance_id: i.clone() }),
    );
    // The Remote Desktop Services SAL, where License Manager subscribes it itself with the other
    // products: held next to a wanted product that triggers it, it is not drift and is never
    // stopped; otherwise (nothing else wanted, or a service that does not add it) it is stopped
    // unless wanted, after the others.
    let others_stay = service_adds_rds && want_products.iter().any(|p| p != RDS_SAL);
    let (rds, stops): (Vec<&String>, Vec<&String>) = current
        .products
        .difference(&want_products)
        .filter(|p| !(p.as_str() == RDS_SAL && others_stay))
        .partition(|p| p.as_str() == RDS_SAL);
    actions.extend(stops.into_iter().chain(rds).map(|p| SubscriptionAction::Stop { product: p.clone() }));
    actions
        .extend(want_products.difference(&current.products).map(|p| SubscriptionAction::Start { product: p.clone() }));
    actions.extend(
        want_instances.difference(&current.instances).map(|i| SubscriptionAction::Associate { instance_id: i.clone() }),
    );
    Ok(actions)
}

/// The AD user name for the event: sent by HR, else remembered in the ledger, else derived.
pub fn directory_user_name(
    event: &HrEvent,
    record: Option<&PersonRecord>,
    rule: DirectoryUserNameRule,
) -> Result<Option<DirectoryUserName>, SyncError> {
    let remembered = record.and_then(|r| r.user_name.as_deref()).and_then(|n| DirectoryUserName::parse(n).ok());
    match &event.change {
        Change::Leaver { directory_user_name, .. } => Ok(directory_user_name.clone().or(remembered)),
        Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p) => {
            if let Some(n) = &p.directory_user_name {
                return Ok(Some(n.clone()));
            }
            match rule {
                DirectoryUserNameRule::Required => Err(SyncError::permanent(
                    "NoDirectoryUserName",
                    "person.directoryUserName: is required (DIRECTORY_USERNAME_RULE=required)",
                )),
                DirectoryUserNameRule::UserNameLocalPart => {
                    let local = p.user_name.as_str().split('@').next().unwrap_or_default();
                    DirectoryUserName::parse(local).map(Some).map_err(|rule| {
                        SyncError::permanent(
                            "NoDirectoryUserName",
                            format!("person.directoryUserName: not sent, and the userName's local part {rule}"),
                        )
                    })
                }
            }
        }
    }
}

/// The claim key of an AD user name: lower-cased, as AD compares them (ownership is the AD
/// user's, whatever the spelling).
pub fn claim_key(name: &str) -> String {
    name.to_lowercase()
}

/// Do two user names name the same Active Directory user? AD compares sAMAccountNames without
/// case; how License Manager compares them is not documented (see `crate::port`).
pub fn same_ad_user(a: &str, b: &str) -> bool {
    a == b || claim_key(a) == claim_key(b)
}

/// Every spelling of every AD user name the person was given here, exactly: the write-ahead
/// inventory (each spelling used with License Manager, and the lower-cased claim keys) and the
/// record's. Not folded by case: each is read back, and what the service holds under it is
/// released under the name the service lists.
async fn known_names(ctx: &Ctx<'_>) -> Result<BTreeSet<String>, SyncError> {
    ctx.known_accounts().await
}

/// Product subscription statuses that let a user be associated.
const ACTIVE_PRODUCT: [&str; 2] = ["ACTIVE", "SUBSCRIBED"];

/// The pauses between status reads while a License Manager step completes: about 10 s in all,
/// well within the function's 60 s timeout.
pub const SETTLE_WAITS_MS: [u64; 7] = [250, 500, 1_000, 2_000, 2_000, 2_000, 2_000];

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

impl SubscriptionSync {
    pub fn new(service: Arc<dyn UserSubscriptions>, rule: DirectoryUserNameRule) -> Self {
        Self { service, rule, instances: Mutex::new(None) }
    }

    /// ListInstances: through the warm-container cache, or (`fresh`: a revocation or its
    /// read-back) from the service, refreshing the cache.
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

    /// What the AD user `username` names holds, by the exact name of each row.
    async fn holdings(&self, username: &str, instances: &[SubscriptionInstance]) -> Result<Holdings, SyncError> {
        let mut held = Holdings::new();
        for (name, product) in self.service.products(username).await? {
            held.entry(name).or_default().products.insert(product);
        }
        for i in instances {
            for name in self.service.associated_as(&i.instance_id, username).await? {
                held.entry(name).or_default().instances.insert(i.instance_id.clone());
            }
        }
        Ok(held)
    }

    /// Releases everything the AD user `username` names holds, under each name the service
    /// holds it (each at most once: `done`), on a fresh instance list.
    async fn release(
        &self,
        username: &str,
        instances: &[SubscriptionInstance],
        dry_run: bool,
        done: &mut BTreeSet<String>,
    ) -> Result<Vec<SubscriptionAction>, SyncError> {
        let mut actions = Vec::new();
        for (name, held) in self.holdings(username, instances).await? {
            if !done.insert(name.clone()) {
                continue;
            }
            let plan = plan_subscriptions(None, &held, instances, self.service.adds_rds_with_other_products())
                .map_err(|(code, reason)| SyncError::permanent(code, reason))?;
            if !dry_run {
                self.execute(&name, &plan, instances).await?;
            }
            actions.extend(plan);
        }
        Ok(actions)
    }

    /// License Manager works asynchronously (AWS's own sample waits on both): a product is
    /// stopped only once every disassociation from an instance providing it has completed, and a
    /// user is associated only once a product subscription the instance provides is active. Each
    /// wait is bounded ([`SETTLE_WAITS_MS`]); a step still running after it is `InProgress`: the
    /// record goes back to its queue and the next delivery resumes from the service's state.
    async fn execute(
        &self,
        username: &str,
        actions: &[SubscriptionAction],
        instances: &[SubscriptionInstance],
    ) -> Result<(), SyncError> {
        let providing = |product: &str| -> Vec<String> {
            instances
                .iter()
                .filter(|i| i.products.iter().any(|p| p == product))
                .map(|i| i.instance_id.clone())
                .collect()
        };
        for a in actions {
            match a {
                SubscriptionAction::Disassociate { instance_id } => {
                    self.service.disassociate_user(username, instance_id).await?
                }
                SubscriptionAction::Stop { product } => {
                    for instance_id in providing(product) {
                        settle("DisassociateUser", || async {
                            let status = self.service.association_status(&instance_id, username).await?;
                            Ok(status.as_deref() != Some("DISASSOCIATING"))
                        })
                        .await?;
                    }
                    self.service.stop_product_subscription(username, product).await?
                }
                SubscriptionAction::Start { product } => {
                    self.service.start_product_subscription(username, product).await?
                }
                SubscriptionAction::Associate { instance_id } => {
                    let products: Vec<String> = instances
                        .iter()
                        .find(|i| &i.instance_id == instance_id)
                        .map(|i| i.products.clone())
                        .unwrap_or_default();
                    settle("StartProductSubscription", || async {
                        for product in &products {
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
        }
        Ok(())
    }

    /// Plans (and unless dry run executes) `desired` for the AD user name exactly as given:
    /// rows the service holds under another spelling of it are released first. On the cached
    /// instance list; an instance the event names that the cache does not know is looked up
    /// afresh before the event is refused.
    async fn converge_name(
        &self,
        username: &str,
        desired: &[Subscription],
        dry_run: bool,
    ) -> Result<Vec<SubscriptionAction>, SyncError> {
        let rds = self.service.adds_rds_with_other_products();
        let mut instances = self.instances(false).await?;
        let mut held = self.holdings(username, &instances).await?;
        let mut plan =
            plan_subscriptions(Some(desired), held.get(username).unwrap_or(&Default::default()), &instances, rds);
        if plan.is_err() {
            instances = self.instances(true).await?;
            held = self.holdings(username, &instances).await?;
            plan =
                plan_subscriptions(Some(desired), held.get(username).unwrap_or(&Default::default()), &instances, rds);
        }
        let plan = plan.map_err(|(code, reason)| SyncError::permanent(code, reason))?;
        let mut actions = Vec::new();
        for (name, other) in held.iter().filter(|(name, _)| name.as_str() != username) {
            let release = plan_subscriptions(None, other, &instances, rds)
                .map_err(|(code, reason)| SyncError::permanent(code, reason))?;
            if !dry_run {
                self.execute(name, &release, &instances).await?;
            }
            actions.extend(release);
        }
        if !dry_run {
            self.execute(username, &plan, &instances).await?;
        }
        actions.extend(plan);
        Ok(actions)
    }
}

#[async_trait]
impl Target for SubscriptionSync {
    fn name(&self) -> &'static str {
        SUBSCRIPTIONS_TARGET
    }

    /// The AD user name, exactly as the event gives (or derives) it: the spelling the converge
    /// step remembers before writing under it.
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

    async fn converge(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<Outcome, SyncError> {
        let (record, dry_run) = (ctx.record, ctx.dry_run);
        let outcome = |decision, actions: Vec<SubscriptionAction>, name: Option<String>| Outcome {
            decision,
            actions: actions.iter().map(SubscriptionAction::describe).collect(),
            user_id: None,
            user_name: name,
            resolved_by: if record.is_some() { "ledger" } else { "event" },
            dry_run,
            notes: vec![],
        };
        let kind = event.kind();
        if kind == EventKind::Leaver {
            // Every AD user name this person was ever given here (the write-ahead inventory) and
            // the ledger's; a leaver's directoryUserName hint counts only if the claim is theirs,
            // so a leaver can never release another person's (or an unmanaged) AD user.
            let names = known_names(ctx).await?;
            if let Change::Leaver { directory_user_name: Some(hint), .. } = &event.change
                && !names.iter().any(|n| same_ad_user(n, hint.as_str()))
            {
                tracing::info!(decision = "leaver-hint-ignored", "directoryUserName hint is not in the inventory");
            }
            if names.is_empty() {
                return Ok(outcome(Decision::LeaverWithoutAccount, vec![], None));
            }
            // A revocation never trusts the cache: a seat on an instance added since is released.
            let instances = self.instances(true).await?;
            let (mut actions, mut done) = (Vec::new(), BTreeSet::new());
            for name in &names {
                actions.extend(self.release(name, &instances, dry_run, &mut done).await?);
            }
            let last = record.and_then(|r| r.user_name.clone()).or_else(|| names.last().cloned());
            let decision = if actions.is_empty() { Decision::NoChange } else { Decision::Disable };
            return Ok(outcome(decision, actions, last));
        }
        let Some(username) = directory_user_name(event, record, self.rule)? else {
            return Ok(outcome(Decision::LeaverWithoutAccount, vec![], None));
        };
        // Ownership: the AD user name is claimed before any write (first claimant wins,
        // compared case-insensitively as Active Directory does).
        if !ctx.claim(&claim_key(username.as_str())).await? {
            return Err(SyncError::permanent(
                "SubscriptionUserOwnedByAnother",
                "person.directoryUserName: this Active Directory user name (sent or derived) belongs to another person (ledger claim); refusing to change its subscriptions",
            ));
        }
        // The exact spelling enters the inventory before any write under it (free: it was
        // written ahead with the lease), so a leaver finds every spelling ever used.
        ctx.remember(username.as_str()).await?;
        let mut actions = Vec::new();
        // The AD account changed, if only in case (or, after a lost race, a concurrent delivery
        // may have used another name): release everything held under every other spelling
        // first, on a fresh instance list (a revocation).
        if ctx.sweep || record.and_then(|r| r.user_name.as_deref()).is_some_and(|old| old != username.as_str()) {
            let mut old = known_names(ctx).await?;
            old.remove(username.as_str());
            let instances = self.instances(true).await?;
            let mut done = BTreeSet::from([username.as_str().to_string()]);
            for name in &old {
                actions.extend(self.release(name, &instances, dry_run, &mut done).await?);
            }
        }
        let desired = event.profile().map(|p| p.subscriptions.as_slice()).unwrap_or_default();
        actions.extend(self.converge_name(username.as_str(), desired, dry_run).await?);
        let decision = match (actions.is_empty(), kind) {
            (true, _) => Decision::NoChange,
            (false, EventKind::Leaver) => Decision::Disable,
            (false, EventKind::Joiner) => Decision::Create,
            (false, EventKind::Mover) => Decision::Update,
            (false, EventKind::Rehire) => Decision::Rehire,
        };
        Ok(outcome(decision, actions, Some(username.as_str().to_string())))
    }

    /// Every spelling the person was given, read back on a fresh instance list; what the service
    /// holds under any name that answers one of them is reported (without the name).
    async fn verify_revoked(&self, _leaver: &HrEvent, ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError> {
        let instances = self.instances(true).await?;
        let mut held = Holdings::new();
        for name in known_names(ctx).await? {
            for (as_held, h) in self.holdings(&name, &instances).await? {
                let entry = held.entry(as_held).or_default();
                entry.products.extend(h.products);
                entry.instances.extend(h.instances);
            }
        }
        let mut left = Vec::new();
        for (n, current) in held.into_values().filter(|h| !h.is_empty()).enumerate() {
            if !current.products.is_empty() {
                left.push(format!("AD user #{}: {} product subscription(s)", n + 1, current.products.len()));
            }
            if !current.instances.is_empty() {
                left.push(format!("AD user #{}: associated with {} instance(s)", n + 1, current.instances.len()));
            }
        }
        Ok(left)
    }
}
