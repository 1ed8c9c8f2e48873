//! Reconciliation against an HR snapshot: the snapshot's parsing and validation, the refusal of
//! a suspiciously small one, the drift report and its corrective events. Plain data and pure
//! functions: each target reads its own state (list calls) and diffs it in its slice.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::contract::{FieldError, HrEvent, event_from_value};

/// A snapshot line that failed the contract's rules: its number (1-based) and every broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub errors: Vec<FieldError>,
}

/// An HR snapshot: every person currently employed, as a joiner event at `as_of` (the desired
/// state), keyed by ExternalId (`issuer#id`).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub as_of: DateTime<Utc>,
    pub people: BTreeMap<String, HrEvent>,
    /// Each person's line, for the report.
    pub lines: BTreeMap<String, usize>,
    /// Each person's line as sent, for the corrective events.
    pub raw: BTreeMap<String, Value>,
    pub bad: Vec<BadLine>,
}

/// The person a plain marker names (`urn:jml-sync:person:<issuer>:<id>`, percent-encoded), or
/// the marker itself for a hashed one (the person is not recoverable from it).
pub fn person_of_marker(marker: &str) -> Option<String> {
    let rest = marker.strip_prefix(crate::contract::MARKER_PREFIX)?;
    if let Some(plain) = rest.strip_prefix(':') {
        let (issuer, id) = plain.split_once(':')?;
        let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        return Some(format!("{}#{}", dec(issuer), dec(id)));
    }
    rest.starts_with("-sha256:").then(|| format!("marker:{marker}"))
}

/// The event id of the corrective event for `person` at `as_of`: deterministic, so a rerun is
/// deduplicated by the ledger (and by the FIFO queues within their window).
pub fn corrective_event_id(as_of: &DateTime<Utc>, person: &str) -> String {
    let person: String =
        person.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("reconcile-{}-{person}", as_of.format("%Y%m%dT%H%M%SZ"))
}

/// Parses JSON Lines: each non-blank line `{"person": {...}, "groups": [...], ...}` (a v1 HR
/// event without `eventId`, `type` and `occurredAt`), validated by the contract as a joiner at
/// `as_of`. A bad line is reported with its number and fields and never stops the rest; a person
/// on two lines is a bad line (the second).
pub fn parse_snapshot(text: &str, as_of: DateTime<Utc>) -> Snapshot {
    let mut snap =
        Snapshot { as_of, people: BTreeMap::new(), lines: BTreeMap::new(), raw: BTreeMap::new(), bad: Vec::new() };
    let at = as_of.to_rfc3339_opts(SecondsFormat::Secs, true);
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |field: &str, rule: String| BadLine { line, errors: vec![FieldError { field: field.into(), rule }] };
        let mut value: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                snap.bad.push(bad("$", format!("must be one JSON object per line ({e})")));
                continue;
            }
        };
        let Some(obj) = value.as_object_mut() else {
            snap.bad.push(bad("$", "must be a JSON object".into()));
            continue;
        };
        if let Some(k) = ["eventId", "type", "occurredAt"].into_iter().find(|k| obj.contains_key(*k)) {
            snap.bad.push(bad(k, "must be absent in a snapshot line (the snapshot's time is --as-of)".into()));
            continue;
        }
        obj.insert("eventId".into(), Value::String(format!("snapshot-line-{line}")));
        obj.insert("type".into(), Value::String("joiner".into()));
        obj.insert("occurredAt".into(), Value::String(at.clone()));
        match event_from_value(&value) {
            Ok(event) => {
                let key = event.external_id.key();
                if let Some(first) = snap.lines.get(&key) {
                    snap.bad.push(bad("person.externalId", format!("the same person is on line {first}")));
                    continue;
                }
                snap.lines.insert(key.clone(), line);
                snap.raw.insert(key.clone(), value.clone());
                snap.people.insert(key, event);
            }
            Err(e) => snap.bad.push(BadLine { line, errors: e.errors }),
        }
    }
    snap
}

/// Refuses a snapshot that misses more than `max_missing` (a share, 0 to 1) of the people a
/// target manages with access (a partial HR export must never disable the company). `Err`: why.
pub fn check_not_partial(managed: &BTreeSet<String>, snapshot: &Snapshot, max_missing: f64) -> Result<(), String> {
    if managed.is_empty() {
        return Ok(());
    }
    let missing = managed.iter().filter(|p| !snapshot.people.contains_key(*p)).count();
    let share = missing as f64 / managed.len() as f64;
    if share > max_missing {
        return Err(format!(
            "the snapshot misses {missing} of the {} people managed with access ({:.1}% > {:.1}%): refused as a whole; a partial HR export must not disable anyone (raise --max-missing if this is real)",
            managed.len(),
            share * 100.0,
            max_missing * 100.0
        ));
    }
    Ok(())
}

