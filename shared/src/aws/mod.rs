//! AWS adapters. The only code that talks to AWS.

mod document;
pub mod identitystore;
pub mod sqs;

pub use document::{from_document, to_document};
pub use identitystore::AwsIdentityStore;
pub use sqs::SqsDeadLetterQueue;

use aws_config::retry::RetryConfig;

/// Loads the SDK configuration once per process: default credential chain and region,
/// `AWS_ENDPOINT_URL` honoured (moto in tests), adaptive retry mode (client-side rate limiting on
/// throttling) with 5 attempts.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::adaptive().with_max_attempts(5))
        .load()
        .await
}

/// The AWS implementations of the identity ports, sharing one SDK configuration.
pub async fn connect(identity_store_id: &str, dlq_url: &str) -> (AwsIdentityStore, SqsDeadLetterQueue) {
    let sdk = load_sdk_config().await;
    (
        AwsIdentityStore::new(aws_sdk_identitystore::Client::new(&sdk), identity_store_id),
        SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(&sdk), dlq_url),
    )
}
