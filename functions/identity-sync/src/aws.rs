//! The Identity Store adapter (`aws-sdk-identitystore`): maps the port to API calls and classifies
//! errors. Nothing outside `crate::aws` calls AWS.

use crate::port::op;
use jml_aws::redact_quoted;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_identitystore::Client;
use aws_sdk_identitystore::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_identitystore::operation::create_group_membership::CreateGroupMembershipError;
use aws_sdk_identitystore::operation::create_user::CreateUserError;
use aws_sdk_identitystore::operation::delete_group_membership::DeleteGroupMembershipError;
use aws_sdk_identitystore::operation::delete_user::DeleteUserError;
use aws_sdk_identitystore::operation::describe_group::DescribeGroupError;
use aws_sdk_identitystore::operation::describe_user::{DescribeUserError, DescribeUserOutput};
use aws_sdk_identitystore::operation::get_group_id::GetGroupIdError;
use aws_sdk_identitystore::operation::get_user_id::GetUserIdError;
use aws_sdk_identitystore::operation::list_group_memberships::ListGroupMembershipsError;
use aws_sdk_identitystore::operation::list_group_memberships_for_member::ListGroupMembershipsForMemberError;
use aws_sdk_identitystore::operation::list_groups::ListGroupsError;
use aws_sdk_identitystore::operation::list_users::ListUsersError;
use aws_sdk_identitystore::operation::update_user::UpdateUserError;
use aws_sdk_identitystore::types::{
    Address, AlternateIdentifier, AttributeOperation, ConflictExceptionReason, Email, ExternalId as SdkExternalId,
    MemberId, Name, PhoneNumber, UniqueAttribute, UserStatus as SdkUserStatus,
};
use aws_smithy_types::Document;
use serde_json::Value;

use crate::document::{from_document, to_document};
use crate::port::{
    AddressAttributes, AttributeChange, ConflictReason, GroupId, IdentityStore, Membership, Op, ServiceError,
    UserAttributes, UserId, UserRecord, UserStatus,
};
use jml_core::contract::{ExternalId, GroupName, UserName};

/// The enterprise extension's name (the only one the service supports).
pub const ENTERPRISE: &str = "aws:identitystore:enterprise";

/// The adapter: one SDK client and the identity store id.
#[derive(Clone, Debug)]
pub struct AwsIdentityStore {
    client: Client,
    identity_store_id: String,
}

impl AwsIdentityStore {
    pub fn new(client: Client, identity_store_id: impl Into<String>) -> Self {
        Self { client, identity_store_id: identity_store_id.into() }
    }

    async fn get_user_id(&self, op: Op, alternate: AlternateIdentifier) -> Result<Option<UserId>, ServiceError> {
        let res = self
            .client
            .get_user_id()
            .identity_store_id(&self.identity_store_id)
            .alternate_identifier(alternate)
            .send()
            .await;
        Ok(optional(op, res)?.map(|out| out.user_id().to_string()))
    }
}

/// What the typed error of an operation tells beyond its metadata: the modelled exception's
/// code (responses also carry it as metadata; errors built in tests may not), the
/// ConflictException reason and the ThrottlingException's RetryAfterSeconds.
trait Detail {
    fn typed_code(&self) -> Option<&'static str>;
    fn typed_message(&self) -> Option<&str>;
    fn conflict_reason(&self) -> Option<ConflictReason> {
        None
    }
    fn retry_after(&self) -> Option<i32>;
}

fn map_reason(r: Option<&ConflictExceptionReason>) -> ConflictReason {
    match r {
        Some(ConflictExceptionReason::UniquenessConstraintViolation) => ConflictReason::UniquenessConstraintViolation,
        Some(ConflictExceptionReason::ConcurrentModification) => ConflictReason::ConcurrentModification,
        _ => ConflictReason::Unspecified,
    }
}

