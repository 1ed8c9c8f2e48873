//! `jml doctor`: a preflight on the user's own account with the configuration the functions use
//! (read-only by default; with the deployed roles, `JML_ROLE_ARNS`, each asked with the IAM
//! policy simulator whether it allows what its function sends), and `--canary`: every write path once on temporary, clearly named
//! test identities, each read back, cleaned up even on failure, with the request shapes sent.

use std::process::ExitCode;

use jml_core::config::{Backend, Config};
use jml_core::doctor::{Check, print_table};

use crate::BackendArg;
use ::reconcile::TargetKind;

pub struct Options {
    pub backend: BackendArg,
    pub targets: Option<Vec<TargetKind>>,
    pub canary: bool,
    pub subscriptions: bool,
    pub ad_user: Option<String>,
    /// `function=arn,...`: the deployed roles to simulate (AWS backend only).
    pub role_arns: Option<String>,
}

pub async fn run(o: Options) -> ExitCode {
    let name = if o.backend == BackendArg::Memory { "memory" } else { "aws" };
    let cfg = match Config::from_lookup(|k| if k == "JML_BACKEND" { Some(name.into()) } else { std::env::var(k).ok() })
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    let targets = match crate::replay::wanted(o.targets.as_deref(), &cfg) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    if o.subscriptions && o.ad_user.is_none() {
        eprintln!(
            "jml: --subscriptions needs --ad-user NAME: an existing test user of the directory (the canary bills it)"
        );
        return ExitCode::from(2);
    }
    let roles = match o.role_arns.as_deref().map(crate::roles::parse_role_arns).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jml: {e}");
            return ExitCode::from(2);
        }
    };
    let mut checks = Vec::new();
    // Each target's own start-up check first: a configuration the function would refuse.
    let mut ready = Vec::new();
    for t in &targets {
        let function = t.function();
        let result = crate::check_function(&cfg, function).map(|()| "as the function reads it".to_string());
        let ok = result.is_ok();
        checks.push(Check::of(function, "configuration", result.map_err(|e| e.to_string())));
        if ok {
            ready.push(*t);
        }
    }
    let suffix =
        format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs());
    let failed = match cfg.backend {
        Backend::Memory => memory(&cfg, &ready, &o, &suffix, &mut checks).await,
        Backend::Aws => aws(&cfg, &ready, &o, &suffix, &mut checks, roles.as_deref()).await,
    };
    if let Err(e) = failed {
        eprintln!("jml: {e}");
        return ExitCode::from(2);
    }
    let title = if o.canary { "jml doctor --canary" } else { "jml doctor (read-only)" };
    let failed = print_table(title, &checks);
    if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// On the simulators: the same checks and canaries, against the demo deployment.
async fn memory(
    cfg: &Config,
    targets: &[TargetKind],
    o: &Options,
    suffix: &str,
    checks: &mut Vec<Check>,
) -> Result<(), jml_core::config::ConfigError> {
    let none = || Vec::new();
    for scope in ["credentials and region", "ledger table", "dead-letter queue", "function roles"] {
        checks.push(Check::skip("aws", scope, "memory backend"));
    }
    for t in targets {
        match t {
            TargetKind::Identity => {
                let s = identity_sync::Settings::from_config(cfg)?;
                let store = identity_sync::sim::demo_identity_store();
                checks.extend(identity_sync::doctor::preflight(&store, &s).await);
                if o.canary {
                    checks.extend(identity_sync::doctor::canary(&store, &s, suffix, &none).await);
                }
            }
            TargetKind::Subscriptions => {
                let s = subscription_sync::Settings::from_config(cfg)?;
                let sim = subscription_sync::sim::SimUserSubscriptions::demo();
                checks.extend(subscription_sync::doctor::preflight(&sim, &s).await);
                if let (true, Some(user)) = (o.canary && o.subscriptions, o.ad_user.as_deref()) {
                    checks.extend(subscription_sync::doctor::canary(&sim, user, &none).await);
                }
            }
            TargetKind::AppStream => {
                let s = appstream_sync::Settings::from_config(cfg)?;
                let sim = appstream_sync::sim::SimAppStream::demo();
                checks.extend(appstream_sync::doctor::preflight(&sim, &s).await);
                if o.canary {
                    checks.extend(appstream_sync::doctor::canary(&sim, &s, suffix, &none).await);
                }
            }
            TargetKind::Iam => {
                let s = iam_sync::Settings::from_config(cfg)?;
                let sim = iam_sync::sim::SimIam::demo();
                checks.extend(iam_sync::doctor::preflight(&sim, &s).await);
                if o.canary {
                    checks.extend(iam_sync::doctor::canary(&sim, &s, suffix, &none).await);
                }
            }
        }
    }
    Ok(())
}

