//! AppStream 2.0 adapter tests with aws-smithy-mocks: every call the adapter makes, the request
//! shapes (USERPOOL, MessageAction, DeleteUser as the Terraform provider sends it, batches of 25) and every error mapping.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use appstream_sync::aws::AwsAppStream;
use appstream_sync::port::{AppStreamNewUser, AppStreamUsers, ServiceError, StackAssociationError, WelcomeEmail};
use aws_sdk_appstream::Client;
use aws_sdk_appstream::error::ErrorMetadata;
use aws_sdk_appstream::operation::batch_associate_user_stack::BatchAssociateUserStackOutput;
use aws_sdk_appstream::operation::batch_disassociate_user_stack::BatchDisassociateUserStackOutput;
use aws_sdk_appstream::operation::create_user::{CreateUserError, CreateUserOutput};
use aws_sdk_appstream::operation::delete_user::{DeleteUserError, DeleteUserOutput};
use aws_sdk_appstream::operation::describe_user_stack_associations::{
    DescribeUserStackAssociationsError, DescribeUserStackAssociationsOutput,
};
use aws_sdk_appstream::operation::describe_users::{DescribeUsersError, DescribeUsersOutput};
use aws_sdk_appstream::operation::disable_user::{DisableUserError, DisableUserOutput};
use aws_sdk_appstream::types::error::{
    InvalidParameterCombinationException, LimitExceededException, OperationNotPermittedException,
    ResourceAlreadyExistsException, ResourceNotFoundException,
};
use aws_sdk_appstream::types::{
    AuthenticationType, MessageAction, User, UserStackAssociation, UserStackAssociationError,
    UserStackAssociationErrorCode,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};

const ADA: &str = "ada.lovelace@example.com";

fn meta(code: &str) -> ErrorMetadata {
    // A real response carries its error code in the metadata; the adapter classifies by it.
    ErrorMetadata::builder().code(code).message("user 'ada.lovelace@example.com' failed").build()
}

fn new_user(welcome: WelcomeEmail) -> AppStreamNewUser {
    AppStreamNewUser {
        user_name: ADA.into(),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        welcome,
    }
}

#[tokio::test]
async fn create_user_sends_userpool_names_and_the_welcome_choice() {
    let send = mock!(Client::create_user)
        .match_requests(|r| {
            r.authentication_type() == Some(&AuthenticationType::Userpool)
                && r.user_name() == Some(ADA)
                && r.first_name() == Some("Ada")
                && r.last_name() == Some("Lovelace")
                && r.message_action().is_none()
        })
        .then_output(|| CreateUserOutput::builder().build());
    let client = mock_client!(aws_sdk_appstream, [&send]);
    assert!(AwsAppStream::new(client).create_user(&new_user(WelcomeEmail::Send)).await.unwrap());
    assert_eq!(send.num_calls(), 1);

    let suppress = mock!(Client::create_user)
        .match_requests(|r| r.message_action() == Some(&MessageAction::Suppress))
        .then_output(|| CreateUserOutput::builder().build());
    let client = mock_client!(aws_sdk_appstream, [&suppress]);
    assert!(AwsAppStream::new(client).create_user(&new_user(WelcomeEmail::Suppress)).await.unwrap());
    assert_eq!(suppress.num_calls(), 1);
}

