//! Planner table tests: each event type against each kind of current state, and the edge cases.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use identity_sync::planner::{
    Action, CurrentUser, ManagedGroups, Ownership, Refusal, check_groups, desired_attributes, ownership, plan,
};
use identity_sync::port::{UserRecord, UserStatus};
use jml_core::contract::{HrEvent, parse_event};
use jml_core::engine::Decision;
use serde_json::{Value, json};

fn joiner_json() -> Value {
    json!({
        "eventId": "e-1", "type": "joiner", "occurredAt": "2026-11-02T09:00:00Z",
        "person": {
            "externalId": {"issuer": "workday", "id": "1"},
            "userName": "ada", "displayName": "Ada L",
            "name": {"givenName": "Ada", "familyName": "L"},
            "email": "ada@example.com",
            "title": "Engineer",
            "enterprise": {"department": "Eng"}
        },
        "groups": ["jml-a", "jml-b"]
    })
}

fn event(kind: &str, edit: impl FnOnce(&mut Value)) -> HrEvent {
    let mut v = joiner_json();
    v["type"] = kind.into();
    if kind == "leaver" {
        v = json!({"eventId": "e-9", "type": "leaver", "occurredAt": "2026-11-20T17:00:00Z",
                   "person": {"externalId": {"issuer": "workday", "id": "1"}}});
    }
    edit(&mut v);
    parse_event(&v.to_string()).unwrap()
}

/// The user exactly as the joiner would have created it, with the given status and groups.
fn current(status: UserStatus, groups: &[&str]) -> CurrentUser {
    let e = event("joiner", |_| {});
    let attributes = desired_attributes(e.profile().unwrap(), &e.external_id, None);
    CurrentUser {
        record: UserRecord { user_id: "u-1".into(), status, external_ids: vec![], attributes },
        managed_memberships: groups.iter().map(|g| (g.to_string(), format!("m-{g}"))).collect::<BTreeMap<_, _>>(),
    }
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions.iter().map(Action::describe).collect()
}

#[test]
fn table_of_event_type_by_current_state() {
    struct Case {
        name: &'static str,
        kind: &'static str,
        current: Option<CurrentUser>,
        decision: Decision,
        actions: Vec<&'static str>,
    }
    let enabled = || Some(current(UserStatus::Enabled, &["jml-a", "jml-b"]));
    let disabled = || Some(current(UserStatus::Disabled, &[]));
    let cases = vec![
        Case {
            name: "joiner, no user: create then memberships",
            kind: "joiner",
            current: None,
            decision: Decision::Create,
            actions: vec!["CreateUser", "CreateGroupMembership jml-a", "CreateGroupMembership jml-b"],
        },
        Case {
            name: "joiner, same state: nothing",
            kind: "joiner",
            current: enabled(),
            decision: Decision::NoChange,
            actions: vec![],
        },
        Case {
            name: "joiner, disabled user: only a rehire re-enables",
            kind: "joiner",
            current: disabled(),
            decision: Decision::IgnoredForDisabledUser,
            actions: vec![],
        },
        Case {
            name: "mover, same state: nothing",
            kind: "mover",
            current: enabled(),
            decision: Decision::NoChange,
            actions: vec![],
        },
        Case {
            name: "mover, disabled user: ignored",
            kind: "mover",
            current: disabled(),
            decision: Decision::IgnoredForDisabledUser,
            actions: vec![],
        },
        Case {
            name: "mover, no user: created (desired state is complete)",
            kind: "mover",
            current: None,
            decision: Decision::Create,
            actions: vec!["CreateUser", "CreateGroupMembership jml-a", "CreateGroupMembership jml-b"],
        },
        Case {
            name: "leaver, enabled with groups: memberships removed first, then disabled",
            kind: "leaver",
            current: enabled(),
            decision: Decision::Disable,
            actions: vec![
                "DeleteGroupMembership jml-a",
                "DeleteGroupMembership jml-b",
                "UpdateUser [userStatus=DISABLED]",
            ],
        },
        Case {
            name: "leaver, already disabled: nothing",
            kind: "leaver",
            current: disabled(),
            decision: Decision::NoChange,
            actions: vec![],
        },
        Case {
            name: "leaver, disabled but a managed membership came back: removed",
            kind: "leaver",
            current: Some(current(UserStatus::Disabled, &["jml-a"])),
            decision: Decision::Disable,
            actions: vec!["DeleteGroupMembership jml-a"],
        },
        Case {
            name: "leaver, no account",
            kind: "leaver",
            current: None,
            decision: Decision::LeaverWithoutAccount,
            actions: vec![],
        },
        Case {
            name: "rehire, disabled: groups back, enabled last",
            kind: "rehire",
            current: disabled(),
            decision: Decision::Rehire,
            actions: vec![
                "CreateGroupMembership jml-a",
                "CreateGroupMembership jml-b",
                "UpdateUser [userStatus=ENABLED]",
            ],
        },
        Case {
            name: "rehire, already enabled and equal: nothing",
            kind: "rehire",
            current: enabled(),
            decision: Decision::NoChange,
            actions: vec![],
        },
    ];
    for c in cases {
        let e = event(c.kind, |_| {});
        let p = plan(&e, c.current.as_ref(), None);
        assert_eq!(p.decision, c.decision, "{}", c.name);
        assert_eq!(kinds(&p.actions), c.actions, "{}", c.name);
    }
}

