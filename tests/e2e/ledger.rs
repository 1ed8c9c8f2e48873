//! The person ledger on the simulators: rename-safe resolution, the stale guard, the audit trail,
//! crash windows (a failure injected after every step converges on redelivery), repair of a
//! stale ledger entry, and a lost race converging on the winner.

use identity_sync::IDENTITY_TARGET;
use std::sync::Arc;

use async_trait::async_trait;
use identity_sync::port::UserStatus;
use identity_sync::sim::{Fault, SimIdentityStore};
use jml_core::batch::RecordResult;
use jml_core::engine::Decision;
use jml_core::ledger::{Audit, AuditEntry, Breaker, HeldEvent, Inventory, Leases, PersonRecord, PersonStatus, Records};
use jml_core::ports::ServiceError;
use jml_core::sim::{SimDeadLetterQueue, SimLedger};
use serde_json::Value;

use crate::{decision, fixture, fixture_json, memory_state, run};

const ADA: &str = "workday#100234";

fn renamed_mover() -> String {
    let mut m = fixture_json("03-mover-ada.json");
    m["person"]["userName"] = "ada.byron".into();
    m.to_string()
}

#[tokio::test]
async fn a_user_name_change_renames_the_same_account_and_never_creates_a_second() {
    let (state, mem) = memory_state();
    assert_eq!(decision(&run(&state, &fixture("01-joiner-ada.json")).await), Decision::Create);
    let id = mem.store.user("ada.lovelace").unwrap().user_id;
    // WHEN HR renames her in a mover (GetUserId by the new name finds nothing)
    assert_eq!(decision(&run(&state, &renamed_mover()).await), Decision::Update);
    // THEN the same account carries the new name; the old name is gone; no second account
    assert!(mem.store.user("ada.lovelace").is_none());
    let ada = mem.store.user("ada.byron").unwrap();
    assert_eq!(ada.user_id, id);
    assert_eq!(mem.store.calls().get(identity_sync::port::op::CREATE_USER), 1);
    let rec = mem.ledger.record(ADA, IDENTITY_TARGET).unwrap();
    assert_eq!(rec.user_name.as_deref(), Some("ada.byron"));
    // AND her leaver (externalId only) finds the renamed account through the ledger, no scan
    mem.store.reset_calls();
    assert_eq!(decision(&run(&state, &fixture("04-leaver-ada.json")).await), Decision::Disable);
    assert_eq!(mem.store.user("ada.byron").unwrap().status, UserStatus::Disabled);
    assert_eq!(mem.store.calls().get(identity_sync::port::op::LIST_USERS), 0);
}

#[tokio::test]
async fn a_stale_joiner_after_the_leaver_is_skipped_and_audited_and_the_trail_tells_the_story() {
    let (state, mem) = memory_state();
    for f in ["01-joiner-ada.json", "03-mover-ada.json", "04-leaver-ada.json"] {
        run(&state, &fixture(f)).await;
    }
    // WHEN the joiner is delivered again, late, under a new eventId
    let mut late = fixture_json("01-joiner-ada.json");
    late["eventId"] = "hr-2026-11-02-0001-resent".into();
    mem.store.reset_calls();
    let r = run(&state, &late.to_string()).await;
    // THEN it is skipped: no Identity Store call, the account stays disabled, no error
    assert_eq!(decision(&r), Decision::Stale);
    assert_eq!(r.result, RecordResult::Done);
    assert_eq!(mem.store.calls().reads() + mem.store.calls().writes(), 0);
    assert_eq!(mem.store.user("ada.lovelace").unwrap().status, UserStatus::Disabled);
    // AND the same leaver again is a duplicate: no writes at all
    mem.ledger.reset_calls();
    assert_eq!(decision(&run(&state, &fixture("04-leaver-ada.json")).await), Decision::Duplicate);
    assert_eq!(mem.ledger.calls().writes, 0);
    run(&state, &fixture("05-rehire-ada.json")).await;
    // AND the audit trail answers "when was access removed?" in one query, in HR order
    let trail = mem.ledger.audit_trail(ADA).await.unwrap();
    let story: Vec<(&str, &str)> = trail.iter().map(|a| (a.event_type.as_str(), a.decision.as_str())).collect();
    assert_eq!(
        story,
        vec![
            ("joiner", "create"),
            ("joiner", "stale"),
            ("mover", "update"),
            ("leaver", "disable"),
            ("rehire", "rehire")
        ]
    );
    let leaver = trail.iter().find(|a| a.decision == "disable").unwrap();
    assert_eq!((leaver.actions, leaver.writes), (4, 4));
    assert!(trail.iter().all(|a| a.expires_at.is_some()), "audit entries carry the TTL");
    let rec = mem.ledger.record(ADA, IDENTITY_TARGET).unwrap();
    assert_eq!((rec.status, rec.last_event_id.as_str()), (PersonStatus::Active, "hr-2026-11-30-0002"));
}

