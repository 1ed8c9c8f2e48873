//! `jml`: run HR events through the real handler code of every target.
//!
//! - `jml replay events/` — on the embedded simulators (default): every event through all four
//!   targets (Identity Store, user subscriptions, AppStream, IAM) on one shared ledger; prints
//!   each decision and its actions, checks each leaver left no access, prints the final state.
//! - `jml replay --backend aws events/` — against real AWS: a dry run unless `--apply` is given.
//! - `jml bench` — Identity Store API calls per event type, measured on the simulator.

mod bench;
mod bench_reconcile;
mod doctor;
mod publish;
mod reconcile;
mod replay;
mod roles;
mod scale;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use jml_core::config::Config;

use ::reconcile::TargetKind;

/// The target functions' names (`jml release-held <function>`).
fn functions() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(TargetKind::ALL.map(TargetKind::function))
}

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
        /// After the replay, print this person's audit trail (`issuer#id`, e.g. workday#100234;
        /// a `#` or `%` inside the issuer or the id as `%23`, `%25`).
        #[arg(long, value_name = "ISSUER#ID")]
        audit: Option<String>,
        /// Comma-separated targets: identity,subscriptions,appstream,iam. Default: all four on
        /// the simulator; on AWS identity, plus subscriptions with DIRECTORY_ID and iam with
        /// IAM_PERMISSIONS_BOUNDARY (appstream only when named).
        #[arg(long, value_enum, value_delimiter = ',')]
        targets: Option<Vec<TargetKind>>,
        /// The clock's time for the whole replay (RFC 3339 with offset), e.g. to replay events
        /// dated ahead of today's clock: an event more than 5 minutes ahead of it is parked
        /// (OccurredInFuture). Default: the real clock.
        #[arg(long, value_name = "RFC3339", value_parser = jml_core::clock::parse_now)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        /// After the files: advance the clock to this time (RFC 3339), firing every dated change
        /// that comes due on the way, in the order they take effect (simulator only; the clock
        /// never moves back). The final tables show the state at this time.
        #[arg(long, value_name = "RFC3339", value_parser = jml_core::clock::parse_now)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// After the replay, print this person's dated timeline (`issuer#id`): every change with
        /// its effective time (UTC and the person's local time), applied, pending or rescinded.
        #[arg(long, value_name = "ISSUER#ID")]
        timeline: Option<String>,
    },
    /// Print a person's audit trail from the DynamoDB ledger (LEDGER_TABLE, default credentials).
    Audit {
        /// The person's ExternalId key, `issuer#id` (a `#` or `%` inside a part as `%23`, `%25`).
        person: String,
    },
    /// Every target's API and ledger calls per event type, measured on the simulators through
    /// the real handler code; prints the tables and checks the targets (exit 1 when missed).
    Bench,
    /// Reconciling every target at scale on the simulators (virtual time, 20 requests/s, 30 ms
    /// latency): requests vs the minimum list requests, time vs requests / 20 per second, peak
    /// RSS, next to per-person reads. Exit 1 when a target is missed.
    BenchReconcile {
        #[arg(long, default_value_t = 10_000)]
        people: usize,
        #[arg(long, default_value_t = 30)]
        groups: usize,
        #[arg(long, default_value_t = 30)]
        latency_ms: u64,
    },
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
    /// The way back from a dead-letter queue: unwrap every parked message to the original HR
    /// event (whatever envelope: the event, an EventBridge event, a Lambda on-failure record),
    /// list them (dry run, the default), or with --apply re-submit each to the inbound queue
    /// (INBOUND_QUEUE_URL) or --to-targets (TARGET_QUEUES) and delete it from the DLQ. A parked
    /// scheduled firing (the schedules' DLQ, ScheduleDeadLetterQueue) goes back to its own
    /// target's queue (TARGET_QUEUES), in the person's message group.
    Redrive {
        /// The dead-letter queue URL.
        dlq_url: String,
        /// Re-submit to TARGET_QUEUES (group and dedup ids as hr-ingest) instead of the inbound queue.
        #[arg(long)]
        to_targets: bool,
        /// Re-submit and delete (without it: list what would be re-submitted; nothing changes).
        #[arg(long)]
        apply: bool,
        /// At most this many messages.
        #[arg(long, default_value_t = 10_000)]
        max: usize,
    },
    /// List the leavers the blast-radius breaker held (dry run), or release them with --apply.
    /// Uses the function's own configuration from the environment (real AWS).
    ReleaseHeld {
        #[arg(value_parser = functions())]
        function: String,
        /// Apply the held leavers (without it, only list them).
        #[arg(long)]
        apply: bool,
    },
    /// Preflight on your own account before `sam deploy`, with the configuration the functions
    /// use (from the environment): credentials and region, the ledger table's key schema, the
    /// queues, and per target the identity store and managed groups, the directory's instances,
    /// the AppStream stacks the rules name, the IAM boundary and mapped groups. Read-only unless
    /// --canary. Exit 1 on any failed check.
    Doctor {
        #[arg(long, value_enum, default_value_t = BackendArg::Aws)]
        backend: BackendArg,
        /// Comma-separated targets: identity,subscriptions,appstream,iam (default as replay).
        #[arg(long, value_enum, value_delimiter = ',')]
        targets: Option<Vec<TargetKind>>,
        /// Also send every write path once on temporary identities named jml-doctor-canary-*,
        /// read each result back, clean up (even on failure) and print each request sent.
        #[arg(long)]
        canary: bool,
        /// With --canary: the subscriptions canary too (it starts and stops a billed product).
        #[arg(long)]
        subscriptions: bool,
        /// The existing test Active Directory user the subscriptions canary uses.
        #[arg(long, value_name = "NAME")]
        ad_user: Option<String>,
        /// The deployed functions' roles, `function=arn,...` (default: JML_ROLE_ARNS; the stack's
        /// RoleArns output): each is asked with the IAM policy simulator whether it allows every
        /// action its function sends (SimulatePrincipalPolicy, read-only).
        #[arg(long, value_name = "FUNCTION=ARN,...")]
        role_arns: Option<String>,
    },
    /// The IAM actions each function's calls need, as JSON (the template test checks every role
    /// grants exactly these).
    Operations,
    /// Every parking code (the DLQ message's ErrorCode) with what it means and what to do, as the
    /// README's runbook table (generated from the codes' doc comments; the test command checks
    /// the README holds exactly this table).
    Codes,
    /// Reconcile against an HR snapshot (JSON Lines, one employed person a line, a v1 event
    /// without eventId/type/occurredAt): every drift, read with list calls; exit 0 no drift, 3
    /// drift, 2 bad input or a refused snapshot.
    Reconcile {
        snapshot: PathBuf,
        #[arg(long, value_enum, default_value_t = BackendArg::Aws)]
        backend: BackendArg,
        /// Comma-separated targets (identity, subscriptions, appstream, iam). Default: as replay.
        #[arg(long, value_enum, value_delimiter = ',')]
        targets: Option<Vec<TargetKind>>,
        /// The snapshot's time, when HR exported it (RFC 3339): corrective events carry it as
        /// occurredAt. Default: now (report only: --apply on AWS requires it; never in the
        /// future on AWS).
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, value_parser = ["table", "json"], default_value = "table")]
        format: String,
        /// Emit one corrective HR event per drifted person (memory: applied at once; AWS: to
        /// INBOUND_QUEUE_URL).
        #[arg(long)]
        apply: bool,
        /// Refuse the snapshot when more than this share of the people managed with access is
        /// missing from it.
        #[arg(long, default_value_t = 0.10)]
        max_missing: f64,
        /// Memory backend: replay these events first (the demo's state).
        #[arg(long)]
        replay: Vec<PathBuf>,
    },
    /// Run a function's start-up configuration check on this environment (the template test
    /// uses it to prove the environment the template sets is complete and valid).
    CheckConfig {
        #[arg(value_parser = ["identity-sync", "subscription-sync", "appstream-sync", "iam-sync", "hr-ingest", "reconcile"])]
        function: String,
    },
}

