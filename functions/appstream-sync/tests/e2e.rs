//! appstream-sync on the simulator through the real handler: joiner -> mover -> leaver ->
//! rehire -> duplicate, the ledger claim against hijacking, ResourceAlreadyExists after a crash,
//! the pool quota, names AppStream cannot take, and the welcome e-mail rules.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use appstream_sync::naming::APPSTREAM_TARGET;
use appstream_sync::sim::SimAppStream;
use appstream_sync::{MemoryBackend, State};
use jml_core::batch::RecordResult;
use jml_core::engine::Decision;
use jml_core::ledger::{Inventory, Records};
use jml_core::ports::ServiceError;
use lambda_runtime::{Context, LambdaEvent};

use jml_core::testkit::{decision, failures, fixture, fixture_json, run, sqs_batch};

const ADA: &str = "ada.lovelace@example.com";

pub fn appstream_state(extra: &[(&str, &str)]) -> (State, MemoryBackend) {
    appstream_sync::memory(Arc::new(SimAppStream::demo()), &jml_core::testkit::memory_config(extra))
        .expect("memory settings")
}

fn stacks(mem: &MemoryBackend, user: &str) -> Vec<String> {
    mem.service.all().get(user).map(|(_, s)| s.clone()).unwrap_or_default()
}

#[tokio::test]
async fn joiner_mover_leaver_rehire_duplicate_follow_the_person() {
    let (state, mem) = appstream_state(&[]);
    // joiner: no appstreamStacks in the event, so the Platform Engineering rule applies
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(decision(&r), Decision::Create);
    assert_eq!(
        r.outcome.unwrap().actions,
        vec!["CreateUser", "BatchAssociateUserStack engineering-desktop", "BatchAssociateUserStack office-apps"]
    );
    let user = mem.service.user(ADA).expect("created under the lower-cased e-mail");
    assert!(user.enabled);
    assert_eq!((user.first_name.as_deref(), user.last_name.as_deref()), (Some("Ada"), Some("Lovelace")));
    assert_eq!(user.welcome_emails, 1, "MessageAction omitted: the welcome e-mail is sent");
    // mover: the event lists its stacks; office-apps goes, data-science comes
    let r = run(&state, &fixture("03-mover-ada.json")).await;
    assert_eq!(decision(&r), Decision::Update);
    assert_eq!(
        r.outcome.unwrap().actions,
        vec!["BatchDisassociateUserStack office-apps", "BatchAssociateUserStack data-science"]
    );
    assert_eq!(stacks(&mem, ADA), vec!["data-science", "engineering-desktop"]);
    // a name change cannot reach AppStream (no call for it): said in a note, nothing else
    let mut renamed = fixture_json("03-mover-ada.json");
    renamed["eventId"] = "mover-new-name".into();
    renamed["occurredAt"] = "2026-11-10T00:00:00Z".into();
    renamed["person"]["name"]["familyName"] = "King".into();
    let r = run(&state, &renamed.to_string()).await;
    assert_eq!(decision(&r), Decision::NoChange);
    assert!(r.outcome.unwrap().notes.iter().any(|n| n.contains("no call to rename")));
    let password_before = mem.service.user(ADA).unwrap().password;
    // leaver (externalId only): from every stack, disabled, then deleted
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(decision(&r), Decision::Disable);
    assert_eq!(
        r.outcome.unwrap().actions,
        vec![
            "BatchDisassociateUserStack data-science",
            "BatchDisassociateUserStack engineering-desktop",
            "DisableUser",
            "DeleteUser"
        ]
    );
    assert!(stacks(&mem, ADA).is_empty());
    assert_eq!(mem.service.user(ADA), None, "deleted: no password of hers survives");
    // rehire: a new user (a new welcome e-mail with a new temporary password), stacks by the rule
    let r = run(&state, &fixture("05-rehire-ada.json")).await;
    assert_eq!(decision(&r), Decision::Rehire);
    let actions = r.outcome.unwrap().actions;
    assert_eq!(actions[0], "CreateUser");
    let rehired = mem.service.user(ADA).unwrap();
    assert!(rehired.enabled);
    assert_eq!(rehired.welcome_emails, 1, "the new user's own welcome e-mail");
    assert_ne!(rehired.password, password_before, "no password from before the leaver works");
    assert_eq!((rehired.first_name.as_deref(), rehired.last_name.as_deref()), (Some("Ada"), Some("Lovelace")));
    assert_eq!(stacks(&mem, ADA), vec!["engineering-desktop", "office-apps"]);
    assert_eq!(mem.service.user_count(), 1, "never a second user");
    // duplicate: zero calls, zero writes anywhere
    mem.service.reset_calls();
    mem.ledger.reset_calls();
    assert_eq!(decision(&run(&state, &fixture("05-rehire-ada.json")).await), Decision::Duplicate);
    assert_eq!(mem.service.calls().reads() + mem.service.calls().writes(), 0);
    assert_eq!(mem.ledger.calls().writes, 0);
    // the same state again under a new eventId: one read, no writes
    let mut again = fixture_json("05-rehire-ada.json");
    again["type"] = "mover".into();
    again["eventId"] = "same-state-again".into();
    again["occurredAt"] = "2026-12-01T00:00:00Z".into();
    let r = run(&state, &again.to_string()).await;
    assert_eq!(decision(&r), Decision::NoChange);
    assert_eq!((mem.service.calls().reads(), mem.service.calls().writes()), (1, 0));
}

