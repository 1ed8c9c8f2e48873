//! # identity-sync
//!
//! The Lambda that applies HR events to IAM Identity Center (the Identity Store). It accepts an
//! SQS batch (its FIFO queue, `ReportBatchItemFailures`) or a direct EventBridge event; the
//! record handling is shared by every target (`jml_shared::lambda`). This crate only builds the
//! state: the Identity Store target on real AWS or on the embedded simulators.

use std::sync::Arc;

use jml_shared::config::{Backend, Config};
use jml_shared::identity::{IdentitySync, SyncSettings};
use jml_shared::ledger::Ledger;
use jml_shared::pacing::{Paced, TokenBucket};
use jml_shared::ports::{DeadLetterQueue, IdentityStore};
use jml_shared::sim::{SimDeadLetterQueue, SimIdentityStore, SimLedger};

pub use jml_shared::lambda::{RecordMeta, RecordReport, State, handle_sqs, handler, process_record};

/// The in-memory services behind a `JML_BACKEND=memory` state, for inspection.
#[derive(Clone, Debug)]
pub struct MemoryBackend {
    pub store: Arc<SimIdentityStore>,
    pub ledger: Arc<SimLedger>,
    pub dlq: Arc<SimDeadLetterQueue>,
}

/// A state for the Identity Store target on the given ports.
pub fn state(
    store: Arc<dyn IdentityStore>,
    ledger: Arc<dyn Ledger>,
    dlq: Arc<dyn DeadLetterQueue>,
    config: &Config,
) -> State {
    // Every Identity Store call waits for a token when pacing is on (IDENTITY_STORE_RPS), at a
    // steady pace (burst 1): the account quota is counted over any one second.
    let store: Arc<dyn IdentityStore> = match config.identity_store_rps {
        Some(rps) => Arc::new(Paced::new(store, Arc::new(TokenBucket::new(rps, 1.0)))),
        None => store,
    };
    let target = IdentitySync::new(
        store,
        SyncSettings {
            managed_groups: config.managed_groups.clone(),
            group_recheck: std::time::Duration::from_secs(config.group_recheck_seconds),
        },
    );
    State::for_target(Arc::new(target), ledger, dlq, config)
}

/// A state on the given simulator, with an in-memory ledger and DLQ.
pub fn memory(store: Arc<SimIdentityStore>, config: &Config) -> (State, MemoryBackend) {
    let dlq = Arc::new(SimDeadLetterQueue::default());
    let ledger = Arc::new(SimLedger::default());
    let state = state(store.clone(), ledger.clone(), dlq.clone(), config);
    (state, MemoryBackend { store, ledger, dlq })
}

/// A state on real (or endpoint-overridden) AWS services.
pub fn from_aws_ports(ports: jml_shared::aws::AwsPorts, config: &Config) -> State {
    state(Arc::new(ports.identity_store), Arc::new(ports.ledger), Arc::new(ports.dlq), config)
}

/// The state the configuration asks for: real AWS clients, or the embedded demo simulator
/// (seeded with the groups the sample events use).
pub async fn from_config(config: &Config) -> State {
    match config.backend {
        Backend::Memory => memory(Arc::new(jml_shared::sim::demo_identity_store()), config).0,
        Backend::Aws => from_aws_ports(jml_shared::aws::AwsPorts::connect(config).await, config),
    }
}
