//! reconcile Lambda entry point: init only (logging, configuration, clients), then run.

use jml_core::config::Config;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL / RUST_LOG and AWS_LAMBDA_LOG_FORMAT=JSON.
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let app = reconcile::from_config(&config).await?;
    tracing::info!(backend = ?config.backend, targets = ?app.settings.targets, correct = app.settings.correct, "reconcile starting");
    let app = &app;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        reconcile::run(app, chrono::Utc::now()).await.map_err(Error::from)
    }))
    .await
}
