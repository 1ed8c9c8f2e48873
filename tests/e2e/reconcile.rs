//! Reconciliation of every target on the simulators, one shared ledger (as the deployed
//! functions share one table): drift of each kind injected by hand with the ports, `--apply`'s
//! corrective events through the real handlers converge to what only a human may decide, a
//! re-run is deduplicated with no ledger write, and a wave of orphan leavers meets the
//! blast-radius breaker.

use std::collections::BTreeSet;
use std::sync::Arc;

use appstream_sync::sim::SimAppStream;
use iam_sync::port::IamUsers;
use iam_sync::sim::SimIam;
use identity_sync::port::IdentityStore;
use identity_sync::sim::SimIdentityStore;
use jml_core::config::Config;
use jml_core::lambda::State;
use jml_core::reconcile::{Failure, Outcome, Reconciler, Snapshot, parse_snapshot, reconcile};
use jml_core::sim::SimLedger;
use serde_json::{Value, json};
use subscription_sync::sim::SimUserSubscriptions;

use crate::{fixture_json, memory_config, run};

struct World {
    ledger: Arc<SimLedger>,
    identity: Arc<SimIdentityStore>,
    subs: Arc<SimUserSubscriptions>,
    apps: Arc<SimAppStream>,
    iam: Arc<SimIam>,
    states: Vec<State>,
    reconcilers: Vec<Arc<dyn Reconciler>>,
}

fn world(cfg: &Config) -> World {
    let identity = Arc::new(identity_sync::sim::demo_identity_store());
    let (id_state, mem) = identity_sync::memory(identity.clone(), cfg).unwrap();
    let ledger = mem.ledger.clone();
    let subs = Arc::new(SimUserSubscriptions::demo());
    let apps = Arc::new(SimAppStream::demo());
    let iam = Arc::new(SimIam::demo());
    let states = vec![
        id_state,
        subscription_sync::memory_with_ledger(subs.clone(), ledger.clone(), cfg).unwrap().0,
        appstream_sync::memory_with_ledger(apps.clone(), ledger.clone(), cfg).unwrap().0,
        iam_sync::memory_with_ledger(iam.clone(), ledger.clone(), cfg).unwrap().0,
    ];
    let reconcilers = vec![
        identity_sync::reconciler(identity.clone(), cfg).unwrap(),
        subscription_sync::reconciler(subs.clone(), cfg).unwrap(),
        appstream_sync::reconciler(apps.clone(), cfg).unwrap(),
        iam_sync::reconciler(iam.clone(), cfg).unwrap(),
    ];
    World { ledger, identity, subs, apps, iam, states, reconcilers }
}

impl World {
    async fn deliver(&self, event: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.states {
            let r = run(s, &event.to_string()).await;
            out.push(r.outcome.map(|o| o.decision.as_str().to_string()).unwrap_or_else(|| format!("{:?}", r.error)));
        }
        out
    }

    async fn reconcile(&self, snap: &Snapshot, max_missing: f64) -> Result<Outcome, Failure> {
        reconcile(snap, &self.reconcilers, self.ledger.as_ref(), max_missing).await
    }
}

