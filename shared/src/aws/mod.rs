//! AWS adapters. The only code that talks to AWS.

mod document;
pub mod dynamodb;
pub mod identitystore;
pub mod sqs;

pub use document::{from_document, to_document};
pub use dynamodb::DynamoLedger;
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

/// The AWS implementations of the identity-sync ports, sharing one SDK configuration.
#[derive(Debug)]
pub struct AwsPorts {
    pub identity_store: AwsIdentityStore,
    pub dlq: SqsDeadLetterQueue,
    pub ledger: DynamoLedger,
}

impl AwsPorts {
    pub fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        identity_store_id: &str,
        dlq_url: &str,
        ledger_table: &str,
    ) -> Self {
        Self {
            identity_store: AwsIdentityStore::new(aws_sdk_identitystore::Client::new(sdk), identity_store_id),
            dlq: SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(sdk), dlq_url),
            ledger: DynamoLedger::new(aws_sdk_dynamodb::Client::new(sdk), ledger_table),
        }
    }

    /// Default credential chain and region.
    pub async fn connect(identity_store_id: &str, dlq_url: &str, ledger_table: &str) -> Self {
        Self::from_sdk_config(&load_sdk_config().await, identity_store_id, dlq_url, ledger_table)
    }
}
