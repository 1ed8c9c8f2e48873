//! IAM adapter tests with aws-smithy-mocks: every call the adapter makes, the request shapes
//! (path, boundary, tags, Inactive keys), pagination, and every error mapping (NoSuchEntity,
//! EntityAlreadyExists, LimitExceeded, ConcurrentModification, throttling).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use aws_sdk_iam::Client;
use aws_sdk_iam::error::ErrorMetadata;
use aws_sdk_iam::operation::add_user_to_group::{AddUserToGroupError, AddUserToGroupOutput};
use aws_sdk_iam::operation::create_user::{CreateUserError, CreateUserOutput};
use aws_sdk_iam::operation::delete_login_profile::{DeleteLoginProfileError, DeleteLoginProfileOutput};
use aws_sdk_iam::operation::get_user::{GetUserError, GetUserOutput};
use aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput;
use aws_sdk_iam::operation::list_groups_for_user::ListGroupsForUserOutput;
use aws_sdk_iam::operation::list_service_specific_credentials::ListServiceSpecificCredentialsOutput;
use aws_sdk_iam::operation::list_signing_certificates::ListSigningCertificatesOutput;
use aws_sdk_iam::operation::list_ssh_public_keys::ListSshPublicKeysOutput;
use aws_sdk_iam::operation::put_user_permissions_boundary::PutUserPermissionsBoundaryOutput;
use aws_sdk_iam::operation::remove_user_from_group::{RemoveUserFromGroupError, RemoveUserFromGroupOutput};
use aws_sdk_iam::operation::tag_user::{TagUserError, TagUserOutput};
use aws_sdk_iam::operation::untag_user::UntagUserOutput;
use aws_sdk_iam::operation::update_access_key::UpdateAccessKeyOutput;
use aws_sdk_iam::operation::update_service_specific_credential::UpdateServiceSpecificCredentialOutput;
use aws_sdk_iam::operation::update_signing_certificate::UpdateSigningCertificateOutput;
use aws_sdk_iam::operation::update_ssh_public_key::UpdateSshPublicKeyOutput;
use aws_sdk_iam::operation::update_user::UpdateUserOutput;
use aws_sdk_iam::primitives::DateTime;
use aws_sdk_iam::types::error::{
    ConcurrentModificationException, EntityAlreadyExistsException, LimitExceededException, NoSuchEntityException,
};
use aws_sdk_iam::types::{
    AccessKeyMetadata, AttachedPermissionsBoundary, Group, PermissionsBoundaryAttachmentType,
    ServiceSpecificCredentialMetadata, SigningCertificate, SshPublicKeyMetadata, StatusType, Tag, User,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use iam_sync::aws::AwsIam;
use iam_sync::port::{AccessKey, ConflictReason, CredentialKind, IamNewUser, IamUsers, OtherCredential, ServiceError};

const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/jml-boundary";

fn meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message("The user with name 'ada.lovelace' cannot be found.").build()
}

fn user(name: &str) -> User {
    User::builder()
        .path("/jml/platform-engineering/")
        .user_name(name)
        .user_id("AIDAEXAMPLE")
        .arn(format!("arn:aws:iam::123456789012:user/jml/platform-engineering/{name}"))
        .create_date(DateTime::from_secs(0))
        .permissions_boundary(
            AttachedPermissionsBoundary::builder()
                .permissions_boundary_type(PermissionsBoundaryAttachmentType::Policy)
                .permissions_boundary_arn(BOUNDARY)
                .build(),
        )
        .tags(Tag::builder().key("jml-sync:external-id").value("workday/100234").build().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn get_user_maps_path_boundary_and_tags_and_no_such_entity_is_none() {
    let found = mock!(Client::get_user)
        .match_requests(|r| r.user_name() == Some("ada.lovelace"))
        .then_output(|| GetUserOutput::builder().user(user("Ada.Lovelace")).build());
    let missing = mock!(Client::get_user).then_error(|| {
        GetUserError::NoSuchEntityException(NoSuchEntityException::builder().meta(meta("NoSuchEntity")).build())
    });
    let client = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&found, &missing]);
    let iam = AwsIam::new(client);
    let u = iam.get_user("ada.lovelace").await.unwrap().unwrap();
    assert_eq!(u.user_name, "Ada.Lovelace", "IAM's own capitalisation comes back");
    assert_eq!(u.path, "/jml/platform-engineering/");
    assert_eq!(u.permissions_boundary.as_deref(), Some(BOUNDARY));
    assert_eq!(u.tags.get("jml-sync:external-id").map(String::as_str), Some("workday/100234"));
    assert_eq!(iam.get_user("ada.lovelace").await.unwrap(), None);
}

