//! The HR event contract, v1 (README "HR event contract"; JSON Schema in `events/hr-event.schema.json`).
//!
//! Events are parsed from JSON into validated types in one pass that collects every problem with
//! the JSON path of the field and the rule it broke. Unknown fields are rejected (a typo such as
//! `"emial"` must not silently drop an attribute).

mod types;

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::dated::When;

pub use types::{
    DirectoryUserName, Email, EventId, ExternalId, ExternalIdPart, GroupName, InstanceId, MARKER_MAX, MARKER_PREFIX,
    Phone, Product, RESERVED_NAMES, StackName, Text, UserName,
};

/// `occurredAt`'s form, as the JSON Schema's pattern has it: RFC 3339 `date-time`, `T` between
/// date and time, seconds 00-59, an offset of at most 23:59.
static OCCURRED_AT: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(OCCURRED_AT_PATTERN).expect("static regex compiles"));

/// The pattern of `occurredAt` (also in `events/hr-event.schema.json`).
pub const OCCURRED_AT_PATTERN: &str = r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$";

/// The most managed groups one event may ask for (our limit; keeps one event's writes bounded).
pub const MAX_GROUPS: usize = 100;

/// What HR says happened to the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Joiner,
    Mover,
    Leaver,
    Rehire,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joiner => "joiner",
            Self::Mover => "mover",
            Self::Leaver => "leaver",
            Self::Rehire => "rehire",
        }
    }

    /// The EventBridge `detail-type` for this kind (`Joiner`, `Mover`, ...).
    pub fn detail_type(self) -> &'static str {
        match self {
            Self::Joiner => "Joiner",
            Self::Mover => "Mover",
            Self::Leaver => "Leaver",
            Self::Rehire => "Rehire",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "joiner" => Some(Self::Joiner),
            "mover" => Some(Self::Mover),
            "leaver" => Some(Self::Leaver),
            "rehire" => Some(Self::Rehire),
            _ => None,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated HR event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HrEvent {
    pub event_id: EventId,
    /// When HR recorded the change (the recorded time).
    pub occurred_at: DateTime<Utc>,
    pub external_id: ExternalId,
    pub change: Change,
    /// When it takes effect, as sent (`effectiveAt`, `effectiveDate`, or neither: at
    /// `occurredAt`); the instant is resolved with the person's time zone
    /// ([`crate::dated::effective_instant`]).
    pub when: crate::dated::When,
    /// A leaver marked `immediate` (for-cause): effective at `occurredAt` whatever its dates.
    pub immediate: bool,
}

/// A rescind: cancels the event `rescinds` of the same person. It holds when HR recorded it
/// before that event took effect ([`crate::dated::rescinds`]), whatever the delivery order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rescind {
    pub event_id: EventId,
    pub occurred_at: DateTime<Utc>,
    pub external_id: ExternalId,
    pub rescinds: EventId,
}

/// What the HR contract carries: a change to a person, or the rescind of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Event(Box<HrEvent>),
    Rescind(Rescind),
}

impl Message {
    pub fn event_id(&self) -> &EventId {
        match self {
            Self::Event(e) => &e.event_id,
            Self::Rescind(r) => &r.event_id,
        }
    }

    pub fn external_id(&self) -> &ExternalId {
        match self {
            Self::Event(e) => &e.external_id,
            Self::Rescind(r) => &r.external_id,
        }
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Self::Event(e) => e.occurred_at,
            Self::Rescind(r) => r.occurred_at,
        }
    }
}

impl HrEvent {
    pub fn kind(&self) -> EventKind {
        match &self.change {
            Change::Joiner(_) => EventKind::Joiner,
            Change::Mover(_) => EventKind::Mover,
            Change::Rehire(_) => EventKind::Rehire,
            Change::Leaver { .. } => EventKind::Leaver,
        }
    }

    /// The userName the event names, if any (a leaver may carry it as a resolution hint).
    pub fn user_name(&self) -> Option<&UserName> {
        match &self.change {
            Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p) => Some(&p.user_name),
            Change::Leaver { user_name, .. } => user_name.as_ref(),
        }
    }

    pub fn profile(&self) -> Option<&Profile> {
        match &self.change {
            Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p) => Some(p),
            Change::Leaver { .. } => None,
        }
    }
}

/// The change, with the data each kind needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Joiner(Profile),
    Mover(Profile),
    Rehire(Profile),
    /// A leaver needs only the ExternalId; a userName or directoryUserName, if sent, helps
    /// resolution.
    Leaver {
        user_name: Option<UserName>,
        directory_user_name: Option<DirectoryUserName>,
    },
}

