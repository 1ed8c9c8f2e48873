//! The one seam between the engine and a target: [`Target::plan`] (reads only) returns a typed
//! [`Plan`]; [`Target::apply`] executes that same plan and says what it left ([`Applied`]).
//!
//! The engine owns everything around them: the ledger's duplicate and stale guard, the lease,
//! dry run (plan only, reported), the blast-radius breaker (it reads the plan: does it revoke?),
//! the leaver's write-ahead intent, the read-back ([`Target::verify_revoked`] on the plan's
//! resolved accounts) and the commit. A target never sees `dry_run`.
//!
//! A plan is made from a desired state and a time ([`Desired`]), not from an HR event as
//! received: what the ledger's knowledge decides for the person (the newest profile and
//! lifecycle event), and the instant it is judged at.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::contract::HrEvent;
use crate::engine::{Decision, SyncError};
use crate::ledger::{Inventory, PersonRecord, PersonStatus};

/// One write a plan makes, typed by its target (e.g. `AddToGroup`, `DisableUser`).
pub trait Step: fmt::Debug + Send + Sync + 'static {
    /// What the step does, free of personal data (the outcome's actions, the audit, dry run).
    fn describe(&self) -> String;
    /// Whether the step takes access away. The blast-radius breaker counts a leaver (or a
    /// mover that strips everything) when its plan has a revoking step, or any step at all (a
    /// create may meet the account at apply time and be planned again, revoking).
    fn revokes(&self) -> bool;
}

/// What the person should be on the target, and when it is judged.
#[derive(Clone, Copy, Debug)]
pub struct Desired<'a> {
    /// The state the ledger's knowledge decides (its effective event: a profile, a leaver or a
    /// rehire), never the delivered event alone.
    pub state: &'a HrEvent,
    /// The instant the plan is made for (the engine's clock).
    pub at: DateTime<Utc>,
}

/// What a target would do, decided from reads only: typed steps, the accounts it resolved
/// (what [`Target::apply`] writes to and a leaver's read-back reads), and what it concluded.
#[derive(Debug)]
pub struct Plan<S, A> {
    pub decision: Decision,
    pub steps: Vec<S>,
    /// The accounts the plan resolved, in the target's own terms.
    pub accounts: A,
    /// The account (id, name) the person has after the plan, as far as it is known before
    /// writing (a create's id is known only after it).
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    /// How the account was found: `ledger`, `user-name`, `external-id`, `marker-scan`,
    /// `inventory`, `none`, ...
    pub resolved_by: &'static str,
    /// Non-fatal observations, free of personal data.
    pub notes: Vec<String>,
}

impl<S: Step, A> Plan<S, A> {
    /// A plan with no steps.
    pub fn nothing(decision: Decision, accounts: A, resolved_by: &'static str) -> Self {
        Self { decision, steps: Vec::new(), accounts, user_id: None, user_name: None, resolved_by, notes: Vec::new() }
    }

    /// Whether any step takes access away.
    pub fn revokes(&self) -> bool {
        self.steps.iter().any(Step::revokes)
    }

    /// Every step, described.
    pub fn actions(&self) -> Vec<String> {
        self.steps.iter().map(Step::describe).collect()
    }
}

/// What an applied plan left on the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub decision: Decision,
    /// What was done, in order; free of personal data.
    pub actions: Vec<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    /// The person's status on the target after the writes, stated by the target (the engine
    /// never infers it from the decision or the ids).
    pub status: PersonStatus,
    pub resolved_by: &'static str,
    pub notes: Vec<String>,
}

