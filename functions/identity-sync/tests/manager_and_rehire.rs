//! Issue 22, items E and F on the simulator, through the handler (engine and ledger included):
//!
//! - E: the manager attribute does not depend on delivery order: a report whose manager's user
//!   is created later (or replaced by a rehire's fresh user) gets the manager's UserId, and the
//!   reconciliation reports a wrong manager as drift that `--apply` corrects.
//! - F: a rehire starts from nothing the person held before: no membership or account
//!   assignment made during the previous employment is held by the rehired person's user, the
//!   ExternalId resolves to exactly one user, and the ledger's inventory covers the new UserId
//!   (a later leaver revokes it).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use jml_core::ledger::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

use identity_sync::port::{IdentityStore, ServiceError, UserStatus, op};
use identity_sync::sim::{Fault, SimIdentityStore, demo_identity_store};
use identity_sync::{IDENTITY_TARGET, MemoryBackend, State};
use jml_core::config::Config;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let p = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn memory() -> (State, MemoryBackend) {
    let cfg = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    identity_sync::memory(Arc::new(demo_identity_store()), &cfg).unwrap()
}

/// A joiner (or another kind) for person `id` named `user_name`, reporting to `manager`.
fn person(kind: &str, event_id: &str, day: u32, id: &str, user_name: &str, manager: Option<&str>) -> Value {
    let mut v = fixture("01-joiner-ada.json");
    v["eventId"] = event_id.into();
    v["type"] = kind.into();
    v["occurredAt"] = format!("2026-11-{day:02}T09:00:00Z").into();
    v["person"]["externalId"]["id"] = id.into();
    v["person"]["userName"] = user_name.into();
    v["person"]["email"] = format!("{user_name}@example.com").into();
    v["person"]["enterprise"]["employeeNumber"] = id.into();
    match manager {
        Some(m) => v["person"]["enterprise"]["manager"] = m.into(),
        None => {
            v["person"]["enterprise"].as_object_mut().unwrap().remove("manager");
        }
    }
    v
}

fn leaver(event_id: &str, day: u32, id: &str) -> Value {
    json!({"eventId": event_id, "type": "leaver", "occurredAt": format!("2026-11-{day:02}T09:00:00Z"),
           "person": {"externalId": {"issuer": "workday", "id": id}}})
}

async fn apply(state: &State, v: &Value) -> jml_core::lambda::RecordReport {
    let r = identity_sync::process_record(state, &v.to_string(), &Default::default()).await;
    assert!(r.error.is_none(), "{:?}", r.error);
    r
}

fn id_of(store: &SimIdentityStore, user_name: &str) -> String {
    store.user(user_name).unwrap_or_else(|| panic!("{user_name} exists")).user_id
}

fn manager_of(store: &SimIdentityStore, user_name: &str) -> Option<String> {
    store.user(user_name).unwrap().attributes.manager_id
}

/// Users carrying the marker of `workday#id`.
fn users_of(store: &SimIdentityStore, id: &str) -> Vec<identity_sync::sim::UserView> {
    let marker = format!("urn:jml-sync:person:workday:{id}");
    store.users().into_iter().filter(|u| u.marker.as_deref() == Some(marker.as_str())).collect()
}

#[tokio::test]
async fn a_manager_who_joins_after_the_report_becomes_the_reports_manager() {
    let (state, mem) = memory();
    // The report first: its manager has no user yet.
    let r = apply(&state, &person("joiner", "r-1", 2, "200001", "rita.report", Some("max.manager"))).await;
    assert!(r.outcome.unwrap().notes.iter().any(|n| n.contains("manager")), "unset, and said so");
    assert_eq!(manager_of(&mem.store, "rita.report"), None);
    // Then the manager joins: the report now carries the manager's UserId.
    let m = apply(&state, &person("joiner", "m-1", 3, "200002", "max.manager", None)).await;
    let max = id_of(&mem.store, "max.manager");
    assert_eq!(manager_of(&mem.store, "rita.report"), Some(max.clone()));
    assert!(m.outcome.unwrap().actions.iter().any(|a| a.contains("enterprise.manager")), "the manager's event did it");
    // The same end state as the other order.
    let (other, mem2) = memory();
    apply(&other, &person("joiner", "m-1", 3, "200002", "max.manager", None)).await;
    apply(&other, &person("joiner", "r-1", 2, "200001", "rita.report", Some("max.manager"))).await;
    assert_eq!(manager_of(&mem2.store, "rita.report"), Some(id_of(&mem2.store, "max.manager")));
}

