//! The AWS plumbing every function shares, naming no target: the SDK configuration, the pacer
//! in the HTTP client, error helpers, the SQS adapters (DLQ, publisher, DLQ source) and the
//! schedules of pending changes (EventBridge Scheduler). Each
//! target's own adapter lives in its slice; the DynamoDB ledger in `jml-dynamodb`.

mod paced;
pub mod schedules;
pub mod sqs;

pub use paced::{RequestLog, paced_http_client, recording_http_client, request_shape};
pub use schedules::EventBridgeSchedules;
pub use sqs::{SqsDeadLetterQueue, SqsDlqSource, SqsPublisher};

use aws_config::retry::RetryConfig;
use jml_core::ports::ServiceError;

/// `Ok(true)`: the call did it; `Ok(false)`: the service answered that there was nothing to do
/// (`already`: e.g. ResourceAlreadyExists on a create, NotFound on a release); else the error.
pub fn did<T>(res: Result<T, ServiceError>, already: fn(&ServiceError) -> bool) -> Result<bool, ServiceError> {
    match res {
        Ok(_) => Ok(true),
        Err(e) if already(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn is_not_found(e: &ServiceError) -> bool {
    matches!(e, ServiceError::NotFound { .. })
}

/// Loads the SDK configuration once per process: default credential chain and region,
/// `AWS_ENDPOINT_URL` honoured (moto in tests), adaptive retry mode (client-side rate limiting on
/// throttling) with 5 attempts.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    warm_tls_roots();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(RetryConfig::adaptive().with_max_attempts(5))
        .load()
        .await
}

/// The SDK's default HTTPS client (hyper 1, rustls with aws-lc), made once per process and
/// shared by every client (one connection pool, one copy of the root certificates), the paced
/// one included.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc)).build_https()
}

/// Reads the system's root certificates on a thread of their own while the process starts: the
/// HTTPS client reads them (once per process) when it makes its first connector, which is
/// otherwise on the first request's path (a cold start's largest single cost after the calls).
pub fn warm_tls_roots() {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let spawned = std::thread::Builder::new().name("tls-roots".into()).spawn(|| {
        drop(
            aws_smithy_http_client::ConnectorBuilder::default()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                .build(),
        )
    });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no thread to read the root certificates ahead; the first request reads them");
    }
}

/// The shared ports every target function uses on AWS: the DLQ (SQS).
pub fn dead_letter_queue(sdk: &aws_config::SdkConfig, dlq_url: Option<&str>) -> SqsDeadLetterQueue {
    SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(sdk), dlq_url.unwrap_or_default())
}

/// The schedules of a target function's pending changes, when the configuration names them
/// (`SCHEDULE_GROUP` and the rest): its state then accepts a change dated ahead
/// ([`jml_core::lambda::State::with_schedules`]).
pub fn schedules(
    sdk: &aws_config::SdkConfig,
    config: &jml_core::config::Config,
) -> Option<std::sync::Arc<dyn jml_core::ports::Schedules>> {
    let s = config.schedules.clone()?;
    Some(std::sync::Arc::new(EventBridgeSchedules::from_sdk(sdk, s)))
}

/// `state` scheduling its pending changes when the configuration names the schedules, else as
/// it is (a change dated ahead is parked).
pub fn scheduled(
    state: jml_core::lambda::State,
    sdk: &aws_config::SdkConfig,
    config: &jml_core::config::Config,
) -> jml_core::lambda::State {
    match schedules(sdk, config) {
        Some(s) => state.with_schedules(s),
        None => state,
    }
}

/// Service messages may quote the rejected value (`Value 'x' at 'userName' failed ...`): keep
/// the words and the quoted field path after `at`, drop any other quoted text, so no personal
/// data reaches a log or a DLQ attribute.
pub fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('\'') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let after = &after[1..];
        let Some(close) = after.find('\'') else {
            out.push_str("'<redacted>");
            return out;
        };
        let quoted = &after[..close];
        if out.ends_with(" at ") {
            out.push('\'');
            out.push_str(quoted);
            out.push('\'');
        } else {
            out.push_str("'<redacted>'");
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// `jml doctor`: the queue at `url` answers GetQueueAttributes; `Ok`: its ARN and depth.
pub async fn check_queue(sdk: &aws_config::SdkConfig, url: &str) -> Result<String, String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let out = aws_sdk_sqs::Client::new(sdk)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    let attrs = out.attributes();
    let get = |k: QueueAttributeName| attrs.and_then(|a| a.get(&k)).cloned().unwrap_or_else(|| "?".into());
    Ok(format!(
        "{} ({} message(s) waiting)",
        get(QueueAttributeName::QueueArn),
        get(QueueAttributeName::ApproximateNumberOfMessages)
    ))
}

#[cfg(test)]
mod tests {
    use super::redact_quoted;

    #[test]
    fn redacts_values_keeps_field_paths() {
        assert_eq!(
            redact_quoted("Value 'ada@example.com' at 'emails' failed; 'x"),
            "Value '<redacted>' at 'emails' failed; '<redacted>"
        );
        assert_eq!(redact_quoted("no quotes"), "no quotes");
    }
}
