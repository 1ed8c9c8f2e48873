//! The target-independent engine: the ledger's duplicate and stale guard, the target's converge
//! step, and the conditional commit of the person record with its audit entry. Each target
//! (each in its own slice) implements [`Target`]; a new target
//! is a new implementation, not a new branch here.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use std::collections::BTreeSet;

use crate::clock::{self, Clock};
use crate::contract::{EventKind, HrEvent, InvalidEvent};
use crate::ledger::{self, AuditEntry, HeldEvent, Knowledge, Leased, Ledger, Merge, PersonRecord, PersonStatus};
use crate::ports::ServiceError;

/// Bounds re-reads after a lost ledger race (and a target's own conflict re-plans).
/// What the planner concluded, for logs, the audit trail and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Create,
    Update,
    Rehire,
    Disable,
    NoChange,
    /// A leaver for a person with no account: nothing to remove.
    LeaverWithoutAccount,
    /// A joiner or mover for a disabled user: only a rehire re-enables a leaver.
    IgnoredForDisabledUser,
    /// The ledger's last applied event again: nothing written at all.
    Duplicate,
    /// Older than the ledger's last applied event: skipped, audited.
    Stale,
    /// A leaver beyond the blast-radius breaker's threshold: kept, not applied, until released.
    Held,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Rehire => "rehire",
            Self::Disable => "disable",
            Self::NoChange => "no-change",
            Self::LeaverWithoutAccount => "leaver-without-account",
            Self::IgnoredForDisabledUser => "ignored-for-disabled-user",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Held => "held",
        }
    }
}

/// The lease the current work holds (see [`Engine::leased`]).
#[derive(Debug)]
struct HeldLease {
    holder: String,
    /// A commit gave it back.
    released: std::sync::atomic::AtomicBool,
    /// Inventory keys written with the lease.
    ahead: BTreeSet<String>,
    /// Inventory keys to write with the commit.
    deferred: std::sync::Mutex<Vec<String>>,
}

tokio::task_local! {
    static HELD: Arc<HeldLease>;
}

fn busy() -> SyncError {
    tracing::info!(decision = "busy", "another instance holds the person's lease; retried");
    SyncError::Busy
}

pub const MAX_ATTEMPTS: usize = 3;

/// The result of one applied (or dry-run) event on one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// What was (or, dry run, would be) done, in order; free of personal data.
    pub actions: Vec<String>,
    /// The target's account id, when its service gives one.
    pub user_id: Option<String>,
    /// The account's name after the event.
    pub user_name: Option<String>,
    /// How the account was found: `ledger`, `user-name`, `external-id`, `marker-scan`, `created`,
    /// `none`, or `-` when the ledger settled the event (duplicate, stale).
    pub resolved_by: &'static str,
    pub dry_run: bool,
    /// Non-fatal observations, free of personal data.
    pub notes: Vec<String>,
}

impl Outcome {
    pub fn writes(&self) -> usize {
        if self.dry_run { 0 } else { self.actions.len() }
    }
}

/// Why an event was not applied. `code()` is what the DLQ and the logs carry.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    /// Can never succeed as it stands: parked with `code` and `reason` (no personal values).
    #[error("{reason}")]
    Permanent { code: &'static str, reason: String },
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("a concurrent writer kept winning after {MAX_ATTEMPTS} attempts")]
    ConflictPersisted,
    /// Another instance holds the person's lease on this target: retried (redelivered).
    #[error("another instance is converging this person on this target (ledger lease); retried")]
    Busy,
    /// An asynchronous step of the service is still running after a bounded wait: retried
    /// (redelivered), and the next delivery resumes where the service is; never parked by us.
    #[error("{0}: still in progress at the service; retried")]
    InProgress(String),
}

impl SyncError {
    pub fn permanent(code: &'static str, reason: impl Into<String>) -> Self {
        Self::Permanent { code, reason: reason.into() }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Service(e) => e.is_retryable(),
            Self::ConflictPersisted | Self::Busy | Self::InProgress(_) => true,
            Self::Invalid(_) | Self::Permanent { .. } => false,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "InvalidEvent",
            Self::Permanent { code, .. } => code,
            Self::Service(ServiceError::Throttled { .. }) => "Throttled",
            Self::Service(ServiceError::Conflict { .. }) => "Conflict",
            Self::Service(ServiceError::NotFound { .. }) => "ResourceNotFound",
            Self::Service(ServiceError::Validation { .. }) => "ServiceValidation",
            Self::Service(ServiceError::AccessDenied { .. }) => "AccessDenied",
            Self::Service(ServiceError::QuotaExceeded { .. }) => "ServiceQuotaExceeded",
            Self::Service(ServiceError::Unavailable { .. }) => "ServiceUnavailable",
            Self::ConflictPersisted => "ConflictPersisted",
            Self::Busy => "PersonBusy",
            Self::InProgress(_) => "InProgress",
        }
    }
}

