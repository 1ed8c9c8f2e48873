//! The target-independent engine: the ledger's duplicate and stale guard, the target's converge
//! step, and the conditional commit of the person record with its audit entry. Each target
//! (Identity Store, License Manager user subscriptions, ...) implements [`Target`]; a new target
//! is a new implementation, not a new branch here.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use crate::contract::{EventKind, HrEvent, InvalidEvent};
use crate::ledger::{self, AuditEntry, Guard, HeldEvent, Ledger, PersonRecord, PersonStatus};
use crate::planner::Decision;
use crate::ports::ServiceError;

/// Bounds re-reads after a lost ledger race (and a target's own conflict re-plans).
pub const MAX_ATTEMPTS: usize = 3;

/// The result of one applied (or dry-run) event on one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// What was (or, dry run, would be) done, in order; free of personal data.
    pub actions: Vec<String>,
    /// The target's account id (Identity Store UserId; for subscriptions, none).
    pub user_id: Option<String>,
    /// The account's name after the event (Identity Store userName, AD username).
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
}

impl SyncError {
    pub fn permanent(code: &'static str, reason: impl Into<String>) -> Self {
        Self::Permanent { code, reason: reason.into() }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Service(e) => e.is_retryable(),
            Self::ConflictPersisted => true,
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
    /// the person's ledger record as a hint. No ledger writes.
    async fn converge(
        &self,
        event: &HrEvent,
        record: Option<&PersonRecord>,
        dry_run: bool,
    ) -> Result<Outcome, SyncError>;
}

/// Engine settings.
#[derive(Clone, Debug, Default)]
pub struct EngineSettings {
    /// Plan and report without writing to any service, the ledger included.
    pub dry_run: bool,
    /// How long audit entries are kept (DynamoDB TTL); `None` keeps them.
    pub audit_ttl: Option<chrono::Duration>,
    /// The blast-radius breaker: at most this many leavers an hour per target are applied; the
    /// others are held until an operator releases them. `None`: no breaker.
    pub leavers_per_hour: Option<u32>,
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

    /// Every audit entry of a person (`issuer#id`), all targets, in HR time order.
    pub async fn audit_trail(&self, person: &str) -> Result<Vec<AuditEntry>, ServiceError> {
        self.ledger.audit_trail(person).await
    }

    /// Applies one validated event (`body` is the event as received, kept in the ledger).
    /// Idempotent: a duplicate eventId makes no writes at all; an older event is skipped and
    /// audited as stale; the same state again makes no service writes.
    pub async fn apply(&self, event: &HrEvent, body: &str) -> Result<Outcome, SyncError> {
        self.target.check(event)?;
        let person = event.external_id.key();
        let dry_run = self.settings.dry_run;
        let mut raced = false;
        for _attempt in 0..MAX_ATTEMPTS {
            let record = self.ledger.get(&person, self.target.name()).await?;
            match ledger::guard(event.event_id.as_str(), event.occurred_at, record.as_ref()) {
                Guard::Duplicate => return Ok(self.settled(Decision::Duplicate, record.as_ref())),
                Guard::Stale => {
                    if raced && !dry_run {
                        // We lost a race to a newer event after writing: converge on the winner.
                        self.converge_on_winner(record.as_ref()).await?;
                    }
                    let outcome = self.settled(Decision::Stale, record.as_ref());
                    if !dry_run {
                        self.ledger.append_audit(&self.audit(event, &outcome)).await?;
                    }
                    return Ok(outcome);
                }
                Guard::Apply => {}
            }
            if !raced && !dry_run && event.kind() == EventKind::Leaver && !self.breaker_allows().await? {
                return self.hold(event, body, record.as_ref()).await;
            }
            let outcome = self.target.converge(event, record.as_ref(), dry_run).await?;
            if dry_run {
                return Ok(outcome);
            }
            let next = self.next_record(event, body, &outcome);
            let expected = record.as_ref().map(|r| r.last_event_id.as_str());
            if self.ledger.commit(&next, expected, &self.audit(event, &outcome)).await? {
                return Ok(outcome);
            }
            raced = true;
            tracing::info!(decision = "ledger-race", "a concurrent delivery committed first; re-reading the ledger");
        }
        Err(SyncError::ConflictPersisted)
    }