/// The complete desired state of a person (joiner, mover, rehire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub user_name: UserName,
    pub display_name: Text,
    pub name: PersonName,
    pub email: Email,
    pub phone: Option<Phone>,
    pub address: Option<Address>,
    pub title: Option<Text>,
    pub user_type: Option<Text>,
    pub preferred_language: Option<Text>,
    pub locale: Option<Text>,
    pub timezone: Option<Text>,
    pub enterprise: Enterprise,
    /// The complete desired set of managed groups.
    pub groups: BTreeSet<GroupName>,
    /// The person's Active Directory user name (user-based subscriptions), if HR sends it.
    pub directory_user_name: Option<DirectoryUserName>,
    /// The complete desired set of user-based subscriptions (absent: none).
    pub subscriptions: Vec<Subscription>,
    /// The complete desired set of AppStream 2.0 stacks (`appstreamStacks`); absent: the
    /// deployment's department rule decides (`APPSTREAM_STACKS_BY_DEPARTMENT`).
    pub appstream_stacks: Option<BTreeSet<StackName>>,
}

/// One desired product subscription and the instances the person uses it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub product: Product,
    pub instance_ids: BTreeSet<InstanceId>,
}

/// The most AppStream stacks one event may ask for (one BatchAssociateUserStack call).
pub const MAX_STACKS: usize = 25;
/// The most subscriptions (and instances per subscription) one event may ask for.
pub const MAX_SUBSCRIPTIONS: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonName {
    pub given_name: Text,
    pub family_name: Text,
    pub middle_name: Option<Text>,
    pub honorific_prefix: Option<Text>,
    pub honorific_suffix: Option<Text>,
    pub formatted: Option<Text>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Address {
    pub street_address: Option<Text>,
    pub locality: Option<Text>,
    pub region: Option<Text>,
    pub postal_code: Option<Text>,
    pub country: Option<Text>,
    pub formatted: Option<Text>,
}

/// The `aws:identitystore:enterprise` extension attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enterprise {
    pub employee_number: Option<Text>,
    pub cost_center: Option<Text>,
    pub organization: Option<Text>,
    pub division: Option<Text>,
    pub department: Option<Text>,
    /// The manager's userName; resolved to their UserId when applied.
    pub manager: Option<UserName>,
}

/// One broken rule: the JSON path of the field and the rule, never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// Every problem found in one event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidEvent {
    pub errors: Vec<FieldError>,
}

impl InvalidEvent {
    pub fn one(field: &str, rule: impl Into<String>) -> Self {
        Self { errors: vec![FieldError { field: field.to_string(), rule: rule.into() }] }
    }

    /// True when some error is about `field` (exact path).
    pub fn mentions(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "invalid HR event: {}", parts.join("; "))
    }
}

/// Parses and validates one HR event from its JSON text.
pub fn parse_event(json: &str) -> Result<HrEvent, InvalidEvent> {
    let value: Value = serde_json::from_str(json).map_err(|e| {
        InvalidEvent::one(
            "$",
            format!("must be a JSON object ({} at line {} column {})", syntax_kind(&e), e.line(), e.column()),
        )
    })?;
    event_from_value(&value)
}

/// Whether a body is a rescind (`"type": "rescind"`), whatever else is wrong with it.
pub fn is_rescind(json: &str) -> bool {
    serde_json::from_str::<Value>(json).ok().and_then(|v| v.get("type").and_then(Value::as_str).map(|t| t == "rescind"))
        == Some(true)
}

/// Parses and validates one HR message: a change to a person, or a rescind.
pub fn parse_message(json: &str) -> Result<Message, InvalidEvent> {
    let value: Value = serde_json::from_str(json).map_err(|e| {
        InvalidEvent::one(
            "$",
            format!("must be a JSON object ({} at line {} column {})", syntax_kind(&e), e.line(), e.column()),
        )
    })?;
    message_from_value(&value)
}

/// [`parse_message`] of an already parsed value.
pub fn message_from_value(value: &Value) -> Result<Message, InvalidEvent> {
    match value.get("type").and_then(Value::as_str) {
        Some("rescind") => rescind_from_value(value).map(Message::Rescind),
        _ => event_from_value(value).map(|e| Message::Event(Box::new(e))),
    }
}

