//! subscription-sync on the simulators through the real handler: joiner -> mover (instance
//! change) -> leaver (everything released) -> duplicate, the AD user name's sources, permanent
//! and retryable failures.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use jml_core::batch::RecordResult;
use jml_core::engine::Decision;
use jml_core::ledger::Audit;
use jml_core::ports::ServiceError;
use serde_json::json;
use subscription_sync::sim::SimUserSubscriptions;
use subscription_sync::{MemoryBackend, State};

use jml_core::testkit::{decision, failures, fixture, fixture_json, invoke, run, sqs_batch};

fn subs_state(extra: &[(&str, &str)]) -> (State, MemoryBackend) {
    subscription_sync::memory(Arc::new(SimUserSubscriptions::demo()), &jml_core::testkit::memory_config(extra))
        .expect("memory settings")
}

#[tokio::test]
async fn joiner_mover_leaver_duplicate_follow_the_person_and_the_leaver_releases_everything() {
    let (state, mem) = subs_state(&[]);
    // joiner: product then instance
    assert_eq!(decision(&run(&state, &fixture("01-joiner-ada.json")).await), Decision::Create);
    assert_eq!(
        mem.service.holdings("alovelace"),
        (vec!["OFFICE_PROFESSIONAL_PLUS".to_string()], vec!["i-0a1b2c3d4e5f60001".to_string()])
    );
    // mover: a different product on a different instance
    let r = run(&state, &fixture("03-mover-ada.json")).await;
    assert_eq!(decision(&r), Decision::Update);
    assert_eq!(
        r.outcome.unwrap().actions,
        vec![
            "DisassociateUser i-0a1b2c3d4e5f60001",
            "StopProductSubscription OFFICE_PROFESSIONAL_PLUS",
            "StartProductSubscription VISUAL_STUDIO_PROFESSIONAL",
            "AssociateUser i-0a1b2c3d4e5f60002"
        ]
    );
    // leaver (externalId only): the AD name comes from the ledger; everything released
    mem.service.reset_calls();
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(decision(&r), Decision::Disable);
    assert_eq!(
        r.outcome.unwrap().actions,
        vec!["DisassociateUser i-0a1b2c3d4e5f60002", "StopProductSubscription VISUAL_STUDIO_PROFESSIONAL"]
    );
    assert_eq!(mem.service.holdings("alovelace"), (vec![], vec![]), "billing stops: nothing held");
    // duplicate: zero writes, zero calls
    mem.service.reset_calls();
    mem.ledger.reset_calls();
    assert_eq!(decision(&run(&state, &fixture("04-leaver-ada.json")).await), Decision::Duplicate);
    assert_eq!(mem.service.calls().reads() + mem.service.calls().writes(), 0);
    assert_eq!(mem.ledger.calls().writes, 0);
    // and a mover arriving after the leaver with a later time does not grant anything back
    let mut late_mover = fixture_json("03-mover-ada.json");
    late_mover["eventId"] = "mover-after-leaving".into();
    late_mover["occurredAt"] = "2026-12-01T00:00:00Z".into();
    assert_eq!(decision(&run(&state, &late_mover.to_string()).await), Decision::IgnoredForDisabledUser);
    assert_eq!(mem.service.holdings("alovelace"), (vec![], vec![]));
    // the audit trail records the release
    let trail = mem.ledger.audit_trail("workday#100234").await.unwrap();
    assert!(trail.iter().any(|a| a.event_type == "leaver" && a.decision == "disable" && a.writes == 2));
}

#[tokio::test]
async fn the_ad_name_is_derived_from_the_user_name_when_hr_does_not_send_it() {
    let (state, mem) = subs_state(&[]);
    assert_eq!(decision(&run(&state, &fixture("02-joiner-alan.json")).await), Decision::Create);
    assert_eq!(mem.service.holdings("alan.turing").1, vec!["i-0a1b2c3d4e5f60003"]);
}

#[tokio::test]
async fn the_required_rule_parks_an_event_without_an_ad_name() {
    let (state, mem) = subs_state(&[("DIRECTORY_USERNAME_RULE", "required")]);
    let r = run(&state, &fixture("02-joiner-alan.json")).await;
    assert_eq!(r.result, RecordResult::Parked);
    assert_eq!(mem.dlq.parked()[0].error_code, "NoDirectoryUserName");
    assert!(mem.dlq.parked()[0].reason.starts_with("person.directoryUserName: is required"));
}

