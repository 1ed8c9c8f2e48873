//! hr-ingest on in-memory queues: EventBridge and inbound SQS, fan-out to every target queue with
//! the person's group and the change's dedup id, parking of invalid events, retry of a partial
//! fan-out, and the whole pipeline: hr-ingest -> target queues -> identity-sync and
//! subscription-sync.

use std::sync::Arc;

use hr_ingest::{MemoryBackend, memory};
use jml_core::config::Config;
use jml_core::ingest::Ingest;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use crate::{failures, fixture, fixture_json, sqs_batch};

const IDENTITY_Q: &str = "memory://jml-identity.fifo";
const SUBS_Q: &str = "memory://jml-subscriptions.fifo";
const APPSTREAM_Q: &str = "memory://jml-appstream.fifo";
const IAM_Q: &str = "memory://jml-iam.fifo";

fn ingest() -> (Ingest, MemoryBackend) {
    memory(&Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap())
}

async fn call(state: &Ingest, payload: Value) -> Result<Value, lambda_runtime::Error> {
    hr_ingest::handler(state, LambdaEvent::new(payload, Context::default())).await
}

#[tokio::test]
async fn an_eventbridge_event_is_fanned_out_to_every_target_once_even_when_resent() {
    let (state, mem) = ingest();
    let eb = fixture_json("lambda/eventbridge-joiner.json");
    let r = call(&state, eb.clone()).await.unwrap();
    assert_eq!(r["status"], "fanned-out");
    assert_eq!(r["targets"], 4);
    // resent (an EventBridge retry, a producer resend): deduplicated by the queue
    call(&state, eb.clone()).await.unwrap();
    for q in [IDENTITY_Q, SUBS_Q, APPSTREAM_Q, IAM_Q] {
        let msgs = mem.queues.messages(q);
        assert_eq!(msgs.len(), 1, "{q}");
        let body: Value = serde_json::from_str(&msgs[0].0).unwrap();
        assert_eq!(body, eb["detail"], "the HR event is forwarded as received");
        assert!(msgs[0].1.starts_with("p-") && msgs[0].1.len() == 66, "group id derived from the person");
    }
}

#[tokio::test]
async fn invalid_events_are_parked_with_their_reason_and_never_forwarded() {
    let (state, mem) = ingest();
    let mut bad = fixture_json("lambda/eventbridge-joiner.json");
    bad["detail"]["person"]["userName"] = "Administrator".into();
    let r = call(&state, bad).await.unwrap();
    assert_eq!(r["status"], "parked");
    let mut wrong_type = fixture_json("lambda/eventbridge-joiner.json");
    wrong_type["detail-type"] = "Promotion".into();
    assert_eq!(call(&state, wrong_type).await.unwrap()["status"], "parked");
    let parked = mem.dlq.parked();
    assert_eq!(parked.len(), 2);
    assert!(parked[0].reason.contains("person.userName: is a reserved name"));
    assert_eq!(parked[0].external_id.as_deref(), Some("workday#100234"));
    assert!(parked[1].reason.contains("detail-type"));
    assert!(mem.queues.messages(IDENTITY_Q).is_empty() && mem.queues.messages(SUBS_Q).is_empty());
}

#[tokio::test]
async fn a_partial_fan_out_is_retried_and_the_resend_is_deduplicated() {
    let (state, mem) = ingest();
    mem.queues.fail_next_send(SUBS_Q);
    let batch = sqs_batch(&[
        ("1", "in-1", &fixture("01-joiner-ada.json")),
        ("2", "in-2", "{\"eventId\": \"x\"}"),
        ("3", "in-3", &fixture("02-joiner-alan.json")),
    ]);
    let failed = failures(&call(&state, batch).await.unwrap());
    // ada's went to identity, then failed on subscriptions: retried; the bad one parked; alan's sent
    assert_eq!(failed, vec!["1"]);
    assert_eq!(mem.dlq.parked().len(), 1);
    assert_eq!(mem.queues.messages(IDENTITY_Q).len(), 2);
    assert_eq!(mem.queues.messages(SUBS_Q).len(), 1);
    // the redelivery completes the fan-out without a second identity message
    assert!(
        failures(&call(&state, sqs_batch(&[("1", "in-1", &fixture("01-joiner-ada.json"))])).await.unwrap()).is_empty()
    );
    assert_eq!(mem.queues.messages(IDENTITY_Q).len(), 2);
    assert_eq!(mem.queues.messages(SUBS_Q).len(), 2);
}

/// The messages of a target queue as the SQS event source would deliver them.
fn deliver(mem: &MemoryBackend, queue: &str) -> Value {
    let msgs = mem.queues.messages(queue);
    let records: Vec<(String, String, String)> =
        msgs.iter().enumerate().map(|(i, (b, g))| (format!("m-{i}"), g.clone(), b.clone())).collect();
    let refs: Vec<(&str, &str, &str)> = records.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    sqs_batch(&refs)
}

