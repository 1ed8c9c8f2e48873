//! An in-memory Identity Store with the service's semantics: userName uniqueness
//! (ConflictException), ResourceNotFound, reserved names, UserStatus, revision bumps, membership
//! uniqueness, call counting, and injectable latency and faults.

use crate::port::op;
use jml_core::sim::CallCounts;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::port::{
    AddressAttributes, AttributeChange, ConflictReason, GroupId, IdentityStore, Membership, Op, ServiceError,
    UserAttributes, UserId, UserRecord, UserStatus,
};
use jml_core::contract::{ExternalId, GroupName, RESERVED_NAMES, UserName};

/// A fault to inject: after `after` matching calls succeed, the next `times` calls of `op`
/// (optionally only those touching the user with this userName) fail with `error`.
#[derive(Clone, Debug)]
pub struct Fault {
    pub op: Op,
    pub user_name: Option<String>,
    pub error: ServiceError,
    pub times: usize,
    pub after: usize,
}

impl Fault {
    /// The next `times` calls of `op` fail with `error`.
    pub fn next(op: Op, error: ServiceError, times: usize) -> Self {
        Self { op, user_name: None, error, times, after: 0 }
    }
}

#[derive(Clone, Debug)]
struct SimUser {
    record: UserRecord,
    revision: u64,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<UserId, SimUser>,
    groups: BTreeMap<GroupId, String>,
    /// membership id -> (group id, user id)
    memberships: BTreeMap<String, (GroupId, UserId)>,
    /// Account assignments made to a user directly (IAM Identity Center's sso-admin, which
    /// jml-sync never calls): (principal UserId, permission set). Keyed by the principal's id, so
    /// a user created later never holds one of another user's (ids are never reused).
    assignments: Vec<(UserId, String)>,
    next_id: u64,
    calls: BTreeMap<Op, usize>,
    faults: Vec<Fault>,
}

impl State {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        // The ResourceId pattern: UUID shape.
        format!("{:08x}-0000-4000-8000-{:012x}", self.next_id, self.next_id)
    }

    fn user_id_by_name(&self, name: &str) -> Option<UserId> {
        // Identity Store userNames are unique regardless of case.
        self.users
            .values()
            .find(|u| u.record.attributes.user_name.eq_ignore_ascii_case(name))
            .map(|u| u.record.user_id.clone())
    }

    fn take_fault(&mut self, op: Op, user_name: Option<&str>) -> Option<ServiceError> {
        let idx = self
            .faults
            .iter()
            .position(|f| f.op == op && f.times > 0 && f.user_name.as_deref().is_none_or(|n| Some(n) == user_name))?;
        let fault = &mut self.faults[idx];
        if fault.after > 0 {
            fault.after -= 1;
            return None;
        }
        fault.times -= 1;
        let err = fault.error.clone();
        if fault.times == 0 {
            self.faults.remove(idx);
        }
        Some(err)
    }
}

/// The simulator. `Send + Sync`; share it with `Arc`.
#[derive(Debug, Default)]
pub struct SimIdentityStore {
    state: Mutex<State>,
    /// Latency, the account-wide quota (a throttled call still counts, as it does against the
    /// real quota) and the adapter's pacing, for benchmarks.
    quota: jml_core::sim::Quota,
    /// The service as it might be: UpdateUser on `userStatus` refused with a ValidationException
    /// (no production code shows it working; see `reject_user_status_writes`).
    rejects_user_status: std::sync::atomic::AtomicBool,
}

/// The page size of ListUsers, ListGroups and ListGroupMemberships (MaxResults 100, as the
/// adapter asks).
pub const PAGE: usize = 100;

fn pages(items: usize) -> usize {
    items.div_ceil(PAGE).max(1)
}

/// A read-only view of a simulated user, for assertions and the CLI's final table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    pub user_id: UserId,
    pub user_name: String,
    pub status: UserStatus,
    pub marker: Option<String>,
    pub groups: Vec<String>,
    pub revision: u64,
    pub attributes: UserAttributes,
}