#[tokio::test]
async fn an_unknown_instance_is_parked_with_nothing_written() {
    let (state, mem) = subs_state(&[]);
    let mut j = fixture_json("01-joiner-ada.json");
    j["subscriptions"] = json!([{"product": "OFFICE_PROFESSIONAL_PLUS", "instanceIds": ["i-0fffffffffffffff0"]}]);
    assert_eq!(run(&state, &j.to_string()).await.result, RecordResult::Parked);
    assert_eq!(mem.dlq.parked()[0].error_code, "UnknownInstance");
    assert_eq!(mem.service.calls().writes(), 0);
}

#[tokio::test]
async fn an_ad_rename_releases_the_old_account_before_granting_the_new_one() {
    let (state, mem) = subs_state(&[]);
    run(&state, &fixture("01-joiner-ada.json")).await;
    let mut m = fixture_json("01-joiner-ada.json");
    m["eventId"] = "ad-rename".into();
    m["type"] = "mover".into();
    m["occurredAt"] = "2026-11-05T00:00:00Z".into();
    m["person"]["directoryUserName"] = "abyron".into();
    assert_eq!(decision(&run(&state, &m.to_string()).await), Decision::Update);
    assert_eq!(mem.service.holdings("alovelace"), (vec![], vec![]));
    assert_eq!(mem.service.holdings("abyron").1, vec!["i-0a1b2c3d4e5f60001"]);
}

#[tokio::test]
async fn throttling_is_retried_through_the_batch_and_an_outage_never_blocks_other_people() {
    let (state, mem) = subs_state(&[]);
    mem.service.fail_next(
        subscription_sync::port::op::ASSOCIATE_USER,
        ServiceError::Throttled { op: subscription_sync::port::op::ASSOCIATE_USER, retry_after_seconds: None },
    );
    let batch =
        sqs_batch(&[("1", "p-ada", &fixture("01-joiner-ada.json")), ("2", "p-alan", &fixture("02-joiner-alan.json"))]);
    let failed = failures(&invoke_subs(&state, batch).await);
    assert_eq!(failed.len(), 1, "one of the two hit the throttle: {failed:?}");
    let retry = if failed[0] == "1" { fixture("01-joiner-ada.json") } else { fixture("02-joiner-alan.json") };
    assert!(failures(&invoke_subs(&state, sqs_batch(&[(&failed[0], "p", &retry)])).await).is_empty());
    assert_eq!(mem.service.holdings("alovelace").1.len(), 1);
    assert_eq!(mem.service.holdings("alan.turing").1.len(), 1);
}

async fn invoke_subs(state: &State, payload: serde_json::Value) -> serde_json::Value {
    invoke(state, payload).await.unwrap()
}

#[tokio::test]
async fn dry_run_plans_the_grants_without_calling_a_write() {
    let (state, mem) = subs_state(&[("DRY_RUN", "true")]);
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    let o = r.outcome.unwrap();
    assert!(o.dry_run);
    assert_eq!(
        o.actions,
        vec!["StartProductSubscription OFFICE_PROFESSIONAL_PLUS", "AssociateUser i-0a1b2c3d4e5f60001"]
    );
    assert_eq!(mem.service.calls().writes(), 0);
    assert_eq!(mem.ledger.calls().writes, 0, "the ledger is not written in a dry run either");
}

#[tokio::test]
async fn the_rds_sal_license_manager_adds_is_kept_beside_the_products_and_released_last() {
    // Regression: REMOTE_DESKTOP_SERVICES is subscribed with the other products
    let (state, mem) = subs_state(&[]);
    mem.service.subscribe_rds_with_other_products();
    assert_eq!(decision(&run(&state, &fixture("01-joiner-ada.json")).await), Decision::Create);
    let products = || mem.service.holdings("alovelace").0;
    assert_eq!(products(), vec!["OFFICE_PROFESSIONAL_PLUS", "REMOTE_DESKTOP_SERVICES"]);
    // the same state sent again (a new eventId): not drift, zero writes
    let mut again = fixture_json("01-joiner-ada.json");
    again["eventId"] = "joiner-resent".into();
    again["occurredAt"] = "2026-11-02T09:00:01Z".into();
    mem.service.reset_calls();
    assert_eq!(decision(&run(&state, &again.to_string()).await), Decision::NoChange);
    assert_eq!(mem.service.calls().writes(), 0);
    assert_eq!(products(), vec!["OFFICE_PROFESSIONAL_PLUS", "REMOTE_DESKTOP_SERVICES"]);
    // the leaver releases everything, the SAL last: billing stops
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(decision(&r), Decision::Disable);
    assert_eq!(
        r.outcome.unwrap().actions,
        vec![
            "DisassociateUser i-0a1b2c3d4e5f60001",
            "StopProductSubscription OFFICE_PROFESSIONAL_PLUS",
            "StopProductSubscription REMOTE_DESKTOP_SERVICES"
        ]
    );
    assert_eq!(mem.service.holdings("alovelace"), (vec![], vec![]));
}

