//! `jml doctor` on the deployed roles, with aws-smithy-mocks standing in for the IAM policy
//! simulator (moto has none): the mock answers as a small role model does (an oracle written here,
//! not by the code under test), and the doctor must fail exactly the actions the role denies,
//! naming function, action and resource. Also the preflight's group-path check, on GetGroup's
//! answers.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_iam::Client;
use aws_sdk_iam::operation::get_group::GetGroupOutput;
use aws_sdk_iam::operation::get_policy::GetPolicyOutput;
use aws_sdk_iam::operation::simulate_principal_policy::{SimulatePrincipalPolicyInput, SimulatePrincipalPolicyOutput};
use aws_sdk_iam::primitives::DateTime;
use aws_sdk_iam::types::{EvaluationResult, Group, Policy, PolicyEvaluationDecisionType, ResourceSpecificResult};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use iam_sync::Settings;
use iam_sync::aws::AwsIam;
use iam_sync::doctor::{preflight, role_probes, simulate_role};
use jml_core::config::Config;
use jml_core::doctor::{Status, role_checks};

const ROLE: &str = "arn:aws:iam::123456789012:role/jml-IamSyncFunctionRole-ABC";
const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/jml-boundary";

fn settings(group_path: &str) -> Settings {
    let m: HashMap<&str, String> = HashMap::from([
        ("DLQ_URL", "https://sqs.eu-west-2.amazonaws.com/123456789012/iam-dlq.fifo".to_string()),
        ("LEDGER_TABLE", "jml-ledger".to_string()),
        ("IAM_PERMISSIONS_BOUNDARY", BOUNDARY.to_string()),
        ("IAM_GROUP_MAP", r#"{"eng": ["engineers"], "fin": ["finance"]}"#.to_string()),
        ("IAM_GROUP_PATH", group_path.to_string()),
    ]);
    Settings::from_config(&Config::from_lookup(move |k| m.get(k).cloned()).unwrap()).unwrap()
}

/// A role as the template writes iam-sync's, as (action, resource prefix, boundary condition):
/// the oracle the mocked simulator answers with.
type Grant = (&'static str, &'static str, bool);

fn template_role() -> Vec<Grant> {
    let user = "arn:aws:iam::123456789012:user/";
    let under = "arn:aws:iam::123456789012:user/jml/";
    let mut g: Vec<Grant> = [
        "GetUser",
        "GetLoginProfile",
        "ListGroupsForUser",
        "ListAccessKeys",
        "ListSSHPublicKeys",
        "ListServiceSpecificCredentials",
        "ListSigningCertificates",
    ]
    .into_iter()
    .map(|a| (a, user, false))
    .collect();
    g.extend(["CreateUser", "PutUserPermissionsBoundary"].map(|a| (a, under, true)));
    g.extend(
        [
            "UpdateUser",
            "TagUser",
            "UntagUser",
            "DeleteLoginProfile",
            "UpdateAccessKey",
            "UpdateSSHPublicKey",
            "UpdateServiceSpecificCredential",
            "UpdateSigningCertificate",
        ]
        .map(|a| (a, under, false)),
    );
    g.push(("AddUserToGroup", "arn:aws:iam::123456789012:group/jml/", false));
    g.push(("RemoveUserFromGroup", "arn:aws:iam::123456789012:group/", false));
    // The leaver finds a person's users by tag. The template must grant it (resource
    // *: the listing has no resource-level permission); template.yaml is not changed on this
    // branch (its owner adds the grant), so this model is one grant ahead of it.
    g.push(("GetAccountAuthorizationDetails", user, false));
    g
}

fn decide(role: &[Grant], input: &SimulatePrincipalPolicyInput) -> SimulatePrincipalPolicyOutput {
    let resource = input.resource_arns()[0].clone();
    let boundary = input
        .context_entries()
        .iter()
        .any(|c| c.context_key_name() == Some("iam:PermissionsBoundary") && c.context_key_values() == [BOUNDARY]);
    let results = input
        .action_names()
        .iter()
        .map(|action| {
            let allowed = role.iter().any(|(a, prefix, needs_boundary)| {
                format!("iam:{a}") == *action && resource.starts_with(prefix) && (!needs_boundary || boundary)
            });
            let decision = if allowed {
                PolicyEvaluationDecisionType::Allowed
            } else {
                PolicyEvaluationDecisionType::ImplicitDeny
            };
            EvaluationResult::builder()
                .eval_action_name(action)
                .eval_resource_name("arn:${Partition}:iam::${Account}:user/${UserNameWithPath}")
                .eval_decision(decision.clone())
                .resource_specific_results(
                    ResourceSpecificResult::builder()
                        .eval_resource_name(&resource)
                        .eval_resource_decision(decision)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        })
        .collect();
    SimulatePrincipalPolicyOutput::builder().set_evaluation_results(Some(results)).is_truncated(false).build()
}

/// The mocked simulator answering as `role`, and every request it was sent.
fn simulator(role: Vec<Grant>) -> (Client, Arc<Mutex<Vec<SimulatePrincipalPolicyInput>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let rule = mock!(Client::simulate_principal_policy).then_compute_output(move |input| {
        log.lock().unwrap().push(input.clone());
        decide(&role, input)
    });
    (mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&rule]), seen)
}