fn new_user() -> IamNewUser {
    IamNewUser {
        user_name: "ada.lovelace".into(),
        path: "/jml/platform-engineering/".into(),
        permissions_boundary: BOUNDARY.into(),
        tags: BTreeMap::from([
            ("jml-sync:external-id".to_string(), "workday/100234".to_string()),
            ("jml-sync:managed-by".to_string(), "jml-sync".to_string()),
        ]),
    }
}

#[tokio::test]
async fn create_user_sends_path_boundary_and_tags_and_maps_its_errors() {
    let created = mock!(Client::create_user)
        .match_requests(|r| {
            r.path() == Some("/jml/platform-engineering/")
                && r.permissions_boundary() == Some(BOUNDARY)
                && r.tags().len() == 2
                && r.tags().iter().any(|t| t.key() == "jml-sync:external-id" && t.value() == "workday/100234")
        })
        .then_output(|| CreateUserOutput::builder().user(user("ada.lovelace")).build());
    let exists = mock!(Client::create_user).then_error(|| {
        CreateUserError::EntityAlreadyExistsException(
            EntityAlreadyExistsException::builder().meta(meta("EntityAlreadyExists")).build(),
        )
    });
    let limit = mock!(Client::create_user).then_error(|| {
        CreateUserError::LimitExceededException(LimitExceededException::builder().meta(meta("LimitExceeded")).build())
    });
    let busy = mock!(Client::create_user).then_error(|| {
        CreateUserError::ConcurrentModificationException(
            ConcurrentModificationException::builder().meta(meta("ConcurrentModification")).build(),
        )
    });
    let client = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&created, &exists, &limit, &busy]);
    let iam = AwsIam::new(client);
    assert_eq!(iam.create_user(&new_user()).await.unwrap().as_deref(), Some("AIDAEXAMPLE"));
    assert_eq!(iam.create_user(&new_user()).await.unwrap(), None, "EntityAlreadyExists");
    assert_eq!(
        iam.create_user(&new_user()).await.unwrap_err(),
        ServiceError::QuotaExceeded { op: iam_sync::port::op::CREATE_USER }
    );
    let e = iam.create_user(&new_user()).await.unwrap_err();
    assert_eq!(
        e,
        ServiceError::Conflict { op: iam_sync::port::op::CREATE_USER, reason: ConflictReason::ConcurrentModification }
    );
    assert!(e.is_retryable());
}

