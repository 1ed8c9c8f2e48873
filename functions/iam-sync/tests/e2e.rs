//! iam-sync on the simulator through the real handler: joiner -> mover -> leaver -> rehire ->
//! duplicate, hijack refusals (unmanaged user, another person's tag, a case-only collision, two
//! people deriving one name), in-place retries of IAM's transient answers, quotas and renames.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use iam_sync::naming::{IAM_TARGET, TAG_DISABLED_AT, TAG_EXTERNAL_ID, TAG_STATUS};
use iam_sync::sim::{DEMO_BOUNDARY, SimIam};
use iam_sync::{MemoryBackend, State};
use jml_core::batch::RecordResult;
use jml_core::config::Config;
use jml_core::engine::Decision;
use jml_core::ledger::Inventory;
use jml_core::ports::{ConflictReason, ServiceError};
use lambda_runtime::{Context, LambdaEvent};

use jml_core::testkit::{decision, failures, fixture, fixture_json, run, sqs_batch};

const ADA: &str = "ada.lovelace";

pub fn iam_state() -> (State, MemoryBackend) {
    let config = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    iam_sync::memory(Arc::new(SimIam::demo()), &config).expect("memory settings")
}

fn actions(r: iam_sync::RecordReport) -> Vec<String> {
    r.outcome.unwrap().actions
}

fn groups(mem: &MemoryBackend) -> Vec<String> {
    mem.service.user(ADA).unwrap().groups.into_iter().collect()
}

#[tokio::test]
async fn joiner_mover_leaver_rehire_duplicate_follow_the_person() {
    let (state, mem) = iam_state();
    // joiner: path from the department, mandatory boundary, ExternalId tags, mapped groups
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(decision(&r), Decision::Create);
    assert_eq!(
        actions(r),
        vec![
            "CreateUser Path=/jml/platform-engineering/",
            "AddUserToGroup all-staff",
            "AddUserToGroup engineers",
            "AddUserToGroup vpn-users"
        ]
    );
    let u = mem.service.user(ADA).unwrap();
    assert_eq!(u.user.permissions_boundary.as_deref(), Some(DEMO_BOUNDARY));
    assert_eq!(u.user.tags.get(TAG_EXTERNAL_ID).map(String::as_str), Some("workday/100234"));
    assert_eq!(u.user.tags.get(TAG_STATUS).map(String::as_str), Some("active"));
    // mover: new department path, engineers -> oncall; a manual group outside the map is left
    mem.service.add_group("billing-viewers");
    mem.service.add_membership(ADA, "billing-viewers");
    let r = run(&state, &fixture("03-mover-ada.json")).await;
    assert_eq!(decision(&r), Decision::Update);
    let out = r.outcome.unwrap();
    assert_eq!(
        out.actions,
        vec!["UpdateUser NewPath=/jml/site-reliability/", "RemoveUserFromGroup engineers", "AddUserToGroup oncall"]
    );
    assert!(out.notes.iter().any(|n| n.contains("outside IAM_GROUP_MAP")));
    assert_eq!(groups(&mem), vec!["all-staff", "billing-viewers", "oncall", "vpn-users"]);
    // leaver: a human had given ada a console password and an access key
    mem.service.add_credentials(ADA, "AKIAEXAMPLE0000001");
    mem.service.add_other_credentials(ADA, "EXAMPLE1");
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(decision(&r), Decision::Disable);
    assert_eq!(
        actions(r),
        vec![
            "TagUser jml-sync:disabled-at,jml-sync:status",
            "DeleteLoginProfile",
            "UpdateAccessKey AKIAEXAMPLE0000001 Inactive",
            "UpdateSSHPublicKey APKAEXAMPLE1 Inactive",
            "UpdateServiceSpecificCredential ACCAEXAMPLE1 Inactive",
            "UpdateSigningCertificate CERTEXAMPLE1 Inactive",
            "RemoveUserFromGroup all-staff",
            "RemoveUserFromGroup billing-viewers",
            "RemoveUserFromGroup oncall",
            "RemoveUserFromGroup vpn-users",
        ]
    );
    let u = mem.service.user(ADA).expect("never deleted: audit needs the principal");
    assert!(!u.login_profile && u.groups.is_empty());
    assert_eq!(u.access_keys[0].status, "Inactive");
    assert!(u.other_credentials.iter().all(|c| !c.active), "SSH key, service credential, certificate off");
    assert_eq!(u.user.tags.get(TAG_STATUS).map(String::as_str), Some("disabled"));
    assert_eq!(u.user.tags.get(TAG_DISABLED_AT).map(String::as_str), Some("2026-11-20T17:00:00Z"));
    // a mover after leaving grants nothing back
    let mut late = fixture_json("03-mover-ada.json");
    late["eventId"] = "late-mover".into();
    late["occurredAt"] = "2026-11-21T00:00:00Z".into();
    assert_eq!(decision(&run(&state, &late.to_string()).await), Decision::IgnoredForDisabledUser);
    assert!(mem.service.user(ADA).unwrap().groups.is_empty());
    // rehire: groups and status back; credentials stay off
    let r = run(&state, &fixture("05-rehire-ada.json")).await;
    assert_eq!(decision(&r), Decision::Rehire);
    let out = r.outcome.unwrap();
    assert!(out.notes.iter().any(|n| n.contains("human step")));
    assert_eq!(
        out.actions[..3],
        ["UpdateUser NewPath=/jml/platform-engineering/", "TagUser jml-sync:status", "UntagUser jml-sync:disabled-at"]
    );
    let u = mem.service.user(ADA).unwrap();
    assert_eq!(u.groups.into_iter().collect::<Vec<_>>(), vec!["all-staff", "engineers"]);
    assert!(!u.login_profile);
    assert_eq!(u.access_keys[0].status, "Inactive");
    assert!(u.other_credentials.iter().all(|c| !c.active), "stay off after a rehire");
    assert!(!u.user.tags.contains_key(TAG_DISABLED_AT));
    assert_eq!(mem.service.all().len(), 1, "never a second user");
    // duplicate: zero calls, zero writes anywhere
    mem.service.reset_calls();
    mem.ledger.reset_calls();
    assert_eq!(decision(&run(&state, &fixture("05-rehire-ada.json")).await), Decision::Duplicate);
    assert_eq!(mem.service.calls().reads() + mem.service.calls().writes(), 0);
    assert_eq!(mem.ledger.calls().writes, 0);
}

