//! `jml`: run HR events through the real identity-sync handler code.
//!
//! - `jml replay events/` — on the embedded simulator (default): prints each event's decision and
//!   actions, then the final users and memberships.
//! - `jml replay --backend aws events/` — against real AWS: a dry run unless `--apply` is given.
//! - `jml bench` — Identity Store API calls per event type, measured on the simulator.

mod bench;
mod publish;
mod scale;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use identity_sync::{RecordMeta, RecordReport, process_record};
use jml_shared::batch::RecordResult;
use jml_shared::config::{Backend, Config};
use jml_shared::sim::SimIdentityStore;

#[derive(Parser, Debug)]
#[command(name = "jml", about = "jml-sync: HR joiner/mover/leaver events -> AWS identities")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// The embedded in-memory simulator (no AWS account needed).
    Memory,
    /// Real AWS: default credential chain, IDENTITY_STORE_ID, DLQ_URL, MANAGED_GROUP_PREFIX/MANAGED_GROUPS.
    Aws,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send HR event files (or every *.json in a directory, in name order) through the handler.
    Replay {
        /// Files or directories of HR events.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = BackendArg::Memory)]
        backend: BackendArg,
        /// Plan and print, write nothing (always on for --backend aws unless --apply).
        #[arg(long)]
        dry_run: bool,
        /// With --backend aws: really write.
        #[arg(long)]
        apply: bool,
        /// After the replay, print this person's audit trail (`issuer#id`, e.g. workday#100234).
        #[arg(long, value_name = "ISSUER#ID")]
        audit: Option<String>,
    },
    /// Print a person's audit trail from the DynamoDB ledger (LEDGER_TABLE, default credentials).
    Audit {
        /// The person's ExternalId key, `issuer#id`.
        person: String,
    },
    /// Print Identity Store API calls per event type, measured on the simulator.
    Bench,
    /// Bulk onboarding through the real handler on virtual time: the quota, latency and
    /// concurrent instances of a deployment; prints a table and checks the targets.
    BenchScale {
        #[arg(long, default_value_t = 10_000)]
        joiners: usize,
        /// Concurrent function instances (the template's MaximumConcurrency).
        #[arg(long, default_value_t = 2)]
        instances: usize,
        #[arg(long, default_value_t = 30)]
        latency_ms: u64,
    },
    /// Bulk load: validate HR events (a .jsonl file, one event a line, or directories of .json
    /// files) and send them to the inbound queue (INBOUND_QUEUE_URL), or with --to-targets fan
    /// them out to TARGET_QUEUES exactly as hr-ingest does; SendMessageBatch, 10 per call.
    Publish {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Fan out to TARGET_QUEUES (group and dedup ids as hr-ingest) instead of the inbound queue.
        #[arg(long)]
        to_targets: bool,
        #[arg(long, value_enum, default_value_t = BackendArg::Aws)]
        backend: BackendArg,
        /// Validate and count only.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the leavers the blast-radius breaker held (dry run), or release them with --apply.
    /// Uses the function's own configuration from the environment (real AWS).
    ReleaseHeld {
        #[arg(value_parser = ["identity-sync", "subscription-sync"])]
        function: String,
        /// Apply the held leavers (without it, only list them).
        #[arg(long)]
        apply: bool,
    },
    /// Run a function's start-up configuration check on this environment (the template test
    /// uses it to prove the environment the template sets is complete and valid).
    CheckConfig {
        #[arg(value_parser = ["identity-sync", "subscription-sync", "hr-ingest"])]
        function: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let cli = Cli::parse();
    if let Command::BenchScale { joiners, instances, latency_ms } = cli.command {
        // Virtual time: a current-thread runtime whose clock jumps when every task waits.
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
        return match rt.map(|rt| rt.block_on(scale::run(joiners, instances, latency_ms))) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("jml: {e}");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("jml: runtime: {e}");
                ExitCode::from(2)
            }
        };
    }
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run(cli.command)),
        Err(e) => {
            eprintln!("jml: runtime: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::Replay { paths, backend, dry_run, apply, audit } => {
            replay(&paths, backend, dry_run, apply, audit.as_deref()).await
        }
        Command::Audit { person } => audit(&person).await,
        Command::Bench => bench::run().await,
        Command::CheckConfig { function } => check_config(&function),
        Command::ReleaseHeld { function, apply } => release_held(&function, apply).await,
        Command::BenchScale { .. } => ExitCode::from(2),
        Command::Publish { paths, to_targets, backend, dry_run } => {
            publish::run(&paths, to_targets, backend == BackendArg::Aws, dry_run).await
        }
    }
}

