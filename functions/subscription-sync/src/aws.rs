//! The License Manager user-based subscriptions adapter (`aws-sdk-licensemanagerusersubscriptions`,
//! restJson1). Every call names the Active Directory identity provider (the `IdentityProvider`
//! union's `ActiveDirectoryIdentityProvider` with the configured `DirectoryId`) and the domain.

use crate::port::op;
use async_trait::async_trait;
use aws_sdk_licensemanagerusersubscriptions::Client;
use aws_sdk_licensemanagerusersubscriptions::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_licensemanagerusersubscriptions::operation::associate_user::AssociateUserError;
use aws_sdk_licensemanagerusersubscriptions::operation::disassociate_user::DisassociateUserError;
use aws_sdk_licensemanagerusersubscriptions::operation::list_instances::ListInstancesError;
use aws_sdk_licensemanagerusersubscriptions::operation::list_product_subscriptions::ListProductSubscriptionsError;
use aws_sdk_licensemanagerusersubscriptions::operation::list_user_associations::ListUserAssociationsError;
use aws_sdk_licensemanagerusersubscriptions::operation::start_product_subscription::StartProductSubscriptionError;
use aws_sdk_licensemanagerusersubscriptions::operation::stop_product_subscription::StopProductSubscriptionError;
use aws_sdk_licensemanagerusersubscriptions::types::{ActiveDirectoryIdentityProvider, Filter, IdentityProvider};

use crate::naming::same_ad_user;
use crate::port::{ConflictReason, Op, ServiceError, SubscriptionInstance, UserSubscriptions};
use jml_aws::redact_quoted;

/// Association statuses that hold a seat: the ones known to be active (the service model types
/// `Status` as a free string), so a status nobody listed is not taken as held.
const HELD_ASSOCIATION: [&str; 2] = ["ASSOCIATED", "ASSOCIATING"];
/// Product subscription statuses that bill: the ones known to be active.
const HELD_PRODUCT: [&str; 3] = ["SUBSCRIBED", "ACTIVE", "PENDING"];

#[derive(Clone, Debug)]
pub struct AwsUserSubscriptions {
    client: Client,
    directory_id: String,
    domain: Option<String>,
}

impl AwsUserSubscriptions {
    pub fn new(client: Client, directory_id: impl Into<String>, domain: Option<String>) -> Self {
        Self { client, directory_id: directory_id.into(), domain }
    }

    fn identity_provider(&self) -> IdentityProvider {
        IdentityProvider::ActiveDirectoryIdentityProvider(
            ActiveDirectoryIdentityProvider::builder().directory_id(&self.directory_id).build(),
        )
    }
}

fn username_filter(username: &str) -> Filter {
    Filter::builder().attribute("Username").operation("Equals").value(username).build()
}

/// The modelled exception of an operation error (the same seven for every operation used).
trait Code {
    fn typed_code(&self) -> Option<&'static str>;
    fn typed_message(&self) -> Option<&str>;
}

macro_rules! code {
    ($($t:ident),*) => {$(
        impl Code for $t {
            fn typed_code(&self) -> Option<&'static str> {
                Some(match self {
                    $t::AccessDeniedException(_) => "AccessDeniedException",
                    $t::ConflictException(_) => "ConflictException",
                    $t::InternalServerException(_) => "InternalServerException",
                    $t::ResourceNotFoundException(_) => "ResourceNotFoundException",
                    $t::ServiceQuotaExceededException(_) => "ServiceQuotaExceededException",
                    $t::ThrottlingException(_) => "ThrottlingException",
                    $t::ValidationException(_) => "ValidationException",
                    _ => return None,
                })
            }
            fn typed_message(&self) -> Option<&str> {
                match self {
                    $t::AccessDeniedException(e) => e.message(),
                    $t::ValidationException(e) => e.message(),
                    _ => None,
                }
            }
        }
    )*};
}
code!(
    AssociateUserError,
    DisassociateUserError,
    ListInstancesError,
    ListProductSubscriptionsError,
    ListUserAssociationsError,
    StartProductSubscriptionError,
    StopProductSubscriptionError
);