#[tokio::test]
async fn users_that_are_not_this_persons_are_never_taken_over() {
    // an unmanaged user of the derived name
    let (state, mem) = iam_state();
    mem.service.seed_user(ADA, &[]);
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert!(matches!(r.result, RecordResult::Parked));
    assert_eq!(mem.dlq.parked()[0].error_code, "IamUserNotManaged");
    assert!(mem.service.user(ADA).unwrap().groups.is_empty(), "untouched");
    // another person's user (their ExternalId tag)
    let (state, mem) = iam_state();
    mem.service.seed_user(ADA, &[(TAG_EXTERNAL_ID, "workday/999")]);
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(r.error.unwrap().0, "IamUserOwnedByAnother");
    // a case-only collision is caught before CreateUser is called
    let (state, mem) = iam_state();
    mem.service.seed_user("Ada.Lovelace", &[]);
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(r.error.unwrap().0, "IamUserNameCaseCollision");
    assert_eq!(mem.service.calls().get(iam_sync::port::op::CREATE_USER), 0);
    assert_eq!(mem.service.all().len(), 1);
    // two people whose userNames derive the same IAM name: the second finds the first's tag
    let (state, mem) = iam_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    let mut twin = fixture_json("02-joiner-alan.json");
    twin["person"]["userName"] = "Ada.Lovelace".into();
    let r = run(&state, &twin.to_string()).await;
    assert!(matches!(r.result, RecordResult::Parked));
    assert_eq!(mem.dlq.parked()[0].error_code, "IamUserOwnedByAnother");
    assert_eq!(mem.service.all().len(), 1);
    // and while another person's create is in flight (their claim taken, no user yet), the
    // ledger claim refuses before CreateUser
    let (state, mem) = iam_state();
    mem.ledger.claim(IAM_TARGET, ADA, "workday#999").await.unwrap();
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(r.error.unwrap().0, "IamUserNameClaimedByAnother");
    assert_eq!(mem.service.calls().get(iam_sync::port::op::CREATE_USER), 0);
}

