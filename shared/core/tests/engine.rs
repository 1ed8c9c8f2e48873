//! The engine against a fake target (no SDK, no slice): what the engine owns, tested where it
//! lives. The fake keeps one account per person (active or not, a set of grants) and counts the
//! calls the engine makes to `plan`, `apply` and `verify_revoked`.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jml_core::contract::{EventKind, HrEvent, parse_event};
use jml_core::engine::{Applied, Ctx, Decision, Desired, Engine, EngineSettings, Plan, Step, SyncError, Target};
use jml_core::ledger::PersonStatus;
use jml_core::ledger::prelude::*;
use jml_core::sim::SimLedger;

const TARGET: &str = "example-target";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Account {
    active: bool,
    grants: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum FakeStep {
    Create,
    Enable,
    Grant(String),
    Revoke(String),
    Disable,
}

impl Step for FakeStep {
    fn describe(&self) -> String {
        format!("{self:?}")
    }

    fn revokes(&self) -> bool {
        matches!(self, Self::Revoke(_) | Self::Disable)
    }
}

#[derive(Default)]
struct Fake {
    accounts: Mutex<BTreeMap<String, Account>>,
    plans: Mutex<usize>,
    applies: Mutex<usize>,
    verifies: Mutex<usize>,
    /// `apply` answers `Replan` this many times first.
    replans: Mutex<usize>,
    /// A grant nobody can revoke (a hand-made re-grant): the read-back always finds it.
    stuck: Mutex<Option<String>>,
    /// The next plan does not see the person's account (a lookup that missed it, or a
    /// concurrent creation the plan did not see yet); `apply` then meets it (`Replan`).
    blind_once: Mutex<bool>,
}

fn count(m: &Mutex<usize>) -> usize {
    *m.lock().unwrap()
}

#[async_trait]
impl Target for Fake {
    type Step = FakeStep;
    type Accounts = Option<String>;

    fn name(&self) -> &'static str {
        TARGET
    }

    async fn plan(&self, desired: &Desired<'_>, ctx: &Ctx<'_>) -> Result<Plan<FakeStep, Option<String>>, SyncError> {
        *self.plans.lock().unwrap() += 1;
        let person = ctx.person().to_string();
        let blind = std::mem::take(&mut *self.blind_once.lock().unwrap());
        let current = if blind { None } else { self.accounts.lock().unwrap().get(&person).cloned() };
        let event = desired.state;
        let mut steps = Vec::new();
        let decision = match (event.kind(), &current) {
            (EventKind::Leaver, None) => Decision::LeaverWithoutAccount,
            (EventKind::Leaver, Some(a)) => {
                steps.extend(a.grants.iter().cloned().map(FakeStep::Revoke));
                if a.active {
                    steps.push(FakeStep::Disable);
                }
                if steps.is_empty() { Decision::NoChange } else { Decision::Disable }
            }
            (_, current) => {
                let want: BTreeSet<String> = event
                    .profile()
                    .map(|p| p.groups.iter().map(|g| g.as_str().to_string()).collect())
                    .unwrap_or_default();
                let have = current.as_ref().map(|a| a.grants.clone()).unwrap_or_default();
                if current.is_none() {
                    steps.push(FakeStep::Create);
                }
                if current.as_ref().is_some_and(|a| !a.active) && event.kind() == EventKind::Rehire {
                    steps.push(FakeStep::Enable);
                }
                steps.extend(have.difference(&want).cloned().map(FakeStep::Revoke));
                steps.extend(want.difference(&have).cloned().map(FakeStep::Grant));
                match (current.is_none(), steps.is_empty()) {
                    (true, _) => Decision::Create,
                    (false, true) => Decision::NoChange,
                    (false, false) => Decision::Update,
                }
            }
        };
        let mut plan = Plan::nothing(decision, current.map(|_| person.clone()), "fake");
        plan.steps = steps;
        plan.user_id = Some(person);
        Ok(plan)
    }

    async fn apply(&self, plan: &Plan<FakeStep, Option<String>>, ctx: &Ctx<'_>) -> Result<Applied, SyncError> {
        *self.applies.lock().unwrap() += 1;
        {
            let mut replans = self.replans.lock().unwrap();
            if *replans > 0 {
                *replans -= 1;
                return Err(SyncError::Replan("fake".into()));
            }
        }
        let person = ctx.person().to_string();
        if plan.steps.contains(&FakeStep::Create) {
            ctx.remember(&person).await?;
            if self.accounts.lock().unwrap().contains_key(&person) {
                // The account exists after all (the service answers a conflict): plan again.
                return Err(SyncError::Replan("fake: the account exists".into()));
            }
        }
        let stuck = self.stuck.lock().unwrap().clone();
        let mut accounts = self.accounts.lock().unwrap();
        for step in &plan.steps {
            match step {
                FakeStep::Create => {
                    accounts.insert(person.clone(), Account { active: true, grants: BTreeSet::new() });
                }
                FakeStep::Grant(g) => {
                    accounts.entry(person.clone()).or_default().grants.insert(g.clone());
                }
                FakeStep::Revoke(g) if Some(g) != stuck.as_ref() => {
                    accounts.entry(person.clone()).or_default().grants.remove(g);
                }
                FakeStep::Revoke(_) => {}
                FakeStep::Disable => accounts.entry(person.clone()).or_default().active = false,
                FakeStep::Enable => accounts.entry(person.clone()).or_default().active = true,
            }
        }
        let status = match (plan.decision, accounts.get(&person)) {
            (_, None) => PersonStatus::Deleted,
            (Decision::Disable | Decision::NoChange, Some(a)) if !a.active => PersonStatus::Disabled,
            _ => PersonStatus::Active,
        };
        Ok(Applied {
            decision: plan.decision,
            actions: plan.actions(),
            user_id: accounts.contains_key(&person).then(|| person.clone()),
            user_name: None,
            status,
            resolved_by: plan.resolved_by,
            notes: vec![],
        })
    }

    async fn verify_revoked(
        &self,
        plan: &Plan<FakeStep, Option<String>>,
        _ctx: &Ctx<'_>,
    ) -> Result<Vec<String>, SyncError> {
        *self.verifies.lock().unwrap() += 1;
        let accounts = self.accounts.lock().unwrap();
        let Some(a) = plan.accounts.as_ref().and_then(|p| accounts.get(p)) else { return Ok(vec![]) };
        let mut left: Vec<String> = a.grants.iter().map(|g| format!("grant {g}")).collect();
        if a.active {
            left.push("active".into());
        }
        Ok(left)
    }
}

fn event(json: serde_json::Value) -> (HrEvent, String) {
    let body = json.to_string();
    (parse_event(&body).expect("valid event"), body)
}

