//! `jml reconcile`: every drift between an HR snapshot and the targets, read with list calls;
//! a table or a JSON report; with `--apply`, one corrective HR event per drifted person.
//! Exit 0: no drift; 3: drift; 2: bad input or a refused (suspiciously small) snapshot.
//!
//! The reconcilers are the targets' own (each slice reads and diffs); the scheduled `reconcile`
//! function runs the same ones.

use ::reconcile::TargetKind;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use jml_core::config::{Backend, Config};
use jml_core::lambda::{RecordMeta, State, process_record};
use jml_core::ledger::Ledger;
use jml_core::reconcile::{Failure, Outcome, Reconciler, Snapshot, parse_snapshot_dated, reconcile};
use serde_json::Value;

use crate::BackendArg;
use crate::replay::Sims;

pub struct Options {
    pub snapshot: PathBuf,
    pub backend: BackendArg,
    pub targets: Option<Vec<TargetKind>>,
    pub as_of: Option<String>,
    pub json: bool,
    pub apply: bool,
    pub max_missing: f64,
    /// Memory backend: replay these events first (the demo's state).
    pub replay: Vec<PathBuf>,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("jml: {msg}");
    ExitCode::from(2)
}

/// The reconcilers of the simulators behind a memory replay.
pub(crate) fn memory_reconcilers(
    sims: &Sims,
    cfg: &Config,
    targets: &[TargetKind],
) -> Result<Vec<Arc<dyn Reconciler>>, jml_core::config::ConfigError> {
    let mut out = Vec::new();
    for t in targets {
        out.push(match t {
            TargetKind::Identity => identity_sync::reconciler(sims.identity.store.clone(), cfg)?,
            TargetKind::Subscriptions => subscription_sync::reconciler(sims.subscriptions.service.clone(), cfg)?,
            TargetKind::AppStream => appstream_sync::reconciler(sims.appstream.service.clone(), cfg)?,
            TargetKind::Iam => iam_sync::reconciler(sims.iam.service.clone(), cfg)?,
        });
    }
    Ok(out)
}

pub async fn run(o: Options) -> ExitCode {
    // A correction is dated at the snapshot's time; "now" is later than any export, and a
    // correction dated now would undo a real event HR sent after the export.
    if o.apply && o.backend != BackendArg::Memory && o.as_of.is_none() {
        return fail("--apply on AWS needs --as-of: when HR exported the snapshot (RFC 3339)");
    }
    let as_of: DateTime<Utc> = match o.as_of.as_deref() {
        None => Utc::now(),
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => return fail(format!("--as-of: {t} is not an RFC 3339 time")),
        },
    };
    // On AWS a correction dated in the future would win over every real event until then.
    if o.backend != BackendArg::Memory && as_of > Utc::now() + ::reconcile::CLOCK_SKEW {
        return fail(format!(
            "--as-of: {} is in the future; the snapshot's time is when HR exported it",
            as_of.to_rfc3339()
        ));
    }
    if !(0.0..=1.0).contains(&o.max_missing) {
        return fail("--max-missing: a share from 0 to 1 (default 0.10)");
    }
    let text = match std::fs::read_to_string(&o.snapshot) {
        Ok(t) => t,
        Err(e) => return fail(format!("{}: {e}", o.snapshot.display())),
    };
    let name = if o.backend == BackendArg::Memory { "memory" } else { "aws" };
    let cfg = match Config::from_lookup(|k| if k == "JML_BACKEND" { Some(name.into()) } else { std::env::var(k).ok() })
    {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let snapshot = parse_snapshot_dated(&text, as_of, &(&cfg.dating).into());
    let enabled = match crate::replay::wanted(o.targets.as_deref(), &cfg) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if let Err(e) = crate::replay::checks(&cfg, &enabled) {
        return fail(e);
    }
    let (states, sims) = match crate::replay::build(&cfg, &enabled).await {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let states: Vec<State> = states
        .into_iter()
        .map(|mut s| {
            s.metrics = Arc::new(jml_core::metrics::NullSink);
            s
        })
        .collect();
    let (reconcilers, ledger): (Vec<Arc<dyn Reconciler>>, Arc<dyn Ledger>) = match &sims {
        Some(sims) => {
            if let Err(e) = replay(&states, &o.replay).await {
                return fail(e);
            }
            match memory_reconcilers(sims, &cfg, &enabled) {
                Ok(r) => (r, sims.ledger.clone()),
                Err(e) => return fail(e),
            }
        }
        None => {
            let sdk = jml_aws::load_sdk_config().await;
            match ::reconcile::aws_reconcilers(&sdk, &cfg, &enabled) {
                Ok(r) => (r, Arc::new(jml_dynamodb::ledger(&sdk, cfg.ledger_table.as_deref()))),
                Err(e) => return fail(e),
            }
        }
    };
    let outcome = match run_once(&snapshot, &reconcilers, ledger.as_ref(), o.max_missing).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = &outcome.report;
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json()).unwrap_or_default());
    } else {
        report.print_table();
    }
    if o.apply {
        let corrections = report.corrective_events(&snapshot, &outcome.left);
        for h in &corrections.held {
            eprintln!("held: {} ({})", h.person, h.reason);
        }
        eprintln!("applying {} corrective event(s), {} held", corrections.events.len(), corrections.held.len());
        if let Err(e) = apply(&cfg, &states, &corrections.events).await {
            return fail(e);
        }
        if cfg.backend == Backend::Memory {
            // On the simulators the events are applied at once: show the state they leave.
            let after = match run_once(&snapshot, &reconcilers, ledger.as_ref(), o.max_missing).await {
                Ok(r) => r.report,
                Err(code) => return code,
            };
            println!("\nafter --apply: {} drift(s)", after.drift.len());
            for d in &after.drift {
                println!("  {} {} {} {}", d.person, d.target, d.kind.as_str(), d.detail);
            }
            return ExitCode::from(after.exit_code());
        }
    }
    ExitCode::from(report.exit_code())
}

