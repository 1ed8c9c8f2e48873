//! Helpers for the tests of every slice and of the workspace: the sample events, a memory
//! backend's configuration, one record or one Lambda event through a function's real handling.
//! Test code: a helper that cannot do its job panics with why.

use serde_json::{Value, json};

use crate::config::Config;
use crate::lambda::{RecordMeta, RecordReport, State};

/// The repository's `events/` directory (the samples).
pub fn events_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// The text of `events/<name>`.
pub fn fixture(name: &str) -> String {
    let p = events_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `events/<name>` as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"))
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
    .unwrap_or_else(|e| panic!("memory configuration: {e}"))
}

/// One record through a target function's real record handling.
pub async fn run(state: &State, body: &str) -> RecordReport {
    crate::lambda::process_record(state, body, &RecordMeta::default()).await
}

/// The decision of an applied record (panics with the error otherwise).
pub fn decision(r: &RecordReport) -> crate::engine::Decision {
    r.outcome.as_ref().map(|o| o.decision).unwrap_or_else(|| panic!("not applied: {:?}", r.error))
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
    crate::lambda::handler(state, lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default())).await
}

/// The message ids the handler reported as failed.
pub fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {response}"))
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
        .collect()
}