#[tokio::test]
async fn a_stale_link_never_sets_a_manager_the_report_no_longer_names() {
    let (state, mem) = memory();
    apply(&state, &person("joiner", "r-1", 2, "200001", "rita.report", Some("max.manager"))).await;
    // The report's newer profile names nobody (or someone else): the link is stale.
    apply(&state, &person("mover", "r-2", 4, "200001", "rita.report", Some("grace.hopper"))).await;
    let grace = id_of(&mem.store, "grace.hopper");
    assert_eq!(manager_of(&mem.store, "rita.report"), Some(grace.clone()));
    apply(&state, &person("joiner", "m-1", 5, "200002", "max.manager", None)).await;
    assert_eq!(manager_of(&mem.store, "rita.report"), Some(grace), "still the manager HR names now");
    // A report that left is not touched either.
    apply(&state, &person("joiner", "s-1", 2, "200003", "sam.report", Some("nora.new"))).await;
    apply(&state, &leaver("s-2", 3, "200003")).await;
    let before = mem.store.user("sam.report").unwrap();
    apply(&state, &person("joiner", "n-1", 6, "200004", "nora.new", None)).await;
    assert_eq!(mem.store.user("sam.report").unwrap(), before, "a leaver's user is not written");
}

#[tokio::test]
async fn a_rehired_managers_new_user_becomes_the_reports_manager() {
    let (state, mem) = memory();
    apply(&state, &person("joiner", "m-1", 2, "200002", "max.manager", None)).await;
    apply(&state, &person("joiner", "r-1", 3, "200001", "rita.report", Some("max.manager"))).await;
    let old = id_of(&mem.store, "max.manager");
    assert_eq!(manager_of(&mem.store, "rita.report"), Some(old.clone()));
    apply(&state, &leaver("m-2", 4, "200002")).await;
    assert_eq!(manager_of(&mem.store, "rita.report"), Some(old.clone()), "a disabled manager is still the manager");
    apply(&state, &person("rehire", "m-3", 5, "200002", "max.manager", None)).await;
    let new = id_of(&mem.store, "max.manager");
    assert_ne!(new, old);
    assert_eq!(manager_of(&mem.store, "rita.report"), Some(new), "never a deleted user's id");
}

#[tokio::test]
async fn a_rehire_starts_from_nothing_the_person_held_before() {
    let (state, mem) = memory();
    let store = &mem.store;
    apply(&state, &fixture("01-joiner-ada.json")).await;
    let old = id_of(store, "ada.lovelace");
    // During the employment an administrator grants by hand: an unmanaged group, a permission
    // set assigned to the user directly.
    let admins = store.create_group("break-glass-admins");
    store.seed_membership(&admins, &old);
    store.seed_account_assignment(&old, "AdministratorAccess@111122223333");
    apply(&state, &fixture("04-leaver-ada.json")).await;
    assert_eq!(store.user("ada.lovelace").unwrap().status, UserStatus::Disabled);
    let r = apply(&state, &fixture("05-rehire-ada.json")).await;
    assert_eq!(r.outcome.as_ref().unwrap().decision.as_str(), "rehire");
    // One user carries the person's marker, enabled, with the rehire's groups and nothing else.
    let mine = users_of(store, "100234");
    assert_eq!(mine.len(), 1, "{mine:?}");
    let new = &mine[0];
    assert_ne!(new.user_id, old, "a new UserId: nothing keyed on the old one applies");
    assert_eq!(new.status, UserStatus::Enabled);
    assert_eq!(store.group_names_of(&new.user_id), vec!["jml-all-staff", "jml-engineering"]);
    assert!(store.account_assignments(&new.user_id).is_empty());
    assert!(store.describe_user(&old).await.unwrap().is_none(), "the previous employment's user is gone");
    assert!(store.group_names_of(&old).is_empty());
    // The ExternalId resolves to the new user only, in the ledger too; the inventory covers it.
    let record = mem.ledger.get("workday#100234", IDENTITY_TARGET).await.unwrap().unwrap();
    assert_eq!(record.user_id.as_deref(), Some(new.user_id.as_str()));
    let inventory = mem.ledger.accounts("workday#100234", IDENTITY_TARGET).await.unwrap();
    assert!(inventory.contains(&format!("id:{}", new.user_id)), "{inventory:?}");
    // A duplicate rehire writes nothing; a later leaver revokes the new user.
    mem.store.reset_calls();
    let d = apply(&state, &fixture("05-rehire-ada.json")).await;
    assert_eq!(d.outcome.unwrap().decision.as_str(), "duplicate");
    assert_eq!(mem.store.calls().writes(), 0);
    let mut later = fixture("04-leaver-ada.json");
    later["eventId"] = "hr-2026-12-01-0001".into();
    later["occurredAt"] = "2026-12-01T09:00:00Z".into();
    apply(&state, &later).await;
    let after = users_of(store, "100234");
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].status, after[0].groups.len()), (UserStatus::Disabled, 0));
}

