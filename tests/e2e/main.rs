//! Workspace end-to-end tests: the `events/` fixtures through the real `identity-sync` handler
//! on the in-memory simulators. One test binary (link once).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod appstream;
mod bad_events;
mod breaker;
mod handler;
mod iam;
mod ingest;
mod ledger;
mod logs;
mod metrics;
mod moto;
mod moto_doctor;
mod moto_iam;
mod moto_reconcile;
mod operations;
mod properties;
mod reconcile;
mod samples;
mod subscriptions;
mod trust;

use std::path::PathBuf;
use std::sync::Arc;

use identity_sync::{MemoryBackend, State};
use jml_core::config::Config;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// The text of `events/<name>`.
pub fn fixture(name: &str) -> String {
    let p = events_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The memory backend's configuration with `extra` settings.
pub fn memory_config(extra: &[(&str, &str)]) -> Config {
    let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(move |k| {
        if k == "JML_BACKEND" {
            return Some("memory".into());
        }
        extra.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap()
}

/// One record through a target function's real record handling (any target: the state is shared).
pub async fn run(state: &State, body: &str) -> jml_core::lambda::RecordReport {
    jml_core::lambda::process_record(state, body, &jml_core::lambda::RecordMeta::default()).await
}

/// The decision of an applied record (panics with the error otherwise).
pub fn decision(r: &jml_core::lambda::RecordReport) -> jml_core::engine::Decision {
    r.outcome.as_ref().map(|o| o.decision).unwrap_or_else(|| panic!("not applied: {:?}", r.error))
}

/// A handler state on a fresh demo simulator (groups of the samples, manager seeded).
pub fn memory_state() -> (State, MemoryBackend) {
    let config = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())).unwrap();
    identity_sync::memory(Arc::new(identity_sync::sim::demo_identity_store()), &config).expect("memory settings")
}

/// An SQS event (FIFO) with one record per (message id, group, body).
pub fn sqs_batch(records: &[(&str, &str, &str)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, group, body)| {
            json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": {"MessageGroupId": group, "ApproximateReceiveCount": "1"},
                "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-2:123456789012:jml-identity.fifo", "awsRegion": "eu-west-2"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Invokes the real Lambda handler.
pub async fn invoke(state: &State, payload: Value) -> Result<Value, lambda_runtime::Error> {
    identity_sync::handler(state, LambdaEvent::new(payload, Context::default())).await
}

/// The message ids the handler reported as failed.
pub fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {response}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}
