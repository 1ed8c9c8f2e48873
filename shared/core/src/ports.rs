//! What every target shares about services: the operation names of call accounting, the
//! service error taxonomy (classified once, in the adapters) and the dead-letter queue port.
//! Each target's own port lives in its slice.

use std::fmt;

use async_trait::async_trait;
/// Which call failed, for error messages and call accounting: a service operation, named by
/// the service that owns it. Every target declares its own operations as constants (`op`
/// module of its port); the core only knows its own (queues and the ledger).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Op {
    /// The service (e.g. `sqs`, `dynamodb`), so two services' operations of one name differ.
    pub service: &'static str,
    /// The service's operation name.
    pub api: &'static str,
    /// The name shown in tables and errors (the operation name unless it says more).
    pub label: &'static str,
    /// Whether the call changes state.
    pub write: bool,
}

impl Op {
    /// A read-only operation.
    pub const fn read(service: &'static str, api: &'static str) -> Self {
        Self { service, api, label: api, write: false }
    }

    /// An operation that changes state.
    pub const fn write(service: &'static str, api: &'static str) -> Self {
        Self { service, api, label: api, write: true }
    }

    /// The same operation, shown under another label (e.g. `GetUserId(userName)`).
    pub const fn labelled(self, label: &'static str) -> Self {
        Self { label, ..self }
    }

    pub fn is_write(self) -> bool {
        self.write
    }

    /// The service's operation name.
    pub fn api_name(self) -> &'static str {
        self.api
    }

    /// The operation name, with what distinguishes two uses of one operation.
    pub fn label(self) -> &'static str {
        self.label
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api)
    }
}

/// The core's own operations (queues and the ledger).
pub mod op {
    use super::Op;

    pub const SEND_MESSAGE: Op = Op::write("sqs", "SendMessage");
    pub const SEND_MESSAGE_BATCH: Op = Op::write("sqs", "SendMessageBatch");
    pub const RECEIVE_MESSAGE: Op = Op::read("sqs", "ReceiveMessage");
    pub const DELETE_MESSAGE: Op = Op::write("sqs", "DeleteMessage");
    pub const CHANGE_MESSAGE_VISIBILITY: Op = Op::write("sqs", "ChangeMessageVisibility");
    pub const LEDGER_READ: Op = Op::read("dynamodb", "GetItem");
    pub const LEDGER_WRITE: Op = Op::write("dynamodb", "TransactWriteItems");
    pub const LEDGER_PUT: Op = Op::write("dynamodb", "PutItem");
    pub const LEDGER_UPDATE: Op = Op::write("dynamodb", "UpdateItem");
    pub const LEDGER_SCAN: Op = Op::read("dynamodb", "Scan");
    /// Operator-only (`jml audit`, `jml release-held`), never a function's.
    pub const LEDGER_QUERY: Op = Op::read("dynamodb", "Query");
    pub const LEDGER_DELETE: Op = Op::write("dynamodb", "DeleteItem");

    /// A pending change's one-time schedule (EventBridge Scheduler; also needs `iam:PassRole` on
    /// the scheduler's execution role, see [`crate::doctor::iam_actions`]).
    pub const CREATE_SCHEDULE: Op = Op::write("scheduler", "CreateSchedule");
    /// A rescinded or corrected change's schedule removed.
    pub const DELETE_SCHEDULE: Op = Op::write("scheduler", "DeleteSchedule");
    /// The schedules' calls (`jml_aws::EventBridgeSchedules`).
    pub const SCHEDULES: &[Op] = &[CREATE_SCHEDULE, DELETE_SCHEDULE];

    /// What every target function sends besides its service: the ledger's calls on an event's
    /// path (person record, lease, claims, inventory, breaker), parking in its DLQ and the
    /// schedules of pending changes. The ledger's Query and DeleteItem are the operator's
    /// (`jml audit`, `jml release-held`).
    pub const TARGET_FUNCTION: &[Op] =
        &[SEND_MESSAGE, LEDGER_READ, LEDGER_WRITE, LEDGER_PUT, LEDGER_UPDATE, CREATE_SCHEDULE, DELETE_SCHEDULE];
}

/// Why a ConflictException was raised (`ConflictExceptionReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictReason {
    UniquenessConstraintViolation,
    ConcurrentModification,
    Unspecified,
}

/// A service error, classified once in the adapter. Messages carry no personal data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{op}: ConflictException ({reason:?})")]
    Conflict { op: Op, reason: ConflictReason },
    #[error("{op}: ResourceNotFoundException")]
    NotFound { op: Op },
    #[error("{op}: ThrottlingException (retry after {retry_after_seconds:?} s)")]
    Throttled { op: Op, retry_after_seconds: Option<i32> },
    #[error("{op}: ValidationException: {message}")]
    Validation { op: Op, message: String },
    #[error("{op}: AccessDeniedException: {message}")]
    AccessDenied { op: Op, message: String },
    #[error("{op}: ServiceQuotaExceededException")]
    QuotaExceeded { op: Op },
    #[error("{op}: service unavailable: {message}")]
    Unavailable { op: Op, message: String },
}

