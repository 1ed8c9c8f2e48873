//! A corpus of bad events: each is rejected with an error on its specific field, and through the
//! handler every one is parked (InvalidEvent), none retried, none dropped.

use jml_core::contract::parse_event;
use serde_json::{Value, json};

use crate::{failures, fixture_json, invoke, memory_state, sqs_batch};

type Edit = Box<dyn Fn(&mut Value)>;

fn set(path: &[&str], value: Value) -> Edit {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    Box::new(move |v: &mut Value| {
        let mut cur = v;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[p.as_str()];
        }
        cur[path[path.len() - 1].as_str()] = value.clone();
    })
}

fn remove(path: &[&str]) -> Edit {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    Box::new(move |v: &mut Value| {
        let mut cur = v;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[p.as_str()];
        }
        cur.as_object_mut().unwrap().remove(path[path.len() - 1].as_str());
    })
}

/// (what is wrong, edit of the joiner sample, the field the error must name, a word of the rule)
fn corpus() -> Vec<(&'static str, Edit, &'static str, &'static str)> {
    vec![
        ("eventId missing", remove(&["eventId"]), "eventId", "required"),
        ("eventId empty", set(&["eventId"], json!("")), "eventId", "1 to 128"),
        ("eventId too long", set(&["eventId"], json!("e".repeat(129))), "eventId", "1 to 128"),
        ("eventId with a space", set(&["eventId"], json!("evt 1")), "eventId", "printable ASCII"),
        ("eventId a number", set(&["eventId"], json!(42)), "eventId", "must be a string"),
        ("type unknown", set(&["type"], json!("fired")), "type", "one of"),
        ("type missing", remove(&["type"]), "type", "required"),
        ("type wrong case", set(&["type"], json!("Joiner")), "type", "one of"),
        ("occurredAt not RFC 3339", set(&["occurredAt"], json!("02/11/2026")), "occurredAt", "RFC 3339"),
        ("occurredAt without offset", set(&["occurredAt"], json!("2026-11-02T09:00:00")), "occurredAt", "RFC 3339"),
        ("person missing", remove(&["person"]), "person", "required"),
        ("person an array", set(&["person"], json!([])), "person", "must be an object"),
        ("externalId missing", remove(&["person", "externalId"]), "person.externalId", "required"),
        (
            "externalId issuer missing",
            remove(&["person", "externalId", "issuer"]),
            "person.externalId.issuer",
            "required",
        ),
        ("externalId id empty", set(&["person", "externalId", "id"], json!("")), "person.externalId.id", "at least 1"),
        (
            "externalId id too long",
            set(&["person", "externalId", "id"], json!("9".repeat(257))),
            "person.externalId.id",
            "at most 256",
        ),
        (
            "externalId id with a space",
            set(&["person", "externalId", "id"], json!("10 02")),
            "person.externalId.id",
            "pattern",
        ),
        ("userName missing", remove(&["person", "userName"]), "person.userName", "required"),
        ("userName too long", set(&["person", "userName"], json!("a".repeat(129))), "person.userName", "at most 128"),
        ("userName with a space", set(&["person", "userName"], json!("ada lovelace")), "person.userName", "pattern"),
        (
            "userName reserved Administrator",
            set(&["person", "userName"], json!("Administrator")),
            "person.userName",
            "reserved",
        ),
        (
            "userName reserved AWSAdministrators",
            set(&["person", "userName"], json!("awsadministrators")),
            "person.userName",
            "reserved",
        ),
        (
            "userName with a control character",
            set(&["person", "userName"], json!("ada\u{0000}")),
            "person.userName",
            "pattern",
        ),
        ("displayName missing", remove(&["person", "displayName"]), "person.displayName", "required"),
        (
            "displayName with a bell character",
            set(&["person", "displayName"], json!("Ada\u{0007}")),
            "person.displayName",
            "control characters",
        ),
        (
            "displayName too long",
            set(&["person", "displayName"], json!("x".repeat(1025))),
            "person.displayName",
            "at most 1024",
        ),
        ("name.givenName missing", remove(&["person", "name", "givenName"]), "person.name.givenName", "required"),
        (
            "name.givenName white space only",
            set(&["person", "name", "givenName"], json!("\t\n")),
            "person.name.givenName",
            "blank",
        ),
        ("displayName white space only", set(&["person", "displayName"], json!("   ")), "person.displayName", "blank"),
        (
            "name.familyName a number",
            set(&["person", "name", "familyName"], json!(7)),
            "person.name.familyName",
            "must be a string",
        ),
        ("email missing", remove(&["person", "email"]), "person.email", "required"),
        ("email without @", set(&["person", "email"], json!("ada.example.com")), "person.email", "local@domain"),
        ("email with two @", set(&["person", "email"], json!("a@b@example.com")), "person.email", "local@domain"),
        (
            "two emails",
            set(&["person", "email"], json!(["a@example.com", "b@example.com"])),
            "person.email",
            "single string",
        ),
        ("phone with letters", set(&["person", "phone"], json!("call me")), "person.phone", "phone number"),
        ("two phones", set(&["person", "phone"], json!(["1", "2"])), "person.phone", "single string"),
        ("address not an object", set(&["person", "address"], json!("London")), "person.address", "must be an object"),
        ("two addresses", set(&["person", "address"], json!([{}, {}])), "person.address", "must be an object"),
        (
            "address unknown field",
            set(&["person", "address", "city"], json!("London")),
            "person.address.city",
            "not a field",
        ),
        ("title empty", set(&["person", "title"], json!("")), "person.title", "at least 1"),
        (
            "manager reserved name",
            set(&["person", "enterprise", "manager"], json!("Administrator")),
            "person.enterprise.manager",
            "reserved",
        ),
        (
            "enterprise unknown field",
            set(&["person", "enterprise", "salary"], json!("1")),
            "person.enterprise.salary",
            "not a field",
        ),
        ("person typo field", set(&["person", "emial"], json!("x@example.com")), "person.emial", "not a field"),
        ("top-level unknown field", set(&["priority"], json!("high")), "priority", "not a field"),
        ("appstreamStacks not an array", set(&["appstreamStacks"], json!("office-apps")), "appstreamStacks", "array"),
        (
            "appstream stack name with a space",
            set(&["appstreamStacks"], json!(["office apps"])),
            "appstreamStacks[0]",
            "stack name",
        ),
        (
            "appstream stack twice",
            set(&["appstreamStacks"], json!(["office-apps", "office-apps"])),
            "appstreamStacks[1]",
            "twice",
        ),
        (
            "appstream stacks too many",
            set(&["appstreamStacks"], json!((0..26).map(|i| format!("s{i}")).collect::<Vec<_>>())),
            "appstreamStacks",
            "at most 25",
        ),
        ("groups missing", remove(&["groups"]), "groups", "required"),
        ("groups not an array", set(&["groups"], json!("jml-vpn")), "groups", "array"),
        ("groups duplicate", set(&["groups"], json!(["jml-vpn", "jml-vpn"])), "groups[1]", "twice"),
        ("group name empty", set(&["groups"], json!(["jml-vpn", ""])), "groups[1]", "at least 1"),
        ("group name reserved", set(&["groups"], json!(["AWSAdministrators"])), "groups[0]", "reserved"),
        ("group name a number", set(&["groups"], json!([1])), "groups[0]", "must be a string"),
        (
            "too many groups",
            set(&["groups"], json!((0..101).map(|i| format!("jml-{i}")).collect::<Vec<_>>())),
            "groups",
            "at most 100",
        ),
    ]
}

