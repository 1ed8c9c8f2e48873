//! hr-ingest: validate each HR event with the contract, then fan it out to every enabled target's
//! SQS FIFO queue, ordered per person. The deduplication id is a pure function of the event and of
//! the inbound message it came in, so a retry of that message after a partial fan-out is
//! deduplicated by SQS (5 minutes), while a redriven copy (a new inbound message) is always
//! delivered: deduplicating events is the ledger's job, not SQS's.

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::codes::EngineCode;
use crate::contract::{self, HrEvent};
use crate::ports::{DeadLetterQueue, ParkedMessage, ServiceError};

/// The FIFO `MessageGroupId` of a person: `p-` + SHA-256 (hex) of the ExternalId key. Stable
/// across deployments, collision-safe, free of personal data, 66 characters (SQS allows 128 of
/// `[A-Za-z0-9!-~]`).
pub fn message_group_id(event: &HrEvent) -> String {
    person_group_id(&event.external_id.key())
}

/// [`message_group_id`] of a person key (`issuer#id`): the group a scheduled firing is sent in,
/// so it is ordered with the person's HR events on the target's FIFO queue.
pub fn person_group_id(person: &str) -> String {
    format!("p-{:x}", Sha256::digest(person.as_bytes()))
}

/// The FIFO `MessageDeduplicationId`: SHA-256 (hex) of the person and the eventId, so the same HR
/// change sent twice is one message, and two people's events never collide.
pub fn message_deduplication_id(event: &HrEvent) -> String {
    format!("{:x}", Sha256::digest(format!("{}\n{}", event.external_id.key(), event.event_id).as_bytes()))
}

/// The deduplication id of one delivery of an event: [`message_deduplication_id`] when the event
/// is sent the first time (`delivery` = `None`), else a hash that also covers the delivery's own
/// id (the inbound message, or the DLQ message a redrive re-sends). SQS drops a FIFO message
/// whose deduplication id it saw in the last 5 minutes *and reports the send as successful*: a
/// redrive that reused the original id within that window would delete the DLQ copy of an event
/// that was never delivered. The ledger settles the duplicate instead.
pub fn delivery_deduplication_id(event: &HrEvent, delivery: Option<&str>) -> String {
    match delivery {
        None => message_deduplication_id(event),
        Some(d) => format!(
            "{:x}",
            Sha256::digest(format!("{}\n{}\n{}", event.external_id.key(), event.event_id, d).as_bytes())
        ),
    }
}

/// One enabled target: its name and its queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetQueue {
    pub name: String,
    pub queue_url: String,
}

/// One message to send: body, and for a FIFO queue its group and deduplication ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub body: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

/// Sending to a queue.
#[async_trait]
pub trait Publisher: Send + Sync {
    async fn send(&self, queue_url: &str, body: &str, group_id: &str, dedup_id: &str) -> Result<(), ServiceError>;

    /// Sends up to 10 messages in one call (SendMessageBatch); returns the indices that failed,
    /// with the reason. The default sends them one by one.
    async fn send_batch(&self, queue_url: &str, messages: &[Outgoing]) -> Result<Vec<(usize, String)>, ServiceError> {
        let mut failed = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let (g, d) = (m.group_id.as_deref().unwrap_or_default(), m.dedup_id.as_deref().unwrap_or_default());
            if let Err(e) = self.send(queue_url, &m.body, g, d).await {
                failed.push((i, e.to_string()));
            }
        }
        Ok(failed)
    }
}

/// Where `jml publish` sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishTo {
    /// The inbound queue: hr-ingest validates and fans out.
    Inbound(String),
    /// Straight to the target queues, with the ids hr-ingest would use.
    Targets(Vec<TargetQueue>),
}

/// What `publish` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub sent: usize,
    /// (source, reason) of every event not sent: invalid, or refused by SQS.
    pub rejected: Vec<(String, String)>,
}

/// Validates every (source, body) and sends the valid ones in batches of 10 per queue. Invalid
/// events never stop the rest. `progress` is called after each event is settled.
pub async fn publish(
    events: &[(String, String)],
    to: &PublishTo,
    publisher: &dyn Publisher,
    dry_run: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<PublishReport, ServiceError> {
    publish_as(events, to, publisher, dry_run, progress, Delivery::First).await
}

/// Whether a publish is an event's first sending or a re-sending of a copy (see
/// [`delivery_deduplication_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// HR's events, sent the first time: SQS deduplicates a resend within 5 minutes.
    First,
    /// Copies from a DLQ: each source (the DLQ message id) gets a deduplication id of its own.
    Redrive,
}