/// One target service, as the engine drives it.
#[async_trait]
pub trait Target: Send + Sync + 'static {
    /// One write of this target.
    type Step: Step;
    /// The accounts a plan resolved (e.g. the users a leaver revokes).
    type Accounts: fmt::Debug + Send + Sync + 'static;

    /// The ledger target name (each target keeps its own record and stale guard).
    fn name(&self) -> &'static str;

    /// Permanent, configuration-dependent checks of a delivered event before any read (e.g.
    /// managed groups).
    fn check(&self, _event: &HrEvent) -> Result<(), SyncError> {
        Ok(())
    }

    /// Inventory keys the event may create or rename to (e.g. its account name), written in the
    /// same atomic write that takes the person's lease, so that [`Ctx::remember`] of one of them
    /// costs nothing later. A superset is harmless: a leaver checks every key's ownership.
    fn ahead(&self, _event: &HrEvent) -> Vec<String> {
        Vec::new()
    }

    /// Resolves the person's accounts and decides the steps that converge them to `desired`:
    /// reads only (the service, [`Ctx::accounts`]), never a write. A leaver's plan resolves
    /// every account of the inventory. After a lost ledger race ([`Ctx::sweep`]) the plan also
    /// revokes every other account of the inventory.
    async fn plan(&self, desired: &Desired<'_>, ctx: &Ctx<'_>) -> Result<Plan<Self::Step, Self::Accounts>, SyncError>;

    /// Executes `plan` (made in this same piece of work, under the lease). The only ledger writes allowed are
    /// the write-ahead inventory ([`Ctx::claim`], [`Ctx::remember`]) before a write that creates,
    /// renames or re-addresses an account. When the service changed under the plan (a
    /// concurrent creation), returns [`SyncError::Replan`]: the engine plans again.
    async fn apply(&self, plan: &Plan<Self::Step, Self::Accounts>, ctx: &Ctx<'_>) -> Result<Applied, SyncError>;

    /// After a leaver's plan was applied: reads back every account the plan resolved (a real
    /// read of the service) and lists what still grants access, free of personal data. Empty:
    /// verified. The engine plans and applies once more, then parks anything left as
    /// `LeaverIncomplete` (or the code of [`Ctx::explain_residual`]).
    async fn verify_revoked(
        &self,
        plan: &Plan<Self::Step, Self::Accounts>,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<String>, SyncError>;
}

/// A plan as the engine holds it: what it reports and decides on (decision, actions, whether
/// it revokes), and the target's typed plan, given back to that same target.
pub struct AnyPlan {
    pub decision: Decision,
    pub actions: Vec<String>,
    pub revokes: bool,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub resolved_by: &'static str,
    pub notes: Vec<String>,
    typed: Box<dyn Any + Send + Sync>,
}

impl fmt::Debug for AnyPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyPlan")
            .field("decision", &self.decision)
            .field("actions", &self.actions)
            .field("resolved_by", &self.resolved_by)
            .finish_non_exhaustive()
    }
}

/// [`Target`] behind a pointer: what the engine stores (every `Target` is one).
#[async_trait]
pub trait DynTarget: Send + Sync {
    fn name(&self) -> &'static str;
    fn check(&self, event: &HrEvent) -> Result<(), SyncError>;
    fn ahead(&self, event: &HrEvent) -> Vec<String>;
    async fn plan(&self, desired: &Desired<'_>, ctx: &Ctx<'_>) -> Result<AnyPlan, SyncError>;
    async fn apply(&self, plan: &AnyPlan, ctx: &Ctx<'_>) -> Result<Applied, SyncError>;
    async fn verify_revoked(&self, plan: &AnyPlan, ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError>;
}

fn foreign_plan() -> SyncError {
    // Never happens: the engine gives a plan back to the target that made it.
    crate::codes::EngineCode::InternalError.error("a plan was given to a target that did not make it")
}

#[async_trait]
impl<T: Target> DynTarget for T {
    fn name(&self) -> &'static str {
        Target::name(self)
    }

    fn check(&self, event: &HrEvent) -> Result<(), SyncError> {
        Target::check(self, event)
    }

    fn ahead(&self, event: &HrEvent) -> Vec<String> {
        Target::ahead(self, event)
    }

    async fn plan(&self, desired: &Desired<'_>, ctx: &Ctx<'_>) -> Result<AnyPlan, SyncError> {
        let plan = Target::plan(self, desired, ctx).await?;
        Ok(AnyPlan {
            decision: plan.decision,
            actions: plan.actions(),
            revokes: plan.revokes(),
            user_id: plan.user_id.clone(),
            user_name: plan.user_name.clone(),
            resolved_by: plan.resolved_by,
            notes: plan.notes.clone(),
            typed: Box::new(plan),
        })
    }

    async fn apply(&self, plan: &AnyPlan, ctx: &Ctx<'_>) -> Result<Applied, SyncError> {
        let typed = plan.typed.downcast_ref::<Plan<T::Step, T::Accounts>>().ok_or_else(foreign_plan)?;
        Target::apply(self, typed, ctx).await
    }

    async fn verify_revoked(&self, plan: &AnyPlan, ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError> {
        let typed = plan.typed.downcast_ref::<Plan<T::Step, T::Accounts>>().ok_or_else(foreign_plan)?;
        Target::verify_revoked(self, typed, ctx).await
    }
}

/// The person's lease on a target while the engine works under it: who holds it, the inventory
/// keys written with it, and those to write with the commit.
#[derive(Debug)]
pub struct Lease {
    pub(crate) holder: String,
    /// Inventory keys written with the lease.
    pub(crate) ahead: BTreeSet<String>,
    /// Inventory keys to write with the commit.
    pub(crate) deferred: Mutex<Vec<String>>,
    /// A commit gave it back.
    pub(crate) released: std::sync::atomic::AtomicBool,
}

impl Lease {
    pub(crate) fn new(holder: String, ahead: BTreeSet<String>) -> Self {
        Self { holder, ahead, deferred: Mutex::new(Vec::new()), released: std::sync::atomic::AtomicBool::new(false) }
    }

    pub(crate) fn deferred(&self) -> Vec<String> {
        self.deferred.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// What a target's plan and apply get besides the desired state: the person's record, the
/// account inventory (read once per piece of work, kept current by the writes made through
/// this context) and the lease the work holds. A dry run has no lease and no `Ctx` write is
/// ever reached (the engine only plans).
pub struct Ctx<'a> {
    pub record: Option<&'a PersonRecord>,
    /// After a lost ledger race, when the winner's account is known to be the person's: the
    /// plan also revokes every inventory account other than the one converged (two concurrent
    /// creations under different names leave exactly one account that grants access).
    pub sweep: bool,
    /// When this piece of work began: what a target read from the service since then is
    /// current; what it cached before is re-checked before a write that depends on it.
    pub started: Instant,
    person: String,
    target: &'static str,
    inventory: &'a dyn Inventory,
    lease: Option<&'a Lease>,
    /// The inventory as read (once) and extended by this work's own writes.
    accounts: tokio::sync::Mutex<Option<BTreeSet<String>>>,
    /// Why access may be left after this step, when the target knows (a parking code).
    residual: Mutex<Option<&'static str>>,
}

impl fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx").field("target", &self.target).field("sweep", &self.sweep).finish_non_exhaustive()
    }
}

impl<'a> Ctx<'a> {
    pub fn new(
        record: Option<&'a PersonRecord>,
        person: String,
        target: &'static str,
        inventory: &'a dyn Inventory,
        lease: Option<&'a Lease>,
    ) -> Self {
        Self {
            record,
            sweep: false,
            started: Instant::now(),
            person,
            target,
            inventory,
            lease,
            accounts: tokio::sync::Mutex::new(None),
            residual: Mutex::new(None),
        }
    }