fn line(mut v: Value) -> String {
    for k in ["eventId", "type", "occurredAt"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v.to_string()
}

fn kinds(o: &Outcome) -> BTreeSet<(String, String, String)> {
    o.report.drift.iter().map(|d| (d.person.clone(), d.target.clone(), d.kind.as_str().to_string())).collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect()
}

#[tokio::test]
async fn every_kind_in_every_target_is_found_and_corrections_converge() {
    let w = world(&memory_config(&[]));
    let ada = fixture_json("01-joiner-ada.json");
    let alan = fixture_json("02-joiner-alan.json");
    let zoe = fixture_json("07-joiner-zoe.json");
    for e in [&ada, &alan, &zoe] {
        w.deliver(e).await;
    }
    // By hand, in every target. AppStream: ada loses a stack, zoe is disabled.
    w.apps.associate_by_hand("ada.lovelace@example.com", "engineering-desktop", false);
    let zoe_mail = zoe["person"]["email"].as_str().unwrap().to_lowercase();
    w.apps.disable_by_hand(&zoe_mail);
    // IAM: ada moved out of her path and her vpn group; zoe added to a managed group she should
    // not have; a stranger holds the name of a new hire.
    w.iam.update_user("ada.lovelace", Some("/elsewhere/"), None).await.unwrap();
    w.iam.remove_from_group("ada.lovelace", "vpn-users").await.unwrap();
    let zoe_iam = iam_sync::naming::user_name(zoe["person"]["userName"].as_str().unwrap()).unwrap();
    w.iam.add_to_group(&zoe_iam, "oncall").await.unwrap();
    w.iam.seed_user("katherine.johnson", &[]);
    // Subscriptions: ada's product stopped outside jml-sync.
    w.subs.hold_by_hand("alovelace", Some("OFFICE_PROFESSIONAL_PLUS"), Some("i-0a1b2c3d4e5f60001"), false);
    // Identity Store: alan's user deleted by hand (he left without a leaver: the ledger still says
    // active; every other target still grants him access).
    let alan_id = w
        .identity
        .find_user_by_user_name(&jml_core::contract::UserName::parse("alan.turing").unwrap())
        .await
        .unwrap()
        .unwrap();
    w.identity.delete_user(&alan_id).await.unwrap();
    // HR: ada, zoe and a new hire whose IAM name the stranger holds; alan is gone.
    let mut kj = alan.clone();
    kj["person"]["externalId"]["id"] = "100400".into();
    kj["person"]["userName"] = "katherine.johnson".into();
    kj["person"]["email"] = "katherine.johnson@example.com".into();
    kj["person"]["directoryUserName"] = "kjohnson".into();
    let text = [line(ada.clone()), line(zoe.clone()), line(kj)].join("\n");
    let as_of = "2026-12-01T00:00:00Z".parse().unwrap();
    let snap = parse_snapshot(&text, as_of);
    assert!(snap.bad.is_empty(), "{:?}", snap.bad);

    // 1 of the 3 people managed with access is missing: refused at the default share.
    match w.reconcile(&snap, 0.10).await {
        Err(Failure::Refused { reason, .. }) => assert!(reason.contains("misses 1 of the 3"), "{reason}"),
        other => panic!("expected a refusal: {:?}", other.map(|o| o.report.drift)),
    }
    let before = w.reconcile(&snap, 0.5).await.unwrap();
    let (ada_k, alan_k, zoe_k, kj_k) = ("workday#100234", "workday#100235", "workday#100311", "workday#100400");
    assert_eq!(
        kinds(&before),
        set(&[
            (ada_k, "appstream-user-pool", "stacks"),
            (ada_k, "iam-users", "groups-missing"),
            (ada_k, "iam-users", "iam-path"),
            (ada_k, "user-subscriptions", "subscriptions"),
            (alan_k, "appstream-user-pool", "orphan-account"),
            (alan_k, "iam-users", "orphan-account"),
            (alan_k, "identity-store", "ledger"),
            (alan_k, "user-subscriptions", "orphan-account"),
            (zoe_k, "appstream-user-pool", "status"),
            (zoe_k, "iam-users", "groups-extra"),
            (kj_k, "appstream-user-pool", "missing-account"),
            (kj_k, "iam-users", "collision"),
            (kj_k, "identity-store", "missing-account"),
            (kj_k, "user-subscriptions", "subscriptions"),
        ]),
        "{:#?}",
        before.report.drift
    );
    let detail = |p: &str, k: &str| {
        before.report.drift.iter().find(|d| d.person == p && d.kind.as_str() == k).unwrap().detail.clone()
    };
    assert_eq!(detail(ada_k, "stacks"), "missing engineering-desktop");
    assert!(detail(ada_k, "iam-path").starts_with("/elsewhere/ (want /jml/"), "{}", detail(ada_k, "iam-path"));
    assert_eq!(detail(zoe_k, "groups-extra"), "oncall");
    // No personal data in the report: ExternalIds, kinds, group/stack/product names only.
    let json = before.report.to_json().to_string();
    for pii in ["Lovelace", "ada.lovelace@", "katherine.johnson", "Turing"] {
        assert!(!json.contains(pii), "{pii} in {json}");
    }

    // --apply: one event per drifted person, through every target's handler.
    let events = before.report.corrective_events(&snap, &before.left).events;
    let types: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["person"]["externalId"]["id"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(types, vec![("100234", "mover"), ("100235", "leaver"), ("100311", "mover"), ("100400", "joiner")]);
    for e in &events {
        w.deliver(e).await;
    }
    let after = w.reconcile(&snap, 0.5).await.unwrap();
    // What remains is a human's: the collision, and zoe disabled by hand (maybe a lockout).
    assert_eq!(
        kinds(&after),
        set(&[(zoe_k, "appstream-user-pool", "status"), (kj_k, "iam-users", "collision")]),
        "{:#?}",
        after.report.drift
    );
    // alan holds nothing anywhere any more.
    assert!(w.apps.user("alan.turing@example.com").is_none_or(|u| !u.enabled));
    assert_eq!(w.subs.holdings("aturing"), (vec![], vec![]));
    // Re-run of the same corrections: duplicates, nothing written.
    w.ledger.reset_calls();
    for e in &events[..3] {
        assert_eq!(w.deliver(e).await, vec!["duplicate"; 4], "{}", e["eventId"]);
    }
    assert_eq!(w.ledger.calls().writes, 0, "a re-run writes nothing");
    // The new hire's joiner is applied everywhere but IAM, where the stranger's user is refused
    // (parked for a human each time, never taken over).
    let again = w.deliver(&events[3]).await;
    assert_eq!(&again[..3], &["duplicate", "duplicate", "duplicate"]);
    assert!(again[3].contains("IamUserNotManaged"), "{}", again[3]);
}

#[tokio::test]
async fn orphan_leavers_meet_the_blast_radius_breaker() {
    let w = world(&memory_config(&[("BREAKER_LEAVERS_PER_HOUR", "2")]));
    let base = fixture_json("01-joiner-ada.json");
    for n in 1..=4 {
        let mut j = base.clone();
        j["eventId"] = format!("join-{n}").into();
        j["person"]["externalId"]["id"] = format!("9000{n}").into();
        j["person"]["userName"] = format!("user{n}").into();
        j["person"]["email"] = format!("user{n}@example.com").into();
        j["person"]["directoryUserName"] = format!("user{n}").into();
        w.deliver(&j).await;
    }
    // An empty HR export is refused outright; an operator who insists (--max-missing 1) still
    // meets the breaker: two leavers an hour, the rest held for a human.
    let snap = parse_snapshot("", "2026-12-01T00:00:00Z".parse().unwrap());
    assert!(matches!(w.reconcile(&snap, 0.10).await, Err(Failure::Refused { .. })));
    let o = w.reconcile(&snap, 1.0).await.unwrap();
    let events = o.report.corrective_events(&snap, &o.left).events;
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e["type"] == "leaver"));
    let mut decisions = Vec::new();
    for e in &events {
        decisions.push(w.deliver(e).await[0].clone());
    }
    assert_eq!(decisions, vec!["disable", "disable", "held", "held"]);
    let after = w.reconcile(&snap, 1.0).await.unwrap();
    let still: BTreeSet<&str> = after.report.drift.iter().map(|d| d.person.as_str()).collect();
    assert_eq!(still, BTreeSet::from(["workday#90003", "workday#90004"]), "the held ones are still reported");
}

