//! `jml doctor` for identity-sync: the read-only preflight, and the canary that sends every
//! write path once (the same adapter code the function runs) on a temporary, clearly named test
//! user, reads each result back and deletes the user, even after a failure.

use crate::planner::attribute_changes;
use crate::port::{AddressAttributes, IdentityStore, UserAttributes, UserStatus};
use crate::settings::Settings;
use crate::target::IDENTITY_TARGET;
use jml_core::doctor::{Canary, Check, expect};

/// The canary user's userName prefix: never a person's (HR userNames are checked by the contract,
/// and this prefix is reserved by the README).
pub const CANARY_PREFIX: &str = "jml-doctor-canary-";
/// The canary user's marker prefix: never a person's marker (`MARKER_PREFIX`).
pub const CANARY_MARKER: &str = "urn:jml-sync:doctor-canary:";

/// The managed groups the deployment names that exist (by ListGroups), or why not.
pub async fn preflight(store: &dyn IdentityStore, settings: &Settings) -> Vec<Check> {
    let scope = IDENTITY_TARGET;
    let id = settings.identity_store_id.clone().unwrap_or_else(|| "(memory)".into());
    let groups = match store.groups().await {
        Ok(g) => g,
        Err(e) => return vec![Check::of(scope, "identity store reachable (ListGroups)", Err(format!("{id}: {e}")))],
    };
    let mut out =
        vec![Check::of(scope, "identity store reachable (ListGroups)", Ok(format!("{id}: {} group(s)", groups.len())))];
    let managed = &settings.managed_groups;
    let names: Vec<&str> = groups.iter().map(|(_, n)| n.as_str()).collect();
    let missing: Vec<&str> = managed.names.iter().map(String::as_str).filter(|n| !names.contains(n)).collect();
    let listed = managed.names.len();
    if listed > 0 {
        let result = if missing.is_empty() {
            Ok(format!("all {listed} of MANAGED_GROUPS exist"))
        } else {
            Err(format!("missing: {} (create them, or fix MANAGED_GROUPS)", missing.join(", ")))
        };
        out.push(Check::of(scope, "every managed group exists", result));
    }
    if let Some(prefix) = managed.prefix.as_deref().filter(|p| !p.is_empty()) {
        let n = names.iter().filter(|g| g.starts_with(prefix)).count();
        let result = if n > 0 {
            Ok(format!("{n} group(s) named {prefix}*"))
        } else {
            Err(format!("no group is named {prefix}*: MANAGED_GROUP_PREFIX matches nothing"))
        };
        out.push(Check::of(scope, "managed groups by prefix exist", result));
    }
    out
}

fn canary_attributes(user_name: &str) -> UserAttributes {
    UserAttributes {
        user_name: user_name.to_string(),
        display_name: Some("jml-sync doctor canary".into()),
        given_name: Some("Canary".into()),
        family_name: Some("Doctor".into()),
        middle_name: Some("Jml".into()),
        honorific_prefix: Some("Dr".into()),
        honorific_suffix: Some("II".into()),
        formatted_name: Some("Dr Canary Jml Doctor II".into()),
        email: Some(format!("{user_name}@example.invalid")),
        phone: Some("+1 555 0100".into()),
        address: Some(AddressAttributes {
            street_address: Some("1 Canary Street".into()),
            locality: Some("Testville".into()),
            region: Some("TS".into()),
            postal_code: Some("00000".into()),
            country: Some("US".into()),
            formatted: Some("1 Canary Street, Testville TS 00000, US".into()),
        }),
        title: Some("Canary".into()),
        user_type: Some("Test".into()),
        preferred_language: Some("en-US".into()),
        locale: Some("en-US".into()),
        timezone: Some("UTC".into()),
        employee_number: Some("0".into()),
        cost_center: Some("CANARY".into()),
        organization: Some("jml-sync".into()),
        division: Some("doctor".into()),
        department: Some("Canary".into()),
        manager_id: None,
        marker: Some(format!("{CANARY_MARKER}{user_name}")),
    }
}

/// Differences between what was written and what DescribeUser answers, by attribute.
fn differences(want: &UserAttributes, got: &UserAttributes) -> Result<(), String> {
    let changes = attribute_changes(got, want);
    let paths: Vec<&str> = changes.iter().map(|c| c.path).collect();
    expect(paths.is_empty(), || format!("read back differs in: {}", paths.join(", ")))
}