#[tokio::test]
async fn a_created_user_whose_ledger_commit_was_lost_is_recognised_by_the_claim() {
    // GIVEN the joiner created the user but the ledger commit failed (the record will be redelivered)
    let (state, mem) = appstream_state(&[]);
    mem.ledger.fail_next_commits(1);
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert!(matches!(r.result, RecordResult::Retry), "a ledger failure is retried: {:?}", r.error);
    assert!(mem.service.user(ADA).is_some());
    // WHEN it is redelivered, CreateUser answers ResourceAlreadyExists
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    // THEN the claim says it is ours and DescribeUsers says enabled (this joiner's own earlier
    // attempt): kept as it is, no second welcome e-mail, stacks already in place, a note says why
    let password = mem.service.user(ADA).unwrap().password;
    assert_eq!(decision(&r), Decision::NoChange);
    let outcome = r.outcome.unwrap();
    assert_eq!(outcome.actions, Vec::<String>::new());
    assert!(outcome.notes.iter().any(|n| n.contains("ours by the ledger claim and enabled")), "{:?}", outcome.notes);
    assert_eq!(mem.service.user_count(), 1);
    assert_eq!((mem.service.user(ADA).unwrap().password, mem.service.user(ADA).unwrap().welcome_emails), (password, 1));
    assert_eq!(stacks(&mem, ADA), vec!["engineering-desktop", "office-apps"]);
}

#[tokio::test]
async fn another_persons_address_is_never_taken_over() {
    // GIVEN ada's AppStream user exists and is claimed by her
    let (state, mem) = appstream_state(&[]);
    run(&state, &fixture("01-joiner-ada.json")).await;
    // WHEN another person (a different ExternalId) arrives with ada's e-mail in other capitalisation
    let mut impostor = fixture_json("02-joiner-alan.json");
    impostor["person"]["email"] = "Ada.Lovelace@Example.com".into();
    let r = run(&state, &impostor.to_string()).await;
    // THEN it is parked as a hijack, and ada's user is untouched
    assert!(matches!(r.result, RecordResult::Parked), "{:?}", r.result);
    assert_eq!(r.error.as_ref().unwrap().0, "AppStreamUserOwnedByAnother");
    assert_eq!(mem.dlq.parked()[0].error_code, "AppStreamUserOwnedByAnother");
    assert_eq!(mem.service.user_count(), 1);
    assert_eq!(mem.ledger.claim_owner(APPSTREAM_TARGET, ADA).as_deref(), Some("workday#100234"));
}

