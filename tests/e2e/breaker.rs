//! The blast-radius breaker: beyond the threshold of leavers an hour, leavers are held (recorded,
//! audited, counted), nothing is dropped, and an operator's release applies them.

use std::sync::Arc;

use identity_sync::port::UserStatus;
use jml_core::config::Config;
use jml_core::engine::Decision;
use jml_core::ledger::prelude::*;
use jml_core::metrics::MemorySink;
use serde_json::{Value, json};

use crate::fixture_json;

fn person(n: u32) -> (String, String) {
    let mut j = fixture_json("01-joiner-ada.json");
    j["eventId"] = format!("join-{n}").into();
    j["person"]["externalId"]["id"] = format!("9000{n}").into();
    j["person"]["userName"] = format!("user{n}").into();
    j["person"]["email"] = format!("user{n}@example.com").into();
    let leaver: Value = json!({"eventId": format!("leave-{n}"), "type": "leaver", "occurredAt": "2026-11-20T17:00:00Z",
        "person": {"externalId": {"issuer": "workday", "id": format!("9000{n}")}}});
    (j.to_string(), leaver.to_string())
}

#[tokio::test]
async fn leavers_beyond_the_threshold_are_held_then_released_by_an_operator() {
    let config = Config::from_lookup(|k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "BREAKER_LEAVERS_PER_HOUR" => Some("2".into()),
        _ => None,
    })
    .unwrap();
    let (mut state, mem) =
        identity_sync::memory(Arc::new(identity_sync::sim::demo_identity_store()), &config).expect("memory settings");
    let sink = Arc::new(MemorySink::default());
    state.metrics = sink.clone();
    let meta = identity_sync::RecordMeta::default();
    let people: Vec<(String, String)> = (1..=4).map(person).collect();
    for (joiner, _) in &people {
        identity_sync::process_record(&state, joiner, &meta).await;
    }
    // WHEN four people leave within the hour and the threshold is 2
    let mut decisions = Vec::new();
    for (_, leaver) in &people {
        let r = identity_sync::process_record(&state, leaver, &meta).await;
        assert!(r.error.is_none(), "held is not an error: {:?}", r.error);
        decisions.push(r.outcome.unwrap().decision);
    }
    // THEN two are applied and two held: still enabled, in the ledger as held, counted, audited
    assert_eq!(decisions, vec![Decision::Disable, Decision::Disable, Decision::Held, Decision::Held]);
    let status = |n: u32| mem.store.user(&format!("user{n}")).unwrap().status;
    assert_eq!(
        (status(1), status(2), status(3), status(4)),
        (UserStatus::Disabled, UserStatus::Disabled, UserStatus::Enabled, UserStatus::Enabled)
    );
    let held = state.engine.held().await.unwrap();
    assert_eq!(held.iter().map(|h| h.event_id.as_str()).collect::<Vec<_>>(), vec!["leave-3", "leave-4"]);
    assert_eq!(sink.documents().iter().filter(|d| d.get("Held").is_some()).count(), 2);
    let trail = mem.ledger.audit_trail("workday#90003").await.unwrap();
    assert_eq!(trail.last().map(|a| a.decision.as_str()), Some("held"));
    // AND a redelivery of a held leaver is held again, not lost and not applied
    let again = identity_sync::process_record(&state, &people[2].1, &meta).await;
    assert_eq!(again.outcome.unwrap().decision, Decision::Held);
    // WHEN the operator releases them
    let released = state.engine.release_held().await.unwrap();
    assert_eq!(released.len(), 2);
    assert!(released.iter().all(|(_, r)| matches!(r, Ok(o) if o.decision == Decision::Disable)));
    // THEN they are applied and no longer held
    assert_eq!((status(3), status(4)), (UserStatus::Disabled, UserStatus::Disabled));
    assert!(state.engine.held().await.unwrap().is_empty());
}