fn joiner(id: &str, event_id: &str, at: &str, groups: &[&str]) -> (HrEvent, String) {
    event(serde_json::json!({
        "eventId": event_id, "type": "joiner", "occurredAt": at,
        "person": {"externalId": {"issuer": "workday", "id": id}, "userName": format!("u{id}"),
                   "displayName": "Someone", "name": {"givenName": "Some", "familyName": "One"},
                   "email": format!("u{id}@example.com")},
        "groups": groups
    }))
}

fn leaver(id: &str, event_id: &str, at: &str) -> (HrEvent, String) {
    event(serde_json::json!({
        "eventId": event_id, "type": "leaver", "occurredAt": at,
        "person": {"externalId": {"issuer": "workday", "id": id}}
    }))
}

struct World {
    fake: Arc<Fake>,
    ledger: Arc<SimLedger>,
    engine: Engine,
}

fn world(settings: EngineSettings) -> World {
    let fake = Arc::new(Fake::default());
    let ledger = Arc::new(SimLedger::default());
    let engine = Engine::new(fake.clone(), ledger.clone(), settings);
    World { fake, ledger, engine }
}

async fn apply(w: &World, (e, body): &(HrEvent, String)) -> Result<jml_core::engine::Outcome, SyncError> {
    w.engine.apply(e, body).await
}

#[tokio::test]
async fn a_duplicate_makes_no_target_call_and_no_ledger_write() {
    let w = world(EngineSettings::default());
    let j = joiner("1", "e1", "2026-11-02T09:00:00Z", &["jml-a"]);
    assert_eq!(apply(&w, &j).await.unwrap().decision, Decision::Create);
    let (plans, applies) = (count(&w.fake.plans), count(&w.fake.applies));
    w.ledger.reset_calls();
    let again = apply(&w, &j).await.unwrap();
    assert_eq!(again.decision, Decision::Duplicate);
    assert_eq!((count(&w.fake.plans), count(&w.fake.applies)), (plans, applies));
    assert_eq!(w.ledger.calls().writes, 0);
    assert_eq!(w.ledger.calls().reads, 1);
}

#[tokio::test]
async fn a_dry_run_plans_once_and_writes_nothing_anywhere() {
    let w = world(EngineSettings { dry_run: true, ..EngineSettings::default() });
    let out = apply(&w, &joiner("1", "e1", "2026-11-02T09:00:00Z", &["jml-a", "jml-b"])).await.unwrap();
    assert!(out.dry_run);
    assert_eq!(out.decision, Decision::Create);
    assert_eq!(out.actions, vec!["Create", "Grant(\"jml-a\")", "Grant(\"jml-b\")"]);
    assert_eq!((count(&w.fake.plans), count(&w.fake.applies)), (1, 0));
    assert_eq!(w.ledger.calls().writes, 0);
    assert!(w.fake.accounts.lock().unwrap().is_empty());
    assert!(w.ledger.record("workday#1", TARGET).is_none());
}

