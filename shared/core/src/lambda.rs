//! The Lambda side shared by every target function: one record (validate, apply, park or retry),
//! an SQS batch (`ReportBatchItemFailures`, FIFO-correct), a direct EventBridge event. Each
//! function's `lib.rs` only builds a [`State`] for its target.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::batch::{BatchRecord, RecordResult, run_batch};
use crate::contract::{self, EventKind};
use crate::engine::{Engine, Outcome, SyncError};
use crate::metrics::{self, MetricsSink, RecordFacts};
use crate::ports::{DeadLetterQueue, ParkedMessage};

/// Everything a handler needs, built once per container.
#[derive(Clone)]
pub struct State {
    pub engine: Engine,
    pub dlq: Arc<dyn DeadLetterQueue>,
    pub max_concurrency: usize,
    /// Where EMF metric documents go (stdout in Lambda).
    pub metrics: Arc<dyn MetricsSink>,
}

impl State {
    /// A target's state with the settings every target shares (dry run, audit TTL, breaker,
    /// concurrency); metrics go to stdout (the Lambda log stream).
    pub fn for_target(
        target: Arc<dyn crate::engine::DynTarget>,
        ledger: Arc<dyn crate::ledger::Ledger>,
        dlq: Arc<dyn DeadLetterQueue>,
        config: &crate::config::Config,
    ) -> Self {
        let settings = crate::engine::EngineSettings {
            dry_run: config.dry_run,
            audit_ttl: config.audit_ttl(),
            leavers_per_hour: config.leavers_per_hour,
            clock: crate::clock::Clock::system(),
            dating: config.dating.clone(),
            // Nothing fires a pending change until schedules are attached ([`State::with_schedules`]:
            // EventBridge Scheduler when SCHEDULE_GROUP and the rest are set): until then a change
            // dated ahead is parked, never accepted and left unapplied.
            fires_pending: false,
        };
        Self {
            engine: Engine::new(target, ledger, settings),
            dlq,
            max_concurrency: config.max_concurrency,
            metrics: Arc::new(crate::metrics::StdoutSink),
        }
    }
}

