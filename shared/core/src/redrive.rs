//! The way back from every dead-letter queue (`jml redrive`): each parked message is unwrapped to
//! the original HR event, whatever envelope it was parked in, and re-submitted through the normal
//! path (the inbound queue, or the target queues as hr-ingest would), dry run first. The ledger
//! makes this safe: what was applied meanwhile is a duplicate or stale.
//!
//! Envelopes a dead-letter queue can hold:
//! - the HR event itself (parked by hr-ingest or a target function, or moved by a queue's
//!   redrive policy after `maxReceiveCount`);
//! - an EventBridge event (an EventBridge rule's DLQ: the event as the rule would have sent it);
//! - a Lambda asynchronous-invocation record (an on-failure destination after Lambda's retries:
//!   `requestContext`, `requestPayload` = the event the function was invoked with);
//! - the `{"eventbridge": ..., "mismatch": ...}` record a target parks for a detail-type mismatch.
//!
//! - a scheduled firing (`{"type": "fire", ...}`: EventBridge Scheduler's dead-letter queue keeps
//!   the schedule's input as the message body after its retries): it goes back to its own
//!   target's queue, in the person's message group ([`FiringQueues`]), whatever `--to-targets`
//!   says: the inbound queue takes HR events only.
//!
//! The scheduled reconcile function's DLQ holds no HR event: a failed run's trigger
//! (`{"source": "jml-sync.reconcile"}`, as EventBridge Scheduler's DLQ keeps it, or inside a Lambda
//! on-failure record). Its way back is the next completed run, which supersedes every run that
//! failed before it started and removes their records ([`clear_failed_runs`]); `jml redrive`
//! lists them and says so.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::contract;
use crate::ingest::{Delivery, PublishTo, Publisher, publish_as};
use crate::ports::ServiceError;

/// The original HR event inside a parked message, and the envelope it was found in.
pub fn original_event(body: &str) -> Result<(String, &'static str), String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    unwrap(&v, 0)
}

fn unwrap(v: &Value, depth: usize) -> Result<(String, &'static str), String> {
    if depth > 3 {
        return Err("envelopes nested too deep".into());
    }
    let Some(o) = v.as_object() else { return Err("not a JSON object".into()) };
    if o.contains_key("requestContext") && o.contains_key("requestPayload") {
        let (event, _) = unwrap(&o["requestPayload"], depth + 1)?;
        return Ok((event, "lambda-destination"));
    }
    if o.contains_key("eventbridge") && o.contains_key("mismatch") {
        let (event, _) = unwrap(&o["eventbridge"], depth + 1)?;
        return Ok((event, "detail-type-mismatch"));
    }
    if o.contains_key("detail-type") && o.contains_key("detail") {
        return Ok((o["detail"].to_string(), "eventbridge"));
    }
    if o.contains_key("Records") {
        return Err("an SQS batch: its records are in their own queue; redrive that queue".into());
    }
    if o.contains_key("eventId") || o.contains_key("type") || o.contains_key("person") {
        return Ok((v.to_string(), "hr-event"));
    }
    Err("neither an HR event nor a known envelope (EventBridge event, Lambda invocation record)".into())
}

/// The input EventBridge Scheduler sends the reconcile function (template.yaml).
pub const RECONCILE_TRIGGER_SOURCE: &str = "jml-sync.reconcile";

/// Whether a parked message is a failed reconcile run: the scheduler's input itself (Scheduler's
/// DLQ) or a Lambda on-failure record whose request was that input.
pub fn is_failed_reconcile_run(body: &str) -> bool {
    fn trigger(v: &Value) -> bool {
        v.get("source").and_then(Value::as_str) == Some(RECONCILE_TRIGGER_SOURCE)
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else { return false };
    trigger(&v) || (v.get("requestContext").is_some() && v.get("requestPayload").is_some_and(trigger))
}

/// One message of a dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// The `ErrorCode` attribute a jml-sync function parked it with, if any.
    pub error_code: Option<String>,
    /// When the message was sent to the queue (SQS `SentTimestamp`).
    pub sent_at: Option<DateTime<Utc>>,
}

