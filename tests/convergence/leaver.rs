//! Issue 11, triggers 8-11 and the leaver's read-back: a leaver whose revocation does not hold is
//! parked `LeaverIncomplete` and converges again when redriven; the breaker counts each leaver
//! once, only when it revokes something, and decides once for every target; group mappings are
//! re-checked before a membership write; every per-call error is classified.

use identity_sync::IDENTITY_TARGET;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use iam_sync::naming::IAM_TARGET;
use iam_sync::port::{AccessKey, IamNewUser, IamUser, IamUsers, OtherCredential};
use iam_sync::sim::SimIam;
use identity_sync::port::UserStatus;
use jml_core::batch::RecordResult;
use jml_core::lambda::{RecordMeta, State, process_record};
use jml_core::ledger::PersonStatus;
use jml_core::ports::{ConflictReason, ServiceError};
use jml_core::sim::SimDeadLetterQueue;

use crate::properties::{Ev, World, body, config, config_with, external_id};

async fn one(state: &State, body: &str) -> (RecordResult, Option<String>, Option<String>) {
    let r = process_record(state, body, &RecordMeta::default()).await;
    (r.result, r.error.as_ref().map(|e| e.0.clone()), r.error.map(|e| e.1))
}

fn joiner(p: u8, day: u8) -> Ev {
    Ev { person: p, kind: 0, day, groups: 1, subs: 1, stacks: 1, ..Ev::default() }
}

fn leaver(p: u8, day: u8) -> Ev {
    Ev { kind: 2, ..joiner(p, day) }
}

/// IAM whose RemoveUserFromGroup answers success without removing while `stuck` is set: a
/// revocation that does not hold (an eventual read, a concurrent re-grant, a lying proxy).
struct StickyGroups {
    inner: Arc<SimIam>,
    stuck: AtomicBool,
}

