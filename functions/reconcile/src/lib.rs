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
//! The snapshot's time (`asOf`) is the S3 object's LastModified: the HR export's time, so a real
//! event newer than the export always wins over a correction derived from it.
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
use jml_core::reconcile::{Failure, Reconciler, parse_snapshot, reconcile};
use jml_core::redrive::DlqSource;
use serde_json::{Value, json};

pub mod settings;
pub use settings::Settings;

/// Every target, by its `--targets` / `RECONCILE_TARGETS` name.
pub const ALL_TARGETS: [&str; 4] = ["identity", "subscriptions", "appstream", "iam"];

/// A comma-separated list of names from [`ALL_TARGETS`], in its order (`--targets` and
/// `RECONCILE_TARGETS`); `Err`: the first unknown name.
pub fn parse_targets(list: &str) -> Result<Vec<&'static str>, String> {
    let mut out = Vec::new();
    for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match ALL_TARGETS.iter().find(|a| **a == t) {
            Some(a) => out.push(*a),
            None => return Err(format!("unknown target {t} (identity, subscriptions, appstream, iam)")),
        }
    }
    Ok(out)
}

/// The reconcilers of `targets` on AWS, each built by its slice from the configuration.
pub fn aws_reconcilers(
    sdk: &aws_config::SdkConfig,
    cfg: &Config,
    targets: &[&str],
) -> Result<Vec<Arc<dyn Reconciler>>, ConfigError> {
    let mut out = Vec::new();
    for t in targets {
        out.push(match *t {
            "identity" => {
                let settings = identity_sync::Settings::from_config(cfg)?;
                identity_sync::reconciler(identity_sync::service(sdk, &settings), cfg)?
            }
            "subscriptions" => {
                let settings = subscription_sync::Settings::from_config(cfg)?;
                subscription_sync::reconciler(subscription_sync::service(sdk, &settings), cfg)?
            }
            "appstream" => appstream_sync::reconciler(Arc::new(appstream_sync::service(sdk)), cfg)?,
            _ => iam_sync::reconciler(Arc::new(iam_sync::service(sdk)), cfg)?,
        });
    }
    Ok(out)
}

/// The function's whole start-up check: its own section and each reconciled target's.
pub fn check(cfg: &Config) -> Result<(), ConfigError> {
    let settings = Settings::from_config(cfg)?;
    for t in &settings.targets {
        match *t {
            "identity" => identity_sync::Settings::from_config(cfg).map(drop)?,
            "subscriptions" => subscription_sync::Settings::from_config(cfg).map(drop)?,
            "appstream" => appstream_sync::Settings::from_config(cfg).map(drop)?,
            _ => iam_sync::Settings::from_config(cfg).map(drop)?,
        }
    }
    Ok(())
}

/// Where the snapshot comes from: its text and its time.
#[async_trait]
pub trait SnapshotSource: Send + Sync {
    async fn fetch(&self) -> Result<(String, DateTime<Utc>), String>;
}

/// S3 GetObject; the time is the object's LastModified.
#[derive(Debug)]
pub struct S3Snapshot {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub key: String,
}

#[async_trait]
impl SnapshotSource for S3Snapshot {
    async fn fetch(&self) -> Result<(String, DateTime<Utc>), String> {
        let out = self.client.get_object().bucket(&self.bucket).key(&self.key).send().await.map_err(|e| {
            format!("S3 GetObject s3://{}/{}: {}", self.bucket, self.key, aws_sdk_s3::error::DisplayErrorContext(&e))
        })?;
        let at = out
            .last_modified()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
            .unwrap_or_else(Utc::now);
        let bytes = out.body.collect().await.map_err(|e| format!("S3 GetObject body: {e}"))?.into_bytes();
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| "the snapshot is not UTF-8".to_string())?;
        Ok((text, at))
    }
}

/// A snapshot held in memory (the memory backend's sample, tests).
#[derive(Clone, Debug)]
pub struct FixedSnapshot(pub String, pub DateTime<Utc>);

#[async_trait]
impl SnapshotSource for FixedSnapshot {
    async fn fetch(&self) -> Result<(String, DateTime<Utc>), String> {
        Ok((self.0.clone(), self.1))
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
                reconcilers.push(match *t {
                    "identity" => identity_sync::reconciler(Arc::new(identity_sync::sim::demo_identity_store()), cfg)?,
                    "subscriptions" => subscription_sync::reconciler(
                        Arc::new(subscription_sync::sim::SimUserSubscriptions::demo()),
                        cfg,
                    )?,
                    "appstream" => {
                        appstream_sync::reconciler(Arc::new(appstream_sync::sim::SimAppStream::demo()), cfg)?
                    }
                    _ => iam_sync::reconciler(Arc::new(iam_sync::sim::SimIam::demo()), cfg)?,
                });
            }
            let at =
                DateTime::parse_from_rfc3339("2027-06-01T00:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default();
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
    let (text, as_of) = app.source.fetch().await?;
    let snapshot = parse_snapshot(&text, as_of);
    for b in &snapshot.bad {
        let errs: Vec<String> = b.errors.iter().map(ToString::to_string).collect();
        tracing::warn!(line = b.line, errors = %errs.join("; "), "snapshot line refused");
    }
    let outcome = match reconcile(&snapshot, &app.reconcilers, app.ledger.as_ref(), app.settings.max_missing).await {
        Ok(o) => o,
        Err(Failure::Refused { target, reason }) => {
            tracing::error!(%target, %reason, "snapshot refused as partial");
            app.metrics.emit(jml_core::metrics::document(
                now,
                &[("Target", &target)],
                &[("SnapshotRefused", "Count", 1.0)],
            ));
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
    if app.settings.correct {
        let events = report.corrective_events(&snapshot, &outcome.left);
        corrective = events.len();
        if let (Some(publisher), Some(url)) = (&app.publisher, &app.settings.inbound_queue_url) {
            publish_corrections(&events, &PublishTo::Inbound(url.clone()), publisher.as_ref()).await?;
        }
    }
    let mut out = report.to_json();
    out["status"] = json!(if report.drift.is_empty() { "no-drift" } else { "drift" });
    out["corrective"] = json!(corrective);
    out["mode"] = json!(if app.settings.correct { "correct" } else { "report" });
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
