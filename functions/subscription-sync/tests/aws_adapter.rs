//! License Manager user subscriptions adapter tests with aws-smithy-mocks: the IdentityProvider
//! union, the Username filter, idempotent error mapping, retries, pagination, call counts.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use aws_sdk_licensemanagerusersubscriptions::Client;
use aws_sdk_licensemanagerusersubscriptions::error::ErrorMetadata;
use aws_sdk_licensemanagerusersubscriptions::operation::associate_user::{AssociateUserError, AssociateUserOutput};
use aws_sdk_licensemanagerusersubscriptions::operation::disassociate_user::{
    DisassociateUserError, DisassociateUserOutput,
};
use aws_sdk_licensemanagerusersubscriptions::operation::list_instances::ListInstancesOutput;
use aws_sdk_licensemanagerusersubscriptions::operation::list_product_subscriptions::ListProductSubscriptionsOutput;
use aws_sdk_licensemanagerusersubscriptions::operation::list_user_associations::{
    ListUserAssociationsError, ListUserAssociationsOutput,
};
use aws_sdk_licensemanagerusersubscriptions::operation::start_product_subscription::{
    StartProductSubscriptionError, StartProductSubscriptionOutput,
};
use aws_sdk_licensemanagerusersubscriptions::operation::stop_product_subscription::{
    StopProductSubscriptionError, StopProductSubscriptionOutput,
};
use aws_sdk_licensemanagerusersubscriptions::types::error::{
    ConflictException, ResourceNotFoundException, ThrottlingException, ValidationException,
};
use aws_sdk_licensemanagerusersubscriptions::types::{
    ActiveDirectoryIdentityProvider, Filter, IdentityProvider, InstanceSummary, InstanceUserSummary, ProductUserSummary,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use subscription_sync::aws::AwsUserSubscriptions;
use subscription_sync::port::{ServiceError, UserSubscriptions};

const DIRECTORY: &str = "d-0123456789";
const INSTANCE: &str = "i-0a1b2c3d4e5f60001";

fn provider_is_ours(p: Option<&IdentityProvider>) -> bool {
    matches!(p, Some(IdentityProvider::ActiveDirectoryIdentityProvider(ad)) if ad.directory_id() == Some(DIRECTORY))
}

fn filters_user(f: &[Filter]) -> bool {
    f.len() == 1
        && f[0].attribute() == Some("Username")
        && f[0].operation() == Some("Equals")
        && f[0].value() == Some("alovelace")
}

fn adapter(client: Client) -> AwsUserSubscriptions {
    AwsUserSubscriptions::new(client, DIRECTORY, Some("corp.example.com".to_string()))
}

#[tokio::test]
async fn list_instances_follows_every_page() {
    let instance =
        |id: &str, p: &str| InstanceSummary::builder().instance_id(id).status("ACTIVE").products(p).build().unwrap();
    let page1 = mock!(Client::list_instances).match_requests(|r| r.next_token().is_none()).then_output(move || {
        ListInstancesOutput::builder()
            .instance_summaries(instance(INSTANCE, "OFFICE_PROFESSIONAL_PLUS"))
            .next_token("t")
            .build()
    });
    let page2 = mock!(Client::list_instances).match_requests(|r| r.next_token() == Some("t")).then_output(move || {
        ListInstancesOutput::builder()
            .instance_summaries(instance("i-0a1b2c3d4e5f60002", "VISUAL_STUDIO_PROFESSIONAL"))
            .build()
    });
    let client = mock_client!(aws_sdk_licensemanagerusersubscriptions, RuleMode::MatchAny, [&page1, &page2]);
    let list = adapter(client).instances().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|i| i.instance_id.as_str()).collect();
    assert_eq!(ids, vec![INSTANCE, "i-0a1b2c3d4e5f60002"]);
    assert_eq!(list[0].products, vec!["OFFICE_PROFESSIONAL_PLUS"]);
}

