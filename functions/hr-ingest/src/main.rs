//! hr-ingest Lambda entry point: init only (logging, configuration, clients), then run.

use hr_ingest::handler;
use jml_core::config::Config;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL / RUST_LOG and AWS_LAMBDA_LOG_FORMAT=JSON.
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    config.check_ingest()?;
    tracing::info!(backend = ?config.backend, targets = config.target_queues.len(), "hr-ingest starting");
    let state = hr_ingest::from_config(&config).await;
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move { handler(state, event).await })).await
}
