//! What each function sends, as IAM actions (`jml operations`: scripts/test_template.py checks
//! every role of template.yaml grants exactly these), and `jml doctor`'s check of the deployed
//! roles with the IAM policy simulator (`JML_ROLE_ARNS` / `--role-arns`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use jml_core::config::Config;
use jml_core::doctor::{Check, Probe, required_actions, role_checks};
use jml_core::ports::Op;

/// Every function's operations (its slice's lists and the core's), by binary name.
pub fn function_operations() -> Vec<(&'static str, Vec<Op>)> {
    vec![
        ("hr-ingest", hr_ingest::OPERATIONS.to_vec()),
        ("identity-sync", identity_sync::port::function_operations()),
        ("subscription-sync", subscription_sync::port::function_operations()),
        ("appstream-sync", appstream_sync::port::function_operations()),
        ("iam-sync", iam_sync::port::function_operations()),
        ("reconcile", reconcile::operations()),
    ]
}

/// `jml operations`: `{"<function>": ["<service>:<Action>", ...], ...}`, the IAM actions each
/// function's calls need.
pub fn print_operations() -> ExitCode {
    let out: BTreeMap<&str, Vec<String>> =
        function_operations().into_iter().map(|(f, ops)| (f, required_actions(&ops))).collect();
    match serde_json::to_string_pretty(&out) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jml: {e}");
            ExitCode::from(2)
        }
    }
}

/// `function=arn,function=arn`: each a function of [`function_operations`] and an IAM role ARN.
pub fn parse_role_arns(list: &str) -> Result<Vec<(String, String)>, String> {
    let known: Vec<&str> = function_operations().into_iter().map(|(f, _)| f).collect();
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (f, arn) = part.split_once('=').ok_or_else(|| format!("JML_ROLE_ARNS: `{part}` is not function=arn"))?;
        if !known.contains(&f) {
            return Err(format!("JML_ROLE_ARNS: unknown function `{f}` (one of {})", known.join(", ")));
        }
        if role_parts(arn).is_none() {
            return Err(format!("JML_ROLE_ARNS: `{arn}` is not an IAM role ARN (arn:aws:iam::<account>:role/...)"));
        }
        out.push((f.to_string(), arn.to_string()));
    }
    if out.is_empty() {
        return Err("JML_ROLE_ARNS: no function=arn given".into());
    }
    Ok(out)
}

/// The partition and account of a role ARN.
fn role_parts(arn: &str) -> Option<(&str, &str)> {
    let mut it = arn.splitn(6, ':');
    let (scheme, partition, service, region, account, rest) =
        (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    let ok = scheme == "arn"
        && !partition.is_empty()
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && rest.starts_with("role/");
    ok.then_some((partition, account))
}

/// The probes of one function's role: every IAM action its calls need, on the resource the
/// environment names (the ledger table, the identity store, the snapshot, the target queues;
/// iam-sync's users under the path, groups under the group path), `*` where it names none.
pub fn probes(function: &str, cfg: &Config, partition: &str, region: &str, account: &str) -> Vec<Probe> {
    let ops = function_operations().into_iter().find(|(f, _)| *f == function).map(|(_, o)| o).unwrap_or_default();
    let env = |k: &str| cfg.var(k).filter(|v| !v.is_empty());
    let table = cfg.ledger_table.as_deref().map(|t| format!("arn:{partition}:dynamodb:{region}:{account}:table/{t}"));
    let store = env("IDENTITY_STORE_ID").map(|s| format!("arn:{partition}:identitystore::{account}:identitystore/{s}"));
    let snapshot = env("SNAPSHOT_BUCKET").map(|b| {
        format!("arn:{partition}:s3:::{b}/{}", env("SNAPSHOT_KEY").unwrap_or_else(|| "hr/snapshot.jsonl".into()))
    });
    let iam = (function == "iam-sync").then(|| iam_sync::Settings::from_config(cfg).ok()).flatten();
    let mut out = Vec::new();
    for action in required_actions(&ops) {
        let any = || "*".to_string();
        match action.split_once(':').map_or("", |(s, _)| s) {
            "dynamodb" => out.push(Probe::new(&action, table.clone().unwrap_or_else(any))),
            "identitystore" => out.push(Probe::new(&action, store.clone().unwrap_or_else(any))),
            "s3" => out.push(Probe::new(&action, snapshot.clone().unwrap_or_else(any))),
            "sqs" if function == "hr-ingest" && !cfg.target_queues.is_empty() => {
                out.extend(cfg.target_queues.iter().map(|q| Probe::new(&action, queue_arn(&q.queue_url, partition))));
            }
            "appstream" if action.contains("UserStack") => {
                out.push(Probe::new(
                    &action,
                    format!("arn:{partition}:appstream:{region}:{account}:stack/jml-doctor-probe"),
                ));
            }
            // The schedules of pending changes: in the group, passing the scheduler's role.
            "scheduler" => out.push(Probe::new(
                &action,
                cfg.schedules.as_ref().map_or_else(any, |s| {
                    format!("arn:{partition}:scheduler:{region}:{account}:schedule/{}/jml-doctor-probe", s.group)
                }),
            )),
            _ if action == "iam:PassRole" => {
                out.push(Probe::new(&action, cfg.schedules.as_ref().map_or_else(any, |s| s.role_arn.clone())));
            }
            "iam" if iam.is_some() => {}
            _ => out.push(Probe::new(&action, any())),
        }
    }
    if let Some(s) = &iam {
        out.extend(iam_sync::doctor::role_probes(s, partition, account));
    }
    out
}

/// `https://sqs.<region>.amazonaws.com/<account>/<name>` -> `arn:<partition>:sqs:<region>:<account>:<name>`.
fn queue_arn(url: &str, partition: &str) -> String {
    let parts: Vec<&str> = url.trim_end_matches('/').rsplitn(3, '/').collect();
    let region = url.split('.').nth(1).unwrap_or("*");
    match parts.as_slice() {
        [name, account, _] => format!("arn:{partition}:sqs:{region}:{account}:{name}"),
        _ => "*".to_string(),
    }
}

/// `jml doctor`: each deployed role asked about its function's probes (read-only).
pub async fn check_roles(sdk: &aws_config::SdkConfig, cfg: &Config, roles: &[(String, String)]) -> Vec<Check> {
    let client = aws_sdk_iam::Client::new(sdk);
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "*".into());
    let mut out = Vec::new();
    for (function, arn) in roles {
        let Some((partition, account)) = role_parts(arn) else { continue };
        let probes = probes(function, cfg, partition, &region, account);
        let answers = iam_sync::doctor::simulate_role(&client, arn, &probes).await;
        out.extend(role_checks(function, arn, &probes, answers));
    }
    out
}
