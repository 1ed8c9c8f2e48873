//! `jml bench`: API calls per event type — Identity Store and the DynamoDB ledger — measured on
//! the simulators through the real handler code. Counts, not times: the same on every machine.

use std::process::ExitCode;
use std::sync::Arc;

use identity_sync::{MemoryBackend, RecordMeta, State, process_record};
use jml_core::config::Config;
use jml_core::sim::{CallCounts, LedgerCalls};
use serde_json::Value;

const JOINER: &str = include_str!("../../events/01-joiner-ada.json");
const MOVER: &str = include_str!("../../events/03-mover-ada.json");
const LEAVER: &str = include_str!("../../events/04-leaver-ada.json");
const REHIRE: &str = include_str!("../../events/05-rehire-ada.json");

fn edit(body: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap_or_default();
    f(&mut v);
    v.to_string()
}

struct Row {
    scenario: &'static str,
    ids: CallCounts,
    ledger: LedgerCalls,
    decision: String,
}

async fn measure(state: &State, mem: &MemoryBackend, body: &str) -> (CallCounts, LedgerCalls, String) {
    mem.store.reset_calls();
    mem.ledger.reset_calls();
    let report = process_record(state, body, &RecordMeta::default()).await;
    let decision = match (&report.outcome, &report.error) {
        (Some(o), _) => o.decision.as_str().to_string(),
        (None, Some((code, _))) => code.clone(),
        _ => "-".to_string(),
    };
    (mem.store.calls(), mem.ledger.calls(), decision)
}