async fn run_once(
    snapshot: &Snapshot,
    reconcilers: &[Arc<dyn Reconciler>],
    ledger: &dyn Ledger,
    max_missing: f64,
) -> Result<Outcome, ExitCode> {
    match reconcile(snapshot, reconcilers, ledger, max_missing).await {
        Ok(o) => Ok(o),
        Err(e @ Failure::Refused { .. }) => Err(fail(format!("snapshot refused: {e}"))),
        Err(Failure::Read(e)) => Err(fail(e)),
    }
}

/// Every event through every target, as `jml replay` does (quietly).
async fn replay(states: &[State], paths: &[PathBuf]) -> Result<(), String> {
    if paths.is_empty() {
        return Ok(());
    }
    for f in crate::event_files(paths)? {
        let body = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        for state in states {
            process_record(state, &body, &RecordMeta::default()).await;
        }
    }
    Ok(())
}

/// Memory: through every target's handler (as hr-ingest fans out). AWS: to the inbound queue
/// (INBOUND_QUEUE_URL) as `jml publish` does.
async fn apply(cfg: &Config, states: &[State], events: &[Value]) -> Result<(), String> {
    match cfg.backend {
        Backend::Memory => {
            for e in events {
                let mut line = Vec::new();
                for state in states {
                    let r = process_record(state, &e.to_string(), &RecordMeta::default()).await;
                    let decision = r.outcome.map(|o| o.decision.as_str().to_string());
                    let error = r.error.map(|(code, _)| code);
                    line.push(format!("{} {}", state.engine.target_name(), decision.or(error).unwrap_or_default()));
                }
                println!("  {} -> {}", e["eventId"].as_str().unwrap_or("-"), line.join(", "));
            }
            Ok(())
        }
        Backend::Aws => {
            let to = crate::publish::destination(cfg, false, true).ok_or("INBOUND_QUEUE_URL is required")?;
            let publisher = jml_aws::SqsPublisher::new(aws_sdk_sqs::Client::new(&jml_aws::load_sdk_config().await));
            ::reconcile::publish_corrections(events, &to, &publisher).await
        }
    }
}