#[tokio::test]
async fn events_arriving_out_of_order_end_in_the_newest_state() {
    let (state, mem) = memory_state();
    // The mover overtakes the joiner (e.g. a direct EventBridge delivery)
    assert_eq!(decision(&run(&state, &fixture("03-mover-ada.json")).await), Decision::Create);
    assert_eq!(decision(&run(&state, &fixture("01-joiner-ada.json")).await), Decision::Stale);
    let ada = mem.store.user("ada.lovelace").unwrap();
    assert_eq!(ada.groups, vec!["jml-all-staff", "jml-oncall", "jml-vpn"]);
    assert_eq!(ada.attributes.department.as_deref(), Some("Site Reliability"));
}

#[tokio::test]
async fn a_leaver_for_someone_never_provisioned_is_recorded_as_deleted() {
    let (state, mem) = memory_state();
    assert_eq!(decision(&run(&state, &fixture("04-leaver-ada.json")).await), Decision::LeaverWithoutAccount);
    assert_eq!(mem.ledger.record(ADA, IDENTITY_TARGET).unwrap().status, PersonStatus::Deleted);
    // A late joiner for them is recorded and grants nothing: after a leaver only a rehire grants.
    assert_eq!(decision(&run(&state, &fixture("01-joiner-ada.json")).await), Decision::IgnoredForDisabledUser);
    assert!(mem.store.user("ada.lovelace").is_none());
}

/// Users (name, status, groups) and the ledger's last applied event with an account.
type EndState = (Vec<(String, UserStatus, Vec<String>)>, Option<String>);
/// Injects one crash into the simulators.
type Crash = Box<dyn Fn(&SimIdentityStore, &SimLedger)>;

/// What a joiner's delivery ends in, for comparison across fault injections.
fn end_state(store: &SimIdentityStore, ledger: &SimLedger) -> EndState {
    let users = store.users().into_iter().map(|u| (u.user_name, u.status, u.groups)).collect();
    (users, ledger.record(ADA, IDENTITY_TARGET).and_then(|r| r.user_id.map(|_| r.last_event_id)))
}