macro_rules! detail {
    (@codes $t:ident, $e:expr, [$($extra:ident),*]) => {
        match $e {
            $t::ResourceNotFoundException(_) => Some("ResourceNotFoundException"),
            $t::ThrottlingException(_) => Some("ThrottlingException"),
            $t::AccessDeniedException(_) => Some("AccessDeniedException"),
            $t::InternalServerException(_) => Some("InternalServerException"),
            $t::ValidationException(_) => Some("ValidationException"),
            $($t::$extra(_) => Some(stringify!($extra)),)*
            _ => None,
        }
    };
    (@message $t:ident, $e:expr) => {
        match $e {
            $t::ValidationException(v) => v.message(),
            $t::AccessDeniedException(a) => a.message(),
            _ => None,
        }
    };
    (@retry $t:ident, $e:expr) => {
        match $e {
            $t::ThrottlingException(t) => Some(t.retry_after_seconds()).filter(|s| *s > 0),
            _ => None,
        }
    };
    ($t:ident) => {
        impl Detail for $t {
            fn typed_code(&self) -> Option<&'static str> {
                detail!(@codes $t, self, [])
            }
            fn typed_message(&self) -> Option<&str> {
                detail!(@message $t, self)
            }
            fn retry_after(&self) -> Option<i32> {
                detail!(@retry $t, self)
            }
        }
    };
    ($t:ident, conflict $(, $extra:ident)*) => {
        impl Detail for $t {
            fn typed_code(&self) -> Option<&'static str> {
                detail!(@codes $t, self, [ConflictException $(, $extra)*])
            }
            fn conflict_reason(&self) -> Option<ConflictReason> {
                match self {
                    $t::ConflictException(c) => Some(map_reason(c.reason())),
                    _ => None,
                }
            }
            fn typed_message(&self) -> Option<&str> {
                detail!(@message $t, self)
            }
            fn retry_after(&self) -> Option<i32> {
                detail!(@retry $t, self)
            }
        }
    };
}
detail!(CreateUserError, conflict, ServiceQuotaExceededException);
detail!(UpdateUserError, conflict, ServiceQuotaExceededException);
detail!(CreateGroupMembershipError, conflict, ServiceQuotaExceededException);
detail!(DeleteGroupMembershipError, conflict);
detail!(DescribeUserError);
detail!(DescribeGroupError);
detail!(GetUserIdError);
detail!(GetGroupIdError);
detail!(ListUsersError);
detail!(ListGroupMembershipsForMemberError);
detail!(DeleteUserError, conflict);
detail!(ListGroupsError);
detail!(ListGroupMembershipsError);

/// Classifies an SDK error. Service messages are kept only for validation and access errors,
/// which name fields and actions, not values.
fn classify<E, R>(op: Op, err: &SdkError<E, R>) -> ServiceError
where
    E: ProvideErrorMetadata + Detail,
{
    let Some(e) = err.as_service_error() else {
        // Dispatch failure, timeout, malformed response: transient by nature.
        return ServiceError::Unavailable { op, message: sdk_error_kind(err).to_string() };
    };
    let message = redact_quoted(e.message().or(e.typed_message()).unwrap_or_default());
    match e.typed_code().or(e.code()).unwrap_or_default() {
        "ConflictException" => {
            ServiceError::Conflict { op, reason: e.conflict_reason().unwrap_or(ConflictReason::Unspecified) }
        }
        "ResourceNotFoundException" => ServiceError::NotFound { op },
        "ThrottlingException" => ServiceError::Throttled { op, retry_after_seconds: e.retry_after() },
        "ValidationException" => ServiceError::Validation { op, message },
        "AccessDeniedException" => ServiceError::AccessDenied { op, message },
        "ServiceQuotaExceededException" => ServiceError::QuotaExceeded { op },
        // InternalServerException and anything unmodelled (5xx).
        code => ServiceError::Unavailable {
            op,
            message: if code.is_empty() { "unknown error".to_string() } else { code.to_string() },
        },
    }
}

fn sdk_error_kind<E, R>(err: &SdkError<E, R>) -> &'static str {
    match err {
        SdkError::ConstructionFailure(_) => "request construction failed",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch failure (connection)",
        SdkError::ResponseError(_) => "unparseable response",
        SdkError::ServiceError(_) => "service error",
        _ => "unknown SDK error",
    }
}

fn build_error(op: Op, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Validation { op, message: format!("request could not be built: {e}") }
}

/// For lookups: ResourceNotFound means "no such thing", not a failure.
fn optional<T, E, R>(op: Op, res: Result<T, SdkError<E, R>>) -> Result<Option<T>, ServiceError>
where
    E: ProvideErrorMetadata + Detail,
{
    match res {
        Ok(v) => Ok(Some(v)),
        Err(e) => match classify(op, &e) {
            ServiceError::NotFound { .. } => Ok(None),
            other => Err(other),
        },
    }
}