impl SimIdentityStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, UpdateUser on `userStatus` is refused with a ValidationException, as the
    /// service would if the attribute were not writable (the call still counts).
    pub fn reject_user_status_writes(&self, reject: bool) {
        self.rejects_user_status.store(reject, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every call sleeps this long first (to model network latency in benchmarks).
    pub fn with_latency(self, latency: Duration) -> Self {
        self.quota.set_latency(latency);
        self
    }

    /// At most `per_second` requests in any one second (IAM Identity Center: 20 per account).
    pub fn with_rate_limit(self, per_second: u32) -> Self {
        self.quota.set_limit(per_second);
        self
    }

    /// Every request first takes a slot of this window, as the adapter's paced HTTP client does
    /// (one per page of a list call).
    pub fn with_pacer(self, window: std::sync::Arc<jml_core::pacing::SlidingWindow>) -> Self {
        self.quota.set_pacer(window);
        self
    }

    /// How many calls the rate limit rejected.
    pub fn throttled(&self) -> usize {
        self.quota.throttled()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a group (administrative seeding; not counted as a call).
    pub fn create_group(&self, name: &str) -> GroupId {
        let mut s = self.lock();
        if let Some((id, _)) = s.groups.iter().find(|(_, n)| n.as_str() == name) {
            return id.clone();
        }
        let id = s.new_id();
        s.groups.insert(id.clone(), name.to_string());
        id
    }

    /// Renames a group (an administrator, outside jml-sync); not counted.
    pub fn rename_group(&self, from: &str, to: &str) {
        let mut s = self.lock();
        for name in s.groups.values_mut() {
            if name == from {
                *name = to.to_string();
            }
        }
    }

    /// Creates a user outside jml-sync (by hand, or SCIM when `external_id` is given); not counted.
    pub fn seed_user(&self, user_name: &str, external_id: Option<&ExternalId>, marker: Option<&str>) -> UserId {
        let mut s = self.lock();
        let id = s.new_id();
        let record = UserRecord {
            user_id: id.clone(),
            status: UserStatus::Enabled,
            external_ids: external_id
                .map(|e| vec![(e.issuer.as_str().to_string(), e.id.as_str().to_string())])
                .unwrap_or_default(),
            attributes: UserAttributes {
                user_name: user_name.to_string(),
                marker: marker.map(str::to_string),
                ..Default::default()
            },
        };
        s.users.insert(id.clone(), SimUser { record, revision: 1 });
        id
    }

    /// An administrator removes a user's managed marker and ExternalIds by hand; not counted.
    pub fn strip_marker(&self, user_name: &str) {
        let mut s = self.lock();
        for u in s.users.values_mut().filter(|u| u.record.attributes.user_name == user_name) {
            u.record.attributes.marker = None;
            u.record.external_ids.clear();
        }
    }

    /// Adds a membership outside jml-sync (e.g. an unmanaged group); not counted.
    pub fn seed_membership(&self, group_id: &str, user_id: &str) {
        let mut s = self.lock();
        let id = s.new_id();
        s.memberships.insert(id, (group_id.to_string(), user_id.to_string()));
    }

    /// An administrator assigns a permission set to a user directly (sso-admin
    /// CreateAccountAssignment, outside jml-sync); not counted.
    pub fn seed_account_assignment(&self, user_id: &str, permission_set: &str) {
        self.lock().assignments.push((user_id.to_string(), permission_set.to_string()));
    }

    /// The permission sets assigned directly to this UserId (for assertions).
    pub fn account_assignments(&self, user_id: &str) -> Vec<String> {
        self.lock().assignments.iter().filter(|(u, _)| u == user_id).map(|(_, p)| p.clone()).collect()
    }

    /// The names of every group this UserId is a member of, managed or not (for assertions).
    pub fn group_names_of(&self, user_id: &str) -> Vec<String> {
        let s = self.lock();
        let mut out: Vec<String> = s
            .memberships
            .values()
            .filter(|(_, u)| u == user_id)
            .filter_map(|(g, _)| s.groups.get(g).cloned())
            .collect();
        out.sort();
        out
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn calls(&self) -> CallCounts {
        CallCounts { by_op: self.lock().calls.clone() }
    }

    pub fn reset_calls(&self) {
        self.lock().calls.clear();
    }

    pub fn users(&self) -> Vec<UserView> {
        let s = self.lock();
        s.users
            .values()
            .map(|u| {
                let mut groups: Vec<String> = s
                    .memberships
                    .values()
                    .filter(|(_, uid)| uid == &u.record.user_id)
                    .filter_map(|(gid, _)| s.groups.get(gid).cloned())
                    .collect();
                groups.sort();
                UserView {
                    user_id: u.record.user_id.clone(),
                    user_name: u.record.attributes.user_name.clone(),
                    status: u.record.status,
                    marker: u.record.attributes.marker.clone(),
                    groups,
                    revision: u.revision,
                    attributes: u.record.attributes.clone(),
                }
            })
            .collect()
    }

    pub fn user(&self, user_name: &str) -> Option<UserView> {
        self.users().into_iter().find(|u| u.user_name == user_name)
    }

    /// Counts the call, sleeps the latency, and returns an injected fault if one matches.
    async fn enter(&self, op: Op, user_name: Option<&str>) -> Result<(), ServiceError> {
        if let Err(e) = self.quota.request(op).await {
            *self.lock().calls.entry(op).or_default() += 1;
            return Err(e);
        }
        let mut s = self.lock();
        *s.calls.entry(op).or_default() += 1;
        match s.take_fault(op, user_name) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn user_name_of(&self, user_id: &str) -> Option<String> {
        self.lock().users.get(user_id).map(|u| u.record.attributes.user_name.clone())
    }
}

fn validation(op: Op, message: &str) -> ServiceError {
    ServiceError::Validation { op, message: message.to_string() }
}

fn str_of(op: Op, path: &str, v: &Value) -> Result<String, ServiceError> {
    v.as_str().map(str::to_string).ok_or_else(|| validation(op, &format!("{path}: expected a string")))
}

/// The first entry of a multi-valued attribute in UpdateUser's shape: lower camel case keys
/// only (a `Value`-style key is rejected, as the model of what production code sends).
fn first_entry<'v>(
    op: Op,
    path: &str,
    v: &'v Value,
    keys: &[&str],
) -> Result<&'v serde_json::Map<String, Value>, ServiceError> {
    let entry = v
        .get(0)
        .and_then(Value::as_object)
        .ok_or_else(|| validation(op, &format!("{path}: expected a list of objects")))?;
    if let Some(k) = entry.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(validation(
            op,
            &format!("{path}: unknown key {k} (keys are lower camel case: {})", keys.join(", ")),
        ));
    }
    Ok(entry)
}

fn first_value(op: Op, path: &str, v: &Value) -> Result<String, ServiceError> {
    first_entry(op, path, v, &["value", "type", "primary", "display"])?
        .get("value")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| validation(op, &format!("{path}: expected [{{\"value\": ...}}]")))
}