fn classify<E: ProvideErrorMetadata + Code, R>(op: Op, err: &SdkError<E, R>) -> ServiceError {
    let Some(e) = err.as_service_error() else {
        return ServiceError::Unavailable {
            op,
            message: "dispatch failure, timeout or unparseable response".to_string(),
        };
    };
    let message = redact_quoted(e.message().or(e.typed_message()).unwrap_or_default());
    match e.typed_code().or(e.code()).unwrap_or_default() {
        "ConflictException" => ServiceError::Conflict { op, reason: ConflictReason::Unspecified },
        "ResourceNotFoundException" => ServiceError::NotFound { op },
        "ThrottlingException" => ServiceError::Throttled { op, retry_after_seconds: None },
        "ValidationException" => ServiceError::Validation { op, message },
        "AccessDeniedException" => ServiceError::AccessDenied { op, message },
        "ServiceQuotaExceededException" => ServiceError::QuotaExceeded { op },
        code => ServiceError::Unavailable { op, message: code.to_string() },
    }
}

/// The write reached its goal, or the service says it already had: a Conflict for a grant
/// (already subscribed or associated), a ResourceNotFound for a release (already gone).
fn done<T, E: ProvideErrorMetadata + Code, R>(
    op: Op,
    res: Result<T, SdkError<E, R>>,
    already: fn(&ServiceError) -> bool,
) -> Result<(), ServiceError> {
    match res.map_err(|e| classify(op, &e)) {
        Ok(_) => Ok(()),
        Err(e) if already(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

fn conflict(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Conflict { .. })
}

fn not_found(e: &ServiceError) -> bool {
    matches!(e, ServiceError::NotFound { .. })
}

impl AwsUserSubscriptions {
    /// ListUserAssociations on one instance, filtered to `username`, all pages: each row's status.
    async fn association_statuses(&self, instance_id: &str, username: &str) -> Result<Vec<String>, ServiceError> {
        Ok(self.association_rows(instance_id, Some(username)).await?.into_iter().map(|(_, s)| s).collect())
    }

    /// ListUserAssociations on an instance, all pages, filtered to `username` or not:
    /// (username, status) rows. A row answers the filter when its user name names the same AD
    /// user (without case): the service returns the name as it holds it, whatever spelling the
    /// filter used, and a read-back that dropped another spelling would miss a seat.
    async fn association_rows(
        &self,
        instance_id: &str,
        username: Option<&str>,
    ) -> Result<Vec<(String, String)>, ServiceError> {
        let mut pages = self
            .client
            .list_user_associations()
            .instance_id(instance_id)
            .identity_provider(self.identity_provider())
            .set_filters(username.map(|u| vec![username_filter(u)]))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op::LIST_USER_ASSOCIATIONS, &e))?;
            out.extend(
                page.instance_user_summaries()
                    .iter()
                    .filter(|s| username.is_none_or(|u| same_ad_user(s.username(), u)))
                    .map(|s| (s.username().to_string(), s.status().to_string())),
            );
        }
        Ok(out)
    }

    /// ListProductSubscriptions filtered to `username`, all pages: (product, status) per row.
    async fn product_rows(&self, username: &str) -> Result<Vec<(String, String)>, ServiceError> {
        Ok(self.subscription_rows(Some(username)).await?.into_iter().map(|(_, p, s)| (p, s)).collect())
    }

    /// ListProductSubscriptions (every product), all pages, filtered to `username` or not:
    /// (username, product, status) rows.
    async fn subscription_rows(&self, username: Option<&str>) -> Result<Vec<(String, String, String)>, ServiceError> {
        let mut pages = self
            .client
            .list_product_subscriptions()
            .identity_provider(self.identity_provider())
            .set_filters(username.map(|u| vec![username_filter(u)]))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op::LIST_PRODUCT_SUBSCRIPTIONS, &e))?;
            out.extend(
                page.product_user_summaries()
                    .iter()
                    .filter(|s| username.is_none_or(|u| same_ad_user(s.username(), u)))
                    .map(|s| (s.username().to_string(), s.product().to_string(), s.status().to_string())),
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl UserSubscriptions for AwsUserSubscriptions {
    async fn instances(&self) -> Result<Vec<SubscriptionInstance>, ServiceError> {
        let mut pages = self.client.list_instances().into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op::LIST_INSTANCES, &e))?;
            out.extend(page.instance_summaries().iter().map(|i| SubscriptionInstance {
                instance_id: i.instance_id().to_string(),
                products: i.products().to_vec(),
                status: i.status().to_string(),
            }));
        }
        Ok(out)
    }

    async fn associated_as(&self, instance_id: &str, username: &str) -> Result<Vec<String>, ServiceError> {
        let rows = self.association_rows(instance_id, Some(username)).await?;
        Ok(rows.into_iter().filter(|(_, s)| HELD_ASSOCIATION.contains(&s.as_str())).map(|(u, _)| u).collect())
    }

    async fn association_status(&self, instance_id: &str, username: &str) -> Result<Option<String>, ServiceError> {
        // A held row (or one being disassociated) wins over an old DISASSOCIATED one.
        let statuses = self.association_statuses(instance_id, username).await?;
        let current = statuses.iter().find(|s| HELD_ASSOCIATION.contains(&s.as_str()) || *s == "DISASSOCIATING");
        Ok(current.or(statuses.first()).cloned())
    }

    async fn associated_users(&self, instance_id: &str) -> Result<Vec<String>, ServiceError> {
        let rows = self.association_rows(instance_id, None).await?;
        Ok(rows.into_iter().filter(|(_, s)| HELD_ASSOCIATION.contains(&s.as_str())).map(|(u, _)| u).collect())
    }

    async fn subscribers(&self) -> Result<Vec<(String, String)>, ServiceError> {
        let rows = self.subscription_rows(None).await?;
        Ok(rows.into_iter().filter(|(_, _, s)| HELD_PRODUCT.contains(&s.as_str())).map(|(u, p, _)| (u, p)).collect())
    }

    async fn products(&self, username: &str) -> Result<Vec<(String, String)>, ServiceError> {
        let rows = self.subscription_rows(Some(username)).await?;
        Ok(rows.into_iter().filter(|(_, _, s)| HELD_PRODUCT.contains(&s.as_str())).map(|(u, p, _)| (u, p)).collect())
    }

    /// The License Manager User Guide ("Get started with user-based subscriptions", step 1):
    /// "License Manager automatically adds a subscription to Microsoft Remote Desktop Services
    /// (RDS)" with a Microsoft user-based subscription product.
    fn adds_rds_with_other_products(&self) -> bool {
        true
    }

    async fn product_status(&self, username: &str, product: &str) -> Result<Option<String>, ServiceError> {
        let statuses: Vec<String> =
            self.product_rows(username).await?.into_iter().filter(|(p, _)| p == product).map(|(_, s)| s).collect();
        let held = statuses.iter().find(|s| HELD_PRODUCT.contains(&s.as_str()));
        Ok(held.or(statuses.first()).cloned())
    }

    async fn start_product_subscription(&self, username: &str, product: &str) -> Result<(), ServiceError> {
        let op = op::START_PRODUCT_SUBSCRIPTION;
        let res = self
            .client
            .start_product_subscription()
            .username(username)
            .identity_provider(self.identity_provider())
            .product(product)
            .set_domain(self.domain.clone())
            .send()
            .await;
        done(op, res, conflict)
    }

    async fn stop_product_subscription(&self, username: &str, product: &str) -> Result<(), ServiceError> {
        let op = op::STOP_PRODUCT_SUBSCRIPTION;
        let res = self
            .client
            .stop_product_subscription()
            .username(username)
            .identity_provider(self.identity_provider())
            .product(product)
            .set_domain(self.domain.clone())
            .send()
            .await;
        done(op, res, not_found)
    }

    async fn associate_user(&self, username: &str, instance_id: &str) -> Result<(), ServiceError> {
        let op = op::ASSOCIATE_USER;
        let res = self
            .client
            .associate_user()
            .username(username)
            .instance_id(instance_id)
            .identity_provider(self.identity_provider())
            .set_domain(self.domain.clone())
            .send()
            .await;
        done(op, res, conflict)
    }

    async fn disassociate_user(&self, username: &str, instance_id: &str) -> Result<(), ServiceError> {
        let op = op::DISASSOCIATE_USER;
        let res = self
            .client
            .disassociate_user()
            .username(username)
            .instance_id(instance_id)
            .identity_provider(self.identity_provider())
            .set_domain(self.domain.clone())
            .send()
            .await;
        done(op, res, not_found)
    }
}