#[tokio::test]
async fn transient_answers_are_retried_in_place_and_quotas_are_parked() {
    let (state, mem) = iam_state();
    // ConcurrentModification on the first group add: retried in place, the event completes
    let conflict = ServiceError::Conflict {
        op: iam_sync::port::op::ADD_USER_TO_GROUP,
        reason: ConflictReason::ConcurrentModification,
    };
    mem.service.fail_next(iam_sync::port::op::ADD_USER_TO_GROUP, conflict);
    // and NoSuchEntity once right after CreateUser (IAM's eventual consistency)
    mem.service.fail_next(
        iam_sync::port::op::ADD_USER_TO_GROUP,
        ServiceError::NotFound { op: iam_sync::port::op::ADD_USER_TO_GROUP },
    );
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert_eq!(decision(&r), Decision::Create);
    assert_eq!(groups(&mem), vec!["all-staff", "engineers", "vpn-users"]);
    assert_eq!(mem.service.calls().get(iam_sync::port::op::ADD_USER_TO_GROUP), 5, "3 groups + 2 retries");
    // a throttle that outlasts the in-place retries goes back to the queue
    let (state, mem) = iam_state();
    for _ in 0..4 {
        mem.service.fail_next(
            iam_sync::port::op::GET_USER,
            ServiceError::Throttled { op: iam_sync::port::op::GET_USER, retry_after_seconds: None },
        );
    }
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert!(matches!(r.result, RecordResult::Retry), "{:?}", r.result);
    // LimitExceeded (groups per user, users per account) is permanent and says so
    let (state, mem) = iam_state();
    mem.service.fail_next(
        iam_sync::port::op::CREATE_USER,
        ServiceError::QuotaExceeded { op: iam_sync::port::op::CREATE_USER },
    );
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    assert!(matches!(r.result, RecordResult::Parked));
    assert_eq!(mem.dlq.parked()[0].error_code, "IamLimitExceeded");
    assert!(mem.dlq.parked()[0].reason.contains("quota"));
    // a mapped IAM group that does not exist is a configuration error, parked with its name
    let config = Config::from_lookup(|k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "IAM_GROUP_MAP" => Some(r#"{"jml-vpn": ["no-such-group"]}"#.into()),
        _ => None,
    })
    .unwrap();
    let (state2, mem2) = iam_sync::memory(Arc::new(SimIam::demo()), &config).expect("memory settings");
    let r = run(&state2, &fixture("01-joiner-ada.json")).await;
    assert!(matches!(r.result, RecordResult::Parked));
    assert_eq!(mem2.dlq.parked()[0].error_code, "IamGroupNotFound");
    assert!(mem2.dlq.parked()[0].reason.contains("no-such-group"));
}

#[tokio::test]
async fn a_renamed_person_keeps_their_iam_user() {
    let (state, mem) = iam_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    let before = mem.service.user(ADA).unwrap().user.user_id;
    let mut renamed = fixture_json("03-mover-ada.json");
    renamed["person"]["userName"] = "ada.king".into();
    let r = run(&state, &renamed.to_string()).await;
    assert_eq!(decision(&r), Decision::Update);
    assert_eq!(actions(r)[0], "UpdateUser NewUserName");
    assert!(mem.service.user(ADA).is_none());
    let after = mem.service.user("ada.king").unwrap();
    assert_eq!(after.user.user_id, before, "same principal, new name");
    // the leaver finds it under its new name through the ledger
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(decision(&r), Decision::Disable);
    assert!(mem.service.user("ada.king").unwrap().groups.is_empty());
}