fn someone(n: usize, variant: u8) -> Value {
    let mut j = fixture_json("01-joiner-ada.json");
    j["eventId"] = format!("join-{n}").into();
    j["person"]["externalId"]["id"] = format!("7000{n}").into();
    j["person"]["userName"] = format!("prop.user{n}").into();
    j["person"]["email"] = format!("prop.user{n}@example.com").into();
    j["person"]["directoryUserName"] = format!("propuser{n}").into();
    j["person"]["enterprise"].as_object_mut().unwrap().remove("manager");
    let groups = [json!(["jml-all-staff", "jml-vpn"]), json!(["jml-engineering"]), json!([])];
    j["groups"] = groups[variant as usize % 3].clone();
    j["person"]["title"] = format!("Title {variant}").into();
    j["person"]["enterprise"]["department"] = ["Platform Engineering", "Finance", "Sales"][variant as usize % 3].into();
    if variant % 3 == 2 {
        j.as_object_mut().unwrap().remove("subscriptions");
    }
    j
}

/// One hand edit outside jml-sync, on person `n`'s accounts.
async fn by_hand(w: &World, op: u8, n: usize) {
    let user = format!("prop.user{n}");
    let mail = format!("prop.user{n}@example.com");
    match op % 6 {
        0 => {
            if let Ok(Some(id)) =
                w.identity.find_user_by_user_name(&jml_core::contract::UserName::parse(&user).unwrap()).await
            {
                for m in w.identity.memberships(&id).await.unwrap_or_default().into_iter().take(1) {
                    let _ = w.identity.remove_membership(&m.membership_id).await;
                }
            }
        }
        1 => {
            for s in appstream_sync::sim::DEMO_STACKS {
                w.apps.associate_by_hand(&mail, s, false);
            }
        }
        2 => w.apps.disable_by_hand(&mail),
        3 => {
            let _ = w.iam.add_to_group(&user, "oncall").await;
        }
        4 => w.subs.hold_by_hand(
            &format!("propuser{n}"),
            Some("OFFICE_PROFESSIONAL_PLUS"),
            Some("i-0a1b2c3d4e5f60001"),
            false,
        ),
        _ => {
            if let Ok(Some(id)) =
                w.identity.find_user_by_user_name(&jml_core::contract::UserName::parse(&user).unwrap()).await
            {
                let _ = w.identity.delete_user(&id).await;
            }
        }
    }
}

/// `people` joiners through every target (breaker off), then `edits` made by hand.
async fn joined_and_edited(people: usize, edits: &[(u8, usize)]) -> World {
    let w = world(&memory_config(&[("BREAKER_LEAVERS_PER_HOUR", "0")]));
    for n in 0..people {
        w.deliver(&someone(n, 0)).await;
    }
    for (op, n) in edits {
        by_hand(&w, *op, n % people).await;
    }
    w
}

fn cases(default: u32) -> u32 {
    std::env::var("JML_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: cases(48), ..Default::default() })]

    /// Invariant: whatever people joined, whoever HR still lists in whatever desired state, and
    /// whatever was changed by hand in any target, one `--apply` leaves only what a human must
    /// decide (a hand-disabled account of an employed person), and applying the same
    /// corrections again changes nothing.
    #[test]
    fn one_apply_leaves_only_what_a_human_decides(
        people in 1usize..5,
        listed in proptest::collection::vec(proptest::prelude::any::<bool>(), 5),
        desired in proptest::collection::vec(0u8..3, 5),
        edits in proptest::collection::vec((0u8..6, 0usize..5), 0..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let w = joined_and_edited(people, &edits).await;
            let text: Vec<String> =
                (0..people).filter(|n| listed[*n]).map(|n| line(someone(n, desired[n]))).collect();
            let snap = parse_snapshot(&text.join("\n"), "2026-12-01T00:00:00Z".parse().unwrap());
            assert!(snap.bad.is_empty(), "{:?}", snap.bad);
            let before = w.reconcile(&snap, 1.0).await.unwrap();
            let events = before.report.corrective_events(&snap, &before.left).events;
            for e in &events {
                w.deliver(e).await;
            }
            let after = w.reconcile(&snap, 1.0).await.unwrap();
            for d in &after.report.drift {
                assert_eq!(d.kind.as_str(), "status", "{d:?} left after apply; before: {:#?}", before.report.drift);
            }
            w.ledger.reset_calls();
            for e in &events {
                for d in w.deliver(e).await {
                    assert_eq!(d, "duplicate");
                }
            }
            assert_eq!(w.ledger.calls().writes, 0);
        });
    }
}

/// Whether `person`'s identity-store user exists and is enabled.
async fn identity_enabled(w: &World, user_name: &str) -> bool {
    let name = jml_core::contract::UserName::parse(user_name).unwrap();
    match w.identity.find_user_by_user_name(&name).await.unwrap() {
        Some(id) => w
            .identity
            .describe_user(&id)
            .await
            .unwrap()
            .is_some_and(|u| u.status == identity_sync::port::UserStatus::Enabled),
        None => false,
    }
}