#[tokio::test]
async fn a_crash_after_any_step_of_a_joiner_converges_on_redelivery() {
    let reference = {
        let (state, mem) = memory_state();
        run(&state, &fixture("01-joiner-ada.json")).await;
        end_state(&mem.store, &mem.ledger)
    };
    let unavailable = |op| ServiceError::Unavailable { op, message: "crash".into() };
    // Steps: CreateUser, CreateGroupMembership 1..3, then the ledger commit.
    let mut windows: Vec<(String, Crash)> = vec![(
        "after CreateUser".into(),
        Box::new(move |s: &SimIdentityStore, _: &SimLedger| {
            s.inject(Fault::next(
                identity_sync::port::op::CREATE_GROUP_MEMBERSHIP,
                unavailable(identity_sync::port::op::CREATE_GROUP_MEMBERSHIP),
                1,
            ))
        }),
    )];
    for after in 1..3 {
        windows.push((
            format!("after membership {after}"),
            Box::new(move |s: &SimIdentityStore, _: &SimLedger| {
                s.inject(Fault {
                    after,
                    ..Fault::next(
                        identity_sync::port::op::CREATE_GROUP_MEMBERSHIP,
                        unavailable(identity_sync::port::op::CREATE_GROUP_MEMBERSHIP),
                        1,
                    )
                })
            }),
        ));
    }
    windows.push((
        "after every Identity Store write, before the ledger".into(),
        Box::new(|_, l: &SimLedger| l.fail_next_commits(1)),
    ));
    for (name, inject) in windows {
        let (state, mem) = memory_state();
        inject(&mem.store, &mem.ledger);
        let first = run(&state, &fixture("01-joiner-ada.json")).await;
        assert_eq!(first.result, RecordResult::Retry, "{name}: the crash is retried");
        let second = run(&state, &fixture("01-joiner-ada.json")).await;
        assert_eq!(second.result, RecordResult::Done, "{name}: redelivery succeeds: {:?}", second.error);
        assert_eq!(end_state(&mem.store, &mem.ledger), reference, "{name}: same end state as without the crash");
        assert_eq!(
            mem.store.calls().get(identity_sync::port::op::CREATE_USER),
            1,
            "{name}: the account was adopted, not created twice"
        );
    }
}

#[tokio::test]
async fn a_ledger_entry_for_a_deleted_account_is_repaired() {
    let (state, mem) = memory_state();
    run(&state, &fixture("01-joiner-ada.json")).await;
    let mut rec = mem.ledger.record(ADA, IDENTITY_TARGET).unwrap();
    rec.user_id = Some("00000000-0000-4000-8000-00000000dead".into());
    mem.ledger.force_put(rec);
    let r = run(&state, &fixture("03-mover-ada.json")).await;
    assert_eq!(decision(&r), Decision::Update);
    assert_eq!(r.outcome.unwrap().resolved_by, "user-name", "fell back to the chain");
    let real = mem.store.user("ada.lovelace").unwrap().user_id;
    assert_eq!(mem.ledger.record(ADA, IDENTITY_TARGET).unwrap().user_id, Some(real), "repaired");
}

/// A ledger that lets a concurrent delivery of `winner` commit just before our first commit.
struct Racing {
    inner: Arc<SimLedger>,
    winner: std::sync::Mutex<Option<PersonRecord>>,
}

#[async_trait]
impl Records for Racing {
    async fn get(&self, p: &str, t: &str) -> Result<Option<PersonRecord>, ServiceError> {
        self.inner.get(p, t).await
    }

    async fn commit(&self, r: &PersonRecord, e: Option<u64>, a: &AuditEntry) -> Result<bool, ServiceError> {
        let winner = self.winner.lock().unwrap().take();
        if let Some(w) = winner {
            self.inner.force_put(w);
        }
        self.inner.commit(r, e, a).await
    }

    async fn index_variant(&self, v: &str, p: &str) -> Result<(), ServiceError> {
        self.inner.index_variant(v, p).await
    }

    async fn variants(&self, v: &str) -> Result<std::collections::BTreeSet<String>, ServiceError> {
        self.inner.variants(v).await
    }

    async fn known(
        &self,
        t: &str,
    ) -> Result<std::collections::BTreeMap<String, jml_core::ledger::Known>, ServiceError> {
        self.inner.known(t).await
    }
}

#[async_trait]
impl Inventory for Racing {
    async fn claim(&self, t: &str, n: &str, p: &str) -> Result<String, ServiceError> {
        self.inner.claim(t, n, p).await
    }

    async fn owner(&self, t: &str, n: &str) -> Result<Option<String>, ServiceError> {
        self.inner.owner(t, n).await
    }

    async fn remember(&self, p: &str, t: &str, a: &str) -> Result<(), ServiceError> {
        self.inner.remember(p, t, a).await
    }

    async fn accounts(&self, p: &str, t: &str) -> Result<std::collections::BTreeSet<String>, ServiceError> {
        self.inner.accounts(p, t).await
    }
}

