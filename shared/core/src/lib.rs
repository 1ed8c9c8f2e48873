//! # jml-core
//!
//! What every target shares, with no AWS SDK and naming no target. A target is a slice of its
//! own (its function crate: rules, pure planner, port, AWS adapter, simulator, settings, parking
//! codes) that implements [`engine::Target`].
//!
//! # Layout
//! - [`contract`]: the HR event contract v1: parsing and validation into newtypes.
//! - [`clock`]: the one clock decisions read (system, or virtual for `jml replay --now`), and the
//!   `OccurredInFuture` bound.
//! - [`engine`]: the target-independent engine: ledger guard, lease, a target's converge step,
//!   leaver read-back, blast-radius breaker, commit.
//! - [`ledger`]: the person ledger port, its records, audit entries and the pure stale guard.
//! - [`ports`]: operation names, the service error taxonomy, the dead-letter queue port.
//! - [`metrics`]: CloudWatch Embedded Metric Format documents (events, actions, parked, retries).
//! - [`pacing`]: a sliding-window limiter (at most N requests in any trailing second).
//! - [`batch`]: SQS batch processing: per-person ordering, bounded concurrency, FIFO failure rules.
//! - [`lambda`]: the Lambda side shared by every target: record, SQS batch, EventBridge.
//! - [`ingest`]: hr-ingest: validate, then fan out to every target's FIFO queue (group and dedup ids).
//! - [`redrive`]: the way back from every DLQ.
//! - [`config`]: the settings every function shares, validated once at start.
//! - [`reconcile`]: an HR snapshot against every target: parsing, the partial-snapshot refusal,
//!   the `Reconciler` trait each slice implements, the drift report, corrective events, metrics.
//! - [`doctor`]: the preflight's step runner.
//! - [`sim`]: in-memory ledger, DLQ and queues, and the call accounting target simulators share.

pub mod batch;
pub mod clock;
pub mod codes;
pub mod config;
pub mod contract;
pub mod dated;
pub mod doctor;
pub mod engine;
pub mod ingest;
pub mod lambda;
pub mod ledger;
pub mod metrics;
pub mod pacing;
pub mod parking;
pub mod ports;
pub mod reconcile;
pub mod redrive;
pub mod sim;
pub mod target;
pub mod testkit;
