//! The License Manager requests (and ledger calls) of one event, as `jml bench` measures them
//! (3 instances listed): one resolution per piece of work, shared by the breaker, the writes
//! and a leaver's read-back (which reads the holdings again, never the instance list).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use jml_core::config::Config;
use jml_core::lambda::{RecordMeta, process_record};
use subscription_sync::port::op;
use subscription_sync::sim::SimUserSubscriptions;

const JOINER: &str = include_str!("../../../events/01-joiner-ada.json");
const MOVER: &str = include_str!("../../../events/03-mover-ada.json");
const LEAVER: &str = include_str!("../../../events/04-leaver-ada.json");
const REHIRE: &str = include_str!("../../../events/05-rehire-ada.json");

/// (decision, service reads, service writes, ledger reads, ledger writes, ListInstances,
/// ListProductSubscriptions, ListUserAssociations) per event.
type Row = (String, usize, usize, usize, usize, usize, usize, usize);

#[tokio::test]
async fn a_leaver_lists_the_instances_once_and_reads_the_holdings_for_the_plan_and_the_read_back() {
    let config = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())).unwrap();
    let (state, mem) = subscription_sync::memory(Arc::new(SimUserSubscriptions::demo()), &config).unwrap();
    let mut rows: Vec<Row> = Vec::new();
    for body in [JOINER, MOVER, LEAVER, REHIRE] {
        mem.service.reset_calls();
        mem.ledger.reset_calls();
        let report = process_record(&state, body, &RecordMeta::default()).await;
        let (calls, ledger) = (mem.service.calls(), mem.ledger.calls());
        rows.push((
            report.outcome.map(|o| o.decision.as_str().to_string()).unwrap_or_default(),
            calls.reads(),
            calls.writes(),
            ledger.reads,
            ledger.writes,
            calls.get(op::LIST_INSTANCES),
            calls.get(op::LIST_PRODUCT_SUBSCRIPTIONS),
            calls.get(op::LIST_USER_ASSOCIATIONS),
        ));
    }
    let row = |d: &str, r, w, lr, lw, li, lp, lu| (d.to_string(), r, w, lr, lw, li, lp, lu);
    // Joiner (cold cache): ListInstances, the holdings (1 + 3), the product's status before
    // AssociateUser. As before the seam.
    assert_eq!(rows[0], row("create", 6, 2, 1, 4, 1, 2, 3));
    // Mover (warm cache): the holdings (1 + 3), the disassociation's status before the stop, the
    // new product's status before AssociateUser. As before.
    assert_eq!(rows[1], row("update", 6, 4, 1, 3, 0, 2, 4));
    // Leaver: ListInstances once (fresh: a revocation), the holdings for the plan (1 + 3), the
    // disassociation's status before the stop, the read-back's holdings (1 + 3). Before the
    // seam: 16 reads (ListInstances x3, ListProductSubscriptions x3, ListUserAssociations x10)
    // and 6 ledger reads (the inventory was read for the breaker's plan, the converge and the
    // read-back; now once per piece of work), plus one read of the name's claim: a name of the
    // inventory another person owns is never released.
    assert_eq!(rows[2], row("disable", 10, 2, 4, 5, 1, 2, 7));
    // Rehire (warm cache): the holdings (1 + 3), the product's status before AssociateUser.
    assert_eq!(rows[3], row("rehire", 5, 2, 1, 3, 0, 2, 3));
}
