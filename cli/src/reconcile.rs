//! `jml reconcile`: every drift between an HR snapshot and the targets, read with list calls;
//! a table or a JSON report; with `--apply`, one corrective HR event per drifted person.
//! Exit 0: no drift; 3: drift; 2: bad input or a refused (suspiciously small) snapshot.
//!
//! Built so far for the Identity Store target (issue 14 continues with subscriptions, AppStream,
//! IAM, the scheduled function and the benchmark).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use identity_sync::reconcile::{IdentityState, diff, managed_with_access, read};
use identity_sync::{IDENTITY_TARGET, State};
use jml_core::config::{Backend, Config};
use jml_core::ledger::{Ledger, PersonStatus};
use jml_core::reconcile::{Report, Snapshot, check_not_partial, parse_snapshot};
use serde_json::Value;

use crate::BackendArg;

pub struct Options {
    pub snapshot: PathBuf,
    pub backend: BackendArg,
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

pub async fn run(o: Options) -> ExitCode {
    let as_of: DateTime<Utc> = match o.as_of.as_deref() {
        None => Utc::now(),
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => return fail(format!("--as-of: {t} is not an RFC 3339 time")),
        },
    };
    if !(0.0..=1.0).contains(&o.max_missing) {
        return fail("--max-missing: a share from 0 to 1 (default 0.10)");
    }
    let text = match std::fs::read_to_string(&o.snapshot) {
        Ok(t) => t,
        Err(e) => return fail(format!("{}: {e}", o.snapshot.display())),
    };
    let snapshot = parse_snapshot(&text, as_of);
    let name = if o.backend == BackendArg::Memory { "memory" } else { "aws" };
    let cfg = match Config::from_lookup(|k| if k == "JML_BACKEND" { Some(name.into()) } else { std::env::var(k).ok() })
    {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let settings = match identity_sync::Settings::from_config(&cfg) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let (state, store, ledger): (State, Arc<dyn identity_sync::port::IdentityStore>, Arc<dyn Ledger>) =
        match cfg.backend {
            Backend::Memory => {
                let sim = Arc::new(identity_sync::sim::demo_identity_store());
                let (mut state, mem) = match identity_sync::memory(sim.clone(), &cfg) {
                    Ok(s) => s,
                    Err(e) => return fail(e),
                };
                state.metrics = Arc::new(jml_core::metrics::NullSink);
                if let Err(e) = replay(&state, &o.replay).await {
                    return fail(e);
                }
                (state, sim, mem.ledger)
            }
            Backend::Aws => {
                let sdk = jml_aws::load_sdk_config().await;
                let state = match identity_sync::from_sdk_config(&sdk, &cfg) {
                    Ok(s) => s,
                    Err(e) => return fail(e),
                };
                let ledger = Arc::new(jml_dynamodb::ledger(&sdk, cfg.ledger_table.as_deref()));
                (state, identity_sync::service(&sdk, &settings), ledger)
            }
        };
    let (report, left) = match reconcile(&snapshot, store.as_ref(), ledger.as_ref(), &settings, o.max_missing).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json()).unwrap_or_default());
    } else {
        report.print_table();
    }
    if o.apply {
        let events = report.corrective_events(&snapshot, &left);
        eprintln!("applying {} corrective event(s)", events.len());
        if let Err(e) = apply(&cfg, &state, &events).await {
            return fail(e);
        }
        if cfg.backend == Backend::Memory {
            // On the simulator the events are applied at once: show the state they leave.
            match reconcile(&snapshot, store.as_ref(), ledger.as_ref(), &settings, o.max_missing).await {
                Ok((after, _)) => {
                    println!("\nafter --apply: {} drift(s)", after.drift.len());
                    for d in &after.drift {
                        println!("  {} {} {}", d.person, d.kind.as_str(), d.detail);
                    }
                    return ExitCode::from(after.exit_code());
                }
                Err(e) => return fail(e),
            }
        }
    }
    ExitCode::from(report.exit_code())
}

/// The report, and the people whose ledger record says they left (a corrective event for them
/// is a rehire).
async fn reconcile(
    snapshot: &Snapshot,
    store: &dyn identity_sync::port::IdentityStore,
    ledger: &dyn Ledger,
    settings: &identity_sync::Settings,
    max_missing: f64,
) -> Result<(Report, BTreeSet<String>), String> {
    let state: IdentityState = read(store, &settings.managed_groups).await.map_err(|e| e.to_string())?;
    check_not_partial(&managed_with_access(&state), snapshot, max_missing)?;
    let mut left = BTreeSet::new();
    let mut people: BTreeSet<String> = snapshot.people.keys().cloned().collect();
    people.extend(
        state.users.iter().filter_map(|u| identity_sync::reconcile::person_of_marker(u.attributes.marker.as_deref()?)),
    );
    for p in &people {
        if ledger
            .get(p, IDENTITY_TARGET)
            .await
            .map_err(|e| e.to_string())?
            .is_some_and(|r| r.status != PersonStatus::Active)
        {
            left.insert(p.clone());
        }
    }
    let drift = diff(snapshot, &state, &left);
    let report = Report {
        as_of: snapshot.as_of,
        people: snapshot.people.len(),
        targets: vec![IDENTITY_TARGET.to_string()],
        drift,
        bad: snapshot.bad.clone(),
    };
    Ok((report, left))
}

async fn replay(state: &State, paths: &[PathBuf]) -> Result<(), String> {
    if paths.is_empty() {
        return Ok(());
    }
    for f in crate::event_files(paths)? {
        let body = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        identity_sync::process_record(state, &body, &identity_sync::RecordMeta::default()).await;
    }
    Ok(())
}

/// Memory: through the handler. AWS: to the inbound queue (INBOUND_QUEUE_URL) as `jml publish`.
async fn apply(cfg: &Config, state: &State, events: &[Value]) -> Result<(), String> {
    match cfg.backend {
        Backend::Memory => {
            for e in events {
                let r =
                    identity_sync::process_record(state, &e.to_string(), &identity_sync::RecordMeta::default()).await;
                let decision = r.outcome.map(|o| o.decision.as_str().to_string());
                let error = r.error.map(|(code, _)| code);
                println!("  {} -> {}", e["eventId"].as_str().unwrap_or("-"), decision.or(error).unwrap_or_default());
            }
            Ok(())
        }
        Backend::Aws => {
            let to = crate::publish::destination(cfg, false, true).ok_or("INBOUND_QUEUE_URL is required")?;
            let publisher = jml_aws::SqsPublisher::new(aws_sdk_sqs::Client::new(&jml_aws::load_sdk_config().await));
            let bodies: Vec<(String, String)> =
                events.iter().map(|e| (e["eventId"].as_str().unwrap_or("-").to_string(), e.to_string())).collect();
            let r =
                jml_core::ingest::publish(&bodies, &to, &publisher, false, &|_| {}).await.map_err(|e| e.to_string())?;
            if !r.rejected.is_empty() {
                return Err(format!("{} corrective event(s) rejected", r.rejected.len()));
            }
            Ok(())
        }
    }
}