pub async fn run() -> ExitCode {
    let Ok(config) = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())) else {
        return ExitCode::from(2);
    };
    let Ok((mut state, mem)) = identity_sync::memory(Arc::new(identity_sync::sim::demo_identity_store()), &config)
    else {
        return ExitCode::from(2);
    };
    state.metrics = Arc::new(jml_core::metrics::NullSink);
    // Another person with the same 3 groups (warm group cache).
    let other = edit(JOINER, |v| {
        v["eventId"] = "bench-joiner-2".into();
        v["person"]["externalId"]["id"] = "900001".into();
        v["person"]["userName"] = "bench.person".into();
        v["person"]["email"] = "bench.person@example.com".into();
    });
    // The joiner sent again by HR with a new eventId: same state.
    let resent = edit(JOINER, |v| {
        v["eventId"] = "hr-2026-11-02-0001-resent".into();
        v["occurredAt"] = "2026-11-02T09:00:01Z".into();
    });
    // The joiner arriving (again, late) after the leaver.
    let stale = edit(JOINER, |v| v["eventId"] = "hr-2026-11-02-0001-late".into());
    let scenarios: [(&'static str, &str); 12] = [
        ("joiner, 3 groups (cold cache)", JOINER),
        ("joiner, 3 groups (warm cache)", &other),
        ("joiner duplicate (same eventId)", JOINER),
        ("joiner re-sent (new eventId, same state)", &resent),
        ("mover: 3 attributes, 1 group swap", MOVER),
        ("mover duplicate", MOVER),
        ("leaver (externalId only)", LEAVER),
        ("leaver duplicate", LEAVER),
        ("stale joiner after the leaver", &stale),
        ("rehire", REHIRE),
        ("rehire duplicate", REHIRE),
        ("joiner re-sent after rehire (stale)", &resent),
    ];
    let mut rows = Vec::new();
    for (scenario, body) in scenarios {
        let (ids, ledger, decision) = measure(&state, &mem, body).await;
        rows.push(Row { scenario, ids, ledger, decision });
    }
    println!("API calls per event (simulators, real handler code)\n");
    println!(
        "| {:<41} | {:<22} | {:>9} | {:>10} | {:>11} | {:>12} | Identity Store calls",
        "event", "decision", "IdS reads", "IdS writes", "ledger read", "ledger write"
    );
    println!("|{:-<43}|{:-<24}|{:-<11}|{:-<12}|{:-<13}|{:-<14}|---------------------", "", "", "", "", "", "");
    for r in &rows {
        let detail: Vec<String> = r.ids.by_op.iter().map(|(op, n)| format!("{} x{n}", op.label())).collect();
        println!(
            "| {:<41} | {:<22} | {:>9} | {:>10} | {:>11} | {:>12} | {}",
            r.scenario,
            r.decision,
            r.ids.reads(),
            r.ids.writes(),
            r.ledger.reads,
            r.ledger.writes,
            detail.join(", ")
        );
    }
    println!("\nA ledger write is one DynamoDB call: the conditional person record, its audit entry and the lease");
    println!("given back in one TransactWriteItems (a stale skip writes the audit entry alone with PutItem); an event");
    println!("that changes the person's knowledge first takes the person's lease in one transaction with a check that");
    println!("the record is still the one read (no second read) and the name the event may create or rename to (the");
    println!("write-ahead inventory); a created user's UserId enters the inventory with the commit. A leaver also");
    println!(
        "is planned once (reads only, the inventory read once): the blast-radius breaker reads that plan (does it"
    );
    println!(
        "revoke? then it reads the sliding window and writes it and its decision), the same plan is applied, and the"
    );
    println!(
        "read-back reads the planned accounts again (no second resolution); the leaver is recorded before its first"
    );
    println!("revoke (one more commit: a leaver that fails half-way is never forgotten).");
    println!("A person's first record on a target also adds the person to the folded-ExternalId index (one");
    println!(
        "UpdateItem), which a leaver for an unknown near-variant of the ExternalId is checked against. Group mappings older"
    );
    println!(
        "than 2 s add one DescribeGroup before each membership write (not seen here: the bench runs in a second).\n"
    );
    let row = |name: &str| rows.iter().find(|r| r.scenario == name);
    let applied = |r: &&Row| !r.decision.contains("duplicate") && !r.decision.contains("stale");
    let checks = [
        (
            "joiner with 3 groups: exactly 4 writes",
            row("joiner, 3 groups (warm cache)").is_some_and(|r| r.ids.writes() == 4),
        ),
        (
            "joiner with 3 groups (warm cache, names confirmed within GROUP_RECHECK_SECONDS): at most 3 reads",
            row("joiner, 3 groups (warm cache)").is_some_and(|r| r.ids.reads() <= 3),
        ),
        (
            "every duplicate: 0 writes anywhere, 0 Identity Store calls",
            rows.iter().filter(|r| r.scenario.contains("duplicate")).all(|r| {
                r.decision == "duplicate"
                    && r.ids.writes() + r.ids.reads() + r.ledger.writes == 0
                    && r.ledger.reads == 1
            }),
        ),
        (
            "re-sent joiner (same state): 0 writes, at most 3 reads",
            row("joiner re-sent (new eventId, same state)").is_some_and(|r| r.ids.writes() == 0 && r.ids.reads() <= 3),
        ),
        (
            "leaver: at most 6 Identity Store reads (one resolution, planned once: GetUserId(userName) of the inventory's name, DescribeUser, ListGroupMembershipsForMember; the read-back reads the planned user again) and at most 3 ledger reads (was 9 and 6)",
            row("leaver (externalId only)").is_some_and(|r| r.ids.reads() <= 6 && r.ledger.reads <= 3),
        ),
        (
            "stale events: skipped, 0 Identity Store calls, 1 audit write",
            rows.iter()
                .filter(|r| r.scenario.contains("stale"))
                .all(|r| r.decision == "stale" && r.ids.reads() + r.ids.writes() == 0 && r.ledger.writes == 1),
        ),
        (
            "applied events: 1 ledger read and 2 writes (the lease, checked against the record read and with the name written ahead; the commit, with the new UserId, giving the lease back); a person's first record +1 write (the folded-ExternalId index); a leaver +2 reads (the breaker's window; the inventory, read once: one plan serves the breaker, the apply and the read-back) and +3 writes (window, decision, the leaving intent written ahead of the first revoke); a created user +1 read (the reports linked to its userName) and, naming a manager, +1 write (its own link); a rehire +1 read (the inventory: its rehire key, the users it deletes)",
            rows.iter().filter(applied).all(|r| {
                let leaver = usize::from(r.scenario.starts_with("leaver"));
                let first = usize::from(r.scenario.starts_with("joiner, 3 groups"));
                let rehire = usize::from(r.decision == "rehire");
                let created = usize::from(r.decision == "create") + rehire;
                r.ledger.reads == 1 + 2 * leaver + created + rehire
                    && r.ledger.writes == 2 + first + 3 * leaver + created
            }),
        ),
    ];
    let dated_checks = dated_table().await;
    let subs_checks = subscriptions_table().await;
    let appstream_checks = appstream_table().await;
    let iam_checks = iam_table().await;
    let mut ok = !subs_checks.is_empty() && !appstream_checks.is_empty() && !iam_checks.is_empty();
    ok &= !dated_checks.is_empty();
    for (what, pass) in
        checks.into_iter().chain(dated_checks).chain(subs_checks).chain(appstream_checks).chain(iam_checks)
    {
        println!("{} {what}", if pass { "PASS" } else { "FAIL" });
        ok &= pass;
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// A leaver dated ahead (Alan's last working day): what it costs when HR records it, and when it
/// fires on its date, next to the same leaver undated (Identity Store, identity-sync's engine
/// with the replay's virtual clock firing it).
async fn dated_table() -> Vec<(&'static str, bool)> {
    const ALAN: &str = include_str!("../../events/02-joiner-alan.json");
    const LAST_DAY: &str = include_str!("../../events/09-leaver-alan-last-day-dec-18.json");
    let at = |t: &str| jml_core::clock::parse_now(t).unwrap_or_default();
    let Ok(config) = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())) else {
        return vec![];
    };
    let mut rows: Vec<(&'static str, CallCounts, LedgerCalls, String)> = Vec::new();
    for dated in [false, true] {
        let Ok((mut state, mem)) = identity_sync::memory(Arc::new(identity_sync::sim::demo_identity_store()), &config)
        else {
            return vec![];
        };
        let clock = jml_core::clock::Clock::at(at("2026-12-03T12:00:00Z"));
        state.metrics = Arc::new(jml_core::metrics::NullSink);
        state.engine = state.engine.clone().with_clock(clock.clone()).firing();
        let _ = process_record(&state, ALAN, &RecordMeta::default()).await;
        let leaver = if dated {
            LAST_DAY.to_string()
        } else {
            edit(LAST_DAY, |v| drop(v.as_object_mut().map(|m| m.remove("effectiveDate"))))
        };
        let (ids, ledger, decision) = measure(&state, &mem, &leaver).await;
        if dated {
            rows.push(("leaver dated ahead: when HR records it", ids, ledger, decision));
            clock.advance_to(at("2026-12-19T00:00:00Z"));
            mem.store.reset_calls();
            mem.ledger.reset_calls();
            let decision = state
                .engine
                .fire("workday#100235")
                .await
                .map_or_else(|e| e.code().to_string(), |o| o.decision.as_str().to_string());
            rows.push(("leaver dated ahead: fired on its date", mem.store.calls(), mem.ledger.calls(), decision));
        } else {
            rows.push(("the same leaver undated", ids, ledger, decision));
        }
    }
    println!("\nA dated leaver (Identity Store; 2 managed groups)\n");
    println!(
        "| {:<41} | {:<10} | {:>9} | {:>10} | {:>11} | {:>12}",
        "event", "decision", "IdS reads", "IdS writes", "ledger read", "ledger write"
    );
    println!("|{:-<43}|{:-<12}|{:-<11}|{:-<12}|{:-<13}|{:-<14}", "", "", "", "", "", "");
    for (name, ids, ledger, decision) in &rows {
        println!(
            "| {:<41} | {:<10} | {:>9} | {:>10} | {:>11} | {:>12}",
            name,
            decision,
            ids.reads(),
            ids.writes(),
            ledger.reads,
            ledger.writes
        );
    }
    let (undated, recorded, fired) = (&rows[0], &rows[1], &rows[2]);
    vec![
        (
            "dated leaver when recorded: 0 Identity Store calls (nothing is due; recorded with when it takes effect; the scheduler call is still to come on AWS)",
            recorded.3 == "scheduled" && recorded.1.reads() + recorded.1.writes() == 0,
        ),
        (
            "dated leaver fired on its date: the Identity Store calls of the same leaver undated",
            fired.3 == "disable" && fired.1.reads() == undated.1.reads() && fired.1.writes() == undated.1.writes(),
        ),
    ]
}

/// License Manager user subscriptions calls per event (3 instances listed by the service).
async fn subscriptions_table() -> Vec<(&'static str, bool)> {
    let Ok(config) = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())) else {
        return vec![];
    };
    let Ok((mut state, mem)) =
        subscription_sync::memory(Arc::new(subscription_sync::sim::SimUserSubscriptions::demo()), &config)
    else {
        return vec![];
    };
    state.metrics = Arc::new(jml_core::metrics::NullSink);
    let scenarios: [(&str, &str); 6] = [
        ("joiner: 1 product on 1 instance (cold cache)", JOINER),
        ("joiner duplicate", JOINER),
        ("mover: instance and product change", MOVER),
        ("leaver: release everything", LEAVER),
        ("leaver duplicate", LEAVER),
        ("rehire", REHIRE),
    ];
    println!(
        "\nLicense Manager user subscriptions calls per event ({} instances listed)\n",
        subscription_sync::sim::DEMO_INSTANCES.len()
    );
    println!(
        "| {:<44} | {:<10} | {:>5} | {:>6} | {:>11} | {:>12} | calls",
        "event", "decision", "reads", "writes", "ledger read", "ledger write"
    );
    println!("|{:-<46}|{:-<12}|{:-<7}|{:-<8}|{:-<13}|{:-<14}|------", "", "", "", "", "", "");
    let mut rows = Vec::new();
    for (name, body) in scenarios {
        mem.service.reset_calls();
        mem.ledger.reset_calls();
        let report = process_record(&state, body, &RecordMeta::default()).await;
        let decision = report.outcome.map(|o| o.decision.as_str().to_string()).unwrap_or_else(|| "-".into());
        let (calls, ledger) = (mem.service.calls(), mem.ledger.calls());
        let detail: Vec<String> = calls.by_op.iter().map(|(op, n)| format!("{} x{n}", op.label())).collect();
        println!(
            "| {:<44} | {:<10} | {:>5} | {:>6} | {:>11} | {:>12} | {}",
            name,
            decision,
            calls.reads(),
            calls.writes(),
            ledger.reads,
            ledger.writes,
            detail.join(", ")
        );
        rows.push((name, decision, calls, ledger));
    }
    let checks = vec![
        (
            "subscriptions: duplicates make 0 calls and 0 writes",
            rows.iter()
                .filter(|r| r.0.contains("duplicate"))
                .all(|r| r.1 == "duplicate" && r.2.reads() + r.2.writes() + r.3.writes == 0),
        ),
        (
            "subscriptions: the leaver releases every association and product",
            rows.iter().find(|r| r.0.starts_with("leaver:")).is_some_and(|r| r.1 == "disable" && r.2.writes() == 2),
        ),
        (
            "subscriptions: the leaver lists the instances once and reads its holdings for the plan and the read-back: at most 10 reads; at most 4 ledger reads (was 16 and 6: the record, the window, the inventory, and the claim of its AD user name, since a name of the inventory another person owns is never released)",
            rows.iter().find(|r| r.0.starts_with("leaver:")).is_some_and(|r| {
                r.2.reads() <= 10 && r.2.get(subscription_sync::port::op::LIST_INSTANCES) == 1 && r.3.reads <= 4
            }),
        ),
    ];
    checks
}