#[tokio::test]
async fn a_retried_rehire_keeps_the_user_it_created() {
    let (state, mem) = memory();
    apply(&state, &fixture("01-joiner-ada.json")).await;
    apply(&state, &fixture("04-leaver-ada.json")).await;
    let old = id_of(&mem.store, "ada.lovelace");
    // The rehire fails after its CreateUser (a membership write is throttled): retried.
    mem.store.inject(Fault::next(
        op::CREATE_GROUP_MEMBERSHIP,
        ServiceError::Throttled { op: op::CREATE_GROUP_MEMBERSHIP, retry_after_seconds: None },
        1,
    ));
    let r =
        identity_sync::process_record(&state, &fixture("05-rehire-ada.json").to_string(), &Default::default()).await;
    assert!(r.error.is_some(), "the first delivery fails");
    let created = id_of(&mem.store, "ada.lovelace");
    assert_ne!(created, old);
    // The redelivery finishes on the user the first delivery created (no second deletion).
    let again = apply(&state, &fixture("05-rehire-ada.json")).await;
    assert_eq!(id_of(&mem.store, "ada.lovelace"), created);
    assert!(!again.outcome.unwrap().actions.iter().any(|a| a.starts_with("DeleteUser")));
    assert_eq!(users_of(&mem.store, "100234").len(), 1);
    assert_eq!(mem.store.user("ada.lovelace").unwrap().groups, vec!["jml-all-staff", "jml-engineering"]);
}

#[tokio::test]
async fn a_dry_run_rehire_describes_the_fresh_start_and_writes_nothing() {
    let cfg = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    let store = Arc::new(demo_identity_store());
    let (state, mem) = identity_sync::memory(store.clone(), &cfg).unwrap();
    apply(&state, &fixture("01-joiner-ada.json")).await;
    apply(&state, &fixture("04-leaver-ada.json")).await;
    let dry_cfg = Config::from_lookup(|k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "DRY_RUN" => Some("true".into()),
        _ => None,
    })
    .unwrap();
    let settings = identity_sync::Settings::from_config(&dry_cfg).unwrap();
    let dry = identity_sync::state(store.clone(), mem.ledger.clone(), mem.dlq.clone(), &dry_cfg, &settings);
    store.reset_calls();
    let r = apply(&dry, &fixture("05-rehire-ada.json")).await;
    let outcome = r.outcome.unwrap();
    assert!(outcome.dry_run, "{outcome:?}");
    assert!(outcome.actions.iter().any(|a| a.starts_with("DeleteUser")), "{:?}", outcome.actions);
    assert!(outcome.actions.iter().any(|a| a == "CreateUser"), "{:?}", outcome.actions);
    assert_eq!(store.calls().writes(), 0);
}

#[tokio::test]
async fn reconciliation_reports_a_wrong_manager_and_apply_sets_it() {
    use identity_sync::reconcile::{diff, read};
    use jml_core::reconcile::parse_snapshot;
    let (state, mem) = memory();
    let store = &mem.store;
    let rita = person("joiner", "r-1", 2, "200001", "rita.report", Some("max.manager"));
    apply(&state, &rita).await;
    // The manager's user is made by hand (no event of ours ever creates it).
    let max = store.seed_user("max.manager", None, None);
    let line = |v: &Value| {
        let mut v = v.clone();
        for k in ["eventId", "type", "occurredAt"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v.to_string()
    };
    let as_of: chrono::DateTime<chrono::Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    let snap = parse_snapshot(&line(&rita), as_of);
    let cfg = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    let managed = identity_sync::Settings::from_config(&cfg).unwrap().managed_groups;
    let known = mem.ledger.known(IDENTITY_TARGET).await.unwrap();
    let drift = diff(&snap, &read(store.as_ref(), &managed).await.unwrap(), &known);
    let got: Vec<(&str, &str)> = drift.iter().map(|d| (d.kind.as_str(), d.detail.as_str())).collect();
    assert_eq!(got, vec![("attributes", "aws:identitystore:enterprise.manager")]);
    // --apply: the corrective mover sets it; then no drift.
    let report = jml_core::reconcile::Report {
        as_of,
        people: 1,
        targets: vec![IDENTITY_TARGET.into()],
        drift: drift.clone(),
        bad: vec![],
    };
    for e in report.corrective_events(&snap, &BTreeSet::new()).events {
        apply(&state, &e).await;
    }
    assert_eq!(manager_of(store, "rita.report"), Some(max));
    let known = mem.ledger.known(IDENTITY_TARGET).await.unwrap();
    assert!(diff(&snap, &read(store.as_ref(), &managed).await.unwrap(), &known).is_empty());
}