/// The kinds of drift, stable names of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriftKind {
    MissingAccount,
    OrphanAccount,
    LeaverStillActive,
    Status,
    Attributes,
    GroupsMissing,
    GroupsExtra,
    Stacks,
    Subscriptions,
    IamPath,
    Collision,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingAccount => "missing-account",
            Self::OrphanAccount => "orphan-account",
            Self::LeaverStillActive => "leaver-still-active",
            Self::Status => "status",
            Self::Attributes => "attributes",
            Self::GroupsMissing => "groups-missing",
            Self::GroupsExtra => "groups-extra",
            Self::Stacks => "stacks",
            Self::Subscriptions => "subscriptions",
            Self::IamPath => "iam-path",
            Self::Collision => "collision",
        }
    }

    /// What corrects it: HR's desired state again (a joiner/mover), or a leaver (the person is
    /// not in HR), or nothing automatic (a collision needs a human).
    pub fn correction(self) -> Correction {
        match self {
            Self::OrphanAccount | Self::LeaverStillActive => Correction::Leaver,
            Self::Collision => Correction::Manual,
            _ => Correction::Desired,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correction {
    Desired,
    Leaver,
    Manual,
}

/// One drift: a person (`issuer#id`), a target, its kind, and what differs (free of personal
/// data: attribute paths, group and stack names, statuses; never names or e-mails).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Drift {
    pub person: String,
    pub target: String,
    pub kind: DriftKind,
    pub detail: String,
}

/// The report of one reconciliation.
#[derive(Clone, Debug)]
pub struct Report {
    pub as_of: DateTime<Utc>,
    pub people: usize,
    pub targets: Vec<String>,
    pub drift: Vec<Drift>,
    pub bad: Vec<BadLine>,
}

impl Report {
    /// Counts per target and kind.
    pub fn counts(&self) -> BTreeMap<&str, BTreeMap<&'static str, usize>> {
        let mut out: BTreeMap<&str, BTreeMap<&'static str, usize>> =
            self.targets.iter().map(|t| (t.as_str(), BTreeMap::new())).collect();
        for d in &self.drift {
            *out.entry(d.target.as_str()).or_default().entry(d.kind.as_str()).or_default() += 1;
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "asOf": self.as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
            "people": self.people,
            "targets": self.counts(),
            "drift": self.drift.iter().map(|d| json!({
                "person": d.person, "target": d.target, "kind": d.kind.as_str(), "detail": d.detail
            })).collect::<Vec<_>>(),
            "badLines": self.bad.iter().map(|b| json!({
                "line": b.line,
                "errors": b.errors.iter().map(|e| json!({"field": e.field, "rule": e.rule})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn print_table(&self) {
        for b in &self.bad {
            let errs: Vec<String> = b.errors.iter().map(ToString::to_string).collect();
            println!("snapshot line {}: {}", b.line, errs.join("; "));
        }
        for t in &self.targets {
            let rows: Vec<&Drift> = self.drift.iter().filter(|d| &d.target == t).collect();
            println!("\n{t}: {} drift(s)", rows.len());
            if rows.is_empty() {
                continue;
            }
            let w = rows.iter().map(|d| d.person.len()).max().unwrap_or(6).max(6);
            println!("{:<w$}  {:<20}  detail", "person", "kind");
            for d in rows {
                println!("{:<w$}  {:<20}  {}", d.person, d.kind.as_str(), d.detail);
            }
        }
        println!("\nsummary (as of {}, {} people in the snapshot)", self.as_of.to_rfc3339(), self.people);
        for (t, kinds) in self.counts() {
            let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("  {t:<20} {}", if list.is_empty() { "no drift".to_string() } else { list.join(", ") });
        }
    }

    /// Exit code: 0 no drift, 3 drift (or bad lines).
    pub fn exit_code(&self) -> u8 {
        if self.drift.is_empty() && self.bad.is_empty() { 0 } else { 3 }
    }

    /// One corrective HR event per drifted person (several targets, one event): the snapshot's
    /// desired state as a mover (a joiner where an account is missing, a rehire when the ledger
    /// says the person left), or a
    /// leaver for a person HR no longer lists. `occurredAt` is the snapshot's time, so any real
    /// event newer than the snapshot wins; the event id is deterministic. Collisions need a human
    /// and get none.
    pub fn corrective_events(&self, snapshot: &Snapshot, left: &BTreeSet<String>) -> Vec<Value> {
        let at = self.as_of.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut wanted: BTreeMap<&str, Correction> = BTreeMap::new();
        let mut missing = BTreeSet::new();
        let mut disabled = BTreeSet::new();
        for d in &self.drift {
            let c = d.kind.correction();
            if c != Correction::Manual {
                wanted.entry(d.person.as_str()).or_insert(c);
            }
            if d.kind == DriftKind::MissingAccount {
                missing.insert(d.person.as_str());
            }
            if d.kind == DriftKind::Status {
                // Disabled while employed: a mover does not enable (a disabled user stays
                // disabled until a rehire), so the correction is a rehire.
                disabled.insert(d.person.as_str());
            }
        }
        let mut out = Vec::new();
        for (person, c) in wanted {
            let id = corrective_event_id(&self.as_of, person);
            match (c, snapshot.raw.get(person)) {
                (Correction::Desired, Some(raw)) => {
                    let mut v = raw.clone();
                    v["eventId"] = Value::String(id);
                    let kind = match (left.contains(person) || disabled.contains(person), missing.contains(person)) {
                        (true, _) => "rehire",
                        (false, true) => "joiner",
                        (false, false) => "mover",
                    };
                    v["type"] = Value::String(kind.into());
                    v["occurredAt"] = Value::String(at.clone());
                    out.push(v);
                }
                (Correction::Leaver, None) => {
                    let Some((issuer, ext)) = person.split_once('#') else { continue };
                    out.push(json!({
                        "eventId": id, "type": "leaver", "occurredAt": at,
                        "person": {"externalId": {"issuer": issuer, "id": ext}},
                    }));
                }
                _ => {}
            }
        }
        out
    }
}
