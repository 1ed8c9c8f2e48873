//! The AppStream 2.0 adapter (`aws-sdk-appstream`): user pool users (`AuthenticationType`
//! USERPOOL) and their stack associations. Errors are classified by their code, once, here.

use crate::port::op;
use async_trait::async_trait;
use aws_sdk_appstream::Client;
use aws_sdk_appstream::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_appstream::types::{AuthenticationType, MessageAction, UserStackAssociation};

use crate::port::{AppStreamNewUser, AppStreamUsers, Op, PoolEntry, ServiceError, StackAssociationError, WelcomeEmail};
use jml_aws::redact_quoted;
use jml_aws::{did, is_not_found};

/// `UserStackAssociationList`: at most 25 per batch call.
const BATCH: usize = 25;

#[derive(Clone, Debug)]
pub struct AwsAppStream {
    client: Client,
}

impl AwsAppStream {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// DescribeUserStackAssociations (USERPOOL) for a user or a stack, all pages of 500:
    /// (user name, stack name) pairs.
    async fn associations(
        &self,
        user_name: Option<&str>,
        stack: Option<&str>,
    ) -> Result<Vec<(String, String)>, ServiceError> {
        let op = op::DESCRIBE_USER_STACK_ASSOCIATIONS;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_user_stack_associations()
                .set_user_name(user_name.map(str::to_string))
                .set_stack_name(stack.map(str::to_string))
                .authentication_type(AuthenticationType::Userpool)
                .max_results(500)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify(op, &e))?;
            out.extend(
                page.user_stack_associations()
                    .iter()
                    .filter_map(|a| Some((a.user_name().unwrap_or_default().to_string(), a.stack_name()?.to_string()))),
            );
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }
}

/// ResourceAlreadyExists / ResourceNotFound are answers the callers turn into `Ok(false)`; a
/// LimitExceeded is the user pool quota; OperationNotPermitted, InvalidAccountStatus and
/// InvalidParameterCombination can never succeed as sent.
fn classify<E: ProvideErrorMetadata, R>(op: Op, err: &SdkError<E, R>) -> ServiceError {
    let Some(e) = err.as_service_error() else {
        return ServiceError::Unavailable { op, message: "dispatch failure, timeout or unparseable response".into() };
    };
    let message = redact_quoted(e.message().unwrap_or_default());
    match e.code().unwrap_or_default() {
        "ResourceNotFoundException" => ServiceError::NotFound { op },
        "ResourceAlreadyExistsException" => {
            ServiceError::Conflict { op, reason: crate::port::ConflictReason::UniquenessConstraintViolation }
        }
        "LimitExceededException" => ServiceError::QuotaExceeded { op },
        "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            ServiceError::Throttled { op, retry_after_seconds: None }
        }
        "AccessDeniedException" => ServiceError::AccessDenied { op, message },
        code @ ("InvalidParameterCombinationException"
        | "OperationNotPermittedException"
        | "InvalidAccountStatusException"
        | "ValidationException") => ServiceError::Validation { op, message: format!("{code}: {message}") },
        code => ServiceError::Unavailable { op, message: code.to_string() },
    }
}

fn association(user_name: &str, stack: &str) -> UserStackAssociation {
    UserStackAssociation::builder()
        .stack_name(stack)
        .user_name(user_name)
        .authentication_type(AuthenticationType::Userpool)
        .send_email_notification(false)
        .build()
}

fn errors_of(list: &[aws_sdk_appstream::types::UserStackAssociationError]) -> Vec<StackAssociationError> {
    list.iter()
        .map(|e| StackAssociationError {
            stack: e
                .user_stack_association()
                .map(|a| a.stack_name().unwrap_or_default().to_string())
                .unwrap_or_default(),
            code: e.error_code().map(|c| c.as_str().to_string()).unwrap_or_else(|| "INTERNAL_ERROR".into()),
        })
        .collect()
}