#[tokio::test]
async fn user_associations_send_the_directory_and_filter_and_ignore_disassociated_rows() {
    let summary = |status: &str| {
        InstanceUserSummary::builder()
            .username("alovelace")
            .instance_id(INSTANCE)
            .status(status)
            .identity_provider(IdentityProvider::ActiveDirectoryIdentityProvider(
                ActiveDirectoryIdentityProvider::builder().directory_id(DIRECTORY).build(),
            ))
            .build()
            .unwrap()
    };
    let associated = mock!(Client::list_user_associations)
        .match_requests(|r| {
            r.instance_id() == Some(INSTANCE) && provider_is_ours(r.identity_provider()) && filters_user(r.filters())
        })
        .then_output(move || {
            ListUserAssociationsOutput::builder().instance_user_summaries(summary("ASSOCIATED")).build()
        });
    let gone = mock!(Client::list_user_associations).then_output(move || {
        ListUserAssociationsOutput::builder().instance_user_summaries(summary("DISASSOCIATED")).build()
    });
    let starting = mock!(Client::list_user_associations).then_output(move || {
        ListUserAssociationsOutput::builder().instance_user_summaries(summary("ASSOCIATING")).build()
    });
    let unknown = mock!(Client::list_user_associations).then_output(move || {
        ListUserAssociationsOutput::builder().instance_user_summaries(summary("SOME_NEW_STATUS")).build()
    });
    let client = mock_client!(
        aws_sdk_licensemanagerusersubscriptions,
        RuleMode::Sequential,
        [&associated, &gone, &starting, &unknown]
    );
    let a = adapter(client);
    let ada = vec!["alovelace".to_string()];
    assert_eq!(a.associated_as(INSTANCE, "alovelace").await.unwrap(), ada);
    assert!(a.associated_as(INSTANCE, "alovelace").await.unwrap().is_empty());
    assert_eq!(a.associated_as(INSTANCE, "alovelace").await.unwrap(), ada, "ASSOCIATING holds the seat");
    assert!(
        a.associated_as(INSTANCE, "alovelace").await.unwrap().is_empty(),
        "held only from the known-active statuses"
    );
}

#[tokio::test]
async fn product_subscriptions_held_are_those_with_a_known_active_status() {
    let p = |product: &str, status: &str| {
        ProductUserSummary::builder()
            .username("alovelace")
            .product(product)
            .status(status)
            .identity_provider(IdentityProvider::ActiveDirectoryIdentityProvider(
                ActiveDirectoryIdentityProvider::builder().directory_id(DIRECTORY).build(),
            ))
            .build()
            .unwrap()
    };
    let rule = mock!(Client::list_product_subscriptions)
        .match_requests(|r| provider_is_ours(r.identity_provider()) && filters_user(r.filters()))
        .then_output(move || {
            ListProductSubscriptionsOutput::builder()
                .product_user_summaries(p("OFFICE_PROFESSIONAL_PLUS", "ACTIVE"))
                .product_user_summaries(p("VISUAL_STUDIO_PROFESSIONAL", "DELETED"))
                .product_user_summaries(p("VISUAL_STUDIO_ENTERPRISE", "SUBSCRIBED"))
                .product_user_summaries(p("REMOTE_DESKTOP_SERVICES", "PENDING"))
                .product_user_summaries(p("OFFICE_PROFESSIONAL_PLUS_2", "SOME_NEW_STATUS"))
                .build()
        });
    let client = mock_client!(aws_sdk_licensemanagerusersubscriptions, [&rule]);
    let held: Vec<String> = adapter(client).products("alovelace").await.unwrap().into_iter().map(|(_, p)| p).collect();
    assert_eq!(held, vec!["OFFICE_PROFESSIONAL_PLUS", "VISUAL_STUDIO_ENTERPRISE", "REMOTE_DESKTOP_SERVICES"]);
}

