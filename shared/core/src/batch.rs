//! SQS batch processing shared by every target function.
//!
//! Records of one person (one FIFO message group) run in order; different people run
//! concurrently, at most `concurrency` at a time. Once a record of a group must be retried, every
//! later record of that group in the batch is reported failed too, unprocessed, so SQS redelivers
//! them in order (FIFO correctness). A parked record counts as handled.

use std::future::Future;

use futures::StreamExt;

/// One SQS record, reduced to what processing needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    pub message_id: String,
    /// The FIFO `MessageGroupId`; for a standard queue, the message id (no ordering promise).
    pub group: String,
    pub body: String,
}

/// What became of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordResult {
    /// Applied (or nothing to do).
    Done,
    /// Permanently failed and parked on the DLQ with its reason.
    Parked,
    /// Must be retried: reported as a batch item failure.
    Retry,
}

/// Processes a batch; returns the message ids to report as `batchItemFailures`, in batch order.
pub async fn run_batch<F, Fut>(records: Vec<BatchRecord>, concurrency: usize, process: F) -> Vec<String>
where
    F: Fn(BatchRecord) -> Fut,
    Fut: Future<Output = RecordResult>,
{
    let order: Vec<String> = records.iter().map(|r| r.message_id.clone()).collect();
    let mut groups: Vec<(String, Vec<BatchRecord>)> = Vec::new();
    for r in records {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, v)) => v.push(r),
            None => groups.push((r.group.clone(), vec![r])),
        }
    }
    let process = &process;
    let failed: Vec<String> = futures::stream::iter(groups)
        .map(|(_, records)| async move {
            let mut failed = Vec::new();
            let mut blocked = false;
            for r in records {
                if blocked {
                    failed.push(r.message_id);
                    continue;
                }
                let id = r.message_id.clone();
                if process(r).await == RecordResult::Retry {
                    blocked = true;
                    failed.push(id);
                }
            }
            failed
        })
        .buffer_unordered(concurrency.max(1))
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    order.into_iter().filter(|id| failed.contains(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn rec(id: &str, group: &str, body: &str) -> BatchRecord {
        BatchRecord { message_id: id.into(), group: group.into(), body: body.into() }
    }

    #[tokio::test]
    async fn a_retry_blocks_the_rest_of_its_group_only() {
        let seen = Mutex::new(Vec::new());
        let failed = run_batch(
            vec![
                rec("1", "a", "ok"),
                rec("2", "a", "retry"),
                rec("3", "b", "ok"),
                rec("4", "a", "ok"),
                rec("5", "b", "park"),
            ],
            4,
            |r| {
                seen.lock().unwrap().push(r.message_id.clone());
                async move {
                    match r.body.as_str() {
                        "retry" => RecordResult::Retry,
                        "park" => RecordResult::Parked,
                        _ => RecordResult::Done,
                    }
                }
            },
        )
        .await;
        assert_eq!(failed, vec!["2", "4"]);
        assert!(!seen.lock().unwrap().contains(&"4".to_string()), "record 4 must not run after 2 failed");
    }

    #[tokio::test]
    async fn groups_run_concurrently_records_of_a_group_in_order() {
        let log = Mutex::new(Vec::new());
        let failed =
            run_batch((0..6).map(|i| rec(&i.to_string(), if i % 2 == 0 { "x" } else { "y" }, "")).collect(), 2, |r| {
                let log = &log;
                async move {
                    tokio::task::yield_now().await;
                    log.lock().unwrap().push((r.group.clone(), r.message_id.clone()));
                    RecordResult::Done
                }
            })
            .await;
        assert!(failed.is_empty());
        let log = log.lock().unwrap();
        let x: Vec<&str> = log.iter().filter(|(g, _)| g == "x").map(|(_, m)| m.as_str()).collect();
        assert_eq!(x, vec!["0", "2", "4"]);
    }
}