fn apply_change(a: &mut UserAttributes, c: &AttributeChange) -> Result<(), ServiceError> {
    let op = op::UPDATE_USER;
    let text = |v: &Option<Value>| -> Result<Option<String>, ServiceError> {
        v.as_ref().map(|v| str_of(op, c.path, v)).transpose()
    };
    let v = &c.value;
    match c.path {
        "userName" => {
            a.user_name = text(v)?.ok_or_else(|| validation(op, "userName cannot be removed"))?;
        }
        "displayName" => a.display_name = text(v)?,
        "name.givenName" => a.given_name = text(v)?,
        "name.familyName" => a.family_name = text(v)?,
        "name.middleName" => a.middle_name = text(v)?,
        "name.honorificPrefix" => a.honorific_prefix = text(v)?,
        "name.honorificSuffix" => a.honorific_suffix = text(v)?,
        "name.formatted" => a.formatted_name = text(v)?,
        "title" => a.title = text(v)?,
        "userType" => a.user_type = text(v)?,
        "preferredLanguage" => a.preferred_language = text(v)?,
        "locale" => a.locale = text(v)?,
        "timezone" => a.timezone = text(v)?,
        "profileUrl" => a.marker = text(v)?,
        "aws:identitystore:enterprise.employeeNumber" => a.employee_number = text(v)?,
        "aws:identitystore:enterprise.costCenter" => a.cost_center = text(v)?,
        "aws:identitystore:enterprise.organization" => a.organization = text(v)?,
        "aws:identitystore:enterprise.division" => a.division = text(v)?,
        "aws:identitystore:enterprise.department" => a.department = text(v)?,
        "aws:identitystore:enterprise.manager" => {
            a.manager_id = v
                .as_ref()
                .map(|m| {
                    m.get("value")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| validation(op, "manager: expected {\"value\": userId}"))
                })
                .transpose()?;
        }
        "emails" => a.email = v.as_ref().map(|v| first_value(op, c.path, v)).transpose()?,
        "phoneNumbers" => a.phone = v.as_ref().map(|v| first_value(op, c.path, v)).transpose()?,
        "addresses" => {
            const KEYS: [&str; 8] =
                ["streetAddress", "locality", "region", "postalCode", "country", "formatted", "type", "primary"];
            a.address = v
                .as_ref()
                .map(|v| {
                    let e = first_entry(op, c.path, v, &KEYS)?;
                    let f = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
                    Ok(AddressAttributes {
                        street_address: f("streetAddress"),
                        locality: f("locality"),
                        region: f("region"),
                        postal_code: f("postalCode"),
                        country: f("country"),
                        formatted: f("formatted"),
                    })
                })
                .transpose()?;
        }
        other => {
            return Err(validation(op, &format!("unsupported attribute path {other}")));
        }
    }
    Ok(())
}

