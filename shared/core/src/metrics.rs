//! CloudWatch Embedded Metric Format: one JSON document per fact, written to stdout, where the
//! Lambda service ships it to CloudWatch Logs and CloudWatch extracts the metrics. No personal
//! data: dimensions are the target, event type, decision, action kind and error code.
//!
//! Metrics (namespace `jml-sync`): `Events` (Target, EventType, Decision), `Actions` (Target,
//! ActionKind), `Parked` and `Retries` (Target, Reason), `TerminationToDisableSeconds` (Target):
//! from the leaver's `occurredAt` to the moment its access was removed; `StaleLeavers` and
//! `UnknownPersonLeavers` (Target): leavers that revoked nothing because the ledger knows a newer
//! event of the person, or knows no account of them (both alarmed).

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "jml-sync";

/// Where EMF documents go.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, document: Value);
}

/// Standard output (the Lambda log stream).
#[derive(Clone, Copy, Debug, Default)]
pub struct StdoutSink;

impl MetricsSink for StdoutSink {
    fn emit(&self, document: Value) {
        println!("{document}");
    }
}

/// Discards documents (the CLI's replay output stays readable).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl MetricsSink for NullSink {
    fn emit(&self, _document: Value) {}
}

/// Keeps documents, for tests.
#[derive(Debug, Default)]
pub struct MemorySink(Mutex<Vec<Value>>);

impl MemorySink {
    pub fn documents(&self) -> Vec<Value> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl MetricsSink for MemorySink {
    fn emit(&self, document: Value) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(document);
    }
}

