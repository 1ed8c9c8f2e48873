//! Reconciliation against an HR snapshot: the snapshot's parsing and validation, the refusal of
//! a suspiciously small one, the drift report and its corrective events. Plain data and pure
//! functions: each target reads its own state (list calls) and diffs it in its slice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::contract::{ExternalId, FieldError, HrEvent, event_from_value, external_id_hint_value};
use crate::ledger::{Known, Ledger, PersonStatus};
use crate::metrics::MetricsSink;
use crate::ports::ServiceError;

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
    /// People a bad line names (its `person.externalId` passes the contract's rules, or the person
    /// is on two lines): HR lists them, but what it wants for them cannot be read. They are never
    /// counted missing, never orphans and never corrected until HR fixes the line: a broken
    /// field must not disable an employed person.
    pub unreadable: BTreeSet<String>,
    /// Bad lines that name nobody (no readable ExternalId): any account HR seems not to list may
    /// be one of theirs, so no leaver is corrected while there is one.
    pub unidentified: Vec<usize>,
    /// People whose line carries a start date after `as_of` (`effectiveAt` / `effectiveDate`, as
    /// a joiner's): listed, not started. Having no account yet is not drift, and they are never
    /// orphans; their instant of start.
    pub not_started: BTreeMap<String, DateTime<Utc>>,
    /// People whose line carries a leave time at or before `as_of` (`leaveAt`, or `leaveDate`:
    /// the last working day, ending at the deployment's cut-off in the person's zone): HR says
    /// they have left. Any access they still hold is `leaver-overdue`, corrected by a leaver.
    /// Their instant of leaving. (A leave time after `as_of` is a future leaver: employed, no
    /// drift.)
    pub left_at: BTreeMap<String, DateTime<Utc>>,
}

impl Snapshot {
    /// Whether HR lists `person` as employed or about to start (on a good line or a bad one
    /// that names them). A person whose leave time passed is not listed.
    pub fn lists(&self, person: &str) -> bool {
        self.people.contains_key(person) || self.unreadable.contains(person) || self.not_started.contains_key(person)
    }
}

/// How a snapshot's dates are read: the deployment's `DEFAULT_TIMEZONE` (for a person whose line
/// names no zone) and the local cut-off a last working day ends at.
#[derive(Clone, Debug)]
pub struct SnapshotDating {
    pub default_zone: String,
    pub cutoff: chrono::NaiveTime,
}

impl Default for SnapshotDating {
    fn default() -> Self {
        Self { default_zone: "UTC".into(), cutoff: crate::dated::default_cutoff() }
    }
}

impl From<&crate::engine::DatingRules> for SnapshotDating {
    fn from(r: &crate::engine::DatingRules) -> Self {
        Self { default_zone: r.default_zone.clone(), cutoff: r.cutoff }
    }
}

/// The leave instant a snapshot line carries (`leaveAt` RFC 3339, or `leaveDate` YYYY-MM-DD: the
/// last working day, in the line's `person.timezone` or the default zone), removed from the
/// line (it is not an event field). `Err`: the field and the rule it broke.
fn take_leave(
    obj: &mut serde_json::Map<String, Value>,
    dating: &SnapshotDating,
) -> Result<Option<DateTime<Utc>>, FieldError> {
    let bad = |field: &str, rule: &str| FieldError { field: field.into(), rule: rule.into() };
    let (at, date) = (obj.remove("leaveAt"), obj.remove("leaveDate"));
    match (at, date) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(bad("leaveAt", "leaveAt and leaveDate are exclusive: send one")),
        (Some(v), None) => v
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| Some(t.with_timezone(&Utc)))
            .ok_or_else(|| bad("leaveAt", "must be an RFC 3339 time with an offset")),
        (None, Some(v)) => {
            let date = v
                .as_str()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or_else(|| bad("leaveDate", "must be a date YYYY-MM-DD (the last working day)"))?;
            let named = obj.get("person").and_then(|p| p.get("timezone")).and_then(Value::as_str);
            let zone = named
                .and_then(|n| crate::dated::zone(n).ok())
                .or_else(|| crate::dated::zone(&dating.default_zone).ok())
                .unwrap_or(jiff::tz::TimeZone::UTC);
            crate::dated::local_instant(date, dating.cutoff, &zone)
                .map(Some)
                .map_err(|e| bad("leaveDate", &e.to_string()))
        }
    }
}

