//! The IAM adapter (`aws-sdk-iam`, awsQuery): users, groups, tags, permissions boundary, login
//! profile and access keys. Errors are classified by their code, once, here; IAM's own
//! ConcurrentModification is a retryable conflict (see `target::retrying`).

use crate::port::op;
use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_iam::Client;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::{StatusType, Tag};

use crate::port::{
    AccessKey, ConflictReason, CredentialKind, IamNewUser, IamUser, IamUsers, Op, OtherCredential, ServiceError,
};
use jml_aws::redact_quoted;
use jml_aws::{did, is_not_found};

#[derive(Clone, Debug)]
pub struct AwsIam {
    client: Client,
}

impl AwsIam {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn classify<E: ProvideErrorMetadata, R>(op: Op, err: &SdkError<E, R>) -> ServiceError {
    let Some(e) = err.as_service_error() else {
        return ServiceError::Unavailable { op, message: "dispatch failure, timeout or unparseable response".into() };
    };
    let message = redact_quoted(e.message().unwrap_or_default());
    match e.code().unwrap_or_default() {
        "NoSuchEntity" => ServiceError::NotFound { op },
        "EntityAlreadyExists" => ServiceError::Conflict { op, reason: ConflictReason::UniquenessConstraintViolation },
        "ConcurrentModification" | "EntityTemporarilyUnmodifiable" => {
            ServiceError::Conflict { op, reason: ConflictReason::ConcurrentModification }
        }
        "LimitExceeded" => ServiceError::QuotaExceeded { op },
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => {
            ServiceError::Throttled { op, retry_after_seconds: None }
        }
        "AccessDenied" | "AccessDeniedException" => ServiceError::AccessDenied { op, message },
        // UnmodifiableEntity: a protected (service-linked) user; no retry changes that.
        code @ ("InvalidInput"
        | "ValidationError"
        | "PolicyNotAttachable"
        | "MalformedPolicyDocument"
        | "UnmodifiableEntity") => ServiceError::Validation { op, message: format!("{code}: {message}") },
        code => ServiceError::Unavailable { op, message: code.to_string() },
    }
}

fn tags(map: &BTreeMap<String, String>, op: Op) -> Result<Vec<Tag>, ServiceError> {
    map.iter()
        .map(|(k, v)| {
            Tag::builder().key(k).value(v).build().map_err(|e| ServiceError::Validation { op, message: e.to_string() })
        })
        .collect()
}

/// Every page of an IAM list call: `page(marker)` returns one page's items and, when the answer
/// IsTruncated, the marker of the next.
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, ServiceError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), ServiceError>>,
{
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let (items, next) = page(marker.take()).await?;
        out.extend(items);
        match next {
            Some(m) => marker = Some(m),
            None => return Ok(out),
        }
    }
}

fn next_marker(is_truncated: bool, marker: Option<&str>) -> Option<String> {
    marker.filter(|_| is_truncated).map(str::to_string)
}