impl State {
    /// The same state scheduling every pending change to fire on its time (EventBridge Scheduler
    /// on AWS): a change dated ahead is accepted and applied when its firing arrives.
    pub fn with_schedules(mut self, schedules: Arc<dyn crate::ports::Schedules>) -> Self {
        self.engine = self.engine.with_schedules(schedules);
        self
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("engine", &self.engine)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

/// Where a record came from, for parking and logs.
#[derive(Clone, Debug, Default)]
pub struct RecordMeta {
    pub message_id: Option<String>,
    pub message_group: Option<String>,
}

/// What happened to one record: for logs, the CLI's table and tests.
#[derive(Clone, Debug)]
pub struct RecordReport {
    pub event_id: Option<String>,
    pub external_id: Option<String>,
    pub kind: Option<EventKind>,
    pub result: RecordResult,
    pub outcome: Option<Outcome>,
    /// Error code and reason when the record was not applied.
    pub error: Option<(String, String)>,
}

/// Processes one HR event body: validate, apply, and park or report for retry. This is the one
/// code path behind the SQS handler, the EventBridge handler and the `jml` CLI.
pub async fn process_record(state: &State, body: &str, meta: &RecordMeta) -> RecordReport {
    let span = tracing::info_span!(
        "record",
        target = state.engine.target_name(),
        message_id = meta.message_id.as_deref().unwrap_or("-"),
        event_id = tracing::field::Empty,
        external_id = tracing::field::Empty,
        event_type = tracing::field::Empty,
    );
    process_record_inner(state, body, meta).instrument(span).await
}

async fn process_record_inner(state: &State, body: &str, meta: &RecordMeta) -> RecordReport {
    let span = tracing::Span::current();
    // A leaver is never refused for a field it does not need (a malformed phone number, a hint):
    // with a valid eventId, occurredAt and ExternalId it is applied as a bare leaver, and the
    // field errors are reported (log, note, `LeaverFieldErrors` metric) for HR to fix.
    // A scheduled firing: the person converges to what is due now (a dated change took effect).
    if let Some(person) = crate::ports::Firing::person_of(body) {
        span.record("external_id", person.as_str());
        span.record("event_type", "fire");
        let result = state.engine.fire(&person).await;
        let report = RecordReport {
            event_id: Some("fire".into()),
            external_id: Some(person),
            kind: None,
            result: RecordResult::Done,
            outcome: None,
            error: None,
        };
        return settle(state, body, meta, report, result, None).await;
    }
    // A rescind is not a change to a person: it cancels one (the engine decides what holds).
    if contract::is_rescind(body) {
        let (event_id, external_id) = (event_id_hint(body), contract::external_id_hint(body));
        span.record("event_id", event_id.as_deref().unwrap_or("-"));
        span.record("external_id", external_id.as_deref().unwrap_or("-"));
        span.record("event_type", "rescind");
        let result = match contract::parse_message(body) {
            Ok(contract::Message::Rescind(r)) => state.engine.apply_rescind(&r, body).await,
            Ok(contract::Message::Event(_)) => {
                Err(SyncError::Invalid(contract::InvalidEvent::one("type", "must be rescind")))
            }
            Err(invalid) => Err(SyncError::Invalid(invalid)),
        };
        let report =
            RecordReport { event_id, external_id, kind: None, result: RecordResult::Done, outcome: None, error: None };
        return settle(state, body, meta, report, result, None).await;
    }
    let (parsed, field_errors) = match contract::parse_deliverable(body) {
        Ok((event, field_errors)) => (Ok(event), field_errors),
        Err(invalid) => (Err(invalid), None),
    };
    let (event_id, external_id, kind) = match &parsed {
        Ok(e) => (Some(e.event_id.to_string()), Some(e.external_id.key()), Some(e.kind())),
        Err(_) => (event_id_hint(body), contract::external_id_hint(body), None),
    };
    span.record("event_id", event_id.as_deref().unwrap_or("-"));
    span.record("external_id", external_id.as_deref().unwrap_or("-"));
    span.record("event_type", kind.map(EventKind::as_str).unwrap_or("-"));
    let report = RecordReport { event_id, external_id, kind, result: RecordResult::Done, outcome: None, error: None };

    let occurred_at = parsed.as_ref().ok().map(|e| e.occurred_at);
    let mut result = match parsed {
        Ok(event) => state.engine.apply(&event, body).await,
        Err(invalid) => Err(SyncError::Invalid(invalid)),
    };
    if let Some(invalid) = &field_errors {
        tracing::warn!(
            decision = "leaver-field-errors",
            error = %invalid,
            "a leaver's optional fields are invalid: applied as a bare leaver (ExternalId only); fix the HR record"
        );
        if let Ok(o) = &mut result {
            o.notes.push(format!("applied as a bare leaver; {invalid}"));
        }
        if !state.engine.dry_run() {
            state.metrics.emit(crate::metrics::document(
                state.engine.clock().now(),
                &[("Target", state.engine.target_name())],
                &[("LeaverFieldErrors", "Count", 1.0)],
            ));
        }
    }
    settle(state, body, meta, report, result, occurred_at).await
}

/// The record's result: reported, retried, or parked with its reason.
async fn settle(
    state: &State,
    body: &str,
    meta: &RecordMeta,
    mut report: RecordReport,
    result: Result<Outcome, SyncError>,
    occurred_at: Option<chrono::DateTime<chrono::Utc>>,
) -> RecordReport {
    match result {
        Ok(outcome) => {
            tracing::info!(
                decision = outcome.decision.as_str(),
                actions = outcome.actions.len(),
                writes = outcome.writes(),
                resolved_by = outcome.resolved_by,
                dry_run = outcome.dry_run,
                "applied"
            );
            for note in &outcome.notes {
                tracing::warn!(decision = outcome.decision.as_str(), note = note.as_str(), "note");
            }
            report.outcome = Some(outcome);
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!(decision = "retry", error_code = e.code(), error = %e, "will be retried");
            report.result = RecordResult::Retry;
            report.error = Some((e.code().to_string(), e.to_string()));
        }
        Err(e) => {
            let parked = ParkedMessage {
                body: body.to_string(),
                error_code: e.code().to_string(),
                reason: e.to_string(),
                event_id: report.event_id.clone(),
                external_id: report.external_id.clone(),
                source_message_id: meta.message_id.clone(),
                message_group: meta.message_group.clone(),
            };
            report.error = Some((e.code().to_string(), e.to_string()));
            if state.engine.dry_run() {
                tracing::warn!(decision = "parked", dry_run = true, error_code = e.code(), error = %e, "would be parked (dry run)");
                report.result = RecordResult::Parked;
            } else {
                match state.dlq.park(&parked).await {
                    Ok(()) => {
                        tracing::warn!(decision = "parked", error_code = e.code(), error = %e, "parked on the dead-letter queue");
                        report.result = RecordResult::Parked;
                    }
                    Err(park_err) => {
                        // Never lost: if it cannot be parked, it goes back to the queue.
                        tracing::error!(decision = "retry", error_code = e.code(), park_error = %park_err, "could not park; will be retried");
                        report.result = RecordResult::Retry;
                    }
                }
            }
        }
    }
    emit_metrics(state, &report, occurred_at);
    report
}

fn emit_metrics(state: &State, report: &RecordReport, occurred_at: Option<chrono::DateTime<chrono::Utc>>) {
    let decision = match (&report.outcome, report.result) {
        (Some(o), _) => o.decision.as_str(),
        (None, RecordResult::Parked) => "parked",
        (None, _) => "retry",
    };
    let removed_access = report.kind == Some(EventKind::Leaver) && decision == "disable";
    let no_actions: [String; 0] = [];
    metrics::record(
        state.metrics.as_ref(),
        state.engine.clock().now(),
        &RecordFacts {
            target: state.engine.target_name(),
            event_type: report.kind.map(EventKind::as_str),
            decision,
            actions: report.outcome.as_ref().map_or(&no_actions[..], |o| &o.actions[..]),
            dry_run: report.outcome.as_ref().is_some_and(|o| o.dry_run),
            error_code: report.error.as_ref().map(|(code, _)| code.as_str()),
            parked: report.result == RecordResult::Parked,
            retried: report.result == RecordResult::Retry,
            left_at: if removed_access { occurred_at } else { None },
        },
    );
}

fn event_id_hint(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let id = v.get("eventId")?.as_str()?;
    contract::EventId::parse(id).ok().map(|e| e.to_string())
}

/// The Lambda handler: an SQS batch or an EventBridge event, told apart by shape.
pub async fn handler(state: &State, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, _context) = event.into_parts();
    if payload.get("Records").is_some() {
        let sqs: SqsEvent = serde_json::from_value(payload).map_err(|e| format!("not an SQS event: {e}"))?;
        let response = handle_sqs(state, sqs).await;
        return Ok(serde_json::to_value(response)?);
    }
    if payload.get("detail-type").is_some() && payload.get("detail").is_some() {
        let eb: EventBridgeEvent<Value> =
            serde_json::from_value(payload.clone()).map_err(|e| format!("not an EventBridge event: {e}"))?;
        return handle_eventbridge(state, eb, &payload).await;
    }
    Err("unrecognised input: expected an SQS batch (Records) or an EventBridge event (detail-type, detail)".into())
}

/// The records of an SQS event, grouped by their FIFO `MessageGroupId` (a standard queue's
/// records each form their own group).
pub fn batch_records(event: SqsEvent) -> Vec<BatchRecord> {
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let message_id = m.message_id.unwrap_or_else(|| format!("record-{i}"));
            let group = m.attributes.get("MessageGroupId").cloned().unwrap_or_else(|| message_id.clone());
            BatchRecord { message_id, group, body: m.body.unwrap_or_default() }
        })
        .collect()
}