/// A rescind: `eventId`, `type: "rescind"`, `occurredAt`, `person.externalId` and `rescinds`
/// (the eventId it cancels), nothing else.
fn rescind_from_value(value: &Value) -> Result<Rescind, InvalidEvent> {
    let Some(obj) = value.as_object() else {
        return Err(InvalidEvent::one("$", format!("must be a JSON object (got {})", kind_of(value))));
    };
    let mut c = Collector::default();
    c.unknown_fields(obj, "", &["eventId", "type", "occurredAt", "person", "rescinds"]);
    let event_id = c.required(obj, "", "eventId").and_then(|v| c.string(v, "eventId", EventId::parse));
    let occurred_at = c.required(obj, "", "occurredAt").and_then(|v| c.string(v, "occurredAt", parse_instant));
    let person = c.required(obj, "", "person").and_then(|v| c.object(v, "person"));
    if let Some(p) = person {
        c.unknown_fields(p, "person.", &["externalId"]);
    }
    let external_id =
        person.and_then(|p| c.required(p, "person.", "externalId")).and_then(|v| c.external_id(v, "person.externalId"));
    let rescinds = c.required(obj, "", "rescinds").and_then(|v| c.string(v, "rescinds", EventId::parse));
    if let (Some(a), Some(b)) = (&event_id, &rescinds)
        && a == b
    {
        c.push("rescinds", "a rescind cannot rescind itself");
    }
    match (event_id, occurred_at, external_id, rescinds) {
        (Some(event_id), Some(occurred_at), Some(external_id), Some(rescinds)) if c.errors.is_empty() => {
            Ok(Rescind { event_id, occurred_at, external_id, rescinds })
        }
        _ => {
            if c.errors.is_empty() {
                c.push("$", "is not a valid rescind");
            }
            Err(InvalidEvent { errors: c.errors })
        }
    }
}

/// An RFC 3339 date-time with offset, as the schema's pattern has it.
fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    OCCURRED_AT
        .is_match(s)
        .then(|| DateTime::parse_from_rfc3339(s).ok())
        .flatten()
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| "must be an RFC 3339 date-time with offset, e.g. 2026-11-02T09:00:00Z".to_string())
}

/// A leaver whose optional fields do not validate, read as a bare leaver (id, time, ExternalId):
/// a leaver is never forgotten (stored) nor refused (received) because of a hint or a field it
/// does not need, such as a malformed phone number; only what a leaver needs must be valid.
pub fn bare_leaver(json: &str) -> Option<HrEvent> {
    let v: Value = serde_json::from_str(json).ok()?;
    if v.get("type").and_then(Value::as_str) != Some("leaver") {
        return None;
    }
    let mut minimal = serde_json::json!({
        "eventId": v.get("eventId")?.clone(), "type": "leaver", "occurredAt": v.get("occurredAt")?.clone(),
        "person": {"externalId": v.get("person")?.get("externalId")?.clone()},
    });
    // Its dates decide when access ends: kept when they validate (else the leaver is immediate:
    // a leaver is never delayed by a field that cannot be read).
    for k in ["effectiveAt", "effectiveDate", "immediate"] {
        if let (Some(value), Some(m)) = (v.get(k), minimal.as_object_mut()) {
            m.insert(k.to_string(), value.clone());
        }
    }
    event_from_value(&minimal).ok().or_else(|| {
        let m = minimal.as_object_mut()?;
        for k in ["effectiveAt", "effectiveDate", "immediate"] {
            m.remove(k);
        }
        event_from_value(&minimal).ok()
    })
}

/// What every delivery path applies (hr-ingest, the targets, publish, redrive): the event, or for
/// a leaver whose optional fields do not validate the bare leaver with those fields' errors (to
/// report, never to park on).
pub fn parse_deliverable(json: &str) -> Result<(HrEvent, Option<InvalidEvent>), InvalidEvent> {
    match parse_event(json) {
        Ok(e) => Ok((e, None)),
        Err(invalid) => match bare_leaver(json) {
            Some(bare) => Ok((bare, Some(invalid))),
            None => Err(invalid),
        },
    }
}

fn syntax_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "JSON syntax error",
        serde_json::error::Category::Data => "data error",
        serde_json::error::Category::Io => "read error",
    }
}

/// Extracts the ExternalId key (`issuer#id`) from an event that may be otherwise invalid, so a
/// parked record can still be traced to a person. `None` when it cannot be read.
pub fn external_id_hint(json: &str) -> Option<String> {
    external_id_hint_value(&serde_json::from_str(json).ok()?)
}

/// [`external_id_hint`] of an already parsed value: the key when `person.externalId` passes the
/// contract's rules on its own, whatever else is wrong with the event.
pub fn external_id_hint_value(v: &Value) -> Option<String> {
    let mut c = Collector::default();
    let id = c.external_id(v.get("person")?.get("externalId")?, "person.externalId")?;
    Some(id.key())
}

