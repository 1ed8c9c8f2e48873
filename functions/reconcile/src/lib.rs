//! # reconcile
//!
//! The scheduled Lambda (EventBridge Scheduler, daily by default) that reconciles every enabled
//! target against the HR snapshot in S3: the same reconcilers as `jml reconcile` (each target's
//! slice reads its state with list calls and diffs it), `Drift` EMF metrics per target and kind
//! (an alarm watches `leaver-still-active`), and, only when `RECONCILE_MODE=correct`, one
//! corrective HR event per drifted person sent to the inbound queue, through hr-ingest and the
//! target functions like any HR event (so the blast-radius breaker holds a wave of orphan
//! leavers). Report-only by default.
//!
//! The snapshot's time (`asOf`) is the export's: the object's `as-of` user metadata
//! (`x-amz-meta-as-of`, RFC 3339), which the exporter sets, so a real event newer than the export
//! always wins over a correction derived from it. Without it the report uses LastModified, but
//! no correction is sent: the upload comes after the export, and a correction dated at the
//! upload would undo an event HR sent in between (a leaver re-enabled by a rehire).
//!
//! A failed run lands in the function's DLQ (Scheduler's DLQ, or Lambda's on-failure record).
//! Its way back is the next completed run: it supersedes every run that failed before it
//! started, and removes their records (`failedRunsCleared` in its result), so the DLQ alarm
//! clears once reconciliation works again.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jml_core::config::{Backend, Config, ConfigError};
use jml_core::ingest::{PublishTo, Publisher};
use jml_core::ledger::Ledger;
use jml_core::metrics::MetricsSink;
use jml_core::reconcile::{Failure, Reconciler, parse_snapshot_dated, reconcile};
use jml_core::redrive::DlqSource;
use serde_json::{Value, json};

pub mod settings;
pub use settings::Settings;

/// S3 GetObject of the HR snapshot.
pub const GET_SNAPSHOT: jml_core::ports::Op = jml_core::ports::Op::read("s3", "GetObject");

/// What the reconcile function sends: the snapshot, the ledger's Scan, every target's list
/// calls, the corrections (SendMessageBatch to the inbound queue) and the clearing of its own
/// DLQ. Its role in template.yaml grants exactly these (`jml operations`).
pub fn operations() -> Vec<jml_core::ports::Op> {
    use jml_core::ports::op;
    let own = [
        GET_SNAPSHOT,
        op::LEDGER_SCAN,
        op::SEND_MESSAGE_BATCH,
        op::RECEIVE_MESSAGE,
        op::DELETE_MESSAGE,
        op::CHANGE_MESSAGE_VISIBILITY,
    ];
    [
        &own[..],
        identity_sync::port::RECONCILE_OPERATIONS,
        subscription_sync::port::RECONCILE_OPERATIONS,
        appstream_sync::port::RECONCILE_OPERATIONS,
        iam_sync::port::RECONCILE_OPERATIONS,
    ]
    .concat()
}

pub mod targets;
pub use targets::TargetKind;

/// The reconcilers of `targets` on AWS, each built by its slice from the configuration.
pub fn aws_reconcilers(
    sdk: &aws_config::SdkConfig,
    cfg: &Config,
    targets: &[TargetKind],
) -> Result<Vec<Arc<dyn Reconciler>>, ConfigError> {
    let mut out = Vec::new();
    for t in targets {
        out.push(match t {
            TargetKind::Identity => {
                let settings = identity_sync::Settings::from_config(cfg)?;
                identity_sync::reconciler(identity_sync::service(sdk, &settings), cfg)?
            }
            TargetKind::Subscriptions => {
                let settings = subscription_sync::Settings::from_config(cfg)?;
                subscription_sync::reconciler(subscription_sync::service(sdk, &settings), cfg)?
            }
            TargetKind::AppStream => appstream_sync::reconciler(Arc::new(appstream_sync::service(sdk)), cfg)?,
            TargetKind::Iam => iam_sync::reconciler(Arc::new(iam_sync::service(sdk)), cfg)?,
        });
    }
    Ok(out)
}

/// The function's whole start-up check: its own section and each reconciled target's.
pub fn check(cfg: &Config) -> Result<(), ConfigError> {
    let settings = Settings::from_config(cfg)?;
    for t in &settings.targets {
        t.check(cfg)?;
    }
    Ok(())
}

/// A fetched snapshot: its text, its time, and whether that time is the export's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub text: String,
    pub as_of: DateTime<Utc>,
    /// `false`: the time is the upload's (LastModified), later than the export: report only.
    pub exact: bool,
}

/// Where the snapshot comes from.
#[async_trait]
pub trait SnapshotSource: Send + Sync {
    async fn fetch(&self) -> Result<Fetched, String>;
}