/// The `ReportBatchItemFailures` response for the failed message ids.
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in failed {
        response.add_failure(id);
    }
    response
}

/// Processes an SQS batch and reports the records to retry.
pub async fn handle_sqs(state: &State, event: SqsEvent) -> SqsBatchResponse {
    let failed = run_batch(batch_records(event), state.max_concurrency, |r| async move {
        let meta = RecordMeta { message_id: Some(r.message_id.clone()), message_group: Some(r.group.clone()) };
        process_record(state, &r.body, &meta).await.result
    })
    .await;
    batch_response(failed)
}

/// A direct EventBridge delivery: the detail is the HR event. A permanent failure is parked
/// (the invocation succeeds, so EventBridge does not retry it); a retryable one fails the
/// invocation so Lambda's asynchronous retries apply.
async fn handle_eventbridge(state: &State, eb: EventBridgeEvent<Value>, raw: &Value) -> Result<Value, Error> {
    let mut body = eb.detail.to_string();
    let declared = eb.detail_type.as_str();
    // The detail-type must agree with the event's type; a mismatch is a producer bug: park it.
    if let Some(t) = eb.detail.get("type").and_then(Value::as_str)
        && !t.eq_ignore_ascii_case(declared)
    {
        body = json!({ "eventbridge": raw, "mismatch": "detail-type does not match detail.type" }).to_string();
        let parked = ParkedMessage {
            body,
            error_code: crate::codes::EngineCode::InvalidEvent.as_str().to_string(),
            reason: format!("detail-type: '{declared}' does not match detail.type"),
            event_id: event_id_hint(&eb.detail.to_string()),
            external_id: contract::external_id_hint(&eb.detail.to_string()),
            source_message_id: eb.id.clone(),
            message_group: None,
        };
        if !state.engine.dry_run() {
            state.dlq.park(&parked).await.map_err(|e| format!("could not park: {e}"))?;
        }
        return Ok(json!({ "status": "parked", "errorCode": "InvalidEvent", "dryRun": state.engine.dry_run() }));
    }
    let meta = RecordMeta { message_id: eb.id.clone(), message_group: None };
    let report = process_record(state, &body, &meta).await;
    match report.result {
        RecordResult::Retry => {
            Err(report.error.map(|(c, r)| format!("{c}: {r}")).unwrap_or_else(|| "retry".to_string()).into())
        }
        RecordResult::Parked => {
            Ok(json!({ "status": "parked", "eventId": report.event_id, "errorCode": report.error.map(|e| e.0) }))
        }
        RecordResult::Done => {
            let o = report.outcome.as_ref();
            Ok(json!({
                "status": "applied",
                "eventId": report.event_id,
                "decision": o.map(|o| o.decision.as_str()),
                "actions": o.map(|o| o.actions.clone()),
            }))
        }
    }
}
