//! Issue 22, items D and G: nothing is acknowledged unless it was applied, parked or held, and one
//! clock bounds what an event may claim. Each test states the invariant it checks; each failed on
//! 2b56a5a.

use std::sync::Arc;

use identity_sync::IDENTITY_TARGET;
use identity_sync::port::UserStatus;
use identity_sync::sim::Fault;
use jml_core::batch::RecordResult;
use jml_core::clock::Clock;
use jml_core::config::Config;
use jml_core::engine::Decision;
use jml_core::metrics::MemorySink;
use jml_core::ports::ServiceError;
use serde_json::{Value, json};

use crate::{decision, fixture, fixture_json, memory_state, run};

const ADA: &str = "workday#100234";

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    jml_core::clock::parse_now(s).unwrap()
}

/// The identity target on the demo simulator, its clock at `now`.
fn state_at(now: &str) -> (identity_sync::State, identity_sync::MemoryBackend) {
    let (mut state, mem) = memory_state();
    state.engine = state.engine.with_clock(Clock::at(at(now)));
    (state, mem)
}

fn code(r: &jml_core::lambda::RecordReport) -> Option<&str> {
    r.error.as_ref().map(|(c, _)| c.as_str())
}

/// Invariant: an event dated further ahead of the clock than the skew never becomes the person's
/// newest event. (On 2b56a5a a rehire typed 2207 was applied and every later leaver was stale.)
#[tokio::test]
async fn a_typo_d_year_is_parked_and_the_later_leaver_still_revokes() {
    let (state, mem) = state_at("2026-12-01T09:00:00Z");
    run(&state, &fixture("01-joiner-ada.json")).await;
    let mut typo = fixture_json("05-rehire-ada.json");
    typo["occurredAt"] = "2207-11-30T09:00:00Z".into();
    let r = run(&state, &typo.to_string()).await;
    assert_eq!((r.result, code(&r)), (RecordResult::Parked, Some("OccurredInFuture")));
    assert_eq!(mem.dlq.parked().len(), 1, "parked with its reason, not dropped");
    assert!(mem.dlq.parked()[0].reason.contains("occurredAt: 2207-11-30T09:00:00Z"));
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(decision(&r), Decision::Disable, "the leaver is not stale behind the typo");
    assert_eq!(mem.store.user("ada.lovelace").unwrap().status, UserStatus::Disabled);
    // Within the skew an event is accepted: HR's clock runs a little ahead of ours.
    let (state, _) = state_at("2026-11-02T08:56:00Z");
    assert_eq!(decision(&run(&state, &fixture("01-joiner-ada.json")).await), Decision::Create);
}

/// Invariant: an eventId names one HR change. A leaver reusing the id of another event of the
/// person is parked (`EventIdReused`), never settled as a duplicate; the same event again, however
/// re-serialised, is a duplicate.
#[tokio::test]
async fn a_leaver_reusing_another_events_id_is_parked_and_a_true_redelivery_is_a_duplicate() {
    let (state, mem) = memory_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    run(&state, &fixture("03-mover-ada.json")).await;
    let mover_id = fixture_json("03-mover-ada.json")["eventId"].clone();
    let mut leaver = fixture_json("04-leaver-ada.json");
    leaver["eventId"] = mover_id;
    let r = run(&state, &leaver.to_string()).await;
    assert_eq!((r.result, code(&r)), (RecordResult::Parked, Some("EventIdReused")), "{:?}", r.error);
    assert_eq!(mem.store.user("ada.lovelace").unwrap().status, UserStatus::Enabled, "nothing applied");
    // The same mover again, its keys in another order and pretty-printed: a duplicate.
    let mover: Value = fixture_json("03-mover-ada.json");
    let mut reordered = serde_json::Map::new();
    for (k, v) in mover.as_object().unwrap().iter().rev() {
        reordered.insert(k.clone(), v.clone());
    }
    let again = serde_json::to_string_pretty(&Value::Object(reordered)).unwrap();
    assert_eq!(decision(&run(&state, &again).await), Decision::Duplicate);
}

