//! The person ledger: one durable record per (person, target), keyed on the ExternalId, and an
//! audit trail. It makes resolution rename-safe, guards against stale and duplicate events, and
//! serialises concurrent deliveries for one person (optimistic concurrency on the last applied
//! event). The stale guard is a pure function here; storage is behind the [`Ledger`] port.

use std::cmp::Ordering;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::ServiceError;

/// The ledger target name of identity-sync. Every target keeps its own item and stale guard.
pub const IDENTITY_TARGET: &str = "identity-store";

/// What the target last did to the person's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonStatus {
    Active,
    Disabled,
    /// No account exists (a leaver for a person without one, or the account was deleted).
    Deleted,
}

impl PersonStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// One person's state for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonRecord {
    /// `ExternalId::key()`: `issuer#id`.
    pub person: String,
    pub target: String,
    /// The target's account id (Identity Store UserId).
    pub user_id: Option<String>,
    /// The account's current name (Identity Store userName).
    pub user_name: Option<String>,
    pub status: PersonStatus,
    pub last_event_id: String,
    pub last_occurred_at: DateTime<Utc>,
    /// The last applied HR event, as received: lets the loser of a concurrent race converge on
    /// the winner's state (it holds personal data, like the target itself; the table is encrypted).
    pub last_event: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One processed event, for "when was this person's access removed, everywhere?".
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub person: String,
    pub target: String,
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// `create`, `update`, `disable`, `stale`, ...
    pub decision: String,
    pub actions: usize,
    pub writes: usize,
    pub recorded_at: DateTime<Utc>,
    /// DynamoDB TTL (epoch seconds); `None` keeps the entry.
    pub expires_at: Option<i64>,
}

/// Durable storage of person records and audit entries.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// The person's record for a target (a strongly consistent read).
    async fn get(&self, person: &str, target: &str) -> Result<Option<PersonRecord>, ServiceError>;
    /// Atomically writes the record and its audit entry, only if the stored record's
    /// `last_event_id` is still `expected` (`None`: no record yet). `Ok(false)`: a concurrent
    /// delivery committed first; nothing was written.
    async fn commit(
        &self,
        record: &PersonRecord,
        expected: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<bool, ServiceError>;
    /// Writes an audit entry alone (a skipped event). Idempotent per (event, target).
    async fn append_audit(&self, audit: &AuditEntry) -> Result<(), ServiceError>;
    /// Every audit entry of a person, all targets, in HR time order.
    async fn audit_trail(&self, person: &str) -> Result<Vec<AuditEntry>, ServiceError>;
    /// Takes one of `limit` slots of a shared counter (`key`, e.g. a target's leavers this hour),
    /// atomically across every function instance. `Ok(false)`: the limit is reached.
    async fn take_slot(&self, key: &str, limit: u32, expires_at: i64) -> Result<bool, ServiceError>;
    /// Keeps an event that the breaker held, with its audit entry.
    async fn hold(&self, held: &HeldEvent, audit: &AuditEntry) -> Result<(), ServiceError>;
    /// Every event held for a target, oldest HR time first.
    async fn held(&self, target: &str) -> Result<Vec<HeldEvent>, ServiceError>;
    /// Forgets a held event (after it was released).
    async fn forget_held(&self, held: &HeldEvent) -> Result<(), ServiceError>;
    /// Claims an account name on a target for a person, atomically across every instance: the
    /// first claimant owns the name for good (a leaver keeps it: the account still exists).
    /// Returns the owner after the attempt (`person` itself when the claim is, or was, ours).
    /// It is the ownership record of services whose accounts carry no ExternalId (AppStream
    /// user pool users) and stops two people deriving one name (IAM, case-insensitively).
    async fn claim(&self, target: &str, name: &str, person: &str) -> Result<String, ServiceError>;
}

/// The key of a name claim: its own partition, never a person's (`issuer#id` has one `#`).
pub fn claim_key(target: &str, name: &str) -> String {
    format!("claim#{target}#{name}")
}

