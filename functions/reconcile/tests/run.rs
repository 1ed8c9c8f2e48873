//! The scheduled function's run on the simulators: Drift metrics per target and kind (zeros
//! included, so the leaver-still-active alarm always has data), report-only by default,
//! corrections to the inbound queue only in `correct` mode (deduplicated by their ids), and a
//! partial snapshot refused with its own metric instead of an error.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jml_core::config::Config;
use jml_core::metrics::MemorySink;
use jml_core::sim::SimQueues;
use reconcile::{App, FixedSnapshot, SAMPLE_SNAPSHOT, Settings};
use serde_json::Value;

fn cfg(extra: &[(&str, &str)]) -> Config {
    let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(move |k| {
        if k == "JML_BACKEND" {
            return Some("memory".into());
        }
        extra.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap()
}

async fn app(extra: &[(&str, &str)], snapshot: &str) -> (App, Arc<MemorySink>, Arc<SimQueues>) {
    let cfg = cfg(extra);
    let mut app = reconcile::from_config(&cfg).await.unwrap();
    let sink = Arc::new(MemorySink::default());
    let queues = Arc::new(SimQueues::default());
    app.metrics = sink.clone();
    app.publisher = Some(queues.clone());
    app.settings.inbound_queue_url = Some("memory://inbound".into());
    let at: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    app.source = Arc::new(FixedSnapshot(snapshot.to_string(), at));
    (app, sink, queues)
}

fn drift_metric(docs: &[Value], target: &str, kind: &str) -> Option<f64> {
    docs.iter().find(|d| d["Target"] == target && d["Kind"] == kind).and_then(|d| d["Drift"].as_f64())
}

#[tokio::test]
async fn report_only_by_default_with_drift_metrics_for_every_kind() {
    let (app, sink, queues) = app(&[], SAMPLE_SNAPSHOT).await;
    assert!(!app.settings.correct);
    let out = reconcile::run(&app, Utc::now()).await.unwrap();
    // Empty demo targets: every valid snapshot person is missing everywhere; line 4 is bad.
    assert_eq!(out["status"], "drift");
    assert_eq!(out["mode"], "report");
    assert_eq!(out["badLines"][0]["line"], 4);
    let docs = sink.documents();
    assert_eq!(drift_metric(&docs, "identity-store", "missing-account"), Some(3.0));
    assert_eq!(drift_metric(&docs, "identity-store", "leaver-still-active"), Some(0.0), "zeros are published");
    assert_eq!(drift_metric(&docs, "iam-users", "missing-account"), Some(3.0));
    assert_eq!(
        docs.iter().filter(|d| d.get("Drift").is_some()).count(),
        5 * jml_core::reconcile::DriftKind::ALL.len(),
        "4 targets x every kind, and all"
    );
    let all =
        |kind: &str| docs.iter().find(|d| d.get("Target").is_none() && d["Kind"] == kind).unwrap()["Drift"].clone();
    assert_eq!(all("missing-account"), 9.0, "3 people x 3 targets (subscriptions has no account of its own)");
    assert_eq!(all("leaver-still-active"), 0.0);
    assert!(queues.messages("memory://inbound").is_empty(), "report-only sends nothing");
}

#[tokio::test]
async fn correct_mode_sends_one_event_per_person_and_a_rerun_is_deduplicated() {
    let (app, _sink, queues) = app(&[("RECONCILE_MODE", "correct")], SAMPLE_SNAPSHOT).await;
    let out = reconcile::run(&app, Utc::now()).await.unwrap();
    assert_eq!(out["corrective"], 3);
    reconcile::run(&app, Utc::now()).await.unwrap();
    // The inbound queue is a standard queue: both runs' messages arrive, with the same event ids,
    // so hr-ingest's FIFO deduplication and the ledger drop the second (tests/e2e/reconcile.rs).
    let sent = queues.messages("memory://inbound");
    let ids: Vec<String> = sent
        .iter()
        .map(|(b, _)| serde_json::from_str::<Value>(b).unwrap()["eventId"].as_str().unwrap().into())
        .collect();
    assert_eq!(ids.len(), 6);
    assert_eq!(ids[..3], ids[3..], "deterministic ids");
    assert!(ids.iter().all(|i| i.starts_with("reconcile-20261201T000000Z-workday_")), "{ids:?}");
}

#[tokio::test]
async fn a_partial_snapshot_is_refused_with_a_metric_not_an_error() {
    // Ada is managed with access in the Identity Store; then HR exports an empty file.
    let cfg = cfg(&[("RECONCILE_MODE", "correct")]);
    let store = Arc::new(identity_sync::sim::demo_identity_store());
    let (state, mem) = identity_sync::memory(store.clone(), &cfg).unwrap();
    let ada =
        std::fs::read_to_string(format!("{}/../../events/01-joiner-ada.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    identity_sync::process_record(&state, &ada, &Default::default()).await;
    let (mut app, sink, queues) = app(&[("RECONCILE_MODE", "correct")], "").await;
    app.reconcilers = vec![identity_sync::reconciler(store.clone(), &cfg).unwrap()];
    app.ledger = mem.ledger.clone();
    let out = reconcile::run(&app, Utc::now()).await.unwrap();
    assert_eq!(out["status"], "refused");
    assert!(out["reason"].as_str().unwrap().contains("misses 1 of the 1"), "{out}");
    let docs = sink.documents();
    assert_eq!(docs.iter().filter(|d| d["SnapshotRefused"] == 1.0).count(), 1);
    assert!(queues.messages("memory://inbound").is_empty(), "nobody is disabled by a partial export");
    assert_eq!(store.user("ada.lovelace").unwrap().status, identity_sync::port::UserStatus::Enabled);
}

/// A snapshot that cannot be read (S3 AccessDenied, say): the run fails.
struct Unreadable;

#[async_trait::async_trait]
impl reconcile::SnapshotSource for Unreadable {
    async fn fetch(&self) -> Result<reconcile::Fetched, String> {
        Err("reading the snapshot: AccessDenied".into())
    }
}

#[tokio::test]
async fn the_way_back_from_the_dlq_is_the_next_completed_run() {
    use jml_core::redrive::{DlqMessage, RECONCILE_TRIGGER_SOURCE};
    let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
    let trigger = serde_json::json!({"source": RECONCILE_TRIGGER_SOURCE});
    let record = serde_json::json!({"version": "1.0", "requestContext": {"condition": "RetriesExhausted"},
                                    "requestPayload": trigger, "responsePayload": {"errorMessage": "AccessDenied"}});
    let dlq = Arc::new(jml_core::sim::SimDlqSource::default());
    // Two runs failed (one never reached the function: Scheduler's DLQ keeps its input; one
    // failed in it: Lambda's on-failure record), and a third failed after the next run started.
    for (i, (body, sent)) in
        [(&trigger, "2027-06-01T05:00:01Z"), (&record, "2027-06-02T05:00:09Z"), (&trigger, "2027-06-03T05:00:30Z")]
            .into_iter()
            .enumerate()
    {
        let (message_id, receipt_handle) = (format!("m{i}"), format!("r{i}"));
        dlq.push(DlqMessage {
            message_id,
            receipt_handle,
            body: body.to_string(),
            error_code: None,
            sent_at: Some(at(sent)),
        });
    }
    let (mut app, _, _) = app(&[], SAMPLE_SNAPSHOT).await;
    app.dlq = Some((dlq.clone(), "memory://reconcile-dlq".into()));
    let source = std::mem::replace(&mut app.source, Arc::new(Unreadable));
    assert!(reconcile::run(&app, at("2027-06-03T05:00:00Z")).await.is_err());
    assert_eq!(dlq.messages().len(), 3, "a failed run clears nothing");
    app.source = source;
    let out = reconcile::run(&app, at("2027-06-03T05:00:00Z")).await.unwrap();
    assert_eq!(out["status"], "drift");
    assert_eq!(out["failedRunsCleared"], 2, "{out}");
    let left: Vec<String> = dlq.messages().into_iter().map(|m| m.message_id).collect();
    assert_eq!(left, ["m2"], "the run that failed after this one started is not superseded by it");
    assert!(dlq.all_visible());
}

#[test]
fn settings_are_checked() {
    let aws = |extra: &[(&str, &str)]| {
        let mut all = vec![("JML_BACKEND", "aws"), ("LEDGER_TABLE", "t"), ("DLQ_URL", "https://sqs/q")];
        all.extend_from_slice(extra);
        let m: std::collections::HashMap<String, String> =
            all.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_config(&Config::from_lookup(move |k| m.get(k).cloned()).unwrap())
    };
    assert_eq!(aws(&[]).unwrap_err().var, "RECONCILE_TARGETS");
    let base = [("RECONCILE_TARGETS", "identity,iam"), ("SNAPSHOT_BUCKET", "b"), ("SNAPSHOT_KEY", "hr.jsonl")];
    let ok = aws(&base).unwrap();
    assert_eq!(
        (ok.targets, ok.correct, ok.max_missing),
        (vec![reconcile::TargetKind::Identity, reconcile::TargetKind::Iam], false, 0.10)
    );
    assert_eq!(aws(&[base[0], base[1]]).unwrap_err().var, "SNAPSHOT_KEY");
    assert_eq!(aws(&[base[0], base[1], base[2], ("RECONCILE_TARGETS", "okta")]).unwrap_err().var, "RECONCILE_TARGETS");
    assert_eq!(aws(&[base[0], base[1], base[2], ("RECONCILE_MODE", "correct")]).unwrap_err().var, "INBOUND_QUEUE_URL");
    assert_eq!(
        aws(&[base[0], base[1], base[2], ("RECONCILE_MAX_MISSING", "2")]).unwrap_err().var,
        "RECONCILE_MAX_MISSING"
    );
}

/// A snapshot whose time is only its upload's (no `as-of` metadata).
struct UploadTimeOnly;

#[async_trait::async_trait]
impl reconcile::SnapshotSource for UploadTimeOnly {
    async fn fetch(&self) -> Result<reconcile::Fetched, String> {
        Ok(reconcile::Fetched {
            text: SAMPLE_SNAPSHOT.to_string(),
            as_of: "2026-12-01T00:00:00Z".parse().unwrap(),
            exact: false,
        })
    }
}

#[tokio::test]
async fn without_the_export_time_correct_mode_reports_and_holds_every_correction() {
    let (mut app, sink, queues) = app(&[("RECONCILE_MODE", "correct")], SAMPLE_SNAPSHOT).await;
    app.source = Arc::new(UploadTimeOnly);
    let out = reconcile::run(&app, Utc::now()).await.unwrap();
    assert_eq!(out["status"], "drift", "the report is still made");
    assert_eq!(out["asOfExact"], false);
    assert_eq!(out["corrective"], 0);
    let held = out["correctionsHeld"].as_array().unwrap();
    assert_eq!(held.len(), 3, "{out}");
    assert!(held.iter().all(|h| h["reason"].as_str().unwrap().contains("as-of metadata")), "{out}");
    assert!(held.iter().any(|h| h["person"] == "workday#100234"), "{out}");
    assert!(queues.messages("memory://inbound").is_empty(), "nothing is sent");
    let docs = sink.documents();
    assert_eq!(docs.iter().find(|d| d.get("CorrectionsHeld").is_some()).unwrap()["CorrectionsHeld"], 3.0);
    // With the export's time, the same run sends them.
    let (app, _sink, queues) = app_exact().await;
    let out = reconcile::run(&app, Utc::now()).await.unwrap();
    assert_eq!((out["asOfExact"].clone(), out["corrective"].clone()), (Value::Bool(true), Value::from(3)));
    assert_eq!(queues.messages("memory://inbound").len(), 3);
}

async fn app_exact() -> (App, Arc<MemorySink>, Arc<SimQueues>) {
    app(&[("RECONCILE_MODE", "correct")], SAMPLE_SNAPSHOT).await
}

#[test]
fn the_snapshot_time_is_the_exports_never_the_future_nor_after_the_upload() {
    use reconcile::snapshot_time;
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let (now, uploaded) = (t("2026-12-02T06:00:00Z"), t("2026-12-02T04:00:00Z"));
    assert_eq!(snapshot_time(Some("2026-12-02T01:00:00Z"), Some(uploaded), now), Ok((t("2026-12-02T01:00:00Z"), true)));
    assert_eq!(snapshot_time(None, Some(uploaded), now), Ok((uploaded, false)), "the upload's time: not exact");
    assert!(snapshot_time(None, None, now).is_err());
    let err = snapshot_time(Some("yesterday"), Some(uploaded), now).unwrap_err();
    assert!(err.contains("not an RFC 3339 time"), "{err}");
    let err = snapshot_time(Some("2026-12-02T05:00:00Z"), Some(uploaded), now).unwrap_err();
    assert!(err.contains("later than its upload"), "{err}");
    let err = snapshot_time(Some("2026-12-03T00:00:00Z"), None, now).unwrap_err();
    assert!(err.contains("in the future"), "{err}");
    // Within the clock skew both ways.
    assert!(snapshot_time(Some("2026-12-02T04:04:00Z"), Some(uploaded), now).is_ok());
}

/// An alarm: its resource name, metric name and dimensions (name, value).
type Alarm = (String, String, Vec<(String, String)>);

/// The alarms of template.yaml on the `jml-sync` namespace (a resource's `MetricName` and its
/// inline `Dimensions: [{ Name: N, Value: V }, ...]`), read as text.
fn template_alarms() -> Vec<Alarm> {
    let text = std::fs::read_to_string(format!("{}/../../template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut out = Vec::new();
    let (mut name, mut ours, mut metric) = (String::new(), false, None::<String>);
    for l in text.lines() {
        if l.len() > 2 && l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':') {
            (name, ours, metric) = (l.trim().trim_end_matches(':').to_string(), false, None);
        } else if l.trim() == "Namespace: jml-sync" {
            ours = true;
        } else if let Some(m) = l.trim().strip_prefix("MetricName: ") {
            metric = Some(m.to_string());
        } else if let Some(d) = l.trim().strip_prefix("Dimensions: ")
            && ours
            && let Some(m) = metric.clone()
        {
            let dims = d
                .trim_matches(|c| c == '[' || c == ']')
                .split('}')
                .filter_map(|one| {
                    let one = one.trim_matches(|c: char| c == ',' || c == '{' || c.is_whitespace());
                    let (n, v) = one.split_once(',')?;
                    Some((
                        n.trim().strip_prefix("Name:")?.trim().to_string(),
                        v.trim().strip_prefix("Value:")?.trim().to_string(),
                    ))
                })
                .collect();
            out.push((name.clone(), m, dims));
        }
    }
    out
}

/// The dimensions of an EMF document, as (name, value).
fn dimensions(doc: &Value) -> Vec<(String, String)> {
    let names = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].as_array().cloned().unwrap_or_default();
    let mut out: Vec<(String, String)> = names
        .iter()
        .filter_map(|n| n.as_str())
        .map(|n| (n.to_string(), doc[n].as_str().unwrap_or_default().to_string()))
        .collect();
    out.sort();
    out
}

/// Invariant: every alarm on this function's metrics watches a series the function really
/// publishes: the same metric name with exactly the same dimension set (CloudWatch treats a
/// metric with one more or one fewer dimension as another series, and the alarm would never
/// fire). Found: SnapshotRefused was published per target while its alarm watched no dimension.
#[tokio::test]
async fn every_reconcile_alarm_watches_a_series_the_function_publishes() {
    let mut docs = Vec::new();
    // A drift run in correct mode (Drift, CorrectionsHeld) and a refused one (SnapshotRefused).
    let (mut drifting, sink, _q) = app(&[("RECONCILE_MODE", "correct")], SAMPLE_SNAPSHOT).await;
    drifting.source = Arc::new(UploadTimeOnly);
    reconcile::run(&drifting, Utc::now()).await.unwrap();
    docs.extend(sink.documents());
    let cfg = cfg(&[]);
    let store = Arc::new(identity_sync::sim::demo_identity_store());
    let (state, mem) = identity_sync::memory(store.clone(), &cfg).unwrap();
    let ada =
        std::fs::read_to_string(format!("{}/../../events/01-joiner-ada.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    identity_sync::process_record(&state, &ada, &Default::default()).await;
    let (mut refused, sink, _q) = app(&[], "").await;
    refused.reconcilers = vec![identity_sync::reconciler(store, &cfg).unwrap()];
    refused.ledger = mem.ledger.clone();
    assert_eq!(reconcile::run(&refused, Utc::now()).await.unwrap()["status"], "refused");
    docs.extend(sink.documents());

    let published: std::collections::BTreeSet<String> = docs
        .iter()
        .flat_map(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m["Name"].as_str().map(str::to_string))
        .collect();
    let alarms: Vec<_> = template_alarms().into_iter().filter(|(_, m, _)| published.contains(m)).collect();
    let names: Vec<&str> = alarms.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "LeaverStillActiveAlarm",
            "LeaverOverdueAlarm",
            "ListedAfterLeavingAlarm",
            "OverdueTransitionsAlarm",
            "SnapshotRefusedAlarm",
            "CorrectionsHeldAlarm"
        ]
    );
    for (name, metric, mut want) in alarms {
        want.sort();
        let series = docs.iter().any(|d| d.get(&metric).is_some() && dimensions(d) == want);
        assert!(series, "{name}: no {metric} document with dimensions {want:?}");
    }
}

// TargetKind: one enum for the deployment's targets and their parking codes.
use reconcile::targets::{TargetKind, all_parking_codes};

#[test]
fn every_name_reads_back_and_lists_are_checked() {
    for t in TargetKind::ALL {
        assert_eq!(TargetKind::parse(t.cli_name()), Some(t));
    }
    assert_eq!(TargetKind::parse_list("iam, identity,iam").unwrap(), vec![TargetKind::Iam, TargetKind::Identity]);
    let err = TargetKind::parse_list("identity,ldap").unwrap_err();
    assert!(err.contains("ldap") && err.contains("subscriptions"), "{err}");
}

#[test]
fn every_parking_code_is_unique_and_has_a_meaning_and_an_action() {
    let codes = all_parking_codes();
    let mut seen = std::collections::BTreeSet::new();
    for c in &codes {
        assert!(seen.insert(c.code), "{} is declared twice", c.code);
        assert!(!c.meaning().is_empty(), "{} has no meaning", c.code);
        assert!(!c.action().is_empty(), "{} has no `Do:` line", c.code);
    }
}

/// The README's runbook table of parking codes is exactly the one generated from the codes' doc
/// comments (`jml codes`): a new code without its runbook line, or a line for a code that no
/// longer exists, fails here.
#[test]
fn the_readme_runbook_table_is_the_generated_one() {
    let readme = include_str!("../../../README.md");
    let start = "<!-- parking-codes:start (generated by `jml codes`; do not edit by hand) -->\n";
    let end = "<!-- parking-codes:end -->";
    let table = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table)
        .expect("README.md has the parking-codes markers");
    let generated = jml_core::parking::runbook_table(&all_parking_codes());
    assert!(
        table == generated,
        "README.md's parking-code table is out of date: replace it with the output of `jml codes`\n{generated}"
    );
}
