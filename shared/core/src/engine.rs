//! The target-independent engine: the ledger's duplicate and stale guard, the person's lease,
//! one plan per piece of work (the breaker reads it, dry run reports it, the same plan is
//! applied), the leaver's write-ahead intent and read-back, and the conditional commit of the
//! person record with its audit entry. Each target (each in its own slice) implements
//! [`Target`] (`plan`, then `apply`: see [`crate::target`]); a new target is a new
//! implementation, not a new branch here.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;

use crate::clock::{self, Clock};
use crate::codes::EngineCode;
use crate::contract::{EventKind, HrEvent, InvalidEvent};
use crate::contract::{Message, Rescind};
use crate::ledger::{
    self, AuditEntry, HeldEvent, Knowledge, Leased, Ledger, Merge, MergeMessage, PersonRecord, PersonStatus,
};
use crate::ports::ServiceError;
pub use crate::target::{AnyPlan, Applied, Ctx, Desired, DynTarget, Lease, Plan, Step, Target};

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
    /// Dated ahead: recorded; the state changes when it takes effect (nothing converged now).
    Scheduled,
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
            Self::Scheduled => "scheduled",
        }
    }
}

fn busy() -> SyncError {
    tracing::info!(decision = "busy", "another instance holds the person's lease; retried");
    SyncError::Busy
}

/// Bounds re-reads after a lost ledger race, and re-plans after a target's [`SyncError::Replan`].
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
    /// The service changed under a plan (e.g. a concurrent delivery created the account
    /// first): the engine plans again (at most [`MAX_ATTEMPTS`] times, then `ConflictPersisted`).
    #[error("{0}: the service changed since the plan; planning again")]
    Replan(String),
}

impl SyncError {
    pub fn permanent(code: &'static str, reason: impl Into<String>) -> Self {
        Self::Permanent { code, reason: reason.into() }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Service(e) => e.is_retryable(),
            Self::ConflictPersisted | Self::Busy | Self::InProgress(_) | Self::Replan(_) => true,
            Self::Invalid(_) | Self::Permanent { .. } => false,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => EngineCode::InvalidEvent.as_str(),
            Self::Permanent { code, .. } => code,
            Self::Service(ServiceError::Throttled { .. }) => "Throttled",
            Self::Service(ServiceError::Conflict { .. }) => EngineCode::Conflict.as_str(),
            Self::Service(ServiceError::NotFound { .. }) => EngineCode::ResourceNotFound.as_str(),
            Self::Service(ServiceError::Validation { .. }) => EngineCode::ServiceValidation.as_str(),
            Self::Service(ServiceError::AccessDenied { .. }) => "AccessDenied",
            Self::Service(ServiceError::QuotaExceeded { .. }) => EngineCode::ServiceQuotaExceeded.as_str(),
            Self::Service(ServiceError::Unavailable { .. }) => "ServiceUnavailable",
            Self::ConflictPersisted | Self::Replan(_) => "ConflictPersisted",
            Self::Busy => "PersonBusy",
            Self::InProgress(_) => "InProgress",
        }
    }
}

/// A converged event and, for a leaver, what the read-back found still granting access.
struct Verified {
    applied: Applied,
    remaining: Vec<String>,
    /// The code a leaver with access left is parked under.
    code: &'static str,
}

