//! `jml doctor` for appstream-sync: the read-only preflight (every stack the rules name exists,
//! the user pool answers DescribeUsers), and the canary: one temporary user created with the
//! welcome e-mail suppressed, associated with and disassociated from a stack, disabled and
//! deleted (even after a failure).

use std::collections::BTreeSet;

use crate::naming::APPSTREAM_TARGET;
use crate::planner::check_batch;
use crate::port::{AppStreamNewUser, AppStreamUsers, WelcomeEmail};
use crate::settings::Settings;
use jml_core::doctor::{Canary, Check, expect};

/// The canary user's name: `jml-doctor-canary-<suffix>@example.invalid` (a reserved domain: no
/// mail can reach anyone, and the welcome e-mail is suppressed anyway).
pub fn canary_user(suffix: &str) -> String {
    format!("jml-doctor-canary-{suffix}@example.invalid")
}

fn rule_stacks(settings: &Settings) -> BTreeSet<String> {
    settings.stacks.0.values().flatten().map(|s| s.as_str().to_string()).collect()
}

pub async fn preflight(service: &dyn AppStreamUsers, settings: &Settings) -> Vec<Check> {
    let scope = APPSTREAM_TARGET;
    let pool = match service.users().await {
        Ok(u) => Ok(format!("{} user(s) in the pool", u.len())),
        Err(e) => Err(e.to_string()),
    };
    let mut out = vec![Check::of(scope, "user pool reachable (DescribeUsers)", pool)];
    let stacks = rule_stacks(settings);
    if stacks.is_empty() {
        out.push(Check::skip(scope, "stacks named by the rules exist", "APPSTREAM_STACKS_BY_DEPARTMENT names none"));
        return out;
    }
    let mut missing = Vec::new();
    for s in &stacks {
        match service.stack_exists(s).await {
            Ok(true) => {}
            Ok(false) => missing.push(s.clone()),
            Err(e) => {
                out.push(Check::of(scope, "stacks named by the rules exist (DescribeStacks)", Err(e.to_string())));
                return out;
            }
        }
    }
    let result = if missing.is_empty() {
        Ok(format!("all {} stack(s) exist", stacks.len()))
    } else {
        Err(format!("missing: {} (APPSTREAM_STACKS_BY_DEPARTMENT)", missing.join(", ")))
    };
    out.push(Check::of(scope, "stacks named by the rules exist (DescribeStacks)", result));
    out
}

pub async fn canary(
    service: &dyn AppStreamUsers,
    settings: &Settings,
    suffix: &str,
    shapes: &(dyn Fn() -> Vec<String> + Send + Sync),
) -> Vec<Check> {
    let name = canary_user(suffix);
    let mut c = Canary::new(APPSTREAM_TARGET, shapes);
    let enabled = |want: bool| {
        let name = name.clone();
        async move {
            let users = service.users().await.map_err(|e| e.to_string())?;
            let u = users.iter().find(|u| u.user_name == name).ok_or("DescribeUsers: not in the pool")?;
            expect(u.enabled == want, || format!("Enabled read back {}", u.enabled))
        }
    };
    c.step("CreateUser (welcome e-mail suppressed)", async {
        let user = AppStreamNewUser {
            user_name: name.clone(),
            first_name: Some("Canary".into()),
            last_name: Some("Doctor".into()),
            welcome: WelcomeEmail::Suppress,
        };
        expect(service.create_user(&user).await.map_err(|e| e.to_string())?, || {
            "ResourceAlreadyExists: a canary is left over".into()
        })?;
        enabled(true).await?;
        Ok(((), "created; DescribeUsers lists it enabled".to_string()))
    })
    .await;
    let stack = rule_stacks(settings).into_iter().next();
    c.step("BatchAssociateUserStack", async {
        let s = stack.clone().ok_or("APPSTREAM_STACKS_BY_DEPARTMENT names no stack")?;
        let errors = service.associate(&name, std::slice::from_ref(&s)).await.map_err(|e| e.to_string())?;
        check_batch(crate::port::op::BATCH_ASSOCIATE_USER_STACK, &errors).map_err(|e| e.to_string())?;
        let now = service.stacks(&name).await.map_err(|e| e.to_string())?;
        expect(now.contains(&s), || "DescribeUserStackAssociations: not associated".into())?;
        Ok(((), format!("associated with {s}")))
    })
    .await;
    c.step("BatchDisassociateUserStack", async {
        let s = stack.clone().ok_or("no stack")?;
        let errors = service.disassociate(&name, std::slice::from_ref(&s)).await.map_err(|e| e.to_string())?;
        check_batch(crate::port::op::BATCH_DISASSOCIATE_USER_STACK, &errors).map_err(|e| e.to_string())?;
        let now = service.stacks(&name).await.map_err(|e| e.to_string())?;
        expect(now.is_empty(), || format!("{} stack(s) left", now.len()))?;
        Ok(((), "no stack left".to_string()))
    })
    .await;
    c.step("DisableUser", async {
        service.disable_user(&name).await.map_err(|e| e.to_string())?;
        enabled(false).await?;
        Ok(((), "DescribeUsers reads it disabled".to_string()))
    })
    .await;
    c.cleanup("DeleteUser (cleanup)", async {
        if let Some(s) = &stack {
            let _ = service.disassociate(&name, std::slice::from_ref(s)).await;
        }
        let deleted = service.delete_user(&name).await.map_err(|e| e.to_string())?;
        let users = service.users().await.map_err(|e| e.to_string())?;
        expect(!users.iter().any(|u| u.user_name == name), || "DescribeUsers still lists it".into())?;
        Ok(((), if deleted { "deleted; DescribeUsers no longer lists it" } else { "nothing to delete" }.to_string()))
    })
    .await;
    c.checks
}
