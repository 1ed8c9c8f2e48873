//! `jml replay`: every event through every enabled target's real handler code, as hr-ingest
//! fans out, the targets sharing one ledger. On the simulator it also checks, after each leaver,
//! that the person holds no access left in any target, and prints every target's final state.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use appstream_sync::naming::APPSTREAM_TARGET;
use appstream_sync::sim::SimAppStream;
use iam_sync::naming::IAM_TARGET;
use iam_sync::sim::SimIam;
use identity_sync::IDENTITY_TARGET;
use identity_sync::sim::SimIdentityStore;
use identity_sync::{RecordMeta, RecordReport, State, process_record};
use jml_core::batch::RecordResult;
use jml_core::config::{Backend, Config, ConfigError};
use jml_core::contract::EventKind;
use jml_core::engine::Decision;
use jml_core::sim::SimLedger;
use subscription_sync::naming::SUBSCRIPTIONS_TARGET;
use subscription_sync::sim::SimUserSubscriptions;

use crate::{BackendArg, event_files, print_audit};

use ::reconcile::TargetKind;

/// The simulators behind a memory replay, one ledger shared by every target.
pub(crate) struct Sims {
    pub(crate) ledger: Arc<SimLedger>,
    pub(crate) identity: identity_sync::MemoryBackend,
    pub(crate) subscriptions: subscription_sync::MemoryBackend,
    pub(crate) appstream: appstream_sync::MemoryBackend,
    pub(crate) iam: iam_sync::MemoryBackend,
}

/// The targets of `--targets` (each once, in the order given), or by default every target on
/// the simulator and, on AWS, identity plus those the environment configures (subscriptions with
/// `DIRECTORY_ID`, iam with `IAM_PERMISSIONS_BOUNDARY`; appstream only when named).
pub(crate) fn wanted(list: Option<&[TargetKind]>, cfg: &Config) -> Result<Vec<TargetKind>, String> {
    if let Some(list) = list {
        let mut out: Vec<TargetKind> = Vec::new();
        for t in list {
            if !out.contains(t) {
                out.push(*t);
            }
        }
        return if out.is_empty() { Err("--targets: names no target".into()) } else { Ok(out) };
    }
    Ok(match cfg.backend {
        Backend::Memory => TargetKind::ALL.to_vec(),
        Backend::Aws => TargetKind::ALL
            .into_iter()
            .filter(|t| match t {
                TargetKind::Identity => true,
                TargetKind::Subscriptions => cfg.var("DIRECTORY_ID").is_some(),
                TargetKind::Iam => cfg.var("IAM_PERMISSIONS_BOUNDARY").is_some(),
                TargetKind::AppStream => false,
            })
            .collect(),
    })
}

pub(crate) fn checks(cfg: &Config, targets: &[TargetKind]) -> Result<(), jml_core::config::ConfigError> {
    for t in targets {
        crate::check_function(cfg, t.function())?;
    }
    Ok(())
}