#[tokio::test]
async fn a_role_without_get_login_profile_fails_the_doctor_naming_function_action_and_resource() {
    let s = settings("/jml/");
    let probes = role_probes(&s, "aws", "123456789012");
    let role: Vec<Grant> = template_role().into_iter().filter(|(a, _, _)| *a != "GetLoginProfile").collect();
    let (client, seen) = simulator(role);
    let checks = role_checks("iam-sync", ROLE, &probes, simulate_role(&client, ROLE, &probes).await);
    let failed: Vec<_> = checks.iter().filter(|c| c.status == Status::Fail).collect();
    assert_eq!(failed.len(), 1, "{checks:#?}");
    assert_eq!(failed[0].scope, "iam-sync");
    assert!(failed[0].detail.contains("iam:GetLoginProfile"), "{}", failed[0].detail);
    assert!(failed[0].detail.contains("arn:aws:iam::123456789012:user/jml/"), "{}", failed[0].detail);
    assert!(failed[0].detail.contains("implicitDeny"), "{}", failed[0].detail);
    // Every request simulates the role itself, on one resource.
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|r| r.policy_source_arn() == Some(ROLE) && r.resource_arns().len() == 1));
    // CreateUser is asked with the boundary the function sends (the role's condition on it).
    let create = seen.iter().find(|r| r.action_names().iter().any(|a| a == "iam:CreateUser")).unwrap();
    assert!(create.context_entries().iter().any(|c| c.context_key_name() == Some("iam:PermissionsBoundary")));
}

#[tokio::test]
async fn the_template_role_passes_and_every_operation_of_the_function_is_asked() {
    let s = settings("/jml/");
    let probes = role_probes(&s, "aws", "123456789012");
    let (client, seen) = simulator(template_role());
    let checks = role_checks("iam-sync", ROLE, &probes, simulate_role(&client, ROLE, &probes).await);
    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert_eq!(checks[0].status, Status::Pass);
    let asked: std::collections::BTreeSet<String> =
        seen.lock().unwrap().iter().flat_map(|r| r.action_names().to_vec()).collect();
    let ops: std::collections::BTreeSet<String> =
        iam_sync::port::OPERATIONS.iter().map(|o| format!("iam:{}", o.api_name())).collect();
    assert_eq!(asked, ops, "every IAM operation of the function, and nothing else");
}

#[tokio::test]
async fn a_group_path_outside_the_role_scope_is_denied_on_joins_only() {
    // The role joins only group/jml/*: a deployment whose IAM_GROUP_PATH is / (groups at the
    // root) is AccessDenied on AddUserToGroup, for each mapped group; leaving stays allowed.
    let s = settings("/");
    let probes = role_probes(&s, "aws", "123456789012");
    let (client, _) = simulator(template_role());
    let checks = role_checks("iam-sync", ROLE, &probes, simulate_role(&client, ROLE, &probes).await);
    let failed: Vec<&str> = checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.detail.as_str()).collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert!(failed.iter().all(|d| d.starts_with("iam:AddUserToGroup on arn:aws:iam::123456789012:group/")));
    assert!(failed.iter().any(|d| d.contains("group/engineers")) && failed.iter().any(|d| d.contains("group/finance")));
}

#[tokio::test]
async fn a_simulator_error_fails_the_function_as_a_whole() {
    // A role ARN that names no role (a stack output copied wrong).
    let rule = mock!(Client::simulate_principal_policy).then_error(|| {
        aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyError::NoSuchEntityException(
            aws_sdk_iam::types::error::NoSuchEntityException::builder().message("role not found").build(),
        )
    });
    let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&rule]);
    let s = settings("/jml/");
    let probes = role_probes(&s, "aws", "123456789012");
    let checks = role_checks("iam-sync", ROLE, &probes, simulate_role(&client, ROLE, &probes).await);
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, Status::Fail);
    assert!(
        checks[0].detail.contains(ROLE) && checks[0].detail.contains("SimulatePrincipalPolicy"),
        "{}",
        checks[0].detail
    );
}

fn group(name: &str, path: &str) -> GetGroupOutput {
    GetGroupOutput::builder()
        .group(
            Group::builder()
                .path(path)
                .group_name(name)
                .group_id("AGPAEXAMPLE")
                .arn(format!("arn:aws:iam::123456789012:group{path}{name}"))
                .create_date(DateTime::from_secs(0))
                .build()
                .unwrap(),
        )
        .set_users(Some(vec![]))
        .is_truncated(false)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_preflight_names_a_mapped_group_outside_the_group_path() {
    let policy = mock!(Client::get_policy)
        .then_output(|| GetPolicyOutput::builder().policy(Policy::builder().arn(BOUNDARY).build()).build());
    let engineers = mock!(Client::get_group)
        .match_requests(|r| r.group_name() == Some("engineers"))
        .then_output(|| group("engineers", "/jml/"));
    let finance = mock!(Client::get_group)
        .match_requests(|r| r.group_name() == Some("finance"))
        .then_output(|| group("finance", "/"));
    let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&policy, &engineers, &finance]);
    let checks = preflight(&AwsIam::new(client), &settings("/jml/")).await;
    let path = checks.iter().find(|c| c.name.contains("IAM_GROUP_PATH")).unwrap();
    assert_eq!(path.status, Status::Fail, "{checks:#?}");
    assert!(path.detail.contains("finance (/)") && !path.detail.contains("engineers"), "{}", path.detail);
    // Every other check passes: the groups exist.
    assert!(checks.iter().filter(|c| c.name != path.name).all(|c| c.status == Status::Pass), "{checks:#?}");
}

#[tokio::test]
async fn the_preflight_passes_groups_under_the_group_path() {
    let policy = mock!(Client::get_policy)
        .then_output(|| GetPolicyOutput::builder().policy(Policy::builder().arn(BOUNDARY).build()).build());
    let any = mock!(Client::get_group).then_compute_output(|r| group(r.group_name().unwrap(), "/jml/finance/"));
    let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&policy, &any]);
    let checks = preflight(&AwsIam::new(client), &settings("/jml/")).await;
    assert!(checks.iter().all(|c| c.status == Status::Pass), "{checks:#?}");
}
