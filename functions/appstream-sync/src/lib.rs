//! # appstream-sync
//!
//! The Lambda that makes an AppStream 2.0 user pool user follow the person: created (with the
//! welcome e-mail or without) and associated with their stacks on joining, stacks reconciled on a
//! move, removed from every stack and disabled on leaving, enabled again on a rehire. Fed by its
//! own SQS FIFO queue; the record handling is shared (`jml_shared::lambda`).

use std::sync::Arc;

use jml_shared::appstream::AppStreamSync;
use jml_shared::config::{Backend, Config};
use jml_shared::ledger::Ledger;
use jml_shared::ports::{AppStreamUsers, DeadLetterQueue};
use jml_shared::sim::{SimAppStream, SimLedger};

pub use jml_shared::lambda::{RecordMeta, RecordReport, State, handle_sqs, handler, process_record};

/// The in-memory services behind a `JML_BACKEND=memory` state, for inspection.
pub type MemoryBackend = jml_shared::sim::MemoryBackend<SimAppStream>;

/// A state for the AppStream target on the given ports (the ledger also holds the name claims).
pub fn state(
    service: Arc<dyn AppStreamUsers>,
    ledger: Arc<dyn Ledger>,
    dlq: Arc<dyn DeadLetterQueue>,
    config: &Config,
) -> State {
    let target = AppStreamSync::new(service, ledger.clone(), config.appstream_stacks.clone(), config.appstream_welcome);
    State::for_target(Arc::new(target), ledger, dlq, config)
}

/// A state on the given simulator with its own in-memory ledger and DLQ.
pub fn memory(service: Arc<SimAppStream>, config: &Config) -> (State, MemoryBackend) {
    memory_with_ledger(service, Arc::new(SimLedger::default()), config)
}

/// A state on the given simulator sharing a ledger (as the deployed functions share one table).
pub fn memory_with_ledger(
    service: Arc<SimAppStream>,
    ledger: Arc<SimLedger>,
    config: &Config,
) -> (State, MemoryBackend) {
    jml_shared::sim::memory_state(service, ledger, |s, l, d| state(s, l, d, config))
}

/// A state on real (or endpoint-overridden) AWS services.
pub fn from_aws_ports(ports: jml_shared::aws::AwsPorts, config: &Config) -> State {
    state(Arc::new(ports.appstream), Arc::new(ports.ledger), Arc::new(ports.dlq), config)
}

/// The state the configuration asks for: real AWS clients, or the embedded demo simulator
/// (seeded with the stacks the sample events and demo rules use).
pub async fn from_config(config: &Config) -> State {
    match config.backend {
        Backend::Memory => memory(Arc::new(SimAppStream::demo()), config).0,
        Backend::Aws => from_aws_ports(jml_shared::aws::AwsPorts::connect(config).await, config),
    }
}
