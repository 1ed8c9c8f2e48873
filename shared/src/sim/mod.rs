//! In-memory simulators of the services, implementing the same ports as the AWS adapters. They
//! are the embedded default backend of the `jml` CLI and of `JML_BACKEND=memory`.

mod appstream;
mod iam;
mod identitystore;
mod ledger;
mod subscriptions;

use std::sync::Mutex;

use async_trait::async_trait;

pub use appstream::{DEFAULT_POOL_QUOTA, DEMO_STACK_RULES, DEMO_STACKS, PoolUser, SimAppStream};
pub use iam::{DEMO_BOUNDARY, DEMO_IAM_GROUP_MAP, DEMO_IAM_GROUPS, GROUPS_PER_USER, SimIam, SimIamUser};
pub use identitystore::{CallCounts, Fault, SimIdentityStore, UserView};
pub use ledger::{LedgerCalls, SimLedger};
pub use subscriptions::{DEMO_INSTANCES, SimUserSubscriptions};

use crate::ports::{DeadLetterQueue, Op, ParkedMessage, ServiceError};

/// The in-memory services behind a target function's `JML_BACKEND=memory` state, for inspection.
#[derive(Debug)]
pub struct MemoryBackend<S> {
    pub service: std::sync::Arc<S>,
    pub ledger: std::sync::Arc<SimLedger>,
    pub dlq: std::sync::Arc<SimDeadLetterQueue>,
}

impl<S> Clone for MemoryBackend<S> {
    fn clone(&self) -> Self {
        Self { service: self.service.clone(), ledger: self.ledger.clone(), dlq: self.dlq.clone() }
    }
}

/// A target function's state on a simulator, a (possibly shared) in-memory ledger and a fresh
/// in-memory DLQ; `build` is the function's own state constructor.
pub fn memory_state<S>(
    service: std::sync::Arc<S>,
    ledger: std::sync::Arc<SimLedger>,
    build: impl FnOnce(
        std::sync::Arc<S>,
        std::sync::Arc<SimLedger>,
        std::sync::Arc<SimDeadLetterQueue>,
    ) -> crate::lambda::State,
) -> (crate::lambda::State, MemoryBackend<S>) {
    let dlq = std::sync::Arc::new(SimDeadLetterQueue::default());
    let state = build(service.clone(), ledger.clone(), dlq.clone());
    (state, MemoryBackend { service, ledger, dlq })
}

/// Call counting and injected failures, shared by the simulators.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    by_op: std::collections::BTreeMap<Op, usize>,
    fail_next: Vec<(Op, ServiceError)>,
}

impl Calls {
    /// Counts a call of `op`; the failure injected for its next call, if any.
    pub(crate) fn enter(&mut self, op: Op) -> Result<(), ServiceError> {
        *self.by_op.entry(op).or_default() += 1;
        match self.fail_next.iter().position(|(o, _)| *o == op) {
            Some(i) => Err(self.fail_next.remove(i).1),
            None => Ok(()),
        }
    }

    pub(crate) fn fail_next(&mut self, op: Op, error: ServiceError) {
        self.fail_next.push((op, error));
    }

    pub(crate) fn counts(&self) -> CallCounts {
        CallCounts { by_op: self.by_op.clone() }
    }

    pub(crate) fn reset(&mut self) {
        self.by_op.clear();
    }
}

/// The groups the sample events in `events/` use; the simulator is seeded with them.
pub const DEMO_GROUPS: &[&str] = &["jml-all-staff", "jml-engineering", "jml-vpn", "jml-finance", "jml-oncall"];

/// A simulator seeded with `DEMO_GROUPS` and the managers the samples name.
pub fn demo_identity_store() -> SimIdentityStore {
    let store = SimIdentityStore::new();
    for g in DEMO_GROUPS {
        store.create_group(g);
    }
    store.seed_user("grace.hopper", None, None);
    store
}

/// An in-memory dead-letter queue.
#[derive(Debug, Default)]
pub struct SimDeadLetterQueue {
    parked: Mutex<Vec<ParkedMessage>>,
    fail_next: Mutex<usize>,
}

impl SimDeadLetterQueue {
    pub fn parked(&self) -> Vec<ParkedMessage> {
        self.parked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The next `n` park calls fail as if SQS were unavailable.
    pub fn fail_next(&self, n: usize) {
        *self.fail_next.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = n;
    }
}

#[async_trait]
impl DeadLetterQueue for SimDeadLetterQueue {
    async fn park(&self, message: &ParkedMessage) -> Result<(), ServiceError> {
        {
            let mut f = self.fail_next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *f > 0 {
                *f -= 1;
                return Err(ServiceError::Unavailable { op: Op::SendMessage, message: "injected".to_string() });
            }
        }
        self.parked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(message.clone());
        Ok(())
    }
}

/// In-memory queues with SQS's FIFO deduplication (by MessageDeduplicationId per queue; a
/// standard queue's messages, sent without one, are all kept).
#[derive(Debug, Default)]
pub struct SimQueues {
    /// queue url -> (body, group id, dedup id), in send order.
    sent: Mutex<Vec<(String, String, String, String)>>,
    fail_next: Mutex<Vec<String>>,
}

impl SimQueues {
    /// Messages accepted by a queue (duplicates dropped, as SQS does within its window).
    pub fn messages(&self, queue_url: &str) -> Vec<(String, String)> {
        let sent = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.iter().filter(|(q, ..)| q == queue_url).map(|(_, b, g, _)| (b.clone(), g.clone())).collect()
    }

    /// The next send to `queue_url` fails as if SQS were throttling.
    pub fn fail_next_send(&self, queue_url: &str) {
        self.fail_next.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(queue_url.to_string());
    }
}

#[async_trait]
impl crate::ingest::Publisher for SimQueues {
    async fn send(&self, queue_url: &str, body: &str, group_id: &str, dedup_id: &str) -> Result<(), ServiceError> {
        {
            let mut f = self.fail_next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(i) = f.iter().position(|q| q == queue_url) {
                f.remove(i);
                return Err(ServiceError::Throttled { op: Op::SendMessage, retry_after_seconds: None });
            }
        }
        let mut sent = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A standard queue (no deduplication id) keeps every message, as SQS does.
        if dedup_id.is_empty() || !sent.iter().any(|(q, _, _, d)| q == queue_url && d == dedup_id) {
            sent.push((queue_url.to_string(), body.to_string(), group_id.to_string(), dedup_id.to_string()));
        }
        Ok(())
    }
}