#[tokio::test]
async fn the_pool_quota_parks_with_a_clear_reason_and_missing_stacks_too() {
    let (state, mem) = appstream_state(&[]);
    mem.service.set_quota(0);
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert!(matches!(r.result, RecordResult::Parked));
    let parked = &mem.dlq.parked()[0];
    assert_eq!(parked.error_code, "AppStreamUserPoolLimit");
    assert!(parked.reason.contains("user quota"), "{}", parked.reason);
    // a stack that does not exist can never succeed: parked, named
    let (state, mem) = appstream_state(&[]);
    let mut joiner = fixture_json("01-joiner-ada.json");
    joiner["appstreamStacks"] = serde_json::json!(["no-such-stack"]);
    let r = run(&state, &joiner.to_string()).await;
    assert!(matches!(r.result, RecordResult::Parked));
    assert_eq!(mem.dlq.parked()[0].error_code, "StackNotFound");
    assert!(mem.dlq.parked()[0].reason.contains("no-such-stack"));
}

#[tokio::test]
async fn names_outside_the_pool_pattern_are_transliterated_or_omitted_and_suppress_is_honoured() {
    let (state, mem) = appstream_state(&[("APPSTREAM_WELCOME_EMAIL", "suppress")]);
    let mut joiner = fixture_json("01-joiner-ada.json");
    joiner["person"]["name"]["givenName"] = "Zoë-Ann".into();
    joiner["person"]["name"]["familyName"] = "’’".into();
    let r = run(&state, &joiner.to_string()).await;
    assert_eq!(decision(&r), Decision::Create);
    let user = mem.service.user(ADA).unwrap();
    assert_eq!(user.first_name.as_deref(), Some("Zoe-Ann"));
    assert_eq!(user.last_name, None, "nothing AppStream accepts is left: omitted, not rejected");
    assert_eq!(user.welcome_emails, 0, "SUPPRESS");
    // a rehire with suppress creates the new user without an e-mail either
    run(&state, &fixture("04-leaver-ada.json")).await;
    let r = run(&state, &fixture("05-rehire-ada.json")).await;
    assert_eq!(r.outcome.unwrap().actions[0], "CreateUser");
    assert_eq!(mem.service.user(ADA).unwrap().welcome_emails, 0);
}

#[tokio::test]
async fn a_leaver_whose_user_is_already_gone_succeeds_and_throttling_is_retried() {
    let (state, mem) = appstream_state(&[]);
    run(&state, &fixture("01-joiner-ada.json")).await;
    // throttled mid-leaver: retried, nothing recorded as done
    mem.service.fail_next(
        appstream_sync::port::op::DISABLE_USER,
        ServiceError::Throttled { op: appstream_sync::port::op::DISABLE_USER, retry_after_seconds: None },
    );
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert!(matches!(r.result, RecordResult::Retry));
    // Written ahead: the leaver is recorded before the first revoke, still marked active (not
    // verified), so the next event of the person converges to it, never re-creates the user.
    let rec = mem.ledger.get("workday#100234", APPSTREAM_TARGET).await.unwrap().unwrap();
    assert_eq!(
        (rec.last_event_id.as_str(), rec.status),
        ("hr-2026-11-20-0031", jml_core::ledger::PersonStatus::Active)
    );
    // the redelivery completes the leaver
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(decision(&r), Decision::Disable);
    assert_eq!(mem.service.user(ADA), None);
    // throttled between DisableUser and DeleteUser: disabled at once, deleted on the redelivery
    let (state, mem) = appstream_state(&[]);
    run(&state, &fixture("01-joiner-ada.json")).await;
    let delete = appstream_sync::port::op::DELETE_USER;
    mem.service.fail_next(delete, ServiceError::Throttled { op: delete, retry_after_seconds: None });
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert!(matches!(r.result, RecordResult::Retry));
    assert!(!mem.service.user(ADA).unwrap().enabled, "sign-in stopped before the failed step");
    assert_eq!(decision(&run(&state, &fixture("04-leaver-ada.json")).await), Decision::Disable);
    assert_eq!(mem.service.user(ADA), None);
    // a user deleted by hand (DeleteUser) before the leaver: ResourceNotFound on DisableUser is success
    let (state, mem) = appstream_state(&[]);
    run(&state, &fixture("01-joiner-ada.json")).await;
    mem.service.delete_by_hand(ADA);
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(decision(&r), Decision::Disable);
    assert!(r.outcome.unwrap().notes.iter().any(|n| n.contains("no longer exists")));
}