#[tokio::test]
async fn updates_tags_and_boundary_send_what_was_asked() {
    let update = mock!(Client::update_user)
        .match_requests(|r| r.new_path() == Some("/jml/finance/") && r.new_user_name().is_none())
        .then_output(|| UpdateUserOutput::builder().build());
    let rename = mock!(Client::update_user)
        .match_requests(|r| r.new_user_name() == Some("ada.king") && r.new_path().is_none())
        .then_output(|| UpdateUserOutput::builder().build());
    let boundary = mock!(Client::put_user_permissions_boundary)
        .match_requests(|r| r.permissions_boundary() == Some(BOUNDARY))
        .then_output(|| PutUserPermissionsBoundaryOutput::builder().build());
    let tag = mock!(Client::tag_user)
        .match_requests(|r| {
            r.tags().len() == 1 && r.tags()[0].key() == "jml-sync:status" && r.tags()[0].value() == "disabled"
        })
        .then_output(|| TagUserOutput::builder().build());
    let untag = mock!(Client::untag_user)
        .match_requests(|r| r.tag_keys() == ["jml-sync:disabled-at"])
        .then_output(|| UntagUserOutput::builder().build());
    let client = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&update, &rename, &boundary, &tag, &untag]);
    let iam = AwsIam::new(client);
    iam.update_user("ada.lovelace", Some("/jml/finance/"), None).await.unwrap();
    iam.update_user("ada.lovelace", None, Some("ada.king")).await.unwrap();
    iam.put_permissions_boundary("ada.lovelace", BOUNDARY).await.unwrap();
    iam.tag_user("ada.lovelace", &BTreeMap::from([("jml-sync:status".to_string(), "disabled".to_string())]))
        .await
        .unwrap();
    iam.untag_user("ada.lovelace", &["jml-sync:disabled-at".to_string()]).await.unwrap();
    for rule in [&update, &rename, &boundary, &tag, &untag] {
        assert_eq!(rule.num_calls(), 1);
    }
}

fn group(name: &str) -> Group {
    Group::builder()
        .path("/")
        .group_name(name)
        .group_id(format!("AGPA{name}"))
        .arn(format!("arn:aws:iam::123456789012:group/{name}"))
        .create_date(DateTime::from_secs(0))
        .build()
        .unwrap()
}

#[tokio::test]
async fn groups_follow_every_page_and_membership_changes_map_errors() {
    let page1 = mock!(Client::list_groups_for_user).match_requests(|r| r.marker().is_none()).then_output(|| {
        ListGroupsForUserOutput::builder().groups(group("all-staff")).is_truncated(true).marker("m").build().unwrap()
    });
    let page2 = mock!(Client::list_groups_for_user)
        .match_requests(|r| r.marker() == Some("m"))
        .then_output(|| ListGroupsForUserOutput::builder().groups(group("engineers")).build().unwrap());
    let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&page1, &page2]);
    assert_eq!(AwsIam::new(client).groups("ada.lovelace").await.unwrap(), vec!["all-staff", "engineers"]);

    let add = mock!(Client::add_user_to_group)
        .match_requests(|r| r.group_name() == Some("engineers"))
        .then_output(|| AddUserToGroupOutput::builder().build());
    let add_missing = mock!(Client::add_user_to_group).then_error(|| {
        AddUserToGroupError::NoSuchEntityException(NoSuchEntityException::builder().meta(meta("NoSuchEntity")).build())
    });
    let add_full = mock!(Client::add_user_to_group).then_error(|| {
        AddUserToGroupError::LimitExceededException(
            LimitExceededException::builder().meta(meta("LimitExceeded")).build(),
        )
    });
    let remove = mock!(Client::remove_user_from_group).then_output(|| RemoveUserFromGroupOutput::builder().build());
    let remove_gone = mock!(Client::remove_user_from_group).then_error(|| {
        RemoveUserFromGroupError::NoSuchEntityException(
            NoSuchEntityException::builder().meta(meta("NoSuchEntity")).build(),
        )
    });
    let client =
        mock_client!(aws_sdk_iam, RuleMode::Sequential, [&add, &add_missing, &add_full, &remove, &remove_gone]);
    let iam = AwsIam::new(client);
    iam.add_to_group("ada.lovelace", "engineers").await.unwrap();
    assert_eq!(
        iam.add_to_group("ada.lovelace", "x").await.unwrap_err(),
        ServiceError::NotFound { op: iam_sync::port::op::ADD_USER_TO_GROUP }
    );
    assert_eq!(
        iam.add_to_group("ada.lovelace", "x").await.unwrap_err(),
        ServiceError::QuotaExceeded { op: iam_sync::port::op::ADD_USER_TO_GROUP }
    );
    iam.remove_from_group("ada.lovelace", "engineers").await.unwrap();
    iam.remove_from_group("ada.lovelace", "engineers").await.unwrap();
}

