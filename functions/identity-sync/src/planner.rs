//! The pure planner: (event, current user, current managed memberships) -> ordered actions.
//!
//! No I/O. Equal state gives no actions, so a duplicate or replayed event makes zero writes.
//! Ownership (is this user ours?) is decided in [`crate::naming`], from plain data.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::port::{AddressAttributes, AttributeChange, MembershipId, UserAttributes, UserId, UserRecord, UserStatus};
use jml_core::contract::{Change, ExternalId, GroupName, HrEvent, Profile};

pub use crate::naming::{Ownership, ownership};

/// UpdateUser takes at most 100 attribute operations per call (`AttributeOperations` max 100).
pub const MAX_OPERATIONS_PER_UPDATE: usize = 100;

/// Which groups jml-sync manages: a name prefix and/or an explicit list. Memberships in any other
/// group are never read for reconciliation, added or removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagedGroups {
    pub prefix: Option<String>,
    pub names: BTreeSet<String>,
}

impl ManagedGroups {
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name) || self.prefix.as_deref().is_some_and(|p| !p.is_empty() && name.starts_with(p))
    }
}

/// The user as found, with its memberships in managed groups (group name -> membership).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentUser {
    pub record: UserRecord,
    pub managed_memberships: BTreeMap<String, MembershipId>,
}

/// One step of a plan, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateUser(Box<UserAttributes>),
    /// At most `MAX_OPERATIONS_PER_UPDATE` changes.
    UpdateUser(Vec<AttributeChange>),
    RemoveFromGroup {
        group: String,
        membership_id: MembershipId,
    },
    AddToGroup(GroupName),
    SetStatus(UserStatus),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CreateUser(_) => "create-user",
            Self::UpdateUser(_) => "update-user",
            Self::RemoveFromGroup { .. } => "remove-membership",
            Self::AddToGroup(_) => "add-membership",
            Self::SetStatus(UserStatus::Disabled) => "disable-user",
            Self::SetStatus(UserStatus::Enabled) => "enable-user",
        }
    }

    /// A description safe for logs and terminal output: attribute paths and group names, never
    /// attribute values.
    pub fn describe(&self) -> String {
        match self {
            Self::CreateUser(_) => "CreateUser".to_string(),
            Self::UpdateUser(c) => {
                let paths: Vec<&str> = c.iter().map(|c| c.path).collect();
                format!("UpdateUser [{}]", paths.join(", "))
            }
            Self::RemoveFromGroup { group, .. } => format!("DeleteGroupMembership {group}"),
            Self::AddToGroup(g) => format!("CreateGroupMembership {g}"),
            Self::SetStatus(UserStatus::Disabled) => "UpdateUser [userStatus=DISABLED]".to_string(),
            Self::SetStatus(UserStatus::Enabled) => "UpdateUser [userStatus=ENABLED]".to_string(),
        }
    }
}

pub use jml_core::engine::Decision;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub decision: Decision,
    pub actions: Vec<Action>,
}

/// A reason the event can never be applied as it stands (parked, not retried).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "groups: group '{group}' is not managed by jml-sync (not in MANAGED_GROUPS and without the MANAGED_GROUP_PREFIX)"
    )]
    UnmanagedGroup { group: String },
}

/// Every event group must be a managed group.
pub fn check_groups(profile: &Profile, managed: &ManagedGroups) -> Result<(), Refusal> {
    match profile.groups.iter().find(|g| !managed.contains(g.as_str())) {
        Some(g) => Err(Refusal::UnmanagedGroup { group: g.to_string() }),
        None => Ok(()),
    }
}