/// One target service, as the engine drives it.
#[async_trait]
pub trait Target: Send + Sync {
    /// The ledger target name (each target keeps its own record and stale guard).
    fn name(&self) -> &'static str;

    /// Permanent, configuration-dependent checks before any read (e.g. managed groups).
    fn check(&self, _event: &HrEvent) -> Result<(), SyncError> {
        Ok(())
    }

    /// Resolve, read, plan and (unless `dry_run`) execute the event against the service, using
    /// the person's ledger record as a hint. The only ledger writes allowed are the write-ahead
    /// inventory (`Ctx::claim`, `Ctx::remember`) before a write that creates, renames or
    /// re-addresses an account. A leaver must revoke every account of `Ctx::accounts`.
    async fn converge(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<Outcome, SyncError>;

    /// Inventory keys the event may create or rename to (e.g. its account name), written in the
    /// same atomic write that takes the person's lease, so that `Ctx::remember` of one of them
    /// costs nothing later. A superset is harmless: a leaver checks every key's ownership.
    fn ahead(&self, _event: &HrEvent) -> Vec<String> {
        Vec::new()
    }

    /// After a leaver was converged: reads back every account of the person on this target (the
    /// inventory, the record's, and the target's own lookups) and lists what still grants access,
    /// free of personal data. Empty: verified. The engine parks anything left as
    /// `LeaverIncomplete`.
    async fn verify_revoked(&self, leaver: &HrEvent, ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError>;
}

/// What a target's converge step gets besides the event: the person's record, the ledger's
/// write-ahead account inventory, and whether this is a dry run.
pub struct Ctx<'a> {
    pub record: Option<&'a PersonRecord>,
    pub dry_run: bool,
    /// Revoke every inventory account other than the one converged (after a lost ledger race,
    /// when the winner's account is known to be the person's): two concurrent creations for one
    /// person under different names leave exactly one account that grants access.
    pub sweep: bool,
    /// When this converge step began: what a target read from the service since then is
    /// current; what it cached before is re-checked before a write that depends on it.
    pub started: std::time::Instant,
    person: String,
    target: &'static str,
    ledger: &'a dyn Ledger,
    /// Why access may be left after this step, when the target knows (a parking code).
    residual: std::sync::Mutex<Option<&'static str>>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("target", &self.target).field("dry_run", &self.dry_run).finish_non_exhaustive()
    }
}

impl<'a> Ctx<'a> {
    pub fn new(
        record: Option<&'a PersonRecord>,
        dry_run: bool,
        person: String,
        target: &'static str,
        ledger: &'a dyn Ledger,
    ) -> Self {
        Self {
            record,
            dry_run,
            sweep: false,
            started: std::time::Instant::now(),
            person,
            target,
            ledger,
            residual: std::sync::Mutex::new(None),
        }
    }

    /// Names why a leaver may leave access behind (e.g. `DisableUnsupported`: the service
    /// refused a revoking write the target has no other way to make): if the read-back finds
    /// access left, the event is parked with this code instead of `LeaverIncomplete`.
    pub fn explain_residual(&self, code: &'static str) {
        if let Ok(mut r) = self.residual.lock() {
            r.get_or_insert(code);
        }
    }

    fn residual(&self) -> Option<&'static str> {
        self.residual.lock().ok().and_then(|r| *r)
    }

    /// Every account key the person was ever given on this target (write-ahead inventory).
    pub async fn accounts(&self) -> Result<BTreeSet<String>, SyncError> {
        Ok(self.ledger.accounts(&self.person, self.target).await?)
    }

    /// The inventory and the account name the record holds: every account a leaver revokes on
    /// targets whose inventory keys are the account names.
    pub async fn known_accounts(&self) -> Result<BTreeSet<String>, SyncError> {
        let mut names = self.accounts().await?;
        names.extend(self.record.and_then(|r| r.user_name.clone()));
        Ok(names)
    }

    /// Claims `name` for the person before the write that uses it (first claimant wins); the
    /// claim also enters the inventory. `Ok(false)`: another person owns it. A dry run writes
    /// nothing and reports whether the claim would succeed.
    pub async fn claim(&self, name: &str) -> Result<bool, SyncError> {
        if self.dry_run {
            return Ok(true);
        }
        Ok(self.ledger.claim(self.target, name, &self.person).await? == self.person)
    }

    /// Records an account key in the inventory before the write that creates or renames it (a
    /// key written with the lease, see [`Target::ahead`], is already there).
    pub async fn remember(&self, account: &str) -> Result<(), SyncError> {
        if self.dry_run || HELD.try_with(|l| l.ahead.contains(account)).unwrap_or(false) {
            return Ok(());
        }
        Ok(self.ledger.remember(&self.person, self.target, account).await?)
    }

    /// Records an account key that became known only from the write itself (e.g. the id a
    /// create returned) with the commit that ends this work, in the same atomic write; should
    /// the work end without a commit, it is written on its own before the lease is given back.
    pub async fn remember_at_commit(&self, account: &str) -> Result<(), SyncError> {
        if self.dry_run {
            return Ok(());
        }
        match HELD.try_with(|l| l.deferred.lock().map(|mut d| d.push(account.to_string())).is_ok()) {
            Ok(true) => Ok(()),
            _ => self.remember(account).await,
        }
    }
}