/// The person a managed marker names, as a person key ([`ExternalId::key`]): read back from a
/// plain marker (exactly as [`ExternalId::marker`] writes it); any other marker with the managed
/// prefix (a hashed one, or one not in the exact form jml-sync writes) is `marker:<marker>`,
/// which never reads as a person key (so no correction is ever sent for it: it is held);
/// [`resolve_marker`] first looks a hashed one up among known people. `None`: not a managed
/// marker.
pub fn person_of_marker(marker: &str) -> Option<String> {
    if !marker.starts_with(crate::contract::MARKER_PREFIX) {
        return None;
    }
    Some(ExternalId::from_marker(marker).map_or_else(|| format!("marker:{marker}"), |p| p.key()))
}

/// The markers of `people` (person keys, e.g. the ledger's and the snapshot's) that are hashed:
/// marker -> person key. A hashed marker names nobody by itself; this is how reconciliation
/// resolves it.
pub fn hashed_markers<'a>(people: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, String> {
    people
        .into_iter()
        .filter_map(|p| {
            let m = ExternalId::from_key(p)?.marker();
            ExternalId::is_hashed_marker(&m).then(|| (m, p.clone()))
        })
        .collect()
}

/// [`person_of_marker`], a hashed marker resolved through `hashed` (see [`hashed_markers`]).
pub fn resolve_marker(marker: &str, hashed: &BTreeMap<String, String>) -> Option<String> {
    hashed.get(marker).cloned().or_else(|| person_of_marker(marker))
}

