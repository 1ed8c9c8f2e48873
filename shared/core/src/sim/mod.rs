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
    /// Every call, reads and writes.
    pub fn total(&self) -> usize {
        self.by_op.values().sum()
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

/// In-memory schedules: what is pending, by firing.
#[derive(Debug, Default)]
pub struct SimSchedules {
    pending: Mutex<std::collections::BTreeSet<crate::ports::Firing>>,
}

impl SimSchedules {
    /// Every pending firing, in time order.
    pub fn pending(&self) -> Vec<crate::ports::Firing> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }

    /// Takes the earliest firing due at or before `until` (a one-time schedule is deleted once it fires).
    pub fn take_due(&self, until: chrono::DateTime<chrono::Utc>) -> Option<crate::ports::Firing> {
        let mut p = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = p.iter().next().filter(|f| f.at <= until).cloned()?;
        p.remove(&first);
        Some(first)
    }
}

#[async_trait]
impl crate::ports::Schedules for SimSchedules {
    async fn put(&self, firing: &crate::ports::Firing) -> Result<(), ServiceError> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(firing.clone());
        Ok(())
    }

    async fn delete(&self, firing: &crate::ports::Firing) -> Result<(), ServiceError> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(firing);
        Ok(())
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

/// What a benchmark puts in front of a simulator's requests: the time each takes, the service's
/// quota (requests beyond `limit` in any trailing second are throttled) and the client's pacing
/// (the adapter's paced HTTP client: a slot of the window per HTTP request, pages included). Off
/// until [`Quota::configure`]: the simulators answer at once, as tests want.
#[derive(Debug, Default)]
pub struct Quota {
    settings: Mutex<Option<QuotaSettings>>,
    window: Mutex<std::collections::VecDeque<tokio::time::Instant>>,
    throttled: std::sync::atomic::AtomicUsize,
}

#[derive(Clone, Debug)]
struct QuotaSettings {
    latency: std::time::Duration,
    limit: Option<u32>,
    pacer: Option<std::sync::Arc<crate::pacing::SlidingWindow>>,
}

impl Quota {
    /// From now on every request takes `latency`; at most `limit` may start in any second;
    /// each first takes a slot of `pacer`.
    pub fn configure(
        &self,
        latency: std::time::Duration,
        limit: Option<u32>,
        pacer: Option<std::sync::Arc<crate::pacing::SlidingWindow>>,
    ) {
        self.edit(|q| *q = QuotaSettings { latency, limit, pacer });
    }

    fn edit(&self, f: impl FnOnce(&mut QuotaSettings)) {
        let mut s = self.settings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(s.get_or_insert(QuotaSettings { latency: std::time::Duration::ZERO, limit: None, pacer: None }));
    }

    /// Every request takes `latency`.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.edit(|q| q.latency = latency);
    }

    /// At most `per_second` requests may start in any second.
    pub fn set_limit(&self, per_second: u32) {
        self.edit(|q| q.limit = Some(per_second));
    }

    /// Every request first takes a slot of `pacer`.
    pub fn set_pacer(&self, pacer: std::sync::Arc<crate::pacing::SlidingWindow>) {
        self.edit(|q| q.pacer = Some(pacer));
    }

    /// How many requests the quota throttled.
    pub fn throttled(&self) -> usize {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One request of `op`: paced, then throttled past the limit, then answered after the
    /// latency. Nothing when not configured.
    pub async fn request(&self, op: Op) -> Result<(), ServiceError> {
        let Some(q) = self.settings.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() else {
            return Ok(());
        };
        if let Some(p) = &q.pacer {
            p.acquire().await;
        }
        if let Some(limit) = q.limit {
            let now = tokio::time::Instant::now();
            let mut w = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            while w.front().is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1)) {
                w.pop_front();
            }
            if w.len() >= limit as usize {
                self.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(ServiceError::Throttled { op, retry_after_seconds: None });
            }
            w.push_back(now);
        }
        if !q.latency.is_zero() {
            tokio::time::sleep(q.latency).await;
        }
        Ok(())
    }

    /// The pages of a list call of `items` at `page` a page (at least one), each a request.
    pub async fn pages(&self, op: Op, items: usize, page: usize) -> Result<usize, ServiceError> {
        let n = list_pages(items, page);
        for _ in 0..n {
            self.request(op).await?;
        }
        Ok(n)
    }
}

/// How many pages a list call of `items` takes at `page` a page: at least one (an empty list is
/// one request).
pub fn list_pages(items: usize, page: usize) -> usize {
    items.div_ceil(page.max(1)).max(1)
}

impl Calls {
    /// Counts the pages after the first of a list call of `items` at `page` a page (the first
    /// was counted when the call entered).
    pub fn further_pages(&mut self, op: Op, items: usize, page: usize) {
        *self.by_op.entry(op).or_default() += list_pages(items, page) - 1;
    }
}