#[test]
fn every_bad_event_is_rejected_with_an_error_on_its_field() {
    let corpus = corpus();
    assert!(corpus.len() >= 30, "the corpus keeps at least 30 cases");
    for (what, edit, field, rule_word) in corpus {
        let mut v = fixture_json("01-joiner-ada.json");
        edit(&mut v);
        let err = parse_event(&v.to_string()).expect_err(what);
        let on_field: Vec<_> = err.errors.iter().filter(|e| e.field == field).collect();
        assert!(!on_field.is_empty(), "{what}: expected an error on {field}, got: {err}");
        assert!(on_field.iter().any(|e| e.rule.contains(rule_word)), "{what}: expected '{rule_word}' in: {err}");
    }
}

#[test]
fn syntax_errors_and_non_objects_are_rejected() {
    for (body, word) in
        [("", "end of input"), ("{", "end of input"), ("[1]", "must be a JSON object"), ("nope", "syntax")]
    {
        let err = parse_event(body).unwrap_err();
        assert!(err.to_string().contains(word), "{body:?}: {err}");
    }
}

#[tokio::test]
async fn through_the_handler_every_bad_event_is_parked_none_retried() {
    let (state, mem) = memory_state();
    let bodies: Vec<(String, String)> = corpus()
        .into_iter()
        .enumerate()
        .map(|(i, (_, edit, _, _))| {
            let mut v = fixture_json("01-joiner-ada.json");
            edit(&mut v);
            (format!("bad-{i}"), v.to_string())
        })
        .collect();
    for chunk in bodies.chunks(10) {
        let records: Vec<(&str, &str, &str)> = chunk.iter().map(|(id, b)| (id.as_str(), "p-bad", b.as_str())).collect();
        let response = invoke(&state, sqs_batch(&records)).await.unwrap();
        assert!(failures(&response).is_empty(), "parked, not retried");
    }
    let parked = mem.dlq.parked();
    assert_eq!(parked.len(), bodies.len(), "every bad event is parked, none dropped");
    assert!(parked.iter().all(|p| p.error_code == "InvalidEvent" && !p.reason.is_empty()));
    assert_eq!(mem.store.calls().writes(), 0);
}