/// The event id of the corrective event for `person` at `as_of`: deterministic, so a rerun is
/// deduplicated by the ledger (and by the FIFO queues within their window), and one per person
/// (injective): `reconcile-<as of>-<issuer>_<id>` when both parts are ASCII letters, digits
/// and `-` and it fits the 128 characters of an event id; otherwise
/// `reconcile-<as of>-<readable prefix>.<128-bit SHA-256 of the person key>` (the `.` never
/// occurs in the first form).
pub fn corrective_event_id(as_of: &DateTime<Utc>, person: &str) -> String {
    use sha2::{Digest, Sha256};
    let at = as_of.format("%Y%m%dT%H%M%SZ");
    let simple = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if let Some((issuer, id)) = person.split_once('#')
        && simple(issuer)
        && simple(id)
    {
        let plain = format!("reconcile-{at}-{issuer}_{id}");
        if plain.len() <= 128 {
            return plain;
        }
    }
    let readable: String = person
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(48)
        .collect();
    let digest = Sha256::digest(person.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("reconcile-{at}-{readable}.{hex}")
}

/// Parses JSON Lines: each non-blank line `{"person": {...}, "groups": [...], ...}` (a v1 HR
/// event without `eventId`, `type` and `occurredAt`), validated by the contract as a joiner at
/// `as_of`. A bad line is reported with its number and fields and never stops the rest; a person
/// on two lines is a bad line (the second). Dates in UTC ([`parse_snapshot_dated`]).
pub fn parse_snapshot(text: &str, as_of: DateTime<Utc>) -> Snapshot {
    parse_snapshot_dated(text, as_of, &SnapshotDating::default())
}

/// [`parse_snapshot`], a line's dates read with the deployment's zone and cut-off. A line may
/// carry the contract's start date (`effectiveAt` / `effectiveDate`, as a joiner's: a person not
/// started at `as_of` is [`Snapshot::not_started`]) and a leave time (`leaveAt` / `leaveDate`,
/// the last working day: a person whose leave time is at or before `as_of` is
/// [`Snapshot::left_at`]; a later one is a future leaver, still employed).
pub fn parse_snapshot_dated(text: &str, as_of: DateTime<Utc>, dating: &SnapshotDating) -> Snapshot {
    let mut snap = Snapshot {
        as_of,
        people: BTreeMap::new(),
        lines: BTreeMap::new(),
        raw: BTreeMap::new(),
        bad: Vec::new(),
        unreadable: BTreeSet::new(),
        unidentified: Vec::new(),
        not_started: BTreeMap::new(),
        left_at: BTreeMap::new(),
    };
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
                snap.unidentified.push(line);
                continue;
            }
        };
        // The person a line names even when the rest of it is broken.
        let named = external_id_hint_value(&value);
        let refuse = |snap: &mut Snapshot, b: BadLine| {
            snap.bad.push(b);
            match &named {
                Some(p) => {
                    snap.unreadable.insert(p.clone());
                }
                None => snap.unidentified.push(line),
            }
        };
        let Some(obj) = value.as_object_mut() else {
            refuse(&mut snap, bad("$", "must be a JSON object".into()));
            continue;
        };
        if let Some(k) = ["eventId", "type", "occurredAt"].into_iter().find(|k| obj.contains_key(*k)) {
            refuse(&mut snap, bad(k, "must be absent in a snapshot line (the snapshot's time is --as-of)".into()));
            continue;
        }
        let leave = match take_leave(obj, dating) {
            Ok(l) => l,
            Err(e) => {
                refuse(&mut snap, BadLine { line, errors: vec![e] });
                continue;
            }
        };
        obj.insert("eventId".into(), Value::String(format!("snapshot-line-{line}")));
        obj.insert("type".into(), Value::String("joiner".into()));
        obj.insert("occurredAt".into(), Value::String(at.clone()));
        match event_from_value(&value) {
            Ok(event) => {
                let key = event.external_id.key();
                if let Some(first) = snap.lines.get(&key) {
                    let b = bad(
                        "person.externalId",
                        format!("the same person is on line {first} (neither line is used until one is removed)"),
                    );
                    refuse(&mut snap, b);
                    continue;
                }
                let zone = event
                    .profile()
                    .and_then(|p| p.timezone.as_ref())
                    .and_then(|t| crate::dated::zone(t.as_str()).ok())
                    .or_else(|| crate::dated::zone(&dating.default_zone).ok())
                    .unwrap_or(jiff::tz::TimeZone::UTC);
                let start = crate::dated::effective_instant(event.when, false, false, as_of, &zone, dating.cutoff)
                    .unwrap_or(as_of);
                // Only a start HR dated bounds the leave (an undated line's start is the export).
                if let Some(end) = leave
                    && event.when != crate::dated::When::Recorded
                    && end <= start
                {
                    let b = bad("leaveAt", "the leave time must be after the start".into());
                    refuse(&mut snap, b);
                    continue;
                }
                snap.lines.insert(key.clone(), line);
                match leave {
                    // HR says the person has left: any access left is overdue.
                    Some(end) if end <= as_of => {
                        snap.left_at.insert(key, end);
                    }
                    // Not started yet: nothing is owed to them before their start.
                    _ if start > as_of => {
                        snap.not_started.insert(key, start);
                    }
                    _ => {
                        // The start passed: the desired state is a joiner now (the correction
                        // carries no date that would leave it pending).
                        if let Some(o) = value.as_object_mut() {
                            o.remove("effectiveAt");
                            o.remove("effectiveDate");
                        }
                        snap.raw.insert(key.clone(), value.clone());
                        snap.people.insert(key, event);
                    }
                }
            }
            Err(e) => refuse(&mut snap, BadLine { line, errors: e.errors }),
        }
    }
    // A person a bad line names is unreadable even where another line reads well: which line is
    // HR's intent is unknown.
    for p in &snap.unreadable {
        snap.people.remove(p);
        snap.raw.remove(p);
        snap.lines.remove(p);
        snap.not_started.remove(p);
        snap.left_at.remove(p);
    }
    snap
}