#[tokio::test]
async fn a_leaver_whose_user_lost_its_tag_is_parked_for_an_operator_never_skipped() {
    let (state, mem) = iam_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    // someone re-tagged ada's user as another person's
    let mut tags = std::collections::BTreeMap::new();
    tags.insert(TAG_EXTERNAL_ID.to_string(), "workday/999".to_string());
    iam_sync::port::IamUsers::tag_user(&*mem.service, ADA, &tags).await.unwrap();
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    assert!(matches!(r.result, RecordResult::Parked), "{:?}", r.result);
    assert_eq!(mem.dlq.parked()[0].error_code, "IamLeaverUserChanged");
    assert_eq!(groups(&mem).len(), 3, "not touched automatically");
}

#[tokio::test]
async fn the_handler_takes_an_sqs_batch() {
    let (state, mem) = iam_state();
    let batch = sqs_batch(&[
        ("m1", "p-ada", &fixture("01-joiner-ada.json")),
        ("m2", "p-alan", &fixture("02-joiner-alan.json")),
    ]);
    let out = iam_sync::handler(&state, LambdaEvent::new(batch, Context::default())).await.unwrap();
    assert!(failures(&out).is_empty(), "{out}");
    assert_eq!(mem.service.all().len(), 2);
    assert_eq!(mem.service.user("alan.turing").unwrap().user.path, "/jml/finance/");
}

#[tokio::test]
async fn the_zoe_sample_shows_the_naming_rules() {
    let (state, mem) = iam_state();
    assert_eq!(decision(&run(&state, &fixture("07-joiner-zoe.json")).await), Decision::Create);
    let u = mem.service.user("zoe.o-brien").expect("transliterated, lower-cased, ' -> -");
    assert_eq!(u.user.user_name, "zoe.o-brien");
    assert_eq!(u.user.path, "/jml/r-d-zurich/");
    assert_eq!(u.groups.into_iter().collect::<Vec<_>>(), vec!["all-staff", "vpn-users"]);
}

/// Everything that still lets `name` in (the oracle of the leaver tests, read from the simulator's
/// own state, not through the target's code).
fn access_of(mem: &MemoryBackend, name: &str) -> Vec<String> {
    let u = mem.service.user(name).unwrap();
    let mut left = Vec::new();
    if u.user.tags.get(TAG_STATUS).map(String::as_str) != Some("disabled") {
        left.push("not tagged disabled".to_string());
    }
    if u.login_profile {
        left.push("password".to_string());
    }
    left.extend(u.access_keys.iter().filter(|k| k.status == "Active").map(|k| k.access_key_id.clone()));
    left.extend(u.other_credentials.iter().filter(|c| c.active).map(|c| c.id.clone()));
    left.extend(u.groups.iter().map(|g| format!("group {g}")));
    left
}

#[tokio::test]
async fn a_user_renamed_by_hand_is_found_by_its_tag_and_locked_down_by_the_leaver() {
    use iam_sync::port::IamUsers;
    // GIVEN ada's user, with a password and keys, renamed by hand (UpdateUser NewUserName keeps
    // the UserId, tags, keys and groups): no name jml-sync knows reaches it any more
    let (state, mem) = iam_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    mem.service.add_credentials(ADA, "AKIAEXAMPLE0000001");
    mem.service.add_other_credentials(ADA, "EXAMPLE1");
    let id = mem.service.user(ADA).unwrap().user.user_id;
    mem.service.update_user(ADA, None, Some("ada.renamed")).await.unwrap();
    let renamed = mem.service.user("ada.renamed").unwrap();
    assert_eq!((renamed.user.user_id.as_str(), renamed.login_profile, renamed.groups.len()), (id.as_str(), true, 3));
    assert!(mem.service.user(ADA).is_none());
    // WHEN she leaves
    mem.service.reset_calls();
    let r = run(&state, &fixture("04-leaver-ada.json")).await;
    // THEN the user carrying her tag is locked down under its new name, and the read-back agrees
    assert_eq!(decision(&r), Decision::Disable, "{:?}", r.outcome);
    assert_eq!(access_of(&mem, "ada.renamed"), Vec::<String>::new());
    assert_eq!(r.outcome.unwrap().user_id.as_deref(), Some(id.as_str()));
    // AND the cost: one GetAccountAuthorizationDetails page (the demo account holds fewer than
    // 1,000 users), once: the one plan finds her users, the breaker reads it, it is applied, and
    // the read-back reads those same users again (GetUser and their credentials and groups),
    // never the lookup by tag
    let gaad = iam_sync::port::op::GET_ACCOUNT_AUTHORIZATION_DETAILS;
    assert_eq!(mem.service.calls().get(gaad), 1);
    assert_eq!(mem.service.calls().get(iam_sync::port::op::GET_LOGIN_PROFILE), 1, "the read-back");
    assert_eq!(mem.service.calls().get(iam_sync::port::op::LIST_ACCESS_KEYS), 2, "the plan and the read-back");
}

