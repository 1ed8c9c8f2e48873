//! `jml bench-scale`: bulk onboarding through the real identity-sync handler, on tokio's paused
//! (virtual) clock. The simulator answers every call after `latency` and rejects calls beyond
//! 20 in any second (the IAM Identity Center account quota) with ThrottlingException. `instances`
//! concurrent function instances (the template's MaximumConcurrency) each take SQS batches of 10
//! from one queue; a record reported in batchItemFailures goes back to the queue (SQS
//! redelivery). Times are virtual seconds: the same on every machine, and a 3,000-second run
//! takes seconds.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use identity_sync::State;
use identity_sync::sim::SimIdentityStore;
use jml_core::config::Config;
use jml_core::sim::{SimDeadLetterQueue, SimLedger};
use serde_json::{Value, json};

const JOINER: &str = include_str!("../../events/01-joiner-ada.json");

/// The account-wide quota of IAM Identity Center.
pub const QUOTA_PER_SECOND: u32 = 20;

fn joiner(n: usize) -> String {
    let mut v: Value = serde_json::from_str(JOINER).unwrap_or_default();
    v["eventId"] = format!("bulk-{n}").into();
    v["person"]["externalId"]["id"] = format!("b{n}").into();
    v["person"]["userName"] = format!("bulk.user.{n}").into();
    v["person"]["email"] = format!("bulk.user.{n}@example.com").into();
    v["person"]["enterprise"]["manager"] = "grace.hopper".into();
    v["groups"] = json!(["jml-all-staff", "jml-engineering", "jml-vpn"]);
    v.as_object_mut().map(|o| o.remove("subscriptions"));
    v.to_string()
}

fn sqs(records: &[(String, String)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| json!({"messageId": id, "body": body, "attributes": {"MessageGroupId": id}, "eventSource": "aws:sqs"}))
        .collect();
    json!({ "Records": records })
}

/// One scenario's result.
#[derive(Debug)]
pub struct Run {
    pub events: usize,
    pub seconds: f64,
    pub calls: usize,
    pub throttled: usize,
    pub parked: usize,
    pub redeliveries: usize,
    pub users: usize,
}