fn check_user_name(op: Op, name: &str) -> Result<(), ServiceError> {
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(validation(op, "reserved user name"));
    }
    UserName::parse(name).map(|_| ()).map_err(|rule| validation(op, &format!("UserName {rule}")))
}

#[async_trait]
impl IdentityStore for SimIdentityStore {
    async fn find_user_by_user_name(&self, user_name: &UserName) -> Result<Option<UserId>, ServiceError> {
        self.enter(op::GET_USER_ID_BY_USER_NAME, Some(user_name.as_str())).await?;
        Ok(self.lock().user_id_by_name(user_name.as_str()))
    }

    async fn find_user_by_external_id(&self, external_id: &ExternalId) -> Result<Option<UserId>, ServiceError> {
        self.enter(op::GET_USER_ID_BY_EXTERNAL_ID, None).await?;
        let s = self.lock();
        Ok(s.users
            .values()
            .find(|u| {
                u.record
                    .external_ids
                    .iter()
                    .any(|(i, id)| i == external_id.issuer.as_str() && id == external_id.id.as_str())
            })
            .map(|u| u.record.user_id.clone()))
    }

    async fn find_user_by_marker(&self, marker: &str) -> Result<Option<UserId>, ServiceError> {
        // ListUsers pages of 100: count one call per page.
        let n = self.lock().users.len();
        for _ in 0..pages(n) {
            self.enter(op::LIST_USERS, None).await?;
        }
        let s = self.lock();
        Ok(s.users
            .values()
            .find(|u| u.record.attributes.marker.as_deref() == Some(marker))
            .map(|u| u.record.user_id.clone()))
    }

