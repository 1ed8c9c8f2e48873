//! # subscription-sync
//!
//! The Lambda that makes License Manager user-based subscriptions follow the person: product
//! subscriptions and EC2 instance associations for their Active Directory user name, all released
//! by a leaver so billing stops. Fed by its own SQS FIFO queue (or a direct EventBridge event);
//! the record handling is shared (`jml_core::lambda`). This crate is the whole slice: the AD user
//! name and its ownership ([`naming`]), the pure planner ([`planner`]), the target's I/O
//! ([`target`]: plan, apply, read-back), its parking codes ([`codes`]), port, AWS adapter,
//! simulator and configuration section.

pub mod aws;
pub mod codes;
pub mod doctor;
pub mod naming;
pub mod planner;
pub mod port;
pub mod reconcile;
pub mod settings;
pub mod sim;
pub mod target;

use std::sync::Arc;

use jml_core::config::{Backend, Config, ConfigError};
use jml_core::ledger::Ledger;
use jml_core::ports::DeadLetterQueue;
use jml_core::sim::SimLedger;

pub use codes::Code;
pub use jml_core::lambda::{RecordMeta, RecordReport, State, handle_sqs, handler, process_record};
pub use settings::Settings;

use crate::port::UserSubscriptions;
use crate::sim::SimUserSubscriptions;

/// The in-memory services behind a `JML_BACKEND=memory` state, for inspection.
pub type MemoryBackend = jml_core::sim::MemoryBackend<SimUserSubscriptions>;

/// A state for the target on the given ports (the ledger also holds the name claims).
pub fn state(
    service: Arc<dyn UserSubscriptions>,
    ledger: Arc<dyn Ledger>,
    dlq: Arc<dyn DeadLetterQueue>,
    config: &Config,
    settings: &Settings,
) -> State {
    let target = target::SubscriptionSync::new(service, settings.directory_username_rule);
    State::for_target(Arc::new(target), ledger, dlq, config)
}

/// A state on the given simulator with its own in-memory ledger and DLQ.
pub fn memory(service: Arc<SimUserSubscriptions>, config: &Config) -> Result<(State, MemoryBackend), ConfigError> {
    memory_with_ledger(service, Arc::new(SimLedger::default()), config)
}

/// A state on the given simulator sharing a ledger (as the deployed functions share one table).
pub fn memory_with_ledger(
    service: Arc<SimUserSubscriptions>,
    ledger: Arc<SimLedger>,
    config: &Config,
) -> Result<(State, MemoryBackend), ConfigError> {
    let settings = Settings::from_config(config)?;
    Ok(jml_core::sim::memory_state(service, ledger, |s, l, d| state(s, l, d, config, &settings)))
}

/// A state on real (or endpoint-overridden) AWS services.
pub fn from_sdk_config(sdk: &aws_config::SdkConfig, config: &Config) -> Result<State, ConfigError> {
    let settings = Settings::from_config(config)?;
    let service = service(sdk, &settings);
    let ledger = Arc::new(jml_dynamodb::ledger(sdk, config.ledger_table.as_deref()));
    let dlq = Arc::new(jml_aws::dead_letter_queue(sdk, config.dlq_url.as_deref()));
    Ok(jml_aws::scheduled(state(service, ledger, dlq, config, &settings), sdk, config))
}

/// The License Manager user subscriptions port on AWS as the function builds it.
pub fn service(sdk: &aws_config::SdkConfig, settings: &Settings) -> Arc<aws::AwsUserSubscriptions> {
    Arc::new(aws::AwsUserSubscriptions::new(
        aws_sdk_licensemanagerusersubscriptions::Client::new(sdk),
        settings.directory_id.clone().unwrap_or_default(),
        settings.directory_domain.clone(),
    ))
}

/// The state the configuration asks for: real AWS clients, or the embedded demo simulator.
pub async fn from_config(config: &Config) -> Result<State, ConfigError> {
    match config.backend {
        Backend::Memory => Ok(memory(Arc::new(SimUserSubscriptions::demo()), config)?.0),
        Backend::Aws => from_sdk_config(&jml_aws::load_sdk_config().await, config),
    }
}

/// The target's reconciler (`jml reconcile`, the scheduled reconcile function) on a port.
pub fn reconciler(
    service: Arc<dyn UserSubscriptions>,
    config: &Config,
) -> Result<Arc<dyn jml_core::reconcile::Reconciler>, ConfigError> {
    let settings = Settings::from_config(config)?;
    Ok(Arc::new(reconcile::SubscriptionReconciler { service, rule: settings.directory_username_rule }))
}