/// Reading and removing dead-letter messages (SQS ReceiveMessage / DeleteMessage).
#[async_trait]
pub trait DlqSource: Send + Sync {
    /// Up to 10 messages, hidden from other receivers for a while.
    async fn receive(&self, queue_url: &str) -> Result<Vec<DlqMessage>, ServiceError>;
    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), ServiceError>;
    /// Makes a received message visible again at once (ChangeMessageVisibility 0).
    async fn release(&self, queue_url: &str, receipt_handle: &str) -> Result<(), ServiceError>;
}

/// What happened to one parked message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedriveLine {
    pub message_id: String,
    pub envelope: &'static str,
    pub event_id: Option<String>,
    pub external_id: Option<String>,
    pub error_code: Option<String>,
    /// `resubmit` (dry run), `resubmitted`, or `kept: <why>` (left in the DLQ).
    pub action: String,
}

/// Each target's queue by its ledger target name (a firing names the target it converges):
/// where a parked firing goes back to.
pub type FiringQueues = std::collections::BTreeMap<String, String>;

/// Reads every message of `dlq_url` (until a receive returns nothing new, at most `max`) and,
/// with `apply`, re-submits each original HR event to `to`, deleting the message only after the
/// send succeeded. An event that does not validate (or cannot be unwrapped) stays in the DLQ.
/// A parked firing has no way back here: [`redrive_with_firings`] gives it its queue.
pub async fn redrive(
    source: &dyn DlqSource,
    dlq_url: &str,
    to: &PublishTo,
    publisher: &dyn Publisher,
    apply: bool,
    max: usize,
) -> Result<Vec<RedriveLine>, ServiceError> {
    redrive_with_firings(source, dlq_url, to, &FiringQueues::new(), publisher, apply, max).await
}

/// [`redrive`], and each parked firing sent back to its target's queue in `firings` (the
/// person's message group, a fresh deduplication id): the firing converges the person to what is
/// due when it is processed, so a late one is exactly as safe as an on-time one.
pub async fn redrive_with_firings(
    source: &dyn DlqSource,
    dlq_url: &str,
    to: &PublishTo,
    firings: &FiringQueues,
    publisher: &dyn Publisher,
    apply: bool,
    max: usize,
) -> Result<Vec<RedriveLine>, ServiceError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut lines = Vec::new();
    let mut hidden = Vec::new();
    while lines.len() < max {
        let batch: Vec<DlqMessage> =
            source.receive(dlq_url).await?.into_iter().filter(|m| seen.insert(m.message_id.clone())).collect();
        if batch.is_empty() {
            break;
        }
        for m in batch {
            if lines.len() >= max {
                hidden.push(m.receipt_handle);
                continue;
            }
            let receipt = m.receipt_handle.clone();
            let line = redrive_one(source, dlq_url, to, firings, publisher, apply, m).await?;
            if line.action != "resubmitted" {
                hidden.push(receipt);
            }
            lines.push(line);
        }
    }
    // Everything received and not re-submitted is visible again at once (a dry run changes
    // nothing; a kept message is there for the next attempt).
    for receipt in hidden {
        source.release(dlq_url, &receipt).await?;
    }
    Ok(lines)
}