#[async_trait]
impl AppStreamUsers for AwsAppStream {
    async fn create_user(&self, user: &AppStreamNewUser) -> Result<bool, ServiceError> {
        let op = op::CREATE_USER;
        let mut req = self
            .client
            .create_user()
            .user_name(&user.user_name)
            .authentication_type(AuthenticationType::Userpool)
            .set_first_name(user.first_name.clone())
            .set_last_name(user.last_name.clone());
        if user.welcome == WelcomeEmail::Suppress {
            req = req.message_action(MessageAction::Suppress);
        }
        // ResourceAlreadyExistsException: the user exists.
        did(req.send().await.map_err(|e| classify(op, &e)), |e| matches!(e, ServiceError::Conflict { .. }))
    }

    async fn disable_user(&self, user_name: &str) -> Result<bool, ServiceError> {
        let op = op::DISABLE_USER;
        let res = self
            .client
            .disable_user()
            .user_name(user_name)
            .authentication_type(AuthenticationType::Userpool)
            .send()
            .await;
        did(res.map_err(|e| classify(op, &e)), is_not_found)
    }

    async fn delete_user(&self, user_name: &str) -> Result<bool, ServiceError> {
        // As the Terraform provider's acceptance-tested aws_appstream_user delete: DeleteUser
        // with USERPOOL, ResourceNotFoundException meaning already gone.
        let op = op::DELETE_USER;
        let res = self
            .client
            .delete_user()
            .user_name(user_name)
            .authentication_type(AuthenticationType::Userpool)
            .send()
            .await;
        did(res.map_err(|e| classify(op, &e)), is_not_found)
    }

    async fn users(&self) -> Result<Vec<PoolEntry>, ServiceError> {
        let op = op::DESCRIBE_USERS;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_users()
                .authentication_type(AuthenticationType::Userpool)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify(op, &e))?;
            out.extend(page.users().iter().filter_map(|u| {
                u.user_name().map(|n| PoolEntry { user_name: n.to_string(), enabled: u.enabled().unwrap_or(false) })
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn stack_exists(&self, stack: &str) -> Result<bool, ServiceError> {
        match self.client.describe_stacks().names(stack).send().await.map_err(|e| classify(op::DESCRIBE_STACKS, &e)) {
            Ok(out) => Ok(out.stacks().iter().any(|s| s.name() == Some(stack))),
            Err(ServiceError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn stacks(&self, user_name: &str) -> Result<Vec<String>, ServiceError> {
        Ok(self.associations(Some(user_name), None).await?.into_iter().map(|(_, stack)| stack).collect())
    }

    async fn stack_users(&self, stack: &str) -> Result<Vec<String>, ServiceError> {
        Ok(self.associations(None, Some(stack)).await?.into_iter().map(|(user, _)| user).collect())
    }

    async fn associate(&self, user_name: &str, stacks: &[String]) -> Result<Vec<StackAssociationError>, ServiceError> {
        in_batches(user_name, stacks, |list| async move {
            let out = self
                .client
                .batch_associate_user_stack()
                .set_user_stack_associations(Some(list))
                .send()
                .await
                .map_err(|e| classify(op::BATCH_ASSOCIATE_USER_STACK, &e))?;
            Ok(errors_of(out.errors()))
        })
        .await
    }

    async fn disassociate(
        &self,
        user_name: &str,
        stacks: &[String],
    ) -> Result<Vec<StackAssociationError>, ServiceError> {
        in_batches(user_name, stacks, |list| async move {
            let out = self
                .client
                .batch_disassociate_user_stack()
                .set_user_stack_associations(Some(list))
                .send()
                .await
                .map_err(|e| classify(op::BATCH_DISASSOCIATE_USER_STACK, &e))?;
            Ok(errors_of(out.errors()))
        })
        .await
    }
}

/// Sends the user's associations with `stacks` in batches of 25 through `call`; every batch's
/// per-association errors.
async fn in_batches<F, Fut>(
    user_name: &str,
    stacks: &[String],
    mut call: F,
) -> Result<Vec<StackAssociationError>, ServiceError>
where
    F: FnMut(Vec<UserStackAssociation>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<StackAssociationError>, ServiceError>>,
{
    let mut errors = Vec::new();
    for chunk in stacks.chunks(BATCH) {
        errors.extend(call(chunk.iter().map(|s| association(user_name, s)).collect()).await?);
    }
    Ok(errors)
}
