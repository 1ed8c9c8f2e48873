//! # jml-sync shared library
//!
//! # Layout
//! - [`contract`]: the HR event contract v1: parsing and validation into newtypes.
//! - [`planner`]: the pure planner: (event, current state) -> ordered actions; ownership checks.
//! - [`ports`]: the service ports (traits) over plain data, and the service error taxonomy.
//! - [`ledger`]: the person ledger port, its records, audit entries and the pure stale guard.
//! - [`metrics`]: CloudWatch Embedded Metric Format documents (events, actions, parked, retries).
//! - [`pacing`]: a token bucket in front of every Identity Store call (the 20 requests/s quota).
//! - [`engine`]: the target-independent engine: ledger guard, a target's converge step, commit.
//! - [`identity`]: the Identity Store target: resolve, read, plan, apply through the ports.
//! - [`ingest`]: hr-ingest: validate, then fan out to every target's FIFO queue (group and dedup ids).
//! - [`lambda`]: the Lambda side shared by every target: record, SQS batch, EventBridge.
//! - [`subscriptions`]: the License Manager user-based subscriptions target and its pure planner.
//! - [`appstream`]: the AppStream 2.0 user pool target: user names, names, stacks, ledger claims.
//! - [`iam`]: the IAM users target: derived name, path and tags, lock-down of leavers.
//! - [`batch`]: SQS batch processing: per-person ordering, bounded concurrency, FIFO failure rules.
//! - [`config`]: settings from environment variables, validated once at start.
//! - [`aws`]: AWS adapters (Identity Store, License Manager user subscriptions, AppStream, IAM,
//!   DynamoDB, SQS). The only place that calls AWS.
//! - [`sim`]: in-memory simulators implementing the same ports.

pub mod appstream;
pub mod aws;
pub mod batch;
pub mod config;
pub mod contract;
pub mod engine;
pub mod iam;
pub mod identity;
pub mod ingest;
pub mod lambda;
pub mod ledger;
pub mod metrics;
pub mod pacing;
pub mod planner;
pub mod ports;
pub mod redrive;
pub mod sim;
pub mod subscriptions;