    async fn describe_user(&self, user_id: &str) -> Result<Option<UserRecord>, ServiceError> {
        let name = self.user_name_of(user_id);
        self.enter(op::DESCRIBE_USER, name.as_deref()).await?;
        Ok(self.lock().users.get(user_id).map(|u| u.record.clone()))
    }

    async fn create_user(&self, attributes: &UserAttributes) -> Result<UserId, ServiceError> {
        self.enter(op::CREATE_USER, Some(&attributes.user_name)).await?;
        check_user_name(op::CREATE_USER, &attributes.user_name)?;
        if attributes.display_name.is_none() || attributes.given_name.is_none() || attributes.family_name.is_none() {
            return Err(validation(op::CREATE_USER, "DisplayName and Name are required in IAM Identity Center"));
        }
        let mut s = self.lock();
        if s.user_id_by_name(&attributes.user_name).is_some() {
            // ConflictException's Reason is absent outside KMS errors (API reference).
            return Err(ServiceError::Conflict { op: op::CREATE_USER, reason: ConflictReason::Unspecified });
        }
        let id = s.new_id();
        let record = UserRecord {
            user_id: id.clone(),
            status: UserStatus::Enabled,
            external_ids: vec![],
            attributes: attributes.clone(),
        };
        s.users.insert(id.clone(), SimUser { record, revision: 1 });
        Ok(id)
    }

    async fn update_user(&self, user_id: &str, changes: &[AttributeChange]) -> Result<(), ServiceError> {
        let name = self.user_name_of(user_id);
        self.enter(op::UPDATE_USER, name.as_deref()).await?;
        if changes.is_empty() || changes.len() > 100 {
            return Err(validation(op::UPDATE_USER, "Operations must hold 1 to 100 items"));
        }
        let mut s = self.lock();
        let Some(mut user) = s.users.get(user_id).cloned() else {
            return Err(ServiceError::NotFound { op: op::UPDATE_USER });
        };
        for c in changes {
            apply_change(&mut user.record.attributes, c)?;
        }
        let new_name = &user.record.attributes.user_name;
        check_user_name(op::UPDATE_USER, new_name)?;
        if s.users
            .values()
            .any(|u| u.record.user_id != user_id && u.record.attributes.user_name.eq_ignore_ascii_case(new_name))
        {
            // ConflictException's Reason is absent outside KMS errors (API reference).
            return Err(ServiceError::Conflict { op: op::UPDATE_USER, reason: ConflictReason::Unspecified });
        }
        user.revision += 1;
        s.users.insert(user_id.to_string(), user);
        Ok(())
    }

