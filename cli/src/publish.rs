//! `jml publish`: the bulk-onboarding path. Validates every event, sends the valid ones in
//! batches of 10, shows progress, and ends with the count sent and every rejection with its reason.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use ::reconcile::TargetKind;
use indicatif::{ProgressBar, ProgressStyle};
use jml_core::config::Config;
use jml_core::ingest::{PublishTo, Publisher, publish};

/// (source, body) of every event: each line of a .jsonl file, each .json file of a directory.
pub fn read_events(paths: &[PathBuf]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for p in paths {
        let files: Vec<PathBuf> = if p.is_dir() {
            let mut f: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "json" || x == "jsonl"))
                .filter(|f| !f.to_string_lossy().ends_with(".schema.json"))
                .collect();
            f.sort();
            f
        } else {
            vec![p.clone()]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            if f.extension().is_some_and(|x| x == "jsonl") {
                for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    out.push((format!("{}:{}", f.display(), i + 1), line.to_string()));
                }
            } else {
                out.push((f.display().to_string(), text));
            }
        }
    }
    Ok(out)
}

/// `jml redrive`: the way back from a dead-letter queue (real AWS, default credentials).
pub async fn redrive(dlq_url: &str, to_targets: bool, apply: bool, max: usize) -> ExitCode {
    let config =
        match Config::from_lookup(|k| if k == "JML_BACKEND" { Some("aws".into()) } else { std::env::var(k).ok() }) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("jml: {e}");
                return ExitCode::from(2);
            }
        };
    let Some(to) = destination(&config, to_targets, true) else { return ExitCode::from(2) };
    let sqs = aws_sdk_sqs::Client::new(&jml_aws::load_sdk_config().await);
    let (source, publisher) = (jml_aws::SqsDlqSource::new(sqs.clone()), jml_aws::SqsPublisher::new(sqs));
    // A parked firing (the schedules' DLQ) goes back to its own target's queue.
    let firings: jml_core::redrive::FiringQueues = config
        .target_queues
        .iter()
        .filter_map(|q| TargetKind::parse(&q.name).map(|t| (t.ledger().to_string(), q.queue_url.clone())))
        .collect();
    let lines =
        match jml_core::redrive::redrive_with_firings(&source, dlq_url, &to, &firings, &publisher, apply, max).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("jml: {e}");
                return ExitCode::from(1);
            }
        };
    println!("| message | envelope | event | person | parked as | action");
    println!("|---------|----------|-------|--------|-----------|-------");
    for l in &lines {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        println!(
            "| {} | {} | {} | {} | {} | {}",
            l.message_id,
            l.envelope,
            dash(&l.event_id),
            dash(&l.external_id),
            dash(&l.error_code),
            l.action
        );
    }
    let kept = lines.iter().filter(|l| l.action.starts_with("kept")).count();
    let verb =
        if apply { "re-submitted" } else { "to re-submit (dry run: nothing sent or deleted; --apply to redrive)" };
    println!("{} {verb}, {kept} kept in the DLQ", lines.len() - kept);
    if kept == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Where events go: the target queues, or the inbound queue (INBOUND_QUEUE_URL).
pub(crate) fn destination(config: &Config, to_targets: bool, aws: bool) -> Option<PublishTo> {
    if to_targets {
        let targets = if aws { config.target_queues.clone() } else { hr_ingest::memory_targets() };
        if targets.is_empty() {
            eprintln!("jml: TARGET_QUEUES: is required with --to-targets (name=fifo-queue-url,...)");
            return None;
        }
        return Some(PublishTo::Targets(targets));
    }
    match std::env::var("INBOUND_QUEUE_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => Some(PublishTo::Inbound(url)),
        None if !aws => Some(PublishTo::Inbound("memory://jml-inbound".into())),
        None => {
            eprintln!("jml: INBOUND_QUEUE_URL: is required (the stack's InboundQueueUrl output), or use --to-targets");
            None
        }
    }
}

pub async fn run(paths: &[PathBuf], to_targets: bool, aws: bool, dry_run: bool) -> ExitCode {
    let events = match read_events(paths) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    let backend = if aws { "aws" } else { "memory" };
    let config =
        match Config::from_lookup(
            move |k| if k == "JML_BACKEND" { Some(backend.into()) } else { std::env::var(k).ok() },
        ) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("jml: {e}");
                return ExitCode::from(2);
            }
        };
    let Some(to) = destination(&config, to_targets, aws) else { return ExitCode::from(2) };
    let publisher: Arc<dyn Publisher> = if aws {
        Arc::new(jml_aws::SqsPublisher::new(aws_sdk_sqs::Client::new(&jml_aws::load_sdk_config().await)))
    } else {
        Arc::new(jml_core::sim::SimQueues::default())
    };
    let bar = ProgressBar::new(events.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = publish(&events, &to, publisher.as_ref(), dry_run, &|n| bar.inc(n as u64)).await;
    bar.finish_and_clear();
    match report {
        Ok(r) => {
            let verb = if dry_run { "valid (dry run, nothing sent)" } else { "sent" };
            println!("{} {verb}, {} rejected", r.sent, r.rejected.len());
            for (source, why) in &r.rejected {
                println!("  {source}: {why}");
            }
            if r.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("jml: {e}");
            ExitCode::from(1)
        }
    }
}