/// Issue 22 B: Active Directory compares user names without case and License Manager lists a
/// row under the name as it holds it. A filtered read for `alovelace` that the service answers
/// with `ALovelace` rows is that user's seat: the read-back keeps it, under the service's exact
/// spelling (the one a release must send), and still drops another user's row.
#[tokio::test]
async fn a_filtered_read_keeps_rows_the_service_holds_under_another_spelling_of_the_name() {
    fn idp() -> IdentityProvider {
        IdentityProvider::ActiveDirectoryIdentityProvider(
            ActiveDirectoryIdentityProvider::builder().directory_id(DIRECTORY).build(),
        )
    }
    let product = |user: &str| {
        ProductUserSummary::builder()
            .username(user)
            .product("OFFICE_PROFESSIONAL_PLUS")
            .status("ACTIVE")
            .identity_provider(idp())
            .build()
            .unwrap()
    };
    let seat = |user: &str| {
        InstanceUserSummary::builder()
            .username(user)
            .instance_id(INSTANCE)
            .status("ASSOCIATED")
            .identity_provider(idp())
            .build()
            .unwrap()
    };
    let products = mock!(Client::list_product_subscriptions).match_requests(|r| filters_user(r.filters())).then_output(
        move || {
            ListProductSubscriptionsOutput::builder()
                .product_user_summaries(product("ALovelace"))
                .product_user_summaries(product("abyron"))
                .build()
        },
    );
    let seats =
        mock!(Client::list_user_associations).match_requests(|r| filters_user(r.filters())).then_output(move || {
            ListUserAssociationsOutput::builder()
                .instance_user_summaries(seat("ALOVELACE"))
                .instance_user_summaries(seat("abyron"))
                .build()
        });
    let client = mock_client!(aws_sdk_licensemanagerusersubscriptions, RuleMode::MatchAny, [&products, &seats]);
    let a = adapter(client);
    assert_eq!(
        a.products("alovelace").await.unwrap(),
        vec![("ALovelace".to_string(), "OFFICE_PROFESSIONAL_PLUS".to_string())]
    );
    assert_eq!(a.associated_as(INSTANCE, "alovelace").await.unwrap(), vec!["ALOVELACE".to_string()]);
    assert_eq!(a.association_status(INSTANCE, "alovelace").await.unwrap().as_deref(), Some("ASSOCIATED"));
    assert!(a.adds_rds_with_other_products(), "the user guide: License Manager adds the RDS SAL itself");
}

#[tokio::test]
async fn start_and_associate_send_user_product_instance_directory_and_domain_and_treat_conflict_as_done() {
    let start = mock!(Client::start_product_subscription)
        .match_requests(|r| {
            r.username() == Some("alovelace")
                && r.product() == Some("OFFICE_PROFESSIONAL_PLUS")
                && r.domain() == Some("corp.example.com")
                && provider_is_ours(r.identity_provider())
        })
        .then_output(|| StartProductSubscriptionOutput::builder().build());
    let start_again = mock!(Client::start_product_subscription).then_error(|| {
        StartProductSubscriptionError::ConflictException(ConflictException::builder().message("exists").build())
    });
    let assoc = mock!(Client::associate_user)
        .match_requests(|r| {
            r.username() == Some("alovelace")
                && r.instance_id() == Some(INSTANCE)
                && provider_is_ours(r.identity_provider())
        })
        .then_output(|| AssociateUserOutput::builder().build());
    let assoc_again = mock!(Client::associate_user)
        .then_error(|| AssociateUserError::ConflictException(ConflictException::builder().build()));
    let client = mock_client!(
        aws_sdk_licensemanagerusersubscriptions,
        RuleMode::Sequential,
        [&start, &start_again, &assoc, &assoc_again]
    );
    let a = adapter(client);
    a.start_product_subscription("alovelace", "OFFICE_PROFESSIONAL_PLUS").await.unwrap();
    a.start_product_subscription("alovelace", "OFFICE_PROFESSIONAL_PLUS").await.unwrap();
    a.associate_user("alovelace", INSTANCE).await.unwrap();
    a.associate_user("alovelace", INSTANCE).await.unwrap();
    assert_eq!((start.num_calls(), start_again.num_calls(), assoc.num_calls(), assoc_again.num_calls()), (1, 1, 1, 1));
}

#[tokio::test]
async fn disassociate_and_stop_treat_not_found_as_done() {
    let dis = mock!(Client::disassociate_user)
        .match_requests(|r| {
            r.username() == Some("alovelace")
                && r.instance_id() == Some(INSTANCE)
                && provider_is_ours(r.identity_provider())
        })
        .then_output(|| DisassociateUserOutput::builder().build());
    let dis_gone = mock!(Client::disassociate_user)
        .then_error(|| DisassociateUserError::ResourceNotFoundException(ResourceNotFoundException::builder().build()));
    let stop = mock!(Client::stop_product_subscription)
        .match_requests(|r| r.product() == Some("OFFICE_PROFESSIONAL_PLUS") && provider_is_ours(r.identity_provider()))
        .then_output(|| StopProductSubscriptionOutput::builder().build());
    let stop_gone = mock!(Client::stop_product_subscription).then_error(|| {
        StopProductSubscriptionError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
    });
    let client = mock_client!(
        aws_sdk_licensemanagerusersubscriptions,
        RuleMode::Sequential,
        [&dis, &dis_gone, &stop, &stop_gone]
    );
    let a = adapter(client);
    a.disassociate_user("alovelace", INSTANCE).await.unwrap();
    a.disassociate_user("alovelace", INSTANCE).await.unwrap();
    a.stop_product_subscription("alovelace", "OFFICE_PROFESSIONAL_PLUS").await.unwrap();
    a.stop_product_subscription("alovelace", "OFFICE_PROFESSIONAL_PLUS").await.unwrap();
    assert_eq!((dis.num_calls(), dis_gone.num_calls(), stop.num_calls(), stop_gone.num_calls()), (1, 1, 1, 1));
}