/// [`publish`], saying whether the events are sent the first time or re-sent from a DLQ.
pub async fn publish_as(
    events: &[(String, String)],
    to: &PublishTo,
    publisher: &dyn Publisher,
    dry_run: bool,
    progress: &(dyn Fn(usize) + Sync),
    delivery: Delivery,
) -> Result<PublishReport, ServiceError> {
    let mut report = PublishReport::default();
    let queues: Vec<(String, bool)> = match to {
        PublishTo::Inbound(url) => vec![(url.clone(), url.ends_with(".fifo"))],
        PublishTo::Targets(t) => t.iter().map(|t| (t.queue_url.clone(), true)).collect(),
    };
    let mut valid: Vec<(&String, HrEvent, &String)> = Vec::new();
    for (source, body) in events {
        match contract::parse_deliverable(body) {
            Ok((e, _)) => valid.push((source, e, body)),
            Err(invalid) => {
                report.rejected.push((source.clone(), invalid.to_string()));
                progress(1);
            }
        }
    }
    for chunk in valid.chunks(10) {
        let mut refused: Vec<(usize, String)> = Vec::new();
        for (url, fifo) in &queues {
            let messages: Vec<Outgoing> = chunk
                .iter()
                .map(|(source, e, body)| Outgoing {
                    body: (*body).clone(),
                    group_id: fifo.then(|| message_group_id(e)),
                    dedup_id: fifo.then(|| match delivery {
                        Delivery::First => message_deduplication_id(e),
                        Delivery::Redrive => delivery_deduplication_id(e, Some(source.as_str())),
                    }),
                })
                .collect();
            if !dry_run {
                for (i, why) in publisher.send_batch(url, &messages).await? {
                    if !refused.iter().any(|(j, _)| *j == i) {
                        refused.push((i, why));
                    }
                }
            }
        }
        for (i, (source, _, _)) in chunk.iter().enumerate() {
            match refused.iter().find(|(j, _)| *j == i) {
                Some((_, why)) => report.rejected.push(((*source).clone(), format!("not sent: {why}"))),
                None => report.sent += 1,
            }
        }
        progress(chunk.len());
    }
    Ok(report)
}

/// What became of one inbound event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Sent to every target queue.
    FannedOut { event_id: String, external_id: String, targets: usize },
    /// Invalid: parked with its reason.
    Parked { code: String, reason: String },
    /// A send or the parking failed: retry the whole event (sends are deduplicated).
    Retry { reason: String },
}

/// The ingest step, shared by the EventBridge and the inbound-SQS paths.
#[derive(Clone)]
pub struct Ingest {
    pub targets: Vec<TargetQueue>,
    pub publisher: Arc<dyn Publisher>,
    pub dlq: Arc<dyn DeadLetterQueue>,
    /// Validate and report, send and park nothing.
    pub dry_run: bool,
    /// The clock of the `OccurredInFuture` and `EffectiveTooFarAhead` bounds.
    pub clock: crate::clock::Clock,
    /// `MAX_EFFECTIVE_AHEAD_DAYS`: a change dated further ahead is parked here, once.
    pub max_ahead_days: i64,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("targets", &self.targets).finish_non_exhaustive()
    }
}

impl Ingest {
    /// Validates `body` (an HR event) and fans it out; `source_id` is the SQS message id or the
    /// EventBridge event id.
    pub async fn ingest(&self, body: &str, source_id: Option<&str>) -> IngestOutcome {
        let parsed = if contract::is_rescind(body) {
            // A rescind goes to every target like the event it cancels (the same person's group).
            contract::parse_message(body).and_then(|m| match m {
                contract::Message::Rescind(r) => Ok(HrEvent {
                    event_id: r.event_id,
                    occurred_at: r.occurred_at,
                    external_id: r.external_id,
                    change: contract::Change::Leaver { user_name: None, directory_user_name: None },
                    when: crate::dated::When::Recorded,
                    immediate: false,
                }),
                contract::Message::Event(_) => Err(contract::InvalidEvent::one("type", "must be rescind")),
            })
        } else {
            contract::parse_deliverable(body).map(|(event, invalid)| {
                // A leaver is never held back by a field it does not need: the targets apply it
                // as a bare leaver and report the field errors.
                if let Some(invalid) = invalid {
                    tracing::warn!(decision = "leaver-field-errors", error = %invalid, "fanned out as a bare leaver");
                }
                event
            })
        };
        // (For a rescind, `event` carries only its id, time and person: what the fan-out needs.)
        let event = match parsed {
            Ok(event) => event,
            Err(invalid) => {
                return self.park(body, EngineCode::InvalidEvent.as_str(), &invalid.to_string(), source_id).await;
            }
        };
        if let Some(why) = crate::clock::occurred_in_future(event.occurred_at, self.clock.now()) {
            return self.park(body, EngineCode::OccurredInFuture.as_str(), &why, source_id).await;
        }
        if let Some(why) = crate::dated::too_far_ahead(&event, self.clock.now(), self.max_ahead_days) {
            return self.park(body, EngineCode::EffectiveTooFarAhead.as_str(), &why, source_id).await;
        }
        if self.dry_run {
            return IngestOutcome::FannedOut {
                event_id: event.event_id.to_string(),
                external_id: event.external_id.key(),
                targets: 0,
            };
        }
        let (group, dedup) = (message_group_id(&event), delivery_deduplication_id(&event, source_id));
        for t in &self.targets {
            if let Err(e) = self.publisher.send(&t.queue_url, body, &group, &dedup).await {
                return IngestOutcome::Retry { reason: format!("{}: {e}", t.name) };
            }
        }
        IngestOutcome::FannedOut {
            event_id: event.event_id.to_string(),
            external_id: event.external_id.key(),
            targets: self.targets.len(),
        }
    }