/// HR event files under `paths`: files as given, directories' `*.json` (not schemas) by name.
fn event_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "json") && !is_schema(f))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

fn is_schema(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".schema.json"))
}

async fn release_held(function: &str, apply: bool) -> ExitCode {
    let config = match Config::from_env().and_then(|c| {
        if function == "identity-sync" { c.check_identity() } else { c.check_subscriptions() }.map(|()| c)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    let state = if function == "identity-sync" {
        identity_sync::from_config(&config).await
    } else {
        subscription_sync::from_config(&config).await
    };
    let held = match state.engine.held().await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(1);
        }
    };
    println!("{} leaver(s) held for {}:", held.len(), state.engine.target_name());
    for h in &held {
        println!("  {}  {}  {}  held at {}", h.occurred_at.to_rfc3339(), h.person, h.event_id, h.held_at.to_rfc3339());
    }
    if !apply {
        println!("dry run: nothing released (add --apply to apply them)");
        return ExitCode::SUCCESS;
    }
    match state.engine.release_held().await {
        Ok(results) => {
            let mut failed = 0;
            for (id, r) in results {
                match r {
                    Ok(o) => println!("  released {id}: {}", o.decision.as_str()),
                    Err(e) => {
                        failed += 1;
                        println!("  NOT released {id}: [{}] {e}", e.code());
                    }
                }
            }
            if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
        }
        Err(e) => {
            eprintln!("jml: {e}");
            ExitCode::from(1)
        }
    }
}

fn check_config(function: &str) -> ExitCode {
    let checked = Config::from_env().and_then(|c| match function {
        "identity-sync" => c.check_identity(),
        "subscription-sync" => c.check_subscriptions(),
        _ => c.check_ingest(),
    });
    match checked {
        Ok(()) => {
            println!("{function}: configuration OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{function}: {e}");
            ExitCode::from(1)
        }
    }
}

async fn audit(person: &str) -> ExitCode {
    let Some(table) = std::env::var("LEDGER_TABLE").ok().filter(|t| !t.is_empty()) else {
        eprintln!("jml: LEDGER_TABLE: is required (the DynamoDB person ledger)");
        return ExitCode::from(2);
    };
    let ledger = jml_shared::aws::dynamo_ledger(&table).await;
    match jml_shared::ledger::Ledger::audit_trail(&ledger, person).await {
        Ok(trail) => {
            print_audit(person, &trail);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jml: {e}");
            ExitCode::from(1)
        }
    }
}

fn print_audit(person: &str, trail: &[jml_shared::ledger::AuditEntry]) {
    println!("\naudit trail of {person} ({} entries, HR time order)", trail.len());
    println!(
        "{:<26} {:<16} {:<24} {:<8} {:<26} {:>7} {:>6}",
        "occurredAt", "target", "eventId", "type", "decision", "actions", "writes"
    );
    for a in trail {
        println!(
            "{:<26} {:<19} {:<26} {:<8} {:<26} {:>7} {:>6}",
            a.occurred_at.to_rfc3339(),
            a.target,
            a.event_id,
            a.event_type,
            a.decision,
            a.actions,
            a.writes
        );
    }
}

