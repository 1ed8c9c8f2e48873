//! # iam-sync
//!
//! The Lambda that makes an IAM user follow the person, for organisations that still need IAM
//! users: created under a department path with the mandatory permissions boundary and the
//! ExternalId tags, put in the mapped IAM groups; on leaving, locked down without being deleted
//! (no console password, access keys inactive, out of every group, tagged disabled). Fed by its
//! own SQS FIFO queue; the record handling is shared (`jml_shared::lambda`).

use std::sync::Arc;

use jml_shared::config::{Backend, Config};
use jml_shared::iam::IamSync;
use jml_shared::ledger::Ledger;
use jml_shared::ports::{DeadLetterQueue, IamUsers};
use jml_shared::sim::{SimIam, SimLedger};

pub use jml_shared::lambda::{RecordMeta, RecordReport, State, handle_sqs, handler, process_record};

/// The in-memory services behind a `JML_BACKEND=memory` state, for inspection.
pub type MemoryBackend = jml_shared::sim::MemoryBackend<SimIam>;

/// A state for the IAM target on the given ports (the ledger also holds the name claims).
/// `config.check_iam()` must have passed (the boundary is mandatory).
pub fn state(
    service: Arc<dyn IamUsers>,
    ledger: Arc<dyn Ledger>,
    dlq: Arc<dyn DeadLetterQueue>,
    config: &Config,
) -> State {
    let target = IamSync::new(
        service,
        ledger.clone(),
        config.iam_groups.clone(),
        config.iam_path_prefix.clone(),
        config.iam_permissions_boundary.clone().unwrap_or_default(),
    );
    State::for_target(Arc::new(target), ledger, dlq, config)
}

/// A state on the given simulator with its own in-memory ledger and DLQ.
pub fn memory(service: Arc<SimIam>, config: &Config) -> (State, MemoryBackend) {
    memory_with_ledger(service, Arc::new(SimLedger::default()), config)
}

/// A state on the given simulator sharing a ledger (as the deployed functions share one table).
pub fn memory_with_ledger(service: Arc<SimIam>, ledger: Arc<SimLedger>, config: &Config) -> (State, MemoryBackend) {
    jml_shared::sim::memory_state(service, ledger, |s, l, d| state(s, l, d, config))
}

/// A state on real (or endpoint-overridden) AWS services.
pub fn from_aws_ports(ports: jml_shared::aws::AwsPorts, config: &Config) -> State {
    state(Arc::new(ports.iam), Arc::new(ports.ledger), Arc::new(ports.dlq), config)
}

/// The state the configuration asks for: real AWS clients, or the embedded demo simulator
/// (seeded with the IAM groups of the demo group map).
pub async fn from_config(config: &Config) -> State {
    match config.backend {
        Backend::Memory => memory(Arc::new(SimIam::demo()), config).0,
        Backend::Aws => from_aws_ports(jml_shared::aws::AwsPorts::connect(config).await, config),
    }
}
