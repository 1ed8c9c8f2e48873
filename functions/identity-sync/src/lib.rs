//! # identity-sync
//!
//! The Lambda that applies HR events to IAM Identity Center (the Identity Store). It accepts an
//! SQS batch (its FIFO queue, `ReportBatchItemFailures`) or a direct EventBridge event; the
//! record handling is shared by every target (`jml_core::lambda`).
//!
//! This crate is the whole Identity Store slice: the pure planner ([`planner`]), the target
//! ([`target`]: resolve, read, plan, apply, verify), its port ([`port`]), the AWS adapter
//! ([`aws`], the only code that calls the Identity Store), the simulator ([`sim`]), the pacer
//! wrapper ([`paced`]) and its configuration section ([`settings`]).

pub mod aws;
pub mod codes;
pub mod doctor;
pub mod document;
pub mod naming;
pub mod paced;
pub mod planner;
pub mod port;
pub mod reconcile;
pub mod settings;
pub mod sim;
pub mod target;

use std::sync::Arc;

use jml_core::config::{Backend, Config, ConfigError};
use jml_core::ledger::Ledger;
use jml_core::pacing::SlidingWindow;
use jml_core::ports::DeadLetterQueue;
use jml_core::sim::{SimDeadLetterQueue, SimLedger};

pub use jml_core::lambda::{RecordMeta, RecordReport, State, handle_sqs, handler, process_record};
pub use settings::Settings;
pub use target::{IDENTITY_TARGET, IdentitySync, SyncSettings};

use crate::paced::Paced;
use crate::port::IdentityStore;
use crate::sim::SimIdentityStore;

/// The in-memory services behind a `JML_BACKEND=memory` state, for inspection.
#[derive(Clone, Debug)]
pub struct MemoryBackend {
    pub store: Arc<SimIdentityStore>,
    pub ledger: Arc<SimLedger>,
    pub dlq: Arc<SimDeadLetterQueue>,
}

/// A state for the Identity Store target on the given ports (already paced as they should be).
pub fn state(
    store: Arc<dyn IdentityStore>,
    ledger: Arc<dyn Ledger>,
    dlq: Arc<dyn DeadLetterQueue>,
    config: &Config,
    settings: &Settings,
) -> State {
    let target = IdentitySync::new(
        store,
        SyncSettings {
            managed_groups: settings.managed_groups.clone(),
            group_recheck: std::time::Duration::from_secs(settings.group_recheck_seconds),
        },
    )
    .with_manager_links(ledger.clone());
    State::for_target(Arc::new(target), ledger, dlq, config)
}

/// A state on the given simulator, with an in-memory ledger and DLQ. With
/// `IDENTITY_STORE_RPS` set, every simulator call takes a slot of the pacer (one call, one
/// request).
pub fn memory(store: Arc<SimIdentityStore>, config: &Config) -> Result<(State, MemoryBackend), ConfigError> {
    let settings = Settings::from_config(config)?;
    let dlq = Arc::new(SimDeadLetterQueue::default());
    let ledger = Arc::new(SimLedger::default());
    let state = state(paced_calls(store.clone(), &settings), ledger.clone(), dlq.clone(), config, &settings);
    Ok((state, MemoryBackend { store, ledger, dlq }))
}

/// `store` behind a pacer of its own when `IDENTITY_STORE_RPS` is set (one instance's window,
/// each call one request: the simulators).
pub fn paced_calls(store: Arc<dyn IdentityStore>, settings: &Settings) -> Arc<dyn IdentityStore> {
    match settings.identity_store_rps {
        Some(rps) => Arc::new(Paced::calls(store, Arc::new(SlidingWindow::per_second(rps)))),
        None => store,
    }
}

/// A state on real (or endpoint-overridden) AWS services. With `IDENTITY_STORE_RPS` (default
/// 10), every HTTP request of the Identity Store client (pages and SDK retries included) takes a
/// slot of a sliding one-second window.
pub fn from_sdk_config(sdk: &aws_config::SdkConfig, config: &Config) -> Result<State, ConfigError> {
    let settings = Settings::from_config(config)?;
    let port = service(sdk, &settings);
    let ledger = Arc::new(jml_dynamodb::ledger(sdk, config.ledger_table.as_deref()));
    let dlq = Arc::new(jml_aws::dead_letter_queue(sdk, config.dlq_url.as_deref()));
    Ok(jml_aws::scheduled(state(port, ledger, dlq, config, &settings), sdk, config))
}

/// The Identity Store port on AWS as the function builds it (paced as configured).
pub fn service(sdk: &aws_config::SdkConfig, settings: &Settings) -> Arc<dyn IdentityStore> {
    let window = settings.identity_store_rps.map(|rps| Arc::new(SlidingWindow::per_second(rps)));
    let mut client = aws_sdk_identitystore::config::Builder::from(sdk);
    if let Some(w) = &window {
        let inner = sdk.http_client().unwrap_or_else(jml_aws::https_client);
        client = client.http_client(jml_aws::paced_http_client(inner, w.clone()));
    }
    let client = aws_sdk_identitystore::Client::from_conf(client.build());
    let store = Arc::new(aws::AwsIdentityStore::new(client, settings.identity_store_id.clone().unwrap_or_default()));
    match window {
        Some(w) => Arc::new(Paced::retry_after_only(store, w)),
        None => store,
    }
}

/// The state the configuration asks for: real AWS clients, or the embedded demo simulator
/// (seeded with the groups the sample events use).
pub async fn from_config(config: &Config) -> Result<State, ConfigError> {
    match config.backend {
        Backend::Memory => Ok(memory(Arc::new(sim::demo_identity_store()), config)?.0),
        Backend::Aws => from_sdk_config(&jml_aws::load_sdk_config().await, config),
    }
}

/// The target's reconciler (`jml reconcile`, the scheduled reconcile function) on a port.
pub fn reconciler(
    store: Arc<dyn IdentityStore>,
    config: &Config,
) -> Result<Arc<dyn jml_core::reconcile::Reconciler>, ConfigError> {
    let settings = Settings::from_config(config)?;
    Ok(Arc::new(reconcile::IdentityReconciler { store, managed: settings.managed_groups }))
}