/// On AWS: credentials, the ledger, the queues, then each target; the canaries' clients record
/// every request they send.
async fn aws(
    cfg: &Config,
    targets: &[TargetKind],
    o: &Options,
    suffix: &str,
    checks: &mut Vec<Check>,
    roles: Option<&[(String, String)]>,
) -> Result<(), jml_core::config::ConfigError> {
    let sdk = jml_aws::load_sdk_config().await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let who = aws_sdk_sts::Client::new(&sdk).get_caller_identity().send().await;
    checks.push(Check::of(
        "aws",
        "credentials and region (GetCallerIdentity)",
        match (who, region.is_empty()) {
            (_, true) => Err("no region: set AWS_REGION (or a profile's region)".to_string()),
            (Ok(w), false) => Ok(format!("{} in {region}", w.arn().unwrap_or("?"))),
            (Err(e), false) => Err(aws_sdk_sts::error::DisplayErrorContext(&e).to_string()),
        },
    ));
    checks.push(match cfg.ledger_table.as_deref() {
        Some(t) => Check::of("aws", "ledger table (DescribeTable)", jml_dynamodb::check_table(&sdk, t).await),
        None => Check::of("aws", "ledger table (DescribeTable)", Err("LEDGER_TABLE is not set".into())),
    });
    if let Some(t) = cfg.ledger_table.as_deref() {
        let ledger = jml_dynamodb::ledger(&sdk, Some(t));
        checks.push(upcoming(&ledger, targets, chrono::Utc::now(), UPCOMING_DAYS).await);
    }
    checks.push(match cfg.dlq_url.as_deref() {
        Some(u) => Check::of("aws", "dead-letter queue (GetQueueAttributes)", jml_aws::check_queue(&sdk, u).await),
        None => Check::of("aws", "dead-letter queue (GetQueueAttributes)", Err("DLQ_URL is not set".into())),
    });
    for q in &cfg.target_queues {
        let name = format!("target queue {} (GetQueueAttributes)", q.name);
        checks.push(Check::of("aws", name, jml_aws::check_queue(&sdk, &q.queue_url).await));
    }
    // Each deployed function's role against what the function sends (the IAM policy simulator:
    // the operator's credentials would hide a grant the role lacks).
    match roles {
        Some(roles) => checks.extend(crate::roles::check_roles(&sdk, cfg, roles).await),
        None => checks.push(Check::skip(
            "aws",
            "function roles (SimulatePrincipalPolicy)",
            "set JML_ROLE_ARNS (the stack's RoleArns output) or --role-arns to check the deployed roles",
        )),
    }
    // The target clients record every request: the canary prints what it sent.
    let log = jml_aws::RequestLog::default();
    let inner = sdk.http_client().unwrap_or_else(jml_aws::https_client);
    let recorded = sdk.to_builder().http_client(jml_aws::recording_http_client(inner, log.clone())).build();
    let shapes = move || log.take();
    for t in targets {
        match t {
            TargetKind::Identity => {
                let s = identity_sync::Settings::from_config(cfg)?;
                let store = identity_sync::service(&recorded, &s);
                checks.extend(identity_sync::doctor::preflight(store.as_ref(), &s).await);
                if o.canary {
                    checks.extend(identity_sync::doctor::canary(store.as_ref(), &s, suffix, &shapes).await);
                }
            }
            TargetKind::Subscriptions => {
                let s = subscription_sync::Settings::from_config(cfg)?;
                let service = subscription_sync::service(&recorded, &s);
                checks.extend(subscription_sync::doctor::preflight(service.as_ref(), &s).await);
                match (o.canary, o.subscriptions, o.ad_user.as_deref()) {
                    (true, true, Some(user)) => {
                        checks.extend(subscription_sync::doctor::canary(service.as_ref(), user, &shapes).await);
                    }
                    (true, _, _) => checks.push(Check::skip(
                        subscription_sync::naming::SUBSCRIPTIONS_TARGET,
                        "canary",
                        "bills: only with --subscriptions --ad-user NAME",
                    )),
                    _ => {}
                }
            }
            TargetKind::AppStream => {
                let s = appstream_sync::Settings::from_config(cfg)?;
                let service = appstream_sync::service(&recorded);
                checks.extend(appstream_sync::doctor::preflight(&service, &s).await);
                if o.canary {
                    checks.extend(appstream_sync::doctor::canary(&service, &s, suffix, &shapes).await);
                }
            }
            TargetKind::Iam => {
                let s = iam_sync::Settings::from_config(cfg)?;
                let service = iam_sync::service(&recorded);
                checks.extend(iam_sync::doctor::preflight(&service, &s).await);
                if o.canary {
                    checks.extend(iam_sync::doctor::canary(&service, &s, suffix, &shapes).await);
                }
            }
        }
        shapes();
    }
    Ok(())
}