/// One measured scenario of a target table: (name, decision, service calls, ledger calls).
type Measured = (&'static str, String, CallCounts, LedgerCalls);

/// Runs the scenarios through one target's state, printing a table of its calls.
async fn target_table(
    title: &str,
    state: &State,
    ledger: &jml_core::sim::SimLedger,
    calls: &dyn Fn() -> CallCounts,
    reset: &dyn Fn(),
    scenarios: &[(&'static str, String)],
    before: &dyn Fn(&str),
) -> Vec<Measured> {
    println!("\n{title}\n");
    println!(
        "| {:<44} | {:<10} | {:>5} | {:>6} | {:>11} | {:>12} | calls",
        "event", "decision", "reads", "writes", "ledger read", "ledger write"
    );
    println!("|{:-<46}|{:-<12}|{:-<7}|{:-<8}|{:-<13}|{:-<14}|------", "", "", "", "", "", "");
    let mut rows = Vec::new();
    for (name, body) in scenarios {
        before(name);
        reset();
        ledger.reset_calls();
        let report = process_record(state, body, &RecordMeta::default()).await;
        let decision = match (&report.outcome, &report.error) {
            (Some(o), _) => o.decision.as_str().to_string(),
            (None, Some((code, _))) => code.clone(),
            _ => "-".to_string(),
        };
        let (c, l) = (calls(), ledger.calls());
        let detail: Vec<String> = c.by_op.iter().map(|(op, n)| format!("{} x{n}", op.label())).collect();
        println!(
            "| {:<44} | {:<10} | {:>5} | {:>6} | {:>11} | {:>12} | {}",
            name,
            decision,
            c.reads(),
            c.writes(),
            l.reads,
            l.writes,
            detail.join(", ")
        );
        rows.push((*name, decision, c, l));
    }
    rows
}

fn duplicates_free(rows: &[Measured]) -> bool {
    rows.iter()
        .filter(|r| r.0.contains("duplicate"))
        .all(|r| r.1 == "duplicate" && r.2.reads() + r.2.writes() + r.3.writes == 0)
}

fn lifecycle() -> Vec<(&'static str, String)> {
    let resent = edit(JOINER, |v| {
        v["eventId"] = "hr-2026-11-02-0001-resent".into();
        v["occurredAt"] = "2026-11-02T09:00:01Z".into();
    });
    vec![
        ("joiner", JOINER.to_string()),
        ("joiner duplicate", JOINER.to_string()),
        ("joiner re-sent (new eventId, same state)", resent),
        ("mover", MOVER.to_string()),
        ("leaver", LEAVER.to_string()),
        ("leaver duplicate", LEAVER.to_string()),
        ("rehire", REHIRE.to_string()),
        ("rehire duplicate", REHIRE.to_string()),
    ]
}

/// AppStream 2.0 calls per event (stacks from the demo department rule and the mover's list).
async fn appstream_table() -> Vec<(&'static str, bool)> {
    let Ok(config) = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())) else {
        return vec![];
    };
    let Ok((mut state, mem)) = appstream_sync::memory(Arc::new(appstream_sync::sim::SimAppStream::demo()), &config)
    else {
        return vec![];
    };
    state.metrics = Arc::new(jml_core::metrics::NullSink);
    let rows = target_table(
        "AppStream 2.0 calls per event (joiner: 2 stacks by department rule; mover: 1 stack swapped)",
        &state,
        &mem.ledger,
        &|| mem.service.calls(),
        &|| mem.service.reset_calls(),
        &lifecycle(),
        &|_| {},
    )
    .await;
    let find = |n: &str| rows.iter().find(|r| r.0 == n);
    vec![
        ("appstream: duplicates make 0 calls and 0 writes", duplicates_free(&rows)),
        (
            "appstream: joiner = CreateUser + 1 BatchAssociateUserStack; ledger claim (with the inventory) + lease + folded-ExternalId index + commit (giving the lease back)",
            find("joiner").is_some_and(|r| r.1 == "create" && r.2.writes() == 2 && r.3.writes == 4),
        ),
        (
            "appstream: same state re-sent = 1 read, 0 writes",
            find("joiner re-sent (new eventId, same state)").is_some_and(|r| r.2.reads() == 1 && r.2.writes() == 0),
        ),
        (
            "appstream: leaver = 1 BatchDisassociateUserStack + DisableUser + DeleteUser",
            find("leaver").is_some_and(|r| r.1 == "disable" && r.2.writes() == 3),
        ),
        (
            "appstream: leaver reads its stacks once for the plan and once for the read-back (2 reads, was 3), at most 3 ledger reads (was 6)",
            find("leaver").is_some_and(|r| r.2.reads() <= 2 && r.3.reads <= 3),
        ),
        (
            "appstream: rehire = a new user (CreateUser, no EnableUser) + 1 BatchAssociateUserStack",
            find("rehire").is_some_and(|r| r.1 == "rehire" && r.2.writes() == 2),
        ),
    ]
}

/// IAM calls per event (3 mapped groups; before the leaver a human added a password and a key).
async fn iam_table() -> Vec<(&'static str, bool)> {
    let Ok(config) = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())) else {
        return vec![];
    };
    let Ok((mut state, mem)) = iam_sync::memory(Arc::new(iam_sync::sim::SimIam::demo()), &config) else {
        return vec![];
    };
    state.metrics = Arc::new(jml_core::metrics::NullSink);
    let rows = target_table(
        "IAM calls per event (3 mapped groups; before the leaver a human added a password, an access key, an SSH key, a service-specific credential and a signing certificate)",
        &state,
        &mem.ledger,
        &|| mem.service.calls(),
        &|| mem.service.reset_calls(),
        &lifecycle(),
        &|name| {
            if name == "leaver" {
                mem.service.add_credentials("ada.lovelace", "AKIABENCH000000001");
                mem.service.add_other_credentials("ada.lovelace", "BENCH1");
            }
        },
    )
    .await;
    let find = |n: &str| rows.iter().find(|r| r.0 == n);
    vec![
        ("iam: duplicates make 0 calls and 0 writes", duplicates_free(&rows)),
        (
            "iam: joiner = CreateUser + 3 AddUserToGroup",
            find("joiner").is_some_and(|r| r.1 == "create" && r.2.writes() == 4),
        ),
        (
            "iam: same state re-sent = 0 writes",
            find("joiner re-sent (new eventId, same state)").is_some_and(|r| r.2.writes() == 0),
        ),
        (
            "iam: leaver = password deleted, 4 credentials deactivated, out of 3 groups, tagged (9 writes); its users found by tag too (renamed by hand): 1 GetAccountAuthorizationDetails page, once (one plan: the breaker reads it, it is applied, the read-back reads its users again)",
            find("leaver").is_some_and(|r| {
                r.1 == "disable"
                    && r.2.writes() == 9
                    && r.2.get(iam_sync::port::op::GET_ACCOUNT_AUTHORIZATION_DETAILS) == 1
            }),
        ),
        (
            "iam: leaver at most 14 reads (the plan's lookups and credential reads; the read-back's credential reads, no second lookup; was 22), at most 3 ledger reads (was 6)",
            find("leaver").is_some_and(|r| r.2.reads() <= 14 && r.3.reads <= 3),
        ),
    ]
}

/// Prints each target as PASS or FAIL; `Err` when one is missed.
pub(crate) fn verdict<S: std::fmt::Display>(checks: impl IntoIterator<Item = (S, bool)>) -> Result<(), String> {
    let mut ok = true;
    for (what, pass) in checks {
        println!("{} {what}", if pass { "PASS" } else { "FAIL" });
        ok &= pass;
    }
    if ok { Ok(()) } else { Err("a target was missed".to_string()) }
}