#[tokio::test]
async fn a_bad_line_never_disables_the_person_it_names() {
    let w = world(&memory_config(&[]));
    let ada = fixture_json("01-joiner-ada.json");
    let alan = fixture_json("02-joiner-alan.json");
    for e in [&ada, &alan] {
        w.deliver(e).await;
    }
    // HR still employs alan, but his line has a broken e-mail: his ExternalId reads well.
    let mut broken = alan.clone();
    broken["person"]["email"] = "not an address".into();
    let text = [line(ada.clone()), line(broken)].join("\n");
    let snap = parse_snapshot(&text, "2026-12-01T00:00:00Z".parse().unwrap());
    assert_eq!(snap.bad.len(), 1);
    assert_eq!(snap.bad[0].line, 2);
    assert!(snap.bad[0].errors.iter().any(|e| e.field == "person.email"), "{:?}", snap.bad);
    assert!(snap.lists("workday#100235") && !snap.people.contains_key("workday#100235"));
    assert!(snap.unidentified.is_empty());
    // Listed, so not missing: no refusal even when no one may be missing.
    let o = w.reconcile(&snap, 0.0).await.unwrap();
    assert!(o.report.drift.iter().all(|d| d.person != "workday#100235"), "{:#?}", o.report.drift);
    let fix = o.report.corrective_events(&snap, &o.left);
    assert!(fix.events.is_empty() && fix.held.is_empty(), "{fix:?}");
    assert!(identity_enabled(&w, "alan.turing").await);

    // alan's leaver was applied; HR lists him again on a bad line (a rehire with broken data?):
    // the ledger disagreeing is reported, and its correction is held, neither a rehire with
    // unreadable data nor a leaver.
    let mut leave = fixture_json("04-leaver-ada.json");
    leave["eventId"] = "leave-alan".into();
    leave["person"]["externalId"]["id"] = "100235".into();
    w.deliver(&leave).await;
    let o = w.reconcile(&snap, 0.0).await.unwrap();
    let alan_kinds: BTreeSet<&str> =
        o.report.drift.iter().filter(|d| d.person == "workday#100235").map(|d| d.kind.as_str()).collect();
    assert_eq!(alan_kinds, BTreeSet::from(["ledger", "listed-after-leaving"]), "{:#?}", o.report.drift);
    let fix = o.report.corrective_events(&snap, &o.left);
    assert!(fix.events.is_empty(), "{:?}", fix.events);
    assert_eq!(fix.held.len(), 1);
    assert_eq!(fix.held[0].person, "workday#100235");
    assert!(fix.held[0].reason.contains("bad snapshot line"), "{}", fix.held[0].reason);
}

#[tokio::test]
async fn a_person_on_two_lines_is_neither_line() {
    let w = world(&memory_config(&[]));
    let ada = fixture_json("01-joiner-ada.json");
    w.deliver(&ada).await;
    let mut other = ada.clone();
    other["groups"] = json!([]);
    let snap = parse_snapshot(&[line(ada.clone()), line(other)].join("\n"), "2026-12-01T00:00:00Z".parse().unwrap());
    assert_eq!(snap.bad.len(), 1);
    assert!(snap.bad[0].errors[0].rule.contains("on line 1"), "{:?}", snap.bad);
    assert!(snap.people.is_empty() && snap.lists("workday#100234"));
    let o = w.reconcile(&snap, 0.0).await.unwrap();
    assert!(o.report.drift.is_empty(), "{:#?}", o.report.drift);
    let fix = o.report.corrective_events(&snap, &o.left);
    assert!(fix.events.is_empty() && fix.held.is_empty());
}

#[tokio::test]
async fn a_line_that_names_nobody_holds_every_leaver_until_it_is_fixed() {
    let w = world(&memory_config(&[]));
    let ada = fixture_json("01-joiner-ada.json");
    let alan = fixture_json("02-joiner-alan.json");
    for e in [&ada, &alan] {
        w.deliver(e).await;
    }
    // alan is not on a good line, and line 2 names nobody: it may be alan's.
    for garbage in ["{\"person\": {\"externalId\": {\"issuer\": \"workday\"}}}", "{not json", "[1, 2]"] {
        let snap = parse_snapshot(
            &[line(ada.clone()), garbage.to_string()].join("\n"),
            "2026-12-01T00:00:00Z".parse().unwrap(),
        );
        assert_eq!(snap.unidentified, vec![2], "{garbage}");
        let o = w.reconcile(&snap, 0.5).await.unwrap();
        assert!(o.report.drift.iter().any(|d| d.person == "workday#100235" && d.kind.as_str() == "orphan-account"));
        let fix = o.report.corrective_events(&snap, &o.left);
        assert!(fix.events.iter().all(|e| e["type"] != "leaver"), "{:?}", fix.events);
        assert_eq!(fix.held.len(), 1, "{garbage}: {:?}", fix.held);
        assert_eq!(fix.held[0].person, "workday#100235");
        assert!(fix.held[0].reason.contains("line(s) 2"), "{}", fix.held[0].reason);
    }
    // HR fixes the export (the line is gone): alan's leaver goes out and takes his access.
    let snap = parse_snapshot(&line(ada.clone()), "2026-12-01T00:00:00Z".parse().unwrap());
    let o = w.reconcile(&snap, 0.5).await.unwrap();
    let fix = o.report.corrective_events(&snap, &o.left);
    assert!(fix.held.is_empty());
    let leavers: Vec<&Value> = fix.events.iter().filter(|e| e["type"] == "leaver").collect();
    assert_eq!(leavers.len(), 1);
    assert_eq!(leavers[0]["person"]["externalId"]["id"], "100235");
    w.deliver(leavers[0]).await;
    assert!(!identity_enabled(&w, "alan.turing").await);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: cases(32), ..Default::default() })]

    /// Invariant: reconciliation never takes access from a person HR lists, even on a line it
    /// cannot read, and never sends a leaver while a line names nobody (it may be that
    /// person's); every person on a good line still converges.
    #[test]
    fn a_person_hr_lists_never_loses_access_to_reconciliation(
        people in 1usize..5,
        state in proptest::collection::vec(0u8..3, 5),
        garbage in proptest::prelude::any::<bool>(),
        edits in proptest::collection::vec((0u8..6, 0usize..5), 0..6),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let w = joined_and_edited(people, &edits).await;
            // 0: not listed, 1: a good line, 2: a line with a broken e-mail.
            let mut text = Vec::new();
            for (n, s) in state.iter().enumerate().take(people) {
                match s {
                    1 => text.push(line(someone(n, 1))),
                    2 => {
                        let mut b = someone(n, 1);
                        b["person"]["email"] = "broken".into();
                        text.push(line(b));
                    }
                    _ => {}
                }
            }
            if garbage {
                text.push("{\"person\": {\"userName\": \"who\"}}".into());
            }
            let snap = parse_snapshot(&text.join("\n"), "2026-12-01T00:00:00Z".parse().unwrap());
            let on_bad: Vec<usize> = (0..people).filter(|n| state[*n] == 2).collect();
            let mut enabled_before = Vec::new();
            for n in &on_bad {
                enabled_before.push(identity_enabled(&w, &format!("prop.user{n}")).await);
            }
            let before = w.reconcile(&snap, 1.0).await.unwrap();
            let fix = before.report.corrective_events(&snap, &before.left);
            for e in &fix.events {
                let id = e["person"]["externalId"]["id"].as_str().unwrap();
                assert!(on_bad.iter().all(|n| id != format!("7000{n}")), "a correction for a bad line's person: {e}");
                assert!(!(garbage && e["type"] == "leaver"), "a leaver while a line names nobody: {e}");
            }
            for e in &fix.events {
                w.deliver(e).await;
            }
            for (n, was) in on_bad.iter().zip(enabled_before) {
                assert_eq!(identity_enabled(&w, &format!("prop.user{n}")).await, was, "person {n} on a bad line");
            }
            let after = w.reconcile(&snap, 1.0).await.unwrap();
            for d in &after.report.drift {
                let good = (0..people).any(|n| state[n] == 1 && d.person == format!("workday#7000{n}"));
                if good {
                    assert_eq!(d.kind.as_str(), "status", "{d:?} left after apply");
                }
            }
        });
    }
}

