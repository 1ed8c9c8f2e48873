//! # subscription-sync
//!
//! The Lambda that makes License Manager user-based subscriptions follow the person: product
//! subscriptions and EC2 instance associations for their Active Directory user name, all released
//! by a leaver so billing stops. Fed by its own SQS FIFO queue (or a direct EventBridge event);
//! the record handling is shared (`jml_shared::lambda`); this crate only builds the state.

use std::sync::Arc;

use jml_shared::config::{Backend, Config};
use jml_shared::ledger::Ledger;
use jml_shared::ports::{DeadLetterQueue, UserSubscriptions};
use jml_shared::sim::{SimLedger, SimUserSubscriptions};
use jml_shared::subscriptions::SubscriptionSync;

pub use jml_shared::lambda::{RecordMeta, RecordReport, State, handle_sqs, handler, process_record};

/// The in-memory services behind a `JML_BACKEND=memory` state, for inspection.
pub type MemoryBackend = jml_shared::sim::MemoryBackend<SimUserSubscriptions>;

/// A state for the subscriptions target on the given ports.
pub fn state(
    service: Arc<dyn UserSubscriptions>,
    ledger: Arc<dyn Ledger>,
    dlq: Arc<dyn DeadLetterQueue>,
    config: &Config,
) -> State {
    let target = SubscriptionSync::new(service, config.directory_username_rule);
    State::for_target(Arc::new(target), ledger, dlq, config)
}

/// A state on the given simulator with its own in-memory ledger and DLQ.
pub fn memory(service: Arc<SimUserSubscriptions>, config: &Config) -> (State, MemoryBackend) {
    memory_with_ledger(service, Arc::new(SimLedger::default()), config)
}

/// A state on the given simulator sharing a ledger (as the deployed functions share one table).
pub fn memory_with_ledger(
    service: Arc<SimUserSubscriptions>,
    ledger: Arc<SimLedger>,
    config: &Config,
) -> (State, MemoryBackend) {
    jml_shared::sim::memory_state(service, ledger, |s, l, d| state(s, l, d, config))
}

/// A state on real (or endpoint-overridden) AWS services.
pub fn from_aws_ports(ports: jml_shared::aws::AwsPorts, config: &Config) -> State {
    state(Arc::new(ports.user_subscriptions), Arc::new(ports.ledger), Arc::new(ports.dlq), config)
}

/// The state the configuration asks for: real AWS clients, or the embedded demo simulator
/// (seeded with the instances the sample events use).
pub async fn from_config(config: &Config) -> State {
    match config.backend {
        Backend::Memory => memory(Arc::new(SimUserSubscriptions::demo()), config).0,
        Backend::Aws => from_aws_ports(jml_shared::aws::AwsPorts::connect(config).await, config),
    }
}
