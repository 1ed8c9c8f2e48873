//! `jml bench`: Identity Store API calls per event type, measured on the simulator through the
//! real handler code. Counts, not times: the same on every machine.

use std::process::ExitCode;
use std::sync::Arc;

use identity_sync::{RecordMeta, State, process_record};
use jml_shared::config::Config;
use jml_shared::sim::{CallCounts, SimIdentityStore};
use serde_json::Value;

const JOINER: &str = include_str!("../../events/01-joiner-ada.json");
const MOVER: &str = include_str!("../../events/03-mover-ada.json");
const LEAVER: &str = include_str!("../../events/04-leaver-ada.json");
const REHIRE: &str = include_str!("../../events/05-rehire-ada.json");

/// The joiner sample for another person (same 3 groups), so the group cache is warm.
fn other_joiner() -> String {
    let mut v: Value = serde_json::from_str(JOINER).unwrap_or_default();
    v["eventId"] = "bench-joiner-2".into();
    v["person"]["externalId"]["id"] = "900001".into();
    v["person"]["userName"] = "bench.person".into();
    v["person"]["email"] = "bench.person@example.com".into();
    v.to_string()
}

struct Row {
    scenario: &'static str,
    calls: CallCounts,
}

async fn measure(state: &State, store: &SimIdentityStore, body: &str) -> CallCounts {
    store.reset_calls();
    let _ = process_record(state, body, &RecordMeta::default()).await;
    store.calls()
}

pub async fn run() -> ExitCode {
    let Ok(config) = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())) else {
        return ExitCode::from(2);
    };
    let store = Arc::new(jml_shared::sim::demo_identity_store());
    let (state, _) = State::memory(store.clone(), &config);
    let other = other_joiner();
    let scenarios: [(&'static str, &str); 9] = [
        ("joiner, 3 groups (cold cache)", JOINER),
        ("joiner, 3 groups (warm cache)", &other),
        ("joiner replayed (duplicate)", JOINER),
        ("mover: 3 attributes, 1 group swap", MOVER),
        ("mover replayed", MOVER),
        ("leaver (externalId only)", LEAVER),
        ("leaver replayed", LEAVER),
        ("rehire", REHIRE),
        ("rehire replayed", REHIRE),
    ];
    let mut rows = Vec::new();
    for (scenario, body) in scenarios {
        rows.push(Row { scenario, calls: measure(&state, &store, body).await });
    }
    println!(
        "Identity Store API calls per event (simulator, real handler code; {} users in the store)\n",
        store.users().len()
    );
    println!("| {:<34} | {:>5} | {:>6} | calls", "event", "reads", "writes");
    println!("|{:-<36}|{:-<7}|{:-<8}|------", "", "", "");
    for r in &rows {
        let detail: Vec<String> = r.calls.by_op.iter().map(|(op, n)| format!("{} x{n}", op.label())).collect();
        println!("| {:<34} | {:>5} | {:>6} | {}", r.scenario, r.calls.reads(), r.calls.writes(), detail.join(", "));
    }
    let warm = &rows[1].calls;
    let replay = &rows[2].calls;
    let checks = [
        ("joiner with 3 groups: exactly 4 writes", warm.writes() == 4),
        ("joiner with 3 groups (cached): at most 3 reads", warm.reads() <= 3),
        (
            "replay: 0 writes",
            rows.iter()
                .filter(|r| r.scenario.ends_with("replayed") || r.scenario.contains("duplicate"))
                .all(|r| r.calls.writes() == 0),
        ),
        ("joiner replay: at most 3 reads", replay.reads() <= 3),
    ];
    println!();
    let mut ok = true;
    for (what, pass) in checks {
        println!("{} {what}", if pass { "PASS" } else { "FAIL" });
        ok &= pass;
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