/// Runs a benchmark on virtual time: a current-thread runtime whose clock jumps when every task
/// waits. Exit 1 when it misses a target, 2 when the runtime cannot start.
fn on_virtual_time(bench: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build() {
        Ok(rt) => match rt.block_on(bench) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("jml: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("jml: runtime: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let cli = Cli::parse();
    if let Command::BenchReconcile { people, groups, latency_ms } = cli.command {
        return on_virtual_time(bench_reconcile::run(people, groups, latency_ms));
    }
    if let Command::BenchScale { joiners, instances, latency_ms } = cli.command {
        return on_virtual_time(scale::run(joiners, instances, latency_ms));
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
        Command::Replay { paths, backend, dry_run, apply, audit, targets, now, until, timeline } => {
            // Firing on --until needs a clock the replay can move: virtual, from now by default.
            let clock = match (now, until) {
                (Some(now), _) => jml_core::clock::Clock::at(now),
                (None, Some(_)) => jml_core::clock::Clock::at(chrono::Utc::now()),
                (None, None) => jml_core::clock::Clock::system(),
            };
            let dated = replay::Dated { clock, until, timeline: timeline.as_deref() };
            replay::run(&paths, backend, dry_run, apply, audit.as_deref(), targets.as_deref(), dated).await
        }
        Command::Audit { person } => audit(&person).await,
        Command::Reconcile { snapshot, backend, targets, as_of, format, apply, max_missing, replay } => {
            reconcile::run(reconcile::Options {
                snapshot,
                backend,
                targets,
                as_of,
                json: format == "json",
                apply,
                max_missing,
                replay,
            })
            .await
        }
        Command::Doctor { backend, targets, canary, subscriptions, ad_user, role_arns } => {
            let role_arns = role_arns.or_else(|| std::env::var("JML_ROLE_ARNS").ok().filter(|v| !v.is_empty()));
            doctor::run(doctor::Options { backend, targets, canary, subscriptions, ad_user, role_arns }).await
        }
        Command::Operations => roles::print_operations(),
        Command::Codes => {
            print!("{}", jml_core::parking::runbook_table(&::reconcile::targets::all_parking_codes()));
            ExitCode::SUCCESS
        }
        Command::Bench => bench::run().await,
        Command::CheckConfig { function } => check_config(&function),
        Command::ReleaseHeld { function, apply } => release_held(&function, apply).await,
        Command::Redrive { dlq_url, to_targets, apply, max } => {
            publish::redrive(&dlq_url, to_targets, apply, max).await
        }
        Command::BenchScale { .. } | Command::BenchReconcile { .. } => ExitCode::from(2),
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
    let config = match Config::from_env().and_then(|c| check_function(&c, function).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(kind) = TargetKind::by_function(function) else {
        eprintln!("jml: {function}: not a target function");
        return ExitCode::from(2);
    };
    let state = match kind {
        TargetKind::Identity => identity_sync::from_config(&config).await,
        TargetKind::Subscriptions => subscription_sync::from_config(&config).await,
        TargetKind::AppStream => appstream_sync::from_config(&config).await,
        TargetKind::Iam => iam_sync::from_config(&config).await,
    };
    let state = match state {
        Ok(s) => s,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
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

/// A function's own start-up check.
pub(crate) fn check_function(c: &Config, function: &str) -> Result<(), jml_core::config::ConfigError> {
    match (TargetKind::by_function(function), function) {
        (Some(t), _) => t.check(c),
        (None, "reconcile") => ::reconcile::check(c),
        (None, _) => c.check_ingest(),
    }
}

fn check_config(function: &str) -> ExitCode {
    let checked = Config::from_env().and_then(|c| check_function(&c, function));
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

/// Refuses a person argument that is not a person key (the ledger's: `issuer#id`, a `#` or `%`
/// inside a part written `%23`, `%25`): `a#b#c` could be either of two people.
pub(crate) fn check_person_key(person: &str) -> Result<(), String> {
    match jml_core::contract::ExternalId::from_key(person) {
        Some(_) => Ok(()),
        None => Err(format!(
            "jml: {person:?} is not a person key: issuer#id with exactly one #, a # or % inside the issuer or the id written %23 or %25 (issuer a#b and id c: a%23b#c)"
        )),
    }
}

async fn audit(person: &str) -> ExitCode {
    if let Err(e) = check_person_key(person) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let Some(table) = std::env::var("LEDGER_TABLE").ok().filter(|t| !t.is_empty()) else {
        eprintln!("jml: LEDGER_TABLE: is required (the DynamoDB person ledger)");
        return ExitCode::from(2);
    };
    let ledger = jml_dynamodb::ledger(&jml_aws::load_sdk_config().await, Some(&table));
    match jml_core::ledger::Audit::audit_trail(&ledger, person).await {
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

fn print_audit(person: &str, trail: &[jml_core::ledger::AuditEntry]) {
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