/// The attributes a profile asks for (the manager already resolved to a UserId).
pub fn desired_attributes(profile: &Profile, person: &ExternalId, manager_id: Option<UserId>) -> UserAttributes {
    let t = |v: &Option<jml_core::contract::Text>| v.as_ref().map(|t| t.as_str().to_string());
    UserAttributes {
        user_name: profile.user_name.as_str().to_string(),
        display_name: Some(profile.display_name.as_str().to_string()),
        given_name: Some(profile.name.given_name.as_str().to_string()),
        family_name: Some(profile.name.family_name.as_str().to_string()),
        middle_name: t(&profile.name.middle_name),
        honorific_prefix: t(&profile.name.honorific_prefix),
        honorific_suffix: t(&profile.name.honorific_suffix),
        formatted_name: t(&profile.name.formatted),
        email: Some(profile.email.as_str().to_string()),
        phone: profile.phone.as_ref().map(|p| p.as_str().to_string()),
        address: profile.address.as_ref().map(|a| AddressAttributes {
            street_address: t(&a.street_address),
            locality: t(&a.locality),
            region: t(&a.region),
            postal_code: t(&a.postal_code),
            country: t(&a.country),
            formatted: t(&a.formatted),
        }),
        title: t(&profile.title),
        user_type: t(&profile.user_type),
        preferred_language: t(&profile.preferred_language),
        locale: t(&profile.locale),
        timezone: t(&profile.timezone),
        employee_number: t(&profile.enterprise.employee_number),
        cost_center: t(&profile.enterprise.cost_center),
        organization: t(&profile.enterprise.organization),
        division: t(&profile.enterprise.division),
        department: t(&profile.enterprise.department),
        manager_id,
        marker: Some(person.marker()),
    }
}

/// Plans one event against the current state. `manager_id` is the resolved manager of the
/// profile (ignored for leavers).
pub fn plan(event: &HrEvent, current: Option<&CurrentUser>, manager_id: Option<UserId>) -> Plan {
    let enabled = |c: &CurrentUser| c.record.status == UserStatus::Enabled;
    match (&event.change, current) {
        (Change::Leaver { .. }, None) => Plan { decision: Decision::LeaverWithoutAccount, actions: vec![] },
        (Change::Leaver { .. }, Some(cur)) => {
            // Removing memberships is what revokes access: it comes first, then the disable.
            let mut actions: Vec<Action> = cur
                .managed_memberships
                .iter()
                .map(|(group, id)| Action::RemoveFromGroup { group: group.clone(), membership_id: id.clone() })
                .collect();
            if enabled(cur) {
                actions.push(Action::SetStatus(UserStatus::Disabled));
            }
            let decision = if actions.is_empty() { Decision::NoChange } else { Decision::Disable };
            Plan { decision, actions }
        }
        (Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p), None) => {
            let mut actions = vec![Action::CreateUser(Box::new(desired_attributes(p, &event.external_id, manager_id)))];
            actions.extend(p.groups.iter().cloned().map(Action::AddToGroup));
            Plan { decision: Decision::Create, actions }
        }
        (Change::Joiner(_) | Change::Mover(_), Some(cur)) if !enabled(cur) => {
            Plan { decision: Decision::IgnoredForDisabledUser, actions: vec![] }
        }
        (Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p), Some(cur)) => {
            let desired = desired_attributes(p, &event.external_id, manager_id);
            let mut actions: Vec<Action> = attribute_changes(&cur.record.attributes, &desired)
                .chunks(MAX_OPERATIONS_PER_UPDATE)
                .map(|c| Action::UpdateUser(c.to_vec()))
                .collect();
            actions.extend(group_actions(&cur.managed_memberships, &p.groups));
            let rehired = !enabled(cur);
            if rehired {
                // Enabled last: the person can sign in only once their access is complete.
                actions.push(Action::SetStatus(UserStatus::Enabled));
            }
            let decision = match (actions.is_empty(), rehired) {
                (true, _) => Decision::NoChange,
                (false, true) => Decision::Rehire,
                (false, false) => Decision::Update,
            };
            Plan { decision, actions }
        }
    }
}

