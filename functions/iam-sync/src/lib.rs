//! # iam-sync
//!
//! The Lambda that makes an IAM user follow the person, for organisations that still need IAM
//! users: created under a department path with the mandatory permissions boundary and the
//! ExternalId tags, put in the mapped IAM groups; on leaving, locked down without being deleted
//! (no console password, access keys inactive, out of every group, tagged disabled). Fed by its
//! own SQS FIFO queue; the record handling is shared (`jml_core::lambda`). This crate is the
//! whole slice: naming and ownership rules ([`naming`]), the pure planner ([`planner`]), the
//! target's I/O ([`target`]), parking codes ([`codes`]), port, AWS adapter, simulator and
//! settings.

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

use crate::port::IamUsers;
use crate::sim::SimIam;

/// The in-memory services behind a `JML_BACKEND=memory` state, for inspection.
pub type MemoryBackend = jml_core::sim::MemoryBackend<SimIam>;

/// A state for the target on the given ports (the ledger also holds the name claims, made
/// through the engine's context).
pub fn state(
    service: Arc<dyn IamUsers>,
    ledger: Arc<dyn Ledger>,
    dlq: Arc<dyn DeadLetterQueue>,
    config: &Config,
    settings: &Settings,
) -> State {
    let target = target::IamSync::new(
        service,
        settings.groups.clone(),
        settings.path_prefix.clone(),
        settings.permissions_boundary.clone(),
    );
    State::for_target(Arc::new(target), ledger, dlq, config)
}

/// A state on the given simulator with its own in-memory ledger and DLQ.
pub fn memory(service: Arc<SimIam>, config: &Config) -> Result<(State, MemoryBackend), ConfigError> {
    memory_with_ledger(service, Arc::new(SimLedger::default()), config)
}

/// A state on the given simulator sharing a ledger (as the deployed functions share one table).
pub fn memory_with_ledger(
    service: Arc<SimIam>,
    ledger: Arc<SimLedger>,
    config: &Config,
) -> Result<(State, MemoryBackend), ConfigError> {
    let settings = Settings::from_config(config)?;
    Ok(jml_core::sim::memory_state(service, ledger, |s, l, d| state(s, l, d, config, &settings)))
}

/// A state on real (or endpoint-overridden) AWS services.
pub fn from_sdk_config(sdk: &aws_config::SdkConfig, config: &Config) -> Result<State, ConfigError> {
    let settings = Settings::from_config(config)?;
    let service = Arc::new(service(sdk));
    let ledger = Arc::new(jml_dynamodb::ledger(sdk, config.ledger_table.as_deref()));
    let dlq = Arc::new(jml_aws::dead_letter_queue(sdk, config.dlq_url.as_deref()));
    Ok(jml_aws::scheduled(state(service, ledger, dlq, config, &settings), sdk, config))
}

/// The port on AWS as the function builds it.
pub fn service(sdk: &aws_config::SdkConfig) -> aws::AwsIam {
    aws::AwsIam::new(aws_sdk_iam::Client::new(sdk))
}

/// The state the configuration asks for: real AWS clients, or the embedded demo simulator.
pub async fn from_config(config: &Config) -> Result<State, ConfigError> {
    match config.backend {
        Backend::Memory => Ok(memory(Arc::new(SimIam::demo()), config)?.0),
        Backend::Aws => from_sdk_config(&jml_aws::load_sdk_config().await, config),
    }
}

/// The target's reconciler (`jml reconcile`, the scheduled reconcile function) on a port.
pub fn reconciler(
    service: Arc<dyn IamUsers>,
    config: &Config,
) -> Result<Arc<dyn jml_core::reconcile::Reconciler>, ConfigError> {
    let s = Settings::from_config(config)?;
    Ok(Arc::new(reconcile::IamReconciler {
        service,
        groups: s.groups,
        path_prefix: s.path_prefix,
        permissions_boundary: s.permissions_boundary,
    }))
}