    /// The person (`issuer#id`).
    pub fn person(&self) -> &str {
        &self.person
    }

    /// Names why a leaver may leave access behind (e.g. `DisableUnsupported`: the service
    /// refused a revoking write the target has no other way to make): if the read-back finds
    /// access left, the event is parked with this code instead of `LeaverIncomplete`.
    pub fn explain_residual(&self, code: &'static str) {
        if let Ok(mut r) = self.residual.lock() {
            r.get_or_insert(code);
        }
    }

    pub(crate) fn residual(&self) -> Option<&'static str> {
        self.residual.lock().ok().and_then(|r| *r)
    }

    /// Every account key the person was ever given on this target (write-ahead inventory):
    /// read once per piece of work (the lease keeps every other writer out), then kept.
    pub async fn accounts(&self) -> Result<BTreeSet<String>, SyncError> {
        let mut cached = self.accounts.lock().await;
        if let Some(accounts) = cached.as_ref() {
            return Ok(accounts.clone());
        }
        let read = self.inventory.accounts(&self.person, self.target).await?;
        *cached = Some(read.clone());
        Ok(read)
    }

    /// The inventory and the account name the record holds: every account a leaver revokes on
    /// targets whose inventory keys are the account names.
    pub async fn known_accounts(&self) -> Result<BTreeSet<String>, SyncError> {
        let mut names = self.accounts().await?;
        names.extend(self.record.and_then(|r| r.user_name.clone()));
        Ok(names)
    }

    async fn learnt(&self, account: &str) {
        if let Some(accounts) = self.accounts.lock().await.as_mut() {
            accounts.insert(account.to_string());
        }
    }

    fn no_lease(&self) -> SyncError {
        // Never happens: the engine applies only under the person's lease.
        crate::codes::EngineCode::InternalError
            .error(format!("{}: a write was attempted without the person's lease", self.target))
    }

    /// Claims `name` for the person before the write that uses it (first claimant wins); the
    /// claim also enters the inventory. `Ok(false)`: another person owns it.
    pub async fn claim(&self, name: &str) -> Result<bool, SyncError> {
        self.lease.ok_or_else(|| self.no_lease())?;
        let ours = self.inventory.claim(self.target, name, &self.person).await? == self.person;
        if ours {
            self.learnt(name).await;
        }
        Ok(ours)
    }

    /// Who owns the claim of `name` on this target (a read: a plan may ask), `None`: nobody.
    pub async fn owner(&self, name: &str) -> Result<Option<String>, SyncError> {
        Ok(self.inventory.owner(self.target, name).await?)
    }

    /// Records an account key in the inventory before the write that creates or renames it (a
    /// key written with the lease, see [`Target::ahead`], is already there).
    pub async fn remember(&self, account: &str) -> Result<(), SyncError> {
        let lease = self.lease.ok_or_else(|| self.no_lease())?;
        if !lease.ahead.contains(account) {
            self.inventory.remember(&self.person, self.target, account).await?;
        }
        self.learnt(account).await;
        Ok(())
    }

    /// Records an account key that became known only from the write itself (e.g. the id a
    /// create returned) with the commit that ends this work, in the same atomic write; should
    /// the work end without a commit, it is written on its own before the lease is given back.
    pub async fn remember_at_commit(&self, account: &str) -> Result<(), SyncError> {
        let lease = self.lease.ok_or_else(|| self.no_lease())?;
        if let Ok(mut d) = lease.deferred.lock() {
            d.push(account.to_string());
        }
        self.learnt(account).await;
        Ok(())
    }
}
