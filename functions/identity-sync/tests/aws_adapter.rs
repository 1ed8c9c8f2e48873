//! Adapter tests with aws-smithy-mocks: request fields, error mapping, retries and call counts
//! for every port method.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use aws_sdk_identitystore::Client;
use aws_sdk_identitystore::operation::create_group_membership::{
    CreateGroupMembershipError, CreateGroupMembershipOutput,
};
use aws_sdk_identitystore::operation::create_user::{CreateUserError, CreateUserOutput};
use aws_sdk_identitystore::operation::delete_group_membership::{
    DeleteGroupMembershipError, DeleteGroupMembershipOutput,
};
use aws_sdk_identitystore::operation::describe_group::DescribeGroupOutput;
use aws_sdk_identitystore::operation::describe_user::DescribeUserOutput;
use aws_sdk_identitystore::operation::get_group_id::{GetGroupIdError, GetGroupIdOutput};
use aws_sdk_identitystore::operation::get_user_id::{GetUserIdError, GetUserIdOutput};
use aws_sdk_identitystore::operation::list_group_memberships_for_member::ListGroupMembershipsForMemberOutput;
use aws_sdk_identitystore::operation::list_users::ListUsersOutput;
use aws_sdk_identitystore::operation::update_user::{UpdateUserError, UpdateUserOutput};
use aws_sdk_identitystore::types::error::{
    ConflictException, ResourceNotFoundException, ThrottlingException, ValidationException,
};
use aws_sdk_identitystore::types::{
    AlternateIdentifier, ConflictExceptionReason, Email, ExternalId as SdkExternalId, GroupMembership, MemberId, Name,
    User, UserStatus as SdkUserStatus,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::Document;
use identity_sync::aws::AwsIdentityStore;
use identity_sync::document::from_document;
use identity_sync::port::{AttributeChange, ConflictReason, IdentityStore, ServiceError, UserAttributes, UserStatus};
use jml_core::contract::{ExternalId, ExternalIdPart, GroupName, UserName};
use serde_json::json;

const STORE: &str = "d-1234567890";
const USER: &str = "a1b2c3d4-5678-90ab-cdef-000000000001";
const GROUP: &str = "a1b2c3d4-5678-90ab-cdef-000000000002";

fn person() -> ExternalId {
    ExternalId { issuer: ExternalIdPart::parse("workday").unwrap(), id: ExternalIdPart::parse("100234").unwrap() }
}

fn get_user_id_ok() -> GetUserIdOutput {
    GetUserIdOutput::builder()
        .identity_store_id(STORE)
        .user_id(USER)
        .user_arn(format!("arn:aws:identitystore:::user/{USER}"))
        .build()
        .unwrap()
}

fn update_ok() -> UpdateUserOutput {
    UpdateUserOutput::builder().identity_store_id(STORE).user_id(USER).user_arn("arn").revision("2").build().unwrap()
}

fn not_found() -> ResourceNotFoundException {
    ResourceNotFoundException::builder().message("not found").build()
}

#[tokio::test]
async fn get_user_id_by_user_name_sends_the_unique_attribute_and_maps_not_found_to_none() {
    let found = mock!(Client::get_user_id)
        .match_requests(|r| {
            r.identity_store_id() == Some(STORE)
                && matches!(r.alternate_identifier(), Some(AlternateIdentifier::UniqueAttribute(u))
                    if u.attribute_path() == "userName" && u.attribute_value() == &Document::String("ada".into()))
        })
        .then_output(get_user_id_ok);
    let missing = mock!(Client::get_user_id).then_error(|| GetUserIdError::ResourceNotFoundException(not_found()));
    let client = mock_client!(aws_sdk_identitystore, RuleMode::Sequential, [&found, &missing]);
    let store = AwsIdentityStore::new(client, STORE);
    let name = UserName::parse("ada").unwrap();
    assert_eq!(store.find_user_by_user_name(&name).await.unwrap().as_deref(), Some(USER));
    assert_eq!(store.find_user_by_user_name(&name).await.unwrap(), None);
    assert_eq!(found.num_calls(), 1);
    assert_eq!(missing.num_calls(), 1);
}

#[tokio::test]
async fn get_user_id_by_external_id_sends_issuer_and_id() {
    let rule = mock!(Client::get_user_id)
        .match_requests(|r| {
            matches!(r.alternate_identifier(), Some(AlternateIdentifier::ExternalId(e)) if e.issuer() == "workday" && e.id() == "100234")
        })
        .then_output(get_user_id_ok);
    let client = mock_client!(aws_sdk_identitystore, [&rule]);
    let store = AwsIdentityStore::new(client, STORE);
    assert_eq!(store.find_user_by_external_id(&person()).await.unwrap().as_deref(), Some(USER));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn describe_user_asks_for_the_enterprise_extension_and_maps_every_attribute() {
    let rule = mock!(Client::describe_user)
        .match_requests(|r| r.user_id() == Some(USER) && r.extensions() == ["aws:identitystore:enterprise"])
        .then_output(|| {
            DescribeUserOutput::builder()
                .identity_store_id(STORE)
                .user_id(USER)
                .user_arn("arn")
                .revision("7")
                .user_name("ada")
                .display_name("Ada L")
                .name(Name::builder().given_name("Ada").family_name("L").build())
                .emails(Email::builder().value("ada@example.com").r#type("work").primary(true).build())
                .profile_url(person().marker())
                .user_status(SdkUserStatus::Disabled)
                .external_ids(SdkExternalId::builder().issuer("okta").id("x").build().unwrap())
                .extensions(
                    "aws:identitystore:enterprise",
                    identity_sync::document::to_document(&json!({"department": "R&D", "manager": {"value": "mgr-id"}})),
                )
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_identitystore, [&rule]);
    let store = AwsIdentityStore::new(client, STORE);
    let u = store.describe_user(USER).await.unwrap().unwrap();
    assert_eq!(u.status, UserStatus::Disabled);
    assert_eq!(u.attributes.user_name, "ada");
    assert_eq!(u.attributes.email.as_deref(), Some("ada@example.com"));
    assert_eq!(u.attributes.department.as_deref(), Some("R&D"));
    assert_eq!(u.attributes.manager_id.as_deref(), Some("mgr-id"));
    assert_eq!(u.attributes.marker, Some(person().marker()));
    assert_eq!(u.external_ids, vec![("okta".to_string(), "x".to_string())]);
}

fn attrs() -> UserAttributes {
    UserAttributes {
        user_name: "ada".into(),
        display_name: Some("Ada L".into()),
        given_name: Some("Ada".into()),
        family_name: Some("L".into()),
        email: Some("ada@example.com".into()),
        department: Some("R&D".into()),
        manager_id: Some("mgr-id".into()),
        marker: Some(person().marker()),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_user_sends_attributes_marker_and_enterprise_extension() {
    let rule = mock!(Client::create_user)
        .match_requests(|r| {
            let ext = r.extensions().and_then(|m| m.get("aws:identitystore:enterprise")).map(from_document);
            r.user_name() == Some("ada")
                && r.display_name() == Some("Ada L")
                && r.profile_url() == Some(person().marker().as_str())
                && {
                    let e = r.emails();
                    e.len() == 1 && e[0].value() == Some("ada@example.com") && e[0].primary()
                }
                && ext == Some(json!({"department": "R&D", "manager": {"value": "mgr-id"}}))
        })
        .then_output(|| {
            CreateUserOutput::builder()
                .identity_store_id(STORE)
                .user_id(USER)
                .user_arn("arn")
                .revision("1")
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_identitystore, [&rule]);
    let store = AwsIdentityStore::new(client, STORE);
    assert_eq!(store.create_user(&attrs()).await.unwrap(), USER);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn create_user_conflict_is_a_uniqueness_conflict_not_retryable() {
    let rule = mock!(Client::create_user).then_error(|| {
        CreateUserError::ConflictException(
            ConflictException::builder()
                .message("dup")
                .reason(ConflictExceptionReason::UniquenessConstraintViolation)
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_identitystore, [&rule]);
    let err = AwsIdentityStore::new(client, STORE).create_user(&attrs()).await.unwrap_err();
    assert_eq!(
        err,
        ServiceError::Conflict {
            op: identity_sync::port::op::CREATE_USER,
            reason: ConflictReason::UniquenessConstraintViolation
        }
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn update_user_sends_paths_and_values_and_removals_as_an_explicit_null() {
    let rule = mock!(Client::update_user)
        .match_requests(|r| {
            let ops = r.operations();
            ops.len() == 2
                && ops[0].attribute_path() == "title"
                && ops[0].attribute_value() == Some(&Document::String("Lead".into()))
                && ops[1].attribute_path() == "phoneNumbers"
                && ops[1].attribute_value() == Some(&Document::Null)
        })
        .then_output(update_ok);
    let client = mock_client!(aws_sdk_identitystore, [&rule]);
    let changes = [
        AttributeChange { path: "title", value: Some(json!("Lead")) },
        AttributeChange { path: "phoneNumbers", value: None },
    ];
    AwsIdentityStore::new(client, STORE).update_user(USER, &changes).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn set_user_status_is_an_update_of_user_status() {
    let rule = mock!(Client::update_user)
        .match_requests(|r| {
            r.operations().len() == 1
                && r.operations()[0].attribute_path() == "userStatus"
                && r.operations()[0].attribute_value() == Some(&Document::String("DISABLED".into()))
        })
        .then_output(update_ok);
    let client = mock_client!(aws_sdk_identitystore, [&rule]);
    AwsIdentityStore::new(client, STORE).set_user_status(USER, UserStatus::Disabled).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn update_user_errors_are_classified_and_validation_messages_redacted() {
    let concurrent = mock!(Client::update_user).then_error(|| {
        UpdateUserError::ConflictException(
            ConflictException::builder().reason(ConflictExceptionReason::ConcurrentModification).build(),
        )
    });
    let invalid = mock!(Client::update_user).then_error(|| {
        UpdateUserError::ValidationException(
            ValidationException::builder()
                .message("Value 'ada@example.com' at 'emails' failed to satisfy constraint")
                .build(),
        )
    });
    let missing = mock!(Client::update_user).then_error(|| UpdateUserError::ResourceNotFoundException(not_found()));
    let client = mock_client!(aws_sdk_identitystore, RuleMode::Sequential, [&concurrent, &invalid, &missing]);
    let store = AwsIdentityStore::new(client, STORE);
    let change = [AttributeChange { path: "title", value: Some(json!("x")) }];
    let e1 = store.update_user(USER, &change).await.unwrap_err();
    assert!(e1.is_retryable(), "concurrent modification is retried: {e1}");
    let e2 = store.update_user(USER, &change).await.unwrap_err();
    assert!(!e2.is_retryable());
    assert!(
        matches!(&e2, ServiceError::Validation { message, .. } if !message.contains("ada@example.com") && message.contains("emails")),
        "{e2}"
    );
    assert_eq!(
        store.update_user(USER, &change).await.unwrap_err(),
        ServiceError::NotFound { op: identity_sync::port::op::UPDATE_USER }
    );
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_then_succeeds() {
    let rule = mock!(Client::get_group_id)
        .sequence()
        .error(|| GetGroupIdError::ThrottlingException(ThrottlingException::builder().message("slow down").build()))
        .times(2)
        .output(|| {
            GetGroupIdOutput::builder().identity_store_id(STORE).group_id(GROUP).group_arn("arn").build().unwrap()
        })
        .build();
    let client = mock_client!(aws_sdk_identitystore, RuleMode::Sequential, [&rule], |c| c
        .retry_config(aws_sdk_identitystore::config::retry::RetryConfig::standard().with_max_attempts(3)));
    let store = AwsIdentityStore::new(client, STORE);
    let id = store.find_group_by_name(&GroupName::parse("jml-eng").unwrap()).await.unwrap();
    assert_eq!(id.as_deref(), Some(GROUP));
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn throttling_beyond_the_retry_budget_is_a_retryable_error() {
    let rule = mock!(Client::get_group_id)
        .sequence()
        .error(|| GetGroupIdError::ThrottlingException(ThrottlingException::builder().retry_after_seconds(2).build()))
        .times(5)
        .build();
    let client = mock_client!(aws_sdk_identitystore, RuleMode::Sequential, [&rule], |c| c
        .retry_config(aws_sdk_identitystore::config::retry::RetryConfig::standard().with_max_attempts(2)));
    let err =
        AwsIdentityStore::new(client, STORE).find_group_by_name(&GroupName::parse("g").unwrap()).await.unwrap_err();
    assert_eq!(
        err,
        ServiceError::Throttled { op: identity_sync::port::op::GET_GROUP_ID, retry_after_seconds: Some(2) }
    );
    assert!(err.is_retryable());
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn get_group_id_by_display_name_and_not_found() {
    let found = mock!(Client::get_group_id)
        .match_requests(|r| {
            matches!(r.alternate_identifier(), Some(AlternateIdentifier::UniqueAttribute(u))
                if u.attribute_path() == "displayName" && u.attribute_value() == &Document::String("jml-eng".into()))
        })
        .then_output(|| {
            GetGroupIdOutput::builder().identity_store_id(STORE).group_id(GROUP).group_arn("arn").build().unwrap()
        });
    let missing = mock!(Client::get_group_id).then_error(|| GetGroupIdError::ResourceNotFoundException(not_found()));
    let client = mock_client!(aws_sdk_identitystore, RuleMode::Sequential, [&found, &missing]);
    let store = AwsIdentityStore::new(client, STORE);
    let g = GroupName::parse("jml-eng").unwrap();
    assert_eq!(store.find_group_by_name(&g).await.unwrap().as_deref(), Some(GROUP));
    assert_eq!(store.find_group_by_name(&g).await.unwrap(), None);
}

#[tokio::test]
async fn describe_group_returns_the_display_name() {
    let rule = mock!(Client::describe_group).match_requests(|r| r.group_id() == Some(GROUP)).then_output(|| {
        DescribeGroupOutput::builder()
            .identity_store_id(STORE)
            .group_id(GROUP)
            .group_arn("arn")
            .revision("1")
            .display_name("jml-eng")
            .build()
            .unwrap()
    });
    let client = mock_client!(aws_sdk_identitystore, [&rule]);
    assert_eq!(AwsIdentityStore::new(client, STORE).group_name(GROUP).await.unwrap().as_deref(), Some("jml-eng"));
}

fn membership(id: &str, group: &str) -> GroupMembership {
    GroupMembership::builder()
        .identity_store_id(STORE)
        .membership_id(id)
        .membership_arn("arn")
        .group_id(group)
        .member_id(MemberId::UserId(USER.into()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn memberships_follow_every_page() {
    let page1 = mock!(Client::list_group_memberships_for_member)
        .match_requests(|r| r.next_token().is_none() && matches!(r.member_id(), Some(MemberId::UserId(u)) if u == USER))
        .then_output(|| {
            ListGroupMembershipsForMemberOutput::builder()
                .group_memberships(membership("m1", "g1"))
                .next_token("t2")
                .build()
                .unwrap()
        });
    let page2 = mock!(Client::list_group_memberships_for_member)
        .match_requests(|r| r.next_token() == Some("t2"))
        .then_output(|| {
            ListGroupMembershipsForMemberOutput::builder().group_memberships(membership("m2", "g2")).build().unwrap()
        });
    let client = mock_client!(aws_sdk_identitystore, RuleMode::MatchAny, [&page1, &page2]);
    let ms = AwsIdentityStore::new(client, STORE).memberships(USER).await.unwrap();
    let ids: Vec<&str> = ms.iter().map(|m| m.membership_id.as_str()).collect();
    assert_eq!(ids, vec!["m1", "m2"]);
    assert_eq!((page1.num_calls(), page2.num_calls()), (1, 1));
}

fn user(id: &str, marker: Option<String>) -> User {
    User::builder()
        .identity_store_id(STORE)
        .user_id(id)
        .user_arn("arn")
        .revision("1")
        .set_profile_url(marker)
        .build()
        .unwrap()
}

#[tokio::test]
async fn marker_scan_pages_through_list_users() {
    let page1 = mock!(Client::list_users)
        .match_requests(|r| r.next_token().is_none())
        .then_output(|| ListUsersOutput::builder().users(user("u1", None)).next_token("p2").build().unwrap());
    let page2 = mock!(Client::list_users)
        .match_requests(|r| r.next_token() == Some("p2"))
        .then_output(|| ListUsersOutput::builder().users(user(USER, Some(person().marker()))).build().unwrap());
    let client = mock_client!(aws_sdk_identitystore, RuleMode::MatchAny, [&page1, &page2]);
    let found = AwsIdentityStore::new(client, STORE).find_user_by_marker(&person().marker()).await.unwrap();
    assert_eq!(found.as_deref(), Some(USER));
}

#[tokio::test]
async fn membership_conflict_is_reported_and_already_gone_is_success() {
    let add = mock!(Client::create_group_membership)
        .match_requests(|r| {
            r.group_id() == Some(GROUP) && matches!(r.member_id(), Some(MemberId::UserId(u)) if u == USER)
        })
        .then_error(|| {
            CreateGroupMembershipError::ConflictException(
                ConflictException::builder().reason(ConflictExceptionReason::UniquenessConstraintViolation).build(),
            )
        });
    let add_ok = mock!(Client::create_group_membership).then_output(|| {
        CreateGroupMembershipOutput::builder()
            .identity_store_id(STORE)
            .membership_id("m")
            .membership_arn("arn")
            .build()
            .unwrap()
    });
    let del = mock!(Client::delete_group_membership)
        .match_requests(|r| r.membership_id() == Some("m1"))
        .then_error(|| DeleteGroupMembershipError::ResourceNotFoundException(not_found()));
    let del_ok = mock!(Client::delete_group_membership).then_output(|| DeleteGroupMembershipOutput::builder().build());
    let client = mock_client!(aws_sdk_identitystore, RuleMode::Sequential, [&add, &add_ok, &del, &del_ok]);
    let store = AwsIdentityStore::new(client, STORE);
    // The conflict reaches the target (which reads the membership back), never assumed "member".
    assert!(matches!(
        store.add_membership(GROUP, USER).await,
        Err(ServiceError::Conflict { op: identity_sync::port::op::CREATE_GROUP_MEMBERSHIP, .. })
    ));
    store.add_membership(GROUP, USER).await.unwrap();
    store.remove_membership("m1").await.unwrap();
    store.remove_membership("m2").await.unwrap();
    assert_eq!((add.num_calls(), add_ok.num_calls(), del.num_calls(), del_ok.num_calls()), (1, 1, 1, 1));
}