#[tokio::test]
async fn validation_is_permanent_and_redacted_throttling_is_retried_then_retryable() {
    let invalid = mock!(Client::associate_user).then_error(|| {
        AssociateUserError::ValidationException(
            ValidationException::builder()
                .message("Value 'alovelace' at 'username' failed: directory mismatch")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_licensemanagerusersubscriptions, [&invalid]);
    let e = adapter(client).associate_user("alovelace", INSTANCE).await.unwrap_err();
    assert!(!e.is_retryable());
    assert!(
        matches!(&e, ServiceError::Validation { message, .. } if !message.contains("alovelace") && message.contains("directory mismatch")),
        "{e}"
    );

    let throttled = mock!(Client::list_user_associations)
        .sequence()
        // A real response carries the error code in its metadata; the SDK's retry classifier
        // recognises ThrottlingException by that code (the LMUS model does not mark it retryable).
        .error(|| {
            ListUserAssociationsError::ThrottlingException(
                ThrottlingException::builder()
                    .meta(ErrorMetadata::builder().code("ThrottlingException").build())
                    .build(),
            )
        })
        .times(3)
        .build();
    let client = mock_client!(aws_sdk_licensemanagerusersubscriptions, RuleMode::Sequential, [&throttled], |c| c
        .retry_config(
            aws_sdk_licensemanagerusersubscriptions::config::retry::RetryConfig::standard().with_max_attempts(3)
        ));
    let e = adapter(client).associated_as(INSTANCE, "alovelace").await.unwrap_err();
    assert_eq!(
        e,
        ServiceError::Throttled { op: subscription_sync::port::op::LIST_USER_ASSOCIATIONS, retry_after_seconds: None }
    );
    assert!(e.is_retryable());
    assert_eq!(throttled.num_calls(), 3, "the SDK retried before giving up");
}

#[tokio::test]
async fn statuses_of_an_association_and_a_product_are_read_for_the_asynchronous_steps() {
    let assoc = |status: &str| {
        InstanceUserSummary::builder()
            .username("alovelace")
            .instance_id(INSTANCE)
            .status(status)
            .identity_provider(IdentityProvider::ActiveDirectoryIdentityProvider(
                ActiveDirectoryIdentityProvider::builder().directory_id(DIRECTORY).build(),
            ))
            .build()
            .unwrap()
    };
    let leaving = mock!(Client::list_user_associations)
        .match_requests(|r| r.instance_id() == Some(INSTANCE) && filters_user(r.filters()))
        .then_output(move || {
            ListUserAssociationsOutput::builder()
                .instance_user_summaries(assoc("DISASSOCIATED"))
                .instance_user_summaries(assoc("DISASSOCIATING"))
                .build()
        });
    let none = mock!(Client::list_user_associations).then_output(|| ListUserAssociationsOutput::builder().build());
    let product = |p: &str, status: &str| {
        ProductUserSummary::builder()
            .username("alovelace")
            .product(p)
            .status(status)
            .identity_provider(IdentityProvider::ActiveDirectoryIdentityProvider(
                ActiveDirectoryIdentityProvider::builder().directory_id(DIRECTORY).build(),
            ))
            .build()
            .unwrap()
    };
    let pending = mock!(Client::list_product_subscriptions).match_requests(|r| filters_user(r.filters())).then_output(
        move || {
            ListProductSubscriptionsOutput::builder()
                .product_user_summaries(product("VISUAL_STUDIO_PROFESSIONAL", "ACTIVE"))
                .product_user_summaries(product("OFFICE_PROFESSIONAL_PLUS", "PENDING"))
                .build()
        },
    );
    let client =
        mock_client!(aws_sdk_licensemanagerusersubscriptions, RuleMode::Sequential, [&leaving, &none, &pending]);
    let a = adapter(client);
    assert_eq!(a.association_status(INSTANCE, "alovelace").await.unwrap().as_deref(), Some("DISASSOCIATING"));
    assert_eq!(a.association_status(INSTANCE, "alovelace").await.unwrap(), None);
    assert_eq!(a.product_status("alovelace", "OFFICE_PROFESSIONAL_PLUS").await.unwrap().as_deref(), Some("PENDING"));
}