/// Refuses a snapshot that misses more than `max_missing` (a share, 0 to 1) of the people a
/// target manages with access (a partial HR export must never disable the company). `Err`: why.
pub fn check_not_partial(managed: &BTreeSet<String>, snapshot: &Snapshot, max_missing: f64) -> Result<(), String> {
    if managed.is_empty() {
        return Ok(());
    }
    // A person whose leave time HR states is accounted for, not missing from the export.
    let missing = managed.iter().filter(|p| !snapshot.lists(p) && !snapshot.left_at.contains_key(*p)).count();
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
    Ledger,
    /// The ledger recorded a leaver and HR's snapshot still lists the person (a lagging export,
    /// or a rehire HR never sent): reported and alarmed, never corrected (only HR's rehire grants
    /// again, never a reconciliation).
    ListedAfterLeaving,
    /// A dated change took effect (its instant passed, as of the snapshot) and the target has
    /// not converged to it: its firing was missed. A leaver overdue still holds access. The
    /// correction converges the person to what is due (the corrective event is recorded, and
    /// the state the events decide now is applied).
    TransitionOverdue,
    /// HR's snapshot gives the person a leave time that has passed (as of the snapshot), and
    /// the target still grants them access. Corrected by a leaver.
    LeaverOverdue,
    /// HR's snapshot gives the person a start after the snapshot's time, and the target already
    /// grants them access. Reported, never corrected: a correction before the start would be a
    /// leaver, and only a rehire grants after a leaver (day one would break); a human decides.
    AccessBeforeStart,
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
            Self::Ledger => "ledger",
            Self::ListedAfterLeaving => "listed-after-leaving",
            Self::TransitionOverdue => "transition-overdue",
            Self::LeaverOverdue => "leaver-overdue",
            Self::AccessBeforeStart => "access-before-start",
        }
    }

    /// Every kind, in report order.
    pub const ALL: [DriftKind; 16] = [
        Self::MissingAccount,
        Self::OrphanAccount,
        Self::LeaverStillActive,
        Self::Status,
        Self::Attributes,
        Self::GroupsMissing,
        Self::GroupsExtra,
        Self::Stacks,
        Self::Subscriptions,
        Self::IamPath,
        Self::Collision,
        Self::Ledger,
        Self::ListedAfterLeaving,
        Self::TransitionOverdue,
        Self::LeaverOverdue,
        Self::AccessBeforeStart,
    ];

    /// Whether `--apply` corrects it. A collision needs a human (an account jml-sync does not
    /// own holds the person's name). So does `status`: an account a human disabled while the
    /// ledger says the person is employed may be an incident lockout, and jml-sync never undoes
    /// a lockout on its own (only HR's rehire after a recorded leaver re-enables).
    pub fn corrected(self) -> bool {
        !matches!(self, Self::Collision | Self::Status | Self::ListedAfterLeaving | Self::AccessBeforeStart)
    }
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

    /// One corrective HR event per drifted person (several targets, one event): for a person HR
    /// lists, HR's desired state as a joiner where an account is missing, else a mover; for a
    /// person HR no longer lists, a leaver. `occurredAt` is the snapshot's time, so any real
    /// event newer than the snapshot wins; the event id is deterministic. Kinds a human must
    /// decide (collision, status, listed-after-leaving) get none.
    ///
    /// Never a rehire: a person the ledger says left whom the snapshot still lists (a lagging
    /// export) is held and reported as `listed-after-leaving`; only HR's own rehire grants again.
    ///
    /// Held (reported, never sent): every correction of a person a bad line names (HR's intent
    /// for them is unknown), and every leaver while a bad line names nobody (that line may be
    /// the person's). `--apply` never disables anyone on a snapshot it could not fully read.
    pub fn corrective_events(&self, snapshot: &Snapshot, left: &BTreeSet<String>) -> Corrections {
        let at = self.as_of.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        let mut missing = BTreeSet::new();
        for d in &self.drift {
            if d.kind.corrected() {
                wanted.insert(d.person.as_str());
            }
            if d.kind == DriftKind::MissingAccount {
                missing.insert(d.person.as_str());
            }
        }
        let mut out = Corrections::default();
        for person in wanted {
            if snapshot.unreadable.contains(person) {
                out.held.push(HeldCorrection {
                    person: person.to_string(),
                    reason: "a bad snapshot line names the person: fix the line first".into(),
                });
                continue;
            }
            if let Some(start) = snapshot.not_started.get(person) {
                out.held.push(HeldCorrection {
                    person: person.to_string(),
                    reason: format!(
                        "not started: HR's start is {}; nothing is corrected before it (HR's joiner or rehire \
                         grants on the day)",
                        start.to_rfc3339_opts(SecondsFormat::Secs, true)
                    ),
                });
                continue;
            }
            let id = corrective_event_id(&self.as_of, person);
            match snapshot.raw.get(person) {
                Some(_) if left.contains(person) => out.held.push(HeldCorrection {
                    person: person.to_string(),
                    reason: "listed after leaving: the ledger recorded a leaver and the snapshot still lists the \
                             person; only HR's rehire grants again (a lagging export?)"
                        .into(),
                }),
                Some(raw) => {
                    let mut v = raw.clone();
                    v["eventId"] = Value::String(id);
                    let kind = if missing.contains(person) { "joiner" } else { "mover" };
                    v["type"] = Value::String(kind.into());
                    v["occurredAt"] = Value::String(at.clone());
                    out.events.push(v);
                }
                None if !snapshot.unidentified.is_empty() => out.held.push(HeldCorrection {
                    person: person.to_string(),
                    reason: format!(
                        "leaver held: snapshot line(s) {} name nobody and may be this person",
                        snapshot.unidentified.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ),
                }),
                None => match ExternalId::from_key(person) {
                    Some(ext) => {
                        let mut v = json!({
                            "eventId": id, "type": "leaver", "occurredAt": at,
                            "person": {"externalId": {"issuer": ext.issuer.as_str(), "id": ext.id.as_str()}},
                        });
                        // HR's leave time, where the ledger records no leaver: the leaver takes
                        // effect then, so a rehire HR dated after it (recorded after the export,
                        // effective before it) still wins over this lagging export.
                        if let Some(end) = snapshot.left_at.get(person)
                            && !left.contains(person)
                        {
                            v["effectiveAt"] = Value::String(end.to_rfc3339_opts(SecondsFormat::Secs, true));
                        }
                        out.events.push(v);
                    }
                    // A hashed mark of a person neither HR nor the ledger knows, or a mark not in
                    // the form jml-sync writes: whose account it is cannot be read back.
                    None => out.held.push(HeldCorrection {
                        person: person.to_string(),
                        reason: "leaver held: the account's mark names no ExternalId jml-sync can read (a hashed mark of a person the ledger does not know, or a mark made by hand): resolve by hand".into(),
                    }),
                },
            }
        }
        out
    }

    /// `Drift` EMF documents: one per target and kind, one per kind for all targets together
    /// (the alarm on `leaver-still-active` watches that one), 0 for a kind not seen so alarms
    /// have data points every run; and `DriftPeople` per target.
    pub fn emit_metrics(&self, sink: &dyn MetricsSink, now: DateTime<Utc>) {
        let counts = self.counts();
        for kind in DriftKind::ALL {
            let n = self.drift.iter().filter(|d| d.kind == kind).count();
            sink.emit(crate::metrics::document(now, &[("Kind", kind.as_str())], &[("Drift", "Count", n as f64)]));
        }
        for t in &self.targets {
            let kinds = counts.get(t.as_str());
            for kind in DriftKind::ALL {
                let n = kinds.and_then(|k| k.get(kind.as_str())).copied().unwrap_or(0);
                sink.emit(crate::metrics::document(
                    now,
                    &[("Target", t), ("Kind", kind.as_str())],
                    &[("Drift", "Count", n as f64)],
                ));
            }
            let people: BTreeSet<&str> =
                self.drift.iter().filter(|d| &d.target == t).map(|d| d.person.as_str()).collect();
            let overdue =
                self.drift.iter().filter(|d| &d.target == t && d.kind == DriftKind::TransitionOverdue).count();
            sink.emit(crate::metrics::document(
                now,
                &[("Target", t)],
                &[("OverdueTransitions", "Count", overdue as f64)],
            ));
            sink.emit(crate::metrics::document(
                now,
                &[("Target", t)],
                &[("DriftPeople", "Count", people.len() as f64)],
            ));
        }
    }
}