async fn replay(paths: &[PathBuf], backend: BackendArg, dry_run: bool, apply: bool, audit: Option<&str>) -> ExitCode {
    let files = match event_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = match backend {
        BackendArg::Memory => {
            Config::from_lookup(|k| if k == "JML_BACKEND" { Some("memory".into()) } else { std::env::var(k).ok() })
        }
        BackendArg::Aws => {
            Config::from_lookup(|k| if k == "JML_BACKEND" { Some("aws".into()) } else { std::env::var(k).ok() })
        }
    };
    let Ok(cfg) = config.as_mut() else {
        if let Err(e) = config {
            eprintln!("jml: {e}");
        }
        return ExitCode::from(2);
    };
    if let Err(e) = cfg.check_identity() {
        eprintln!("jml: {e}");
        return ExitCode::from(2);
    }
    cfg.dry_run = dry_run || (cfg.backend == Backend::Aws && !apply);
    // Every enabled target gets every event, as hr-ingest fans out; the targets share one ledger.
    let (targets, sims) = match cfg.backend {
        Backend::Memory => {
            let (identity, mem) = identity_sync::memory(Arc::new(jml_shared::sim::demo_identity_store()), cfg);
            let lmus = Arc::new(jml_shared::sim::SimUserSubscriptions::demo());
            let (subs, smem) = subscription_sync::memory_with_ledger(lmus, mem.ledger.clone(), cfg);
            (vec![identity, subs], Some((mem, smem)))
        }
        Backend::Aws => {
            let mut targets = vec![identity_sync::from_config(cfg).await];
            if cfg.directory_id.is_some() {
                targets.push(subscription_sync::from_config(cfg).await);
            }
            (targets, None)
        }
    };
    // The replay prints its own table; EMF documents are for CloudWatch.
    let targets: Vec<_> = targets
        .into_iter()
        .map(|mut t| {
            t.metrics = Arc::new(jml_shared::metrics::NullSink);
            t
        })
        .collect();
    if cfg.dry_run {
        println!(
            "DRY RUN: planning only, nothing is written{}",
            if cfg.backend == Backend::Aws { " (add --apply to write)" } else { "" }
        );
    }
    println!("{:<26} {:<19} {:<7} {:<16} {:<26} actions", "eventId", "target", "type", "externalId", "decision");
    let mut failures = 0;
    for f in &files {
        let body = match std::fs::read_to_string(f) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("jml: {}: {e}", f.display());
                failures += 1;
                continue;
            }
        };
        let meta = RecordMeta {
            message_id: Some(f.display().to_string()),
            message_group: jml_shared::contract::external_id_hint(&body),
        };
        for state in &targets {
            let report = process_record(state, &body, &meta).await;
            print_report(state.engine.target_name(), &report);
            if report.result != RecordResult::Done {
                failures += 1;
            }
        }
    }
    if let Some((mem, smem)) = sims {
        print_users(&mem.store);
        print_subscriptions(&smem.service);
        let parked: Vec<_> = mem.dlq.parked().into_iter().chain(smem.dlq.parked()).collect();
        if !parked.is_empty() {
            println!("\nparked on the dead-letter queues: {}", parked.len());
            for p in parked {
                println!("  {} [{}] {}", p.source_message_id.unwrap_or_default(), p.error_code, p.reason);
            }
        }
        let (calls, lm) = (mem.store.calls(), smem.service.calls());
        println!("\nIdentity Store calls: {} reads, {} writes", calls.reads(), calls.writes());
        println!("License Manager user subscriptions calls: {} reads, {} writes", lm.reads(), lm.writes());
    }
    if let Some(person) = audit
        && let Some(state) = targets.first()
    {
        match state.engine.audit_trail(person).await {
            Ok(trail) => print_audit(person, &trail),
            Err(e) => eprintln!("jml: audit trail: {e}"),
        }
    }
    if failures > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn print_report(target: &str, r: &RecordReport) {
    let kind = r.kind.map(|k| k.as_str()).unwrap_or("-");
    let id = r.event_id.as_deref().unwrap_or("-");
    let ext = r.external_id.as_deref().unwrap_or("-");
    match (&r.outcome, &r.error) {
        (Some(o), _) => {
            let decision =
                if o.dry_run { format!("{} (dry run)", o.decision.as_str()) } else { o.decision.as_str().to_string() };
            println!("{id:<26} {target:<19} {kind:<7} {ext:<16} {decision:<26} {}", o.actions.len());
            for a in &o.actions {
                println!("{:>72}- {a}", "");
            }
            for n in &o.notes {
                println!("{:>72}note: {n}", "");
            }
        }
        (None, Some((code, reason))) => {
            let what = if r.result == RecordResult::Parked { "PARKED" } else { "RETRY" };
            println!("{id:<26} {target:<19} {kind:<7} {ext:<16} {what} {code}: {reason}");
        }
        (None, None) => println!("{id:<26} {target:<19} {kind:<7} {ext:<16} -"),
    }
}

fn print_subscriptions(service: &jml_shared::sim::SimUserSubscriptions) {
    println!("\nfinal user-based subscriptions (simulator)");
    println!("{:<20} {:<54} instances", "AD user", "products");
    let holdings = service.all_holdings();
    if holdings.is_empty() {
        println!("(none)");
    }
    for (user, (products, instances)) in holdings {
        let or_dash = |v: Vec<String>| if v.is_empty() { "-".to_string() } else { v.join(", ") };
        println!("{user:<20} {:<54} {}", or_dash(products), or_dash(instances));
    }
}

fn print_users(store: &SimIdentityStore) {
    println!("\nfinal users (simulator)");
    println!("{:<38} {:<16} {:<9} {:<36} groups", "userId", "userName", "status", "managed marker");
    for u in store.users() {
        let status = match u.status {
            jml_shared::ports::UserStatus::Enabled => "ENABLED",
            jml_shared::ports::UserStatus::Disabled => "DISABLED",
        };
        let marker = u.marker.as_deref().unwrap_or("(unmanaged)");
        let groups = if u.groups.is_empty() { "-".to_string() } else { u.groups.join(", ") };
        println!("{:<38} {:<16} {:<9} {:<36} {groups}", u.user_id, u.user_name, status, marker);
    }
}