    /// Takes one of this hour's leaver slots (shared by every instance through the ledger).
    async fn breaker_allows(&self) -> Result<bool, SyncError> {
        let Some(limit) = self.settings.leavers_per_hour else { return Ok(true) };
        let now = Utc::now();
        let key = format!("leavers#{}#{}", self.target.name(), now.format("%Y-%m-%dT%H"));
        let expires = (now + chrono::Duration::days(2)).timestamp();
        Ok(self.ledger.take_slot(&key, limit, expires).await?)
    }

    /// Keeps the leaver for an operator; the person record is not advanced, so the released event
    /// applies normally later.
    async fn hold(&self, event: &HrEvent, body: &str, record: Option<&PersonRecord>) -> Result<Outcome, SyncError> {
        let outcome = self.settled(Decision::Held, record);
        let held = HeldEvent {
            target: self.target.name().to_string(),
            person: event.external_id.key(),
            event_id: event.event_id.to_string(),
            occurred_at: event.occurred_at,
            body: body.to_string(),
            held_at: Utc::now(),
        };
        self.ledger.hold(&held, &self.audit(event, &outcome)).await?;
        tracing::warn!(
            decision = "held",
            "blast-radius breaker: more leavers this hour than allowed; held for an operator"
        );
        Ok(outcome)
    }

    /// Events held by the breaker for this target.
    pub async fn held(&self) -> Result<Vec<HeldEvent>, ServiceError> {
        self.ledger.held(self.target.name()).await
    }

    /// Applies every held event (oldest first) with the breaker bypassed, forgetting each one
    /// that was applied. Returns each event id with its outcome or error.
    pub async fn release_held(&self) -> Result<Vec<(String, Result<Outcome, SyncError>)>, ServiceError> {
        let mut bypass = self.clone();
        bypass.settings.leavers_per_hour = None;
        let mut out = Vec::new();
        for h in self.held().await? {
            let result = match crate::contract::parse_event(&h.body) {
                Ok(event) => bypass.apply(&event, &h.body).await,
                Err(e) => Err(SyncError::Invalid(e)),
            };
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

    /// Re-applies the event the ledger holds (the winner of a race) to the current state.
    async fn converge_on_winner(&self, record: Option<&PersonRecord>) -> Result<(), SyncError> {
        let Some(record) = record else { return Ok(()) };
        let Some(winner) = record.last_event.as_deref().and_then(|b| crate::contract::parse_event(b).ok()) else {
            return Ok(());
        };
        tracing::info!(decision = "converge-on-winner", winner_event_id = %winner.event_id, "re-applying the newer event");
        self.target.converge(&winner, Some(record), false).await.map(|_| ())
    }

    fn next_record(&self, event: &HrEvent, body: &str, outcome: &Outcome) -> PersonRecord {
        let status = match (event.kind(), outcome.decision, &outcome.user_id, &outcome.user_name) {
            (_, _, None, None) => PersonStatus::Deleted,
            (EventKind::Leaver, _, _, _) | (_, Decision::IgnoredForDisabledUser, _, _) => PersonStatus::Disabled,
            _ => PersonStatus::Active,
        };
        PersonRecord {
            person: event.external_id.key(),
            target: self.target.name().to_string(),
            user_id: outcome.user_id.clone(),
            user_name: outcome.user_name.clone(),
            status,
            last_event_id: event.event_id.to_string(),
            last_occurred_at: event.occurred_at,
            last_event: Some(body.to_string()),
            updated_at: Utc::now(),
        }
    }

    fn audit(&self, event: &HrEvent, outcome: &Outcome) -> AuditEntry {
        let now = Utc::now();
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
