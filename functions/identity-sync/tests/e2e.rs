//! identity-sync through its real handler on the simulator, GIVEN / WHEN / THEN.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use identity_sync::port::UserStatus;
use identity_sync::sim::Fault;
use jml_core::contract::{ExternalId, ExternalIdPart};
use jml_core::ports::ServiceError;
use serde_json::{Value, json};

use jml_core::testkit::{failures, fixture, fixture_json, invoke, sqs_batch};

/// A handler state on a fresh demo simulator (groups of the samples, manager seeded).
fn memory_state() -> (identity_sync::State, identity_sync::MemoryBackend) {
    identity_sync::memory(
        std::sync::Arc::new(identity_sync::sim::demo_identity_store()),
        &jml_core::testkit::memory_config(&[]),
    )
    .expect("memory settings")
}

const ADA: &str = "ada.lovelace";
const GROUP_ADA: &str = "p-workday-100234";

async fn deliver(state: &identity_sync::State, id: &str, body: &str) -> Vec<String> {
    failures(&invoke(state, sqs_batch(&[(id, GROUP_ADA, body)])).await.unwrap())
}

#[tokio::test]
async fn joiner_mover_leaver_rehire_and_every_duplicate_makes_zero_writes() {
    // GIVEN the demo identity store
    let (state, mem) = memory_state();
    let steps = ["01-joiner-ada.json", "03-mover-ada.json", "04-leaver-ada.json", "05-rehire-ada.json"];
    let mut user_id = None;
    for (i, step) in steps.iter().enumerate() {
        // WHEN the event is delivered
        assert!(deliver(&state, &format!("m-{i}"), &fixture(step)).await.is_empty(), "{step} must succeed");
        let ada = mem.store.user(ADA).expect("ada exists");
        // THEN one and the same user exists until the leaver; the rehire starts from a new user
        // (nothing of the previous employment comes back) and the old one is gone
        if *step == "05-rehire-ada.json" {
            let old = user_id.replace(ada.user_id.clone()).unwrap();
            assert_ne!(old, ada.user_id, "{step}: a new UserId");
            assert!(mem.store.users().iter().all(|u| u.user_id != old), "{step}: the old user is deleted");
        }
        assert_eq!(*user_id.get_or_insert(ada.user_id.clone()), ada.user_id, "{step}: same UserId");
        match *step {
            "01-joiner-ada.json" => {
                assert_eq!(ada.status, UserStatus::Enabled);
                assert_eq!(ada.groups, vec!["jml-all-staff", "jml-engineering", "jml-vpn"]);
                assert_eq!(ada.attributes.title.as_deref(), Some("Staff Engineer"));
                assert!(ada.attributes.manager_id.is_some(), "manager resolved to a UserId");
                assert_eq!(ada.marker.as_deref(), Some("urn:jml-sync:person:workday:100234"));
            }
            "03-mover-ada.json" => {
                assert_eq!(ada.groups, vec!["jml-all-staff", "jml-oncall", "jml-vpn"]);
                assert_eq!(ada.attributes.department.as_deref(), Some("Site Reliability"));
            }
            "04-leaver-ada.json" => {
                assert_eq!(ada.status, UserStatus::Disabled);
                assert!(ada.groups.is_empty(), "every managed membership removed");
            }
            _ => {
                assert_eq!(ada.status, UserStatus::Enabled);
                assert_eq!(ada.groups, vec!["jml-all-staff", "jml-engineering"]);
                assert_eq!(ada.attributes.phone, None, "attributes HR no longer sends are removed");
            }
        }
        // AND delivering the same event again makes zero writes
        mem.store.reset_calls();
        assert!(deliver(&state, &format!("m-{i}-dup"), &fixture(step)).await.is_empty());
        assert_eq!(mem.store.calls().writes(), 0, "{step} replayed: {:?}", mem.store.calls());
        assert!(mem.store.calls().reads() <= 4, "{step} replayed: {:?}", mem.store.calls());
    }
    assert_eq!(mem.store.users().len(), 2, "grace (manager) and ada, nobody else");
    assert!(mem.dlq.parked().is_empty());
}