/// What `--apply` sends, and what it holds back (with why).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Corrections {
    pub events: Vec<Value>,
    pub held: Vec<HeldCorrection>,
}

/// A correction not sent: the person (`issuer#id`) and why (no personal data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldCorrection {
    pub person: String,
    pub reason: String,
}

/// What the ledger knows on one target, keyed by person.
pub type LedgerView = BTreeMap<String, Known>;

/// What one target's reconciliation found.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub drift: Vec<Drift>,
    /// The people this target manages with access (the partial-snapshot refusal's base).
    pub managed_with_access: BTreeSet<String>,
}

/// One target's reconciliation: it reads the target's state with list calls and diffs it
/// against the snapshot and what the ledger knows there (in its slice, over plain data).
#[async_trait]
pub trait Reconciler: Send + Sync {
    fn target(&self) -> &str;
    async fn reconcile(&self, snapshot: &Snapshot, known: &LedgerView) -> Result<Findings, ServiceError>;
}

/// Why a reconciliation produced no report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The snapshot looks partial (exit 2).
    #[error("{target}: {reason}")]
    Refused { target: String, reason: String },
    /// A read failed (the ledger or a target).
    #[error("{0}")]
    Read(String),
}

/// A report and the people the ledger says left on some target (their correction is a rehire).
#[derive(Clone, Debug)]
pub struct Outcome {
    pub report: Report,
    pub left: BTreeSet<String>,
}

