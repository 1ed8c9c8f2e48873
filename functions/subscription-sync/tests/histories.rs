//! Issue 22 (B, E) on the simulator, through the real record handling: the subscriptions a
//! person's history leaves are a function of the events alone.
//!
//! Invariants, for histories of joiners, movers, leavers and rehires whose AD user name changes
//! in case only (`ALovelace`, `alovelace`, `ALOVELACE`) or altogether, whose product sets include
//! the RDS SAL, on a License Manager that does or does not add the SAL itself and that does or
//! does not compare user names with case, delivered in any order with duplicates:
//!
//! 1. after every delivery, what the service holds (by the exact name of each row) equals an
//!    oracle computed from the events delivered so far by a simple model: nothing when the newest
//!    lifecycle event by `(occurredAt, eventId)` is a leaver; else the newest profile event's
//!    products and instances under its AD user name exactly as sent (plus the SAL where License
//!    Manager adds it beside another product); and another person's subscriptions untouched;
//! 2. so the end state equals delivery once in `(occurredAt, eventId)` order;
//! 3. after an applied leaver no spelling the person was ever given holds anything, and the
//!    leaver is never parked (its read-back agrees).
//!
//! `JML_PROPTEST_CASES` sets the number of histories (default 200).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jml_core::batch::RecordResult;
use jml_core::config::Config;
use jml_core::engine::Decision;
use jml_core::lambda::{RecordMeta, RecordReport, State, process_record};
use proptest::prelude::*;
use serde_json::{Value, json};
use subscription_sync::MemoryBackend;
use subscription_sync::planner::RDS_SAL;
use subscription_sync::sim::SimUserSubscriptions;

const OFFICE: &str = "OFFICE_PROFESSIONAL_PLUS";
const VS: &str = "VISUAL_STUDIO_PROFESSIONAL";
const I_OFFICE: &str = "i-0a1b2c3d4e5f60001";
const I_VS: &str = "i-0a1b2c3d4e5f60002";
const I_RDS: &str = "i-0a1b2c3d4e5f60003";

/// Ada's AD user name: three spellings of one AD user, and another user.
const SPELLINGS: [&str; 4] = ["ALovelace", "alovelace", "ALOVELACE", "lovelacea"];
/// The subscription sets an event may ask for: (product, instances).
const SETS: [&[(&str, &str)]; 6] = [
    &[],
    &[(OFFICE, I_OFFICE)],
    &[(VS, I_VS)],
    &[(RDS_SAL, I_RDS)],
    &[(OFFICE, I_OFFICE), (RDS_SAL, I_RDS)],
    &[(VS, I_VS), (RDS_SAL, I_RDS)],
];
const KINDS: [&str; 4] = ["joiner", "mover", "leaver", "rehire"];

/// (products, instances) by the user name exactly as the service holds it.
type Held = BTreeMap<String, (Vec<String>, Vec<String>)>;

/// One generated event of Ada's.
#[derive(Clone, Debug)]
struct Ev {
    kind: usize,
    day: u8,
    spelling: usize,
    set: usize,
}