/// Validates an already parsed JSON value (e.g. an EventBridge `detail`).
pub fn event_from_value(value: &Value) -> Result<HrEvent, InvalidEvent> {
    let Some(obj) = value.as_object() else {
        return Err(InvalidEvent::one("$", format!("must be a JSON object (got {})", kind_of(value))));
    };
    let mut c = Collector::default();
    c.unknown_fields(
        obj,
        "",
        &[
            "eventId",
            "type",
            "occurredAt",
            "effectiveAt",
            "effectiveDate",
            "immediate",
            "person",
            "groups",
            "subscriptions",
            "appstreamStacks",
        ],
    );
    let event_id = c.required(obj, "", "eventId").and_then(|v| c.string(v, "eventId", EventId::parse));
    let kind = c.required(obj, "", "type").and_then(|v| match v.as_str() {
        Some(s) => EventKind::parse(s).or_else(|| {
            c.push(
                "type",
                if s == "rescind" {
                    "rescind is not a change to a person: read it as a message (parse_message)"
                } else {
                    "must be one of joiner, mover, leaver, rehire, rescind"
                },
            );
            None
        }),
        None => {
            c.push("type", format!("must be a string (got {})", kind_of(v)));
            None
        }
    });
    let occurred_at = c.required(obj, "", "occurredAt").and_then(|v| {
        // The schema's pattern (no space separator, no leap second), then the calendar.
        c.string(v, "occurredAt", parse_instant)
    });
    let person = c.required(obj, "", "person").and_then(|v| c.object(v, "person"));
    let external_id =
        person.and_then(|p| c.required(p, "person.", "externalId")).and_then(|v| c.external_id(v, "person.externalId"));
    let when = c.when(obj);
    let immediate = match obj.get("immediate") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) if kind == Some(EventKind::Leaver) => true,
        Some(Value::Bool(true)) => {
            c.push("immediate", "only a leaver takes effect immediately (a for-cause termination)");
            false
        }
        Some(v) => {
            c.push("immediate", format!("must be a boolean (got {})", kind_of(v)));
            false
        }
    };

    let change = match (kind, person) {
        (Some(EventKind::Leaver), Some(p)) => {
            // A leaver may carry the full record: every field present is validated as a
            // joiner's (a 50 KB displayName or an e-mail of 12345 is a bad event, parked with
            // its path), none is required, and none but the resolution hints is applied.
            c.unknown_fields(p, "person.", PERSON_FIELDS);
            let fields = c.person_fields(p, false);
            if !matches!(obj.get("groups"), None | Some(Value::Null)) {
                c.groups(obj.get("groups"));
            }
            c.subscriptions(obj.get("subscriptions"));
            c.stacks(obj.get("appstreamStacks"));
            Some(Change::Leaver { user_name: fields.user_name, directory_user_name: fields.directory_user_name })
        }
        (Some(kind), Some(p)) => {
            let groups = c.groups(obj.get("groups"));
            let subscriptions = c.subscriptions(obj.get("subscriptions"));
            let stacks = c.stacks(obj.get("appstreamStacks"));
            c.profile(p, groups, subscriptions)
                .zip(stacks)
                .map(|(mut profile, stacks)| {
                    profile.appstream_stacks = stacks;
                    profile
                })
                .map(|profile| match kind {
                    EventKind::Joiner => Change::Joiner(profile),
                    EventKind::Mover => Change::Mover(profile),
                    EventKind::Rehire => Change::Rehire(profile),
                    EventKind::Leaver => Change::Leaver { user_name: None, directory_user_name: None },
                })
        }
        _ => None,
    };

    match (event_id, occurred_at, external_id, change) {
        (Some(event_id), Some(occurred_at), Some(external_id), Some(change)) if c.errors.is_empty() => {
            Ok(HrEvent { event_id, occurred_at, external_id, change, when: when.unwrap_or(When::Recorded), immediate })
        }
        _ => {
            if c.errors.is_empty() {
                c.push("$", "is not a valid HR event");
            }
            Err(InvalidEvent { errors: c.errors })
        }
    }
}

const PERSON_FIELDS: &[&str] = &[
    "externalId",
    "userName",
    "displayName",
    "name",
    "email",
    "phone",
    "address",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "enterprise",
    "directoryUserName",
];

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `effectiveDate`'s form: a calendar date, `YYYY-MM-DD`.
static EFFECTIVE_DATE: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$").expect("static regex compiles"));