    /// Parks an event that can never be fanned out.
    pub async fn park(&self, body: &str, code: &str, reason: &str, source_id: Option<&str>) -> IngestOutcome {
        if self.dry_run {
            return IngestOutcome::Parked { code: code.to_string(), reason: reason.to_string() };
        }
        let parked = ParkedMessage {
            body: body.to_string(),
            error_code: code.to_string(),
            reason: reason.to_string(),
            event_id: None,
            external_id: contract::external_id_hint(body),
            source_message_id: source_id.map(str::to_string),
            message_group: None,
        };
        match self.dlq.park(&parked).await {
            Ok(()) => IngestOutcome::Parked { code: code.to_string(), reason: reason.to_string() },
            Err(e) => IngestOutcome::Retry { reason: format!("could not park: {e}") },
        }
    }
}

/// Parses `TARGET_QUEUES`: `name=url,name=url`.
pub fn parse_target_queues(s: &str) -> Result<Vec<TargetQueue>, String> {
    let mut out: Vec<TargetQueue> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, url)) = part.split_once('=') else {
            return Err(format!("'{part}' is not name=queue-url"));
        };
        let (name, url) = (name.trim(), url.trim());
        if name.is_empty() || !(url.starts_with("https://") || url.starts_with("http://")) || !url.ends_with(".fifo") {
            return Err(format!("'{part}': each target needs a name and an SQS FIFO queue URL (ending in .fifo)"));
        }
        if out.iter().any(|t| t.name == name) {
            return Err(format!("target '{name}' is listed twice"));
        }
        out.push(TargetQueue { name: name.to_string(), queue_url: url.to_string() });
    }
    if out.is_empty() {
        return Err("at least one target queue is required".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(issuer: &str, id: &str, event_id: &str) -> HrEvent {
        let body = format!(
            r#"{{"eventId":"{event_id}","type":"leaver","occurredAt":"2026-11-20T17:00:00Z","person":{{"externalId":{{"issuer":"{issuer}","id":"{id}"}}}}}}"#
        );
        contract::parse_event(&body).unwrap()
    }

    #[test]
    fn group_and_dedup_ids_are_stable_distinct_and_within_sqs_limits() {
        let a = event("workday", "1", "e-1");
        assert_eq!(message_group_id(&a), message_group_id(&event("workday", "1", "e-2")), "one group per person");
        assert_eq!(message_group_id(&a), person_group_id(&a.external_id.key()), "a firing's group is the person's");
        assert_ne!(message_group_id(&a), message_group_id(&event("workday", "2", "e-1")));
        assert_ne!(
            message_deduplication_id(&a),
            message_deduplication_id(&event("workday", "2", "e-1")),
            "same eventId, other person"
        );
        for id in [message_group_id(&a), message_deduplication_id(&a)] {
            assert!(id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        }
        assert!(message_group_id(&a).starts_with("p-") && message_group_id(&a).len() == 66);
        assert!(!message_group_id(&a).contains("workday"), "no identifying data in the group id");
    }

    fn ingest_at(now: &str) -> (Ingest, Arc<crate::sim::SimQueues>, Arc<crate::sim::SimDeadLetterQueue>) {
        let queues = Arc::new(crate::sim::SimQueues::default());
        let dlq = Arc::new(crate::sim::SimDeadLetterQueue::default());
        let ingest = Ingest {
            targets: vec![TargetQueue { name: "identity".into(), queue_url: "memory://jml-identity.fifo".into() }],
            publisher: queues.clone(),
            dlq: dlq.clone(),
            dry_run: false,
            clock: crate::clock::Clock::at(crate::clock::parse_now(now).unwrap()),
            max_ahead_days: 400,
        };
        (ingest, queues, dlq)
    }

    fn body(occurred_at: &str) -> String {
        format!(
            r#"{{"eventId":"e-1","type":"leaver","occurredAt":"{occurred_at}","person":{{"externalId":{{"issuer":"workday","id":"1"}}}}}}"#
        )
    }

    #[tokio::test]
    async fn an_event_from_the_future_is_parked_with_its_reason_and_never_fanned_out() {
        let (ingest, queues, dlq) = ingest_at("2026-12-01T09:00:00Z");
        let out = ingest.ingest(&body("2207-11-20T17:00:00Z"), Some("m-1")).await;
        let IngestOutcome::Parked { code, reason } = out else { panic!("{out:?}") };
        assert_eq!(code, "OccurredInFuture");
        assert!(reason.starts_with("occurredAt: 2207-11-20T17:00:00Z"), "{reason}");
        assert!(queues.messages("memory://jml-identity.fifo").is_empty());
        assert_eq!(dlq.parked().len(), 1, "parked, not dropped");
        // Within the skew it is accepted (HR's clock runs a little ahead).
        let out = ingest.ingest(&body("2026-12-01T09:04:00Z"), Some("m-2")).await;
        assert!(matches!(out, IngestOutcome::FannedOut { .. }), "{out:?}");
    }

    #[tokio::test]
    async fn a_retried_inbound_message_is_deduplicated_but_a_redriven_copy_is_delivered() {
        let (ingest, queues, _) = ingest_at("2026-12-01T09:00:00Z");
        let b = body("2026-11-20T17:00:00Z");
        ingest.ingest(&b, Some("m-1")).await;
        ingest.ingest(&b, Some("m-1")).await; // the same inbound message after a partial fan-out
        assert_eq!(queues.messages("memory://jml-identity.fifo").len(), 1);
        ingest.ingest(&b, Some("m-2")).await; // the same event redriven into the inbound queue
        assert_eq!(queues.messages("memory://jml-identity.fifo").len(), 2, "the ledger settles it, not SQS");
    }

    #[test]
    fn target_queues_are_validated() {
        let t = parse_target_queues("identity=https://sqs/q1.fifo, subscriptions=https://sqs/q2.fifo").unwrap();
        assert_eq!(t.len(), 2);
        assert!(parse_target_queues("identity=https://sqs/q1").unwrap_err().contains(".fifo"));
        assert!(parse_target_queues("a=https://x.fifo,a=https://y.fifo").unwrap_err().contains("twice"));
        assert!(parse_target_queues("").is_err());
    }

    #[tokio::test]
    async fn a_rescind_is_fanned_out_in_its_persons_group_and_a_bad_one_is_parked() {
        let (ingest, queues, dlq) = ingest_at("2026-12-01T09:00:00Z");
        let rescind = r#"{"eventId":"r-1","type":"rescind","occurredAt":"2026-11-30T09:00:00Z","rescinds":"e-1","person":{"externalId":{"issuer":"workday","id":"1"}}}"#;
        let out = ingest.ingest(rescind, Some("m-1")).await;
        assert!(matches!(out, IngestOutcome::FannedOut { targets: 1, .. }), "{out:?}");
        let sent = queues.messages("memory://jml-identity.fifo");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1, message_group_id(&event("workday", "1", "anything")), "the person's group");
        let bad = ingest.ingest(&rescind.replace(r#""rescinds":"e-1","#, ""), Some("m-2")).await;
        assert!(matches!(bad, IngestOutcome::Parked { ref code, .. } if code == "InvalidEvent"), "{bad:?}");
        assert_eq!(dlq.parked().len(), 1);
    }

    #[tokio::test]
    async fn a_change_dated_too_far_ahead_is_parked_once_here_and_an_immediate_leaver_never() {
        let (ingest, queues, dlq) = ingest_at("2026-12-01T09:00:00Z");
        let dated = |extra: &str| {
            format!(
                r#"{{"eventId":"e-9","type":"leaver","occurredAt":"2026-11-30T17:00:00Z",{extra}"person":{{"externalId":{{"issuer":"workday","id":"1"}}}}}}"#
            )
        };
        let out = ingest.ingest(&dated(r#""effectiveDate":"2207-12-31","#), Some("m-1")).await;
        assert!(matches!(out, IngestOutcome::Parked { ref code, .. } if code == "EffectiveTooFarAhead"), "{out:?}");
        assert_eq!(dlq.parked().len(), 1);
        let out = ingest.ingest(&dated(r#""effectiveDate":"2207-12-31","immediate":true,"#), Some("m-2")).await;
        assert!(matches!(out, IngestOutcome::FannedOut { .. }), "{out:?}");
        let out = ingest.ingest(&dated(r#""effectiveDate":"2027-06-30","#), Some("m-3")).await;
        assert!(matches!(out, IngestOutcome::FannedOut { .. }), "{out:?}");
        assert_eq!(queues.messages("memory://jml-identity.fifo").len(), 2);
    }
}