#[tokio::test]
async fn a_second_account_carrying_the_persons_mark_is_reported_and_found_again_after_the_leaver() {
    let w = world(&memory_config(&[]));
    let ada = fixture_json("01-joiner-ada.json");
    w.deliver(&ada).await;
    // By hand: a copy of ada's Identity Store user (her marker in its ProfileUrl) and an IAM user
    // tagged as hers. jml-sync never made them, so its leaver would not know them.
    let id = jml_core::contract::event_from_value(&ada).unwrap().external_id;
    let copy = w.identity.seed_user("ada.copy", None, Some(&id.marker()));
    w.iam.seed_user("ada.copy", &[(iam_sync::naming::TAG_EXTERNAL_ID, &iam_sync::naming::external_id_tag(&id))]);
    let copy_iam = w.iam.user("ada.copy").unwrap().user.user_id;
    let snap = parse_snapshot(&line(ada.clone()), "2026-12-01T00:00:00Z".parse().unwrap());
    let o = w.reconcile(&snap, 0.0).await.unwrap();
    let collisions: Vec<(&str, &str)> = o
        .report
        .drift
        .iter()
        .filter(|d| d.kind.as_str() == "collision")
        .map(|d| (d.target.as_str(), d.detail.as_str()))
        .collect();
    let want_identity = format!("a second user carries the person's marker: {copy}");
    let want_iam = format!("a second IAM user carries the person's tag: {copy_iam}");
    assert_eq!(collisions, vec![("iam-users", want_iam.as_str()), ("identity-store", want_identity.as_str())]);
    // A human decides which is real: nothing is corrected for a collision.
    assert!(o.report.corrective_events(&snap, &o.left).events.is_empty());
    // ada leaves. The IAM copy carries her tag: the leaver finds every user with it (one
    // GetAccountAuthorizationDetails listing) and locks it down too. The Identity Store copy
    // still grants access: critical, and named.
    w.deliver(&fixture_json("04-leaver-ada.json")).await;
    let copy = w.iam.user("ada.copy").unwrap();
    assert_eq!(copy.user.tags.get(iam_sync::naming::TAG_STATUS).map(String::as_str), Some("disabled"));
    let empty = parse_snapshot("", "2026-12-01T00:00:00Z".parse().unwrap());
    let o = w.reconcile(&empty, 1.0).await.unwrap();
    let still: Vec<&str> =
        o.report.drift.iter().filter(|d| d.kind.as_str() == "leaver-still-active").map(|d| d.target.as_str()).collect();
    assert_eq!(still, vec!["identity-store"], "{:#?}", o.report.drift);
}