#[tokio::test]
async fn the_handler_takes_an_sqs_batch() {
    let (state, mem) = appstream_state(&[]);
    let batch = sqs_batch(&[
        ("m1", "p-ada", &fixture("01-joiner-ada.json")),
        ("m2", "p-alan", &fixture("02-joiner-alan.json")),
    ]);
    let out = appstream_sync::handler(&state, LambdaEvent::new(batch, Context::default())).await.unwrap();
    assert!(failures(&out).is_empty(), "{out}");
    assert_eq!(mem.service.user_count(), 2);
    // alan (Finance) got the Finance rule's stacks
    let alan = mem.service.all().into_iter().find(|(n, _)| n.starts_with("alan")).unwrap();
    assert_eq!(alan.1.1, vec!["finance-desktop", "office-apps"]);
}

#[tokio::test]
async fn the_zoe_sample_shows_the_naming_rules() {
    let (state, mem) = appstream_state(&[]);
    assert_eq!(decision(&run(&state, &fixture("07-joiner-zoe.json")).await), Decision::Create);
    let user = mem.service.user("zoe.obrien@example.com").expect("the capitalised e-mail, lower-cased");
    assert_eq!((user.first_name.as_deref(), user.last_name.as_deref()), (Some("Zoe"), Some("OBrien-Lukasiewicz")));
    assert_eq!(stacks(&mem, "zoe.obrien@example.com"), vec!["office-apps"], "no rule for R&D: the * rule");
}

#[tokio::test]
async fn a_user_deleted_outside_jml_sync_is_created_again_by_the_next_mover() {
    let (state, mem) = appstream_state(&[]);
    run(&state, &fixture("01-joiner-ada.json")).await;
    mem.service.delete_by_hand(ADA);
    let r = run(&state, &fixture("03-mover-ada.json")).await;
    assert_eq!(decision(&r), Decision::Create);
    let out = r.outcome.unwrap();
    assert!(out.notes.iter().any(|n| n.contains("deleted outside jml-sync")), "{:?}", out.notes);
    assert_eq!(out.actions[0], "CreateUser");
    assert!(mem.service.user(ADA).unwrap().enabled);
    assert_eq!(stacks(&mem, ADA), vec!["data-science", "engineering-desktop"]);
    assert_eq!(mem.service.user_count(), 1);
}

#[tokio::test]
async fn a_user_left_disabled_by_an_earlier_version_never_comes_back_with_its_old_password() {
    // GIVEN ada left while jml-sync only disabled leavers: her user is still in the pool, disabled,
    // with the password she had
    let (state, mem) = appstream_state(&[]);
    run(&state, &fixture("01-joiner-ada.json")).await;
    run(&state, &fixture("04-leaver-ada.json")).await;
    mem.service.seed_user(ADA, false);
    let old = mem.service.user(ADA).unwrap().password;
    // WHEN she is rehired
    let r = run(&state, &fixture("05-rehire-ada.json")).await;
    // THEN that user is deleted and a new one created: never EnableUser, which restores the old password
    assert_eq!(decision(&r), Decision::Rehire);
    let out = r.outcome.unwrap();
    assert_eq!(&out.actions[..2], ["DeleteUser", "CreateUser"]);
    assert!(out.notes.iter().any(|n| n.contains("from before: deleted and created again")), "{:?}", out.notes);
    let user = mem.service.user(ADA).unwrap();
    assert!(user.enabled && user.password != old);
    assert_eq!(stacks(&mem, ADA), vec!["engineering-desktop", "office-apps"]);
    // AND a joiner meeting such a user (an address released by a move, long ago) does the same
    let (state, mem) = appstream_state(&[]);
    mem.ledger.claim(APPSTREAM_TARGET, ADA, "workday#100234").await.unwrap();
    mem.service.seed_user(ADA, false);
    let old = mem.service.user(ADA).unwrap().password;
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(&r.outcome.unwrap().actions[..2], ["DeleteUser", "CreateUser"]);
    assert_ne!(mem.service.user(ADA).unwrap().password, old);
    assert_eq!(mem.service.user_count(), 1);
}

