//! An in-memory ledger with DynamoDB's semantics for what jml-sync uses: strongly consistent
//! reads, an all-or-nothing conditional commit of record + audit, idempotent audit puts.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use crate::ledger::{Audit, AuditEntry, Breaker, HeldEvent, Inventory, Leased, Leases, PersonRecord, Records};
use crate::ports::ServiceError;

/// HR time, then two names: the order the audit trail and held events are listed in.
type Ordered = (DateTime<Utc>, String, String);

fn audit_key(a: &AuditEntry) -> (String, Ordered) {
    (a.person.clone(), (a.occurred_at, a.target.clone(), a.event_id.clone()))
}

fn held_key(h: &HeldEvent) -> (String, Ordered) {
    (h.target.clone(), (h.occurred_at, h.person.clone(), h.event_id.clone()))
}

#[derive(Debug, Default)]
struct State {
    records: BTreeMap<(String, String), PersonRecord>,
    /// By person, then HR time, target and event (the audit trail's order).
    audits: BTreeMap<(String, Ordered), AuditEntry>,
    reads: usize,
    writes: usize,
    fail_commits: usize,
    fail_audits: usize,
    windows: BTreeMap<String, (Vec<(String, i64)>, u64)>,
    decisions: BTreeMap<(String, String), String>,
    /// By target, then HR time, person and event (oldest first).
    held: BTreeMap<(String, Ordered), HeldEvent>,
    /// By (target, name).
    claims: BTreeMap<(String, String), String>,
    inventory: BTreeMap<(String, String), std::collections::BTreeSet<String>>,
    leases: BTreeMap<(String, String), (String, i64)>,
    variants: BTreeMap<String, std::collections::BTreeSet<String>>,
}

#[derive(Debug, Default)]
pub struct SimLedger {
    state: Mutex<State>,
}

/// DynamoDB calls made: (reads, writes). A commit is one write (one TransactWriteItems).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerCalls {
    pub reads: usize,
    pub writes: usize,
}

fn unavailable() -> ServiceError {
    ServiceError::Unavailable { op: crate::ports::op::LEDGER_WRITE, message: "injected".to_string() }
}

impl SimLedger {
    /// The owner of a name claim.
    pub fn claim_owner(&self, target: &str, name: &str) -> Option<String> {
        self.lock().claims.get(&(target.to_string(), name.to_string())).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn calls(&self) -> LedgerCalls {
        let s = self.lock();
        LedgerCalls { reads: s.reads, writes: s.writes }
    }

    pub fn reset_calls(&self) {
        let mut s = self.lock();
        s.reads = 0;
        s.writes = 0;
    }

    /// The next `n` commits fail as if DynamoDB were unavailable (nothing written).
    pub fn fail_next_commits(&self, n: usize) {
        self.lock().fail_commits = n;
    }

    /// The next `n` audit-only writes fail.
    pub fn fail_next_audits(&self, n: usize) {
        self.lock().fail_audits = n;
    }

    pub fn record(&self, person: &str, target: &str) -> Option<PersonRecord> {
        self.lock().records.get(&(person.to_string(), target.to_string())).cloned()
    }

    /// A person's inventory on a target, for inspection.
    pub fn inventory(&self, person: &str, target: &str) -> std::collections::BTreeSet<String> {
        self.lock().inventory.get(&(person.to_string(), target.to_string())).cloned().unwrap_or_default()
    }

    /// Overwrites a record, bypassing the condition (to model a concurrent writer in tests).
    pub fn force_put(&self, record: PersonRecord) {
        let key = (record.person.clone(), record.target.clone());
        self.lock().records.insert(key, record);
    }
}

#[async_trait]
impl Records for SimLedger {
    async fn get(&self, person: &str, target: &str) -> Result<Option<PersonRecord>, ServiceError> {
        let mut s = self.lock();
        s.reads += 1;
        Ok(s.records.get(&(person.to_string(), target.to_string())).cloned())
    }