async fn redrive_one(
    source: &dyn DlqSource,
    dlq_url: &str,
    to: &PublishTo,
    firings: &FiringQueues,
    publisher: &dyn Publisher,
    apply: bool,
    m: DlqMessage,
) -> Result<RedriveLine, ServiceError> {
    let mut line = RedriveLine {
        message_id: m.message_id.clone(),
        envelope: "-",
        event_id: None,
        external_id: None,
        error_code: m.error_code.clone(),
        action: String::new(),
    };
    if is_failed_reconcile_run(&m.body) {
        line.envelope = "reconcile-run";
        line.action = "kept: a failed reconcile run (no HR event in it); the next completed run removes it \
                       (wait for the schedule, or invoke the reconcile function now)"
            .into();
        return Ok(line);
    }
    if let Some(firing) = crate::ports::Firing::parse(&m.body) {
        line.envelope = "scheduled-firing";
        line.event_id = Some(format!("fire@{}", firing.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        line.external_id = Some(firing.person.clone());
        let Some(queue) = firings.get(&firing.target) else {
            line.action = format!(
                "kept: a scheduled firing of target {}, and no queue for it is configured (TARGET_QUEUES)",
                firing.target
            );
            return Ok(line);
        };
        if !apply {
            line.action = format!("resubmit to {}", firing.target);
            return Ok(line);
        }
        // Content-based deduplication would drop it if the schedule's own delivery is still in
        // SQS's 5-minute window: an explicit, fresh deduplication id.
        let dedup = format!("redrive-{}", crate::ingest::person_group_id(&m.message_id));
        let group = crate::ingest::person_group_id(&firing.person);
        match publisher.send(queue, &firing.body(), &group, &dedup[..dedup.len().min(128)]).await {
            Ok(()) => {
                source.delete(dlq_url, &m.receipt_handle).await?;
                line.action = "resubmitted".into();
            }
            Err(e) => line.action = format!("kept: not sent: {e}"),
        }
        return Ok(line);
    }
    let (event, envelope) = match original_event(&m.body) {
        Ok(x) => x,
        Err(why) => {
            line.action = format!("kept: {why}");
            return Ok(line);
        }
    };
    line.envelope = envelope;
    line.external_id = contract::external_id_hint(&event);
    match contract::parse_deliverable(&event) {
        Ok((e, _)) => line.event_id = Some(e.event_id.to_string()),
        Err(invalid) => {
            line.action = format!("kept: {invalid}");
            return Ok(line);
        }
    }
    if !apply {
        line.action = "resubmit".into();
        return Ok(line);
    }
    // A fresh deduplication id: the original's may still be inside SQS's 5-minute window.
    let report = publish_as(&[(m.message_id.clone(), event)], to, publisher, false, &|_| {}, Delivery::Redrive).await?;
    match report.rejected.first() {
        Some((_, why)) => line.action = format!("kept: {why}"),
        None => {
            source.delete(dlq_url, &m.receipt_handle).await?;
            line.action = "resubmitted".into();
        }
    }
    Ok(line)
}

/// Removes the records of reconcile runs that failed before `started` (a run that completed
/// since supersedes them: it read the snapshot and every target afresh) and leaves everything
/// else in the queue, visible again at once. Returns how many records it removed.
pub async fn clear_failed_runs(
    source: &dyn DlqSource,
    dlq_url: &str,
    started: DateTime<Utc>,
) -> Result<usize, ServiceError> {
    let mut seen = std::collections::BTreeSet::new();
    let (mut cleared, mut keep) = (0, Vec::new());
    while seen.len() < 10_000 {
        let batch: Vec<DlqMessage> =
            source.receive(dlq_url).await?.into_iter().filter(|m| seen.insert(m.message_id.clone())).collect();
        if batch.is_empty() {
            break;
        }
        for m in batch {
            if is_failed_reconcile_run(&m.body) && m.sent_at.is_some_and(|t| t < started) {
                source.delete(dlq_url, &m.receipt_handle).await?;
                cleared += 1;
            } else {
                keep.push(m.receipt_handle);
            }
        }
    }
    for receipt in keep {
        source.release(dlq_url, &receipt).await?;
    }
    Ok(cleared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimDlqSource;
    use serde_json::json;

    fn message(i: usize, body: String, sent_at: Option<DateTime<Utc>>) -> DlqMessage {
        DlqMessage { message_id: format!("m{i}"), receipt_handle: format!("r{i}"), body, error_code: None, sent_at }
    }

    #[tokio::test]
    async fn a_completed_run_clears_only_the_failed_runs_before_it() {
        let at = |t: &str| Some(t.parse::<DateTime<Utc>>().unwrap());
        let trigger = json!({"source": RECONCILE_TRIGGER_SOURCE});
        let record = json!({"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": trigger,
                            "responsePayload": {"errorMessage": "reading the snapshot: AccessDenied"}});
        let dlq = SimDlqSource::default();
        dlq.push(message(0, trigger.to_string(), at("2027-06-01T05:00:00Z")));
        dlq.push(message(1, record.to_string(), at("2027-06-02T05:00:00Z")));
        dlq.push(message(2, trigger.to_string(), at("2027-06-03T05:10:00Z")));
        dlq.push(message(3, hr().to_string(), at("2026-12-01T00:00:00Z")));
        dlq.push(message(4, trigger.to_string(), None));
        let cleared = clear_failed_runs(&dlq, "dlq", "2027-06-03T05:00:00Z".parse().unwrap()).await.unwrap();
        assert_eq!(cleared, 2, "the two runs that failed before this one started");
        let left: Vec<String> = dlq.messages().into_iter().map(|m| m.message_id).collect();
        assert_eq!(left, ["m2", "m3", "m4"], "a later failure, an HR event and an undated record stay");
        assert!(dlq.all_visible(), "what stays is visible again at once");
        let lines = redrive(&dlq, "dlq", &PublishTo::Inbound("q".into()), &crate::sim::SimQueues::default(), true, 10)
            .await
            .unwrap();
        let run = lines.iter().find(|l| l.message_id == "m2").unwrap();
        assert_eq!(run.envelope, "reconcile-run");
        assert!(run.action.starts_with("kept: a failed reconcile run"), "{}", run.action);
        assert!(!is_failed_reconcile_run(&json!({"source": "com.example.hr"}).to_string()));
    }

    #[tokio::test]
    async fn a_dry_run_lists_and_changes_nothing_and_apply_resubmits_and_deletes_only_what_was_sent() {
        let eb = json!({"detail-type": "Leaver", "detail": hr()}).to_string();
        let dlq = SimDlqSource::default();
        for (i, body) in [hr().to_string(), eb, "{\"hello\": 1}".to_string()].into_iter().enumerate() {
            dlq.push(message(i, body, None));
        }
        let queues = crate::sim::SimQueues::default();
        let to = PublishTo::Inbound("memory://inbound".into());
        let dry = redrive(&dlq, "dlq", &to, &queues, false, 100).await.unwrap();
        assert_eq!(dry.iter().map(|l| l.action.as_str()).collect::<Vec<_>>()[..2], ["resubmit", "resubmit"]);
        assert!(dry[2].action.starts_with("kept: neither"));
        assert_eq!(dry[1].envelope, "eventbridge");
        assert!(queues.messages("memory://inbound").is_empty(), "a dry run sends nothing");
        assert!(dlq.all_visible(), "and hides nothing");
        let done = redrive(&dlq, "dlq", &to, &queues, true, 100).await.unwrap();
        assert_eq!(done.iter().filter(|l| l.action == "resubmitted").count(), 2);
        let sent = queues.messages("memory://inbound");
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|(body, _)| serde_json::from_str::<Value>(body).unwrap() == hr()));
        assert_eq!(dlq.messages().len(), 1, "only the message that is not an HR event stays");
        assert!(dlq.all_visible(), "visible again for the next attempt");
    }

    #[tokio::test]
    async fn a_redrive_inside_the_deduplication_window_is_delivered_not_swallowed() {
        // SQS drops a FIFO message whose deduplication id it saw in the last 5 minutes and still
        // answers success; the simulator drops it for good (the window at its worst).
        let queues = crate::sim::SimQueues::default();
        let url = "memory://jml-identity.fifo";
        let to =
            PublishTo::Targets(vec![crate::ingest::TargetQueue { name: "identity".into(), queue_url: url.into() }]);
        crate::ingest::publish(&[("hr".into(), hr().to_string())], &to, &queues, false, &|_| {}).await.unwrap();
        assert_eq!(queues.messages(url).len(), 1, "HR's first sending");
        // The target parked it a minute later; the operator fixed the cause and redrives at once.
        let dlq = SimDlqSource::default();
        dlq.push(message(0, hr().to_string(), None));
        let done = redrive(&dlq, "dlq", &to, &queues, true, 10).await.unwrap();
        assert_eq!(done[0].action, "resubmitted");
        assert!(dlq.messages().is_empty(), "the DLQ copy is deleted ...");
        assert_eq!(queues.messages(url).len(), 2, "... only because the copy really reached the queue");
        // A second copy of the same event in the DLQ (parked twice) is its own delivery too.
        dlq.push(message(1, hr().to_string(), None));
        redrive(&dlq, "dlq", &to, &queues, true, 10).await.unwrap();
        assert_eq!(queues.messages(url).len(), 3);
    }

    #[tokio::test]
    async fn a_parked_firing_goes_back_to_its_own_target_queue_in_the_persons_group() {
        let at: DateTime<Utc> = "2027-01-04T00:00:00Z".parse().unwrap();
        let firing = crate::ports::Firing::new("example-target", "workday#100234", at);
        let dlq = SimDlqSource::default();
        dlq.push(message(0, firing.body(), None));
        dlq.push(message(1, crate::ports::Firing::new("other-target", "workday#7", at).body(), None));
        let queues = crate::sim::SimQueues::default();
        let url = "memory://jml-example.fifo";
        let firings = FiringQueues::from([("example-target".to_string(), url.to_string())]);
        let to = PublishTo::Inbound("memory://inbound".into());
        let dry = redrive_with_firings(&dlq, "dlq", &to, &firings, &queues, false, 10).await.unwrap();
        assert_eq!(dry[0].envelope, "scheduled-firing");
        assert_eq!(dry[0].action, "resubmit to example-target");
        assert_eq!(dry[0].external_id.as_deref(), Some("workday#100234"));
        assert!(dry[1].action.starts_with("kept: a scheduled firing of target other-target"), "{}", dry[1].action);
        assert!(queues.messages(url).is_empty() && dlq.all_visible(), "a dry run sends and hides nothing");
        let done = redrive_with_firings(&dlq, "dlq", &to, &firings, &queues, true, 10).await.unwrap();
        assert_eq!(done[0].action, "resubmitted");
        let sent = queues.messages(url);
        assert_eq!(sent.len(), 1);
        assert_eq!(crate::ports::Firing::parse(&sent[0].0), Some(firing.clone()), "the same firing, unchanged");
        assert_eq!(sent[0].1, crate::ingest::person_group_id("workday#100234"), "in the person's message group");
        assert!(queues.messages("memory://inbound").is_empty(), "never to the inbound queue (HR events only)");
        assert_eq!(dlq.messages().len(), 1, "the firing with no queue stays for the operator");
        // A firing is not an HR event: the plain redrive keeps it rather than misroute it.
        let plain = redrive(&dlq, "dlq", &to, &queues, true, 10).await.unwrap();
        assert!(plain[0].action.starts_with("kept: a scheduled firing"), "{}", plain[0].action);
        assert_eq!(crate::ports::Firing::parse("{\"type\": \"fire\", \"person\": \"no-hash\"}"), None);
    }

    fn hr() -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/04-leaver-ada.json")).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn every_envelope_unwraps_to_the_original_hr_event() {
        let event = hr();
        let eb =
            json!({"version": "0", "id": "e-1", "detail-type": "Leaver", "source": "com.example.hr", "detail": event});
        let lambda = json!({
            "version": "1.0",
            "timestamp": "2026-11-21T10:00:00.000Z",
            "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:eu-west-2:1:function:example-sync:$LATEST", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": eb,
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": "Throttled"}
        });
        let mismatch = json!({"eventbridge": eb, "mismatch": "detail-type does not match detail.type"});
        for (body, envelope) in [
            (event.to_string(), "hr-event"),
            (eb.to_string(), "eventbridge"),
            (lambda.to_string(), "lambda-destination"),
            (mismatch.to_string(), "detail-type-mismatch"),
        ] {
            let (out, found) = original_event(&body).unwrap();
            assert_eq!(found, envelope);
            assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), event, "{envelope}");
        }
        assert!(original_event("{\"Records\": []}").unwrap_err().contains("SQS batch"));
        assert!(original_event("[1]").unwrap_err().contains("not a JSON object"));
        assert!(original_event("{\"hello\": 1}").unwrap_err().contains("neither"));
        assert!(original_event("not json").unwrap_err().contains("not JSON"));
    }
}