fn text(v: Option<&str>) -> Option<String> {
    v.map(str::to_string)
}

/// Reads the enterprise extension document into the attributes.
fn read_enterprise(ext: Option<&HashMap<String, Document>>, a: &mut UserAttributes) {
    let Some(Value::Object(e)) = ext.and_then(|m| m.get(ENTERPRISE)).map(from_document) else {
        return;
    };
    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    a.employee_number = s("employeeNumber");
    a.cost_center = s("costCenter");
    a.organization = s("organization");
    a.division = s("division");
    a.department = s("department");
    a.manager_id = e.get("manager").and_then(|m| m.get("value")).and_then(Value::as_str).map(str::to_string);
}

/// DescribeUser output -> the port's plain record.
/// A user as DescribeUser answers it, or as ListUsers lists it (the same fields, one reading).
macro_rules! record_of {
    ($out:expr) => {{
        let out = $out;
        let name = out.name();
        let address = out.addresses().first().map(|a| AddressAttributes {
            street_address: text(a.street_address()),
            locality: text(a.locality()),
            region: text(a.region()),
            postal_code: text(a.postal_code()),
            country: text(a.country()),
            formatted: text(a.formatted()),
        });
        let mut attributes = UserAttributes {
            user_name: out.user_name().unwrap_or_default().to_string(),
            display_name: text(out.display_name()),
            given_name: text(name.and_then(|n| n.given_name())),
            family_name: text(name.and_then(|n| n.family_name())),
            middle_name: text(name.and_then(|n| n.middle_name())),
            honorific_prefix: text(name.and_then(|n| n.honorific_prefix())),
            honorific_suffix: text(name.and_then(|n| n.honorific_suffix())),
            formatted_name: text(name.and_then(|n| n.formatted())),
            email: text(out.emails().first().and_then(|e| e.value())),
            phone: text(out.phone_numbers().first().and_then(|p| p.value())),
            address,
            title: text(out.title()),
            user_type: text(out.user_type()),
            preferred_language: text(out.preferred_language()),
            locale: text(out.locale()),
            timezone: text(out.timezone()),
            marker: text(out.profile_url()),
            ..Default::default()
        };
        read_enterprise(out.extensions(), &mut attributes);
        UserRecord {
            user_id: out.user_id().to_string(),
            status: match out.user_status() {
                Some(SdkUserStatus::Disabled) => UserStatus::Disabled,
                _ => UserStatus::Enabled,
            },
            external_ids: out.external_ids().iter().map(|e| (e.issuer().to_string(), e.id().to_string())).collect(),
            attributes,
        }
    }};
}

pub fn user_record(out: &DescribeUserOutput) -> UserRecord {
    record_of!(out)
}

/// A user as ListUsers lists it.
fn listed_user(user: &aws_sdk_identitystore::types::User) -> UserRecord {
    record_of!(user)
}

/// The enterprise extension document for CreateUser, if any attribute is set.
fn enterprise_document(a: &UserAttributes) -> Option<Document> {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("employeeNumber", &a.employee_number),
        ("costCenter", &a.cost_center),
        ("organization", &a.organization),
        ("division", &a.division),
        ("department", &a.department),
    ] {
        if let Some(v) = v {
            m.insert(k.to_string(), Value::String(v.clone()));
        }
    }
    if let Some(id) = &a.manager_id {
        m.insert("manager".to_string(), serde_json::json!({ "value": id }));
    }
    (!m.is_empty()).then(|| to_document(&Value::Object(m)))
}

fn user_name_attribute(op: Op, user_name: &str) -> Result<AlternateIdentifier, ServiceError> {
    let u = UniqueAttribute::builder()
        .attribute_path("userName")
        .attribute_value(Document::String(user_name.to_string()))
        .build()
        .map_err(|e| build_error(op, e))?;
    Ok(AlternateIdentifier::UniqueAttribute(u))
}

#[async_trait]
impl IdentityStore for AwsIdentityStore {
    async fn find_user_by_user_name(&self, user_name: &UserName) -> Result<Option<UserId>, ServiceError> {
        let op = op::GET_USER_ID_BY_USER_NAME;
        self.get_user_id(op, user_name_attribute(op, user_name.as_str())?).await
    }