#[tokio::test(start_paused = true)]
async fn license_manager_steps_are_awaited_and_a_step_still_running_is_retried_never_parked() {
    // Regression: StartProductSubscription must be ACTIVE before AssociateUser, and
    // DisassociateUser complete before StopProductSubscription (the simulator refuses otherwise)
    let (state, mem) = subs_state(&[]);
    mem.service.settle_after(3);
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(decision(&r), Decision::Create, "waited for the subscription, then associated");
    assert_eq!(
        mem.service.holdings("alovelace"),
        (vec!["OFFICE_PROFESSIONAL_PLUS".to_string()], vec!["i-0a1b2c3d4e5f60001".to_string()])
    );
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(decision(&r), Decision::Disable, "waited for the disassociation, then stopped");
    assert_eq!(mem.service.holdings("alovelace"), (vec![], vec![]), "billing stops");

    // A step that outlasts the bounded wait: retried (never parked), resumed on redelivery.
    let (state, mem) = subs_state(&[]);
    mem.service.settle_after(10);
    let first = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(first.result, RecordResult::Retry);
    assert_eq!(first.error.as_ref().map(|e| e.0.as_str()), Some("InProgress"));
    assert!(mem.dlq.parked().is_empty(), "nothing parked while a step runs");
    assert_eq!(mem.service.holdings("alovelace").1, Vec::<String>::new(), "not associated before it is active");
    let again = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(again.result, RecordResult::Done);
    assert_eq!(
        mem.service.holdings("alovelace"),
        (vec!["OFFICE_PROFESSIONAL_PLUS".to_string()], vec!["i-0a1b2c3d4e5f60001".to_string()])
    );
}

#[tokio::test]
async fn a_leaver_never_releases_an_ad_user_its_joiner_was_refused_because_another_person_owns_it() {
    // GIVEN alan, who holds his AD user `alan.turing` (claimed) and its subscription
    let (state, mem) = subs_state(&[]);
    assert_eq!(decision(&run(&state, &fixture("02-joiner-alan.json")).await), Decision::Create);
    let alan = mem.service.holdings("alan.turing");
    assert_eq!(alan.1, vec!["i-0a1b2c3d4e5f60003"]);
    // AND ada's joiner naming alan's AD user by mistake: refused (the claim is alan's)
    let mut typo = fixture_json("01-joiner-ada.json");
    typo["person"]["directoryUserName"] = "alan.turing".into();
    let r = run(&state, &typo.to_string()).await;
    assert_eq!(r.result, RecordResult::Parked);
    assert_eq!(mem.dlq.parked()[0].error_code, "SubscriptionUserOwnedByAnother");
    // WHEN ada leaves
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    // THEN alan keeps every subscription: ada's leaver never touches another person's AD user
    // (the name her refused joiner wrote ahead into her inventory was never hers)
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(mem.service.holdings("alan.turing"), alan, "alan lost his subscriptions to ada's leaver");
}

#[tokio::test]
async fn an_ad_rename_never_releases_an_ad_user_an_earlier_refused_event_named() {
    // GIVEN alan with his AD user, and ada with hers
    let (state, mem) = subs_state(&[]);
    run(&state, &fixture("02-joiner-alan.json")).await;
    run(&state, &fixture("01-joiner-ada.json")).await;
    let alan = mem.service.holdings("alan.turing");
    // AND a mover of ada naming alan's AD user by mistake: refused (the claim is alan's)
    let mut typo = fixture_json("01-joiner-ada.json");
    typo["eventId"] = "typo".into();
    typo["type"] = "mover".into();
    typo["occurredAt"] = "2026-11-05T00:00:00Z".into();
    typo["person"]["directoryUserName"] = "alan.turing".into();
    assert_eq!(run(&state, &typo.to_string()).await.result, RecordResult::Parked);
    // WHEN HR corrects it with ada's new AD user (a rename: every other name of hers is released)
    let mut fixed = typo.clone();
    fixed["eventId"] = "fixed".into();
    fixed["occurredAt"] = "2026-11-06T00:00:00Z".into();
    fixed["person"]["directoryUserName"] = "abyron".into();
    assert_eq!(decision(&run(&state, &fixed.to_string()).await), Decision::Update);
    // THEN alan keeps his subscriptions
    assert_eq!(mem.service.holdings("alan.turing"), alan, "alan lost his subscriptions to ada's AD rename");
}