pub async fn run(
    paths: &[PathBuf],
    backend: BackendArg,
    dry_run: bool,
    apply: bool,
    audit: Option<&str>,
    targets: Option<&[TargetKind]>,
    dated: Dated<'_>,
) -> ExitCode {
    let clock = dated.clock.clone();
    if let Some(Err(e)) = dated.timeline.map(crate::check_person_key) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    if dated.until.is_some_and(|u| u < clock.now()) {
        eprintln!("jml: --until: before the clock (--now); the clock never moves back");
        return ExitCode::from(2);
    }
    if let Some(Err(e)) = audit.map(crate::check_person_key) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let files = match event_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    let name = if backend == BackendArg::Memory { "memory" } else { "aws" };
    let mut cfg =
        match Config::from_lookup(|k| if k == "JML_BACKEND" { Some(name.into()) } else { std::env::var(k).ok() }) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("jml: {e}");
                return ExitCode::from(2);
            }
        };
    let enabled = match wanted(targets, &cfg) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = checks(&cfg, &enabled) {
        eprintln!("jml: {e}");
        return ExitCode::from(2);
    }
    cfg.dry_run = dry_run || (cfg.backend == Backend::Aws && !apply);
    let (states, sims) = match build(&cfg, &enabled).await {
        Ok(built) => built,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    // On the simulator, every pending change is scheduled in memory and fired by --until.
    let schedules = Arc::new(jml_core::sim::SimSchedules::default());
    // The replay prints its own table; EMF documents are for CloudWatch.
    let states: Vec<State> = states
        .into_iter()
        .map(|mut t| {
            t.metrics = Arc::new(jml_core::metrics::NullSink);
            t.engine = t.engine.with_clock(clock.clone());
            // On the simulator the replay fires what comes due (--until): a dated change is
            // accepted. On AWS nothing fires it yet: it is parked (DatedEventNotSchedulable).
            if cfg.backend == Backend::Memory {
                t.engine = t.engine.with_schedules(schedules.clone());
            }
            t
        })
        .collect();
    if clock.is_virtual() {
        println!("clock: {} (--now)", clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    if cfg.dry_run {
        println!(
            "DRY RUN: planning only, nothing is written{}",
            if cfg.backend == Backend::Aws { " (add --apply to write)" } else { "" }
        );
    }
    println!("targets: {}", enabled.iter().map(|t| t.cli_name()).collect::<Vec<_>>().join(", "));
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
            message_group: jml_core::contract::external_id_hint(&body),
        };
        let mut leaver_of = None;
        for state in &states {
            let report = process_record(state, &body, &meta).await;
            print_report(state.engine.target_name(), &report);
            if report.result != RecordResult::Done {
                failures += 1;
            }
            // Only an applied leaver is checked (a stale, duplicate or held one changed nothing).
            let applied = report.outcome.as_ref().is_some_and(|o| {
                !matches!(o.decision, Decision::Stale | Decision::Duplicate | Decision::Held | Decision::Scheduled)
            });
            if report.kind == Some(EventKind::Leaver) && applied {
                leaver_of = report.external_id.clone();
            }
        }
        if let (Some(person), Some(sims)) = (leaver_of, &sims)
            && !cfg.dry_run
        {
            failures += leaver_check(sims, &person);
        }
    }
    if let (Some(until), Some(sims)) = (dated.until, &sims) {
        failures += fire_until(&states, sims, &clock, until, &schedules).await;
    }
    if let Some(sims) = &sims {
        print_final(sims, &enabled);
    }
    if let (Some(person), Some(state)) = (dated.timeline, states.first()) {
        print_timeline(state, person, &clock).await;
    }
    if let Some(person) = audit
        && let Some(state) = states.first()
    {
        match state.engine.audit_trail(person).await {
            Ok(trail) => print_audit(person, &trail),
            Err(e) => eprintln!("jml: audit trail: {e}"),
        }
    }
    if failures > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// The clock of a replay and its dated options.
#[derive(Clone, Debug)]
pub struct Dated<'a> {
    /// The clock of the whole replay (`--now`: virtual).
    pub clock: jml_core::clock::Clock,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    pub timeline: Option<&'a str>,
}