impl Collector {
    /// `effectiveAt` or `effectiveDate` (never both); `None` when neither is valid.
    fn when(&mut self, obj: &Map<String, Value>) -> Option<When> {
        let at = obj.get("effectiveAt").and_then(|v| self.string(v, "effectiveAt", parse_instant));
        let date = obj.get("effectiveDate").and_then(|v| {
            self.string(v, "effectiveDate", |s| {
                EFFECTIVE_DATE
                    .is_match(s)
                    .then(|| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    .flatten()
                    .ok_or_else(|| {
                        "must be a calendar date YYYY-MM-DD (the person's local date), e.g. 2026-12-31".to_string()
                    })
            })
        });
        match (obj.contains_key("effectiveAt"), obj.contains_key("effectiveDate")) {
            (true, true) => {
                self.push("effectiveDate", "send effectiveAt or effectiveDate, not both");
                None
            }
            _ => Some(match (at, date) {
                (Some(at), _) => When::At(at),
                (_, Some(date)) => When::Date(date),
                _ => When::Recorded,
            }),
        }
    }
}

/// The person fields of an event, each `None` when absent or invalid (see
/// `Collector::person_fields`).
struct PersonFields {
    user_name: Option<UserName>,
    display_name: Option<Text>,
    name: Option<PersonName>,
    email: Option<Email>,
    phone: Option<Phone>,
    address: Option<Address>,
    title: Option<Text>,
    user_type: Option<Text>,
    preferred_language: Option<Text>,
    locale: Option<Text>,
    timezone: Option<Text>,
    enterprise: Option<Enterprise>,
    directory_user_name: Option<DirectoryUserName>,
}

#[derive(Default)]
struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    fn push(&mut self, field: &str, rule: impl Into<String>) {
        self.errors.push(FieldError { field: field.to_string(), rule: rule.into() });
    }