#[async_trait]
impl Leases for Racing {
    async fn lease(&self, p: &str, t: &str, h: &str, e: i64) -> Result<bool, ServiceError> {
        self.inner.lease(p, t, h, e).await
    }

    async fn release(&self, p: &str, t: &str, h: &str) -> Result<(), ServiceError> {
        self.inner.release(p, t, h).await
    }
}

#[async_trait]
impl Breaker for Racing {
    async fn window(&self, k: &str) -> Result<(Vec<(String, i64)>, u64), ServiceError> {
        self.inner.window(k).await
    }

    async fn put_window(&self, k: &str, e: &[(String, i64)], v: u64, x: i64) -> Result<bool, ServiceError> {
        self.inner.put_window(k, e, v, x).await
    }

    async fn decide(&self, p: &str, e: &str, d: &str, x: i64) -> Result<String, ServiceError> {
        self.inner.decide(p, e, d, x).await
    }

    async fn decision(&self, p: &str, e: &str) -> Result<Option<String>, ServiceError> {
        self.inner.decision(p, e).await
    }

    async fn hold(&self, h: &HeldEvent, a: &AuditEntry) -> Result<(), ServiceError> {
        self.inner.hold(h, a).await
    }

    async fn held(&self, t: &str) -> Result<Vec<HeldEvent>, ServiceError> {
        self.inner.held(t).await
    }

    async fn forget_held(&self, h: &HeldEvent) -> Result<(), ServiceError> {
        self.inner.forget_held(h).await
    }
}

#[async_trait]
impl Audit for Racing {
    async fn append_audit(&self, a: &AuditEntry) -> Result<(), ServiceError> {
        self.inner.append_audit(a).await
    }

    async fn audit_trail(&self, p: &str) -> Result<Vec<AuditEntry>, ServiceError> {
        self.inner.audit_trail(p).await
    }
}

#[tokio::test]
async fn the_loser_of_a_race_with_a_newer_event_converges_on_the_winner() {
    // GIVEN ada joined
    let config = jml_core::config::Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    let store = Arc::new(identity_sync::sim::demo_identity_store());
    let inner = Arc::new(SimLedger::default());
    let racing = Arc::new(Racing { inner: inner.clone(), winner: std::sync::Mutex::new(None) });
    let state = identity_sync::state(
        store.clone(),
        racing.clone(),
        Arc::new(SimDeadLetterQueue::default()),
        &config,
        &identity_sync::Settings::from_config(&config).expect("settings"),
    );
    run(&state, &fixture("01-joiner-ada.json")).await;
    // AND a newer mover (the winner) commits while our older mover is being applied
    let mut winner: Value = fixture_json("03-mover-ada.json");
    winner["eventId"] = "winner".into();
    winner["occurredAt"] = "2026-11-10T08:00:00Z".into();
    winner["person"]["title"] = "Winner".into();
    winner["groups"] = serde_json::json!(["jml-all-staff", "jml-finance"]);
    let mut rec = inner.record(ADA, IDENTITY_TARGET).unwrap();
    rec.last_event_id = "winner".into();
    rec.last_occurred_at = "2026-11-10T08:00:00Z".parse().unwrap();
    rec.last_event = Some(winner.to_string());
    rec.version += 1;
    *racing.winner.lock().unwrap() = Some(rec);
    // WHEN our (older) mover finishes its writes and tries to commit
    let r = run(&state, &fixture("03-mover-ada.json")).await;
    // THEN it loses, finds itself stale, and re-applies the winner's state
    assert_eq!(decision(&r), Decision::Stale);
    let ada = store.user("ada.lovelace").unwrap();
    assert_eq!(ada.attributes.title.as_deref(), Some("Winner"));
    assert_eq!(ada.groups, vec!["jml-all-staff", "jml-finance"]);
    assert_eq!(inner.record(ADA, IDENTITY_TARGET).unwrap().last_event_id, "winner");
}
