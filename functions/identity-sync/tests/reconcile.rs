//! Reconciliation of the Identity Store on the simulator: drift of each kind injected by hand,
//! the refused partial snapshot, bad lines by number, and corrective events that converge to no
//! drift and are deduplicated when re-run.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use jml_core::ledger::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

use jml_core::ledger::PersonStatus;
use jml_core::reconcile::LedgerView;

use chrono::{DateTime, Utc};
use identity_sync::port::{IdentityStore, UserStatus};
use identity_sync::reconcile::{diff, managed_with_access, read};
use identity_sync::sim::demo_identity_store;
use jml_core::config::Config;
use jml_core::reconcile::{check_not_partial, parse_snapshot};
use serde_json::Value;

fn event(name: &str) -> Value {
    let p = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn line(mut v: Value) -> String {
    for k in ["eventId", "type", "occurredAt"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v.to_string()
}

#[tokio::test]
async fn every_identity_drift_kind_is_found_and_apply_converges() {
    let store = Arc::new(demo_identity_store());
    let cfg = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    let (state, mem) = identity_sync::memory(store.clone(), &cfg).unwrap();
    let ada = event("01-joiner-ada.json");
    let alan = event("02-joiner-alan.json");
    let zoe = event("07-joiner-zoe.json");
    for e in [&ada, &alan, &zoe] {
        identity_sync::process_record(&state, &e.to_string(), &Default::default()).await;
    }
    // By hand: ada loses a membership and her title; zoe is disabled; a stranger takes a name.
    let ada_id = store.find_user_by_user_name(&"ada.lovelace".parse_name()).await.unwrap().unwrap();
    let m = store.memberships(&ada_id).await.unwrap();
    store.remove_membership(&m[0].membership_id).await.unwrap();
    store.update_user(&ada_id, &[identity_sync::port::AttributeChange { path: "title", value: None }]).await.unwrap();
    let zoe_id = store.find_user_by_user_name(&"zoë.o'brien".parse_name()).await.unwrap().unwrap();
    store.set_user_status(&zoe_id, UserStatus::Disabled).await.unwrap();
    store.seed_user("katherine.johnson", None, None);
    // HR: ada, zoe, a new person whose userName the stranger holds, alan gone (no leaver)
    let mut kj = alan.clone();
    kj["person"]["externalId"]["id"] = "100400".into();
    kj["person"]["userName"] = "katherine.johnson".into();
    let text =
        [line(ada.clone()), line(zoe.clone()), line(kj), "{not json".into(), r#"{"eventId": "x"}"#.into()].join("\n");
    let as_of: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    let snap = parse_snapshot(&text, as_of);
    assert_eq!(snap.bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![4, 5], "bad lines by number, the rest read");
    assert_eq!(snap.bad[1].errors[0].field, "eventId");
    let managed = &identity_sync::Settings::from_config(&cfg).unwrap().managed_groups;
    let st = read(store.as_ref(), managed).await.unwrap();
    // 1 of 3 managed people missing: refused at 10%, accepted at 50%
    assert!(check_not_partial(&managed_with_access(&st), &snap, 0.10).unwrap_err().contains("refused"));
    check_not_partial(&managed_with_access(&st), &snap, 0.5).unwrap();
    let known: LedgerView = mem.ledger.known(identity_sync::IDENTITY_TARGET).await.unwrap();
    assert_eq!(known.len(), 3, "ada, alan, zoe: {:?}", known.keys());
    let drift = diff(&snap, &st, &known);
    let got: Vec<(&str, &str)> = drift.iter().map(|d| (d.person.as_str(), d.kind.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("workday#100234", "attributes"),
            ("workday#100234", "groups-missing"),
            ("workday#100235", "orphan-account"),
            ("workday#100311", "status"),
            ("workday#100400", "collision"),
        ]
    );
    assert!(drift[0].detail.contains("title"), "{}", drift[0].detail);
    // The ledger says alan left: the same account is then leaver-still-active (critical).
    let mut left = known.clone();
    left.get_mut("workday#100235").unwrap().record.as_mut().unwrap().status = PersonStatus::Disabled;
    assert!(diff(&snap, &st, &left).iter().any(|d| d.kind.as_str() == "leaver-still-active"));
    // --apply: corrective events through the handler; then no drift but what a human decides: the
    // collision, and zoe disabled by hand while the ledger says employed (maybe an incident
    // lockout: jml-sync never re-enables what it did not disable).
    let report = jml_core::reconcile::Report {
        as_of,
        people: snap.people.len(),
        targets: vec!["identity-store".into()],
        drift: drift.clone(),
        bad: vec![],
    };
    // Had the ledger said zoe left, the snapshot listing her (a lagging export) would never
    // reverse the recorded leaver: no event for her at all, the correction held for a human.
    // The same for ada, whose attributes drifted: her mover correction is held, not sent.
    let left = BTreeSet::from(["workday#100311".to_string(), "workday#100234".to_string()]);
    let corrections = report.corrective_events(&snap, &left);
    let ids: Vec<&str> = corrections.events.iter().filter_map(|e| e["person"]["externalId"]["id"].as_str()).collect();
    assert!(!ids.contains(&"100311") && !ids.contains(&"100234"), "{ids:?}");
    assert!(corrections.events.iter().all(|e| e["type"] != "rehire"));
    assert!(
        corrections.held.iter().any(|h| h.person == "workday#100234" && h.reason.starts_with("listed after leaving"))
    );
    // Lines 4 and 5 name nobody: either may be alan's, so his leaver is held until HR fixes
    // them (reported, never sent).
    let held = report.corrective_events(&snap, &BTreeSet::new());
    assert_eq!(held.held.len(), 1, "{held:?}");
    assert_eq!(held.held[0].person, "workday#100235");
    assert!(held.held[0].reason.contains("line(s) 4, 5"), "{}", held.held[0].reason);
    assert!(held.events.iter().all(|e| e["type"] != "leaver"));
    // HR fixes the export: the same three good lines alone.
    let snap = parse_snapshot(&text.lines().take(3).collect::<Vec<_>>().join("\n"), as_of);
    assert!(snap.bad.is_empty());
    let events = report.corrective_events(&snap, &BTreeSet::new()).events;
    let kinds: Vec<(&str, &str)> =
        events.iter().map(|e| (e["eventId"].as_str().unwrap(), e["type"].as_str().unwrap())).collect();
    assert_eq!(
        kinds,
        vec![
            ("reconcile-20261201T000000Z-workday_100234", "mover"),
            ("reconcile-20261201T000000Z-workday_100235", "leaver")
        ],
        "none for the collision or the hand-disabled user"
    );
    for e in &events {
        identity_sync::process_record(&state, &e.to_string(), &Default::default()).await;
    }
    let known = mem.ledger.known(identity_sync::IDENTITY_TARGET).await.unwrap();
    let after = diff(&snap, &read(store.as_ref(), managed).await.unwrap(), &known);
    let kinds: Vec<&str> = after.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, vec!["status", "collision"], "{after:?}");
    // Re-run: the same event ids are duplicates, nothing written.
    mem.ledger.reset_calls();
    for e in &events {
        let r = identity_sync::process_record(&state, &e.to_string(), &Default::default()).await;
        assert_eq!(r.outcome.unwrap().decision.as_str(), "duplicate");
    }
    assert_eq!(mem.ledger.calls().writes, 0);
}

trait ParseName {
    fn parse_name(&self) -> jml_core::contract::UserName;
}

impl ParseName for str {
    fn parse_name(&self) -> jml_core::contract::UserName {
        jml_core::contract::UserName::parse(self).unwrap()
    }
}