#[tokio::test]
async fn credentials_reactivated_by_hand_after_the_leaver_are_reported_and_apply_locks_them_again() {
    let w = world(&memory_config(&[]));
    w.deliver(&fixture_json("01-joiner-ada.json")).await;
    w.iam.add_credentials("ada.lovelace", "AKIAEXAMPLE0000001");
    w.iam.add_other_credentials("ada.lovelace", "EXAMPLE1");
    w.deliver(&fixture_json("04-leaver-ada.json")).await;
    let empty = parse_snapshot("", "2026-12-01T00:00:00Z".parse().unwrap());
    let still = |o: &Outcome| -> Vec<(String, String)> {
        o.report
            .drift
            .iter()
            .filter(|d| d.target == "iam-users")
            .map(|d| (d.kind.as_str().to_string(), d.detail.clone()))
            .collect()
    };
    // The lock-down holds: tagged disabled, no group, no credential: nothing to report.
    assert_eq!(still(&w.reconcile(&empty, 1.0).await.unwrap()), vec![]);
    // A human gives the locked-down user its password and every key back; groups and tags stay.
    w.iam.reactivate_by_hand("ada.lovelace");
    let o = w.reconcile(&empty, 1.0).await.unwrap();
    assert_eq!(
        still(&o),
        vec![(
            "leaver-still-active".to_string(),
            "tagged disabled, 0 group(s), console password, 1 active access key(s), 3 active SSH key(s)/service credential(s)/certificate(s)"
                .to_string()
        )],
        "{:#?}",
        o.report.drift
    );
    // --apply: the corrective leaver locks it down again, and the next run finds nothing.
    let events = o.report.corrective_events(&empty, &o.left).events;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "leaver");
    w.deliver(&events[0]).await;
    let u = w.iam.user("ada.lovelace").unwrap();
    assert!(!u.login_profile, "password deleted again");
    assert!(u.access_keys.iter().all(|k| k.status == "Inactive") && u.other_credentials.iter().all(|c| !c.active));
    assert_eq!(still(&w.reconcile(&empty, 1.0).await.unwrap()), vec![]);
}

#[tokio::test]
async fn a_parked_joiners_address_is_seen_with_every_stack_it_has_and_corrected() {
    let w = world(&memory_config(&[]));
    // ada's joiner creates her AppStream user with a stack no rule names, then parks on a stack
    // that does not exist: no record names the address, the claim's inventory does.
    let mut joiner = fixture_json("01-joiner-ada.json");
    joiner["appstreamStacks"] = json!(["data-science", "no-such-stack"]);
    w.deliver(&joiner).await;
    assert!(w.apps.user("ada.lovelace@example.com").unwrap().enabled);
    // HR now lists her at another address, with the rule's stacks.
    let mut now = fixture_json("01-joiner-ada.json");
    now["person"]["email"] = "ada.king@example.com".into();
    let snap = parse_snapshot(&line(now), "2026-12-01T00:00:00Z".parse().unwrap());
    let o = w.reconcile(&snap, 1.0).await.unwrap();
    let apps: Vec<(&str, &str)> = o
        .report
        .drift
        .iter()
        .filter(|d| d.target == "appstream-user-pool")
        .map(|d| (d.kind.as_str(), d.detail.as_str()))
        .collect();
    // The previous address's user is reported with the stack it really has (data-science is
    // in no rule and on no snapshot line: no per-stack read sees it).
    assert_eq!(
        apps,
        vec![
            ("missing-account", "no user pool user at the person's address"),
            ("orphan-account", "a previous address's user: enabled, 1 stack(s)"),
        ]
    );
    // --apply: the corrective joiner creates the new address and releases the old one.
    for e in o.report.corrective_events(&snap, &o.left).events {
        w.deliver(&e).await;
    }
    assert_eq!(w.apps.user("ada.lovelace@example.com"), None);
    let o = w.reconcile(&snap, 1.0).await.unwrap();
    assert!(o.report.drift.iter().all(|d| d.target != "appstream-user-pool"), "{:#?}", o.report.drift);
}

/// A joiner for the ExternalId (`issuer`, `id`) named `name` (user name, mail, AD name).
fn person_with(issuer: &str, id: &str, name: &str) -> Value {
    let mut j = fixture_json("01-joiner-ada.json");
    j["eventId"] = format!("join-{name}").into();
    j["person"]["externalId"] = json!({"issuer": issuer, "id": id});
    j["person"]["userName"] = name.into();
    j["person"]["email"] = format!("{name}@example.com").into();
    j["person"]["directoryUserName"] = name.replace('.', "").chars().take(20).collect::<String>().into();
    j["person"]["enterprise"].as_object_mut().unwrap().remove("manager");
    j
}

/// Everything every target holds for the person named `name`, to compare before and after.
async fn accounts_of(w: &World, name: &str) -> String {
    let un = jml_core::contract::UserName::parse(name).unwrap();
    let id = w.identity.find_user_by_user_name(&un).await.unwrap().unwrap();
    let user = w.identity.describe_user(&id).await.unwrap();
    let groups = w.identity.memberships(&id).await.unwrap();
    let iam = w.iam.user(&iam_sync::naming::user_name(name).unwrap());
    let apps = w.apps.user(&format!("{name}@example.com"));
    let subs = w.subs.holdings(&name.replace('.', ""));
    format!("{user:?}\n{groups:?}\n{iam:?}\n{apps:?}\n{subs:?}")
}

