//! `jml doctor` for iam-sync: the read-only preflight (the permissions boundary and every mapped
//! group exist, under `IAM_GROUP_PATH`), the role simulation (SimulatePrincipalPolicy, for every
//! function's deployed role), and the canary: one temporary, clearly named user created under the path with
//! the boundary and the tags, put in a mapped group, locked down as a leaver is, then deleted
//! (even after a failure).

use std::collections::BTreeMap;

use crate::naming::{IAM_TARGET, MANAGED_BY, TAG_MANAGED_BY, TAG_STATUS};
use crate::port::{IamNewUser, IamUsers};
use crate::settings::Settings;
use jml_core::doctor::{Canary, Check, Probe, Simulated, expect, probe_batches};

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
    out.push(group_paths(iam, settings).await);
    out
}

/// Every mapped group is under `IAM_GROUP_PATH`: the role grants AddUserToGroup there only, so
/// a group elsewhere would be AccessDenied on every joiner (and retried into the DLQ).
async fn group_paths(iam: &dyn IamUsers, settings: &Settings) -> Check {
    let name = format!("IAM group map groups are under IAM_GROUP_PATH {} (GetGroup)", settings.group_path);
    let mut outside = Vec::new();
    let mut unknown = 0;
    for g in settings.groups.managed() {
        match iam.group_path(&g).await {
            Ok(Some(path)) if !path.starts_with(&settings.group_path) => outside.push(format!("{g} ({path})")),
            Ok(Some(_)) => {}
            Ok(None) => unknown += 1,
            Err(e) => return Check::of(IAM_TARGET, name, Err(e.to_string())),
        }
    }
    let managed = settings.groups.managed().len();
    if !outside.is_empty() {
        return Check::of(
            IAM_TARGET,
            name,
            Err(format!(
                "outside the path, AddUserToGroup would be AccessDenied: {} (move them with UpdateGroup --new-path, or set IamGroupPath)",
                outside.join(", ")
            )),
        );
    }
    if unknown == managed && managed > 0 {
        return Check::skip(IAM_TARGET, name, "no group path known (missing groups, or a backend without paths)");
    }
    Check::of(IAM_TARGET, name, Ok(format!("{} group(s) under it", managed - unknown)))
}

/// What `jml doctor` asks the IAM policy simulator about iam-sync's deployed role: every IAM
/// action of its operations on a user under `IAM_PATH_PREFIX` (CreateUser and
/// PutUserPermissionsBoundary carrying the boundary, as the function sends them), AddUserToGroup
/// on each mapped group under `IAM_GROUP_PATH`, RemoveUserFromGroup on a group outside it (a
/// leaver leaves every group).
pub fn role_probes(settings: &Settings, partition: &str, account: &str) -> Vec<Probe> {
    use crate::port::op;
    let user = format!("arn:{partition}:iam::{account}:user{}doctor-probe/jml-doctor-probe", settings.path_prefix);
    let group = |path: &str, name: &str| format!("arn:{partition}:iam::{account}:group{path}{name}");
    let mut out = Vec::new();
    for o in crate::port::OPERATIONS {
        let action = format!("iam:{}", o.api_name());
        let probe = if *o == op::ADD_USER_TO_GROUP {
            let mut groups = settings.groups.managed().into_iter().collect::<Vec<_>>();
            if groups.is_empty() {
                groups.push("jml-doctor-probe".to_string());
            }
            out.extend(groups.iter().map(|g| Probe::new(&action, group(&settings.group_path, g))));
            continue;
        } else if *o == op::REMOVE_USER_FROM_GROUP {
            Probe::new(action, group("/", "jml-doctor-probe-any-group"))
        } else if *o == op::CREATE_USER || *o == op::PUT_USER_PERMISSIONS_BOUNDARY {
            Probe::new(action, &user).with("iam:PermissionsBoundary", &settings.permissions_boundary)
        } else {
            Probe::new(action, &user)
        };
        out.push(probe);
    }
    out
}

/// Asks the IAM policy simulator (SimulatePrincipalPolicy: read-only, it evaluates the role's
/// identity policies and permissions boundary) for each probe's decision: one request per
/// resource and context, every page.
pub async fn simulate_role(
    client: &aws_sdk_iam::Client,
    role_arn: &str,
    probes: &[Probe],
) -> Result<Vec<Simulated>, String> {
    use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum};
    let mut out = Vec::new();
    for (resource, context, actions) in probe_batches(probes) {
        let entries = context
            .iter()
            .map(|(k, v)| {
                ContextEntry::builder()
                    .context_key_name(k)
                    .context_key_type(ContextKeyTypeEnum::String)
                    .context_key_values(v)
                    .build()
            })
            .collect::<Vec<_>>();
        let mut marker: Option<String> = None;
        loop {
            let res = client
                .simulate_principal_policy()
                .policy_source_arn(role_arn)
                .set_action_names(Some(actions.clone()))
                .resource_arns(&resource)
                .set_context_entries((!entries.is_empty()).then(|| entries.clone()))
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| format!("SimulatePrincipalPolicy: {}", aws_sdk_iam::error::DisplayErrorContext(&e)))?;
            for r in res.evaluation_results() {
                // The decision on the resource asked about (the top-level one spans them all).
                let decision = r
                    .resource_specific_results()
                    .iter()
                    .find(|x| x.eval_resource_name() == resource)
                    .map_or(r.eval_decision(), |x| x.eval_resource_decision());
                out.push(Simulated {
                    probe: Probe {
                        action: r.eval_action_name().to_string(),
                        resource: resource.clone(),
                        context: context.clone(),
                    },
                    decision: decision.as_str().to_string(),
                });
            }
            match (res.is_truncated(), res.marker()) {
                (true, Some(m)) => marker = Some(m.to_string()),
                _ => break,
            }
        }
    }
    Ok(out)
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
        (TAG_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
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