#[tokio::test]
async fn lockdown_calls_delete_the_password_and_deactivate_keys() {
    let deleted = mock!(Client::delete_login_profile).then_output(|| DeleteLoginProfileOutput::builder().build());
    let none = mock!(Client::delete_login_profile).then_error(|| {
        DeleteLoginProfileError::NoSuchEntityException(
            NoSuchEntityException::builder().meta(meta("NoSuchEntity")).build(),
        )
    });
    let keys = mock!(Client::list_access_keys).then_output(|| {
        ListAccessKeysOutput::builder()
            .access_key_metadata(AccessKeyMetadata::builder().access_key_id("AKIA1").status(StatusType::Active).build())
            .access_key_metadata(
                AccessKeyMetadata::builder().access_key_id("AKIA2").status(StatusType::Inactive).build(),
            )
            .build()
            .unwrap()
    });
    let deactivate = mock!(Client::update_access_key)
        .match_requests(|r| r.access_key_id() == Some("AKIA1") && r.status() == Some(&StatusType::Inactive))
        .then_output(|| UpdateAccessKeyOutput::builder().build());
    let client = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&deleted, &none, &keys, &deactivate]);
    let iam = AwsIam::new(client);
    assert!(iam.delete_login_profile("ada.lovelace").await.unwrap());
    assert!(!iam.delete_login_profile("ada.lovelace").await.unwrap(), "no password: nothing to delete");
    assert_eq!(
        iam.access_keys("ada.lovelace").await.unwrap(),
        vec![
            AccessKey { access_key_id: "AKIA1".into(), status: "Active".into() },
            AccessKey { access_key_id: "AKIA2".into(), status: "Inactive".into() }
        ]
    );
    iam.deactivate_access_key("ada.lovelace", "AKIA1").await.unwrap();
    assert_eq!(deactivate.num_calls(), 1);
}

#[tokio::test]
async fn an_unmodifiable_entity_is_permanent_and_the_login_profile_is_read() {
    use aws_sdk_iam::operation::get_login_profile::{GetLoginProfileError, GetLoginProfileOutput};
    use aws_sdk_iam::types::LoginProfile;
    // A protected (service-linked) user: no retry changes it (was retried until the DLQ).
    let protected = mock!(Client::tag_user).then_error(|| TagUserError::generic(meta("UnmodifiableEntity")));
    let has = mock!(Client::get_login_profile).then_output(|| {
        GetLoginProfileOutput::builder()
            .login_profile(
                LoginProfile::builder().user_name("ada.lovelace").create_date(DateTime::from_secs(0)).build().unwrap(),
            )
            .build()
    });
    let none = mock!(Client::get_login_profile).then_error(|| {
        GetLoginProfileError::NoSuchEntityException(NoSuchEntityException::builder().meta(meta("NoSuchEntity")).build())
    });
    let client = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&protected, &has, &none]);
    let iam = AwsIam::new(client);
    let e = iam.tag_user("ada.lovelace", &BTreeMap::new()).await.unwrap_err();
    assert!(
        matches!(&e, ServiceError::Validation { op: iam_sync::port::op::TAG_USER, message } if message.starts_with("UnmodifiableEntity")),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert!(iam.has_login_profile("ada.lovelace").await.unwrap());
    assert!(!iam.has_login_profile("ada.lovelace").await.unwrap());
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_and_messages_are_redacted() {
    let throttled =
        mock!(Client::tag_user).sequence().error(|| TagUserError::generic(meta("Throttling"))).times(3).build();
    let client = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&throttled], |c| c
        .retry_config(aws_sdk_iam::config::retry::RetryConfig::standard().with_max_attempts(3)));
    let e = AwsIam::new(client).tag_user("ada.lovelace", &BTreeMap::new()).await.unwrap_err();
    assert_eq!(e, ServiceError::Throttled { op: iam_sync::port::op::TAG_USER, retry_after_seconds: None });
    assert_eq!(throttled.num_calls(), 3, "the SDK retried before giving up");

    let denied = mock!(Client::tag_user).then_error(|| TagUserError::generic(meta("AccessDenied")));
    let client = mock_client!(aws_sdk_iam, [&denied]);
    let e = AwsIam::new(client).tag_user("ada.lovelace", &BTreeMap::new()).await.unwrap_err();
    assert!(matches!(&e, ServiceError::AccessDenied { message, .. } if !message.contains("ada.lovelace")), "{e}");
}