    async fn set_user_status(&self, user_id: &str, status: UserStatus) -> Result<(), ServiceError> {
        let name = self.user_name_of(user_id);
        self.enter(op::UPDATE_USER, name.as_deref()).await?;
        if self.rejects_user_status.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(validation(op::UPDATE_USER, "userStatus: not a writable attribute path"));
        }
        let mut s = self.lock();
        let user = s.users.get_mut(user_id).ok_or(ServiceError::NotFound { op: op::UPDATE_USER })?;
        user.record.status = status;
        user.revision += 1;
        Ok(())
    }

    async fn find_group_by_name(&self, name: &GroupName) -> Result<Option<GroupId>, ServiceError> {
        self.enter(op::GET_GROUP_ID, None).await?;
        Ok(self.lock().groups.iter().find(|(_, n)| n.as_str() == name.as_str()).map(|(id, _)| id.clone()))
    }

    async fn group_name(&self, group_id: &str) -> Result<Option<String>, ServiceError> {
        self.enter(op::DESCRIBE_GROUP, None).await?;
        Ok(self.lock().groups.get(group_id).cloned())
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, ServiceError> {
        let name = self.user_name_of(user_id);
        self.enter(op::LIST_GROUP_MEMBERSHIPS_FOR_MEMBER, name.as_deref()).await?;
        let s = self.lock();
        if !s.users.contains_key(user_id) {
            return Err(ServiceError::NotFound { op: op::LIST_GROUP_MEMBERSHIPS_FOR_MEMBER });
        }
        Ok(s.memberships
            .iter()
            .filter(|(_, (_, u))| u == user_id)
            .map(|(mid, (gid, _))| Membership { membership_id: mid.clone(), group_id: gid.clone() })
            .collect())
    }

    async fn add_membership(&self, group_id: &str, user_id: &str) -> Result<(), ServiceError> {
        let name = self.user_name_of(user_id);
        self.enter(op::CREATE_GROUP_MEMBERSHIP, name.as_deref()).await?;
        let mut s = self.lock();
        if !s.groups.contains_key(group_id) || !s.users.contains_key(user_id) {
            return Err(ServiceError::NotFound { op: op::CREATE_GROUP_MEMBERSHIP });
        }
        if s.memberships.values().any(|(g, u)| g == group_id && u == user_id) {
            // As the service: ConflictException, without a Reason.
            return Err(ServiceError::Conflict {
                op: op::CREATE_GROUP_MEMBERSHIP,
                reason: crate::port::ConflictReason::Unspecified,
            });
        }
        let id = s.new_id();
        s.memberships.insert(id, (group_id.to_string(), user_id.to_string()));
        Ok(())
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, ServiceError> {
        let name = self.user_name_of(user_id);
        self.enter(op::DELETE_USER, name.as_deref()).await?;
        let mut s = self.lock();
        // The user's memberships go with it. Its account assignments (sso-admin) are kept as
        // orphans: the user guide says deleting a user "removes their access to AWS accounts and
        // applications" (deleteusers.html) but not that the assignment records go, so the model
        // keeps them; they name the deleted UserId, which no later user gets.
        s.memberships.retain(|_, (_, u)| u != user_id);
        Ok(s.users.remove(user_id).is_some())
    }

    async fn groups(&self) -> Result<Vec<(GroupId, String)>, ServiceError> {
        let out: Vec<(GroupId, String)> = self.lock().groups.iter().map(|(id, n)| (id.clone(), n.clone())).collect();
        for _ in 0..pages(out.len()) {
            self.enter(op::LIST_GROUPS, None).await?;
        }
        Ok(out)
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, ServiceError> {
        let out: Vec<UserRecord> = self.lock().users.values().map(|u| u.record.clone()).collect();
        for _ in 0..pages(out.len()) {
            self.enter(op::LIST_USERS, None).await?;
        }
        Ok(out)
    }

    async fn group_members(&self, group_id: &str) -> Result<Vec<UserId>, ServiceError> {
        let out: Vec<UserId> =
            self.lock().memberships.values().filter(|(g, _)| g == group_id).map(|(_, u)| u.clone()).collect();
        for _ in 0..pages(out.len()) {
            self.enter(op::LIST_GROUP_MEMBERSHIPS, None).await?;
        }
        Ok(out)
    }

    async fn remove_membership(&self, membership_id: &str) -> Result<(), ServiceError> {
        let name = {
            let s = self.lock();
            s.memberships
                .get(membership_id)
                .and_then(|(_, u)| s.users.get(u))
                .map(|u| u.record.attributes.user_name.clone())
        };
        self.enter(op::DELETE_GROUP_MEMBERSHIP, name.as_deref()).await?;
        self.lock().memberships.remove(membership_id);
        Ok(()) // already gone is success
    }
}

/// The groups the sample events in `events/` use; the simulator is seeded with them.
pub const DEMO_GROUPS: &[&str] = &["jml-all-staff", "jml-engineering", "jml-vpn", "jml-finance", "jml-oncall"];

/// A simulator seeded with `DEMO_GROUPS` and the managers the samples name.
pub fn demo_identity_store() -> SimIdentityStore {
    let store = SimIdentityStore::new();
    for g in DEMO_GROUPS {
        store.create_group(g);
    }
    store.seed_user("grace.hopper", None, None);
    store
}