#[tokio::test]
async fn the_pipeline_ingest_then_both_targets_provisions_and_releases_a_person() {
    let (state, mem) = ingest();
    for f in ["01-joiner-ada.json", "03-mover-ada.json", "04-leaver-ada.json"] {
        let r = call(&state, sqs_batch(&[("in", "in", &fixture(f))])).await.unwrap();
        assert!(failures(&r).is_empty());
    }
    let config = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    let (identity, ids) =
        identity_sync::memory(Arc::new(identity_sync::sim::demo_identity_store()), &config).expect("memory settings");
    let (subs, lm) = subscription_sync::memory(Arc::new(subscription_sync::sim::SimUserSubscriptions::demo()), &config)
        .expect("memory settings");
    let r = identity_sync::handler(&identity, LambdaEvent::new(deliver(&mem, IDENTITY_Q), Context::default()))
        .await
        .unwrap();
    assert!(failures(&r).is_empty());
    let r =
        subscription_sync::handler(&subs, LambdaEvent::new(deliver(&mem, SUBS_Q), Context::default())).await.unwrap();
    assert!(failures(&r).is_empty());
    let ada = ids.store.user("ada.lovelace").unwrap();
    assert_eq!(ada.status, identity_sync::port::UserStatus::Disabled);
    assert!(ada.groups.is_empty());
    assert_eq!(lm.service.holdings("alovelace"), (vec![], vec![]));
    assert_eq!(ids.ledger.record("workday#100234", "identity-store").unwrap().last_event_id, "hr-2026-11-20-0031");
}

#[tokio::test]
async fn publish_sends_valid_events_in_batches_with_the_ingest_ids_and_reports_the_rest() {
    use jml_core::ingest::{PublishTo, message_group_id, publish};
    let queues = jml_core::sim::SimQueues::default();
    let mut events: Vec<(String, String)> = (0..23)
        .map(|n| {
            let mut j = fixture_json("01-joiner-ada.json");
            j["eventId"] = format!("bulk-{n}").into();
            j["person"]["externalId"]["id"] = format!("p{n}").into();
            (format!("line {n}"), j.to_string())
        })
        .collect();
    events.insert(5, ("line x".into(), "{\"eventId\": 1}".into()));
    events.push(("line y".into(), "not json".into()));
    let to = PublishTo::Targets(hr_ingest::memory_targets());
    let progressed = std::sync::atomic::AtomicUsize::new(0);
    let count = |n: usize| {
        progressed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    let report = publish(&events, &to, &queues, false, &count).await.unwrap();
    assert_eq!(report.sent, 23);
    assert_eq!(report.rejected.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), vec!["line x", "line y"]);
    assert!(report.rejected[0].1.contains("eventId: must be a string"));
    assert_eq!(progressed.load(std::sync::atomic::Ordering::Relaxed), 25, "every event is counted once");
    for q in [IDENTITY_Q, SUBS_Q] {
        let msgs = queues.messages(q);
        assert_eq!(msgs.len(), 23);
        let first = jml_core::contract::parse_event(&msgs[0].0).unwrap();
        assert_eq!(msgs[0].1, message_group_id(&first), "the same group id as hr-ingest");
    }
    // Published again (an operator re-runs the load): deduplicated per event.
    publish(&events, &to, &queues, false, &|_| {}).await.unwrap();
    assert_eq!(queues.messages(IDENTITY_Q).len(), 23);
    // Dry run: counted, nothing sent.
    let dry = jml_core::sim::SimQueues::default();
    assert_eq!(publish(&events, &to, &dry, true, &|_| {}).await.unwrap().sent, 23);
    assert!(dry.messages(IDENTITY_Q).is_empty());
}

#[tokio::test]
async fn dry_run_validates_and_reports_but_sends_and_parks_nothing() {
    let config = Config::from_lookup(|k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "DRY_RUN" => Some("true".into()),
        _ => None,
    })
    .unwrap();
    let (state, mem) = memory(&config);
    let r = call(&state, fixture_json("lambda/eventbridge-joiner.json")).await.unwrap();
    assert_eq!((r["status"].as_str(), r["targets"].as_u64()), (Some("fanned-out"), Some(0)));
    let mut bad = fixture_json("lambda/eventbridge-joiner.json");
    bad["detail"]["type"] = "fired".into();
    bad["detail-type"] = "Joiner".into();
    let _ = call(&state, bad).await;
    assert!(mem.queues.messages(IDENTITY_Q).is_empty() && mem.dlq.parked().is_empty());
}
