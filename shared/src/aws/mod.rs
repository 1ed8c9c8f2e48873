//! AWS adapters. The only code that talks to AWS.

pub mod appstream;
mod document;
pub mod dynamodb;
pub mod iam;
pub mod identitystore;
pub mod lmus;
pub mod sqs;

pub use appstream::AwsAppStream;
pub use document::{from_document, to_document};
pub use dynamodb::DynamoLedger;
pub use iam::AwsIam;
pub use identitystore::AwsIdentityStore;
pub use lmus::AwsUserSubscriptions;
pub use sqs::{SqsDeadLetterQueue, SqsDlqSource, SqsPublisher};

use aws_config::retry::RetryConfig;

/// `Ok(true)`: the call did it; `Ok(false)`: the service answered that there was nothing to do
/// (`already`: e.g. ResourceAlreadyExists on a create, NotFound on a release); else the error.
pub(crate) fn did<T>(
    res: Result<T, crate::ports::ServiceError>,
    already: fn(&crate::ports::ServiceError) -> bool,
) -> Result<bool, crate::ports::ServiceError> {
    match res {
        Ok(_) => Ok(true),
        Err(e) if already(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn is_not_found(e: &crate::ports::ServiceError) -> bool {
    matches!(e, crate::ports::ServiceError::NotFound { .. })
}

/// Loads the SDK configuration once per process: default credential chain and region,
/// `AWS_ENDPOINT_URL` honoured (moto in tests), adaptive retry mode (client-side rate limiting on
/// throttling) with 5 attempts.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::adaptive().with_max_attempts(5))
        .load()
        .await
}

/// The AWS implementations of every port, sharing one SDK configuration. Each function uses
/// the ones its target needs (unused clients cost nothing until called).
#[derive(Debug)]
pub struct AwsPorts {
    pub identity_store: AwsIdentityStore,
    pub user_subscriptions: AwsUserSubscriptions,
    pub appstream: AwsAppStream,
    pub iam: AwsIam,
    pub dlq: SqsDeadLetterQueue,
    pub ledger: DynamoLedger,
    pub publisher: SqsPublisher,
    pub dlq_source: SqsDlqSource,
}

impl AwsPorts {
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, config: &crate::config::Config) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            identity_store: AwsIdentityStore::new(
                aws_sdk_identitystore::Client::new(sdk),
                text(&config.identity_store_id),
            ),
            user_subscriptions: AwsUserSubscriptions::new(
                aws_sdk_licensemanagerusersubscriptions::Client::new(sdk),
                text(&config.directory_id),
                config.directory_domain.clone(),
            ),
            appstream: AwsAppStream::new(aws_sdk_appstream::Client::new(sdk)),
            iam: AwsIam::new(aws_sdk_iam::Client::new(sdk)),
            dlq: SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(sdk), text(&config.dlq_url)),
            ledger: DynamoLedger::new(aws_sdk_dynamodb::Client::new(sdk), text(&config.ledger_table)),
            publisher: SqsPublisher::new(aws_sdk_sqs::Client::new(sdk)),
            dlq_source: SqsDlqSource::new(aws_sdk_sqs::Client::new(sdk)),
        }
    }

    /// Default credential chain and region.
    pub async fn connect(config: &crate::config::Config) -> Self {
        Self::from_sdk_config(&load_sdk_config().await, config)
    }
}

/// The DynamoDB ledger alone (for `jml audit`).
pub async fn dynamo_ledger(table: &str) -> DynamoLedger {
    DynamoLedger::new(aws_sdk_dynamodb::Client::new(&load_sdk_config().await), table)
}