/// How much a clock may be ahead of another (the exporter's, S3's, this function's).
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The snapshot's time from the object's `as-of` metadata and LastModified (pure): the
/// metadata when set (an RFC 3339 time, not after the upload nor after `now`, each give or
/// take [`CLOCK_SKEW`]), exact; else LastModified, not exact. `Err`: a metadata value that is no
/// time or lies in the future (a correction dated in the future would win over every real
/// event until then), or no time at all.
pub fn snapshot_time(
    as_of_metadata: Option<&str>,
    last_modified: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, bool), String> {
    let Some(v) = as_of_metadata else {
        return last_modified.map(|t| (t, false)).ok_or_else(|| "the snapshot has no LastModified".to_string());
    };
    let t = DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("the snapshot's as-of metadata ({v}) is not an RFC 3339 time"))?;
    if t > now + CLOCK_SKEW {
        return Err(format!("the snapshot's as-of metadata ({v}) is in the future"));
    }
    if let Some(m) = last_modified
        && t > m + CLOCK_SKEW
    {
        return Err(format!("the snapshot's as-of metadata ({v}) is later than its upload ({})", m.to_rfc3339()));
    }
    Ok((t, true))
}

/// S3 GetObject; the time is the `as-of` metadata, else LastModified (see [`snapshot_time`]).
#[derive(Debug)]
pub struct S3Snapshot {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub key: String,
}

#[async_trait]
impl SnapshotSource for S3Snapshot {
    async fn fetch(&self) -> Result<Fetched, String> {
        let out = self.client.get_object().bucket(&self.bucket).key(&self.key).send().await.map_err(|e| {
            format!("S3 GetObject s3://{}/{}: {}", self.bucket, self.key, aws_sdk_s3::error::DisplayErrorContext(&e))
        })?;
        let modified = out.last_modified().and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
        let meta = out.metadata().and_then(|m| m.get("as-of")).cloned();
        let (as_of, exact) = snapshot_time(meta.as_deref(), modified, Utc::now())?;
        let bytes = out.body.collect().await.map_err(|e| format!("S3 GetObject body: {e}"))?.into_bytes();
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| "the snapshot is not UTF-8".to_string())?;
        Ok(Fetched { text, as_of, exact })
    }
}

/// A snapshot held in memory (the memory backend's sample, tests), its time exact.
#[derive(Clone, Debug)]
pub struct FixedSnapshot(pub String, pub DateTime<Utc>);

#[async_trait]
impl SnapshotSource for FixedSnapshot {
    async fn fetch(&self) -> Result<Fetched, String> {
        Ok(Fetched { text: self.0.clone(), as_of: self.1, exact: true })
    }
}

