//! `jml doctor` for iam-sync: the read-only preflight (the permissions boundary and every mapped
//! group exist), and the canary: one temporary, clearly named user created under the path with
//! the boundary and the tags, put in a mapped group, locked down as a leaver is, then deleted
//! (even after a failure).

use std::collections::BTreeMap;

use crate::port::{IamNewUser, IamUsers};
use crate::settings::Settings;
use crate::target::{IAM_TARGET, TAG_MANAGED_BY, TAG_STATUS};
use jml_core::doctor::{Canary, Check, expect};

/// The canary user's name prefix.
pub const CANARY_PREFIX: &str = "jml-doctor-canary-";

pub async fn preflight(iam: &dyn IamUsers, settings: &Settings) -> Vec<Check> {
    let scope = IAM_TARGET;
    let arn = &settings.permissions_boundary;
    let boundary = match iam.policy_exists(arn).await {
        Ok(true) => Ok(arn.clone()),
        Ok(false) => Err(format!("{arn}: no such policy (IAM_PERMISSIONS_BOUNDARY)")),
        Err(e) => Err(e.to_string()),
    };
    let mut out = vec![Check::of(scope, "permissions boundary policy exists (GetPolicy)", boundary)];
    let groups = settings.groups.managed();
    let mut missing = Vec::new();
    let mut failed = None;
    for g in &groups {
        match iam.group_exists(g).await {
            Ok(true) => {}
            Ok(false) => missing.push(g.clone()),
            Err(e) => failed = Some(e.to_string()),
        }
    }
    let result = match (failed, missing.is_empty()) {
        (Some(e), _) => Err(e),
        (None, true) => Ok(format!("all {} group(s) of IAM_GROUP_MAP exist", groups.len())),
        (None, false) => Err(format!("missing: {} (IAM_GROUP_MAP)", missing.join(", "))),
    };
    out.push(Check::of(scope, "IAM group map groups exist (GetGroup)", result));
    out
}

/// CreateUser (path, boundary, tags), AddUserToGroup, the leaver's lock-down (tag disabled,
/// DeleteLoginProfile, out of the group), DeleteUser, each read back.
pub async fn canary(
    iam: &dyn IamUsers,
    settings: &Settings,
    suffix: &str,
    shapes: &(dyn Fn() -> Vec<String> + Send + Sync),
) -> Vec<Check> {
    let name = format!("{CANARY_PREFIX}{suffix}");
    let path = format!("{}doctor-canary/", settings.path_prefix);
    let mut c = Canary::new(IAM_TARGET, shapes);
    let tags = BTreeMap::from([
        (TAG_MANAGED_BY.to_string(), crate::target::MANAGED_BY.to_string()),
        (TAG_STATUS.to_string(), "active".to_string()),
        ("jml-sync:doctor-canary".to_string(), "true".to_string()),
    ]);
    let new = IamNewUser {
        user_name: name.clone(),
        path: path.clone(),
        permissions_boundary: settings.permissions_boundary.clone(),
        tags: tags.clone(),
    };
    c.step("CreateUser with path, permissions boundary and tags", async {
        iam.create_user(&new).await.map_err(|e| e.to_string())?.ok_or("EntityAlreadyExists: a canary is left over")?;
        let u = iam.get_user(&name).await.map_err(|e| e.to_string())?.ok_or("GetUser: not found")?;
        expect(u.path == path, || format!("path read back {}", u.path))?;
        expect(u.permissions_boundary.as_deref() == Some(settings.permissions_boundary.as_str()), || {
            "permissions boundary not read back".into()
        })?;
        expect(tags.iter().all(|(k, v)| u.tags.get(k) == Some(v)), || "tags not read back".into())?;
        Ok(((), format!("{path}, boundary and {} tag(s) read back", tags.len())))
    })
    .await;
    let group = settings.groups.managed().into_iter().next();
    c.step("AddUserToGroup (a mapped group)", async {
        let g = group.clone().ok_or("IAM_GROUP_MAP maps no group")?;
        iam.add_to_group(&name, &g).await.map_err(|e| e.to_string())?;
        let groups = iam.groups(&name).await.map_err(|e| e.to_string())?;
        expect(groups.contains(&g), || "ListGroupsForUser: not a member".into())?;
        Ok(((), format!("member of {g}")))
    })
    .await;
    c.step("lock-down (TagUser, DeleteLoginProfile, RemoveUserFromGroup)", async {
        let disabled = BTreeMap::from([(TAG_STATUS.to_string(), "disabled".to_string())]);
        iam.tag_user(&name, &disabled).await.map_err(|e| e.to_string())?;
        let had_password = iam.delete_login_profile(&name).await.map_err(|e| e.to_string())?;
        if let Some(g) = &group {
            iam.remove_from_group(&name, g).await.map_err(|e| e.to_string())?;
        }
        let u = iam.get_user(&name).await.map_err(|e| e.to_string())?.ok_or("GetUser: not found")?;
        expect(u.tags.get(TAG_STATUS).map(String::as_str) == Some("disabled"), || "status tag not read back".into())?;
        expect(!iam.has_login_profile(&name).await.map_err(|e| e.to_string())?, || "a password remains".into())?;
        expect(iam.groups(&name).await.map_err(|e| e.to_string())?.is_empty(), || "still in a group".into())?;
        Ok(((), format!("tagged disabled, no password (had one: {had_password}), in no group")))
    })
    .await;
    c.cleanup("DeleteUser (cleanup)", async {
        // Whatever the steps left: out of the group first (DeleteConflict otherwise).
        if let Some(g) = &group {
            let _ = iam.remove_from_group(&name, g).await;
        }
        let deleted = iam.delete_user(&name).await.map_err(|e| e.to_string())?;
        expect(iam.get_user(&name).await.map_err(|e| e.to_string())?.is_none(), || "GetUser still finds it".into())?;
        Ok(((), if deleted { "deleted; GetUser finds nothing" } else { "nothing to delete" }.to_string()))
    })
    .await;
    c.checks
}