/// Issue 22 (cross-person): two people whose ExternalIds differ only around a `#` (issuer `hr#eu`,
/// id `100`, and issuer `hr`, id `eu#100`), and a third whose marker and IAM tag are the bounded
/// hashed forms. The first and the third leave without a leaver event: reconciliation reports
/// exactly them, `--apply` sends leavers with their exact ExternalIds (the hashed one resolved
/// through the ledger), and the second person's accounts are untouched in every target.
#[tokio::test]
async fn reconcile_apply_touches_only_the_leaver_whose_external_id_differs_around_a_hash() {
    let w = world(&memory_config(&[("BREAKER_LEAVERS_PER_HOUR", "0")]));
    let her = person_with("hr#eu", "100", "her.leaver");
    let him = person_with("hr", "eu#100", "him.stays");
    let long = person_with(&"%".repeat(200), &"#".repeat(256), "long.leaver");
    for e in [&her, &him, &long] {
        let out = w.deliver(e).await;
        assert!(out.iter().all(|d| !d.contains("Error") && !d.contains("None")), "{out:?}");
    }
    let long_id =
        jml_core::contract::ExternalId::from_key(&format!("{}#{}", "%25".repeat(200), "%23".repeat(256))).unwrap();
    assert!(jml_core::contract::ExternalId::is_hashed_marker(&long_id.marker()));
    assert!(iam_sync::naming::external_id_tag(&long_id).starts_with("sha256:"));
    let before = accounts_of(&w, "him.stays").await;

    let snap = parse_snapshot(&line(him.clone()), "2026-12-01T00:00:00Z".parse().unwrap());
    assert!(snap.bad.is_empty(), "{:?}", snap.bad);
    let o = w.reconcile(&snap, 1.0).await.unwrap();
    let people: BTreeSet<&str> = o.report.drift.iter().map(|d| d.person.as_str()).collect();
    let (her_k, long_k) = ("hr%23eu#100", long_id.key());
    assert_eq!(people, BTreeSet::from([her_k, long_k.as_str()]), "{:#?}", o.report.drift);
    let corrections = o.report.corrective_events(&snap, &o.left);
    assert!(corrections.held.is_empty(), "{:?}", corrections.held);
    let ids: BTreeSet<(String, String, String)> = corrections
        .events
        .iter()
        .map(|e| {
            let x = &e["person"]["externalId"];
            (e["type"].as_str().unwrap().into(), x["issuer"].as_str().unwrap().into(), x["id"].as_str().unwrap().into())
        })
        .collect();
    let want = |i: &str, d: &str| ("leaver".to_string(), i.to_string(), d.to_string());
    assert_eq!(ids, BTreeSet::from([want("hr#eu", "100"), want(&"%".repeat(200), &"#".repeat(256))]));
    for e in &corrections.events {
        assert!(jml_core::contract::event_from_value(e).is_ok(), "a valid event: {}", e["eventId"]);
        let out = w.deliver(e).await;
        assert!(
            out.iter()
                .all(|d| ["disable", "noop", "delete", "deleted"].contains(&d.as_str()) || d.starts_with("disable")),
            "{out:?}"
        );
    }
    assert_eq!(accounts_of(&w, "him.stays").await, before, "his accounts are untouched");
    let after = w.reconcile(&snap, 1.0).await.unwrap();
    assert!(after.report.drift.is_empty(), "{:#?}", after.report.drift);
    assert!(w.apps.user("her.leaver@example.com").is_none_or(|u| !u.enabled));
    assert!(w.apps.user("long.leaver@example.com").is_none_or(|u| !u.enabled));
}

