//! Requests per event through the real record path on the simulator (the `jml bench` lifecycle,
//! breaker on by default): one plan per piece of work, so a leaver resolves its users once, and
//! the breaker, the apply and the read-back all use that plan.

use std::sync::Arc;

use appstream_sync::sim::SimAppStream;
use jml_core::config::Config;
use jml_core::lambda::{RecordMeta, process_record};

fn event(name: &str) -> String {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn a_leaver_reads_its_users_once_for_the_plan_and_once_for_the_read_back() {
    let config = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())).expect("config");
    assert!(config.leavers_per_hour.is_some(), "the breaker is on: it reads the plan");
    let (mut state, mem) = appstream_sync::memory(Arc::new(SimAppStream::demo()), &config).expect("memory state");
    state.metrics = Arc::new(jml_core::metrics::NullSink);
    let mut rows = Vec::new();
    for (name, file) in [
        ("joiner", "01-joiner-ada.json"),
        ("mover", "03-mover-ada.json"),
        ("leaver", "04-leaver-ada.json"),
        ("rehire", "05-rehire-ada.json"),
    ] {
        mem.service.reset_calls();
        mem.ledger.reset_calls();
        let report = process_record(&state, &event(file), &RecordMeta::default()).await;
        let outcome = report.outcome.unwrap_or_else(|| panic!("{name}: {:?}", report.error));
        let (calls, ledger) = (mem.service.calls(), mem.ledger.calls());
        let detail: Vec<String> = calls.by_op.iter().map(|(op, n)| format!("{} x{n}", op.label())).collect();
        println!(
            "{name:<7} {:<8} service {}r/{}w ledger {}r/{}w  {}",
            outcome.decision.as_str(),
            calls.reads(),
            calls.writes(),
            ledger.reads,
            ledger.writes,
            detail.join(", ")
        );
        rows.push((name, calls.reads(), calls.writes(), ledger.reads, ledger.writes, outcome.actions));
    }
    let row = |n: &str| rows.iter().find(|r| r.0 == n).expect("row");
    // joiner: DescribeUserStackAssociations; CreateUser + BatchAssociateUserStack.
    let joiner = row("joiner");
    assert_eq!((joiner.1, joiner.2, joiner.3, joiner.4), (1, 2, 2, 4), "joiner");
    // mover (one stack swapped) and rehire (a new user, two stacks): one read, two writes.
    assert_eq!((row("mover").1, row("mover").2), (1, 2), "mover");
    assert_eq!((row("rehire").1, row("rehire").2), (1, 2), "rehire");
    // leaver: the plan's DescribeUserStackAssociations (the breaker reads that plan) and the
    // read-back's; BatchDisassociateUserStack, DisableUser, DeleteUser. Ledger: the record, the
    // breaker's window and the inventory (once: the plan; not again by the apply or the
    // read-back) are read; the lease, the breaker's slot and decision, the write-ahead leaver and
    // the commit are written.
    let leaver = row("leaver");
    assert_eq!((leaver.1, leaver.2), (2, 3), "leaver service reads/writes: {:?}", leaver.5);
    assert_eq!(
        leaver.5,
        [
            "BatchDisassociateUserStack data-science",
            "BatchDisassociateUserStack engineering-desktop",
            "DisableUser",
            "DeleteUser"
        ]
    );
    assert_eq!((leaver.3, leaver.4), (3, 5), "leaver ledger reads/writes");
}