#[tokio::test]
async fn a_leaver_is_planned_once_applied_once_read_back_once_and_its_status_is_the_targets() {
    let w = world(EngineSettings { leavers_per_hour: Some(10), ..EngineSettings::default() });
    apply(&w, &joiner("1", "e1", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap();
    let before = (count(&w.fake.plans), count(&w.fake.applies), count(&w.fake.verifies));
    w.ledger.reset_calls();
    let out = apply(&w, &leaver("1", "e2", "2026-11-03T09:00:00Z")).await.unwrap();
    assert_eq!(out.decision, Decision::Disable);
    let after = (count(&w.fake.plans), count(&w.fake.applies), count(&w.fake.verifies));
    assert_eq!((after.0 - before.0, after.1 - before.1, after.2 - before.2), (1, 1, 1));
    assert_eq!(w.ledger.record("workday#1", TARGET).unwrap().status, PersonStatus::Disabled);
    // Ledger reads: the record, the breaker's window, the inventory (read once by the context).
    assert!(w.ledger.calls().reads <= 3, "{:?}", w.ledger.calls());
}

#[tokio::test]
async fn the_breaker_reads_the_plan_a_leaver_that_revokes_nothing_takes_no_slot_and_the_second_is_held() {
    let w = world(EngineSettings { leavers_per_hour: Some(1), ..EngineSettings::default() });
    // A leaver for a person without an account revokes nothing: never counted.
    assert_eq!(
        apply(&w, &leaver("9", "x1", "2026-11-03T09:00:00Z")).await.unwrap().decision,
        Decision::LeaverWithoutAccount
    );
    for id in ["1", "2"] {
        apply(&w, &joiner(id, &format!("j{id}"), "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap();
    }
    assert_eq!(apply(&w, &leaver("1", "l1", "2026-11-03T09:00:00Z")).await.unwrap().decision, Decision::Disable);
    let held = apply(&w, &leaver("2", "l2", "2026-11-03T09:00:00Z")).await.unwrap();
    assert_eq!(held.decision, Decision::Held);
    // Held: planned, never applied; the account keeps its grant until an operator releases it.
    assert!(w.fake.accounts.lock().unwrap()["workday#2"].active);
    assert_eq!(w.engine.held().await.unwrap().len(), 1);
    let released = w.engine.release_held().await.unwrap();
    assert!(released[0].1.is_ok());
    let a = w.fake.accounts.lock().unwrap()["workday#2"].clone();
    assert!(!a.active && a.grants.is_empty());
}

#[tokio::test]
async fn access_left_after_a_leaver_is_planned_and_applied_once_more_then_parked_with_the_leaver_recorded() {
    let w = world(EngineSettings::default());
    apply(&w, &joiner("1", "e1", "2026-11-02T09:00:00Z", &["jml-a", "jml-b"])).await.unwrap();
    *w.fake.stuck.lock().unwrap() = Some("jml-b".into());
    let applies = count(&w.fake.applies);
    let err = apply(&w, &leaver("1", "e2", "2026-11-03T09:00:00Z")).await.unwrap_err();
    assert_eq!(err.code(), "LeaverIncomplete");
    assert!(err.to_string().contains("grant jml-b"), "{err}");
    assert_eq!(count(&w.fake.applies) - applies, 2);
    assert_eq!(count(&w.fake.verifies), 2);
    // Recorded, still marked active: a redelivery converges again instead of settling as a duplicate.
    let r = w.ledger.record("workday#1", TARGET).unwrap();
    assert_eq!(r.status, PersonStatus::Active);
    *w.fake.stuck.lock().unwrap() = None;
    let again = apply(&w, &leaver("1", "e2", "2026-11-03T09:00:00Z")).await.unwrap();
    assert_ne!(again.decision, Decision::Duplicate);
    assert_eq!(w.ledger.record("workday#1", TARGET).unwrap().status, PersonStatus::Disabled);
    assert!(w.fake.accounts.lock().unwrap()["workday#1"].grants.is_empty());
}

#[tokio::test]
async fn a_replan_plans_again_and_a_replan_that_never_ends_is_a_retryable_conflict() {
    let w = world(EngineSettings::default());
    *w.fake.replans.lock().unwrap() = 1;
    let out = apply(&w, &joiner("1", "e1", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap();
    assert_eq!(out.decision, Decision::Create);
    assert_eq!(count(&w.fake.plans), 2);
    *w.fake.replans.lock().unwrap() = 100;
    let err = apply(&w, &joiner("2", "e2", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap_err();
    assert_eq!(err.code(), "ConflictPersisted");
    assert!(err.is_retryable());
    // Nothing recorded for the person the target never converged; the lease was given back.
    assert!(w.ledger.record("workday#2", TARGET).is_none());
    *w.fake.replans.lock().unwrap() = 0;
    assert_eq!(
        apply(&w, &joiner("2", "e2", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap().decision,
        Decision::Create
    );
}

#[tokio::test]
async fn a_stale_event_is_audited_without_a_plan() {
    let w = world(EngineSettings::default());
    apply(&w, &joiner("1", "e2", "2026-11-03T09:00:00Z", &["jml-a"])).await.unwrap();
    let plans = count(&w.fake.plans);
    let out = apply(&w, &joiner("1", "e1", "2026-11-02T09:00:00Z", &["jml-b"])).await.unwrap();
    assert_eq!(out.decision, Decision::Stale);
    assert_eq!(count(&w.fake.plans), plans);
    assert_eq!(w.fake.accounts.lock().unwrap()["workday#1"].grants, BTreeSet::from(["jml-a".to_string()]));
}

#[tokio::test]
async fn a_lease_held_by_another_instance_is_busy_and_retried() {
    let w = world(EngineSettings::default());
    let until = chrono::Utc::now().timestamp() + 60;
    assert!(w.ledger.lease("workday#1", TARGET, "someone-else", until).await.unwrap());
    let err = apply(&w, &joiner("1", "e1", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap_err();
    assert_eq!(err.code(), "PersonBusy");
    assert!(err.is_retryable());
    assert_eq!(count(&w.fake.plans), 0);
}

#[tokio::test]
async fn a_commit_that_fails_after_the_writes_is_retried_and_its_redelivery_converges() {
    let w = world(EngineSettings::default());
    apply(&w, &joiner("1", "e1", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap();
    // The service writes are made, then the ledger commit fails (unavailable): retried.
    w.ledger.fail_next_commits(1);
    let err = apply(&w, &joiner("1", "e3", "2026-11-04T09:00:00Z", &["jml-b"])).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(w.ledger.record("workday#1", TARGET).unwrap().last_event_id, "e1");
    let again = apply(&w, &joiner("1", "e3", "2026-11-04T09:00:00Z", &["jml-b"])).await.unwrap();
    assert!(matches!(again.decision, Decision::Duplicate | Decision::Update | Decision::NoChange));
    assert_eq!(w.fake.accounts.lock().unwrap()["workday#1"].grants, BTreeSet::from(["jml-b".to_string()]));
    assert_eq!(w.ledger.record("workday#1", TARGET).unwrap().last_event_id, "e3");
}

#[tokio::test]
async fn a_mover_stripping_everything_is_counted_by_the_breaker_even_when_only_its_replan_revokes() {
    // GIVEN a breaker of one leaver an hour, already used by another person's leaver
    let w = world(EngineSettings { leavers_per_hour: Some(1), ..EngineSettings::default() });
    apply(&w, &joiner("9", "j9", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap();
    assert_eq!(apply(&w, &leaver("9", "l9", "2026-11-03T09:00:00Z")).await.unwrap().decision, Decision::Disable);
    // AND a person with a grant
    apply(&w, &joiner("1", "j1", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap();
    // WHEN a mover strips everything, and the first plan does not see the account (it plans a
    // create, which revokes nothing), so the breaker is skipped; apply meets the account and the
    // engine plans again: now the plan revokes
    *w.fake.blind_once.lock().unwrap() = true;
    let (mover, body) = event(serde_json::json!({
        "eventId": "m1", "type": "mover", "occurredAt": "2026-11-03T10:00:00Z",
        "person": {"externalId": {"issuer": "workday", "id": "1"}, "userName": "u1",
                   "displayName": "Someone", "name": {"givenName": "Some", "familyName": "One"},
                   "email": "u1@example.com"},
        "groups": [], "subscriptions": [], "appstreamStacks": []
    }));
    let out = match w.engine.apply(&mover, &body).await {
        // Retried (redelivered) is fine: the next delivery's plan sees the account.
        Err(e) if e.is_retryable() => w.engine.apply(&mover, &body).await.unwrap(),
        other => other.unwrap(),
    };
    // THEN the revocation is still the breaker's to decide: held (the window is full), the
    // grant kept until an operator releases it
    assert_eq!(out.decision, Decision::Held, "a re-plan that revokes bypassed the breaker: {out:?}");
    assert!(w.fake.accounts.lock().unwrap()["workday#1"].grants.contains("jml-a"));
}

// ---------------------------------------------------------------------------------------------
// Dated events: the state at the end is a function of the events and the time, not of the order
// they were delivered in (the oracle: what a person computes by hand from the events).

mod dated {
    use super::*;
    use chrono::{DateTime, Duration, Utc};
    use proptest::prelude::*;

    fn base() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[derive(Clone, Debug)]
    struct Ev {
        id: String,
        /// 0 joiner, 1 mover, 2 leaver, 3 rehire, 4 rescind
        kind: u8,
        recorded: DateTime<Utc>,
        /// `None`: undated; `Some(t)`: effectiveAt t, or (with `date`) effectiveDate of t's day.
        at: Option<DateTime<Utc>>,
        /// Sent as `effectiveDate` (the person's zone is unknown: the deployment's UTC).
        date: bool,
        immediate: bool,
        groups: Vec<String>,
        rescinds: String,
    }

    impl Ev {
        fn body(&self) -> String {
            let kind = ["joiner", "mover", "leaver", "rehire", "rescind"][self.kind as usize];
            let mut v = serde_json::json!({
                "eventId": self.id, "type": kind,
                "occurredAt": self.recorded.to_rfc3339(),
                "person": {"externalId": {"issuer": "workday", "id": "1"}},
            });
            if self.kind == 4 {
                v["rescinds"] = self.rescinds.clone().into();
                return v.to_string();
            }
            match (self.at, self.date) {
                (Some(at), false) => v["effectiveAt"] = at.to_rfc3339().into(),
                (Some(at), true) => v["effectiveDate"] = at.format("%Y-%m-%d").to_string().into(),
                (None, _) => {}
            }
            if self.kind == 2 {
                if self.immediate {
                    v["immediate"] = true.into();
                }
                return v.to_string();
            }
            v["person"] = serde_json::json!({
                "externalId": {"issuer": "workday", "id": "1"}, "userName": "u1", "displayName": "Someone",
                "name": {"givenName": "Some", "familyName": "One"}, "email": "u1@example.com"
            });
            v["groups"] = self.groups.clone().into();
            v.to_string()
        }

        /// The instant it takes effect, by hand.
        fn effective(&self) -> DateTime<Utc> {
            if self.kind == 4 || (self.kind == 2 && self.immediate) {
                return self.recorded;
            }
            match (self.at, self.date) {
                // By hand, in UTC: a start date at its first second, a last working day at its last.
                (Some(at), true) if self.kind == 2 => at.date_naive().and_hms_opt(23, 59, 59).unwrap().and_utc(),
                (Some(at), true) => at.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc(),
                (at, _) => at.unwrap_or(self.recorded),
            }
        }
    }

    /// By hand: cancel what a rescind recorded in time cancels (only a change dated ahead of its
    /// recording, never a rescind), walk the rest in the order they take effect (ties: recorded
    /// first, then id) up to `end`, keep the last profile and the last lifecycle event.
    fn expected(events: &[Ev], end: DateTime<Utc>) -> Option<Account> {
        let mut cancelled = BTreeSet::new();
        for r in events.iter().filter(|e| e.kind == 4) {
            if let Some(t) = events.iter().find(|e| e.id == r.rescinds)
                && t.kind != 4
                && t.effective() > t.recorded
                && r.recorded >= t.recorded
                && r.recorded < t.effective()
            {
                cancelled.insert(t.id.clone());
            }
        }
        // A for-cause (immediate) leaver voids what was recorded before it to take effect after it.
        for l in events.iter().filter(|e| e.kind == 2 && e.immediate) {
            for e in events.iter().filter(|e| e.kind != 4 && e.id != l.id) {
                if e.recorded < l.recorded && e.effective() > l.effective() {
                    cancelled.insert(e.id.clone());
                }
            }
        }
        let mut live: Vec<&Ev> =
            events.iter().filter(|e| e.kind != 4 && !cancelled.contains(&e.id) && e.effective() <= end).collect();
        live.sort_by(|a, b| (a.effective(), a.recorded, &a.id).cmp(&(b.effective(), b.recorded, &b.id)));
        let (mut profile, mut left) = (None, false);
        for e in live {
            match e.kind {
                0 | 1 => profile = Some(e),
                2 => left = true,
                _ => {
                    profile = Some(e);
                    left = false;
                }
            }
        }
        match (profile, left) {
            (_, true) => Some(Account { active: false, grants: BTreeSet::new() }),
            (Some(p), false) => Some(Account { active: true, grants: p.groups.iter().cloned().collect() }),
            (None, false) => None,
        }
    }

    fn history() -> impl Strategy<Value = Vec<Ev>> {
        let one = (
            0..5u8,
            0..200i64,
            prop_oneof![Just(None), (-24..150i64).prop_map(Some)],
            any::<bool>(),
            0..4usize,
            0..8usize,
            any::<bool>(),
        );
        proptest::collection::vec(one, 1..8).prop_map(|raw| {
            let n = raw.len();
            raw.into_iter()
                .enumerate()
                .map(|(i, (kind, rec, ahead, immediate, g, target, date))| {
                    let recorded = base() + Duration::hours(rec);
                    let groups =
                        [vec![], vec!["a".to_string()], vec!["b".to_string()], vec!["a".to_string(), "b".to_string()]]
                            [g]
                            .clone();
                    Ev {
                        id: format!("e{i}"),
                        kind,
                        recorded,
                        at: ahead.map(|h| recorded + Duration::hours(h)),
                        date,
                        immediate,
                        groups,
                        rescinds: format!("e{}", target % n),
                    }
                })
                .collect()
        })
    }

    /// Fires only what was scheduled (as EventBridge Scheduler would): a pending change the
    /// engine failed to schedule never fires, and the end state would differ from the oracle's.
    async fn fire_due(
        w: &World,
        schedules: &jml_core::sim::SimSchedules,
        clock: &jml_core::clock::Clock,
        until: DateTime<Utc>,
    ) {
        while let Some(firing) = schedules.take_due(until) {
            clock.advance_to(firing.at);
            let person = jml_core::ports::Firing::person_of(&firing.body()).unwrap();
            w.engine.fire(&person).await.unwrap();
        }
        clock.advance_to(until);
    }

    fn run(events: Vec<Ev>, order: Vec<usize>) -> Result<(), TestCaseError> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let clock = jml_core::clock::Clock::at(base());
            let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
            let schedules = Arc::new(jml_core::sim::SimSchedules::default());
            w.engine = w.engine.clone().with_schedules(schedules.clone());
            for i in order {
                let e = &events[i % events.len()];
                // Delivered when the clock reaches its recording (late, never early).
                let when = clock.now().max(e.recorded);
                fire_due(&w, &schedules, &clock, when).await;
                let body = e.body();
                // A rescind of itself is refused by the contract (and rescinds nothing).
                let Ok(message) = jml_core::contract::parse_message(&body) else { continue };
                let result = match message {
                    jml_core::contract::Message::Event(ev) => w.engine.apply(&ev, &body).await,
                    jml_core::contract::Message::Rescind(r) => w.engine.apply_rescind(&r, &body).await,
                };
                if let Err(err) = result {
                    prop_assert!(matches!(err.code(), "RescindTooLate"), "{}: {err}", e.id);
                }
            }
            let end = base() + Duration::hours(400);
            fire_due(&w, &schedules, &clock, end).await;
            let got = w.fake.accounts.lock().unwrap().get("workday#1").cloned();
            let want = expected(&events, end);
            // A person who never started holds no account; one who left holds nothing.
            let norm = |a: Option<Account>| a.filter(|a| a.active || !a.grants.is_empty());
            prop_assert_eq!(norm(got), norm(want), "events: {:?}", events);
            Ok(())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Dated histories (changes dated ahead and back, immediate leavers, rescinds before and
        /// after what they name, duplicates, late deliveries), delivered in any order with the
        /// clock advancing and every transition fired on its time, end in the state a person
        /// computes by hand from the events.
        #[test]
        fn a_dated_history_ends_in_the_hand_computed_state_whatever_the_delivery_order(
            events in history(),
            order in proptest::collection::vec(0..16usize, 1..20),
        ) {
            // Every event at least once, then the shuffled extra deliveries (duplicates).
            let mut all: Vec<usize> = (0..events.len()).collect();
            all.extend(order);
            let mut s = all.len() as u64;
            for i in (1..all.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                all.swap(i, (s >> 33) as usize % (i + 1));
            }
            run(events, all)?;
        }
    }

    fn dated_body(kind: &str, id: &str, event_id: &str, recorded: &str, extra: serde_json::Value) -> (HrEvent, String) {
        let mut v = match kind {
            "leaver" => serde_json::json!({"eventId": event_id, "type": "leaver", "occurredAt": recorded,
                "person": {"externalId": {"issuer": "workday", "id": id}}}),
            _ => serde_json::from_str::<serde_json::Value>(&joiner(id, event_id, recorded, &["jml-a"]).1).unwrap(),
        };
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        event(v)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[tokio::test]
    async fn a_pending_change_is_scheduled_before_it_is_recorded_and_a_rescind_in_time_removes_its_firing() {
        let clock = jml_core::clock::Clock::at(at("2026-12-01T09:00:00Z"));
        let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        let schedules = Arc::new(jml_core::sim::SimSchedules::default());
        w.engine = w.engine.clone().with_schedules(schedules.clone());
        let (j, b) = joiner("1", "j1", "2026-11-02T09:00:00Z", &["jml-a"]);
        w.engine.apply(&j, &b).await.unwrap();
        assert!(schedules.pending().is_empty(), "nothing pending, nothing scheduled");
        let (l, lb) = dated_body(
            "leaver",
            "1",
            "l1",
            "2026-11-20T09:00:00Z",
            serde_json::json!({"effectiveAt": "2026-12-10T17:00:00Z"}),
        );
        assert_eq!(w.engine.apply(&l, &lb).await.unwrap().decision, Decision::Scheduled);
        let pending = schedules.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].at, pending[0].person.as_str(), pending[0].target.as_str()),
            (at("2026-12-10T17:00:00Z"), "workday#1", TARGET)
        );
        // A deterministic, AWS-valid name that names no one.
        let f = &pending[0];
        assert_eq!(f.name, jml_core::ports::Firing::new(TARGET, "workday#1", f.at).name);
        assert!(f.name.len() <= 64 && f.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert!(!f.name.contains("workday"));
        // The firing's message names the person; a redelivered leaver schedules nothing new.
        assert_eq!(jml_core::ports::Firing::person_of(&f.body()).as_deref(), Some("workday#1"));
        w.engine.apply(&l, &lb).await.unwrap();
        assert_eq!(schedules.pending().len(), 1);
        // Rescinded in time: its firing is deleted.
        let body = r#"{"eventId":"r1","type":"rescind","occurredAt":"2026-12-01T08:00:00Z","rescinds":"l1","person":{"externalId":{"issuer":"workday","id":"1"}}}"#;
        let jml_core::contract::Message::Rescind(r) = jml_core::contract::parse_message(body).unwrap() else {
            unreachable!()
        };
        w.engine.apply_rescind(&r, body).await.unwrap();
        assert!(schedules.pending().is_empty(), "{:?}", schedules.pending());
    }

    #[tokio::test]
    async fn the_safety_net_reports_a_missed_firing_and_never_a_pending_change() {
        use jml_core::reconcile::{DriftKind, overdue_drift};
        let clock = jml_core::clock::Clock::at(at("2026-12-01T09:00:00Z"));
        let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        w.engine = w.engine.clone().firing();
        let (j, b) = joiner("1", "j1", "2026-11-02T09:00:00Z", &["jml-a"]);
        w.engine.apply(&j, &b).await.unwrap();
        let (l, lb) = dated_body(
            "leaver",
            "1",
            "l1",
            "2026-11-20T09:00:00Z",
            serde_json::json!({"effectiveAt": "2026-12-10T17:00:00Z"}),
        );
        w.engine.apply(&l, &lb).await.unwrap();
        let known = || async { w.ledger.known(TARGET).await.unwrap() };
        assert!(
            overdue_drift(TARGET, &known().await, at("2026-12-10T16:59:59Z")).is_empty(),
            "a pending leaver is not drift"
        );
        // Its firing was missed: the day after, the leaver is overdue and access remains.
        let drift = overdue_drift(TARGET, &known().await, at("2026-12-11T09:00:00Z"));
        assert_eq!(drift.len(), 1);
        assert_eq!((drift[0].kind, drift[0].person.as_str()), (DriftKind::TransitionOverdue, "workday#1"));
        assert!(drift[0].detail.contains("leaver is overdue"), "{}", drift[0].detail);
        clock.advance_to(at("2026-12-11T09:00:00Z"));
        assert_eq!(w.engine.fire("workday#1").await.unwrap().decision, Decision::Disable);
        assert!(overdue_drift(TARGET, &known().await, at("2026-12-11T09:00:00Z")).is_empty());
    }

    #[tokio::test]
    async fn a_dated_leaver_is_judged_by_the_breaker_when_recorded_and_fires_on_its_day_in_the_persons_zone() {
        let clock = jml_core::clock::Clock::at(at("2026-12-01T09:00:00Z"));
        let mut w =
            world(EngineSettings { clock: clock.clone(), leavers_per_hour: Some(1), ..EngineSettings::default() });
        w.engine = w.engine.clone().firing();
        for id in ["1", "2"] {
            let mut v: serde_json::Value =
                serde_json::from_str(&joiner(id, &format!("j{id}"), "2026-11-02T09:00:00Z", &["jml-a"]).1).unwrap();
            v["person"]["timezone"] = "Europe/Paris".into();
            let (e, b) = event(v);
            w.engine.apply(&e, &b).await.unwrap();
        }
        let last_day = serde_json::json!({"effectiveDate": "2026-12-18"});
        let (l1, b1) = dated_body("leaver", "1", "l1", "2026-12-01T08:00:00Z", last_day.clone());
        let out = w.engine.apply(&l1, &b1).await.unwrap();
        assert_eq!(out.decision, Decision::Scheduled);
        assert!(out.notes[0].contains("2026-12-18T22:59:59Z"), "23:59:59 in Paris (UTC+1): {:?}", out.notes);
        // The second leaver recorded in the same hour is held when recorded, beyond the limit.
        let (l2, b2) = dated_body("leaver", "2", "l2", "2026-12-01T08:30:00Z", last_day);
        assert_eq!(w.engine.apply(&l2, &b2).await.unwrap().decision, Decision::Held);
        // Before the day: nothing fires; on it, the first leaver applies; the held one stays held.
        clock.advance_to(at("2026-12-18T22:59:58Z"));
        assert_eq!(w.engine.fire("workday#1").await.unwrap().decision, Decision::NoChange);
        assert!(w.fake.accounts.lock().unwrap()["workday#1"].active);
        clock.advance_to(at("2026-12-18T22:59:59Z"));
        assert_eq!(w.engine.fire("workday#1").await.unwrap().decision, Decision::Disable);
        assert!(!w.fake.accounts.lock().unwrap()["workday#1"].active);
        assert_eq!(w.engine.fire("workday#2").await.unwrap().decision, Decision::Held);
        assert!(w.fake.accounts.lock().unwrap()["workday#2"].active);
    }

    #[tokio::test]
    async fn where_nothing_fires_a_change_dated_ahead_is_parked_and_one_dated_past_applies_at_once() {
        let clock = jml_core::clock::Clock::at(at("2026-12-01T09:00:00Z"));
        let w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        let (j, b) = dated_body(
            "joiner",
            "1",
            "j1",
            "2026-11-30T09:00:00Z",
            serde_json::json!({"effectiveAt": "2027-01-04T09:00:00Z"}),
        );
        let err = w.engine.apply(&j, &b).await.unwrap_err();
        assert_eq!(err.code(), "DatedEventNotSchedulable");
        assert!(!err.is_retryable());
        assert!(w.fake.accounts.lock().unwrap().is_empty() && w.ledger.record("workday#1", TARGET).is_none());
        let (j, b) = dated_body(
            "joiner",
            "2",
            "j2",
            "2026-11-30T09:00:00Z",
            serde_json::json!({"effectiveAt": "2026-11-30T12:00:00Z"}),
        );
        assert_eq!(w.engine.apply(&j, &b).await.unwrap().decision, Decision::Create);
        let (j, b) =
            dated_body("joiner", "3", "j3", "2026-11-30T09:00:00Z", serde_json::json!({"effectiveDate": "2207-01-04"}));
        assert_eq!(w.engine.apply(&j, &b).await.unwrap_err().code(), "EffectiveTooFarAhead");
    }

    #[tokio::test]
    async fn a_rescind_in_time_cancels_a_pending_leaver_and_one_too_late_is_refused_whatever_the_order() {
        let clock = jml_core::clock::Clock::at(at("2026-12-01T09:00:00Z"));
        let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        w.engine = w.engine.clone().firing();
        let (j, b) = joiner("1", "j1", "2026-11-02T09:00:00Z", &["jml-a"]);
        w.engine.apply(&j, &b).await.unwrap();
        let rescind = |id: &str, recorded: &str| {
            let body = format!(
                r#"{{"eventId":"{id}","type":"rescind","occurredAt":"{recorded}","rescinds":"l1","person":{{"externalId":{{"issuer":"workday","id":"1"}}}}}}"#
            );
            let jml_core::contract::Message::Rescind(r) = jml_core::contract::parse_message(&body).unwrap() else {
                unreachable!()
            };
            (r, body)
        };
        // The rescind arrives first (recorded in time); then the leaver it cancels.
        let (r, rb) = rescind("r1", "2026-12-01T08:00:00Z");
        assert_eq!(w.engine.apply_rescind(&r, &rb).await.unwrap().decision, Decision::Scheduled);
        let (l, lb) = dated_body(
            "leaver",
            "1",
            "l1",
            "2026-11-20T09:00:00Z",
            serde_json::json!({"effectiveAt": "2026-12-10T17:00:00Z"}),
        );
        w.engine.apply(&l, &lb).await.unwrap();
        clock.advance_to(at("2026-12-11T00:00:00Z"));
        assert_eq!(w.engine.fire("workday#1").await.unwrap().decision, Decision::NoChange);
        assert!(w.fake.accounts.lock().unwrap()["workday#1"].active, "the rescinded leaver never fires");
        // A rescind recorded after the leaver took effect is refused.
        let (r2, rb2) = rescind("r2", "2026-12-10T17:00:00Z");
        assert_eq!(w.engine.apply_rescind(&r2, &rb2).await.unwrap_err().code(), "RescindTooLate");
    }
}

// ---------------------------------------------------------------------------------------------
// Review (branch review2): leavers that end access later than they should, or never.

mod review2 {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn with(base: (HrEvent, String), edit: impl FnOnce(&mut serde_json::Value)) -> (HrEvent, String) {
        let mut v: serde_json::Value = serde_json::from_str(&base.1).unwrap();
        edit(&mut v);
        event(v)
    }

    fn rehire(id: &str, event_id: &str, recorded: &str, groups: &[&str]) -> (HrEvent, String) {
        with(joiner(id, event_id, recorded, groups), |v| v["type"] = "rehire".into())
    }

    fn rescind(event_id: &str, recorded: &str, target: &str) -> (jml_core::contract::Rescind, String) {
        let body = format!(
            r#"{{"eventId":"{event_id}","type":"rescind","occurredAt":"{recorded}","rescinds":"{target}","person":{{"externalId":{{"issuer":"workday","id":"1"}}}}}}"#
        );
        let jml_core::contract::Message::Rescind(r) = jml_core::contract::parse_message(&body).unwrap() else {
            unreachable!()
        };
        (r, body)
    }

    fn active(w: &World) -> bool {
        w.fake.accounts.lock().unwrap()["workday#1"].active
    }

    /// An `immediate` (for-cause) leaver takes effect when recorded "whatever its dates", but a
    /// mistyped effectiveDate on it parks it (EffectiveTooFarAhead): access stays until a human
    /// redrives. FAILS on dated (33cda82).
    #[tokio::test]
    async fn an_immediate_leaver_is_never_parked_for_a_date_it_ignores() {
        let clock = jml_core::clock::Clock::at(at("2026-12-01T09:00:00Z"));
        let w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        apply(&w, &joiner("1", "j1", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap();
        let l = with(leaver("1", "l1", "2026-12-01T08:00:00Z"), |v| {
            v["immediate"] = true.into();
            v["effectiveDate"] = "2207-12-31".into();
        });
        let out = apply(&w, &l).await;
        assert!(out.is_ok(), "an immediate leaver parked for a date it ignores: {:?}", out.err().map(|e| e.code()));
        assert!(!active(&w));
    }

    /// A for-cause `immediate` leaver recorded after a rehire that is dated ahead: the rehire,
    /// recorded before the termination, still fires on its date and re-grants access. On main
    /// (recorded order) the later leaver wins. FAILS on dated (33cda82).
    #[tokio::test]
    async fn an_immediate_leaver_is_not_undone_by_a_rehire_recorded_before_it_and_dated_ahead() {
        let clock = jml_core::clock::Clock::at(at("2026-12-01T09:00:00Z"));
        let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        w.engine = w.engine.clone().firing();
        apply(&w, &joiner("1", "j1", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap();
        // Last working day 15 December; back as a seasonal worker on 10 January (both recorded now).
        let l1 = with(leaver("1", "l1", "2026-12-01T08:00:00Z"), |v| v["effectiveDate"] = "2026-12-15".into());
        assert_eq!(apply(&w, &l1).await.unwrap().decision, Decision::Scheduled);
        let r1 = with(rehire("1", "r1", "2026-12-01T08:30:00Z", &["jml-a"]), |v| {
            v["effectiveDate"] = "2027-01-10".into();
        });
        assert_eq!(apply(&w, &r1).await.unwrap().decision, Decision::Scheduled);
        // 20 December: terminated for cause, effective at once.
        clock.advance_to(at("2026-12-20T10:00:00Z"));
        w.engine.fire("workday#1").await.unwrap();
        let l2 = with(leaver("1", "l2", "2026-12-20T10:00:00Z"), |v| v["immediate"] = true.into());
        apply(&w, &l2).await.unwrap();
        assert!(!active(&w));
        clock.advance_to(at("2027-01-10T00:00:00Z"));
        w.engine.fire("workday#1").await.unwrap();
        assert!(!active(&w), "the rehire recorded before the for-cause termination re-granted access");
    }

    /// A rescind recorded (occurredAt) before the leaver it names was even recorded cancels it:
    /// it "waits" for an eventId, and whatever leaver later carries that id is silently dropped
    /// (decision `stale`). FAILS on dated (33cda82).
    #[tokio::test]
    async fn a_rescind_recorded_before_the_leaver_it_names_does_not_cancel_it() {
        let clock = jml_core::clock::Clock::at(at("2026-11-20T10:00:00Z"));
        let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        w.engine = w.engine.clone().firing();
        apply(&w, &joiner("1", "j1", "2026-11-02T09:00:00Z", &["jml-a"])).await.unwrap();
        let (r, rb) = rescind("r1", "2026-11-05T09:00:00Z", "l1");
        w.engine.apply_rescind(&r, &rb).await.unwrap();
        let l = with(leaver("1", "l1", "2026-11-20T09:00:00Z"), |v| v["effectiveAt"] = "2026-12-10T17:00:00Z".into());
        let out = apply(&w, &l).await.unwrap();
        clock.advance_to(at("2026-12-11T00:00:00Z"));
        w.engine.fire("workday#1").await.unwrap();
        assert!(
            !active(&w),
            "a leaver recorded after the rescind naming it was cancelled (decision {:?})",
            out.decision
        );
    }

    /// A person is dated once any event of theirs carries a date (here a hire dated a day back,
    /// which applies at once). Then an ordinary undated leaver whose occurredAt is a minute ahead
    /// of the Lambda's clock (within MAX_CLOCK_SKEW, applied at once on main) is "pending" and,
    /// where nothing fires (AWS), parked DatedEventNotSchedulable. FAILS on dated (33cda82).
    #[tokio::test]
    async fn an_undated_leaver_a_minute_ahead_of_the_clock_applies_at_once_for_a_dated_person() {
        let clock = jml_core::clock::Clock::at(at("2026-12-01T09:00:00Z"));
        let w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        let j = with(joiner("1", "j1", "2026-11-30T09:00:00Z", &["jml-a"]), |v| {
            v["effectiveAt"] = "2026-11-30T08:00:00Z".into();
        });
        apply(&w, &j).await.unwrap();
        assert!(active(&w));
        for (id, extra) in [("l1", false), ("l2", true)] {
            let l = with(leaver("1", id, "2026-12-01T09:01:00Z"), |v| {
                if extra {
                    v["immediate"] = true.into();
                }
            });
            let out = apply(&w, &l).await;
            assert!(out.is_ok(), "{id}: {:?}", out.err().map(|e| e.code()));
            assert!(!active(&w), "{id}");
        }
    }

    /// Once dated, every event is kept forever in PersonRecord.events (one DynamoDB item, 400 KB
    /// at most): a long-lived person's movers alone outgrow it, and from then on every commit of
    /// that person (a leaver's included) fails as `Unavailable`, retried then dead-lettered.
    /// FAILS on dated (33cda82).
    #[tokio::test]
    async fn a_dated_persons_record_stays_within_one_dynamodb_item() {
        let clock = jml_core::clock::Clock::at(at("2026-11-30T09:00:00Z"));
        let w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        let j = with(joiner("1", "j0", "2026-11-30T09:00:00Z", &["jml-a"]), |v| {
            v["effectiveAt"] = "2026-11-30T08:00:00Z".into();
        });
        apply(&w, &j).await.unwrap();
        let groups: Vec<String> =
            (0..100).map(|g| format!("jml-group-with-a-rather-long-name-for-the-item-size-test-{g:04}")).collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        for i in 1..=80 {
            let t = at("2026-11-30T09:00:00Z") + chrono::Duration::minutes(i);
            clock.advance_to(t);
            let m = with(joiner("1", &format!("m{i}"), &t.to_rfc3339(), &groups[..100 - (i as usize % 2)]), |v| {
                v["type"] = "mover".into();
            });
            apply(&w, &m).await.unwrap();
        }
        let record = w.ledger.record("workday#1", TARGET).unwrap();
        let bytes: usize = record.events.iter().map(|e| e.body.len() + 40).sum();
        assert!(bytes < 400_000, "{} events, {bytes} bytes in one item", record.events.len());
    }

    /// Changes dated ahead never settle, so pruning cannot bound them: a feed re-sending a
    /// person's future mover under new eventIds would grow the record past one DynamoDB item,
    /// and from then on every commit of that person (a leaver's included) would fail. The guard
    /// refuses the change that would cross the limit (parked `TooManyPendingChanges`, nothing
    /// recorded), and still records a leaver and a rescind.
    #[tokio::test]
    async fn changes_dated_ahead_are_bounded_and_a_leaver_is_still_recorded_past_the_bound() {
        let clock = jml_core::clock::Clock::at(at("2026-11-30T09:00:00Z"));
        let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        w.engine = w.engine.clone().with_schedules(Arc::new(jml_core::sim::SimSchedules::default()));
        apply(&w, &joiner("1", "j0", "2026-11-30T08:00:00Z", &["jml-a"])).await.unwrap();
        let mut refused = None;
        for i in 1..=150 {
            let m = with(joiner("1", &format!("m{i}"), "2026-11-30T08:30:00Z", &["jml-b"]), |v| {
                v["type"] = "mover".into();
                v["effectiveAt"] = format!("2027-01-{:02}T09:00:00Z", 1 + i % 28).into();
            });
            match apply(&w, &m).await {
                // The same instant as an earlier one changes nothing pending: recorded, stale.
                Ok(o) => assert!(matches!(o.decision, Decision::Scheduled | Decision::Stale), "m{i}: {o:?}"),
                Err(e) => {
                    assert_eq!(e.code(), "TooManyPendingChanges", "m{i}");
                    refused.get_or_insert(i);
                }
            }
        }
        let first = refused.expect("the guard refused a change");
        assert!(first > 50, "the bound is not hit by an ordinary history (first refused: m{first})");
        let kept = w.ledger.record("workday#1", TARGET).unwrap().events.len();
        assert!(kept <= jml_core::ledger::MAX_KEPT_EVENTS, "{kept} events kept");
        // Past the bound: a leaver (dated, then immediate) and a rescind are still recorded.
        let l = with(leaver("1", "l1", "2026-11-30T08:40:00Z"), |v| v["effectiveAt"] = "2026-12-18T17:00:00Z".into());
        assert_eq!(apply(&w, &l).await.unwrap().decision, Decision::Scheduled);
        let (r, rb) = rescind("r1", "2026-11-30T08:45:00Z", "m1");
        w.engine.apply_rescind(&r, &rb).await.unwrap();
        let now = with(leaver("1", "l2", "2026-11-30T08:50:00Z"), |v| v["immediate"] = true.into());
        apply(&w, &now).await.unwrap();
        assert!(!active(&w), "the immediate leaver took effect past the bound");
        let record = w.ledger.record("workday#1", TARGET).unwrap();
        let bytes: usize = record.events.iter().map(|e| e.body.len() + 40).sum();
        assert!(bytes < 400_000, "{} events, {bytes} bytes in one item", record.events.len());
    }

    /// The bound is on changes dated ahead: an ordinary undated mover takes effect now and
    /// replaces the person's current profile (the kept events do not grow by it), so a record
    /// full of pending changes must not refuse it; refusing it would freeze the person's access
    /// (a group HR removed stays granted) until the pending changes fire.
    #[tokio::test]
    async fn an_undated_mover_is_applied_when_the_record_is_full_of_changes_dated_ahead() {
        let clock = jml_core::clock::Clock::at(at("2026-11-30T09:00:00Z"));
        let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        w.engine = w.engine.clone().with_schedules(Arc::new(jml_core::sim::SimSchedules::default()));
        apply(&w, &joiner("1", "j0", "2026-11-30T08:00:00Z", &["jml-a"])).await.unwrap();
        let long = |n: usize, len: usize| -> Vec<String> {
            (0..n).map(|g| format!("jml-{g:03}-{}", "g".repeat(len))).collect()
        };
        let (ahead, now) = (long(100, 200), long(100, 250));
        let ahead: Vec<&str> = ahead.iter().map(String::as_str).collect();
        let now: Vec<&str> = now.iter().map(String::as_str).collect();
        let mut full = false;
        for i in 1..=40 {
            let m = with(joiner("1", &format!("m{i}"), "2026-11-30T08:30:00Z", &ahead), |v| {
                v["type"] = "mover".into();
                v["effectiveAt"] = format!("2027-01-{:02}T09:00:00Z", i).into();
            });
            if apply(&w, &m).await.is_err_and(|e| e.code() == "TooManyPendingChanges") {
                full = true;
                break;
            }
        }
        assert!(full, "the record is full of changes dated ahead");
        let m = with(joiner("1", "now", "2026-11-30T08:50:00Z", &now), |v| v["type"] = "mover".into());
        let out = apply(&w, &m).await;
        assert!(out.is_ok(), "an undated mover is applied: {:?}", out.err().map(|e| e.to_string()));
        assert!(w.fake.accounts.lock().unwrap()["workday#1"].grants.contains(now[0]));
        let record = w.ledger.record("workday#1", TARGET).unwrap();
        let bytes: usize = record.events.iter().map(|e| e.body.len() + 40).sum();
        assert!(bytes < 400_000, "{} events, {bytes} bytes in one item", record.events.len());
    }

    /// A leaver is always kept past the bound, but its body is what HR sent: a leaver whose
    /// optional fields do not validate is applied as a bare leaver, and its body can be as large
    /// as the queue carries (256 KiB). Past the 200 KiB bound that is more than one DynamoDB item
    /// holds: every commit of the person fails, the leaver's included.
    #[tokio::test]
    async fn a_large_leaver_past_the_bound_still_fits_in_one_item() {
        let clock = jml_core::clock::Clock::at(at("2026-11-30T09:00:00Z"));
        let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        w.engine = w.engine.clone().with_schedules(Arc::new(jml_core::sim::SimSchedules::default()));
        apply(&w, &joiner("1", "j0", "2026-11-30T08:00:00Z", &["jml-a"])).await.unwrap();
        let groups: Vec<String> = (0..100).map(|g| format!("jml-{g:03}-{}", "g".repeat(200))).collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        for i in 1..=40 {
            let m = with(joiner("1", &format!("m{i}"), "2026-11-30T08:30:00Z", &groups), |v| {
                v["type"] = "mover".into();
                v["effectiveAt"] = format!("2027-01-{i:02}T09:00:00Z").into();
            });
            if apply(&w, &m).await.is_err_and(|e| e.code() == "TooManyPendingChanges") {
                break;
            }
        }
        let raw = serde_json::json!({
            "eventId": "l1", "type": "leaver", "occurredAt": "2026-11-30T08:40:00Z",
            "effectiveAt": "2026-12-18T17:00:00Z",
            "person": {"externalId": {"issuer": "workday", "id": "1"}},
            "hrPayload": "x".repeat(250 * 1024),
        });
        let (event, field_errors) = jml_core::contract::parse_deliverable(&raw.to_string()).unwrap();
        assert!(field_errors.is_some(), "delivered as a bare leaver");
        assert_eq!(w.engine.apply(&event, &raw.to_string()).await.unwrap().decision, Decision::Scheduled);
        let record = w.ledger.record("workday#1", TARGET).unwrap();
        let bytes: usize = record.events.iter().map(|e| e.body.len() + 40).sum();
        assert!(bytes < 400_000, "{} events, {bytes} bytes in one item", record.events.len());
        // Read back, it is the same leaver: a redelivery is a duplicate.
        assert_eq!(w.engine.apply(&event, &raw.to_string()).await.unwrap().decision, Decision::Duplicate);
    }

    /// A rescind is always kept, and one naming an event the ledger never received (it may
    /// arrive later) never settles: a feed sending rescinds of made-up eventIds grows the
    /// person's record past one DynamoDB item, and from then on every commit of the person
    /// fails, a leaver's included. Past the bound, a rescind that changes nothing (now or
    /// pending) is refused; the leaver is still recorded.
    #[tokio::test]
    async fn rescinds_of_nothing_are_bounded_and_a_leaver_is_still_recorded() {
        let clock = jml_core::clock::Clock::at(at("2026-11-30T09:00:00Z"));
        let mut w = world(EngineSettings { clock: clock.clone(), ..EngineSettings::default() });
        w.engine = w.engine.clone().with_schedules(Arc::new(jml_core::sim::SimSchedules::default()));
        apply(&w, &joiner("1", "j0", "2026-11-30T08:00:00Z", &["jml-a"])).await.unwrap();
        let pad = "p".repeat(100);
        let mut refused = 0;
        for i in 0..1500 {
            let (r, rb) = rescind(&format!("r{i:04}-{pad}"), "2026-11-30T08:45:00Z", &format!("x{i:04}-{pad}"));
            if let Err(e) = w.engine.apply_rescind(&r, &rb).await {
                assert_eq!(e.code(), "TooManyPendingChanges", "r{i}");
                refused += 1;
            }
        }
        assert!(refused > 0, "rescinds of nothing are bounded");
        let now = with(leaver("1", "l1", "2026-11-30T08:50:00Z"), |v| v["immediate"] = true.into());
        apply(&w, &now).await.unwrap();
        assert!(!active(&w), "the leaver took effect");
        let record = w.ledger.record("workday#1", TARGET).unwrap();
        let bytes: usize = record.events.iter().map(|e| e.body.len() + 40).sum();
        assert!(bytes < 400_000, "{} events, {bytes} bytes in one item", record.events.len());
    }
}