/// What one scheduled run needs.
pub struct App {
    pub settings: Settings,
    pub source: Arc<dyn SnapshotSource>,
    pub reconcilers: Vec<Arc<dyn Reconciler>>,
    pub ledger: Arc<dyn Ledger>,
    /// The inbound queue's publisher (corrections); `None`: report only.
    pub publisher: Option<Arc<dyn Publisher>>,
    pub metrics: Arc<dyn MetricsSink>,
    /// The function's own DLQ (`DLQ_URL`), read back to clear the records of runs this one
    /// supersedes; `None`: nothing to clear.
    pub dlq: Option<(Arc<dyn DlqSource>, String)>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The memory backend's sample snapshot (`events/hr-snapshot.jsonl`).
pub const SAMPLE_SNAPSHOT: &str = include_str!("../../../events/hr-snapshot.jsonl");

/// The app the configuration asks for: AWS clients, or the demo simulators with the sample.
pub async fn from_config(cfg: &Config) -> Result<App, ConfigError> {
    let settings = Settings::from_config(cfg)?;
    let metrics: Arc<dyn MetricsSink> = Arc::new(jml_core::metrics::StdoutSink);
    match cfg.backend {
        Backend::Memory => {
            let ledger = Arc::new(jml_core::sim::SimLedger::default());
            let mut reconcilers = Vec::new();
            for t in &settings.targets {
                reconcilers.push(match t {
                    TargetKind::Identity => {
                        identity_sync::reconciler(Arc::new(identity_sync::sim::demo_identity_store()), cfg)?
                    }
                    TargetKind::Subscriptions => subscription_sync::reconciler(
                        Arc::new(subscription_sync::sim::SimUserSubscriptions::demo()),
                        cfg,
                    )?,
                    TargetKind::AppStream => {
                        appstream_sync::reconciler(Arc::new(appstream_sync::sim::SimAppStream::demo()), cfg)?
                    }
                    TargetKind::Iam => iam_sync::reconciler(Arc::new(iam_sync::sim::SimIam::demo()), cfg)?,
                });
            }
            let at =
                DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default();
            Ok(App {
                settings,
                source: Arc::new(FixedSnapshot(SAMPLE_SNAPSHOT.to_string(), at)),
                reconcilers,
                ledger,
                publisher: None,
                metrics,
                dlq: None,
            })
        }
        Backend::Aws => {
            let sdk = jml_aws::load_sdk_config().await;
            let reconcilers = aws_reconcilers(&sdk, cfg, &settings.targets)?;
            let source = Arc::new(S3Snapshot {
                client: aws_sdk_s3::Client::new(&sdk),
                bucket: settings.bucket.clone(),
                key: settings.key.clone(),
            });
            let ledger = Arc::new(jml_dynamodb::ledger(&sdk, cfg.ledger_table.as_deref()));
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let publisher: Option<Arc<dyn Publisher>> =
                settings.correct.then(|| Arc::new(jml_aws::SqsPublisher::new(sqs.clone())) as Arc<dyn Publisher>);
            let dlq =
                cfg.dlq_url.clone().map(|url| (Arc::new(jml_aws::SqsDlqSource::new(sqs)) as Arc<dyn DlqSource>, url));
            Ok(App { settings, source, reconcilers, ledger, publisher, metrics, dlq })
        }
    }
}

/// Sends corrective events as `jml publish` sends HR events (hr-ingest validates and fans them
/// out). `Err`: the send failed, or the queue rejected some.
pub async fn publish_corrections(events: &[Value], to: &PublishTo, publisher: &dyn Publisher) -> Result<(), String> {
    let bodies: Vec<(String, String)> =
        events.iter().map(|e| (e["eventId"].as_str().unwrap_or("-").to_string(), e.to_string())).collect();
    let r = jml_core::ingest::publish(&bodies, to, publisher, false, &|_| {})
        .await
        .map_err(|e| format!("publishing corrections: {e}"))?;
    if !r.rejected.is_empty() {
        return Err(format!("{} corrective event(s) rejected by the inbound queue", r.rejected.len()));
    }
    Ok(())
}

/// One run: fetch, reconcile, metrics, log (ExternalIds, kinds and details only: no names or
/// e-mails), and corrections when configured. A refused snapshot is a result (`refused`, and
/// the `SnapshotRefused` metric an alarm watches), not a failure: retrying cannot help. A read
/// that fails is an error (the scheduler's retry policy runs it again).
pub async fn run(app: &App, now: DateTime<Utc>) -> Result<Value, String> {
    let fetched = app.source.fetch().await?;
    let snapshot = parse_snapshot_dated(&fetched.text, fetched.as_of, &app.settings.dating);
    for b in &snapshot.bad {
        let errs: Vec<String> = b.errors.iter().map(ToString::to_string).collect();
        tracing::warn!(line = b.line, errors = %errs.join("; "), "snapshot line refused");
    }
    let outcome = match reconcile(&snapshot, &app.reconcilers, app.ledger.as_ref(), app.settings.max_missing).await {
        Ok(o) => o,
        Err(Failure::Refused { target, reason }) => {
            tracing::error!(%target, %reason, "snapshot refused as partial");
            // No dimension: the alarm watches the metric as one series (the targets are in the
            // log and the result).
            app.metrics.emit(jml_core::metrics::document(now, &[], &[("SnapshotRefused", "Count", 1.0)]));
            return Ok(json!({"status": "refused", "target": target, "reason": reason}));
        }
        Err(Failure::Read(e)) => return Err(e),
    };
    let report = &outcome.report;
    report.emit_metrics(app.metrics.as_ref(), now);
    for d in &report.drift {
        tracing::info!(person = %d.person, target = %d.target, kind = d.kind.as_str(), detail = %d.detail, "drift");
    }
    let mut corrective = 0;
    let mut held = Vec::new();
    if app.settings.correct {
        let mut corrections = report.corrective_events(&snapshot, &outcome.left);
        if !fetched.exact {
            // The export's time is unknown: hold every correction (see the crate's docs).
            let reason = "the snapshot has no as-of metadata (its export time): LastModified is the upload's, later than the export, and a correction dated then could undo an event sent in between";
            tracing::error!(reason, "corrections held");
            let events = std::mem::take(&mut corrections.events);
            corrections.held.extend(events.iter().map(|e| jml_core::reconcile::HeldCorrection {
                person: jml_core::contract::external_id_hint_value(e).unwrap_or_default(),
                reason: reason.into(),
            }));
        }
        corrective = corrections.events.len();
        for h in &corrections.held {
            tracing::warn!(person = %h.person, reason = %h.reason, "correction held");
            held.push(json!({"person": h.person, "reason": h.reason}));
        }
        app.metrics.emit(jml_core::metrics::document(
            now,
            &[],
            &[("CorrectionsHeld", "Count", corrections.held.len() as f64)],
        ));
        if let (Some(publisher), Some(url)) = (&app.publisher, &app.settings.inbound_queue_url) {
            publish_corrections(&corrections.events, &PublishTo::Inbound(url.clone()), publisher.as_ref()).await?;
        }
    }
    let mut out = report.to_json();
    out["correctionsHeld"] = json!(held);
    out["status"] = json!(if report.drift.is_empty() { "no-drift" } else { "drift" });
    out["corrective"] = json!(corrective);
    out["mode"] = json!(if app.settings.correct { "correct" } else { "report" });
    out["asOfExact"] = json!(fetched.exact);
    // This run completed: the runs that failed before it started are superseded. Failing to
    // clear them does not fail the run (the records stay, and the next run tries again).
    if let Some((source, url)) = &app.dlq {
        match jml_core::redrive::clear_failed_runs(source.as_ref(), url, now).await {
            Ok(n) => out["failedRunsCleared"] = json!(n),
            Err(e) => tracing::warn!(error = %e, "could not clear the failed runs' records from the DLQ"),
        }
    }
    Ok(out)
}