    async fn find_user_by_external_id(&self, external_id: &ExternalId) -> Result<Option<UserId>, ServiceError> {
        let op = op::GET_USER_ID_BY_EXTERNAL_ID;
        let ext = SdkExternalId::builder()
            .issuer(external_id.issuer.as_str())
            .id(external_id.id.as_str())
            .build()
            .map_err(|e| build_error(op, e))?;
        self.get_user_id(op, AlternateIdentifier::ExternalId(ext)).await
    }

    async fn find_user_by_marker(&self, marker: &str) -> Result<Option<UserId>, ServiceError> {
        let mut pages = self
            .client
            .list_users()
            .identity_store_id(&self.identity_store_id)
            .max_results(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op::LIST_USERS, &e))?;
            if let Some(u) = page.users().iter().find(|u| u.profile_url() == Some(marker)) {
                return Ok(Some(u.user_id().to_string()));
            }
        }
        Ok(None)
    }

    async fn describe_user(&self, user_id: &str) -> Result<Option<UserRecord>, ServiceError> {
        let res = self
            .client
            .describe_user()
            .identity_store_id(&self.identity_store_id)
            .user_id(user_id)
            .extensions(ENTERPRISE)
            .send()
            .await;
        Ok(optional(op::DESCRIBE_USER, res)?.map(|out| user_record(&out)))
    }

    async fn create_user(&self, a: &UserAttributes) -> Result<UserId, ServiceError> {
        let op = op::CREATE_USER;
        let work = |v: &str| (v.to_string(), "work", true);
        let mut req = self
            .client
            .create_user()
            .identity_store_id(&self.identity_store_id)
            .user_name(&a.user_name)
            .set_display_name(a.display_name.clone())
            .name(
                Name::builder()
                    .set_given_name(a.given_name.clone())
                    .set_family_name(a.family_name.clone())
                    .set_middle_name(a.middle_name.clone())
                    .set_honorific_prefix(a.honorific_prefix.clone())
                    .set_honorific_suffix(a.honorific_suffix.clone())
                    .set_formatted(a.formatted_name.clone())
                    .build(),
            )
            .set_title(a.title.clone())
            .set_user_type(a.user_type.clone())
            .set_preferred_language(a.preferred_language.clone())
            .set_locale(a.locale.clone())
            .set_timezone(a.timezone.clone())
            .set_profile_url(a.marker.clone());
        if let Some((v, t, p)) = a.email.as_deref().map(work) {
            req = req.emails(Email::builder().value(v).r#type(t).primary(p).build());
        }
        if let Some((v, t, p)) = a.phone.as_deref().map(work) {
            req = req.phone_numbers(PhoneNumber::builder().value(v).r#type(t).primary(p).build());
        }
        if let Some(ad) = &a.address {
            req = req.addresses(
                Address::builder()
                    .set_street_address(ad.street_address.clone())
                    .set_locality(ad.locality.clone())
                    .set_region(ad.region.clone())
                    .set_postal_code(ad.postal_code.clone())
                    .set_country(ad.country.clone())
                    .set_formatted(ad.formatted.clone())
                    .r#type("work")
                    .primary(true)
                    .build(),
            );
        }
        if let Some(doc) = enterprise_document(a) {
            req = req.extensions(ENTERPRISE, doc);
        }
        req.send().await.map(|o| o.user_id().to_string()).map_err(|e| classify(op, &e))
    }

    async fn update_user(&self, user_id: &str, changes: &[AttributeChange]) -> Result<(), ServiceError> {
        let op = op::UPDATE_USER;
        let ops = changes
            .iter()
            .map(|c| {
                // An attribute is removed with an explicit JSON null ("the API requires a null to
                // unset": the Terraform AWS provider's aws_identitystore_user update).
                AttributeOperation::builder()
                    .attribute_path(c.path)
                    .attribute_value(c.value.as_ref().map_or(Document::Null, to_document))
                    .build()
                    .map_err(|e| build_error(op, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.client
            .update_user()
            .identity_store_id(&self.identity_store_id)
            .user_id(user_id)
            .set_operations(Some(ops))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(op, &e))
    }

    async fn set_user_status(&self, user_id: &str, status: UserStatus) -> Result<(), ServiceError> {
        // Not documented as writable in the API reference: UpdateUser on `userStatus`. Kept here,
        // in the adapter, so a change of mechanism touches only this function.
        let value = match status {
            UserStatus::Enabled => "ENABLED",
            UserStatus::Disabled => "DISABLED",
        };
        let change = AttributeChange { path: "userStatus", value: Some(Value::String(value.to_string())) };
        self.update_user(user_id, std::slice::from_ref(&change)).await
    }

    async fn find_group_by_name(&self, name: &GroupName) -> Result<Option<GroupId>, ServiceError> {
        let op = op::GET_GROUP_ID;
        let u = UniqueAttribute::builder()
            .attribute_path("displayName")
            .attribute_value(Document::String(name.as_str().to_string()))
            .build()
            .map_err(|e| build_error(op, e))?;
        let res = self
            .client
            .get_group_id()
            .identity_store_id(&self.identity_store_id)
            .alternate_identifier(AlternateIdentifier::UniqueAttribute(u))
            .send()
            .await;
        Ok(optional(op, res)?.map(|out| out.group_id().to_string()))
    }

    async fn group_name(&self, group_id: &str) -> Result<Option<String>, ServiceError> {
        let res =
            self.client.describe_group().identity_store_id(&self.identity_store_id).group_id(group_id).send().await;
        Ok(optional(op::DESCRIBE_GROUP, res)?.and_then(|out| out.display_name().map(str::to_string)))
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, ServiceError> {
        let mut pages = self
            .client
            .list_group_memberships_for_member()
            .identity_store_id(&self.identity_store_id)
            .member_id(MemberId::UserId(user_id.to_string()))
            .max_results(100)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op::LIST_GROUP_MEMBERSHIPS_FOR_MEMBER, &e))?;
            out.extend(page.group_memberships().iter().filter_map(|m| {
                Some(Membership { membership_id: m.membership_id().to_string(), group_id: m.group_id()?.to_string() })
            }));
        }
        Ok(out)
    }

    async fn add_membership(&self, group_id: &str, user_id: &str) -> Result<(), ServiceError> {
        let res = self
            .client
            .create_group_membership()
            .identity_store_id(&self.identity_store_id)
            .group_id(group_id)
            .member_id(MemberId::UserId(user_id.to_string()))
            .send()
            .await;
        // A ConflictException (Reason absent for non-KMS errors, per the API reference) is
        // returned as is: the target verifies the membership before taking it as "already a
        // member".
        res.map(|_| ()).map_err(|e| classify(op::CREATE_GROUP_MEMBERSHIP, &e))
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, ServiceError> {
        let res = self.client.delete_user().identity_store_id(&self.identity_store_id).user_id(user_id).send().await;
        jml_aws::did(res.map(|_| ()).map_err(|e| classify(op::DELETE_USER, &e)), jml_aws::is_not_found)
    }

    async fn groups(&self) -> Result<Vec<(GroupId, String)>, ServiceError> {
        let mut pages = self
            .client
            .list_groups()
            .identity_store_id(&self.identity_store_id)
            .max_results(100)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op::LIST_GROUPS, &e))?;
            out.extend(
                page.groups()
                    .iter()
                    .map(|g| (g.group_id().to_string(), g.display_name().unwrap_or_default().to_string())),
            );
        }
        Ok(out)
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, ServiceError> {
        let mut pages = self
            .client
            .list_users()
            .identity_store_id(&self.identity_store_id)
            // The reconciliation compares the manager (API reference: ListUsers, Extensions).
            .extensions(ENTERPRISE)
            .max_results(100)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op::LIST_USERS, &e))?;
            out.extend(page.users().iter().map(listed_user));
        }
        Ok(out)
    }

    async fn group_members(&self, group_id: &str) -> Result<Vec<UserId>, ServiceError> {
        let mut pages = self
            .client
            .list_group_memberships()
            .identity_store_id(&self.identity_store_id)
            .group_id(group_id)
            .max_results(100)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op::LIST_GROUP_MEMBERSHIPS, &e))?;
            out.extend(page.group_memberships().iter().filter_map(|m| match m.member_id() {
                Some(MemberId::UserId(id)) => Some(id.clone()),
                _ => None,
            }));
        }
        Ok(out)
    }

    async fn remove_membership(&self, membership_id: &str) -> Result<(), ServiceError> {
        let res = self
            .client
            .delete_group_membership()
            .identity_store_id(&self.identity_store_id)
            .membership_id(membership_id)
            .send()
            .await;
        match res.map_err(|e| classify(op::DELETE_GROUP_MEMBERSHIP, &e)) {
            Ok(_) | Err(ServiceError::NotFound { .. }) => Ok(()), // already gone
            Err(e) => Err(e),
        }
    }
}