impl ServiceError {
    /// Worth retrying later (the record goes back to the queue): throttling, 5xx, timeouts,
    /// concurrent modification, and access denied (a permissions fix makes it succeed; the
    /// queue's maxReceiveCount bounds the retries).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Unavailable { .. } | Self::AccessDenied { .. } => true,
            Self::Conflict { reason, .. } => *reason != ConflictReason::UniquenessConstraintViolation,
            Self::NotFound { .. } | Self::Validation { .. } | Self::QuotaExceeded { .. } => false,
        }
    }

    pub fn op(&self) -> Op {
        match self {
            Self::Conflict { op, .. }
            | Self::NotFound { op }
            | Self::Throttled { op, .. }
            | Self::Validation { op, .. }
            | Self::AccessDenied { op, .. }
            | Self::QuotaExceeded { op }
            | Self::Unavailable { op, .. } => *op,
        }
    }
}

/// A record that cannot succeed, with its reason, put aside for an operator (SQS DLQ).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedMessage {
    /// The original body, byte for byte.
    pub body: String,
    /// Stable machine-readable code, e.g. `InvalidEvent`, `UserNameOwnedByAnother`.
    pub error_code: String,
    /// Human-readable reason naming the field and rule (never personal values).
    pub reason: String,
    pub event_id: Option<String>,
    pub external_id: Option<String>,
    pub source_message_id: Option<String>,
    /// FIFO message group of the source record, reused on a FIFO DLQ.
    pub message_group: Option<String>,
}

/// One pending change's firing: at `at`, the person converges on one target to what is due
/// ([`crate::engine::Engine::fire`]). On AWS a one-time EventBridge Scheduler schedule that
/// sends [`Firing::body`] to the target's queue (`ActionAfterCompletion: DELETE`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Firing {
    pub at: chrono::DateTime<chrono::Utc>,
    /// The ledger target name.
    pub target: String,
    /// The person (`issuer#id`).
    pub person: String,
    /// Deterministic from target, person and instant: 1-64 of `[0-9a-zA-Z-_.]`, no personal
    /// data (a hash of the person).
    pub name: String,
}

impl Firing {
    pub fn new(target: &str, person: &str, at: chrono::DateTime<chrono::Utc>) -> Self {
        use sha2::Digest;
        let who = sha2::Sha256::digest(format!("{target}\n{person}").as_bytes());
        let hex: String = who.iter().take(12).map(|b| format!("{b:02x}")).collect();
        Self {
            at,
            target: target.to_string(),
            person: person.to_string(),
            name: format!("jml-{hex}-{}", at.timestamp()),
        }
    }

    /// The message the firing delivers: `{"type": "fire", "person": "issuer#id", "target": ..., "at": ...}`.
    pub fn body(&self) -> String {
        serde_json::json!({
            "type": "fire", "person": self.person, "target": self.target,
            "at": self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .to_string()
    }

    /// The firing a message is (`None`: not a firing, or a field missing or malformed): what
    /// `jml redrive` reads back from the schedules' dead-letter queue, whose messages are the
    /// schedule's input.
    pub fn parse(body: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        if v.get("type")?.as_str()? != "fire" {
            return None;
        }
        let person = v.get("person")?.as_str()?;
        crate::contract::ExternalId::from_key(person)?;
        let target = v.get("target")?.as_str()?;
        let at = chrono::DateTime::parse_from_rfc3339(v.get("at")?.as_str()?).ok()?.with_timezone(&chrono::Utc);
        Some(Self::new(target, person, at))
    }

    /// The person a firing message names (`None`: not a firing, or not a person key).
    pub fn person_of(body: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        if v.get("type")?.as_str()? != "fire" {
            return None;
        }
        let person = v.get("person")?.as_str()?;
        crate::contract::ExternalId::from_key(person).map(|_| person.to_string())
    }
}

/// Where pending changes are scheduled to fire (EventBridge Scheduler on AWS).
#[async_trait]
pub trait Schedules: Send + Sync {
    /// Makes sure the firing is scheduled (idempotent: the same name again changes nothing).
    async fn put(&self, firing: &Firing) -> Result<(), ServiceError>;
    /// Removes a firing no longer pending (absent: nothing to do).
    async fn delete(&self, firing: &Firing) -> Result<(), ServiceError>;
}

/// Where permanently failing records are parked.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    async fn park(&self, message: &ParkedMessage) -> Result<(), ServiceError>;
}