/// One EMF document: `dimensions` (name, value) and `metrics` (name, unit, value).
pub fn document(now: DateTime<Utc>, dimensions: &[(&str, &str)], metrics: &[(&str, &str, f64)]) -> Value {
    let mut doc = Map::new();
    doc.insert(
        "_aws".to_string(),
        json!({
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    for (name, _, value) in metrics {
        doc.insert((*name).to_string(), json!(value));
    }
    Value::Object(doc)
}

/// The facts of one processed record.
#[derive(Debug)]
pub struct RecordFacts<'a> {
    pub target: &'a str,
    pub event_type: Option<&'a str>,
    pub decision: &'a str,
    /// Action descriptions (their first word is the kind, e.g. `CreateGroupMembership`).
    pub actions: &'a [String],
    pub dry_run: bool,
    /// Error code when parked or retried.
    pub error_code: Option<&'a str>,
    pub parked: bool,
    pub retried: bool,
    /// For a leaver whose access was just removed: when HR said they left.
    pub left_at: Option<DateTime<Utc>>,
}

/// Emits the documents of one record.
pub fn record(sink: &dyn MetricsSink, now: DateTime<Utc>, f: &RecordFacts<'_>) {
    let event_type = f.event_type.unwrap_or("unknown");
    sink.emit(document(
        now,
        &[("Target", f.target), ("EventType", event_type), ("Decision", f.decision)],
        &[("Events", "Count", 1.0)],
    ));
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for a in f.actions {
        let kind = a.split_whitespace().next().unwrap_or("unknown");
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let metric = if f.dry_run { "PlannedActions" } else { "Actions" };
    for (kind, n) in kinds {
        sink.emit(document(now, &[("Target", f.target), ("ActionKind", kind)], &[(metric, "Count", n as f64)]));
    }
    if f.decision == "held" {
        sink.emit(document(now, &[("Target", f.target)], &[("Held", "Count", 1.0)]));
    }
    // A leaver that changed nothing deserves a human's eye: a stale one means the ledger holds a
    // newer event of the person (a lagging export, or a mistyped date that got in before the
    // OccurredInFuture bound); one for a person with no account may be HR's typo of an id.
    // Each per target and once more without dimensions (the deployment's alarm).
    if f.event_type == Some("leaver") && !f.dry_run {
        let metric = match f.decision {
            "stale" => Some("StaleLeavers"),
            "leaver-without-account" => Some("UnknownPersonLeavers"),
            _ => None,
        };
        if let Some(metric) = metric {
            sink.emit(document(now, &[("Target", f.target)], &[(metric, "Count", 1.0)]));
            sink.emit(document(now, &[], &[(metric, "Count", 1.0)]));
        }
    }
    if let Some(code) = f.error_code {
        let metric = if f.parked {
            "Parked"
        } else if f.retried {
            "Retries"
        } else {
            "Errors"
        };
        sink.emit(document(now, &[("Target", f.target), ("Reason", code)], &[(metric, "Count", 1.0)]));
    }
    if let Some(left) = f.left_at
        && !f.dry_run
    {
        let seconds = (now - left).num_milliseconds() as f64 / 1000.0;
        sink.emit(document(
            now,
            &[("Target", f.target)],
            &[("TerminationToDisableSeconds", "Seconds", seconds.max(0.0))],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let now = DateTime::parse_from_rfc3339("2026-11-20T18:00:00Z").unwrap().with_timezone(&Utc);
        let d = document(now, &[("Target", "example-target")], &[("Events", "Count", 1.0)]);
        assert_eq!(d["_aws"]["Timestamp"], 1_795_197_600_000_i64);
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Target"]]));
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": "Events", "Unit": "Count"}]));
        assert_eq!((d["Target"].as_str(), d["Events"].as_f64()), (Some("example-target"), Some(1.0)));
    }

    #[test]
    fn a_leaver_reports_actions_by_kind_and_time_to_disable() {
        let sink = MemorySink::default();
        let now = DateTime::parse_from_rfc3339("2026-11-20T18:00:00Z").unwrap().with_timezone(&Utc);
        let left = DateTime::parse_from_rfc3339("2026-11-20T17:00:00Z").unwrap().with_timezone(&Utc);
        let actions = ["DeleteGroupMembership a", "DeleteGroupMembership b", "UpdateUser [userStatus=DISABLED]"]
            .map(String::from);
        record(
            &sink,
            now,
            &RecordFacts {
                target: "example-target",
                event_type: Some("leaver"),
                decision: "disable",
                actions: &actions,
                dry_run: false,
                error_code: None,
                parked: false,
                retried: false,
                left_at: Some(left),
            },
        );
        let docs = sink.documents();
        assert_eq!(docs.len(), 4);
        assert_eq!((docs[0]["Decision"].as_str(), docs[0]["Events"].as_f64()), (Some("disable"), Some(1.0)));
        assert_eq!(
            (docs[1]["ActionKind"].as_str(), docs[1]["Actions"].as_f64()),
            (Some("DeleteGroupMembership"), Some(2.0))
        );
        assert_eq!(docs[3]["TerminationToDisableSeconds"].as_f64(), Some(3600.0));
    }

    #[test]
    fn stale_and_unknown_person_leavers_are_counted_and_other_decisions_are_not() {
        let now = DateTime::parse_from_rfc3339("2026-11-20T18:00:00Z").unwrap().with_timezone(&Utc);
        let count = |event_type: &str, decision: &str, metric: &str| {
            let sink = MemorySink::default();
            let facts = RecordFacts {
                target: "example-target",
                event_type: Some(event_type),
                decision,
                actions: &[],
                dry_run: false,
                error_code: None,
                parked: false,
                retried: false,
                left_at: None,
            };
            record(&sink, now, &facts);
            sink.documents().iter().filter(|d| d.get(metric).is_some()).count()
        };
        assert_eq!(count("leaver", "stale", "StaleLeavers"), 2, "per target, and for the deployment's alarm");
        assert_eq!(count("mover", "stale", "StaleLeavers"), 0);
        assert_eq!(count("leaver", "leaver-without-account", "UnknownPersonLeavers"), 2);
        assert_eq!(count("leaver", "disable", "UnknownPersonLeavers"), 0);
    }
}