/// Reconciles every target: reads what the ledger knows there, lets the target diff, refuses a
/// snapshot that misses more than `max_missing` of the people the targets manage with access
/// (all targets together),
/// and compares the ledger's own records (a record that says active for a person HR no longer
/// lists and the target shows nothing of; a record that says left for a person HR lists, where
/// the target found nothing else).
pub async fn reconcile(
    snapshot: &Snapshot,
    reconcilers: &[Arc<dyn Reconciler>],
    ledger: &dyn Ledger,
    max_missing: f64,
) -> Result<Outcome, Failure> {
    let mut drift = Vec::new();
    let mut left = BTreeSet::new();
    let mut targets = Vec::new();
    let mut managed = BTreeSet::new();
    for r in reconcilers {
        let target = r.target().to_string();
        let known = ledger.known(&target).await.map_err(|e| Failure::Read(format!("ledger: {e}")))?;
        let mut found = r.reconcile(snapshot, &known).await.map_err(|e| Failure::Read(format!("{target}: {e}")))?;
        // A person on a bad line is listed by HR: their accounts are not orphans (the bad line
        // is reported instead). Whatever else a target found for them stays reported.
        found.drift.retain(|d| !(d.kind == DriftKind::OrphanAccount && snapshot.unreadable.contains(&d.person)));
        // Access held past the leave time HR states: the leaver is overdue (whatever the target
        // called it: an orphan, a leaver still active).
        for d in &mut found.drift {
            if let Some(end) = snapshot.left_at.get(&d.person)
                && matches!(d.kind, DriftKind::OrphanAccount | DriftKind::LeaverStillActive)
            {
                d.kind = DriftKind::LeaverOverdue;
                d.detail = format!(
                    "HR's leave time {} has passed and access remains ({})",
                    end.to_rfc3339_opts(SecondsFormat::Secs, true),
                    d.detail
                );
            }
            if let Some(start) = snapshot.not_started.get(&d.person)
                && matches!(d.kind, DriftKind::OrphanAccount | DriftKind::LeaverStillActive)
            {
                d.kind = DriftKind::AccessBeforeStart;
                d.detail = format!(
                    "HR's start {} is ahead and access is already granted ({})",
                    start.to_rfc3339_opts(SecondsFormat::Secs, true),
                    d.detail
                );
            }
        }
        managed.extend(found.managed_with_access.iter().cloned());
        let seen: BTreeSet<&str> = found.drift.iter().map(|d| d.person.as_str()).collect();
        drift.extend(ledger_drift(&target, snapshot, &known, &seen));
        drift.extend(overdue_drift(&target, &known, snapshot.as_of));
        drift.extend(found.drift.iter().cloned());
        let recorded_left: BTreeSet<&String> = known
            .iter()
            .filter(|(_, k)| k.left() || crate::ledger::Knowledge::of(k.record.as_ref()).left())
            .map(|(p, _)| p)
            .collect();
        for person in &recorded_left {
            // A start ahead (a rehire HR dated) is not a lagging export.
            if snapshot.lists(person) && !snapshot.not_started.contains_key(*person) {
                drift.push(Drift {
                    person: (*person).clone(),
                    target: target.clone(),
                    kind: DriftKind::ListedAfterLeaving,
                    detail: "the ledger recorded a leaver; HR still lists the person: never reversed by \
                             reconciliation (a lagging export, or a rehire HR has not sent)"
                        .into(),
                });
            }
        }
        left.extend(recorded_left.into_iter().cloned());
        targets.push(target);
    }
    // The people managed with access in any target: the base of the refusal (one person is one
    // person, whatever number of targets they are in).
    check_not_partial(&managed, snapshot, max_missing)
        .map_err(|reason| Failure::Refused { target: targets.join(", "), reason })?;
    drift.sort();
    let report =
        Report { as_of: snapshot.as_of, people: snapshot.people.len(), targets, drift, bad: snapshot.bad.clone() };
    Ok(Outcome { report, left })
}