/// A snapshot line may carry HR's dates: a start ahead is not drift (no account owed yet, and
/// access already granted is reported, never corrected into a leaver that would break day one);
/// a leave time that passed with access remaining is `leaver-overdue` and corrected by a leaver;
/// a future leave time is an employed person. Those who left are accounted for, never "missing"
/// from a partial export.
#[tokio::test]
async fn dated_snapshot_lines_report_overdue_leavers_and_never_correct_a_future_start() {
    let w = world(&memory_config(&[]));
    let ada = fixture_json("01-joiner-ada.json");
    let alan = fixture_json("02-joiner-alan.json");
    let zoe = fixture_json("07-joiner-zoe.json");
    for e in [&ada, &alan, &zoe] {
        w.deliver(e).await;
    }
    let dated = |v: &Value, field: &str, value: &str| {
        let mut l: Value = serde_json::from_str(&line(v.clone())).unwrap();
        l[field] = value.into();
        l.to_string()
    };
    let mut kj = alan.clone();
    kj["person"]["externalId"]["id"] = "100400".into();
    kj["person"]["userName"] = "katherine.johnson".into();
    kj["person"]["email"] = "katherine.johnson@example.com".into();
    kj["person"]["directoryUserName"] = "kjohnson".into();
    let text = [
        // Ada's last working day was 20 November (Europe/London: her zone in the fixture or the
        // default, both end before the snapshot).
        dated(&ada, "leaveDate", "2026-11-20"),
        // Alan leaves at the end of the month: still employed on 1 December.
        dated(&alan, "leaveAt", "2026-12-31T17:00:00Z"),
        // Zoe's line says she starts in January, and she already has access.
        dated(&zoe, "effectiveDate", "2027-01-04"),
        // Katherine starts in January: no account owed yet.
        dated(&kj, "effectiveDate", "2027-01-04"),
    ]
    .join("\n");
    let as_of: chrono::DateTime<chrono::Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    let snap = jml_core::reconcile::parse_snapshot_dated(&text, as_of, &Default::default());
    assert!(snap.bad.is_empty(), "{:?}", snap.bad);
    assert_eq!(snap.left_at.keys().collect::<Vec<_>>(), ["workday#100234"]);
    assert_eq!(
        snap.left_at["workday#100234"],
        "2026-11-20T23:59:59Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap()
    );
    assert_eq!(snap.not_started.keys().collect::<Vec<_>>(), ["workday#100311", "workday#100400"]);
    // Nobody is missing: those who left are accounted for (a 0% tolerance passes).
    let before = w.reconcile(&snap, 0.0).await.unwrap();
    let (ada_k, zoe_k) = ("workday#100234", "workday#100311");
    let mut want = BTreeSet::new();
    for t in ["identity-store", "user-subscriptions", "appstream-user-pool", "iam-users"] {
        want.insert((ada_k.to_string(), t.to_string(), "leaver-overdue".to_string()));
    }
    let found = kinds(&before);
    for w in &want {
        assert!(found.contains(w), "{w:?} in {found:#?}");
    }
    assert!(found.iter().all(|(p, ..)| p != "workday#100235"), "a future leaver is employed: {found:#?}");
    assert!(found.iter().all(|(p, ..)| p != "workday#100400"), "not started: nothing owed: {found:#?}");
    assert!(
        found.iter().filter(|(p, ..)| p == zoe_k).all(|(.., k)| k == "access-before-start"),
        "zoe's early access is reported as such: {found:#?}"
    );
    assert!(found.iter().any(|(p, .., k)| p == zoe_k && k == "access-before-start"), "{found:#?}");
    let fixes = before.report.corrective_events(&snap, &before.left);
    let types: Vec<(&str, &str)> = fixes
        .events
        .iter()
        .map(|e| (e["person"]["externalId"]["id"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(types, vec![("100234", "leaver")], "only the overdue leaver is corrected");
    for e in &fixes.events {
        w.deliver(e).await;
    }
    let after = w.reconcile(&snap, 0.0).await.unwrap();
    assert!(kinds(&after).iter().all(|(p, ..)| p != ada_k), "ada converged: {:#?}", after.report.drift);
    assert!(w.apps.user("ada.lovelace@example.com").is_none_or(|u| !u.enabled));

    // Alan leaves; HR's next export lists him with a start in January (a rehire HR dated): not a
    // lagging export, and nothing is corrected for him before that start.
    let mut leaver = fixture_json("04-leaver-ada.json");
    leaver["eventId"] = "alan-leaves".into();
    leaver["person"]["externalId"]["id"] = "100235".into();
    w.deliver(&leaver).await;
    let rehire = jml_core::reconcile::parse_snapshot_dated(
        &[dated(&alan, "effectiveDate", "2027-01-04"), dated(&zoe, "effectiveDate", "2027-01-04")].join("\n"),
        as_of,
        &Default::default(),
    );
    let o = w.reconcile(&rehire, 0.0).await.unwrap();
    let alan_kinds: Vec<String> =
        kinds(&o).into_iter().filter(|(p, ..)| p == "workday#100235").map(|(.., k)| k).collect();
    assert!(!alan_kinds.contains(&"listed-after-leaving".to_string()), "{alan_kinds:?}");
    let fixes = o.report.corrective_events(&rehire, &o.left);
    assert!(fixes.events.iter().all(|e| e["person"]["externalId"]["id"] != "100235"), "{:?}", fixes.events);
    assert!(
        fixes.held.iter().filter(|h| h.person == "workday#100235").all(|h| h.reason.starts_with("not started")),
        "{:?}",
        fixes.held
    );

    // Dates that cannot be read are bad lines naming the field, and the person is never
    // corrected on them.
    let bad = [
        {
            let mut l: Value = serde_json::from_str(&dated(&alan, "leaveAt", "2026-12-31T17:00:00Z")).unwrap();
            l["leaveDate"] = "2026-12-31".into();
            l.to_string()
        },
        dated(&ada, "leaveDate", "2026-13-01"),
        dated(&zoe, "leaveAt", "next friday"),
        {
            let mut l: Value = serde_json::from_str(&dated(&kj, "effectiveDate", "2027-01-04")).unwrap();
            l["leaveDate"] = "2027-01-01".into();
            l.to_string()
        },
    ]
    .join("\n");
    let snap = jml_core::reconcile::parse_snapshot_dated(&bad, as_of, &Default::default());
    let fields: Vec<(usize, &str)> = snap.bad.iter().map(|b| (b.line, b.errors[0].field.as_str())).collect();
    assert_eq!(fields, vec![(1, "leaveAt"), (2, "leaveDate"), (3, "leaveAt"), (4, "leaveAt")], "{:?}", snap.bad);
    assert!(snap.bad[3].errors[0].rule.contains("after the start"), "{:?}", snap.bad[3]);
    assert_eq!(snap.unreadable.len(), 4, "each person is held, never corrected");
    assert!(snap.left_at.is_empty() && snap.not_started.is_empty() && snap.people.is_empty());
}

/// A lagging export against a newer rehire: HR's export (as of 06:00) still carries Ada's old
/// last working day; at 09:00 HR records her rehire, effective that day (from 00:00 London).
/// The leaver-overdue correction is the export's truth at 06:00, and must not beat a rehire HR
/// recorded after it: it ends access at HR's leave time (before the rehire), not at the export.
#[tokio::test]
async fn a_leaver_overdue_correction_never_undoes_a_rehire_recorded_after_the_export() {
    let w = world(&memory_config(&[]));
    let ada = fixture_json("01-joiner-ada.json");
    w.deliver(&ada).await;
    w.deliver(&fixture_json("04-leaver-ada.json")).await;
    let mut rehire = fixture_json("05-rehire-ada.json");
    rehire["occurredAt"] = "2026-12-01T09:00:00Z".into();
    rehire["effectiveDate"] = "2026-12-01".into();
    w.deliver(&rehire).await;
    assert!(w.apps.user("ada.lovelace@example.com").is_some_and(|u| u.enabled), "rehired");
    let mut l: Value = serde_json::from_str(&line(ada.clone())).unwrap();
    l["leaveDate"] = "2026-11-20".into();
    let as_of: chrono::DateTime<chrono::Utc> = "2026-12-01T06:00:00Z".parse().unwrap();
    let snap = jml_core::reconcile::parse_snapshot_dated(&l.to_string(), as_of, &Default::default());
    assert!(snap.left_at.contains_key("workday#100234"), "{:?}", snap.bad);
    let o = w.reconcile(&snap, 1.0).await.unwrap();
    let fixes = o.report.corrective_events(&snap, &o.left);
    for e in &fixes.events {
        w.deliver(e).await;
    }
    assert!(
        w.apps.user("ada.lovelace@example.com").is_some_and(|u| u.enabled),
        "the rehire HR recorded after the export stands: {:?}",
        fixes.events
    );
    assert!(identity_enabled(&w, "ada.lovelace").await, "{:?}", fixes.events);
}
