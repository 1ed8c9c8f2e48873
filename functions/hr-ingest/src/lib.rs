//! # hr-ingest
//!
//! The single entry point. The target of an EventBridge rule on the HR bus and the consumer of an
//! inbound SQS queue: it validates each HR event with the same contract code as the targets, parks
//! an invalid one with its reason, and fans a valid one out to every enabled target's FIFO queue
//! with `MessageGroupId` = the person and `MessageDeduplicationId` = the change (see
//! `jml_core::ingest`). That is why each person's events are processed in order while different
//! people run in parallel, and why each target fails and scales on its own.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use jml_core::batch::{RecordResult, run_batch};
use jml_core::config::{Backend, Config};
use jml_core::ingest::{Ingest, IngestOutcome, TargetQueue};
use jml_core::lambda::{batch_records, batch_response};
use jml_core::sim::{SimDeadLetterQueue, SimQueues};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};
use tracing::Instrument;

/// What hr-ingest sends: the fan-out to each target queue and parking in the ingest DLQ (one
/// SendMessage each). Its role in template.yaml grants exactly these (`jml operations`).
pub const OPERATIONS: &[jml_core::ports::Op] = &[jml_core::ports::op::SEND_MESSAGE];

/// The detail-types the HR rule delivers (and the handler accepts).
pub const DETAIL_TYPES: [&str; 4] = ["Joiner", "Mover", "Leaver", "Rehire"];

/// The in-memory services behind a `JML_BACKEND=memory` state.
#[derive(Clone, Debug)]
pub struct MemoryBackend {
    pub queues: Arc<SimQueues>,
    pub dlq: Arc<SimDeadLetterQueue>,
}

/// The memory backend's target queues.
pub fn memory_targets() -> Vec<TargetQueue> {
    ["identity", "subscriptions", "appstream", "iam"]
        .map(|n| TargetQueue { name: n.to_string(), queue_url: format!("memory://jml-{n}.fifo") })
        .to_vec()
}

/// A state on in-memory queues and DLQ.
pub fn memory(config: &Config) -> (Ingest, MemoryBackend) {
    let queues = Arc::new(SimQueues::default());
    let dlq = Arc::new(SimDeadLetterQueue::default());
    let targets = if config.target_queues.is_empty() { memory_targets() } else { config.target_queues.clone() };
    let ingest = Ingest {
        targets,
        publisher: queues.clone(),
        dlq: dlq.clone(),
        dry_run: config.dry_run,
        clock: jml_core::clock::Clock::system(),
        max_ahead_days: config.dating.max_ahead_days,
    };
    (ingest, MemoryBackend { queues, dlq })
}

/// The state the configuration asks for.
pub async fn from_config(config: &Config) -> Ingest {
    match config.backend {
        Backend::Memory => memory(config).0,
        Backend::Aws => {
            let sdk = jml_aws::load_sdk_config().await;
            Ingest {
                targets: config.target_queues.clone(),
                publisher: Arc::new(jml_aws::SqsPublisher::new(aws_sdk_sqs::Client::new(&sdk))),
                dlq: Arc::new(jml_aws::dead_letter_queue(&sdk, config.dlq_url.as_deref())),
                dry_run: config.dry_run,
                clock: jml_core::clock::Clock::system(),
                max_ahead_days: config.dating.max_ahead_days,
            }
        }
    }
}

async fn ingest_one(state: &Ingest, body: &str, source_id: Option<&str>) -> IngestOutcome {
    let span = tracing::info_span!("ingest", source_id = source_id.unwrap_or("-"));
    async {
        let outcome = state.ingest(body, source_id).await;
        match &outcome {
            IngestOutcome::FannedOut { event_id, external_id, targets } => {
                tracing::info!(decision = "fanned-out", event_id, external_id, targets, "sent to every target queue")
            }
            IngestOutcome::Parked { code, reason } => {
                tracing::warn!(decision = "parked", error_code = code, error = reason, "parked")
            }
            IngestOutcome::Retry { reason } => tracing::warn!(decision = "retry", error = reason, "will be retried"),
        }
        outcome
    }
    .instrument(span)
    .await
}

/// The Lambda handler: an inbound SQS batch or an EventBridge event, told apart by shape.
pub async fn handler(state: &Ingest, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, _context) = event.into_parts();
    if payload.get("Records").is_some() {
        let sqs: SqsEvent = serde_json::from_value(payload).map_err(|e| format!("not an SQS event: {e}"))?;
        return Ok(serde_json::to_value(handle_sqs(state, sqs).await)?);
    }
    if payload.get("detail-type").is_some() && payload.get("detail").is_some() {
        let eb: EventBridgeEvent<Value> =
            serde_json::from_value(payload.clone()).map_err(|e| format!("not an EventBridge event: {e}"))?;
        return handle_eventbridge(state, eb, &payload).await;
    }
    Err("unrecognised input: expected an SQS batch (Records) or an EventBridge event (detail-type, detail)".into())
}

/// The inbound queue: each body is one HR event. Invalid ones are parked (not retried); a failed
/// fan-out is retried, and with it every later record of the same message group.
pub async fn handle_sqs(state: &Ingest, event: SqsEvent) -> SqsBatchResponse {
    let failed = run_batch(batch_records(event), 10, |r| async move {
        match ingest_one(state, &r.body, Some(&r.message_id)).await {
            IngestOutcome::FannedOut { .. } => RecordResult::Done,
            IngestOutcome::Parked { .. } => RecordResult::Parked,
            IngestOutcome::Retry { .. } => RecordResult::Retry,
        }
    })
    .await;
    batch_response(failed)
}

/// The HR rule's delivery. Invalid: parked, the invocation succeeds. A failed fan-out fails the
/// invocation, so Lambda retries it and then sends it to the on-failure destination.
async fn handle_eventbridge(state: &Ingest, eb: EventBridgeEvent<Value>, raw: &Value) -> Result<Value, Error> {
    let body = eb.detail.to_string();
    let declared = eb.detail_type.as_str();
    let declared_ok = DETAIL_TYPES.contains(&declared)
        && eb.detail.get("type").and_then(Value::as_str).is_none_or(|t| t.eq_ignore_ascii_case(declared));
    let outcome = if declared_ok {
        ingest_one(state, &body, eb.id.as_deref()).await
    } else {
        let reason =
            format!("detail-type: '{declared}' must be one of Joiner, Mover, Leaver, Rehire and match detail.type");
        state
            .park(&raw.to_string(), jml_core::codes::EngineCode::InvalidEvent.as_str(), &reason, eb.id.as_deref())
            .await
    };
    match outcome {
        IngestOutcome::FannedOut { event_id, targets, .. } => {
            Ok(json!({"status": "fanned-out", "eventId": event_id, "targets": targets}))
        }
        IngestOutcome::Parked { code, .. } => Ok(json!({"status": "parked", "errorCode": code})),
        IngestOutcome::Retry { reason } => Err(reason.into()),
    }
}