/// Advances the clock to `until`, firing every scheduled change as it comes due, in the order
/// they take effect, through each target's real record handling (the message a schedule sends);
/// the clock never moves back. After each leaver that took effect, checks that the person holds
/// no access left. Returns the failures.
async fn fire_until(
    states: &[State],
    sims: &Sims,
    clock: &jml_core::clock::Clock,
    until: chrono::DateTime<chrono::Utc>,
    schedules: &jml_core::sim::SimSchedules,
) -> usize {
    let mut failures = 0;
    let mut last = None;
    let mut disabled = std::collections::BTreeSet::new();
    while let Some(firing) = schedules.take_due(until) {
        clock.advance_to(firing.at);
        if last != Some(firing.at) {
            println!(
                "\nclock -> {} (dated changes come due)",
                firing.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            last = Some(firing.at);
        }
        let Some(state) = states.iter().find(|s| s.engine.target_name() == firing.target) else { continue };
        let meta = RecordMeta { message_id: Some(firing.name.clone()), message_group: Some(firing.person.clone()) };
        let report = process_record(state, &firing.body(), &meta).await;
        print_report(state.engine.target_name(), &report);
        if report.result != RecordResult::Done {
            failures += 1;
        }
        if report.outcome.as_ref().is_some_and(|o| o.decision == Decision::Disable) {
            disabled.insert((firing.at, firing.person.clone()));
        }
        // Once every target has fired for the person at this instant: a leaver took effect.
        let more = schedules.pending().iter().any(|f| f.at == firing.at && f.person == firing.person);
        if !more && disabled.remove(&(firing.at, firing.person.clone())) {
            failures += leaver_check(sims, &firing.person);
        }
    }
    clock.advance_to(until);
    println!("\nclock: {} (--until)", until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    failures
}

/// `--timeline`: the person's dated changes, as the first target's ledger knows them.
async fn print_timeline(state: &State, person: &str, clock: &jml_core::clock::Clock) {
    let record = match state.engine.ledger().get(person, state.engine.target_name()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jml: timeline: {e}");
            return;
        }
    };
    let knowledge = jml_core::ledger::Knowledge::at(record.as_ref(), clock.now());
    println!(
        "\ntimeline of {person} at {} ({})",
        clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        state.engine.target_name()
    );
    let zone = knowledge
        .profile
        .as_ref()
        .and_then(|(e, _)| e.profile()?.timezone.as_ref().map(|t| t.as_str().to_string()))
        .unwrap_or_else(|| "UTC".into());
    let tz = jml_core::dated::zone(&zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let timeline = knowledge.timeline();
    let rescinds = jml_core::dated::rescinds(&timeline);
    let state_now = jml_core::dated::state_at(&timeline, clock.now());
    let mut rows: Vec<_> = timeline.iter().collect();
    rows.sort_by(|a, b| (a.effective, a.recorded, &a.event_id).cmp(&(b.effective, b.recorded, &b.event_id)));
    if rows.is_empty() {
        println!("(no dated change: every event took effect when recorded)");
    }
    println!(
        "{:<10} {:<22} {:<28} {:<26} status",
        "type",
        "effective (UTC)",
        &format!("effective ({zone})"),
        "eventId"
    );
    for e in rows {
        let kind = match &e.role {
            jml_core::dated::Role::Profile => "profile",
            jml_core::dated::Role::Rehire => "rehire",
            jml_core::dated::Role::Leaver => "leaver",
            jml_core::dated::Role::Rescind(_) => "rescind",
        };
        let local = jiff::Timestamp::from_second(e.effective.timestamp())
            .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string())
            .unwrap_or_default();
        let status = if rescinds.cancelled.contains(&e.event_id) {
            "rescinded".to_string()
        } else if let Some(why) = rescinds.refused.get(&e.event_id) {
            format!("refused: {}", why.split(':').next().unwrap_or("too late"))
        } else if let jml_core::dated::Role::Rescind(target) = &e.role {
            format!("rescinds {target}")
        } else if e.effective > clock.now() {
            "pending".to_string()
        } else if state_now.profile.as_deref() == Some(e.event_id.as_str())
            || state_now.lifecycle.as_deref() == Some(e.event_id.as_str())
        {
            "in effect".to_string()
        } else {
            "superseded".to_string()
        };
        println!(
            "{kind:<10} {:<22} {local:<28} {:<26} {status}",
            e.effective.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            e.event_id
        );
    }
}

pub(crate) async fn build(cfg: &Config, enabled: &[TargetKind]) -> Result<(Vec<State>, Option<Sims>), ConfigError> {
    Ok(match cfg.backend {
        Backend::Memory => {
            let (identity, mem) = identity_sync::memory(Arc::new(identity_sync::sim::demo_identity_store()), cfg)?;
            let ledger = mem.ledger.clone();
            let (subs, smem) =
                subscription_sync::memory_with_ledger(Arc::new(SimUserSubscriptions::demo()), ledger.clone(), cfg)?;
            let (apps, amem) = appstream_sync::memory_with_ledger(Arc::new(SimAppStream::demo()), ledger.clone(), cfg)?;
            let (iam, imem) = iam_sync::memory_with_ledger(Arc::new(SimIam::demo()), ledger.clone(), cfg)?;
            let states = [
                (TargetKind::Identity, identity),
                (TargetKind::Subscriptions, subs),
                (TargetKind::AppStream, apps),
                (TargetKind::Iam, iam),
            ]
            .into_iter()
            .filter(|(n, _)| enabled.contains(n))
            .map(|(_, s)| s)
            .collect();
            (states, Some(Sims { ledger, identity: mem, subscriptions: smem, appstream: amem, iam: imem }))
        }
        Backend::Aws => {
            let sdk = jml_aws::load_sdk_config().await;
            let mut states = Vec::new();
            for t in enabled {
                states.push(match t {
                    TargetKind::Identity => identity_sync::from_sdk_config(&sdk, cfg)?,
                    TargetKind::Subscriptions => subscription_sync::from_sdk_config(&sdk, cfg)?,
                    TargetKind::AppStream => appstream_sync::from_sdk_config(&sdk, cfg)?,
                    TargetKind::Iam => iam_sync::from_sdk_config(&sdk, cfg)?,
                });
            }
            (states, None)
        }
    })
}

/// What access a person still holds in each simulated target: every account of the ledger's
/// write-ahead inventory and record, read back from the simulator. One line per account and
/// whether it grants anything.
fn remaining_access(sims: &Sims, person: &str) -> Vec<(&'static str, String, bool)> {
    let accounts = |target: &str| {
        let mut names = sims.ledger.inventory(person, target);
        let record = sims.ledger.record(person, target);
        names.extend(record.as_ref().and_then(|r| r.user_name.clone()));
        names.extend(record.as_ref().and_then(|r| r.user_id.as_ref().map(|id| format!("id:{id}"))));
        names
    };
    let mut out = Vec::new();
    let users = sims.identity.store.users();
    let mut seen = std::collections::BTreeSet::new();
    for key in accounts(IDENTITY_TARGET) {
        let found = match key.split_once(':') {
            Some(("id", id)) => users.iter().find(|u| u.user_id == id),
            Some(("name", name)) => users.iter().find(|u| u.user_name == name),
            _ => users.iter().find(|u| u.user_name == key),
        };
        if let Some(u) = found.filter(|u| seen.insert(u.user_id.clone()))
            && u.marker == marker(person)
        {
            let enabled = u.status == identity_sync::port::UserStatus::Enabled;
            let line = format!("{}, {} group(s)", if enabled { "ENABLED" } else { "disabled" }, u.groups.len());
            out.push((IDENTITY_TARGET, line, enabled || !u.groups.is_empty()));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for n in accounts(SUBSCRIPTIONS_TARGET) {
        if !seen.insert(n.to_lowercase()) {
            continue;
        }
        let (p, i) = sims.subscriptions.service.holdings(&n);
        out.push((
            SUBSCRIPTIONS_TARGET,
            format!("{} product(s), {} instance(s)", p.len(), i.len()),
            !p.is_empty() || !i.is_empty(),
        ));
    }
    let pool = sims.appstream.service.all();
    for n in accounts(APPSTREAM_TARGET) {
        match pool.get(&n) {
            Some((u, stacks)) => {
                let line = format!("{}, {} stack(s)", if u.enabled { "ENABLED" } else { "disabled" }, stacks.len());
                out.push((APPSTREAM_TARGET, line, u.enabled || !stacks.is_empty()));
            }
            None => out.push((APPSTREAM_TARGET, "not in the user pool (deleted)".to_string(), false)),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for n in accounts(IAM_TARGET) {
        let Some(u) = sims.iam.service.user(&n).filter(|u| seen.insert(u.user.user_id.clone())) else { continue };
        let keys = u.access_keys.iter().filter(|k| k.status == "Active").count()
            + u.other_credentials.iter().filter(|c| c.active).count();
        let line = format!(
            "{}, {keys} active key(s) or credential(s), {} group(s)",
            if u.login_profile { "CONSOLE PASSWORD" } else { "no password" },
            u.groups.len()
        );
        out.push((IAM_TARGET, line, u.login_profile || keys > 0 || !u.groups.is_empty()));
    }
    out
}

/// The managed marker of a person key (`issuer#id`, `#` and `%` in a part as `%23`, `%25`).
fn marker(person: &str) -> Option<String> {
    Some(jml_core::contract::ExternalId::from_key(person)?.marker())
}

/// Prints what the leaver left behind; returns 1 if any access remains (a failed replay).
fn leaver_check(sims: &Sims, person: &str) -> usize {
    let access = remaining_access(sims, person);
    let left = access.iter().filter(|(_, _, any)| *any).count();
    let verdict = if left == 0 { "no access left" } else { "ACCESS REMAINS" };
    println!("{:>28}leaver check {person}: {verdict} in {} target(s)", "", access.len());
    for (target, line, _) in access {
        println!("{:>30}{target:<20} {line}", "");
    }
    usize::from(left > 0)
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

fn or_dash(v: Vec<String>) -> String {
    if v.is_empty() { "-".to_string() } else { v.join(", ") }
}

fn print_final(sims: &Sims, enabled: &[TargetKind]) {
    if enabled.contains(&TargetKind::Identity) {
        print_users(&sims.identity.store);
    }
    if enabled.contains(&TargetKind::Subscriptions) {
        println!("\nfinal user-based subscriptions (simulator)");
        println!("{:<20} {:<54} instances", "AD user", "products");
        let holdings = sims.subscriptions.service.all_holdings();
        if holdings.is_empty() {
            println!("(none)");
        }
        for (user, (products, instances)) in holdings {
            println!("{user:<20} {:<54} {}", or_dash(products), or_dash(instances));
        }
    }
    if enabled.contains(&TargetKind::AppStream) {
        println!("\nfinal AppStream user pool (simulator)");
        // Columns as wide as their longest value: long addresses never run into the status.
        let all = sims.appstream.service.all();
        let names = |u: &appstream_sync::sim::PoolUser| {
            format!("{} / {}", u.first_name.as_deref().unwrap_or("-"), u.last_name.as_deref().unwrap_or("-"))
        };
        let w = all.keys().map(|k| k.chars().count()).max().unwrap_or(0).max(9);
        let nw = all.values().map(|(u, _)| names(u).chars().count()).max().unwrap_or(0).max(17);
        println!("{:<w$} {:<nw$} {:<9} {:>7}  stacks", "user name", "first / last name", "status", "welcome");
        for (user, (u, stacks)) in all {
            let status = if u.enabled { "ENABLED" } else { "DISABLED" };
            println!("{user:<w$} {:<nw$} {status:<9} {:>7}  {}", names(&u), u.welcome_emails, or_dash(stacks));
        }
    }
    if enabled.contains(&TargetKind::Iam) {
        println!("\nfinal IAM users (simulator)");
        let all = sims.iam.service.all();
        let w = all.iter().map(|u| u.user.user_name.chars().count()).max().unwrap_or(0).max(15);
        let pw = all.iter().map(|u| u.user.path.chars().count()).max().unwrap_or(0).max(27);
        println!("{:<w$} {:<pw$} {:<9} {:<8} {:<5} groups", "user name", "path", "status", "console", "keys");
        for u in all {
            let status = u.user.tags.get(iam_sync::naming::TAG_STATUS).cloned().unwrap_or_else(|| "-".into());
            let keys = u.access_keys.iter().filter(|k| k.status == "Active").count();
            let console = if u.login_profile { "yes" } else { "no" };
            println!(
                "{:<w$} {:<pw$} {status:<9} {console:<8} {keys:<5} {}",
                u.user.user_name,
                u.user.path,
                or_dash(u.groups.into_iter().collect())
            );
        }
    }
    let parked: Vec<_> = [
        sims.identity.dlq.parked(),
        sims.subscriptions.dlq.parked(),
        sims.appstream.dlq.parked(),
        sims.iam.dlq.parked(),
    ]
    .concat();
    if !parked.is_empty() {
        println!("\nparked on the dead-letter queues: {}", parked.len());
        for p in parked {
            println!("  {} [{}] {}", p.source_message_id.unwrap_or_default(), p.error_code, p.reason);
        }
    }
    println!();
    for (target, calls) in [
        (TargetKind::Identity, sims.identity.store.calls()),
        (TargetKind::Subscriptions, sims.subscriptions.service.calls()),
        (TargetKind::AppStream, sims.appstream.service.calls()),
        (TargetKind::Iam, sims.iam.service.calls()),
    ] {
        if enabled.contains(&target) {
            println!("{} calls: {} reads, {} writes", target.title(), calls.reads(), calls.writes());
        }
    }
}

fn print_users(store: &SimIdentityStore) {
    println!("\nfinal Identity Store users (simulator)");
    let users = store.users();
    let w = users.iter().map(|u| u.user_name.len()).max().unwrap_or(0).max(16);
    let m = users.iter().filter_map(|u| u.marker.as_ref().map(String::len)).max().unwrap_or(0).max(36);
    println!("{:<38} {:<w$} {:<9} {:<m$} groups", "userId", "userName", "status", "managed marker");
    for u in users {
        let status = match u.status {
            identity_sync::port::UserStatus::Enabled => "ENABLED",
            identity_sync::port::UserStatus::Disabled => "DISABLED",
        };
        let marker = u.marker.as_deref().unwrap_or("(unmanaged)");
        println!("{:<38} {:<w$} {:<9} {:<m$} {}", u.user_id, u.user_name, status, marker, or_dash(u.groups));
    }
}