/// Invariant: a stored leaver is never forgotten, even when its body no longer validates (a
/// stricter contract): a later mover does not grant again. (On 2b56a5a an unparseable stored
/// body counted as absent and the mover re-enabled the person.)
#[tokio::test]
async fn a_stored_leaver_that_no_longer_validates_still_decides() {
    let (state, mem) = memory_state();
    for f in ["01-joiner-ada.json", "04-leaver-ada.json"] {
        run(&state, &fixture(f)).await;
    }
    let mut rec = mem.ledger.record(ADA, IDENTITY_TARGET).unwrap();
    let mut stored: Value = serde_json::from_str(rec.lifecycle_event.as_deref().unwrap()).unwrap();
    stored["addedByANewerProducer"] = json!({"anything": 1});
    rec.lifecycle_event = Some(stored.to_string());
    mem.ledger.force_put(rec);
    let mut mover = fixture_json("03-mover-ada.json");
    mover["eventId"] = "hr-2026-11-25-0009".into();
    mover["occurredAt"] = "2026-11-25T09:00:00Z".into();
    let r = run(&state, &mover.to_string()).await;
    assert_eq!(decision(&r), Decision::IgnoredForDisabledUser);
    let ada = mem.store.user("ada.lovelace").unwrap();
    assert_eq!(ada.status, UserStatus::Disabled);
    assert!(ada.groups.is_empty(), "no group granted again");
}

/// Invariant: when the stored event that decides the person's state cannot be read, nothing
/// converges (fail closed): the event is parked `StoredEventUnreadable`, the account untouched.
#[tokio::test]
async fn an_unreadable_stored_rehire_blocks_convergence_instead_of_being_ignored() {
    let (state, mem) = memory_state();
    for f in ["01-joiner-ada.json", "04-leaver-ada.json", "05-rehire-ada.json"] {
        run(&state, &fixture(f)).await;
    }
    let mut rec = mem.ledger.record(ADA, IDENTITY_TARGET).unwrap();
    let mut stored: Value = serde_json::from_str(rec.lifecycle_event.as_deref().unwrap()).unwrap();
    stored["person"]["email"] = json!(12345);
    rec.lifecycle_event = Some(stored.to_string());
    rec.last_event = Some(stored.to_string());
    mem.ledger.force_put(rec);
    let before = mem.store.user("ada.lovelace").unwrap();
    // An older mover (before the rehire): the unreadable rehire still decides the state.
    let r = run(&state, &fixture("03-mover-ada.json")).await;
    assert_eq!(r.result, RecordResult::Done, "an older profile is stale: {:?}", r.error);
    // A newer leaver decides on its own: it applies.
    let leaver = json!({"eventId": "hr-2026-12-01-0001", "type": "leaver", "occurredAt": "2026-12-01T08:00:00Z",
        "person": {"externalId": {"issuer": "workday", "id": "100234"}}});
    assert_eq!(before.status, UserStatus::Enabled);
    assert_eq!(decision(&run(&state, &leaver.to_string()).await), Decision::Disable);
    // Back to an unreadable deciding rehire: a redelivered older leaver cannot converge either.
    let mut rec = mem.ledger.record(ADA, IDENTITY_TARGET).unwrap();
    rec.lifecycle_event = Some(stored.to_string());
    mem.ledger.force_put(rec);
    let mut older = fixture_json("03-mover-ada.json");
    older["eventId"] = "hr-2026-11-10-0007".into();
    older["type"] = "rehire".into();
    older["occurredAt"] = "2026-11-29T09:00:00Z".into();
    let r = run(&state, &older.to_string()).await;
    assert!(matches!(r.result, RecordResult::Done), "older than the stored rehire: stale, {:?}", r.error);
    let mut newer_profile = fixture_json("03-mover-ada.json");
    newer_profile["eventId"] = "hr-2026-11-30-0100".into();
    newer_profile["occurredAt"] = "2026-11-30T10:00:00Z".into();
    rec = mem.ledger.record(ADA, IDENTITY_TARGET).unwrap();
    rec.last_event = Some(stored.to_string());
    mem.ledger.force_put(rec);
    let r = run(&state, &newer_profile.to_string()).await;
    assert_eq!((r.result, code(&r)), (RecordResult::Parked, Some("StoredEventUnreadable")), "{:?}", r.error);
    assert_eq!(mem.store.user("ada.lovelace").unwrap().status, UserStatus::Disabled, "untouched");
}