#[tokio::test]
async fn leaver_revocation_happens_before_disable_and_unmanaged_memberships_stay() {
    // GIVEN ada joined, and an admin added her to a group jml-sync does not manage
    let (state, mem) = memory_state();
    assert!(deliver(&state, "m1", &fixture("01-joiner-ada.json")).await.is_empty());
    let ada = mem.store.user(ADA).unwrap();
    let admins = mem.store.create_group("break-glass-admins");
    mem.store.seed_membership(&admins, &ada.user_id);
    // WHEN she leaves, and the disable fails once
    mem.store.inject(Fault {
        op: identity_sync::port::op::UPDATE_USER,
        user_name: Some(ADA.into()),
        error: ServiceError::Unavailable { op: identity_sync::port::op::UPDATE_USER, message: "500".into() },
        times: 1,
        after: 0,
    });
    assert_eq!(deliver(&state, "m2", &fixture("04-leaver-ada.json")).await, vec!["m2"], "retried");
    // THEN the managed memberships were already gone (access revoked first)
    let ada = mem.store.user(ADA).unwrap();
    assert_eq!(ada.groups, vec!["break-glass-admins"]);
    assert_eq!(ada.status, UserStatus::Enabled);
    // AND the redelivery finishes the job without touching the unmanaged group
    assert!(deliver(&state, "m2", &fixture("04-leaver-ada.json")).await.is_empty());
    let ada = mem.store.user(ADA).unwrap();
    assert_eq!(ada.status, UserStatus::Disabled);
    assert_eq!(ada.groups, vec!["break-glass-admins"], "unmanaged memberships are never touched");
}

#[tokio::test]
async fn a_user_name_owned_by_an_unmanaged_user_is_refused_and_parked() {
    // GIVEN someone created "ada.lovelace" by hand
    let (state, mem) = memory_state();
    mem.store.seed_user(ADA, None, None);
    mem.store.reset_calls();
    // WHEN the joiner for our Ada arrives
    assert!(deliver(&state, "m1", &fixture("01-joiner-ada.json")).await.is_empty(), "parked, not retried");
    // THEN nothing was written and the event is parked with its reason
    assert_eq!(mem.store.calls().writes(), 0);
    let parked = mem.dlq.parked();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].error_code, "UserNameOwnedByAnother");
    assert!(parked[0].reason.contains("not managed by jml-sync"), "{}", parked[0].reason);
    assert_eq!(parked[0].body, fixture("01-joiner-ada.json"), "original body kept byte for byte");
    assert_eq!(parked[0].external_id.as_deref(), Some("workday#100234"));
    assert_eq!(parked[0].message_group.as_deref(), Some(GROUP_ADA));
    let hand_made = mem.store.user(ADA).unwrap();
    assert_eq!((hand_made.revision, hand_made.groups.len(), hand_made.status), (1, 0, UserStatus::Enabled));
}

#[tokio::test]
async fn a_user_name_owned_by_another_person_is_refused_even_for_a_leaver() {
    // GIVEN "ada.lovelace" belongs to a different HR person
    let (state, mem) = memory_state();
    let other =
        ExternalId { issuer: ExternalIdPart::parse("workday").unwrap(), id: ExternalIdPart::parse("999").unwrap() };
    mem.store.seed_user(ADA, None, Some(&other.marker()));
    // WHEN a mover and a leaver naming that userName arrive for person 100234
    let leaver = json!({"eventId": "l-1", "type": "leaver", "occurredAt": "2026-11-20T17:00:00Z",
        "person": {"externalId": {"issuer": "workday", "id": "100234"}, "userName": ADA}});
    assert!(deliver(&state, "m1", &fixture("03-mover-ada.json")).await.is_empty());
    assert!(deliver(&state, "m2", &leaver.to_string()).await.is_empty());
    // THEN both are parked and the other person's account is untouched
    let codes: Vec<String> = mem.dlq.parked().into_iter().map(|p| p.error_code).collect();
    assert_eq!(codes, vec!["UserNameOwnedByAnother", "UserNameOwnedByAnother"]);
    assert_eq!(mem.store.user(ADA).unwrap().status, UserStatus::Enabled);
}