/// Every write path identity-sync uses, once, on a user named `CANARY_PREFIX<suffix>`.
pub async fn canary(
    store: &dyn IdentityStore,
    settings: &Settings,
    suffix: &str,
    shapes: &(dyn Fn() -> Vec<String> + Send + Sync),
) -> Vec<Check> {
    let user_name = format!("{CANARY_PREFIX}{suffix}");
    let mut c = Canary::new(IDENTITY_TARGET, shapes);
    let first = canary_attributes(&user_name);
    let read = |id: String| async move {
        store.describe_user(&id).await.map_err(|e| e.to_string())?.ok_or_else(|| "DescribeUser: gone".to_string())
    };
    let user_id = c
        .step("CreateUser with every attribute kind", async {
            let id = store.create_user(&first).await.map_err(|e| e.to_string())?;
            let got = read(id.clone()).await?;
            differences(&first, &got.attributes)?;
            Ok((id, "created; DescribeUser reads back every attribute".to_string()))
        })
        .await;
    let id = user_id.clone().unwrap_or_default();
    let mut second = first.clone();
    second.email = Some(format!("{user_name}.moved@example.invalid"));
    second.phone = Some("+1 555 0199".into());
    if let Some(a) = second.address.as_mut() {
        a.street_address = Some("2 Canary Street".into());
        a.postal_code = Some("00001".into());
    }
    c.step("UpdateUser emails, phoneNumbers, addresses", async {
        let changes = attribute_changes(&first, &second);
        store.update_user(&id, &changes).await.map_err(|e| e.to_string())?;
        differences(&second, &read(id.clone()).await?.attributes)?;
        Ok(((), format!("{} multi-valued attribute(s) replaced and read back", changes.len())))
    })
    .await;
    let mut third = second.clone();
    third.title = None;
    third.honorific_suffix = None;
    c.step("UpdateUser removes an attribute (JSON null)", async {
        let changes = attribute_changes(&second, &third);
        store.update_user(&id, &changes).await.map_err(|e| e.to_string())?;
        let got = read(id.clone()).await?;
        expect(got.attributes.title.is_none(), || "title still set after the null".into())?;
        differences(&third, &got.attributes)?;
        Ok(((), "title and name.honorificSuffix removed".to_string()))
    })
    .await;
    for (name, status) in [
        ("UpdateUser userStatus DISABLED", UserStatus::Disabled),
        ("UpdateUser userStatus ENABLED", UserStatus::Enabled),
    ] {
        c.step(name, async {
            store
                .set_user_status(&id, status)
                .await
                .map_err(|e| format!("{e} (a leaver then parks DisableUnsupported after removing every membership)"))?;
            let got = read(id.clone()).await?;
            expect(got.status == status, || format!("read back {:?}", got.status))?;
            Ok(((), format!("read back {status:?}")))
        })
        .await;
    }
    let group = managed_group(store, settings).await;
    let membership = c
        .step("CreateGroupMembership in a managed group", async {
            let (gid, gname) = group.clone().ok_or("no managed group exists to add the canary to")?;
            store.add_membership(&gid, &id).await.map_err(|e| e.to_string())?;
            let found = store.memberships(&id).await.map_err(|e| e.to_string())?;
            let m = found.into_iter().find(|m| m.group_id == gid).ok_or("ListGroupMembershipsForMember: not there")?;
            Ok((m.membership_id, format!("member of {gname}")))
        })
        .await;
    c.step("DeleteGroupMembership", async {
        let mid = membership.clone().ok_or("no membership")?;
        store.remove_membership(&mid).await.map_err(|e| e.to_string())?;
        let left = store.memberships(&id).await.map_err(|e| e.to_string())?;
        expect(left.is_empty(), || format!("{} membership(s) left", left.len()))?;
        Ok(((), "no membership left".to_string()))
    })
    .await;
    c.cleanup("DeleteUser (cleanup)", async {
        let id = match c_user_id(store, &user_name, &id).await {
            Some(id) => id,
            None => return Ok(((), "nothing to delete".to_string())),
        };
        store.delete_user(&id).await.map_err(|e| e.to_string())?;
        let gone = store.describe_user(&id).await.map_err(|e| e.to_string())?.is_none();
        expect(gone, || "DescribeUser still finds it".into())?;
        Ok(((), "deleted; DescribeUser finds nothing".to_string()))
    })
    .await;
    c.checks
}

/// The canary user's id: the one CreateUser answered, else whatever holds its name.
async fn c_user_id(store: &dyn IdentityStore, user_name: &str, created: &str) -> Option<String> {
    if !created.is_empty() {
        return Some(created.to_string());
    }
    let name = jml_core::contract::UserName::parse(user_name).ok()?;
    store.find_user_by_user_name(&name).await.ok().flatten()
}

/// A managed group to add the canary to: the first of MANAGED_GROUPS, else the first by prefix.
async fn managed_group(store: &dyn IdentityStore, settings: &Settings) -> Option<(String, String)> {
    let groups = store.groups().await.ok()?;
    let m = &settings.managed_groups;
    groups.iter().find(|(_, n)| m.names.contains(n)).or_else(|| groups.iter().find(|(_, n)| m.contains(n))).cloned()
}