/// A converged event and, for a leaver, what the read-back found still granting access.
struct Verified {
    outcome: Outcome,
    remaining: Vec<String>,
    /// The code a leaver with access left is parked under.
    code: &'static str,
}

/// A leaver that converged but whose read-back still finds access: parked with an alarm code.
/// The ledger keeps the leaver (so later events of the person converge to it) with the record
/// marked active, so the leaver's redelivery or redrive converges again instead of settling as
/// a duplicate.
pub fn leaver_incomplete(remaining: &[String]) -> SyncError {
    leaver_incomplete_because("LeaverIncomplete", remaining)
}

/// [`leaver_incomplete`] under the code the target gave (see [`Ctx::explain_residual`]).
pub fn leaver_incomplete_because(code: &'static str, remaining: &[String]) -> SyncError {
    SyncError::permanent(
        code,
        format!(
            "leaver: after revoking, {} item(s) still grant access: {}; fix the cause (permissions, a hand-made change), then redrive",
            remaining.len(),
            remaining.join("; ")
        ),
    )
}

/// A record whose knowledge decides a leaver but which is still marked active: the leaver's
/// read-back found access left (`LeaverIncomplete`), or it was never converged.
fn incomplete_leaver(r: &PersonRecord) -> bool {
    r.held.is_none()
        && r.status == PersonStatus::Active
        && ledger::effective(&Knowledge::of(Some(r)), Some(r.status)).is_some_and(|e| e.kind() == EventKind::Leaver)
}

/// A stored event that no longer validates decides the person's state: nothing converges.
fn stored_unreadable(u: &ledger::Unreadable) -> SyncError {
    SyncError::permanent(
        "StoredEventUnreadable",
        format!(
            "the ledger's stored event '{}' of this person no longer validates ({}); nothing is converged on a state \
             that cannot be read (fail closed): HR sends a newer event for the person, or an operator corrects the record",
            u.event_id, u.reason
        ),
    )
}

/// Whether a profile grants anything through the event's own fields (groups, subscriptions,
/// stacks): a change to none of them from some is counted by the breaker like a leaver.
fn grants_any(p: &crate::contract::Profile) -> bool {
    // No `appstreamStacks` field: the department decides, which may grant.
    !p.groups.is_empty() || !p.subscriptions.is_empty() || p.appstream_stacks.as_ref().is_none_or(|s| !s.is_empty())
}

/// The breaker's window item (one for the deployment, shared by every target).
const BREAKER_WINDOW_KEY: &str = "leavers";
const BREAKER_ALLOWED: &str = "allowed";

/// Engine settings.
#[derive(Clone, Debug, Default)]
pub struct EngineSettings {
    /// Plan and report without writing to any service, the ledger included.
    pub dry_run: bool,
    /// How long audit entries are kept (DynamoDB TTL); `None` keeps them.
    pub audit_ttl: Option<chrono::Duration>,
    /// The blast-radius breaker: at most this many leavers that revoke something are applied in
    /// any trailing hour (all targets together, each leaver once); the others are held until an
    /// operator releases them. `None`: no breaker.
    pub leavers_per_hour: Option<u32>,
    /// The clock of every decision (see [`crate::clock`]); the system clock by default.
    pub clock: Clock,
}