#[tokio::test]
async fn a_missing_group_is_parked_before_anything_is_written() {
    let (state, mem) = memory_state();
    let mut joiner = fixture_json("01-joiner-ada.json");
    joiner["groups"] = json!(["jml-all-staff", "jml-does-not-exist"]);
    mem.store.reset_calls();
    assert!(deliver(&state, "m1", &joiner.to_string()).await.is_empty());
    let parked = mem.dlq.parked();
    assert_eq!(parked[0].error_code, "GroupNotFound");
    assert!(parked[0].reason.contains("jml-does-not-exist"));
    assert_eq!(mem.store.calls().writes(), 0, "no half-created user");
    assert!(mem.store.user(ADA).is_none());
}

#[tokio::test]
async fn an_unmanaged_group_in_the_event_is_parked() {
    let (state, mem) = memory_state();
    let mut joiner = fixture_json("01-joiner-ada.json");
    joiner["groups"] = json!(["jml-all-staff", "AWSAccountAdmins"]);
    assert!(deliver(&state, "m1", &joiner.to_string()).await.is_empty());
    assert_eq!(mem.dlq.parked()[0].error_code, "UnmanagedGroup");
    assert!(mem.dlq.parked()[0].reason.contains("AWSAccountAdmins"));
}

#[tokio::test]
async fn a_mixed_batch_reports_exactly_the_retryable_records_and_their_successors() {
    // GIVEN a batch: ada's joiner; a broken event; alan's joiner (throttled) and alan's mover
    // behind it; a third person's joiner
    let (state, mem) = memory_state();
    mem.store.inject(Fault {
        op: identity_sync::port::op::CREATE_USER,
        user_name: Some("alan.turing".into()),
        error: ServiceError::Throttled { op: identity_sync::port::op::CREATE_USER, retry_after_seconds: None },
        times: 1,
        after: 0,
    });
    let mut alan_mover = fixture_json("02-joiner-alan.json");
    alan_mover["type"] = "mover".into();
    alan_mover["eventId"] = "alan-mover".into();
    let mut carol = fixture_json("02-joiner-alan.json");
    carol["eventId"] = "carol-joiner".into();
    carol["person"]["externalId"]["id"] = "100236".into();
    carol["person"]["userName"] = "carol.shaw".into();
    let batch = sqs_batch(&[
        ("1", GROUP_ADA, &fixture("01-joiner-ada.json")),
        ("2", "p-broken", "{\"eventId\": 42"),
        ("3", "p-alan", &fixture("02-joiner-alan.json")),
        ("4", "p-alan", &alan_mover.to_string()),
        ("5", "p-carol", &carol.to_string()),
    ]);
    // WHEN the handler runs
    let response = invoke(&state, batch).await.unwrap();
    // THEN exactly alan's records are reported for retry, in order
    assert_eq!(failures(&response), vec!["3", "4"]);
    // AND the broken one is parked, not retried
    let parked = mem.dlq.parked();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].source_message_id.as_deref(), Some("2"));
    assert_eq!(parked[0].error_code, "InvalidEvent");
    // AND the others were applied; alan's mover never ran ahead of his joiner
    assert!(mem.store.user(ADA).is_some());
    assert!(mem.store.user("carol.shaw").is_some());
    assert!(mem.store.user("alan.turing").is_none());
    // AND the redelivery of alan's records succeeds
    let retry =
        sqs_batch(&[("3", "p-alan", &fixture("02-joiner-alan.json")), ("4", "p-alan", &alan_mover.to_string())]);
    assert!(failures(&invoke(&state, retry).await.unwrap()).is_empty());
    assert!(mem.store.user("alan.turing").is_some());
}