/// Whether any pool user grants access: enabled, or in a stack.
fn any_access(mem: &MemoryBackend) -> Vec<String> {
    mem.service
        .all()
        .into_iter()
        .filter(|(_, (u, stacks))| u.enabled || !stacks.is_empty())
        .map(|(n, (u, s))| format!("{n}: enabled {}, {} stack(s)", u.enabled, s.len()))
        .collect()
}

/// Ada's event of `kind` at `day` (November 2026) with `email` and `stacks`.
fn ada_at(kind: &str, day: u32, email: &str, stacks: &[&str]) -> String {
    let mut e = fixture_json("03-mover-ada.json");
    e["eventId"] = format!("ada-{kind}-{day}").into();
    e["type"] = kind.into();
    e["occurredAt"] = format!("2026-11-{day:02}T08:00:00Z").into();
    e["person"]["email"] = email.into();
    e["appstreamStacks"] = serde_json::json!(stacks);
    e.to_string()
}

#[tokio::test]
async fn a_parked_joiners_address_grants_nothing_once_a_mover_changes_the_address() {
    // GIVEN ada's joiner created her user and one stack, then was parked on a stack that does
    // not exist (so no ledger record names the address; only the claim's inventory does)
    let (state, mem) = appstream_state(&[]);
    let r = run(&state, &ada_at("joiner", 2, ADA, &["data-science", "no-such-stack"])).await;
    assert!(matches!(r.result, RecordResult::Parked), "{:?}", r.result);
    assert!(mem.service.user(ADA).unwrap().enabled);
    assert_eq!(stacks(&mem, ADA), vec!["data-science"]);
    // WHEN a mover gives her another address
    let new = "ada.king@example.com";
    let r = run(&state, &ada_at("mover", 9, new, &["engineering-desktop"])).await;
    assert_eq!(decision(&r), Decision::Create);
    // THEN the old address grants nothing (released: no stack, deleted), the new one is hers
    assert_eq!(any_access(&mem), vec![format!("{new}: enabled true, 1 stack(s)")]);
    assert_eq!(mem.service.user(ADA), None, "the parked joiner's user is deleted: no password of it survives");
    assert!(r.outcome.unwrap().actions.contains(&"DeleteUser".to_string()));
    // AND the leaver leaves nothing
    assert_eq!(decision(&run(&state, &fixture("04-leaver-ada.json")).await), Decision::Disable);
    assert_eq!(any_access(&mem), Vec::<String>::new());
}

fn cases(default: u32) -> u32 {
    std::env::var("JML_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: cases(32), ..Default::default() })]

    /// Invariant: whatever sequence of joiner/movers over a few addresses (each maybe parked on a
    /// missing stack, after CreateUser), after every applied one only the current address grants
    /// anything, and after the leaver no address grants anything. The oracle is the pool itself.
    #[test]
    fn no_address_but_the_current_one_grants_and_a_leaver_leaves_nothing(
        steps in proptest::collection::vec((0usize..3, proptest::prelude::any::<bool>()), 1..7),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let (state, mem) = appstream_state(&[]);
            let address = |n: usize| format!("ada.{n}@example.com");
            for (i, (n, parks)) in steps.iter().enumerate() {
                let kind = if i == 0 { "joiner" } else { "mover" };
                let stacks: &[&str] = if *parks { &["office-apps", "no-such-stack"] } else { &["office-apps"] };
                let r = run(&state, &ada_at(kind, 2 + i as u32, &address(*n), stacks)).await;
                if *parks {
                    assert!(matches!(r.result, RecordResult::Parked), "step {i}: {:?}", r.result);
                    continue;
                }
                decision(&r);
                let want = vec![format!("{}: enabled true, 1 stack(s)", address(*n))];
                assert_eq!(any_access(&mem), want, "after applied step {i} of {steps:?}");
            }
            assert_eq!(decision(&run(&state, &fixture("04-leaver-ada.json")).await), Decision::Disable);
            assert_eq!(any_access(&mem), Vec::<String>::new(), "after the leaver, {steps:?}");
        });
    }
}