/// The engine for one target. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    target: Arc<dyn Target>,
    ledger: Arc<dyn Ledger>,
    settings: EngineSettings,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("target", &self.target.name())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(target: Arc<dyn Target>, ledger: Arc<dyn Ledger>, settings: EngineSettings) -> Self {
        Self { target, ledger, settings }
    }

    pub fn target_name(&self) -> &'static str {
        self.target.name()
    }

    pub fn dry_run(&self) -> bool {
        self.settings.dry_run
    }

    /// The clock the engine decides by.
    pub fn clock(&self) -> &Clock {
        &self.settings.clock
    }

    /// The same engine on another clock (`jml replay --now`, tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.settings.clock = clock;
        self
    }

    /// Every audit entry of a person (`issuer#id`), all targets, in HR time order.
    pub async fn audit_trail(&self, person: &str) -> Result<Vec<AuditEntry>, ServiceError> {
        self.ledger.audit_trail(person).await
    }

    /// Applies one validated event (`body` is the event as received, kept in the ledger).
    ///
    /// The event is merged into what the ledger knows of the person (a set: the newest profile
    /// and the newest lifecycle event), and the target converges to the state that knowledge
    /// decides ([`ledger::effective`]), never to the event alone: any delivery order of the same
    /// events ends in the same state. A duplicate makes no writes at all; an event that changes
    /// nothing is audited as stale; a lost ledger race re-reads, re-merges and converges again.
    ///
    /// Outside a dry run the person's lease on the target is held throughout (one instance
    /// converges a person at a time, whatever the delivery path); a held lease is `Busy`.
    pub async fn apply(&self, event: &HrEvent, body: &str) -> Result<Outcome, SyncError> {
        // Before anything: an event from the future must never become the person's newest.
        if let Some(why) = clock::occurred_in_future(event.occurred_at, self.settings.clock.now()) {
            return Err(SyncError::permanent("OccurredInFuture", why));
        }
        self.target.check(event)?;
        let person = event.external_id.key();
        // A duplicate is settled by one read and no write; a stale event by one read and its
        // audit entry; only an event that changes the person's knowledge takes the lease (and
        // reads the record again under it).
        let record = self.ledger.get(&person, self.target.name()).await?;
        match ledger::merge(event, body, record.as_ref()) {
            Merge::Changed(_) => {
                // The lease is taken only if the record is still the one just read: then it
                // need not be read again under the lease.
                let expected = Some(record.as_ref().map(|r| r.version));
                let ahead = self.target.ahead(event);
                self.leased(&person, expected, ahead, |unchanged| {
                    self.apply_leased(event, body, unchanged.then_some(record))
                })
                .await
            }
            // A leaver recorded but not verified (LeaverIncomplete): its redelivery converges again.
            Merge::Duplicate if record.as_ref().is_some_and(incomplete_leaver) => {
                self.leased(&person, None, Vec::new(), |_| self.reconverge_leased(&person)).await
            }
            unchanged => self.unchanged(&unchanged, event, record.as_ref()).await,
        }
    }

    /// A duplicate (no writes; a redelivered held leaver is still reported held, never "done")
    /// or a stale event (its audit entry only).
    async fn unchanged(
        &self,
        merge: &Merge,
        event: &HrEvent,
        record: Option<&PersonRecord>,
    ) -> Result<Outcome, SyncError> {
        if matches!(merge, Merge::Reused) {
            return Err(SyncError::permanent(
                "EventIdReused",
                format!(
                    "eventId: '{}' was already used by another {} event of this person (another type, time or content); \
                     an eventId names one HR change: send this change with an eventId of its own",
                    event.event_id,
                    self.target.name()
                ),
            ));
        }
        if matches!(merge, Merge::Stale) {
            let outcome = self.settled(Decision::Stale, record);
            if !self.settings.dry_run {
                self.ledger.append_audit(&self.audit(event, &outcome)).await?;
            }
            return Ok(outcome);
        }
        let held = record.is_some_and(|r| r.held.is_some());
        Ok(self.settled(if held { Decision::Held } else { Decision::Duplicate }, record))
    }

    /// Runs `work` under the person's lease (not in a dry run, which writes nothing). With
    /// `expected` (the record's version read before, `None` for no record), the lease is taken
    /// only if the record is still that one, in the same atomic write, and `work` is told so
    /// (`true`: the record need not be read again). The commit that ends the work gives the
    /// lease back in its own atomic write (see [`Engine::commit`]); otherwise it is released here.
    async fn leased<F, Fut>(
        &self,
        person: &str,
        expected: Option<Option<u64>>,
        ahead: Vec<String>,
        work: F,
    ) -> Result<Outcome, SyncError>
    where
        F: FnOnce(bool) -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, SyncError>>,
    {
        static HOLDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if self.settings.dry_run {
            return work(false).await;
        }
        let n = HOLDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let holder = format!("{}-{}-{n}", std::process::id(), Utc::now().timestamp_nanos_opt().unwrap_or_default());
        let until = Utc::now().timestamp() + ledger::LEASE_SECONDS;
        let unchanged = match expected {
            Some(v) => {
                match self.ledger.lease_if_unchanged(person, self.target.name(), &holder, until, v, &ahead).await? {
                    Leased::Unchanged => true,
                    Leased::Taken => false,
                    Leased::Busy => return Err(busy()),
                }
            }
            None if self.ledger.lease(person, self.target.name(), &holder, until).await? => false,
            None => return Err(busy()),
        };
        let lease = Arc::new(HeldLease {
            holder,
            released: std::sync::atomic::AtomicBool::new(false),
            // Written with the lease only when the record was unchanged (one transaction).
            ahead: if unchanged { ahead.into_iter().collect() } else { BTreeSet::new() },
            deferred: std::sync::Mutex::new(Vec::new()),
        });
        let result = HELD.scope(lease.clone(), work(unchanged)).await;
        let deferred = std::mem::take(&mut *lease.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for account in deferred {
            // The work ended without its commit: the keys it learnt still enter the inventory.
            if let Err(e) = self.ledger.remember(person, self.target.name(), &account).await {
                tracing::warn!(error = %e, "an inventory key was not recorded; the resolution chain still finds the account");
            }
        }
        if !lease.released.load(std::sync::atomic::Ordering::SeqCst)
            && let Err(e) = self.ledger.release(person, self.target.name(), &lease.holder).await
        {
            // The lease expires on its own; the work's result stands.
            tracing::warn!(error = %e, "lease release failed; it expires by itself");
        }
        result
    }

    /// Commits a record and its audit entry; under a lease, the same atomic write gives the
    /// lease back (a commit is always the last write of the work it ends).
    async fn commit(
        &self,
        next: &PersonRecord,
        expected: Option<u64>,
        audit: &AuditEntry,
    ) -> Result<bool, ServiceError> {
        match HELD.try_with(Arc::clone) {
            Ok(lease) => {
                let deferred = lease.deferred.lock().map(|d| d.clone()).unwrap_or_default();
                let done = self.ledger.commit_and_release(next, expected, audit, &lease.holder, &deferred).await?;
                if done {
                    lease.released.store(true, std::sync::atomic::Ordering::SeqCst);
                    if let Ok(mut d) = lease.deferred.lock() {
                        d.clear();
                    }
                }
                Ok(done)
            }
            Err(_) => self.ledger.commit(next, expected, audit).await,
        }
    }

    /// `known`: the record, when the lease was taken on it unchanged.
    async fn apply_leased(
        &self,
        event: &HrEvent,
        body: &str,
        mut known: Option<Option<PersonRecord>>,
    ) -> Result<Outcome, SyncError> {
        let person = event.external_id.key();
        let dry_run = self.settings.dry_run;
        let mut raced = false;
        for _attempt in 0..MAX_ATTEMPTS {
            let record = match known.take() {
                Some(record) => record,
                None => self.ledger.get(&person, self.target.name()).await?,
            };
            let knowledge = match ledger::merge(event, body, record.as_ref()) {
                Merge::Changed(k) => *k,
                unchanged if !raced => return self.unchanged(&unchanged, event, record.as_ref()).await,
                _ => {
                    // We lost a race after writing: converge again on what the winner recorded,
                    // so our writes never outlive a newer decision.
                    if let Some(r) = record.as_ref().filter(|r| r.held.is_none())
                        && let Some(winner) = ledger::effective(&Knowledge::of(Some(r)), Some(r.status))
                    {
                        let v = self.converge_to(&person, &winner, Some(r), true).await?;
                        if !v.remaining.is_empty() {
                            return Err(leaver_incomplete_because(v.code, &v.remaining));
                        }
                        // Nothing to commit: make sure no newer decision landed meanwhile (our
                        // writes must not outlive it), else converge again.
                        let now = self.ledger.get(&person, self.target.name()).await?;
                        if now.as_ref().map(|n| n.version) != Some(r.version) {
                            continue;
                        }
                    }
                    return Ok(self.settled(Decision::Stale, record.as_ref()));
                }
            };
            if let Some(u) = knowledge.blocked_by() {
                return Err(stored_unreadable(u));
            }
            let Some(mut effective) = ledger::effective(&knowledge, record.as_ref().map(|r| r.status)) else {
                return Ok(self.settled(Decision::Stale, record.as_ref()));
            };
            // A rehire entering the person's knowledge now is converged as a rehire whatever the
            // target last did (a rehire starts from nothing held before): delivered before its
            // older leaver, the target is still active, and a mover would carry the previous
            // employment's account and hand-made grants on. Once stored, it converges as a mover
            // (no second welcome).
            let lifecycle_id = |k: &Knowledge| k.lifecycle.as_ref().map(|(e, _)| e.event_id.to_string());
            let rehire_now = knowledge.lifecycle.as_ref().is_some_and(|(e, _)| e.kind() == EventKind::Rehire)
                && lifecycle_id(&Knowledge::of(record.as_ref())) != lifecycle_id(&knowledge);
            if rehire_now
                && !knowledge.left()
                && let Some(profile) = effective.profile().cloned()
            {
                effective = ledger::as_rehire(&knowledge, &effective, profile);
            }
            if record.is_none() && !raced {
                self.check_variant(event, effective.kind()).await?;
            }
            // Held behind a leaver the breaker keeps: recorded, not applied.
            if record.as_ref().is_some_and(|r| r.held.is_some()) {
                let outcome = self.settled(Decision::Held, record.as_ref());
                if dry_run {
                    return Ok(outcome);
                }
                let next = self.record_from(
                    event,
                    &knowledge,
                    record.as_ref(),
                    None,
                    record.as_ref().and_then(|r| r.held.clone()),
                );
                if self.commit(&next, record.as_ref().map(|r| r.version), &self.audit(event, &outcome)).await? {
                    return Ok(outcome);
                }
                continue;
            }
            let before = Knowledge::of(record.as_ref());
            let new_leaver = effective.kind() == EventKind::Leaver
                && before.lifecycle.as_ref().map(|(e, _)| e.event_id.as_str()) != Some(effective.event_id.as_str());
            let strips_all = effective.kind() != EventKind::Leaver
                && record.as_ref().is_some_and(|r| r.status == PersonStatus::Active)
                && before
                    .profile
                    .as_ref()
                    .is_some_and(|(p, _)| p.event_id != effective.event_id && p.profile().is_some_and(grants_any))
                && effective.profile().is_some_and(|p| !grants_any(p));
            if (new_leaver || strips_all)
                && !raced
                && !dry_run
                && !self.breaker_allows(&person, &effective, record.as_ref()).await?
            {
                return self.hold(event, &effective, &knowledge, record.as_ref()).await;
            }
            // Write-ahead: the leaver is recorded before anything is revoked (still marked active,
            // so its redelivery converges again): should this work end between the first revoke
            // and the commit, every later event of the person converges to the leaver, never to
            // the profile it revoked (no re-created account, no re-subscription).
            let mut record = record;
            if new_leaver && !dry_run {
                let mut intent = self.record_from(event, &knowledge, record.as_ref(), None, None);
                intent.status = PersonStatus::Active;
                let mut audit = self.audit(event, &self.settled(Decision::Disable, record.as_ref()));
                audit.decision = "leaving".into();
                if !self.ledger.commit(&intent, record.as_ref().map(|r| r.version), &audit).await? {
                    raced = true;
                    continue;
                }
                record = Some(intent);
            }
            if record.is_none() && effective.kind() != EventKind::Leaver && !dry_run {
                // The person's folded ExternalId, before the first account is made (idempotent).
                self.ledger.index_variant(&ledger::variant_key(&effective.external_id), &person).await?;
            }
            let Verified { mut outcome, remaining, code } =
                self.converge_to(&person, &effective, record.as_ref(), raced).await?;
            if effective.kind() == EventKind::Leaver && event.kind() != EventKind::Leaver {
                outcome.notes.push("the person has left: recorded; only a rehire grants access again".into());
                if outcome.actions.is_empty() {
                    outcome.decision = Decision::IgnoredForDisabledUser;
                }
            }
            if dry_run {
                return Ok(outcome);
            }
            let next = self.record_from(event, &knowledge, record.as_ref(), Some((&effective, &outcome)), None);
            let audit = self.audit(event, &outcome);
            if let Some(done) = self
                .commit_verified(next, record.as_ref().map(|r| r.version), &audit, outcome, (code, &remaining))
                .await?
            {
                return done;
            }
            raced = true;
            tracing::info!(decision = "ledger-race", "a concurrent delivery committed first; re-reading the ledger");
        }
        Err(SyncError::ConflictPersisted)
    }

    /// Converges the target to the effective event (no ledger record write); `sweep` after a
    /// lost race. A leaver is then read back ([`Target::verify_revoked`]); anything still granting
    /// access is converged once more (a concurrent grant, a read that lagged) and, if it stays,
    /// returned as `LeaverIncomplete`, after the caller recorded the leaver (see `incomplete`).
    async fn converge_to(
        &self,
        person: &str,
        effective: &HrEvent,
        record: Option<&PersonRecord>,
        sweep: bool,
    ) -> Result<Verified, SyncError> {
        let mut ctx =
            Ctx::new(record, self.settings.dry_run, person.to_string(), self.target.name(), self.ledger.as_ref());
        ctx.sweep = sweep;
        let mut outcome = self.target.converge(effective, &ctx).await?;
        if effective.kind() != EventKind::Leaver || self.settings.dry_run {
            return Ok(Verified { outcome, remaining: vec![], code: "LeaverIncomplete" });
        }
        let mut remaining = self.target.verify_revoked(effective, &ctx).await?;
        if !remaining.is_empty() {
            tracing::warn!(
                decision = "leaver-reconverge",
                left = remaining.len(),
                "access left after a leaver; converging again"
            );
            let again = self.target.converge(effective, &ctx).await?;
            outcome.actions.extend(again.actions);
            remaining = self.target.verify_revoked(effective, &ctx).await?;
        }
        Ok(Verified { outcome, remaining, code: ctx.residual().unwrap_or("LeaverIncomplete") })
    }

    /// Re-converges a person on what the ledger knows (no new event), bypassing the breaker and
    /// clearing a hold: how `release-held` applies a held leaver, or whatever superseded it.
    pub async fn reconverge(&self, person: &str) -> Result<Outcome, SyncError> {
        self.leased(person, None, Vec::new(), |_| self.reconverge_leased(person)).await
    }

    async fn reconverge_leased(&self, person: &str) -> Result<Outcome, SyncError> {
        for _attempt in 0..MAX_ATTEMPTS {
            let Some(record) = self.ledger.get(person, self.target.name()).await? else {
                return Ok(self.settled(Decision::NoChange, None));
            };
            let knowledge = Knowledge::of(Some(&record));
            if let Some(u) = knowledge.blocked_by() {
                return Err(stored_unreadable(u));
            }
            let Some(effective) = ledger::effective(&knowledge, Some(record.status)) else {
                return Ok(self.settled(Decision::NoChange, Some(&record)));
            };
            let Verified { outcome, remaining, code } =
                self.converge_to(person, &effective, Some(&record), true).await?;
            if self.settings.dry_run {
                return Ok(outcome);
            }
            let mut next = self.record_from(&effective, &knowledge, Some(&record), Some((&effective, &outcome)), None);
            next.last_event_id = format!("reconverge#{}", record.version + 1);
            let audit = self.audit(&effective, &outcome);
            if let Some(done) =
                self.commit_verified(next, Some(record.version), &audit, outcome, (code, &remaining)).await?
            {
                return done;
            }
        }
        Err(SyncError::ConflictPersisted)
    }

    /// Commits a converged record (`None`: a concurrent writer won). A leaver whose read-back
    /// found access left is recorded still active and answered `LeaverIncomplete`.
    async fn commit_verified(
        &self,
        mut next: PersonRecord,
        expected: Option<u64>,
        audit: &AuditEntry,
        outcome: Outcome,
        (code, remaining): (&'static str, &[String]),
    ) -> Result<Option<Result<Outcome, SyncError>>, SyncError> {
        if !remaining.is_empty() {
            next.status = PersonStatus::Active;
        }
        if !self.commit(&next, expected, audit).await? {
            return Ok(None);
        }
        Ok(Some(if remaining.is_empty() { Ok(outcome) } else { Err(leaver_incomplete_because(code, remaining)) }))
    }

    /// The blast-radius breaker for a new leaver: `true` applies it, `false` holds it. Decided
    /// once per (person, leaver event) for every target (the first target to ask records the
    /// decision in the ledger; a retry or another target gets the same answer), and a slot of the
    /// sliding one-hour window is taken only when the leaver will revoke something here (planned
    /// first, reads only).
    async fn breaker_allows(
        &self,
        person: &str,
        leaver: &HrEvent,
        record: Option<&PersonRecord>,
    ) -> Result<bool, SyncError> {
        let Some(limit) = self.settings.leavers_per_hour else { return Ok(true) };
        let event_id = leaver.event_id.to_string();
        if let Some(decided) = self.ledger.decision(person, &event_id).await? {
            return Ok(decided == BREAKER_ALLOWED);
        }
        let plan = Ctx::new(record, true, person.to_string(), self.target.name(), self.ledger.as_ref());
        if self.target.converge(leaver, &plan).await?.actions.is_empty() {
            return Ok(true);
        }
        let member = format!("{person}#{event_id}");
        let now = self.settings.clock.now().timestamp();
        let Some(admitted) =
            ledger::take_window_slot(self.ledger.as_ref(), BREAKER_WINDOW_KEY, &member, now, limit).await?
        else {
            return Err(SyncError::ConflictPersisted);
        };
        let decision = if admitted { BREAKER_ALLOWED } else { "held" };
        // Another target may have decided first (then its answer stands; a slot we took
        // meanwhile is given back when it leaves the window).
        let decided = self.ledger.decide(person, &event_id, decision, now + 30 * 86_400).await?;
        Ok(decided == BREAKER_ALLOWED)
    }

    /// Keeps the leaver for an operator: the held item for `release-held` first (idempotent),
    /// then the record, which now carries the hold, so later events of the person are recorded
    /// behind it and not applied (the decision is made once for the person on this target).
    async fn hold(
        &self,
        event: &HrEvent,
        leaver: &HrEvent,
        knowledge: &Knowledge,
        record: Option<&PersonRecord>,
    ) -> Result<Outcome, SyncError> {
        let outcome = self.settled(Decision::Held, record);
        let body =
            if leaver.kind() == EventKind::Leaver { knowledge.lifecycle_body() } else { knowledge.profile_body() }
                .unwrap_or_default();
        let held = HeldEvent {
            target: self.target.name().to_string(),
            person: leaver.external_id.key(),
            event_id: leaver.event_id.to_string(),
            occurred_at: leaver.occurred_at,
            body,
            held_at: self.settings.clock.now(),
        };
        self.ledger.hold(&held, &self.audit(event, &outcome)).await?;
        let next = self.record_from(event, knowledge, record, None, Some(leaver.event_id.to_string()));
        if !self.commit(&next, record.map(|r| r.version), &self.audit(event, &outcome)).await? {
            // Someone else changed the record: the message is retried and decides again.
            return Err(SyncError::ConflictPersisted);
        }
        tracing::warn!(
            decision = "held",
            "blast-radius breaker: more leavers this hour than allowed; held for an operator"
        );
        Ok(outcome)
    }

    /// A leaver for a person this target has never seen: parked when its ExternalId nearly
    /// matches a person the ledger knows (the same after case folding and NFKC), since HR most
    /// likely meant that person, who would otherwise keep every access.
    async fn check_variant(&self, event: &HrEvent, effective: EventKind) -> Result<(), SyncError> {
        if effective != EventKind::Leaver || event.kind() != EventKind::Leaver {
            return Ok(());
        }
        let person = event.external_id.key();
        let known = self.ledger.variants(&ledger::variant_key(&event.external_id)).await?;
        // The person is known under this fold themselves (e.g. on another target): their own
        // leaver, whatever other people fold the same.
        if known.contains(&person) {
            return Ok(());
        }
        if let Some(other) = known.iter().next() {
            return Err(SyncError::permanent(
                "ExternalIdVariant",
                format!(
                    "person.externalId: no person '{person}' is known, but '{other}' is the same after case folding and \
                     Unicode normalisation; HR most likely meant that person, who keeps every access until a leaver \
                     names them exactly: correct the ExternalId in HR and send the leaver again"
                ),
            ));
        }
        Ok(())
    }

    /// Events held by the breaker for this target.
    pub async fn held(&self) -> Result<Vec<HeldEvent>, ServiceError> {
        self.ledger.held(self.target.name()).await
    }

    /// Releases every held leaver (oldest first) with the breaker bypassed: the person is
    /// re-converged on the newest state the ledger recorded (the leaver, or a newer rehire that
    /// superseded it), never judged stale and forgotten. Returns each event id with its outcome.
    pub async fn release_held(&self) -> Result<Vec<(String, Result<Outcome, SyncError>)>, ServiceError> {
        let mut bypass = self.clone();
        bypass.settings.leavers_per_hour = None;
        let mut out = Vec::new();
        for h in self.held().await? {
            let result = bypass.reconverge(&h.person).await;
            if result.is_ok() {
                self.ledger.forget_held(&h).await?;
            }
            out.push((h.event_id.clone(), result));
        }
        Ok(out)
    }

    /// An outcome decided by the ledger alone.
    fn settled(&self, decision: Decision, record: Option<&PersonRecord>) -> Outcome {
        Outcome {
            decision,
            actions: vec![],
            user_id: record.and_then(|r| r.user_id.clone()),
            user_name: record.and_then(|r| r.user_name.clone()),
            resolved_by: "-",
            dry_run: self.settings.dry_run,
            notes: vec![],
        }
    }

    /// The record after an event: the merged knowledge, and what the target did (`applied`:
    /// the effective event and its outcome; `None`: recorded without converging).
    fn record_from(
        &self,
        event: &HrEvent,
        knowledge: &Knowledge,
        previous: Option<&PersonRecord>,
        applied: Option<(&HrEvent, &Outcome)>,
        held: Option<String>,
    ) -> PersonRecord {
        let (user_id, user_name, status) = match applied {
            Some((effective, outcome)) => {
                let status = match (effective.kind(), outcome.decision, &outcome.user_id, &outcome.user_name) {
                    (_, _, None, None) => PersonStatus::Deleted,
                    (EventKind::Leaver, _, _, _) | (_, Decision::IgnoredForDisabledUser, _, _) => {
                        PersonStatus::Disabled
                    }
                    _ => PersonStatus::Active,
                };
                (outcome.user_id.clone(), outcome.user_name.clone(), status)
            }
            None => (
                previous.and_then(|r| r.user_id.clone()),
                previous.and_then(|r| r.user_name.clone()),
                previous.map_or(PersonStatus::Deleted, |r| r.status),
            ),
        };
        PersonRecord {
            person: event.external_id.key(),
            target: self.target.name().to_string(),
            user_id,
            user_name,
            status,
            last_event_id: event.event_id.to_string(),
            last_occurred_at: event.occurred_at,
            last_event: knowledge.profile_body(),
            lifecycle_event: knowledge.lifecycle_body(),
            held,
            version: previous.map_or(1, |r| r.version + 1),
            updated_at: self.settings.clock.now(),
        }
    }

    fn audit(&self, event: &HrEvent, outcome: &Outcome) -> AuditEntry {
        let now = self.settings.clock.now();
        AuditEntry {
            person: event.external_id.key(),
            target: self.target.name().to_string(),
            event_id: event.event_id.to_string(),
            event_type: event.kind().as_str().to_string(),
            occurred_at: event.occurred_at,
            decision: outcome.decision.as_str().to_string(),
            actions: outcome.actions.len(),
            writes: outcome.writes(),
            recorded_at: now,
            expires_at: self.settings.audit_ttl.map(|ttl| (now + ttl).timestamp()),
        }
    }
}