/// An event the blast-radius breaker held instead of applying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldEvent {
    pub target: String,
    pub person: String,
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    /// The event as received.
    pub body: String,
    pub held_at: DateTime<Utc>,
}

impl HeldEvent {
    /// Partition of a target's held events: one Query lists them all.
    pub fn partition(target: &str) -> String {
        format!("held#{target}")
    }

    pub fn sort_key(&self) -> String {
        format!(
            "{}#{}#{}",
            self.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            self.person,
            self.event_id
        )
    }
}

/// What to do with an event given the person's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    Apply,
    /// The same eventId as the last applied one: no writes at all.
    Duplicate,
    /// Older than the last applied event: skipped, audited as `stale`.
    Stale,
}

/// The stale guard. Events are ordered by `occurredAt`; two different events with the same
/// `occurredAt` are ordered by `eventId` (byte order), so every delivery order ends the same.
pub fn guard(event_id: &str, occurred_at: DateTime<Utc>, record: Option<&PersonRecord>) -> Guard {
    let Some(r) = record else { return Guard::Apply };
    if r.last_event_id == event_id {
        return Guard::Duplicate;
    }
    match occurred_at.cmp(&r.last_occurred_at).then_with(|| event_id.cmp(r.last_event_id.as_str())) {
        Ordering::Greater => Guard::Apply,
        Ordering::Less | Ordering::Equal => Guard::Stale,
    }
}

/// The audit sort key: chronological by HR time across targets, unique per (event, target).
pub fn audit_sort_key(audit: &AuditEntry) -> String {
    format!(
        "audit#{}#{}#{}",
        audit.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        audit.target,
        audit.event_id
    )
}

/// The person item's sort key.
pub fn record_sort_key(target: &str) -> String {
    format!("target#{target}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn record(id: &str, when: &str) -> PersonRecord {
        PersonRecord {
            person: "w#1".into(),
            target: IDENTITY_TARGET.into(),
            user_id: None,
            user_name: None,
            status: PersonStatus::Active,
            last_event_id: id.into(),
            last_occurred_at: at(when),
            last_event: None,
            updated_at: at(when),
        }
    }

    #[test]
    fn guard_orders_by_time_then_event_id() {
        let r = record("e-5", "2026-11-02T09:00:00Z");
        assert_eq!(guard("e-1", at("2026-11-01T00:00:00Z"), None), Guard::Apply);
        assert_eq!(guard("e-5", at("2026-11-02T09:00:00Z"), Some(&r)), Guard::Duplicate);
        assert_eq!(
            guard("e-5", at("2030-01-01T00:00:00Z"), Some(&r)),
            Guard::Duplicate,
            "same id is a duplicate whatever its time"
        );
        assert_eq!(guard("e-6", at("2026-11-02T10:00:00Z"), Some(&r)), Guard::Apply);
        assert_eq!(guard("e-6", at("2026-11-02T08:00:00Z"), Some(&r)), Guard::Stale);
        // Tie on occurredAt: the greater eventId wins, whichever arrives first.
        assert_eq!(guard("e-9", at("2026-11-02T09:00:00Z"), Some(&r)), Guard::Apply);
        assert_eq!(guard("e-1", at("2026-11-02T09:00:00Z"), Some(&r)), Guard::Stale);
    }

    #[test]
    fn audit_keys_sort_chronologically() {
        let mut a = AuditEntry {
            person: "w#1".into(),
            target: IDENTITY_TARGET.into(),
            event_id: "e".into(),
            event_type: "joiner".into(),
            occurred_at: at("2026-11-02T09:00:00Z"),
            decision: "create".into(),
            actions: 1,
            writes: 1,
            recorded_at: at("2026-11-02T09:00:01Z"),
            expires_at: None,
        };
        let k1 = audit_sort_key(&a);
        a.occurred_at = at("2026-11-20T17:00:00Z");
        assert!(audit_sort_key(&a) > k1);
        assert!(k1.starts_with("audit#2026-11-02T09:00:00.000Z#identity-store#"));
    }
}