#[tokio::test]
async fn create_user_errors_already_exists_is_false_limit_is_quota_combination_is_permanent() {
    let exists = mock!(Client::create_user).then_error(|| {
        CreateUserError::ResourceAlreadyExistsException(
            ResourceAlreadyExistsException::builder().meta(meta("ResourceAlreadyExistsException")).build(),
        )
    });
    let client = mock_client!(aws_sdk_appstream, [&exists]);
    assert!(!AwsAppStream::new(client).create_user(&new_user(WelcomeEmail::Send)).await.unwrap());

    let limit = mock!(Client::create_user).then_error(|| {
        CreateUserError::LimitExceededException(
            LimitExceededException::builder().meta(meta("LimitExceededException")).build(),
        )
    });
    let client = mock_client!(aws_sdk_appstream, [&limit]);
    let e = AwsAppStream::new(client).create_user(&new_user(WelcomeEmail::Send)).await.unwrap_err();
    assert_eq!(e, ServiceError::QuotaExceeded { op: appstream_sync::port::op::CREATE_USER });

    let combo = mock!(Client::create_user).then_error(|| {
        CreateUserError::InvalidParameterCombinationException(
            InvalidParameterCombinationException::builder().meta(meta("InvalidParameterCombinationException")).build(),
        )
    });
    let client = mock_client!(aws_sdk_appstream, [&combo]);
    let e = AwsAppStream::new(client).create_user(&new_user(WelcomeEmail::Send)).await.unwrap_err();
    assert!(!e.is_retryable());
    assert!(matches!(&e, ServiceError::Validation { message, .. } if !message.contains("ada.lovelace")), "{e}");
}

#[tokio::test]
async fn disable_and_delete_report_a_missing_user_as_false() {
    let disable = mock!(Client::disable_user)
        .match_requests(|r| {
            r.authentication_type() == Some(&AuthenticationType::Userpool) && r.user_name() == Some(ADA)
        })
        .then_output(|| DisableUserOutput::builder().build());
    let disable_gone = mock!(Client::disable_user).then_error(|| {
        DisableUserError::ResourceNotFoundException(
            ResourceNotFoundException::builder().meta(meta("ResourceNotFoundException")).build(),
        )
    });
    // The Terraform provider's aws_appstream_user delete: UserName + USERPOOL, NotFound is done.
    let delete = mock!(Client::delete_user)
        .match_requests(|r| {
            r.authentication_type() == Some(&AuthenticationType::Userpool) && r.user_name() == Some(ADA)
        })
        .then_output(|| DeleteUserOutput::builder().build());
    let delete_gone = mock!(Client::delete_user).then_error(|| {
        DeleteUserError::ResourceNotFoundException(
            ResourceNotFoundException::builder().meta(meta("ResourceNotFoundException")).build(),
        )
    });
    let client =
        mock_client!(aws_sdk_appstream, RuleMode::Sequential, [&disable, &disable_gone, &delete, &delete_gone]);
    let a = AwsAppStream::new(client);
    assert!(a.disable_user(ADA).await.unwrap());
    assert!(!a.disable_user(ADA).await.unwrap(), "already gone is success");
    assert!(a.delete_user(ADA).await.unwrap());
    assert!(!a.delete_user(ADA).await.unwrap(), "already gone is success");
    assert_eq!((delete.num_calls(), delete_gone.num_calls()), (1, 1));
}

#[tokio::test]
async fn describe_users_reads_every_page_of_the_pool() {
    let user = |n: &str, enabled: bool| {
        User::builder().user_name(n).enabled(enabled).authentication_type(AuthenticationType::Userpool).build()
    };
    let first = mock!(Client::describe_users)
        .match_requests(|r| r.authentication_type() == Some(&AuthenticationType::Userpool) && r.next_token().is_none())
        .then_output(move || DescribeUsersOutput::builder().users(user(ADA, false)).next_token("p2").build());
    let second = mock!(Client::describe_users)
        .match_requests(|r| r.next_token() == Some("p2"))
        .then_output(move || DescribeUsersOutput::builder().users(user("alan@example.com", true)).build());
    let client = mock_client!(aws_sdk_appstream, RuleMode::Sequential, [&first, &second]);
    let users = AwsAppStream::new(client).users().await.unwrap();
    let got: Vec<(&str, bool)> = users.iter().map(|u| (u.user_name.as_str(), u.enabled)).collect();
    assert_eq!(got, vec![(ADA, false), ("alan@example.com", true)]);
    let denied = mock!(Client::describe_users).then_error(|| {
        DescribeUsersError::OperationNotPermittedException(
            OperationNotPermittedException::builder().meta(meta("OperationNotPermittedException")).build(),
        )
    });
    let client = mock_client!(aws_sdk_appstream, [&denied]);
    assert!(!AwsAppStream::new(client).users().await.unwrap_err().is_retryable());
}

