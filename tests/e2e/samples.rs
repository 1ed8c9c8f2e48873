//! Every sample in `events/` conforms to the JSON Schema and to the contract parser, and the
//! schema rejects what the parser rejects for the structural rules it can express.

use serde_json::{Value, json};

use crate::{events_dir, fixture_json};

type Edit = Box<dyn Fn(&mut Value)>;

fn schema() -> jsonschema::Validator {
    let schema = fixture_json("hr-event.schema.json");
    jsonschema::validator_for(&schema).expect("the schema itself is valid")
}

/// The HR events in `events/`: the top-level files, and those inside the Lambda envelopes.
fn sample_events() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(events_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    files.extend(std::fs::read_dir(events_dir().join("lambda")).unwrap().map(|e| e.unwrap().path()));
    files.sort();
    for f in files {
        let name = f.display().to_string();
        // The scheduler's input to the reconcile function carries no HR event.
        if f.extension().is_none_or(|x| x != "json") || name.ends_with(".schema.json") || name.contains("scheduler-") {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        if let Some(records) = v.get("Records").and_then(Value::as_array) {
            for (i, r) in records.iter().enumerate() {
                let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
                out.push((format!("{name} record {i}"), body));
            }
        } else if let Some(entries) = v.as_array() {
            // `aws events put-events --entries` files: Detail is the HR event as a string.
            for (i, e) in entries.iter().enumerate() {
                let detail: Value = serde_json::from_str(e["Detail"].as_str().unwrap()).unwrap();
                assert_eq!(
                    e["DetailType"].as_str().map(str::to_lowercase),
                    detail["type"].as_str().map(String::from),
                    "{name}"
                );
                out.push((format!("{name} entry {i}"), detail));
            }
        } else if let Some(detail) = v.get("detail") {
            out.push((format!("{name} detail"), detail.clone()));
        } else {
            out.push((name, v));
        }
    }
    out
}

#[test]
fn every_sample_event_matches_the_schema_and_the_parser() {
    let validator = schema();
    let samples = sample_events();
    assert!(samples.len() >= 9, "found {} samples", samples.len());
    for (name, event) in samples {
        let errors: Vec<String> = validator.iter_errors(&event).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: schema errors: {errors:?}");
        jml_core::contract::event_from_value(&event).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_schema_rejects_structurally_bad_events_too() {
    let validator = schema();
    let base = fixture_json("01-joiner-ada.json");
    let edits: Vec<(&str, Edit)> = vec![
        ("missing eventId", Box::new(|v| drop(v.as_object_mut().unwrap().remove("eventId")))),
        ("bad type", Box::new(|v| v["type"] = json!("fired"))),
        ("reserved userName", Box::new(|v| v["person"]["userName"] = json!("Administrator"))),
        ("userName with a space", Box::new(|v| v["person"]["userName"] = json!("a b"))),
        ("two emails", Box::new(|v| v["person"]["email"] = json!(["a@example.com"]))),
        ("unknown field", Box::new(|v| v["person"]["emial"] = json!("x"))),
        ("joiner without groups", Box::new(|v| drop(v.as_object_mut().unwrap().remove("groups")))),
        ("duplicate group", Box::new(|v| v["groups"] = json!(["jml-vpn", "jml-vpn"]))),
    ];
    for (what, edit) in edits {
        let mut v = base.clone();
        edit(&mut v);
        assert!(!validator.is_valid(&v), "schema accepted: {what}");
        assert!(jml_core::contract::event_from_value(&v).is_err(), "parser accepted: {what}");
    }
}