    async fn commit(
        &self,
        record: &PersonRecord,
        expected: Option<u64>,
        audit: &AuditEntry,
    ) -> Result<bool, ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        if s.fail_commits > 0 {
            s.fail_commits -= 1;
            return Err(unavailable());
        }
        let key = (record.person.clone(), record.target.clone());
        let current = s.records.get(&key).map(|r| r.version);
        if current != expected {
            return Ok(false);
        }
        s.records.insert(key, record.clone());
        s.audits.insert(audit_key(audit), audit.clone());
        Ok(true)
    }

    async fn index_variant(&self, variant: &str, person: &str) -> Result<(), ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        s.variants.entry(variant.to_string()).or_default().insert(person.to_string());
        Ok(())
    }

    async fn variants(&self, variant: &str) -> Result<std::collections::BTreeSet<String>, ServiceError> {
        let mut s = self.lock();
        s.reads += 1;
        Ok(s.variants.get(variant).cloned().unwrap_or_default())
    }

    async fn known(&self, target: &str) -> Result<BTreeMap<String, crate::ledger::Known>, ServiceError> {
        let mut s = self.lock();
        s.reads += 1;
        let sk = target.to_string();
        let mut out: BTreeMap<String, crate::ledger::Known> = BTreeMap::new();
        for ((person, k), r) in &s.records {
            if *k == sk {
                out.entry(person.clone()).or_default().record = Some(r.clone());
            }
        }
        for ((person, t), accounts) in &s.inventory {
            if t == target {
                out.entry(person.clone()).or_default().accounts = accounts.clone();
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Inventory for SimLedger {
    async fn claim(&self, target: &str, name: &str, person: &str) -> Result<String, ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        let owner =
            s.claims.entry((target.to_string(), name.to_string())).or_insert_with(|| person.to_string()).clone();
        if owner == person {
            s.inventory.entry((person.to_string(), target.to_string())).or_default().insert(name.to_string());
        }
        Ok(owner)
    }

    async fn owner(&self, target: &str, name: &str) -> Result<Option<String>, ServiceError> {
        let mut s = self.lock();
        s.reads += 1;
        Ok(s.claims.get(&(target.to_string(), name.to_string())).cloned())
    }

    async fn remember(&self, person: &str, target: &str, account: &str) -> Result<(), ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        s.inventory.entry((person.to_string(), target.to_string())).or_default().insert(account.to_string());
        Ok(())
    }

    async fn accounts(&self, person: &str, target: &str) -> Result<std::collections::BTreeSet<String>, ServiceError> {
        let mut s = self.lock();
        s.reads += 1;
        Ok(s.inventory.get(&(person.to_string(), target.to_string())).cloned().unwrap_or_default())
    }
}

#[async_trait]
impl Leases for SimLedger {
    async fn lease(&self, person: &str, target: &str, holder: &str, expires_at: i64) -> Result<bool, ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        let now = chrono::Utc::now().timestamp();
        let key = (person.to_string(), target.to_string());
        match s.leases.get(&key) {
            Some((h, until)) if h != holder && *until > now => Ok(false),
            _ => {
                s.leases.insert(key, (holder.to_string(), expires_at));
                Ok(true)
            }
        }
    }

    async fn lease_if_unchanged(
        &self,
        person: &str,
        target: &str,
        holder: &str,
        expires_at: i64,
        expected: Option<u64>,
        ahead: &[String],
    ) -> Result<Leased, ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        let now = chrono::Utc::now().timestamp();
        let key = (person.to_string(), target.to_string());
        if s.leases.get(&key).is_some_and(|(h, until)| h != holder && *until > now) {
            return Ok(Leased::Busy);
        }
        let current = s.records.get(&(person.to_string(), target.to_string())).map(|r| r.version);
        if current != expected {
            // The transaction was cancelled by the record's check: the lease alone, again.
            s.writes += 1;
        }
        s.leases.insert(key.clone(), (holder.to_string(), expires_at));
        if current != expected {
            return Ok(Leased::Taken);
        }
        s.inventory.entry(key).or_default().extend(ahead.iter().cloned());
        Ok(Leased::Unchanged)
    }

    async fn commit_and_release(
        &self,
        record: &PersonRecord,
        expected: Option<u64>,
        audit: &AuditEntry,
        holder: &str,
        remember: &[String],
    ) -> Result<bool, ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        if s.fail_commits > 0 {
            s.fail_commits -= 1;
            return Err(unavailable());
        }
        let key = (record.person.clone(), record.target.clone());
        if s.records.get(&key).map(|r| r.version) != expected {
            return Ok(false);
        }
        let lease = (record.person.clone(), record.target.clone());
        if s.leases.get(&lease).is_none_or(|(h, _)| h != holder) {
            // The lease's condition cancels the whole transaction.
            return Err(unavailable());
        }
        s.leases.remove(&lease);
        s.inventory.entry(lease).or_default().extend(remember.iter().cloned());
        s.records.insert(key, record.clone());
        s.audits.insert(audit_key(audit), audit.clone());
        Ok(true)
    }

    async fn release(&self, person: &str, target: &str, holder: &str) -> Result<(), ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        let key = (person.to_string(), target.to_string());
        if s.leases.get(&key).is_some_and(|(h, _)| h == holder) {
            s.leases.remove(&key);
        }
        Ok(())
    }
}

