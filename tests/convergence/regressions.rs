//! The triggers of issues 11 and 12, each on all four targets at once, with the final state
//! asserted: no access left for a leaver, the other person untouched, the same state whatever
//! the order.

use std::collections::BTreeSet;

use jml_core::batch::RecordResult;
use jml_core::lambda::{RecordMeta, State, process_record};
use jml_core::ports::ServiceError;
use serde_json::{Value, json};

use crate::properties::{Ev, World, body, config};

/// Every target's (result, parking code) for one body.
async fn run(states: &[State], body: &str) -> Vec<(RecordResult, Option<String>)> {
    let mut out = Vec::new();
    for s in states {
        let r = process_record(s, body, &RecordMeta::default()).await;
        out.push((r.result, r.error.map(|e| e.0)));
    }
    out
}

fn world() -> (World, Vec<State>) {
    let w = World::new();
    let states = w.instance(w.ledger.clone());
    (w, states)
}

fn joiner(p: u8, day: u8) -> Ev {
    Ev { person: p, kind: 0, day, groups: 1, subs: 1, stacks: 1, ..Ev::default() }
}

fn edit(b: String, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(&b).unwrap();
    f(&mut v);
    v.to_string()
}

#[tokio::test]
async fn an_ignored_mover_never_makes_an_older_rehire_stale() {
    // Regression: joiner t1, leaver t2, rehire t3, mover t4 delivered j, l, m, r
    let events = [
        body(&joiner(0, 1), 1),
        body(&Ev { kind: 2, day: 2, ..joiner(0, 2) }, 2),
        body(&Ev { kind: 3, day: 3, ..joiner(0, 3) }, 3),
        body(&Ev { kind: 1, day: 4, dept: 1, groups: 3, subs: 2, stacks: 2, ..joiner(0, 4) }, 4),
    ];
    let (reference, ref_states) = world();
    for b in &events {
        run(&ref_states, b).await;
    }
    let (w, states) = world();
    for i in [0, 1, 3, 2] {
        run(&states, &events[i]).await;
    }
    let people = BTreeSet::from([0]);
    assert_eq!(w.snapshot(&people), reference.snapshot(&people));
    // The rehired person is active everywhere, in the mover's state (not locked out).
    let snap = w.snapshot(&people);
    assert!(snap.contains("identity u0: Enabled [\"jml-finance\", \"jml-oncall\"]"), "{snap}");
    assert!(snap.contains("appstream u0@example.com: enabled=true [\"data-science\", \"office-apps\"]"), "{snap}");
    assert!(snap.contains("subscriptions ad0: [\"VISUAL_STUDIO_PROFESSIONAL\"]"), "{snap}");
    assert!(snap.contains("iam u0: /jml/finance/ {\"finance\", \"oncall\"}"), "{snap}");
}

#[tokio::test]
async fn an_appstream_address_used_again_is_a_new_enabled_user() {
    // Regression: e-mail A -> B -> A in order
    let (w, states) = world();
    run(&states, &body(&joiner(0, 1), 1)).await;
    run(&states, &body(&Ev { kind: 1, email: 1, ..joiner(0, 2) }, 2)).await;
    run(&states, &body(&Ev { kind: 1, email: 0, ..joiner(0, 3) }, 3)).await;
    let all = w.apps.all();
    let (a, stacks) = &all["u0@example.com"];
    assert!(a.enabled, "the active employee's user is enabled");
    assert_eq!(stacks, &vec!["engineering-desktop".to_string()]);
    assert!(!all.contains_key("u0.alt@example.com"), "the address left behind is released and deleted");
}

#[tokio::test]
async fn a_joiner_parked_after_a_partial_write_loses_everything_on_the_leaver() {
    // Regression: AppStream creates the user and associates the first stack, then a
    // stack that does not exist parks the joiner; the ledger never commits the account.
    let (w, states) = world();
    let j = edit(body(&joiner(0, 1), 1), |v| v["appstreamStacks"] = json!(["engineering-desktop", "no-such-stack"]));
    let results = run(&states, &j).await;
    assert_eq!(results[2], (RecordResult::Parked, Some("StackNotFound".to_string())));
    assert!(w.apps.all()["u0@example.com"].0.enabled, "the partial write happened");
    // WHEN the leaver comes
    run(&states, &body(&Ev { kind: 2, ..joiner(0, 2) }, 2)).await;
    // THEN the write-ahead inventory finds the user the ledger never recorded
    assert_eq!(w.access_left(0), Vec::<String>::new());
    // AND redriving the parked joiner afterwards grants nothing
    run(&states, &j).await;
    assert_eq!(w.access_left(0), Vec::<String>::new());
}

#[tokio::test]
async fn after_a_leaver_for_a_person_without_accounts_a_later_mover_grants_nothing() {
    // Regression
    let (w, states) = world();
    run(&states, &body(&Ev { kind: 2, ..joiner(0, 1) }, 1)).await;
    let results = run(&states, &body(&Ev { kind: 1, ..joiner(0, 5) }, 2)).await;
    assert!(results.iter().all(|(r, _)| *r == RecordResult::Done), "{results:?}");
    assert_eq!(w.access_left(0), Vec::<String>::new());
    assert!(w.identity.users().iter().all(|u| u.marker.is_none()), "no account was created");
    // Only a rehire grants again.
    run(&states, &body(&Ev { kind: 3, ..joiner(0, 6) }, 3)).await;
    assert_eq!(w.access_left(0).len(), 4, "active again in every target: {:?}", w.access_left(0));
}