#[tokio::test]
async fn other_credentials_are_listed_from_all_three_apis_and_deactivated_by_kind() {
    let ssh = mock!(Client::list_ssh_public_keys).then_output(|| {
        ListSshPublicKeysOutput::builder()
            .ssh_public_keys(
                SshPublicKeyMetadata::builder()
                    .user_name("ada.lovelace")
                    .ssh_public_key_id("APKA1")
                    .status(StatusType::Active)
                    .upload_date(DateTime::from_secs(0))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let service = mock!(Client::list_service_specific_credentials).then_output(|| {
        ListServiceSpecificCredentialsOutput::builder()
            .service_specific_credentials(
                ServiceSpecificCredentialMetadata::builder()
                    .user_name("ada.lovelace")
                    .status(StatusType::Inactive)
                    .service_user_name("ada-at-123")
                    .create_date(DateTime::from_secs(0))
                    .service_specific_credential_id("ACCA1")
                    .service_name("codecommit.amazonaws.com")
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let certs = mock!(Client::list_signing_certificates).then_output(|| {
        ListSigningCertificatesOutput::builder()
            .certificates(
                SigningCertificate::builder()
                    .user_name("ada.lovelace")
                    .certificate_id("CERT1")
                    .certificate_body("-----BEGIN CERTIFICATE-----")
                    .status(StatusType::Active)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    });
    let off_ssh = mock!(Client::update_ssh_public_key)
        .match_requests(|r| r.ssh_public_key_id() == Some("APKA1") && r.status() == Some(&StatusType::Inactive))
        .then_output(|| UpdateSshPublicKeyOutput::builder().build());
    let off_service = mock!(Client::update_service_specific_credential)
        .match_requests(|r| {
            r.service_specific_credential_id() == Some("ACCA1") && r.status() == Some(&StatusType::Inactive)
        })
        .then_output(|| UpdateServiceSpecificCredentialOutput::builder().build());
    let off_cert = mock!(Client::update_signing_certificate)
        .match_requests(|r| r.certificate_id() == Some("CERT1") && r.status() == Some(&StatusType::Inactive))
        .then_output(|| UpdateSigningCertificateOutput::builder().build());
    let client =
        mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&ssh, &service, &certs, &off_ssh, &off_service, &off_cert]);
    let iam = AwsIam::new(client);
    let found = iam.other_credentials("ada.lovelace").await.unwrap();
    assert_eq!(
        found,
        vec![
            OtherCredential { kind: CredentialKind::SshPublicKey, id: "APKA1".into(), active: true },
            OtherCredential { kind: CredentialKind::ServiceSpecific, id: "ACCA1".into(), active: false },
            OtherCredential { kind: CredentialKind::SigningCertificate, id: "CERT1".into(), active: true },
        ]
    );
    for c in &found {
        iam.deactivate_credential("ada.lovelace", c).await.unwrap();
    }
    for rule in [&off_ssh, &off_service, &off_cert] {
        assert_eq!(rule.num_calls(), 1, "each kind through its own call");
    }
}
