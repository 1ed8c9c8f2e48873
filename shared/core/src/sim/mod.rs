//! In-memory stand-ins for what every target shares (the ledger, the DLQ, the queues) and the
//! call accounting each target's simulator uses. With each target's simulator (in its slice)
//! they are the embedded backend of the `jml` CLI, of tests and of `JML_BACKEND=memory`.

mod ledger;

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

pub use ledger::{LedgerCalls, SimLedger};

use crate::ports::{DeadLetterQueue, Op, ParkedMessage, ServiceError};

/// Call counts by operation, with read/write totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub by_op: BTreeMap<Op, usize>,
}

impl CallCounts {
    pub fn writes(&self) -> usize {
        self.by_op.iter().filter(|(op, _)| op.is_write()).map(|(_, n)| n).sum()
    }
    pub fn reads(&self) -> usize {
        self.by_op.iter().filter(|(op, _)| !op.is_write()).map(|(_, n)| n).sum()
    }
    pub fn get(&self, op: Op) -> usize {
        self.by_op.get(&op).copied().unwrap_or(0)
    }
}

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
pub struct Calls {
    by_op: std::collections::BTreeMap<Op, usize>,
    fail_next: Vec<(Op, ServiceError)>,
}

impl Calls {
    /// Counts a call of `op`; the failure injected for its next call, if any.
    pub fn enter(&mut self, op: Op) -> Result<(), ServiceError> {
        *self.by_op.entry(op).or_default() += 1;
        match self.fail_next.iter().position(|(o, _)| *o == op) {
            Some(i) => Err(self.fail_next.remove(i).1),
            None => Ok(()),
        }
    }

    pub fn fail_next(&mut self, op: Op, error: ServiceError) {
        self.fail_next.push((op, error));
    }

    pub fn counts(&self) -> CallCounts {
        CallCounts { by_op: self.by_op.clone() }
    }

    pub fn reset(&mut self) {
        self.by_op.clear();
    }
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
                return Err(ServiceError::Unavailable {
                    op: crate::ports::op::SEND_MESSAGE,
                    message: "injected".to_string(),
                });
            }
        }
        self.parked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(message.clone());
        Ok(())
    }
}

/// A dead-letter queue to read back in memory (`jml redrive`, the reconcile function): receive
/// hides (two at a time, to exercise paging), release shows again, delete removes.
#[derive(Debug, Default)]
pub struct SimDlqSource {
    messages: Mutex<Vec<(crate::redrive::DlqMessage, bool)>>,
}

impl SimDlqSource {
    pub fn push(&self, m: crate::redrive::DlqMessage) {
        self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((m, false));
    }
    /// Every message still in the queue, hidden or not.
    pub fn messages(&self) -> Vec<crate::redrive::DlqMessage> {
        self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(|(m, _)| m.clone()).collect()
    }
    /// No message is hidden by a receive that was not followed by a delete or a release.
    pub fn all_visible(&self) -> bool {
        self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().all(|(_, hidden)| !hidden)
    }
}

#[async_trait]
impl crate::redrive::DlqSource for SimDlqSource {
    async fn receive(&self, _queue_url: &str) -> Result<Vec<crate::redrive::DlqMessage>, ServiceError> {
        let mut all = self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(all
            .iter_mut()
            .filter(|(_, hidden)| !*hidden)
            .take(2)
            .map(|(m, hidden)| {
                *hidden = true;
                m.clone()
            })
            .collect())
    }
    async fn delete(&self, _queue_url: &str, receipt_handle: &str) -> Result<(), ServiceError> {
        self.messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(m, _)| m.receipt_handle != receipt_handle);
        Ok(())
    }
    async fn release(&self, _queue_url: &str, receipt_handle: &str) -> Result<(), ServiceError> {
        for (m, hidden) in self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter_mut() {
            if m.receipt_handle == receipt_handle {
                *hidden = false;
            }
        }
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
                return Err(ServiceError::Throttled { op: crate::ports::op::SEND_MESSAGE, retry_after_seconds: None });
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