#[async_trait]
impl IamUsers for StickyGroups {
    async fn get_user(&self, n: &str) -> Result<Option<IamUser>, ServiceError> {
        self.inner.get_user(n).await
    }
    async fn create_user(&self, u: &IamNewUser) -> Result<Option<String>, ServiceError> {
        self.inner.create_user(u).await
    }
    async fn update_user(&self, n: &str, p: Option<&str>, m: Option<&str>) -> Result<(), ServiceError> {
        self.inner.update_user(n, p, m).await
    }
    async fn put_permissions_boundary(&self, n: &str, a: &str) -> Result<(), ServiceError> {
        self.inner.put_permissions_boundary(n, a).await
    }
    async fn tag_user(&self, n: &str, t: &BTreeMap<String, String>) -> Result<(), ServiceError> {
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
        if self.stuck.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.remove_from_group(n, g).await
    }
    async fn delete_login_profile(&self, n: &str) -> Result<bool, ServiceError> {
        self.inner.delete_login_profile(n).await
    }
    async fn has_login_profile(&self, n: &str) -> Result<bool, ServiceError> {
        self.inner.has_login_profile(n).await
    }
    async fn access_keys(&self, n: &str) -> Result<Vec<AccessKey>, ServiceError> {
        self.inner.access_keys(n).await
    }
    async fn deactivate_access_key(&self, n: &str, k: &str) -> Result<(), ServiceError> {
        self.inner.deactivate_access_key(n, k).await
    }
    async fn other_credentials(&self, n: &str) -> Result<Vec<OtherCredential>, ServiceError> {
        self.inner.other_credentials(n).await
    }
    async fn deactivate_credential(&self, n: &str, c: &OtherCredential) -> Result<(), ServiceError> {
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
async fn a_leaver_whose_revocation_does_not_hold_is_parked_incomplete_and_converges_when_redriven() {
    let w = World::new();
    let sticky = Arc::new(StickyGroups { inner: w.iam.clone(), stuck: AtomicBool::new(false) });
    let mut cfg = config();
    cfg.leavers_per_hour = None;
    let state = iam_sync::state(
        sticky.clone(),
        w.ledger.clone(),
        Arc::new(SimDeadLetterQueue::default()),
        &cfg,
        &iam_sync::Settings::from_config(&cfg).expect("settings"),
    );
    let person = format!("workday#{}", external_id(0));
    assert_eq!(one(&state, &body(&joiner(0, 1), 1)).await.0, RecordResult::Done);
    sticky.stuck.store(true, Ordering::SeqCst);
    // WHEN the leaver's group removals answer success but do not hold
    let leave = body(&leaver(0, 2), 2);
    let (result, code, reason) = one(&state, &leave).await;
    // THEN the read-back finds the groups and the leaver is parked with its own alarm code
    assert_eq!((result, code.as_deref()), (RecordResult::Parked, Some("LeaverIncomplete")));
    let reason = reason.unwrap();
    assert!(reason.contains("in 3 group(s)"), "{reason}");
    assert!(!reason.contains("u0"), "no personal data in the reason: {reason}");
    // AND the ledger keeps the leaver, marked active (not done)
    let r = w.ledger.record(&person, IAM_TARGET).unwrap();
    assert_eq!(r.status, PersonStatus::Active);
    assert!(r.lifecycle_event.as_deref().is_some_and(|b| b.contains("\"leaver\"")));
    // AND a later mover grants nothing: it converges to the leaver again
    let mover = body(&Ev { kind: 1, groups: 3, ..joiner(0, 3) }, 3);
    assert_eq!(one(&state, &mover).await.1.as_deref(), Some("LeaverIncomplete"));
    let u = w.iam.user("u0").unwrap();
    assert!(!u.groups.iter().any(|g| g == "finance"), "the mover's groups were not granted: {:?}", u.groups);
    // WHEN the cause is fixed and the parked leaver is redriven (the same body again)
    sticky.stuck.store(false, Ordering::SeqCst);
    let (result, code, _) = one(&state, &leave).await;
    // THEN it converges (not settled as a duplicate), verified, and the record says done
    assert_eq!((result, code), (RecordResult::Done, None));
    assert_eq!(w.access_left(0), Vec::<String>::new());
    assert_eq!(w.ledger.record(&person, IAM_TARGET).unwrap().status, PersonStatus::Disabled);
    // AND a further redelivery is a duplicate again: no writes
    let before = w.iam.calls().writes();
    let again = process_record(&state, &leave, &RecordMeta::default()).await;
    assert_eq!(again.outcome.map(|o| o.decision.as_str()), Some("duplicate"));
    assert_eq!(w.iam.calls().writes(), before);
}

fn limited(w: &World, limit: u32) -> Vec<State> {
    let mut cfg = config();
    cfg.leavers_per_hour = Some(limit);
    w.instance_with(w.ledger.clone(), &cfg)
}

#[tokio::test]
async fn a_throttled_leaver_retried_takes_one_breaker_slot() {
    // Regression: a slot was taken before converging, so each retry took another
    let w = World::new();
    let states = limited(&w, 2);
    let apps = &states[2];
    for p in 0..2 {
        one(apps, &body(&joiner(p, 1), 1 + p as usize)).await;
    }
    w.apps.fail_next(
        appstream_sync::port::op::DISABLE_USER,
        ServiceError::Throttled { op: appstream_sync::port::op::DISABLE_USER, retry_after_seconds: None },
    );
    let leave0 = body(&leaver(0, 2), 10);
    assert_eq!(one(apps, &leave0).await.0, RecordResult::Retry);
    assert_eq!(one(apps, &leave0).await.0, RecordResult::Done);
    // The second person's leaver still has the second slot.
    let r = process_record(apps, &body(&leaver(1, 2), 11), &RecordMeta::default()).await;
    assert_eq!(r.outcome.map(|o| o.decision.as_str()), Some("disable"));
    assert_eq!(w.access_left(1).iter().filter(|l| l.starts_with("appstream")).count(), 0);
}

#[tokio::test]
async fn a_leaver_with_nothing_to_revoke_takes_no_breaker_slot() {
    let w = World::new();
    let states = limited(&w, 1);
    // A leaver for a person with no account anywhere, then a real one: the real one applies.
    for s in &states {
        let r = process_record(s, &body(&leaver(2, 1), 1), &RecordMeta::default()).await;
        assert_eq!(r.outcome.map(|o| o.decision.as_str()), Some("leaver-without-account"));
    }
    for s in &states {
        one(s, &body(&joiner(0, 1), 2)).await;
    }
    for s in &states {
        let r = process_record(s, &body(&leaver(0, 2), 3), &RecordMeta::default()).await;
        assert_eq!(r.outcome.map(|o| o.decision.as_str()), Some("disable"), "{}", s.engine.target_name());
    }
    assert_eq!(w.access_left(0), Vec::<String>::new());
}

#[tokio::test]
async fn the_breaker_decides_once_per_leaver_for_every_target() {
    // trigger 10: per-target counters let one person be disabled in one target and held in another
    let w = World::new();
    let states = limited(&w, 1);
    for s in &states {
        for p in 0..2 {
            one(s, &body(&joiner(p, 1), 1 + p as usize)).await;
        }
    }
    // identity sees Ada's leaver first (applied, the one slot), then Bob's (held)
    let (ada, bob) = (body(&leaver(0, 2), 10), body(&leaver(1, 2), 11));
    let decide = |s: &State, b: String| {
        let s = s.clone();
        async move { process_record(&s, &b, &RecordMeta::default()).await.outcome.map(|o| o.decision.as_str()) }
    };
    assert_eq!(decide(&states[0], ada.clone()).await, Some("disable"));
    assert_eq!(decide(&states[0], bob.clone()).await, Some("held"));
    // every other target, in the other order: Bob held, Ada applied (no second slot for her)
    for s in &states[1..] {
        assert_eq!(decide(s, bob.clone()).await, Some("held"), "{}", s.engine.target_name());
        assert_eq!(decide(s, ada.clone()).await, Some("disable"), "{}", s.engine.target_name());
    }
    assert_eq!(w.access_left(0), Vec::<String>::new());
    assert_eq!(w.access_left(1).len(), 4, "Bob is held everywhere, not disabled anywhere: {:?}", w.access_left(1));
}

#[tokio::test]
async fn a_group_renamed_out_of_the_managed_set_is_never_written() {
    // Regression: warm caches kept the managed name of a renamed group
    // (GROUP_RECHECK_SECONDS=0: every mapping from an earlier step is re-checked, as after 30 s)
    let w = World::new();
    let cfg = config_with(&[("GROUP_RECHECK_SECONDS", "0")]);
    let states = w.instance_with(w.ledger.clone(), &cfg);
    let identity = &states[0];
    one(identity, &body(&joiner(0, 1), 1)).await;
    w.identity.rename_group("jml-engineering", "prod-admins");
    // A joiner naming the managed group: it no longer exists under that name (parked), and
    // nobody is added to prod-admins
    let (result, code, _) = one(identity, &body(&joiner(1, 2), 2)).await;
    assert_eq!((result, code.as_deref()), (RecordResult::Parked, Some("GroupNotFound")));
    let members = |g: &str| w.identity.users().into_iter().filter(|u| u.groups.iter().any(|x| x == g)).count();
    assert_eq!(members("prod-admins"), 1, "only the member from before the rename");
    // The leaver disables Ada and removes managed memberships, but writes nothing to prod-admins
    let r = process_record(identity, &body(&leaver(0, 3), 3), &RecordMeta::default()).await;
    assert!(r.error.is_none(), "{:?}", r.error);
    let ada = w.identity.user("u0").unwrap();
    assert_eq!(ada.status, UserStatus::Disabled);
    assert_eq!(ada.groups, vec!["prod-admins".to_string()], "an unmanaged group's membership is not touched");
    assert_eq!(
        w.ledger.record(&format!("workday#{}", external_id(0)), IDENTITY_TARGET).unwrap().status,
        PersonStatus::Disabled
    );
}

#[tokio::test]
async fn a_membership_conflict_is_verified_not_assumed() {
    // Regression: ConflictException without Reason on CreateGroupMembership
    let w = World::new();
    let states = limited(&w, 25);
    let identity = &states[0];
    w.identity.inject(identity_sync::sim::Fault::next(
        identity_sync::port::op::CREATE_GROUP_MEMBERSHIP,
        ServiceError::Conflict {
            op: identity_sync::port::op::CREATE_GROUP_MEMBERSHIP,
            reason: ConflictReason::Unspecified,
        },
        1,
    ));
    // The conflict was not "already a member": retried, not recorded as done
    let j = body(&joiner(0, 1), 1);
    let (result, code, _) = one(identity, &j).await;
    assert_eq!((result, code.as_deref()), (RecordResult::Retry, Some("Conflict")));
    assert!(w.ledger.record(&format!("workday#{}", external_id(0)), IDENTITY_TARGET).is_none());
    // The retry completes every membership; a real "already a member" conflict is success
    assert_eq!(one(identity, &j).await.0, RecordResult::Done);
    assert_eq!(w.identity.user("u0").unwrap().groups.len(), 3);
}

#[tokio::test]
async fn a_service_that_refuses_to_disable_leaves_no_group_and_parks_disable_unsupported() {
    // Regression: UpdateUser on userStatus is in no production code found; if the
    // service refuses it, a leaver must still end with no managed access, and say why.
    let w = World::new();
    let cfg = config_with(&[("BREAKER_LEAVERS_PER_HOUR", "0")]);
    let identity = w.instance_with(w.ledger.clone(), &cfg).swap_remove(0);
    let person = format!("workday#{}", external_id(0));
    let ours = |w: &World| {
        let tail = format!(":{}", external_id(0));
        w.identity.users().into_iter().find(|u| u.marker.as_deref().is_some_and(|m| m.ends_with(&tail)))
    };
    assert_eq!(one(&identity, &body(&joiner(0, 1), 1)).await.0, RecordResult::Done);
    assert!(!ours(&w).unwrap().groups.is_empty());
    w.identity.reject_user_status_writes(true);
    // WHEN the leaver's disable is refused
    let leave = body(&leaver(0, 2), 2);
    let (result, code, reason) = one(&identity, &leave).await;
    // THEN every managed membership is gone, and the event is parked under its own code
    assert_eq!((result, code.as_deref()), (RecordResult::Parked, Some("DisableUnsupported")));
    assert!(reason.as_deref().is_some_and(|r| r.contains("enabled")), "{reason:?}");
    let user = ours(&w).unwrap();
    assert!(user.groups.is_empty(), "no managed group left: {:?}", user.groups);
    assert_eq!(user.status, UserStatus::Enabled);
    // AND the ledger keeps the leaver (marked active), so a later mover grants nothing
    let r = w.ledger.record(&person, IDENTITY_TARGET).unwrap();
    assert_eq!(r.status, PersonStatus::Active);
    assert!(r.lifecycle_event.as_deref().is_some_and(|b| b.contains("\"leaver\"")));
    let mover = body(&Ev { kind: 1, groups: 3, ..joiner(0, 3) }, 3);
    assert_eq!(one(&identity, &mover).await.1.as_deref(), Some("DisableUnsupported"));
    assert!(ours(&w).unwrap().groups.is_empty(), "the mover's groups were not granted");
    // WHEN the service accepts it again (or an operator disabled the user) and it is redriven
    w.identity.reject_user_status_writes(false);
    let (result, code, _) = one(&identity, &leave).await;
    // THEN the leaver converges and is recorded done
    assert_eq!((result, code), (RecordResult::Done, None));
    assert_eq!(ours(&w).unwrap().status, UserStatus::Disabled);
    assert_eq!(w.ledger.record(&person, IDENTITY_TARGET).unwrap().status, PersonStatus::Disabled);
}
