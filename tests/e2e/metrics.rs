//! The EMF documents a scenario emits: events by type and decision, actions by kind, parked by
//! reason, retries, and the time from a leaver's occurredAt to the removal of their access.

use std::sync::Arc;

use identity_sync::sim::Fault;
use jml_core::metrics::MemorySink;
use jml_core::ports::ServiceError;
use serde_json::Value;

use crate::{fixture, invoke, memory_state, sqs_batch};

fn find<'a>(docs: &'a [Value], pairs: &[(&str, &str)], metric: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| pairs.iter().all(|(k, v)| d[*k].as_str() == Some(*v)) && d.get(metric).is_some()).collect()
}

#[tokio::test]
async fn a_scenario_emits_the_expected_embedded_metric_documents() {
    let (mut state, mem) = memory_state();
    let sink = Arc::new(MemorySink::default());
    state.metrics = sink.clone();
    mem.store.inject(Fault {
        op: identity_sync::port::op::CREATE_USER,
        user_name: Some("alan.turing".into()),
        error: ServiceError::Throttled { op: identity_sync::port::op::CREATE_USER, retry_after_seconds: None },
        times: 1,
        after: 0,
    });
    let batch = sqs_batch(&[
        ("1", "a", &fixture("01-joiner-ada.json")),
        ("2", "b", "not json"),
        ("3", "c", &fixture("02-joiner-alan.json")),
    ]);
    invoke(&state, batch).await.unwrap();
    invoke(&state, sqs_batch(&[("4", "a", &fixture("01-joiner-ada.json"))])).await.unwrap();
    invoke(&state, sqs_batch(&[("5", "a", &fixture("04-leaver-ada.json"))])).await.unwrap();
    let docs = sink.documents();

    // Every document is valid EMF: declared dimensions and metrics are present at the top level.
    for d in &docs {
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "jml-sync");
        for dim in directive["Dimensions"][0].as_array().unwrap() {
            assert!(d[dim.as_str().unwrap()].is_string(), "dimension {dim} in {d}");
        }
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(d[m["Name"].as_str().unwrap()].is_number(), "metric {m} in {d}");
        }
        assert!(d["_aws"]["Timestamp"].is_i64());
    }
    let target = ("Target", "identity-store");
    assert_eq!(find(&docs, &[target, ("EventType", "joiner"), ("Decision", "create")], "Events").len(), 1);
    assert_eq!(find(&docs, &[target, ("EventType", "joiner"), ("Decision", "duplicate")], "Events").len(), 1);
    assert_eq!(find(&docs, &[target, ("Decision", "parked")], "Events").len(), 1);
    assert_eq!(find(&docs, &[target, ("Reason", "InvalidEvent")], "Parked").len(), 1);
    assert_eq!(find(&docs, &[target, ("Reason", "Throttled")], "Retries").len(), 1);
    let adds = find(&docs, &[target, ("ActionKind", "CreateGroupMembership")], "Actions");
    assert_eq!(adds[0]["Actions"].as_f64(), Some(3.0), "ada's 3 memberships in one document");
    let removal = find(&docs, &[target], "TerminationToDisableSeconds");
    assert_eq!(removal.len(), 1);
    // The sample leaver left on 2026-11-20T17:00Z: the measure is now minus then.
    let expected = (chrono::Utc::now()
        - chrono::DateTime::parse_from_rfc3339("2026-11-20T17:00:00Z").unwrap().with_timezone(&chrono::Utc))
    .num_seconds() as f64;
    let got = removal[0]["TerminationToDisableSeconds"].as_f64().unwrap();
    assert!((got - expected).abs() < 60.0, "{got} vs {expected}");
    // No personal data in metrics.
    let all = serde_json::to_string(&docs).unwrap().to_lowercase();
    assert!(!all.contains("lovelace") && !all.contains("example.com"));
}