/// Invariant: a leaver is recorded before anything is revoked. If it fails half-way, the next
/// event of the person converges to the leaver, never back to the profile. (On 2b56a5a the
/// failed leaver was not recorded and the next mover granted the removed groups again.)
#[tokio::test]
async fn a_leaver_that_fails_after_revoking_is_already_recorded_and_the_next_mover_does_not_regrant() {
    let (state, mem) = memory_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    let op = identity_sync::port::op::UPDATE_USER;
    mem.store.inject(Fault::next(op, ServiceError::Unavailable { op, message: "crash".into() }, 1));
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(r.result, RecordResult::Retry, "{:?}", r.error);
    let rec = mem.ledger.record(ADA, IDENTITY_TARGET).unwrap();
    assert!(rec.lifecycle_event.as_deref().is_some_and(|b| b.contains("\"leaver\"")), "the leaving intent is recorded");
    let mut mover = fixture_json("03-mover-ada.json");
    mover["eventId"] = "hr-2026-11-25-0009".into();
    mover["occurredAt"] = "2026-11-25T09:00:00Z".into();
    run(&state, &mover.to_string()).await;
    let ada = mem.store.user("ada.lovelace").unwrap();
    assert_eq!(ada.status, UserStatus::Disabled, "the mover converged to the recorded leaver");
    assert!(ada.groups.is_empty());
    // And the leaver's own redelivery settles it as done.
    assert_eq!(run(&state, &fixture("04-leaver-ada.json")).await.result, RecordResult::Done);
    assert_eq!(mem.ledger.record(ADA, IDENTITY_TARGET).unwrap().status, jml_core::ledger::PersonStatus::Disabled);
}

/// Invariant: a leaver for an ExternalId the ledger never saw, that folds to a known person's
/// (issuer case, full-width digits), is parked for a human, never acknowledged as "no account";
/// a leaver for a truly unknown person is counted (`UnknownPersonLeavers`).
#[tokio::test]
async fn a_leaver_for_a_near_variant_of_a_known_person_is_parked_and_unknown_ones_are_counted() {
    let (mut state, mem) = memory_state();
    let sink = Arc::new(MemorySink::default());
    state.metrics = sink.clone();
    run(&state, &fixture("01-joiner-ada.json")).await;
    for (n, (issuer, id)) in
        [("Workday", "100234"), ("workday", "\u{ff11}\u{ff10}\u{ff10}\u{ff12}\u{ff13}\u{ff14}"), ("WORKDAY", "100234")]
            .into_iter()
            .enumerate()
    {
        let leaver = json!({"eventId": format!("x-{n}"), "type": "leaver", "occurredAt": "2026-11-20T17:00:00Z",
            "person": {"externalId": {"issuer": issuer, "id": id}}});
        let r = run(&state, &leaver.to_string()).await;
        assert_eq!((r.result, code(&r)), (RecordResult::Parked, Some("ExternalIdVariant")), "{issuer}#{id}");
        assert!(r.error.as_ref().unwrap().1.contains(ADA), "names the person HR most likely meant");
    }
    assert_eq!(mem.store.user("ada.lovelace").unwrap().status, UserStatus::Enabled);
    let unknown = json!({"eventId": "x-1", "type": "leaver", "occurredAt": "2026-11-20T17:00:00Z",
        "person": {"externalId": {"issuer": "workday", "id": "999999"}}});
    assert_eq!(decision(&run(&state, &unknown.to_string()).await), Decision::LeaverWithoutAccount);
    assert_eq!(sink.documents().iter().filter(|d| d.get("UnknownPersonLeavers").is_some()).count(), 2);
}

/// Invariant: the breaker counts every change that removes all of a person's access, not only
/// leavers: a flood of movers that strip everything is held beyond the limit.
#[tokio::test]
async fn movers_that_strip_everything_count_against_the_breaker_like_leavers() {
    let config = Config::from_lookup(|k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "BREAKER_LEAVERS_PER_HOUR" => Some("1".into()),
        _ => None,
    })
    .unwrap();
    let (state, mem) =
        identity_sync::memory(Arc::new(identity_sync::sim::demo_identity_store()), &config).expect("memory settings");
    let mut decisions = Vec::new();
    for n in 1..=2 {
        let mut j = fixture_json("01-joiner-ada.json");
        j["eventId"] = format!("join-{n}").into();
        j["person"]["externalId"]["id"] = format!("9100{n}").into();
        j["person"]["userName"] = format!("strip{n}").into();
        run(&state, &j.to_string()).await;
        let mut m = j.clone();
        m["eventId"] = format!("strip-{n}").into();
        m["type"] = "mover".into();
        m["occurredAt"] = "2026-11-09T08:30:00Z".into();
        m["groups"] = json!([]);
        m["subscriptions"] = json!([]);
        m["appstreamStacks"] = json!([]);
        decisions.push(decision(&run(&state, &m.to_string()).await));
    }
    assert_eq!(decisions, [Decision::Update, Decision::Held]);
    let kept = mem.store.user("strip2").unwrap();
    assert!(!kept.groups.is_empty(), "the held mover removed nothing");
}