/// The safety net that does not trust the schedules: every person whose dated change is due (as
/// of `at`) and not converged on the target (a missed firing). A change still pending is not
/// drift; a person the breaker holds is reported by the breaker.
pub fn overdue_drift(target: &str, known: &LedgerView, at: DateTime<Utc>) -> Vec<Drift> {
    let mut out = Vec::new();
    for (person, k) in known {
        let Some(record) = k.record.as_ref().filter(|r| r.held.is_none() && !r.events.is_empty()) else {
            continue;
        };
        let due = crate::ledger::Knowledge::at(Some(record), at);
        let id = |slot: &Option<(crate::contract::HrEvent, String)>| slot.as_ref().map(|(e, _)| e.event_id.to_string());
        let converged = |body: &Option<String>| body.as_deref().and_then(crate::ledger::body_event_id);
        if (id(&due.profile), id(&due.lifecycle)) == (converged(&record.last_event), converged(&record.lifecycle_event))
        {
            continue;
        }
        let what = if due.left() && record.status == PersonStatus::Active {
            "a leaver is overdue: access remains"
        } else {
            "a dated change is due"
        };
        out.push(Drift {
            person: person.clone(),
            target: target.to_string(),
            kind: DriftKind::TransitionOverdue,
            detail: format!("{what} and the target has not converged to it (a missed firing)"),
        });
    }
    out
}

/// The ledger's records against HR, where the target's own diff found nothing for the person.
pub fn ledger_drift(target: &str, snapshot: &Snapshot, known: &LedgerView, seen: &BTreeSet<&str>) -> Vec<Drift> {
    let mut out = Vec::new();
    for (person, k) in known {
        let Some(record) = &k.record else { continue };
        if seen.contains(person.as_str()) {
            continue;
        }
        let employed = snapshot.lists(person);
        let detail = match (employed, record.status) {
            (false, PersonStatus::Active) => "the ledger says active; HR no longer lists the person (no access found)",
            (true, PersonStatus::Disabled | PersonStatus::Deleted) => "the ledger says left; HR lists the person",
            _ => continue,
        };
        out.push(Drift {
            person: person.clone(),
            target: target.to_string(),
            kind: DriftKind::Ledger,
            detail: detail.into(),
        });
    }
    out
}