fn assoc(stack: &str) -> UserStackAssociation {
    UserStackAssociation::builder()
        .stack_name(stack)
        .user_name(ADA)
        .authentication_type(AuthenticationType::Userpool)
        .build()
}

#[tokio::test]
async fn stack_associations_follow_every_page() {
    let page1 = mock!(Client::describe_user_stack_associations)
        .match_requests(|r| r.next_token().is_none() && r.user_name() == Some(ADA))
        .then_output(|| {
            DescribeUserStackAssociationsOutput::builder().user_stack_associations(assoc("a")).next_token("t").build()
        });
    let page2 = mock!(Client::describe_user_stack_associations)
        .match_requests(|r| r.next_token() == Some("t"))
        .then_output(|| DescribeUserStackAssociationsOutput::builder().user_stack_associations(assoc("b")).build());
    let client = mock_client!(aws_sdk_appstream, RuleMode::MatchAny, [&page1, &page2]);
    assert_eq!(AwsAppStream::new(client).stacks(ADA).await.unwrap(), vec!["a", "b"]);
}

#[tokio::test]
async fn batches_hold_at_most_25_and_report_per_association_errors() {
    let stacks: Vec<String> = (0..30).map(|i| format!("s{i:02}")).collect();
    let first = mock!(Client::batch_associate_user_stack)
        .match_requests(|r| {
            r.user_stack_associations().len() == 25
                && r.user_stack_associations().iter().all(|a| a.send_email_notification() == Some(false))
        })
        .then_output(|| BatchAssociateUserStackOutput::builder().build());
    let second = mock!(Client::batch_associate_user_stack)
        .match_requests(|r| r.user_stack_associations().len() == 5)
        .then_output(|| {
            BatchAssociateUserStackOutput::builder()
                .errors(
                    UserStackAssociationError::builder()
                        .user_stack_association(assoc("s29"))
                        .error_code(UserStackAssociationErrorCode::StackNotFound)
                        .build(),
                )
                .build()
        });
    let client = mock_client!(aws_sdk_appstream, RuleMode::Sequential, [&first, &second]);
    let errors = AwsAppStream::new(client).associate(ADA, &stacks).await.unwrap();
    assert_eq!(errors, vec![StackAssociationError { stack: "s29".into(), code: "STACK_NOT_FOUND".into() }]);

    let dis = mock!(Client::batch_disassociate_user_stack)
        .match_requests(|r| r.user_stack_associations().len() == 2)
        .then_output(|| BatchDisassociateUserStackOutput::builder().build());
    let client = mock_client!(aws_sdk_appstream, [&dis]);
    let errors = AwsAppStream::new(client).disassociate(ADA, &stacks[..2]).await.unwrap();
    assert!(errors.is_empty());
    assert_eq!(dis.num_calls(), 1);
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_then_retryable() {
    let throttled = mock!(Client::describe_user_stack_associations)
        .sequence()
        .error(|| DescribeUserStackAssociationsError::generic(meta("ThrottlingException")))
        .times(3)
        .build();
    let client = mock_client!(aws_sdk_appstream, RuleMode::Sequential, [&throttled], |c| c
        .retry_config(aws_sdk_appstream::config::retry::RetryConfig::standard().with_max_attempts(3)));
    let e = AwsAppStream::new(client).stacks(ADA).await.unwrap_err();
    assert_eq!(
        e,
        ServiceError::Throttled {
            op: appstream_sync::port::op::DESCRIBE_USER_STACK_ASSOCIATIONS,
            retry_after_seconds: None
        }
    );
    assert!(e.is_retryable());
    assert_eq!(throttled.num_calls(), 3);
}