/// A leaver that converged but whose read-back still finds access: parked with an alarm code.
/// The ledger keeps the leaver (so later events of the person converge to it) with the record
/// marked active, so the leaver's redelivery or redrive converges again instead of settling as
/// a duplicate.
pub fn leaver_incomplete(remaining: &[String]) -> SyncError {
    leaver_incomplete_because(EngineCode::LeaverIncomplete.as_str(), remaining)
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
fn incomplete_leaver(r: &PersonRecord, known: &Knowledge) -> bool {
    r.held.is_none()
        && r.status == PersonStatus::Active
        && ledger::effective(known, Some(r.status)).is_some_and(|e| e.kind() == EventKind::Leaver)
}

/// A stored event that no longer validates decides the person's state: nothing converges.
fn stored_unreadable(u: &ledger::Unreadable) -> SyncError {
    SyncError::permanent(
        EngineCode::StoredEventUnreadable.as_str(),
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
    /// How dated events are resolved (`DEFAULT_TIMEZONE`, the leaver's local cut-off, the bound
    /// on how far ahead a change may be dated).
    pub dating: DatingRules,
    /// Whether something fires this engine's pending transitions on time ([`Engine::fire`]: the
    /// replay's virtual clock). Without it, a message that leaves a change pending is parked
    /// (`DatedEventNotSchedulable`): a dated leaver accepted and never fired would be a missed
    /// leaver.
    pub fires_pending: bool,
}

/// The deployment's rules for dated events.
#[derive(Clone, Debug)]
pub struct DatingRules {
    /// `DEFAULT_TIMEZONE`: the zone of a person whose zone is unknown (UTC by default).
    pub default_zone: String,
    /// The local time a leaver's last working day ends at (23:59:59 by default).
    pub cutoff: chrono::NaiveTime,
    /// `MAX_EFFECTIVE_AHEAD_DAYS`: a change dated further ahead is parked (`EffectiveTooFarAhead`).
    pub max_ahead_days: i64,
}

impl Default for DatingRules {
    fn default() -> Self {
        Self { default_zone: "UTC".into(), cutoff: crate::dated::default_cutoff(), max_ahead_days: 400 }
    }
}

/// The engine for one target. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    target: Arc<dyn DynTarget>,
    ledger: Arc<dyn Ledger>,
    settings: EngineSettings,
    /// Where a pending change is scheduled to fire (`None`: nothing schedules; see
    /// [`EngineSettings::fires_pending`]).
    schedules: Option<Arc<dyn crate::ports::Schedules>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("target", &self.target.name())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The record a piece of work starts from: read under the lease, or the one read just before
/// it when the lease was taken on that record unchanged.
enum Start {
    /// Read it (again) under the lease.
    Read,
    /// The record read before (`None`: the person had none), still current under the lease,
    /// with what it knows (read once).
    Known(Option<Box<PersonRecord>>, Box<Knowledge>),
}

/// On what condition the lease is taken.
#[derive(Clone, Copy, Debug)]
enum LeaseOn {
    /// Whatever the record: the work reads it under the lease.
    Any,
    /// Only if the record is still at this version (`None`: no record), in the same atomic write.
    Unchanged(Option<u64>),
}

/// How a commit ended.
enum Committed {
    /// Written: the work's result.
    Done(Result<Outcome, SyncError>),
    /// A concurrent writer committed first; nothing was written.
    Raced,
}

impl Engine {
    pub fn new(target: Arc<dyn DynTarget>, ledger: Arc<dyn Ledger>, settings: EngineSettings) -> Self {
        Self { target, ledger, settings, schedules: None }
    }

    /// The same engine scheduling every pending change to fire on its time ([`Engine::fire`]):
    /// a change dated ahead is accepted.
    pub fn with_schedules(mut self, schedules: Arc<dyn crate::ports::Schedules>) -> Self {
        self.schedules = Some(schedules);
        self.settings.fires_pending = true;
        self
    }

    /// Schedules every change pending in `knowledge` (idempotent), written ahead of the commit
    /// that records it: a firing never goes missing (an extra one converges to what is due,
    /// nothing).
    async fn schedule(&self, person: &str, knowledge: &Knowledge) -> Result<(), SyncError> {
        let Some(schedules) = &self.schedules else { return Ok(()) };
        if self.settings.dry_run {
            return Ok(());
        }
        for (at, _) in knowledge.pending() {
            schedules.put(&crate::ports::Firing::new(self.target.name(), person, at)).await?;
        }
        Ok(())
    }

    /// After a commit: removes the firings `before` had that `after` no longer has (a rescinded
    /// change). Best effort: a firing left behind converges to what is due, nothing.
    async fn unschedule(&self, person: &str, before: &Knowledge, after: &Knowledge) {
        let Some(schedules) = &self.schedules else { return };
        let keep: BTreeSet<_> = after.pending().into_iter().map(|(at, _)| at).collect();
        for (at, _) in before.pending().into_iter().filter(|(at, _)| !keep.contains(at)) {
            if let Err(e) = schedules.delete(&crate::ports::Firing::new(self.target.name(), person, at)).await {
                tracing::warn!(error = %e, "a firing no longer pending was not deleted; it converges to nothing");
            }
        }
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

    /// The same engine, with something that fires its pending transitions on time
    /// ([`Engine::fire`]: the replay's virtual clock, a test): a change dated ahead is accepted.
    pub fn firing(mut self) -> Self {
        self.settings.fires_pending = true;
        self
    }

    /// The ledger this engine records in.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
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
    /// converges a person at a time, whatever the delivery path); a held lease is `Busy`. A dry
    /// run only plans, and reports the plan.
    pub async fn apply(&self, event: &HrEvent, body: &str) -> Result<Outcome, SyncError> {
        // Before anything: an event from the future must never become the person's newest.
        if let Some(why) = clock::occurred_in_future(event.occurred_at, self.settings.clock.now()) {
            return Err(EngineCode::OccurredInFuture.error(why));
        }
        if let Some(why) = self.too_far_ahead(event) {
            return Err(EngineCode::EffectiveTooFarAhead.error(why));
        }
        self.target.check(event)?;
        let person = event.external_id.key();
        // A duplicate is settled by one read and no write; a stale event by one read and its
        // audit entry; only an event that changes the person's knowledge takes the lease (and
        // reads the record again under it).
        let record = self.ledger.get(&person, self.target.name()).await?;
        let known = Knowledge::at(record.as_ref(), self.settings.clock.now());
        let message = Message::Event(Box::new(event.clone()));
        let merge = match ledger::merge_message(&message, body, record.as_ref(), known.clone(), &self.dating()) {
            MergeMessage::Undated(m) => m,
            MergeMessage::Duplicate => Merge::Duplicate,
            MergeMessage::Reused => Merge::Reused,
            MergeMessage::RescindRefused(why) => return Err(EngineCode::RescindTooLate.error(why)),
            MergeMessage::TooMany(why) => return Err(EngineCode::TooManyPendingChanges.error(why)),
            MergeMessage::Changed(k) | MergeMessage::Recorded { knowledge: k, .. } => Merge::Changed(k),
        };
        match merge {
            Merge::Changed(_) => {
                // The lease is taken only if the record is still the one just read: then it
                // need not be read again under the lease.
                let on = LeaseOn::Unchanged(record.as_ref().map(|r| r.version));
                let ahead = self.target.ahead(event);
                self.leased(&person, on, ahead, |unchanged, lease| {
                    let start =
                        if unchanged { Start::Known(record.map(Box::new), Box::new(known)) } else { Start::Read };
                    async move { self.apply_leased(event, body, start, lease.as_deref()).await }
                })
                .await
            }
            // A leaver recorded but not verified (LeaverIncomplete): its redelivery converges again.
            Merge::Duplicate if record.as_ref().is_some_and(|r| incomplete_leaver(r, &known)) => {
                let person = person.as_str();
                self.leased(person, LeaseOn::Any, Vec::new(), |_, lease| async move {
                    self.reconverge_leased(person, lease.as_deref()).await
                })
                .await
            }
            unchanged => self.unchanged(&unchanged, event, record.as_ref()).await,
        }
    }

    /// The dated model's inputs at the engine's clock.
    fn dating(&self) -> ledger::Dating {
        let rules = &self.settings.dating;
        ledger::Dating {
            now: self.settings.clock.now(),
            default_zone: rules.default_zone.clone(),
            cutoff: rules.cutoff,
        }
    }

    /// An event dated further ahead than `MAX_EFFECTIVE_AHEAD_DAYS` (a year typed 2207 must never
    /// be scheduled): why, or `None`.
    fn too_far_ahead(&self, event: &HrEvent) -> Option<String> {
        crate::dated::too_far_ahead(event, self.settings.clock.now(), self.settings.dating.max_ahead_days)
    }

    /// A message that changes nothing now: recorded with the person's knowledge (and, dated
    /// ahead, with when it takes effect). A dated leaver is judged by the breaker now, when HR
    /// recorded it (a burst of recordings is the anomaly; a month-end of leavers recorded over
    /// weeks fires on its date without being held).
    async fn record_only(
        &self,
        event: &HrEvent,
        knowledge: &Knowledge,
        pending: bool,
        record: Option<&PersonRecord>,
        lease: Option<&Lease>,
    ) -> Result<Outcome, SyncError> {
        if pending && !self.settings.fires_pending {
            return Err(EngineCode::DatedEventNotSchedulable.error(format!(
                "{}: the change takes effect later, and this deployment has nothing that fires a pending change on time; send it on its effective date (or as `immediate` for a leaver)",
                if event.kind() == EventKind::Leaver { "effectiveDate/effectiveAt of a leaver" } else { "effectiveDate/effectiveAt" }
            )));
        }
        let decision = if pending { Decision::Scheduled } else { Decision::Stale };
        // What is pending is said in the outcome, a dry run included: when it takes effect.
        let mut outcome = self.settled(decision, record);
        if let Some(e) = knowledge.events.iter().find(|e| e.message.event_id() == &event.event_id)
            && e.effective > self.settings.clock.now()
        {
            outcome.notes.push(format!(
                "takes effect at {} (recorded; applied then)",
                e.effective.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        if self.settings.dry_run {
            return Ok(outcome);
        }
        let leaver_ahead = pending
            && event.kind() == EventKind::Leaver
            && record.is_some_and(|r| r.status == PersonStatus::Active && r.held.is_none());
        if leaver_ahead && !self.breaker_allows(&event.external_id.key(), event).await? {
            return self.hold(event, event, knowledge, record, lease).await;
        }
        self.schedule(&event.external_id.key(), knowledge).await?;
        let mut next = self.record_from(event, knowledge, record, None, record.and_then(|r| r.held.clone()));
        if record.is_none() {
            // Nothing converged yet (a hire dated ahead): not a leaver's record, so the change
            // converges as what it is when it takes effect (a joiner, not a rehire).
            next.status = PersonStatus::Active;
        }
        if !self.commit(&next, record.map(|r| r.version), &self.audit(event, &outcome), lease).await? {
            return Err(SyncError::ConflictPersisted);
        }
        Ok(outcome)
    }

    /// Applies a rescind: the event it names is cancelled (whichever arrives first), and the
    /// person converges to what the rest decides now. Too late (recorded at or after that event
    /// took effect), or naming a change that took effect when recorded: parked `RescindTooLate`
    /// (HR sends a rehire or a new event).
    pub async fn apply_rescind(&self, rescind: &Rescind, body: &str) -> Result<Outcome, SyncError> {
        if let Some(why) = clock::occurred_in_future(rescind.occurred_at, self.settings.clock.now()) {
            return Err(EngineCode::OccurredInFuture.error(why));
        }
        let person = rescind.external_id.key();
        self.leased(&person, LeaseOn::Any, Vec::new(), |_, lease| async move {
            self.rescind_leased(rescind, body, lease.as_deref()).await
        })
        .await
    }

    async fn rescind_leased(&self, rescind: &Rescind, body: &str, lease: Option<&Lease>) -> Result<Outcome, SyncError> {
        let person = rescind.external_id.key();
        let message = Message::Rescind(rescind.clone());
        for _attempt in 0..MAX_ATTEMPTS {
            let record = self.ledger.get(&person, self.target.name()).await?;
            let known = Knowledge::at(record.as_ref(), self.settings.clock.now());
            let before = known.clone();
            let (knowledge, changed) = match ledger::merge_message(
                &message,
                body,
                record.as_ref(),
                known,
                &self.dating(),
            ) {
                MergeMessage::Changed(k) => (*k, true),
                MergeMessage::Recorded { knowledge, .. } => (*knowledge, false),
                MergeMessage::RescindRefused(why) => return Err(EngineCode::RescindTooLate.error(why)),
                MergeMessage::TooMany(why) => return Err(EngineCode::TooManyPendingChanges.error(why)),
                MergeMessage::Reused => {
                    return Err(EngineCode::EventIdReused.error(format!(
                            "eventId: '{}' was already used by another event of this person; a rescind needs an eventId of its own",
                            rescind.event_id
                        )));
                }
                MergeMessage::Duplicate | MergeMessage::Undated(_) => {
                    return Ok(self.settled(Decision::Duplicate, record.as_ref()));
                }
            };
            let audit_event = self.rescind_as_event(rescind, &knowledge);
            let mut applied = None;
            let mut verified = (EngineCode::LeaverIncomplete.as_str(), Vec::new());
            let mut outcome =
                self.settled(if changed { Decision::NoChange } else { Decision::Scheduled }, record.as_ref());
            if changed
                && record.as_ref().is_none_or(|r| r.held.is_none())
                && let Some(effective) = self.converge_to(&knowledge, record.as_ref())
            {
                {
                    let ctx = self.ctx(&person, record.as_ref(), false, lease);
                    let plan = self.plan(&effective, &ctx).await?;
                    if self.settings.dry_run {
                        return Ok(self.planned(plan, &effective, &effective));
                    }
                    let v = self.converge(plan, &effective, &ctx).await?;
                    outcome = self.outcome(v.applied.clone(), &effective, &effective);
                    verified = (v.code, v.remaining);
                    applied = Some(v.applied);
                }
            }
            if self.settings.dry_run {
                return Ok(outcome);
            }
            self.schedule(&person, &knowledge).await?;
            let mut next = self.record_from(
                &audit_event,
                &knowledge,
                record.as_ref(),
                applied.as_ref(),
                record.as_ref().and_then(|r| r.held.clone()),
            );
            next.last_event_id = rescind.event_id.to_string();
            let mut audit = self.audit(&audit_event, &outcome);
            audit.event_id = rescind.event_id.to_string();
            audit.event_type = "rescind".into();
            match self
                .commit_verified(
                    next,
                    record.as_ref().map(|r| r.version),
                    &audit,
                    outcome,
                    (verified.0, &verified.1),
                    lease,
                )
                .await?
            {
                Committed::Done(done) => {
                    self.unschedule(&person, &before, &knowledge).await;
                    return done;
                }
                Committed::Raced => continue,
            }
        }
        Err(SyncError::ConflictPersisted)
    }

    /// What the person converges to: what the knowledge decides ([`ledger::effective`]), or,
    /// when it decides nothing (every change rescinded: a hire that never happened) for a person
    /// the target has converged, a bare leaver: nothing they were given stays.
    fn converge_to(&self, knowledge: &Knowledge, record: Option<&PersonRecord>) -> Option<HrEvent> {
        if let Some(e) = ledger::effective(knowledge, record.map(|r| r.status)) {
            return Some(e);
        }
        let record = record.filter(|r| r.user_id.is_some() || r.user_name.is_some())?;
        let external_id = crate::contract::ExternalId::from_key(&record.person)?;
        Some(HrEvent {
            event_id: crate::contract::EventId::parse("rescinded").ok()?,
            occurred_at: self.settings.clock.now(),
            external_id,
            change: crate::contract::Change::Leaver { user_name: None, directory_user_name: None },
            when: crate::dated::When::Recorded,
            immediate: false,
        })
    }

    /// The rescind, as the record and its audit entry name the change that delivered it (its id
    /// and time; the person's state is the knowledge's).
    fn rescind_as_event(&self, rescind: &Rescind, knowledge: &Knowledge) -> HrEvent {
        let base = knowledge.profile.as_ref().or(knowledge.lifecycle.as_ref()).map(|(e, _)| e.clone());
        let mut e = base.unwrap_or_else(|| HrEvent {
            event_id: rescind.event_id.clone(),
            occurred_at: rescind.occurred_at,
            external_id: rescind.external_id.clone(),
            change: crate::contract::Change::Leaver { user_name: None, directory_user_name: None },
            when: crate::dated::When::Recorded,
            immediate: false,
        });
        e.event_id = rescind.event_id.clone();
        e.occurred_at = rescind.occurred_at;
        e
    }

    /// Fires what is due for a person now (the engine's clock): when the state the knowledge
    /// decides now is not the one last converged (a dated change took effect), the person
    /// converges to it; otherwise nothing is read or written on the service. A person held by the
    /// breaker stays held. How a pending transition is applied on its date.
    pub async fn fire(&self, person: &str) -> Result<Outcome, SyncError> {
        let record = self.ledger.get(person, self.target.name()).await?;
        let Some(record) = record else { return Ok(self.settled(Decision::NoChange, None)) };
        if record.held.is_some() {
            return Ok(self.settled(Decision::Held, Some(&record)));
        }
        let now = Knowledge::at(Some(&record), self.settings.clock.now());
        let slot_id = |b: &Option<String>| b.as_deref().map(ledger::body_event_id);
        let converged = (slot_id(&record.last_event), slot_id(&record.lifecycle_event));
        let due = (
            now.profile.as_ref().map(|(e, _)| Some(e.event_id.to_string())),
            now.lifecycle.as_ref().map(|(e, _)| Some(e.event_id.to_string())),
        );
        if !now.dated() || due == converged {
            return Ok(self.settled(Decision::NoChange, Some(&record)));
        }
        self.reconverge(person).await
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
                EngineCode::EventIdReused.as_str(),
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

    /// Runs `work` under the person's lease (not in a dry run, which writes nothing: `work` then
    /// gets no lease). With [`LeaseOn::Unchanged`], the lease is taken only if the record is
    /// still the one read, in the same atomic write, and `work` is told so (`true`: the record
    /// need not be read again). The commit that ends the work gives the lease back in its own
    /// atomic write (see [`Engine::commit`]); otherwise it is released here.
    async fn leased<F, Fut>(&self, person: &str, on: LeaseOn, ahead: Vec<String>, work: F) -> Result<Outcome, SyncError>
    where
        F: FnOnce(bool, Option<Arc<Lease>>) -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, SyncError>>,
    {
        static HOLDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if self.settings.dry_run {
            return work(false, None).await;
        }
        let n = HOLDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let holder = format!("{}-{}-{n}", std::process::id(), Utc::now().timestamp_nanos_opt().unwrap_or_default());
        let until = Utc::now().timestamp() + ledger::LEASE_SECONDS;
        let unchanged = match on {
            LeaseOn::Unchanged(v) => {
                match self.ledger.lease_if_unchanged(person, self.target.name(), &holder, until, v, &ahead).await? {
                    Leased::Unchanged => true,
                    Leased::Taken => false,
                    Leased::Busy => return Err(busy()),
                }
            }
            LeaseOn::Any if self.ledger.lease(person, self.target.name(), &holder, until).await? => false,
            LeaseOn::Any => return Err(busy()),
        };
        // Written with the lease only when the record was unchanged (one transaction).
        let lease = Arc::new(Lease::new(holder, if unchanged { ahead.into_iter().collect() } else { BTreeSet::new() }));
        let result = work(unchanged, Some(lease.clone())).await;
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
    /// lease back and records the inventory keys learnt from the writes (a commit is always the
    /// last write of the work it ends).
    async fn commit(
        &self,
        next: &PersonRecord,
        expected: Option<u64>,
        audit: &AuditEntry,
        lease: Option<&Lease>,
    ) -> Result<bool, ServiceError> {
        let Some(lease) = lease else { return self.ledger.commit(next, expected, audit).await };
        let done = self.ledger.commit_and_release(next, expected, audit, &lease.holder, &lease.deferred()).await?;
        if done {
            lease.released.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut d) = lease.deferred.lock() {
                d.clear();
            }
        }
        Ok(done)
    }

    /// The context of one piece of work on the person.
    fn ctx<'a>(
        &'a self,
        person: &str,
        record: Option<&'a PersonRecord>,
        sweep: bool,
        lease: Option<&'a Lease>,
    ) -> Ctx<'a> {
        let mut ctx = Ctx::new(record, person.to_string(), self.target.name(), self.ledger.as_ref(), lease);
        ctx.sweep = sweep;
        ctx
    }

    /// Plans `state` for the person at the engine's clock (reads only).
    async fn plan(&self, state: &HrEvent, ctx: &Ctx<'_>) -> Result<AnyPlan, SyncError> {
        self.target.plan(&Desired { state, at: self.settings.clock.now() }, ctx).await
    }

    async fn apply_leased(
        &self,
        event: &HrEvent,
        body: &str,
        mut start: Start,
        lease: Option<&Lease>,
    ) -> Result<Outcome, SyncError> {
        let person = event.external_id.key();
        let dry_run = self.settings.dry_run;
        let mut raced = false;
        for _attempt in 0..MAX_ATTEMPTS {
            // The record and what it knows, each read once per attempt.
            let (record, before) = match std::mem::replace(&mut start, Start::Read) {
                Start::Known(record, known) => (record.map(|r| *r), *known),
                Start::Read => {
                    let record = self.ledger.get(&person, self.target.name()).await?;
                    let known = Knowledge::at(record.as_ref(), self.settings.clock.now());
                    (record, known)
                }
            };
            let message = Message::Event(Box::new(event.clone()));
            let merged = ledger::merge_message(&message, body, record.as_ref(), before.clone(), &self.dating());
            let merged = match merged {
                MergeMessage::Undated(m) => m,
                MergeMessage::Changed(k) => Merge::Changed(k),
                MergeMessage::Duplicate => Merge::Duplicate,
                MergeMessage::Reused => Merge::Reused,
                MergeMessage::RescindRefused(why) => return Err(EngineCode::RescindTooLate.error(why)),
                MergeMessage::TooMany(why) => return Err(EngineCode::TooManyPendingChanges.error(why)),
                MergeMessage::Recorded { knowledge, pending } if !raced => {
                    return self.record_only(event, &knowledge, pending, record.as_ref(), lease).await;
                }
                MergeMessage::Recorded { .. } => Merge::Stale,
            };
            let knowledge = match merged {
                Merge::Changed(k) => *k,
                unchanged if !raced => return self.unchanged(&unchanged, event, record.as_ref()).await,
                _ => {
                    // We lost a race after writing: converge again on what the winner recorded,
                    // so our writes never outlive a newer decision.
                    if let Some(r) = record.as_ref().filter(|r| r.held.is_none())
                        && let Some(winner) = ledger::effective(&before, Some(r.status))
                    {
                        let ctx = self.ctx(&person, Some(r), true, lease);
                        let plan = self.plan(&winner, &ctx).await?;
                        let v = self.converge(plan, &winner, &ctx).await?;
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
                && lifecycle_id(&before) != lifecycle_id(&knowledge);
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
            if let Some(held) = record.as_ref().and_then(|r| r.held.clone()) {
                let outcome = self.settled(Decision::Held, record.as_ref());
                if dry_run {
                    return Ok(outcome);
                }
                let next = self.record_from(event, &knowledge, record.as_ref(), None, Some(held));
                if self.commit(&next, record.as_ref().map(|r| r.version), &self.audit(event, &outcome), lease).await? {
                    return Ok(outcome);
                }
                continue;
            }
            let new_leaver = effective.kind() == EventKind::Leaver
                && before.lifecycle.as_ref().map(|(e, _)| e.event_id.as_str()) != Some(effective.event_id.as_str());
            let strips_all = effective.kind() != EventKind::Leaver
                && record.as_ref().is_some_and(|r| r.status == PersonStatus::Active)
                && before
                    .profile
                    .as_ref()
                    .is_some_and(|(p, _)| p.event_id != effective.event_id && p.profile().is_some_and(grants_any))
                && effective.profile().is_some_and(|p| !grants_any(p));
            // One plan (reads only): a dry run reports it, the breaker reads it, and the same
            // plan is applied.
            let hint = record.clone();
            let ctx = self.ctx(&person, hint.as_ref(), raced, lease);
            let plan = self.plan(&effective, &ctx).await?;
            if dry_run {
                return Ok(self.planned(plan, &effective, event));
            }
            // Counted when the plan revokes, or writes anything at all: a plan that did not see
            // the account (it creates) may meet it at apply time (`Replan`), and the re-plan,
            // which does revoke, is applied under this same decision.
            let counted = plan.revokes || !plan.actions.is_empty();
            if (new_leaver || strips_all) && !raced && counted && !self.breaker_allows(&person, &effective).await? {
                return self.hold(event, &effective, &knowledge, record.as_ref(), lease).await;
            }
            // Write-ahead: the leaver is recorded before anything is revoked (still marked active,
            // so its redelivery converges again): should this work end between the first revoke
            // and the commit, every later event of the person converges to the leaver, never to
            // the profile it revoked (no re-created account, no re-subscription).
            let mut record = record;
            if new_leaver {
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
            if record.is_none() && effective.kind() != EventKind::Leaver {
                // The person's folded ExternalId, before the first account is made (idempotent).
                self.ledger.index_variant(&ledger::folded_identity(&effective.external_id), &person).await?;
            }
            let Verified { applied, remaining, code } = self.converge(plan, &effective, &ctx).await?;
            let mut outcome = self.outcome(applied.clone(), &effective, event);
            outcome.dry_run = false;
            self.schedule(&person, &knowledge).await?;
            let next = self.record_from(event, &knowledge, record.as_ref(), Some(&applied), None);
            let audit = self.audit(event, &outcome);
            let expected = record.as_ref().map(|r| r.version);
            match self.commit_verified(next, expected, &audit, outcome, (code, &remaining), lease).await? {
                Committed::Done(done) => return done,
                Committed::Raced => {
                    raced = true;
                    tracing::info!(
                        decision = "ledger-race",
                        "a concurrent delivery committed first; re-reading the ledger"
                    );
                }
            }
        }
        Err(SyncError::ConflictPersisted)
    }

    /// The outcome of a plan that was applied (or, dry run, only made), as reported for the
    /// delivered `event`: when the person has left and the event is not the leaver, it is
    /// recorded and only the leaver is converged.
    fn outcome(&self, applied: Applied, effective: &HrEvent, event: &HrEvent) -> Outcome {
        let mut outcome = Outcome {
            decision: applied.decision,
            actions: applied.actions,
            user_id: applied.user_id,
            user_name: applied.user_name,
            resolved_by: applied.resolved_by,
            dry_run: self.settings.dry_run,
            notes: applied.notes,
        };
        if effective.kind() == EventKind::Leaver && event.kind() != EventKind::Leaver {
            outcome.notes.push("the person has left: recorded; only a rehire grants access again".into());
            if outcome.actions.is_empty() {
                outcome.decision = Decision::IgnoredForDisabledUser;
            }
        }
        outcome
    }

    /// A dry run's outcome: the plan, nothing written.
    fn planned(&self, plan: AnyPlan, effective: &HrEvent, event: &HrEvent) -> Outcome {
        let applied = Applied {
            decision: plan.decision,
            actions: plan.actions,
            user_id: plan.user_id,
            user_name: plan.user_name,
            status: PersonStatus::Active,
            resolved_by: plan.resolved_by,
            notes: plan.notes,
        };
        self.outcome(applied, effective, event)
    }

    /// Applies `plan` (planning again when the service changed under it). A leaver is then read
    /// back ([`Target::verify_revoked`] on the plan's accounts); anything still granting access
    /// is planned and applied once more (a concurrent grant, a read that lagged) and, if it
    /// stays, returned as `remaining`, for the caller to record and park (`LeaverIncomplete`).
    async fn converge(&self, plan: AnyPlan, effective: &HrEvent, ctx: &Ctx<'_>) -> Result<Verified, SyncError> {
        let (plan, mut applied) = self.apply_plan(plan, effective, ctx).await?;
        if effective.kind() != EventKind::Leaver {
            return Ok(Verified { applied, remaining: vec![], code: EngineCode::LeaverIncomplete.as_str() });
        }
        let mut remaining = self.target.verify_revoked(&plan, ctx).await?;
        if !remaining.is_empty() {
            tracing::warn!(
                decision = "leaver-reconverge",
                left = remaining.len(),
                "access left after a leaver; converging again"
            );
            let again = self.plan(effective, ctx).await?;
            let (again, more) = self.apply_plan(again, effective, ctx).await?;
            applied.actions.extend(more.actions);
            remaining = self.target.verify_revoked(&again, ctx).await?;
        }
        Ok(Verified { applied, remaining, code: ctx.residual().unwrap_or(EngineCode::LeaverIncomplete.as_str()) })
    }

    /// Applies a plan; on [`SyncError::Replan`] plans again, at most [`MAX_ATTEMPTS`] times.
    async fn apply_plan(
        &self,
        mut plan: AnyPlan,
        effective: &HrEvent,
        ctx: &Ctx<'_>,
    ) -> Result<(AnyPlan, Applied), SyncError> {
        for _attempt in 0..MAX_ATTEMPTS {
            match self.target.apply(&plan, ctx).await {
                Err(SyncError::Replan(why)) => {
                    tracing::info!(decision = "replan", why = %why, "the service changed under the plan; planning again");
                    plan = self.plan(effective, ctx).await?;
                }
                applied => return Ok((plan, applied?)),
            }
        }
        Err(SyncError::ConflictPersisted)
    }

    /// Re-converges a person on what the ledger knows (no new event), bypassing the breaker and
    /// clearing a hold: how `release-held` applies a held leaver, or whatever superseded it.
    pub async fn reconverge(&self, person: &str) -> Result<Outcome, SyncError> {
        self.leased(person, LeaseOn::Any, Vec::new(), |_, lease| async move {
            self.reconverge_leased(person, lease.as_deref()).await
        })
        .await
    }

    async fn reconverge_leased(&self, person: &str, lease: Option<&Lease>) -> Result<Outcome, SyncError> {
        for _attempt in 0..MAX_ATTEMPTS {
            let Some(record) = self.ledger.get(person, self.target.name()).await? else {
                return Ok(self.settled(Decision::NoChange, None));
            };
            let knowledge = Knowledge::at(Some(&record), self.settings.clock.now());
            if let Some(u) = knowledge.blocked_by() {
                return Err(stored_unreadable(u));
            }
            let Some(effective) = self.converge_to(&knowledge, Some(&record)) else {
                return Ok(self.settled(Decision::NoChange, Some(&record)));
            };
            let ctx = self.ctx(person, Some(&record), true, lease);
            let plan = self.plan(&effective, &ctx).await?;
            if self.settings.dry_run {
                return Ok(self.planned(plan, &effective, &effective));
            }
            let Verified { applied, remaining, code } = self.converge(plan, &effective, &ctx).await?;
            let mut next = self.record_from(&effective, &knowledge, Some(&record), Some(&applied), None);
            next.last_event_id = format!("reconverge#{}", record.version + 1);
            let outcome = self.outcome(applied, &effective, &effective);
            let audit = self.audit(&effective, &outcome);
            match self.commit_verified(next, Some(record.version), &audit, outcome, (code, &remaining), lease).await? {
                Committed::Done(done) => return done,
                Committed::Raced => {}
            }
        }
        Err(SyncError::ConflictPersisted)
    }

    /// Commits a converged record. A leaver whose read-back found access left is recorded still
    /// active and answered `LeaverIncomplete`.
    async fn commit_verified(
        &self,
        mut next: PersonRecord,
        expected: Option<u64>,
        audit: &AuditEntry,
        outcome: Outcome,
        (code, remaining): (&'static str, &[String]),
        lease: Option<&Lease>,
    ) -> Result<Committed, SyncError> {
        if !remaining.is_empty() {
            next.status = PersonStatus::Active;
        }
        if !self.commit(&next, expected, audit, lease).await? {
            return Ok(Committed::Raced);
        }
        Ok(Committed::Done(if remaining.is_empty() {
            Ok(outcome)
        } else {
            Err(leaver_incomplete_because(code, remaining))
        }))
    }

    /// The blast-radius breaker for a new leaver whose plan writes something: `true` applies
    /// it, `false` holds it. Decided once per (person, leaver event) for every target: the first
    /// target to decide records the decision in the ledger (first writer wins) and a retry or
    /// another target gets the stored answer. A slot of the sliding one-hour window is taken (or
    /// kept: a member already in the window keeps its slot) before the decision is written; a
    /// retry that finds the decision already made may thus take a slot it does not need, which
    /// holds more, never less. One ledger read (the window).
    async fn breaker_allows(&self, person: &str, leaver: &HrEvent) -> Result<bool, SyncError> {
        let Some(limit) = self.settings.leavers_per_hour else { return Ok(true) };
        let event_id = leaver.event_id.to_string();
        let member = format!("{person}#{event_id}");
        let now = self.settings.clock.now().timestamp();
        let Some(admitted) =
            ledger::take_window_slot(self.ledger.as_ref(), BREAKER_WINDOW_KEY, &member, now, limit).await?
        else {
            return Err(SyncError::ConflictPersisted);
        };
        let decision = if admitted { BREAKER_ALLOWED } else { "held" };
        // Another target (or an earlier attempt) may have decided first: its answer stands.
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
        lease: Option<&Lease>,
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
        if !self.commit(&next, record.map(|r| r.version), &self.audit(event, &outcome), lease).await? {
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
        let known = self.ledger.variants(&ledger::folded_identity(&event.external_id)).await?;
        // The person is known under this fold themselves (e.g. on another target): their own
        // leaver, whatever other people fold the same.
        if known.contains(&person) {
            return Ok(());
        }
        if let Some(other) = known.iter().next() {
            return Err(SyncError::permanent(
                EngineCode::ExternalIdVariant.as_str(),
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

    /// The record after an event: the merged knowledge, and what the target did (`applied`: what
    /// the applied plan left, its status stated by the target; `None`: recorded without
    /// converging).
    fn record_from(
        &self,
        event: &HrEvent,
        knowledge: &Knowledge,
        previous: Option<&PersonRecord>,
        applied: Option<&Applied>,
        held: Option<String>,
    ) -> PersonRecord {
        let (user_id, user_name, status) = match applied {
            Some(applied) => (applied.user_id.clone(), applied.user_name.clone(), applied.status),
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
            events: if knowledge.dated() { knowledge.stored() } else { Vec::new() },
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