    fn unknown_fields(&mut self, obj: &Map<String, Value>, prefix: &str, known: &[&str]) {
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                self.push(&format!("{prefix}{key}"), "is not a field of the HR event contract v1");
            }
        }
    }

    fn required<'v>(&mut self, obj: &'v Map<String, Value>, prefix: &str, key: &str) -> Option<&'v Value> {
        match obj.get(key) {
            Some(Value::Null) | None => {
                self.push(&format!("{prefix}{key}"), "is required");
                None
            }
            Some(v) => Some(v),
        }
    }

    fn object<'v>(&mut self, v: &'v Value, field: &str) -> Option<&'v Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.push(field, format!("must be an object (got {})", kind_of(v)));
        }
        o
    }

    fn string<T>(&mut self, v: &Value, field: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        match v {
            Value::String(s) => match parse(s) {
                Ok(t) => Some(t),
                Err(rule) => {
                    self.push(field, rule);
                    None
                }
            },
            Value::Array(_) => {
                self.push(
                    field,
                    "must be a single string, not an array (the Identity Store keeps one value for this attribute)",
                );
                None
            }
            other => {
                self.push(field, format!("must be a string (got {})", kind_of(other)));
                None
            }
        }
    }

    /// A person field: with `required`, absent or null is an error; otherwise it is `None`.
    fn field<'v>(&mut self, p: &'v Map<String, Value>, key: &str, required: bool) -> Option<&'v Value> {
        if required { self.required(p, "person.", key) } else { p.get(key).filter(|v| !v.is_null()) }
    }

    /// An optional field: absent or null is `None`; present must be valid.
    fn optional<T>(
        &mut self,
        obj: &Map<String, Value>,
        prefix: &str,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => self.string(v, &format!("{prefix}{key}"), parse),
        }
    }

    fn external_id(&mut self, v: &Value, field: &str) -> Option<ExternalId> {
        let o = self.object(v, field)?;
        let prefix = format!("{field}.");
        self.unknown_fields(o, &prefix, &["issuer", "id"]);
        let issuer = self
            .required(o, &prefix, "issuer")
            .and_then(|v| self.string(v, &format!("{prefix}issuer"), ExternalIdPart::parse));
        let id =
            self.required(o, &prefix, "id").and_then(|v| self.string(v, &format!("{prefix}id"), ExternalIdPart::parse));
        Some(ExternalId { issuer: issuer?, id: id? })
    }

    fn groups(&mut self, v: Option<&Value>) -> Option<BTreeSet<GroupName>> {
        let Some(v) = v else {
            self.push("groups", "is required for joiner, mover and rehire (the complete desired set; [] for none)");
            return None;
        };
        let Some(items) = v.as_array() else {
            self.push("groups", format!("must be an array of group names (got {})", kind_of(v)));
            return None;
        };
        if items.len() > MAX_GROUPS {
            self.push("groups", format!("must list at most {MAX_GROUPS} groups (got {})", items.len()));
            return None;
        }
        let mut set = BTreeSet::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("groups[{i}]");
            match self.string(item, &field, GroupName::parse) {
                Some(g) => {
                    if !set.insert(g) {
                        self.push(&field, "is listed twice");
                        ok = false;
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(set)
    }

    /// `Some(None)`: absent (the department rule decides); `None`: invalid.
    fn stacks(&mut self, v: Option<&Value>) -> Option<Option<BTreeSet<StackName>>> {
        let items = match v {
            None | Some(Value::Null) => return Some(None),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.push("appstreamStacks", format!("must be an array of stack names (got {})", kind_of(other)));
                return None;
            }
        };
        if items.len() > MAX_STACKS {
            self.push("appstreamStacks", format!("must list at most {MAX_STACKS} stacks (got {})", items.len()));
            return None;
        }
        let mut set = BTreeSet::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("appstreamStacks[{i}]");
            match self.string(item, &field, StackName::parse) {
                Some(s) => {
                    if !set.insert(s) {
                        self.push(&field, "is listed twice");
                        ok = false;
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(Some(set))
    }

    fn subscriptions(&mut self, v: Option<&Value>) -> Option<Vec<Subscription>> {
        let items = match v {
            None | Some(Value::Null) => return Some(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.push(
                    "subscriptions",
                    format!("must be an array of {{product, instanceIds}} (got {})", kind_of(other)),
                );
                return None;
            }
        };
        if items.len() > MAX_SUBSCRIPTIONS {
            self.push("subscriptions", format!("must list at most {MAX_SUBSCRIPTIONS} products"));
            return None;
        }
        let mut out: Vec<Subscription> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("subscriptions[{i}]");
            let Some(o) = self.object(item, &field) else {
                ok = false;
                continue;
            };
            let prefix = format!("{field}.");
            self.unknown_fields(o, &prefix, &["product", "instanceIds"]);
            let product = self
                .required(o, &prefix, "product")
                .and_then(|v| self.string(v, &format!("{field}.product"), Product::parse));
            let mut instance_ids = BTreeSet::new();
            match o.get("instanceIds") {
                Some(Value::Array(ids)) if !ids.is_empty() && ids.len() <= MAX_SUBSCRIPTIONS => {
                    for (j, id) in ids.iter().enumerate() {
                        let f = format!("{field}.instanceIds[{j}]");
                        match self.string(id, &f, InstanceId::parse) {
                            Some(id) => {
                                if !instance_ids.insert(id) {
                                    self.push(&f, "is listed twice");
                                    ok = false;
                                }
                            }
                            None => ok = false,
                        }
                    }
                }
                _ => {
                    self.push(
                        &format!("{field}.instanceIds"),
                        format!("must list 1 to {MAX_SUBSCRIPTIONS} EC2 instance ids"),
                    );
                    ok = false;
                }
            }
            match product {
                Some(p) if out.iter().any(|s| s.product == p) => {
                    self.push(&format!("{field}.product"), "is listed twice");
                    ok = false;
                }
                Some(product) => out.push(Subscription { product, instance_ids }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn profile(
        &mut self,
        p: &Map<String, Value>,
        groups: Option<BTreeSet<GroupName>>,
        subscriptions: Option<Vec<Subscription>>,
    ) -> Option<Profile> {
        self.unknown_fields(p, "person.", PERSON_FIELDS);
        let f = self.person_fields(p, true);
        Some(Profile {
            user_name: f.user_name?,
            display_name: f.display_name?,
            name: f.name?,
            email: f.email?,
            phone: f.phone,
            address: f.address,
            title: f.title,
            user_type: f.user_type,
            preferred_language: f.preferred_language,
            locale: f.locale,
            timezone: f.timezone,
            enterprise: f.enterprise.unwrap_or_default(),
            groups: groups?,
            directory_user_name: f.directory_user_name,
            subscriptions: subscriptions?,
            appstream_stacks: None,
        })
    }

    /// Every person field but the ExternalId, each validated when present (absent or `null`:
    /// `None`); with `required`, the ones a joiner, mover and rehire need are required. A field
    /// that is present and invalid is an error (and `None`).
    fn person_fields(&mut self, p: &Map<String, Value>, required: bool) -> PersonFields {
        const P: &str = "person.";
        let user_name =
            self.field(p, "userName", required).and_then(|v| self.string(v, "person.userName", UserName::parse));
        let display_name =
            self.field(p, "displayName", required).and_then(|v| self.string(v, "person.displayName", Text::parse));
        let name = self
            .field(p, "name", required)
            .and_then(|v| self.object(v, "person.name"))
            .and_then(|n| self.person_name(n));
        let email = self.field(p, "email", required).and_then(|v| self.string(v, "person.email", Email::parse));
        let address = match p.get("address") {
            None | Some(Value::Null) => None,
            Some(v) => self.object(v, "person.address").map(|a| self.address(a)),
        };
        let enterprise = match p.get("enterprise") {
            None | Some(Value::Null) => None,
            Some(v) => self.object(v, "person.enterprise").map(|e| self.enterprise(e)),
        };
        PersonFields {
            user_name,
            display_name,
            name,
            email,
            phone: self.optional(p, P, "phone", Phone::parse),
            address,
            title: self.optional(p, P, "title", Text::parse),
            user_type: self.optional(p, P, "userType", Text::parse),
            preferred_language: self.optional(p, P, "preferredLanguage", Text::parse),
            locale: self.optional(p, P, "locale", Text::parse),
            timezone: self.optional(p, P, "timezone", Text::parse),
            enterprise,
            directory_user_name: self.optional(p, P, "directoryUserName", DirectoryUserName::parse),
        }
    }

    fn person_name(&mut self, n: &Map<String, Value>) -> Option<PersonName> {
        const P: &str = "person.name.";
        self.unknown_fields(
            n,
            P,
            &["givenName", "familyName", "middleName", "honorificPrefix", "honorificSuffix", "formatted"],
        );
        let given = self.required(n, P, "givenName").and_then(|v| self.string(v, "person.name.givenName", Text::parse));
        let family =
            self.required(n, P, "familyName").and_then(|v| self.string(v, "person.name.familyName", Text::parse));
        let middle_name = self.optional(n, P, "middleName", Text::parse);
        let honorific_prefix = self.optional(n, P, "honorificPrefix", Text::parse);
        let honorific_suffix = self.optional(n, P, "honorificSuffix", Text::parse);
        let formatted = self.optional(n, P, "formatted", Text::parse);
        Some(PersonName {
            given_name: given?,
            family_name: family?,
            middle_name,
            honorific_prefix,
            honorific_suffix,
            formatted,
        })
    }

    fn address(&mut self, a: &Map<String, Value>) -> Address {
        const P: &str = "person.address.";
        self.unknown_fields(a, P, &["streetAddress", "locality", "region", "postalCode", "country", "formatted"]);
        Address {
            street_address: self.optional(a, P, "streetAddress", Text::parse),
            locality: self.optional(a, P, "locality", Text::parse),
            region: self.optional(a, P, "region", Text::parse),
            postal_code: self.optional(a, P, "postalCode", Text::parse),
            country: self.optional(a, P, "country", Text::parse),
            formatted: self.optional(a, P, "formatted", Text::parse),
        }
    }

    fn enterprise(&mut self, e: &Map<String, Value>) -> Enterprise {
        const P: &str = "person.enterprise.";
        self.unknown_fields(
            e,
            P,
            &["employeeNumber", "costCenter", "organization", "division", "department", "manager"],
        );
        Enterprise {
            employee_number: self.optional(e, P, "employeeNumber", Text::parse),
            cost_center: self.optional(e, P, "costCenter", Text::parse),
            organization: self.optional(e, P, "organization", Text::parse),
            division: self.optional(e, P, "division", Text::parse),
            department: self.optional(e, P, "department", Text::parse),
            manager: self.optional(e, P, "manager", UserName::parse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOINER: &str = r#"{
        "eventId": "e-1", "type": "joiner", "occurredAt": "2026-11-02T09:00:00+01:00",
        "person": {
            "externalId": {"issuer": "workday", "id": "100234"},
            "userName": "ada", "displayName": "Ada L",
            "name": {"givenName": "Ada", "familyName": "L"},
            "email": "ada@example.com",
            "enterprise": {"department": "R&D", "manager": "grace"}
        },
        "groups": ["jml-eng", "jml-all"]
    }"#;

    #[test]
    fn parses_a_joiner_and_normalises_time_to_utc() {
        let e = parse_event(JOINER).unwrap();
        assert_eq!(e.kind(), EventKind::Joiner);
        assert_eq!(e.occurred_at.to_rfc3339(), "2026-11-02T08:00:00+00:00");
        assert_eq!(e.external_id.key(), "workday#100234");
        let p = e.profile().unwrap();
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.enterprise.manager.as_ref().map(UserName::as_str), Some("grace"));
    }

    #[test]
    fn leaver_needs_only_the_external_id() {
        let e = parse_event(r#"{"eventId":"e-2","type":"leaver","occurredAt":"2026-11-02T09:00:00Z","person":{"externalId":{"issuer":"w","id":"1"}}}"#).unwrap();
        assert_eq!(e.change, Change::Leaver { user_name: None, directory_user_name: None });
    }

    #[test]
    fn collects_every_error_with_its_path() {
        let err = parse_event(
            r#"{"eventId":"","type":"fired","occurredAt":"yesterday","person":{"externalId":{"issuer":"w"}}}"#,
        )
        .unwrap_err();
        for f in ["eventId", "type", "occurredAt", "person.externalId.id"] {
            assert!(err.mentions(f), "expected an error on {f}: {err}");
        }
    }

    #[test]
    fn errors_never_echo_personal_values() {
        let err = parse_event(&JOINER.replace("ada@example.com", "ada at example")).unwrap_err();
        assert!(err.mentions("person.email"));
        assert!(!err.to_string().contains("ada at example"));
    }

    fn with(edit: impl FnOnce(&mut Value)) -> Result<HrEvent, InvalidEvent> {
        let mut v: Value = serde_json::from_str(JOINER).unwrap();
        edit(&mut v);
        event_from_value(&v)
    }

    #[test]
    fn dates_are_read_and_each_broken_rule_is_named_by_field() {
        assert_eq!(parse_event(JOINER).unwrap().when, When::Recorded);
        let at = with(|v| v["effectiveAt"] = "2027-01-04T09:00:00-05:00".into()).unwrap();
        assert_eq!(
            at.when,
            When::At(DateTime::parse_from_rfc3339("2027-01-04T14:00:00Z").unwrap().with_timezone(&Utc))
        );
        let date = with(|v| v["effectiveDate"] = "2027-01-04".into()).unwrap();
        assert_eq!(date.when, When::Date(chrono::NaiveDate::from_ymd_opt(2027, 1, 4).unwrap()));
        let both = with(|v| {
            v["effectiveAt"] = "2027-01-04T09:00:00Z".into();
            v["effectiveDate"] = "2027-01-04".into();
        })
        .unwrap_err();
        assert!(both.to_string().contains("effectiveDate: send effectiveAt or effectiveDate, not both"), "{both}");
        for bad in ["2027-1-4", "2027-02-30", "04/01/2027"] {
            let e = with(|v| v["effectiveDate"] = bad.into()).unwrap_err();
            assert!(e.to_string().contains("effectiveDate: must be a calendar date YYYY-MM-DD"), "{bad}: {e}");
        }
        let e = with(|v| v["immediate"] = true.into()).unwrap_err();
        assert!(e.to_string().contains("immediate: only a leaver"), "{e}");
        let leaver = parse_event(r#"{"eventId":"l","type":"leaver","occurredAt":"2026-11-20T17:00:00Z","immediate":true,"effectiveDate":"2026-12-31","person":{"externalId":{"issuer":"w","id":"1"}}}"#).unwrap();
        assert!(leaver.immediate);
    }

    #[test]
    fn a_rescind_is_a_message_of_its_own_with_nothing_but_what_it_needs() {
        let ok = r#"{"eventId":"r","type":"rescind","occurredAt":"2026-11-20T17:00:00Z","rescinds":"l","person":{"externalId":{"issuer":"w","id":"1"}}}"#;
        let Message::Rescind(r) = parse_message(ok).unwrap() else { panic!("not a rescind") };
        assert_eq!((r.rescinds.as_str(), r.external_id.key().as_str()), ("l", "w#1"));
        assert!(is_rescind(ok) && !is_rescind(JOINER));
        assert!(matches!(parse_message(JOINER).unwrap(), Message::Event(_)));
        let missing = parse_message(&ok.replace(r#""rescinds":"l","#, "")).unwrap_err();
        assert!(missing.to_string().contains("rescinds"), "{missing}");
        let extra = parse_message(&ok.replace(r#""rescinds":"l","#, r#""rescinds":"l","groups":[],"#)).unwrap_err();
        assert!(extra.to_string().contains("groups"), "{extra}");
        let itself = parse_message(&ok.replace(r#""rescinds":"l""#, r#""rescinds":"r""#)).unwrap_err();
        assert!(itself.to_string().contains("cannot rescind itself"), "{itself}");
        // Read as an event, a rescind names what to do instead.
        assert!(parse_event(ok).unwrap_err().to_string().contains("parse_message"));
    }
}