/// Removals first (least privilege during the change), then additions.
fn group_actions(current: &BTreeMap<String, MembershipId>, desired: &BTreeSet<GroupName>) -> Vec<Action> {
    let desired_names: BTreeSet<&str> = desired.iter().map(GroupName::as_str).collect();
    let removals = current
        .iter()
        .filter(|(g, _)| !desired_names.contains(g.as_str()))
        .map(|(g, id)| Action::RemoveFromGroup { group: g.clone(), membership_id: id.clone() });
    let additions = desired.iter().filter(|g| !current.contains_key(g.as_str())).cloned().map(Action::AddToGroup);
    removals.chain(additions).collect()
}

/// A multi-valued attribute as UpdateUser takes it: SCIM-style lower camel case keys (`value`,
/// `type`, `primary`), the whole list replaced. Evidence: the Terraform AWS provider's
/// acceptance-tested `aws_identitystore_user` update (internal/service/identitystore/user.go).
fn work(value: &str) -> Value {
    json!([{ "value": value, "type": "work", "primary": true }])
}

/// An address as UpdateUser takes it (lower camel case, as `work`).
fn address_value(a: &AddressAttributes) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("streetAddress", &a.street_address),
        ("locality", &a.locality),
        ("region", &a.region),
        ("postalCode", &a.postal_code),
        ("country", &a.country),
        ("formatted", &a.formatted),
    ] {
        if let Some(v) = v {
            m.insert(k.to_string(), Value::String(v.clone()));
        }
    }
    m.insert("type".to_string(), Value::String("work".to_string()));
    m.insert("primary".to_string(), Value::Bool(true));
    Value::Array(vec![Value::Object(m)])
}

/// The UpdateUser operations that turn `current` into `desired`: only what differs.
pub fn attribute_changes(current: &UserAttributes, desired: &UserAttributes) -> Vec<AttributeChange> {
    let mut out = Vec::new();
    let mut text = |path: &'static str, cur: &Option<String>, want: &Option<String>| {
        if cur != want {
            out.push(AttributeChange { path, value: want.as_ref().map(|v| Value::String(v.clone())) });
        }
    };
    text("displayName", &current.display_name, &desired.display_name);
    text("name.givenName", &current.given_name, &desired.given_name);
    text("name.familyName", &current.family_name, &desired.family_name);
    text("name.middleName", &current.middle_name, &desired.middle_name);
    text("name.honorificPrefix", &current.honorific_prefix, &desired.honorific_prefix);
    text("name.honorificSuffix", &current.honorific_suffix, &desired.honorific_suffix);
    text("name.formatted", &current.formatted_name, &desired.formatted_name);
    text("title", &current.title, &desired.title);
    text("userType", &current.user_type, &desired.user_type);
    text("preferredLanguage", &current.preferred_language, &desired.preferred_language);
    text("locale", &current.locale, &desired.locale);
    text("timezone", &current.timezone, &desired.timezone);
    text("profileUrl", &current.marker, &desired.marker);
    text("aws:identitystore:enterprise.employeeNumber", &current.employee_number, &desired.employee_number);
    text("aws:identitystore:enterprise.costCenter", &current.cost_center, &desired.cost_center);
    text("aws:identitystore:enterprise.organization", &current.organization, &desired.organization);
    text("aws:identitystore:enterprise.division", &current.division, &desired.division);
    text("aws:identitystore:enterprise.department", &current.department, &desired.department);
    if current.user_name != desired.user_name {
        out.push(AttributeChange { path: "userName", value: Some(Value::String(desired.user_name.clone())) });
    }
    if current.manager_id != desired.manager_id {
        out.push(AttributeChange {
            path: "aws:identitystore:enterprise.manager",
            value: desired.manager_id.as_ref().map(|id| json!({ "value": id })),
        });
    }
    if current.email != desired.email {
        out.push(AttributeChange { path: "emails", value: desired.email.as_deref().map(work) });
    }
    if current.phone != desired.phone {
        out.push(AttributeChange { path: "phoneNumbers", value: desired.phone.as_deref().map(work) });
    }
    if current.address != desired.address {
        out.push(AttributeChange { path: "addresses", value: desired.address.as_ref().map(address_value) });
    }
    out
}