/// Invariant: a leaver is never refused for a field it does not need. With a valid eventId,
/// occurredAt and ExternalId, a malformed optional field (an e-mail of 12345, a string for
/// groups) still revokes, and the field errors are reported (note, `LeaverFieldErrors`), in
/// hr-ingest (fanned out) and in every target.
#[tokio::test]
async fn a_leaver_with_malformed_optional_fields_still_revokes_and_reports_them() {
    let (mut state, mem) = memory_state();
    let sink = Arc::new(MemorySink::default());
    state.metrics = sink.clone();
    run(&state, &fixture("01-joiner-ada.json")).await;
    let mut leaver = fixture_json("04-leaver-ada.json");
    leaver["person"]["email"] = json!(12345);
    leaver["groups"] = json!("jml-all-staff");
    let body = leaver.to_string();
    assert!(jml_core::contract::parse_event(&body).is_err(), "the contract still refuses the fields");
    let r = run(&state, &body).await;
    assert_eq!(decision(&r), Decision::Disable, "{:?}", r.error);
    let o = r.outcome.unwrap();
    assert!(o.notes.iter().any(|n| n.contains("bare leaver") && n.contains("person.email")), "{:?}", o.notes);
    assert_eq!(mem.store.user("ada.lovelace").unwrap().status, UserStatus::Disabled);
    assert_eq!(sink.documents().iter().filter(|d| d.get("LeaverFieldErrors").is_some()).count(), 1);
    // Redelivered: the same event, a duplicate (the stored body is read as the bare leaver).
    assert_eq!(decision(&run(&state, &body).await), Decision::Duplicate);
    // hr-ingest fans it out instead of parking it.
    let (ingest, ingest_mem) = hr_ingest::memory(&crate::memory_config(&[]));
    let out = ingest.ingest(&body, Some("m-1")).await;
    assert!(matches!(out, jml_core::ingest::IngestOutcome::FannedOut { .. }), "{out:?}");
    assert!(ingest_mem.dlq.parked().is_empty());
    // Without a valid ExternalId it is still parked: that is what a leaver needs.
    let mut bad = fixture_json("04-leaver-ada.json");
    bad["person"]["externalId"] = json!({"issuer": "", "id": "100234"});
    let out = ingest.ingest(&bad.to_string(), Some("m-2")).await;
    assert!(matches!(out, jml_core::ingest::IngestOutcome::Parked { .. }), "{out:?}");
}

/// Invariant: two people whose ExternalIds fold the same are each their own person: a leaver of
/// one of them who is known under the fold is applied, not parked as a variant of the other.
#[tokio::test]
async fn a_known_person_sharing_a_fold_with_another_still_leaves() {
    let (state, mem) = memory_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    let mut other = fixture_json("01-joiner-ada.json");
    other["eventId"] = "join-upper".into();
    other["person"]["externalId"]["issuer"] = "Workday".into();
    other["person"]["userName"] = "ada.other".into();
    other["person"]["email"] = "ada.other@example.com".into();
    assert_eq!(decision(&run(&state, &other.to_string()).await), Decision::Create);
    let leaver = json!({"eventId": "leave-upper", "type": "leaver", "occurredAt": "2026-11-20T17:00:00Z",
        "person": {"externalId": {"issuer": "Workday", "id": "100234"}}});
    assert_eq!(decision(&run(&state, &leaver.to_string()).await), Decision::Disable);
    assert_eq!(mem.store.user("ada.other").unwrap().status, UserStatus::Disabled);
    assert_eq!(mem.store.user("ada.lovelace").unwrap().status, UserStatus::Enabled, "the other person untouched");
}