#[test]
fn mover_changes_only_what_differs_and_removes_before_adding() {
    let e = event("mover", |v| {
        v["person"]["title"] = "Lead".into();
        v["person"]["enterprise"] = json!({"department": "SRE", "costCenter": "42"});
        v["groups"] = json!(["jml-a", "jml-c"]);
    });
    let cur = current(UserStatus::Enabled, &["jml-a", "jml-b"]);
    let p = plan(&e, Some(&cur), None);
    assert_eq!(p.decision, Decision::Update);
    assert_eq!(
        kinds(&p.actions),
        vec![
            "UpdateUser [title, aws:identitystore:enterprise.costCenter, aws:identitystore:enterprise.department]",
            "DeleteGroupMembership jml-b",
            "CreateGroupMembership jml-c",
        ]
    );
}

#[test]
fn removed_optional_attribute_is_removed_and_user_name_change_is_an_update() {
    let e = event("mover", |v| {
        v["person"].as_object_mut().unwrap().remove("title");
        v["person"]["userName"] = "ada.l".into();
    });
    let cur = current(UserStatus::Enabled, &["jml-a", "jml-b"]);
    let p = plan(&e, Some(&cur), None);
    let Action::UpdateUser(changes) = &p.actions[0] else { panic!("expected an update: {:?}", p.actions) };
    assert!(changes.iter().any(|c| c.path == "title" && c.value.is_none()));
    assert!(changes.iter().any(|c| c.path == "userName" && c.value == Some(json!("ada.l"))));
}

#[test]
fn manager_and_email_changes_use_the_documented_value_shapes() {
    let e = event("mover", |v| v["person"]["email"] = "ada@new.example.com".into());
    let cur = current(UserStatus::Enabled, &["jml-a", "jml-b"]);
    let p = plan(&e, Some(&cur), Some("mgr-1".into()));
    let Action::UpdateUser(changes) = &p.actions[0] else { panic!() };
    let by_path = |p: &str| changes.iter().find(|c| c.path == p).and_then(|c| c.value.clone());
    assert_eq!(by_path("aws:identitystore:enterprise.manager"), Some(json!({"value": "mgr-1"})));
    assert_eq!(by_path("emails"), Some(json!([{"value": "ada@new.example.com", "type": "work", "primary": true}])));
}

#[test]
fn memberships_outside_the_event_but_managed_are_removed_unmanaged_never_appear() {
    // The engine only passes managed memberships; an empty desired set removes all of them.
    let e = event("mover", |v| v["groups"] = json!([]));
    let cur = current(UserStatus::Enabled, &["jml-a"]);
    let p = plan(&e, Some(&cur), None);
    assert_eq!(kinds(&p.actions), vec!["DeleteGroupMembership jml-a"]);
}

#[test]
fn ownership_is_decided_by_marker_or_external_id_only() {
    let e = event("joiner", |_| {});
    let mut record = current(UserStatus::Enabled, &[]).record;
    assert_eq!(ownership(&record, &e.external_id), Ownership::Ours);
    record.attributes.marker = Some("urn:jml-sync:person:workday:2".into());
    assert_eq!(ownership(&record, &e.external_id), Ownership::OtherPerson);
    record.attributes.marker = None;
    assert_eq!(ownership(&record, &e.external_id), Ownership::Unmanaged);
    record.external_ids = vec![("workday".into(), "1".into())];
    assert_eq!(ownership(&record, &e.external_id), Ownership::Ours);
    record.external_ids = vec![("okta".into(), "1".into())];
    assert_eq!(ownership(&record, &e.external_id), Ownership::OtherPerson);
}

#[test]
fn groups_must_be_managed() {
    let e = event("joiner", |v| v["groups"] = json!(["jml-a", "admins"]));
    let managed = ManagedGroups { prefix: Some("jml-".into()), names: Default::default() };
    assert_eq!(check_groups(e.profile().unwrap(), &managed), Err(Refusal::UnmanagedGroup { group: "admins".into() }));
    let listed = ManagedGroups { prefix: Some("jml-".into()), names: ["admins".to_string()].into() };
    assert_eq!(check_groups(e.profile().unwrap(), &listed), Ok(()));
}