#[tokio::test]
async fn an_ad_user_name_belongs_to_one_person() {
    // Regression: Ada sends directoryUserName ad0; Bob's derived AD name is ad0 too
    let (w, states) = world();
    run(&states, &body(&joiner(0, 1), 1)).await;
    let bob = edit(body(&Ev { subs: 2, ..joiner(1, 2) }, 2), |v| {
        v["person"].as_object_mut().unwrap().remove("directoryUserName");
        v["person"]["userName"] = "ad0@contractors.example".into();
    });
    let results = run(&states, &bob).await;
    assert_eq!(results[1], (RecordResult::Parked, Some("SubscriptionUserOwnedByAnother".to_string())));
    assert_eq!(w.subs.holdings("ad0").0, vec!["OFFICE_PROFESSIONAL_PLUS"], "Ada's subscription is untouched");
    // Ada leaves; a leaver's hint naming another AD user releases nothing of theirs
    run(&states, &body(&joiner(1, 3), 3)).await;
    let leaver = edit(body(&Ev { kind: 2, ..joiner(0, 4) }, 4), |v| v["person"]["directoryUserName"] = "ad1".into());
    run(&states, &leaver).await;
    assert_eq!(w.access_left(0), Vec::<String>::new());
    assert_eq!(w.subs.holdings("ad1").0, vec!["OFFICE_PROFESSIONAL_PLUS"], "person 1 keeps theirs");
    // Bob's mover after Ada left still cannot grant to Ada's AD account
    let bob_mover = edit(bob.replace("\"joiner\"", "\"mover\"").replace("h-002", "h-005"), |v| {
        v["occurredAt"] = "2026-11-09T09:00:00Z".into();
    });
    assert_eq!(run(&states, &bob_mover).await[1].1.as_deref(), Some("SubscriptionUserOwnedByAnother"));
    assert_eq!(w.subs.holdings("ad0"), (vec![], vec![]));
}

#[tokio::test]
async fn a_held_leaver_holds_the_persons_later_events_and_is_never_forgotten() {
    // Regression: the breaker (0 leavers an hour) holds the leaver; a later mover
    let w = World::new();
    let mut cfg = config();
    cfg.leavers_per_hour = Some(0);
    let states = w.instance_with(w.ledger.clone(), &cfg);
    run(&states, &body(&joiner(0, 1), 1)).await;
    run(&states, &body(&Ev { kind: 2, ..joiner(0, 2) }, 2)).await;
    let mover = run(&states, &body(&Ev { kind: 1, groups: 3, ..joiner(0, 3) }, 3)).await;
    assert!(mover.iter().all(|(r, _)| *r == RecordResult::Done));
    assert_eq!(w.access_left(0).len(), 4, "held: nothing applied yet, the mover neither");
    // WHEN the operator releases the held leavers
    for s in &states {
        let released = s.engine.release_held().await.unwrap();
        assert_eq!(released.len(), 1);
        assert!(released[0].1.is_ok(), "{:?}", released[0].1);
        assert!(s.engine.held().await.unwrap().is_empty());
    }
    // THEN the person has no access anywhere: the newer mover did not supersede the leaver
    assert_eq!(w.access_left(0), Vec::<String>::new());
}

#[tokio::test]
async fn a_rename_and_a_leaver_in_either_order_leave_no_access() {
    // Regression
    for order in [[0usize, 1, 2], [0, 2, 1]] {
        let (w, states) = world();
        let events = [
            body(&joiner(0, 1), 1),
            body(&Ev { kind: 1, name: 1, email: 1, ad: 1, ..joiner(0, 2) }, 2),
            body(&Ev { kind: 2, ..joiner(0, 3) }, 3),
        ];
        for i in order {
            run(&states, &events[i]).await;
        }
        assert_eq!(w.access_left(0), Vec::<String>::new(), "order {order:?}");
    }
}

#[tokio::test]
async fn an_identity_store_leaver_whose_user_lost_the_marker_is_parked_not_skipped() {
    // Regression
    let w = World::new();
    let mut cfg = config();
    cfg.leavers_per_hour = None;
    let states = w.instance_with(w.ledger.clone(), &cfg);
    run(&states, &body(&joiner(0, 1), 1)).await;
    w.identity.strip_marker("u0");
    let results = run(&states, &body(&Ev { kind: 2, ..joiner(0, 2) }, 2)).await;
    assert_eq!(results[0], (RecordResult::Parked, Some("IdentityLeaverUserChanged".to_string())));
}

#[tokio::test]
async fn an_iam_lockdown_goes_on_past_a_credential_that_vanished() {
    // Regression
    let (w, states) = world();
    run(&states, &body(&joiner(0, 1), 1)).await;
    w.iam.add_credentials("u0", "AKIAEXAMPLE0000001");
    w.iam.fail_next(
        iam_sync::port::op::UPDATE_ACCESS_KEY,
        ServiceError::NotFound { op: iam_sync::port::op::UPDATE_ACCESS_KEY },
    );
    let results = run(&states, &body(&Ev { kind: 2, ..joiner(0, 2) }, 2)).await;
    assert_eq!(results[3], (RecordResult::Done, None));
    let u = w.iam.user("u0").unwrap();
    assert!(u.groups.is_empty() && !u.login_profile);
    assert_eq!(u.user.tags.get("jml-sync:status").map(String::as_str), Some("disabled"));
}