#[tokio::test]
async fn a_leaver_never_locks_down_a_user_tagged_for_another_person() {
    // GIVEN ada and alan, alan with a console password and an access key
    let (state, mem) = iam_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    run(&state, &fixture("02-joiner-alan.json")).await;
    let alan = iam_sync::naming::user_name(fixture_json("02-joiner-alan.json")["person"]["userName"].as_str().unwrap())
        .unwrap();
    mem.service.add_credentials(&alan, "AKIAALAN0000000001");
    // WHEN ada leaves
    assert_eq!(decision(&run(&state, &fixture("04-leaver-ada.json")).await), Decision::Disable);
    // THEN alan keeps every access he had: only users with ada's own tag were touched
    let a = mem.service.user(&alan).unwrap();
    assert!(a.login_profile && a.access_keys.iter().all(|k| k.status == "Active") && !a.groups.is_empty());
    assert_eq!(a.user.tags.get(TAG_STATUS).map(String::as_str), Some("active"));
}

/// IAM where the next CreateUser loses a race: a concurrent delivery creates the same user first
/// (the create goes through, answered EntityAlreadyExists).
struct RacedCreate {
    inner: Arc<SimIam>,
    race: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl iam_sync::port::IamUsers for RacedCreate {
    async fn get_user(&self, n: &str) -> Result<Option<iam_sync::port::IamUser>, ServiceError> {
        self.inner.get_user(n).await
    }
    async fn create_user(&self, u: &iam_sync::port::IamNewUser) -> Result<Option<String>, ServiceError> {
        let created = self.inner.create_user(u).await?;
        if self.race.swap(false, std::sync::atomic::Ordering::SeqCst) { Ok(None) } else { Ok(created) }
    }
    async fn update_user(&self, n: &str, p: Option<&str>, m: Option<&str>) -> Result<(), ServiceError> {
        self.inner.update_user(n, p, m).await
    }
    async fn put_permissions_boundary(&self, n: &str, a: &str) -> Result<(), ServiceError> {
        self.inner.put_permissions_boundary(n, a).await
    }
    async fn tag_user(&self, n: &str, t: &std::collections::BTreeMap<String, String>) -> Result<(), ServiceError> {
        self.inner.tag_user(n, t).await
    }
    async fn untag_user(&self, n: &str, k: &[String]) -> Result<(), ServiceError> {
        self.inner.untag_user(n, k).await
    }
    async fn groups(&self, n: &str) -> Result<Vec<String>, ServiceError> {
        self.inner.groups(n).await
    }
    async fn account_users(&self) -> Result<Vec<(iam_sync::port::IamUser, Vec<String>)>, ServiceError> {
        self.inner.account_users().await
    }
    async fn add_to_group(&self, n: &str, g: &str) -> Result<(), ServiceError> {
        self.inner.add_to_group(n, g).await
    }
    async fn remove_from_group(&self, n: &str, g: &str) -> Result<(), ServiceError> {
        self.inner.remove_from_group(n, g).await
    }
    async fn delete_login_profile(&self, n: &str) -> Result<bool, ServiceError> {
        self.inner.delete_login_profile(n).await
    }
    async fn has_login_profile(&self, n: &str) -> Result<bool, ServiceError> {
        self.inner.has_login_profile(n).await
    }
    async fn access_keys(&self, n: &str) -> Result<Vec<iam_sync::port::AccessKey>, ServiceError> {
        self.inner.access_keys(n).await
    }
    async fn deactivate_access_key(&self, n: &str, k: &str) -> Result<(), ServiceError> {
        self.inner.deactivate_access_key(n, k).await
    }
    async fn other_credentials(&self, n: &str) -> Result<Vec<iam_sync::port::OtherCredential>, ServiceError> {
        self.inner.other_credentials(n).await
    }
    async fn deactivate_credential(&self, n: &str, c: &iam_sync::port::OtherCredential) -> Result<(), ServiceError> {
        self.inner.deactivate_credential(n, c).await
    }
    async fn delete_user(&self, n: &str) -> Result<bool, ServiceError> {
        self.inner.delete_user(n).await
    }
    async fn policy_exists(&self, arn: &str) -> Result<bool, ServiceError> {
        self.inner.policy_exists(arn).await
    }
    async fn group_exists(&self, g: &str) -> Result<bool, ServiceError> {
        self.inner.group_exists(g).await
    }
}

#[tokio::test]
async fn a_create_that_loses_to_a_concurrent_one_is_planned_again_from_the_user_found() {
    // GIVEN IAM where a concurrent delivery creates ada's user just before our CreateUser
    let config = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    let sim = Arc::new(SimIam::demo());
    let raced = Arc::new(RacedCreate { inner: sim.clone(), race: std::sync::atomic::AtomicBool::new(true) });
    let state = iam_sync::state(
        raced,
        Arc::new(jml_core::sim::SimLedger::default()),
        Arc::new(jml_core::sim::SimDeadLetterQueue::default()),
        &config,
        &iam_sync::Settings::from_config(&config).unwrap(),
    );
    // WHEN ada joins
    let r = run(&state, &fixture("01-joiner-ada.json")).await;
    // THEN EntityAlreadyExists on her own user plans again from the user as it is (no second
    // CreateUser): its groups are added, and she has one user
    assert_eq!(decision(&r), Decision::Update, "{:?}", r.outcome);
    assert_eq!(actions(r), ["AddUserToGroup all-staff", "AddUserToGroup engineers", "AddUserToGroup vpn-users"]);
    assert_eq!(sim.calls().get(iam_sync::port::op::CREATE_USER), 1);
    assert_eq!(sim.all().len(), 1);
    assert_eq!(sim.user(ADA).unwrap().groups.len(), 3);
}

#[tokio::test]
async fn a_reconverge_locks_down_the_persons_other_users_in_the_inventory() {
    // GIVEN ada's user, and a second user carrying her tag that her inventory knows (what a
    // concurrent delivery under another name leaves), in a group
    let (state, mem) = iam_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    let tag = mem.service.user(ADA).unwrap().user.tags[TAG_EXTERNAL_ID].clone();
    mem.service.seed_user("ada.copy", &[(TAG_EXTERNAL_ID, &tag)]);
    mem.service.add_membership("ada.copy", "engineers");
    mem.ledger.remember("workday#100234", IAM_TARGET, "ada.copy").await.unwrap();
    // WHEN the person is converged again on what the ledger knows (release-held's path: a sweep)
    let out = state.engine.reconverge("workday#100234").await.unwrap();
    // THEN her user stays as it is, and the other one is locked down
    assert_eq!(out.decision, Decision::NoChange, "{out:?}");
    assert_eq!(
        out.actions,
        ["sweep: TagUser jml-sync:disabled-at,jml-sync:status", "sweep: RemoveUserFromGroup engineers"]
    );
    assert_eq!(access_of(&mem, "ada.copy"), Vec::<String>::new());
    assert_eq!(mem.service.user(ADA).unwrap().groups.len(), 3);
}
