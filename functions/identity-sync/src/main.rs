//! identity-sync Lambda entry point: init only (logging, configuration, clients), then run.

use identity_sync::handler;
use jml_core::config::Config;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL / RUST_LOG and AWS_LAMBDA_LOG_FORMAT=JSON.
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    tracing::info!(backend = ?config.backend, dry_run = config.dry_run, max_concurrency = config.max_concurrency, "identity-sync starting");
    let state = identity_sync::from_config(&config).await?;
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move { handler(state, event).await })).await
}