fn fixture_json(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The event's body; `seq` makes its eventId unique (and orders ties on occurredAt).
fn body(e: &Ev, seq: usize) -> String {
    let event_id = format!("h-{seq:03}");
    let when = format!("2026-11-{:02}T09:00:00Z", 1 + e.day);
    if KINDS[e.kind] == "leaver" {
        let person = json!({"externalId": {"issuer": "workday", "id": "100234"}});
        return json!({"eventId": event_id, "type": "leaver", "occurredAt": when, "person": person}).to_string();
    }
    let mut v = fixture_json("01-joiner-ada.json");
    v["eventId"] = event_id.into();
    v["occurredAt"] = when.into();
    v["type"] = KINDS[e.kind].into();
    v["person"]["directoryUserName"] = SPELLINGS[e.spelling].into();
    v["subscriptions"] =
        SETS[e.set].iter().map(|(p, i)| json!({"product": p, "instanceIds": [i]})).collect::<Vec<_>>().into();
    v.to_string()
}

/// Byron, another person, joined before Ada's history: nothing of Ada's may touch him.
fn byron() -> String {
    let mut v = fixture_json("01-joiner-ada.json");
    v["eventId"] = "byron-joiner".into();
    v["person"]["externalId"]["id"] = "100999".into();
    v["person"]["userName"] = "lord.byron".into();
    v["person"]["email"] = "lord.byron@example.com".into();
    v["person"]["directoryUserName"] = "abyron".into();
    v.to_string()
}

/// How License Manager behaves where its documentation is silent or the simulator has a mode.
#[derive(Clone, Copy, Debug)]
struct Service {
    adds_rds: bool,
    case_sensitive: bool,
}

fn world(service: Service) -> (State, MemoryBackend) {
    let sim = SimUserSubscriptions::demo();
    if service.adds_rds {
        sim.subscribe_rds_with_other_products();
    }
    if service.case_sensitive {
        sim.case_sensitive_user_names();
    }
    let config = Config::from_lookup(|k| match k {
        "JML_BACKEND" => Some("memory".to_string()),
        "BREAKER_LEAVERS_PER_HOUR" => Some("0".to_string()),
        _ => None,
    })
    .unwrap();
    subscription_sync::memory(Arc::new(sim), &config).unwrap()
}

/// What one AD user name holds given a requested set: the set, plus the SAL where the service
/// adds it beside another product.
fn expected_for(set: &[(&str, &str)], service: Service) -> (Vec<String>, Vec<String>) {
    let mut products: BTreeSet<String> = set.iter().map(|(p, _)| p.to_string()).collect();
    if service.adds_rds && products.iter().any(|p| p != RDS_SAL) {
        products.insert(RDS_SAL.to_string());
    }
    let instances: BTreeSet<String> = set.iter().map(|(_, i)| i.to_string()).collect();
    (products.into_iter().collect(), instances.into_iter().collect())
}

/// The oracle: the state the events (with their sequence numbers) call for, by a simple model.
fn oracle(events: &[(usize, &Ev)], service: Service) -> Held {
    let key = |(seq, e): &&(usize, &Ev)| (e.day, format!("h-{seq:03}"));
    let mut out = Held::new();
    out.insert("abyron".to_string(), expected_for(SETS[1], service));
    let lifecycle = events.iter().filter(|(_, e)| matches!(KINDS[e.kind], "leaver" | "rehire")).max_by_key(key);
    if lifecycle.is_some_and(|(_, e)| KINDS[e.kind] == "leaver") {
        return out;
    }
    if let Some((_, e)) = events.iter().filter(|(_, e)| KINDS[e.kind] != "leaver").max_by_key(key) {
        let held = expected_for(SETS[e.set], service);
        if !held.0.is_empty() || !held.1.is_empty() {
            out.insert(SPELLINGS[e.spelling].to_string(), held);
        }
    }
    out
}

fn held(mem: &MemoryBackend) -> Held {
    mem.service.all_holdings().into_iter().filter(|(_, (p, i))| !p.is_empty() || !i.is_empty()).collect()
}

async fn deliver(state: &State, body: &str) -> RecordReport {
    process_record(state, body, &RecordMeta::default()).await
}

/// Delivers `order` (indexes into `events`, with repeats), checking invariants 1 and 3 after
/// each delivery; returns the end state.
async fn run(events: &[Ev], order: &[usize], service: Service) -> Result<Held, TestCaseError> {
    let (state, mem) = world(service);
    let r = deliver(&state, &byron()).await;
    prop_assert_eq!(r.result, RecordResult::Done, "{:?}", r.error);
    let mut delivered: BTreeMap<usize, &Ev> = BTreeMap::new();
    for &i in order {
        let r = deliver(&state, &body(&events[i], i)).await;
        prop_assert_eq!(r.result, RecordResult::Done, "event {} ({:?}) not applied: {:?}", i, events[i], r.error);
        delivered.insert(i, &events[i]);
        let so_far: Vec<(usize, &Ev)> = delivered.iter().map(|(s, e)| (*s, *e)).collect();
        let want = oracle(&so_far, service);
        prop_assert_eq!(held(&mem), want.clone(), "after delivering event {} of {:?} in order {:?}", i, events, order);
        if !want.keys().any(|n| n != "abyron") {
            for spelling in SPELLINGS {
                prop_assert_eq!(mem.service.holdings(spelling), (vec![], vec![]), "{} holds access", spelling);
            }
        }
    }
    Ok(held(&mem))
}

fn history() -> impl Strategy<Value = (Vec<Ev>, Vec<usize>, Service)> {
    let ev = (0..KINDS.len(), 0u8..4, 0..SPELLINGS.len(), 0..SETS.len()).prop_map(|(kind, day, spelling, set)| Ev {
        kind,
        day,
        spelling,
        set,
    });
    (prop::collection::vec(ev, 1..7), any::<bool>(), any::<bool>()).prop_flat_map(
        |(events, adds_rds, case_sensitive)| {
            let n = events.len();
            let order =
                (Just((0..n).collect::<Vec<usize>>()).prop_shuffle(), prop::collection::vec((0..n, 0..=n), 0..3))
                    .prop_map(|(mut order, dups)| {
                        for (i, at) in dups {
                            order.insert(at.min(order.len()), i);
                        }
                        order
                    });
            (Just(events), order, Just(Service { adds_rds, case_sensitive }))
        },
    )
}

fn cases() -> u32 {
    std::env::var("JML_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_subscriptions_a_history_leaves_are_the_latest_events_in_any_delivery_order(
        (events, order, service) in history()
    ) {
        let shuffled = block_on(run(&events, &order, service))?;
        let mut in_order: Vec<usize> = (0..events.len()).collect();
        in_order.sort_by_key(|&i| (events[i].day, format!("h-{i:03}")));
        let sorted = block_on(run(&events, &in_order, service))?;
        prop_assert_eq!(shuffled, sorted);
    }
}

fn ev(kind: &str, day: u8, spelling: usize, set: usize) -> Ev {
    Ev { kind: KINDS.iter().position(|k| *k == kind).unwrap(), day, spelling, set }
}

/// Issue 22 B: an AD user name that changes in case only (HR's clean-up `ALovelace` ->
/// `alovelace`): the mover leaves the person under the new spelling only, and the leaver
/// releases every spelling, on either reading of how License Manager compares names.
#[tokio::test]
async fn a_case_only_rename_leaves_one_spelling_and_the_leaver_releases_every_spelling() {
    for case_sensitive in [false, true] {
        let service = Service { adds_rds: false, case_sensitive };
        let (state, mem) = world(service);
        let joiner = ev("joiner", 0, 0, 1);
        let mover = ev("mover", 1, 1, 2);
        assert_eq!(deliver(&state, &body(&joiner, 0)).await.result, RecordResult::Done);
        assert_eq!(held(&mem).keys().collect::<Vec<_>>(), vec!["ALovelace"]);
        assert_eq!(deliver(&state, &body(&mover, 1)).await.result, RecordResult::Done);
        let one = Held::from([("alovelace".to_string(), (vec![VS.to_string()], vec![I_VS.to_string()]))]);
        assert_eq!(held(&mem), one, "case_sensitive={case_sensitive}: only the new spelling holds");
        let r = deliver(&state, &body(&ev("leaver", 2, 0, 0), 2)).await;
        assert_eq!(r.result, RecordResult::Done, "{:?}", r.error);
        assert_eq!(held(&mem), Held::new(), "case_sensitive={case_sensitive}: every spelling released");
    }
}

/// Issue 22 B: a row the service holds under a spelling jml-sync never used (granted by hand,
/// or before the inventory kept spellings) answers the read of any spelling on a service that
/// compares names without case: the leaver releases it under the service's own spelling.
#[tokio::test]
async fn a_leaver_releases_a_seat_held_under_another_spelling_of_the_name() {
    let (state, mem) = world(Service { adds_rds: false, case_sensitive: false });
    assert_eq!(deliver(&state, &body(&ev("joiner", 0, 1, 1), 0)).await.result, RecordResult::Done);
    mem.service.hold_by_hand("ALOVELACE", Some(VS), Some(I_VS), true);
    let r = deliver(&state, &body(&ev("leaver", 1, 0, 0), 1)).await;
    assert_eq!(r.result, RecordResult::Done, "{:?}", r.error);
    assert_eq!(held(&mem), Held::new());
}

/// Issue 22 B: revocation never trusts the ListInstances cache. A seat on an instance added
/// after the function cached the list (granted by another container, or by hand) is released by
/// the leaver, and the read-back sees it too.
#[tokio::test]
async fn a_leaver_releases_a_seat_on_an_instance_added_after_the_list_was_cached() {
    let (state, mem) = world(Service { adds_rds: false, case_sensitive: false });
    assert_eq!(deliver(&state, &body(&ev("joiner", 0, 1, 1), 0)).await.result, RecordResult::Done);
    mem.service.add_instance("i-0a1b2c3d4e5f60009", &[OFFICE]);
    mem.service.hold_by_hand("alovelace", None, Some("i-0a1b2c3d4e5f60009"), true);
    let r = deliver(&state, &body(&ev("leaver", 1, 0, 0), 1)).await;
    assert_eq!(r.result, RecordResult::Done, "{:?}", r.error);
    assert_eq!(r.outcome.as_ref().map(|o| o.decision), Some(Decision::Disable));
    assert_eq!(mem.service.holdings("alovelace"), (vec![], vec![]), "the new instance's seat is released");
}

/// Issue 22 E: an earlier event asked for the RDS SAL, the latest for Office only. Both
/// delivery orders end in the latest event's set, on a service that adds the SAL itself (kept
/// beside Office) and on one that does not (stopped).
#[tokio::test]
async fn an_earlier_request_for_the_rds_sal_does_not_outlive_the_latest_event_in_either_order() {
    for adds_rds in [false, true] {
        let service = Service { adds_rds, case_sensitive: false };
        let events = [ev("joiner", 0, 1, 3), ev("mover", 1, 1, 1)];
        let mut ends = Vec::new();
        for order in [[0, 1], [1, 0]] {
            let (state, mem) = world(service);
            for i in order {
                assert_eq!(deliver(&state, &body(&events[i], i)).await.result, RecordResult::Done);
            }
            ends.push(mem.service.holdings("alovelace"));
        }
        assert_eq!(ends[0], ends[1], "adds_rds={adds_rds}: the two orders end alike");
        assert_eq!(ends[0], expected_for(SETS[1], service), "adds_rds={adds_rds}: the latest event's set");
    }
}