fn states(
    store: &Arc<SimIdentityStore>,
    instances: usize,
    env: &[(&str, &str)],
) -> Result<(Vec<State>, Arc<SimDeadLetterQueue>), String> {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let config = Config::from_lookup(move |k| {
        if k == "JML_BACKEND" {
            return Some("memory".into());
        }
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .map_err(|e| e.to_string())?;
    let settings = identity_sync::Settings::from_config(&config).map_err(|e| e.to_string())?;
    let ledger = Arc::new(SimLedger::default());
    let dlq = Arc::new(SimDeadLetterQueue::default());
    let states = (0..instances)
        .map(|_| {
            let port = identity_sync::paced_calls(store.clone(), &settings);
            let mut s = identity_sync::state(port, ledger.clone(), dlq.clone(), &config, &settings);
            s.metrics = Arc::new(jml_core::metrics::NullSink);
            s
        })
        .collect();
    Ok((states, dlq))
}

/// Drives `events` joiners through `instances` concurrent instances.
pub async fn bulk(events: usize, instances: usize, latency: Duration, env: &[(&str, &str)]) -> Result<Run, String> {
    let store =
        Arc::new(identity_sync::sim::demo_identity_store().with_latency(latency).with_rate_limit(QUOTA_PER_SECOND));
    let (states, dlq) = states(&store, instances, env)?;
    let queue: Arc<Mutex<VecDeque<(String, String)>>> =
        Arc::new(Mutex::new((0..events).map(|n| (format!("m-{n}"), joiner(n))).collect()));
    let redeliveries = Arc::new(Mutex::new(0usize));
    let start = tokio::time::Instant::now();
    let workers = states.into_iter().map(|state| {
        let queue = queue.clone();
        let redeliveries = redeliveries.clone();
        async move {
            loop {
                let batch: Vec<(String, String)> = {
                    let mut q = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let n = q.len().min(10);
                    q.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let response =
                    identity_sync::handle_sqs(&state, serde_json::from_value(sqs(&batch)).unwrap_or_default()).await;
                let failed: Vec<String> =
                    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
                if !failed.is_empty() {
                    // The visibility timeout passes, then SQS delivers them again.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let mut q = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    *redeliveries.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += failed.len();
                    q.extend(batch.into_iter().filter(|(id, _)| failed.contains(id)));
                }
            }
        }
    });
    futures::future::join_all(workers).await;
    let seconds = start.elapsed().as_secs_f64();
    let calls = store.calls();
    let redeliveries = *redeliveries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(Run {
        events,
        seconds,
        calls: calls.reads() + calls.writes(),
        throttled: store.throttled(),
        parked: dlq.parked().len(),
        redeliveries,
        users: store.users().len() - 1,
    })
}

/// One batch on one fresh instance (group and manager caches warmed by a first event), no quota
/// pressure: what concurrency within a batch buys.
pub async fn one_batch(size: usize, latency: Duration, env: &[(&str, &str)]) -> Result<f64, String> {
    let store = Arc::new(identity_sync::sim::demo_identity_store().with_latency(latency));
    let (states, _) = states(&store, 1, env)?;
    let state = &states[0];
    identity_sync::handle_sqs(
        state,
        serde_json::from_value(sqs(&[("warm".into(), joiner(999_999))])).unwrap_or_default(),
    )
    .await;
    let batch: Vec<(String, String)> = (0..size).map(|n| (format!("m-{n}"), joiner(n))).collect();
    let start = tokio::time::Instant::now();
    identity_sync::handle_sqs(state, serde_json::from_value(sqs(&batch)).unwrap_or_default()).await;
    Ok(start.elapsed().as_secs_f64())
}

/// Prints the table; `Err` when a target is missed.
pub async fn run(events: usize, instances: usize, latency_ms: u64) -> Result<(), String> {
    let latency = Duration::from_millis(latency_ms);
    let rps = format!("{}", f64::from(QUOTA_PER_SECOND) / instances as f64);
    let paced = [("IDENTITY_STORE_RPS", rps.as_str()), ("MAX_CONCURRENCY", "4"), ("BREAKER_LEAVERS_PER_HOUR", "0")];
    let r = bulk(events, instances, latency, &paced).await?;
    // The fewest calls possible: per joiner GetUserId x2, CreateUser, CreateGroupMembership x3;
    // per instance once GetGroupId x3 and the manager's GetUserId.
    let min_calls = events * 6 + instances * 4;
    let floor = min_calls as f64 / f64::from(QUOTA_PER_SECOND);
    println!(
        "Bulk onboarding on the simulator ({latency_ms} ms per call, {QUOTA_PER_SECOND} requests/s account quota, virtual time)\n"
    );
    println!(
        "| joiners (3 groups) | instances | pacing per instance | time | floor (min calls / 20 per s) | time / floor | calls | throttled | redelivered | parked | users |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} req/s | {:.0} s | {:.0} s | {:.3} | {} | {} | {} | {} | {} |",
        r.events,
        instances,
        rps,
        r.seconds,
        floor,
        r.seconds / floor,
        r.calls,
        r.throttled,
        r.redeliveries,
        r.parked,
        r.users
    );
    let unpaced = [("MAX_CONCURRENCY", "10"), ("BREAKER_LEAVERS_PER_HOUR", "0")];
    let ten = one_batch(10, latency, &unpaced).await?;
    let one = one_batch(1, latency, &unpaced).await?;
    println!("\nOne SQS batch on one instance (MAX_CONCURRENCY=10, caches warm, no quota pressure)\n");
    println!("| batch | time | ratio to 1 record |\n|---|---|---|");
    println!("| 1 record | {:.3} s | 1.00 |", one);
    println!("| 10 records, 10 people | {:.3} s | {:.2} |", ten, ten / one);
    let checks = [
        ("bulk time within 1.1x of the floor", r.seconds / floor <= 1.1),
        ("0 parked", r.parked == 0),
        ("every joiner provisioned once", r.users == events),
        ("10-record batch within 1.5x of one record", ten / one <= 1.5),
    ];
    println!();
    crate::bench::verdict(checks)
}