/// Ok(()) also when the service answers NoSuchEntity (`gone_is_done`): a release already done.
/// A read's answer as "exists": NoSuchEntity is `false`.
fn found(res: Result<(), ServiceError>) -> Result<bool, ServiceError> {
    match res {
        Ok(()) => Ok(true),
        Err(ServiceError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

fn unit<T, E: ProvideErrorMetadata, R>(op: Op, res: Result<T, SdkError<E, R>>) -> Result<(), ServiceError> {
    res.map(|_| ()).map_err(|e| classify(op, &e))
}

#[async_trait]
impl IamUsers for AwsIam {
    async fn get_user(&self, user_name: &str) -> Result<Option<IamUser>, ServiceError> {
        let op = op::GET_USER;
        match self.client.get_user().user_name(user_name).send().await.map_err(|e| classify(op, &e)) {
            Ok(out) => Ok(out.user().map(|u| IamUser {
                user_name: u.user_name().to_string(),
                user_id: u.user_id().to_string(),
                path: u.path().to_string(),
                permissions_boundary: u
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_string),
                tags: u.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
            })),
            Err(ServiceError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_user(&self, user: &IamNewUser) -> Result<Option<String>, ServiceError> {
        let op = op::CREATE_USER;
        let res = self
            .client
            .create_user()
            .user_name(&user.user_name)
            .path(&user.path)
            .permissions_boundary(&user.permissions_boundary)
            .set_tags(Some(tags(&user.tags, op)?))
            .send()
            .await;
        match res.map_err(|e| classify(op, &e)) {
            Ok(out) => Ok(Some(out.user().map(|u| u.user_id().to_string()).unwrap_or_default())),
            Err(ServiceError::Conflict { reason: ConflictReason::UniquenessConstraintViolation, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn update_user(
        &self,
        user_name: &str,
        new_path: Option<&str>,
        new_user_name: Option<&str>,
    ) -> Result<(), ServiceError> {
        let req = self
            .client
            .update_user()
            .user_name(user_name)
            .set_new_path(new_path.map(str::to_string))
            .set_new_user_name(new_user_name.map(str::to_string));
        unit(op::UPDATE_USER, req.send().await)
    }

    async fn put_permissions_boundary(&self, user_name: &str, arn: &str) -> Result<(), ServiceError> {
        let req = self.client.put_user_permissions_boundary().user_name(user_name).permissions_boundary(arn);
        unit(op::PUT_USER_PERMISSIONS_BOUNDARY, req.send().await)
    }

    async fn tag_user(&self, user_name: &str, map: &BTreeMap<String, String>) -> Result<(), ServiceError> {
        let op = op::TAG_USER;
        unit(op, self.client.tag_user().user_name(user_name).set_tags(Some(tags(map, op)?)).send().await)
    }

    async fn untag_user(&self, user_name: &str, keys: &[String]) -> Result<(), ServiceError> {
        unit(
            op::UNTAG_USER,
            self.client.untag_user().user_name(user_name).set_tag_keys(Some(keys.to_vec())).send().await,
        )
    }

    async fn groups(&self, user_name: &str) -> Result<Vec<String>, ServiceError> {
        all_pages(|marker| async move {
            let page = self
                .client
                .list_groups_for_user()
                .user_name(user_name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify(op::LIST_GROUPS_FOR_USER, &e))?;
            let items = page.groups().iter().map(|g| g.group_name().to_string()).collect();
            Ok((items, next_marker(page.is_truncated(), page.marker())))
        })
        .await
    }

    async fn account_users(&self) -> Result<Vec<(IamUser, Vec<String>)>, ServiceError> {
        all_pages(|marker| async move {
            let page = self
                .client
                .get_account_authorization_details()
                .filter(aws_sdk_iam::types::EntityType::User)
                .max_items(1000)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify(op::GET_ACCOUNT_AUTHORIZATION_DETAILS, &e))?;
            let items = page
                .user_detail_list()
                .iter()
                .map(|u| {
                    let user = IamUser {
                        user_name: u.user_name().unwrap_or_default().to_string(),
                        user_id: u.user_id().unwrap_or_default().to_string(),
                        path: u.path().unwrap_or("/").to_string(),
                        permissions_boundary: u
                            .permissions_boundary()
                            .and_then(|b| b.permissions_boundary_arn())
                            .map(str::to_string),
                        tags: u.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
                    };
                    (user, u.group_list().to_vec())
                })
                .collect();
            Ok((items, next_marker(page.is_truncated(), page.marker())))
        })
        .await
    }

    async fn add_to_group(&self, user_name: &str, group: &str) -> Result<(), ServiceError> {
        unit(op::ADD_USER_TO_GROUP, self.client.add_user_to_group().user_name(user_name).group_name(group).send().await)
    }

    async fn remove_from_group(&self, user_name: &str, group: &str) -> Result<(), ServiceError> {
        let op = op::REMOVE_USER_FROM_GROUP;
        // Not a member any more (or the group is gone): the goal is reached.
        did(
            unit(op, self.client.remove_user_from_group().user_name(user_name).group_name(group).send().await),
            is_not_found,
        )
        .map(|_| ())
    }

    async fn delete_user(&self, user_name: &str) -> Result<bool, ServiceError> {
        did(unit(op::DELETE_USER, self.client.delete_user().user_name(user_name).send().await), is_not_found)
    }

    async fn policy_exists(&self, arn: &str) -> Result<bool, ServiceError> {
        found(unit(op::GET_POLICY, self.client.get_policy().policy_arn(arn).send().await))
    }

    async fn group_exists(&self, group: &str) -> Result<bool, ServiceError> {
        found(unit(op::GET_GROUP, self.client.get_group().group_name(group).max_items(1).send().await))
    }

    async fn group_path(&self, group: &str) -> Result<Option<String>, ServiceError> {
        match self.client.get_group().group_name(group).max_items(1).send().await {
            Ok(out) => Ok(out.group().map(|g| g.path().to_string())),
            Err(e) => match classify(op::GET_GROUP, &e) {
                ServiceError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn delete_login_profile(&self, user_name: &str) -> Result<bool, ServiceError> {
        let op = op::DELETE_LOGIN_PROFILE;
        // NoSuchEntity: the user had no console password.
        did(unit(op, self.client.delete_login_profile().user_name(user_name).send().await), is_not_found)
    }

    async fn has_login_profile(&self, user_name: &str) -> Result<bool, ServiceError> {
        match self.client.get_login_profile().user_name(user_name).send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(op::GET_LOGIN_PROFILE, &e) {
                ServiceError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn access_keys(&self, user_name: &str) -> Result<Vec<AccessKey>, ServiceError> {
        all_pages(|marker| async move {
            let page = self
                .client
                .list_access_keys()
                .user_name(user_name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify(op::LIST_ACCESS_KEYS, &e))?;
            let items = page
                .access_key_metadata()
                .iter()
                .map(|k| AccessKey {
                    access_key_id: k.access_key_id().unwrap_or_default().to_string(),
                    status: k.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                })
                .collect();
            Ok((items, next_marker(page.is_truncated(), page.marker())))
        })
        .await
    }

    async fn deactivate_access_key(&self, user_name: &str, access_key_id: &str) -> Result<(), ServiceError> {
        let req = self
            .client
            .update_access_key()
            .user_name(user_name)
            .access_key_id(access_key_id)
            .status(StatusType::Inactive);
        unit(op::UPDATE_ACCESS_KEY, req.send().await)
    }

    async fn other_credentials(&self, user_name: &str) -> Result<Vec<OtherCredential>, ServiceError> {
        let credential = |kind, id: &str, status: &StatusType| OtherCredential {
            kind,
            id: id.to_string(),
            active: *status == StatusType::Active,
        };
        let mut out = all_pages(|marker| async move {
            let page = self
                .client
                .list_ssh_public_keys()
                .user_name(user_name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify(op::LIST_SSH_PUBLIC_KEYS, &e))?;
            let items = page
                .ssh_public_keys()
                .iter()
                .map(|k| credential(CredentialKind::SshPublicKey, k.ssh_public_key_id(), k.status()))
                .collect();
            Ok((items, next_marker(page.is_truncated(), page.marker())))
        })
        .await?;
        out.extend(
            all_pages(|marker| async move {
                let page = self
                    .client
                    .list_service_specific_credentials()
                    .user_name(user_name)
                    .set_marker(marker)
                    .send()
                    .await
                    .map_err(|e| classify(op::LIST_SERVICE_SPECIFIC_CREDENTIALS, &e))?;
                let items = page
                    .service_specific_credentials()
                    .iter()
                    .map(|c| {
                        credential(CredentialKind::ServiceSpecific, c.service_specific_credential_id(), c.status())
                    })
                    .collect();
                Ok((items, next_marker(page.is_truncated(), page.marker())))
            })
            .await?,
        );
        out.extend(
            all_pages(|marker| async move {
                let page = self
                    .client
                    .list_signing_certificates()
                    .user_name(user_name)
                    .set_marker(marker)
                    .send()
                    .await
                    .map_err(|e| classify(op::LIST_SIGNING_CERTIFICATES, &e))?;
                let items = page
                    .certificates()
                    .iter()
                    .map(|c| credential(CredentialKind::SigningCertificate, c.certificate_id(), c.status()))
                    .collect();
                Ok((items, next_marker(page.is_truncated(), page.marker())))
            })
            .await?,
        );
        Ok(out)
    }

    async fn deactivate_credential(&self, user_name: &str, c: &OtherCredential) -> Result<(), ServiceError> {
        let op = c.kind.update_op();
        match c.kind {
            CredentialKind::SshPublicKey => self
                .client
                .update_ssh_public_key()
                .user_name(user_name)
                .ssh_public_key_id(&c.id)
                .status(StatusType::Inactive)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(op, &e)),
            CredentialKind::ServiceSpecific => self
                .client
                .update_service_specific_credential()
                .user_name(user_name)
                .service_specific_credential_id(&c.id)
                .status(StatusType::Inactive)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(op, &e)),
            CredentialKind::SigningCertificate => self
                .client
                .update_signing_certificate()
                .user_name(user_name)
                .certificate_id(&c.id)
                .status(StatusType::Inactive)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(op, &e)),
        }
    }
}