#[async_trait]
impl Breaker for SimLedger {
    async fn window(&self, key: &str) -> Result<(Vec<(String, i64)>, u64), ServiceError> {
        let mut s = self.lock();
        s.reads += 1;
        Ok(s.windows.get(key).cloned().unwrap_or_default())
    }

    async fn put_window(
        &self,
        key: &str,
        entries: &[(String, i64)],
        expected: u64,
        _expires_at: i64,
    ) -> Result<bool, ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        let w = s.windows.entry(key.to_string()).or_default();
        if w.1 != expected {
            return Ok(false);
        }
        *w = (entries.to_vec(), expected + 1);
        Ok(true)
    }

    async fn decide(
        &self,
        person: &str,
        event_id: &str,
        decision: &str,
        _expires_at: i64,
    ) -> Result<String, ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        Ok(s.decisions
            .entry((person.to_string(), event_id.to_string()))
            .or_insert_with(|| decision.to_string())
            .clone())
    }

    async fn decision(&self, person: &str, event_id: &str) -> Result<Option<String>, ServiceError> {
        let mut s = self.lock();
        s.reads += 1;
        Ok(s.decisions.get(&(person.to_string(), event_id.to_string())).cloned())
    }

    async fn hold(&self, held: &HeldEvent, audit: &AuditEntry) -> Result<(), ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        s.held.insert(held_key(held), held.clone());
        s.audits.insert(audit_key(audit), audit.clone());
        Ok(())
    }

    async fn held(&self, target: &str) -> Result<Vec<HeldEvent>, ServiceError> {
        let mut s = self.lock();
        s.reads += 1;
        Ok(s.held.iter().filter(|((t, _), _)| t == target).map(|(_, h)| h.clone()).collect())
    }

    async fn forget_held(&self, held: &HeldEvent) -> Result<(), ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        s.held.remove(&held_key(held));
        Ok(())
    }
}

#[async_trait]
impl Audit for SimLedger {
    async fn append_audit(&self, audit: &AuditEntry) -> Result<(), ServiceError> {
        let mut s = self.lock();
        s.writes += 1;
        if s.fail_audits > 0 {
            s.fail_audits -= 1;
            return Err(unavailable());
        }
        s.audits.insert(audit_key(audit), audit.clone());
        Ok(())
    }

    async fn audit_trail(&self, person: &str) -> Result<Vec<AuditEntry>, ServiceError> {
        let mut s = self.lock();
        s.reads += 1;
        Ok(s.audits.iter().filter(|((p, _), _)| p == person).map(|(_, a)| a.clone()).collect())
    }
}