#[tokio::test]
async fn when_parking_fails_the_record_is_retried_not_lost() {
    let (state, mem) = memory_state();
    mem.dlq.fail_next(1);
    let r = invoke(&state, sqs_batch(&[("1", "g", "not json")])).await.unwrap();
    assert_eq!(failures(&r), vec!["1"]);
    assert!(mem.dlq.parked().is_empty());
    let r = invoke(&state, sqs_batch(&[("1", "g", "not json")])).await.unwrap();
    assert!(failures(&r).is_empty());
    assert_eq!(mem.dlq.parked().len(), 1);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_joiner_create_exactly_one_account() {
    // GIVEN a simulator where every call takes a little time, so the deliveries interleave
    let config = jml_core::config::Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    let store = std::sync::Arc::new(
        identity_sync::sim::demo_identity_store().with_latency(std::time::Duration::from_millis(2)),
    );
    let (a, mem) = identity_sync::memory(store, &config).expect("memory settings");
    let b = a.clone();
    let body = fixture("01-joiner-ada.json");
    // WHEN the same joiner is processed twice at the same time
    let meta = identity_sync::RecordMeta::default();
    let (ra, rb) =
        tokio::join!(identity_sync::process_record(&a, &body, &meta), identity_sync::process_record(&b, &body, &meta));
    // THEN one converges and the other finds the person's ledger lease taken: retried, not lost
    let busy: Vec<_> = [&ra, &rb].into_iter().filter(|r| r.error.is_some()).collect();
    assert_eq!(busy.len(), 1, "{:?} {:?}", ra.error, rb.error);
    assert_eq!(busy[0].error.as_ref().map(|e| e.0.as_str()), Some("PersonBusy"));
    assert_eq!(busy[0].result, jml_core::batch::RecordResult::Retry);
    // AND its redelivery is a duplicate: exactly one account exists, with its groups
    let again = identity_sync::process_record(&a, &body, &meta).await;
    assert_eq!(again.outcome.map(|o| o.decision), Some(jml_core::engine::Decision::Duplicate));
    let adas: Vec<_> = mem.store.users().into_iter().filter(|u| u.user_name == ADA).collect();
    assert_eq!(adas.len(), 1);
    assert_eq!(adas[0].groups.len(), 3);
    assert_eq!(
        mem.store.calls().get(identity_sync::port::op::CREATE_USER),
        1,
        "one instance at a time converges a person"
    );
}

#[tokio::test]
async fn a_scim_user_is_found_by_external_id_and_a_leaver_disables_it() {
    let (state, mem) = memory_state();
    let person =
        ExternalId { issuer: ExternalIdPart::parse("workday").unwrap(), id: ExternalIdPart::parse("100234").unwrap() };
    let id = mem.store.seed_user("ada@idp", Some(&person), None);
    let g = mem.store.create_group("jml-vpn");
    mem.store.seed_membership(&g, &id);
    assert!(deliver(&state, "m1", &fixture("04-leaver-ada.json")).await.is_empty());
    let u = mem.store.user("ada@idp").unwrap();
    assert_eq!(u.status, UserStatus::Disabled);
    assert!(u.groups.is_empty());
}

#[tokio::test]
async fn a_leaver_with_no_account_anywhere_is_a_no_op_not_an_error() {
    let (state, mem) = memory_state();
    let body = fixture("04-leaver-ada.json");
    let report = identity_sync::process_record(&state, &body, &Default::default()).await;
    assert_eq!(report.outcome.map(|o| o.decision), Some(jml_core::engine::Decision::LeaverWithoutAccount));
    assert_eq!(mem.store.calls().writes(), 0);
}

#[tokio::test]
async fn a_rename_onto_a_taken_user_name_is_parked() {
    let (state, mem) = memory_state();
    assert!(deliver(&state, "m1", &fixture("01-joiner-ada.json")).await.is_empty());
    mem.store.seed_user("a.lovelace", None, None);
    // The new userName belongs to a hand-made user: resolution refuses before any write.
    let mut mover = fixture_json("03-mover-ada.json");
    mover["person"]["userName"] = "a.lovelace".into();
    assert!(deliver(&state, "m2", &mover.to_string()).await.is_empty());
    assert_eq!(mem.dlq.parked()[0].error_code, "UserNameOwnedByAnother");
}

#[tokio::test]
async fn eventbridge_events_are_applied_and_a_mismatched_detail_type_is_parked() {
    let (state, mem) = memory_state();
    let r = invoke(&state, fixture_json("lambda/eventbridge-joiner.json")).await.unwrap();
    assert_eq!(r["status"], "applied");
    assert_eq!(r["decision"], "create");
    assert_eq!(mem.store.user(ADA).unwrap().groups.len(), 3);
    let r = invoke(&state, fixture_json("lambda/eventbridge-leaver.json")).await.unwrap();
    assert_eq!(r["decision"], "disable");
    assert_eq!(mem.store.user(ADA).unwrap().status, UserStatus::Disabled);

    let mut wrong = fixture_json("lambda/eventbridge-joiner.json");
    wrong["detail-type"] = "Leaver".into();
    let r = invoke(&state, wrong).await.unwrap();
    assert_eq!(r["status"], "parked");
    assert_eq!(mem.dlq.parked()[0].error_code, "InvalidEvent");
    assert_eq!(mem.store.user(ADA).unwrap().status, UserStatus::Disabled, "nothing applied");
}

#[tokio::test]
async fn a_retryable_eventbridge_failure_fails_the_invocation_for_lambda_to_retry() {
    let (state, mem) = memory_state();
    mem.store.inject(Fault {
        op: identity_sync::port::op::GET_USER_ID_BY_USER_NAME,
        user_name: Some(ADA.into()),
        error: ServiceError::Throttled {
            op: identity_sync::port::op::GET_USER_ID_BY_USER_NAME,
            retry_after_seconds: None,
        },
        times: 1,
        after: 0,
    });
    let err = invoke(&state, fixture_json("lambda/eventbridge-joiner.json")).await.unwrap_err();
    assert!(err.to_string().contains("Throttled"), "{err}");
    assert!(mem.dlq.parked().is_empty());
}

#[tokio::test]
async fn the_sample_sqs_batch_applies_in_order_per_person() {
    let (state, mem) = memory_state();
    let r = invoke(&state, fixture_json("lambda/sqs-batch.json")).await.unwrap();
    assert!(failures(&r).is_empty());
    assert_eq!(
        mem.store.user(ADA).unwrap().groups,
        vec!["jml-all-staff", "jml-oncall", "jml-vpn"],
        "mover applied after joiner"
    );
    assert!(mem.store.user("alan.turing").is_some());
}

#[tokio::test]
async fn unrecognised_input_is_an_error_naming_the_expected_shapes() {
    let (state, _) = memory_state();
    let err = invoke(&state, Value::String("hello".into())).await.unwrap_err();
    assert!(err.to_string().contains("expected an SQS batch"));
}

#[tokio::test]
async fn dry_run_plans_without_writing() {
    let (state, mem) = dry_run_state();
    let report = identity_sync::process_record(&state, &fixture("01-joiner-ada.json"), &Default::default()).await;
    let outcome = report.outcome.unwrap();
    assert!(outcome.dry_run);
    assert_eq!(outcome.actions.len(), 4);
    assert_eq!(mem.store.calls().writes(), 0);
    assert!(mem.store.user(ADA).is_none());
}

#[tokio::test]
async fn dry_run_writes_nothing_anywhere_not_even_the_dead_letter_queue() {
    let (state, mem) = dry_run_state();
    let report = identity_sync::process_record(&state, "{\"eventId\": 1}", &Default::default()).await;
    assert_eq!(report.result, jml_core::batch::RecordResult::Parked, "reported as it would be");
    assert_eq!(report.error.map(|e| e.0).as_deref(), Some("InvalidEvent"));
    assert!(mem.dlq.parked().is_empty());
}

fn dry_run_state() -> (identity_sync::State, identity_sync::MemoryBackend) {
    let config = jml_core::config::Config::from_lookup(|k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "DRY_RUN" => Some("true".into()),
        _ => None,
    })
    .unwrap();
    identity_sync::memory(std::sync::Arc::new(identity_sync::sim::demo_identity_store()), &config)
        .expect("memory settings")
}
