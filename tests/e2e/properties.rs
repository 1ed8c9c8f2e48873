//! Property: any sequence of events, with duplicate deliveries inserted anywhere after their
//! original (a redelivery, a producer resending, an EventBridge retry), ends in the same state as
//! the same sequence delivered once: the ledger's duplicate and stale guards make every late copy
//! a no-op for the Identity Store.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{fixture_json, memory_state};

/// A pool of events for two people: (person index, kind, variant).
fn event(person: u8, kind: u8, variant: u8, seq: usize) -> String {
    let mut v: Value = fixture_json("01-joiner-ada.json");
    let id = format!("10023{person}");
    v["eventId"] = format!("ev-{seq}").into();
    v["occurredAt"] = format!("2026-11-{:02}T09:00:00Z", 1 + seq % 28).into();
    v["person"]["externalId"]["id"] = id.clone().into();
    v["person"]["userName"] = format!("user.{id}").into();
    v["person"]["email"] = format!("user.{id}@example.com").into();
    let groups = [json!(["jml-all-staff"]), json!(["jml-vpn", "jml-engineering"]), json!([])];
    v["groups"] = groups[variant as usize % 3].clone();
    v["person"]["title"] = format!("Title {variant}").into();
    match kind % 4 {
        0 => v["type"] = "joiner".into(),
        1 => v["type"] = "mover".into(),
        2 => v["type"] = "rehire".into(),
        _ => {
            v = json!({"eventId": format!("ev-{seq}"), "type": "leaver", "occurredAt": "2026-11-20T17:00:00Z",
                       "person": {"externalId": {"issuer": "workday", "id": id}}});
        }
    }
    v.to_string()
}

async fn final_state(bodies: &[String]) -> Vec<identity_sync::sim::UserView> {
    let (state, mem) = memory_state();
    for b in bodies {
        let r = identity_sync::process_record(&state, b, &Default::default()).await;
        assert!(r.error.is_none(), "{:?}", r.error);
    }
    mem.store.users()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn duplicates_never_change_the_end_state(
        seq in prop::collection::vec((0u8..2, 0u8..4, 0u8..3), 1..10),
        dups in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..6),
    ) {
        let once: Vec<String> = seq.iter().enumerate().map(|(i, (p, k, v))| event(*p, *k, *v, i)).collect();
        // Each duplicate copies event `a` and is delivered at some position after it.
        let mut twice = once.clone();
        for (a, b) in &dups {
            let original = a.index(once.len());
            let pos = twice.iter().position(|e| *e == once[original]).unwrap_or(0);
            let at = pos + 1 + b.index(twice.len() - pos);
            twice.insert(at, once[original].clone());
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (a, b) = rt.block_on(async { (final_state(&once).await, final_state(&twice).await) });
        // Same users, ids, statuses, groups, attributes and revisions: duplicates wrote nothing.
        prop_assert_eq!(a, b);
    }
}