/// How far ahead the doctor lists dated changes.
const UPCOMING_DAYS: i64 = 7;

/// The dated changes coming due in the next `days` days on each target (a Scan of the ledger with
/// the operator's credentials, read-only): person (ExternalId, never a name), target and instant.
/// Informational: a ledger that cannot be read is reported, never a failure of the preflight.
pub(crate) async fn upcoming(
    ledger: &dyn jml_core::ledger::Ledger,
    targets: &[TargetKind],
    now: chrono::DateTime<chrono::Utc>,
    days: i64,
) -> Check {
    let name = format!("dated changes due in the next {days} days (ledger Scan)");
    let until = now + chrono::Duration::days(days);
    let mut due = Vec::new();
    for t in targets {
        let known = match ledger.known(t.ledger()).await {
            Ok(k) => k,
            Err(e) => return Check::skip("dates", name, format!("the ledger could not be read: {e}")),
        };
        for (person, k) in known {
            let knowledge = jml_core::ledger::Knowledge::at(k.record.as_ref(), now);
            for (at, _) in knowledge.pending().into_iter().filter(|(at, _)| *at <= until) {
                due.push((at, t.ledger(), person.clone()));
            }
        }
    }
    due.sort();
    let shown: Vec<String> = due
        .iter()
        .take(20)
        .map(|(at, target, person)| {
            format!("{} {target} {person}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        })
        .collect();
    let more = due.len().saturating_sub(shown.len());
    let detail = match (due.len(), more) {
        (0, _) => "none".to_string(),
        (n, 0) => format!("{n}: {}", shown.join("; ")),
        (n, m) => format!("{n}: {}; and {m} more", shown.join("; ")),
    };
    Check::of("dates", name, Ok(detail))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn the_doctor_lists_the_dated_changes_due_within_its_window_by_externalid_only() {
        let at = |t: &str| jml_core::clock::parse_now(t).unwrap();
        let cfg = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())).unwrap();
        let (mut state, mem) =
            identity_sync::memory(std::sync::Arc::new(identity_sync::sim::demo_identity_store()), &cfg).unwrap();
        state.engine = state.engine.clone().with_clock(jml_core::clock::Clock::at(at("2026-12-03T12:00:00Z"))).firing();
        for body in [
            include_str!("../../events/02-joiner-alan.json"),
            include_str!("../../events/09-leaver-alan-last-day-dec-18.json"),
        ] {
            let r = identity_sync::process_record(&state, body, &identity_sync::RecordMeta::default()).await;
            assert!(r.error.is_none(), "{:?}", r.error);
        }
        let ledger = mem.ledger.as_ref() as &dyn jml_core::ledger::Ledger;
        let within = upcoming(ledger, &[TargetKind::Identity], at("2026-12-12T00:00:00Z"), 7).await;
        assert_eq!(within.status, jml_core::doctor::Status::Pass);
        assert_eq!(within.detail, "1: 2026-12-18T23:59:59Z identity-store workday#100235");
        assert!(!within.detail.contains("alan"), "ExternalIds only, never names");
        let before = upcoming(ledger, &[TargetKind::Identity], at("2026-12-03T12:00:00Z"), 7).await;
        assert_eq!(before.detail, "none", "18 December is more than 7 days after 3 December");
    }
}
