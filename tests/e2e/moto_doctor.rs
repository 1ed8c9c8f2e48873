//! `jml doctor` over HTTP against moto: the identity and IAM canaries send every write path
//! through the real adapters (Identity Store with the extension in `scripts/moto_jml.py`), read
//! each back and clean up; the request shapes they record are the ones the adapters send
//! (lower-camel multi-valued attributes, an explicit JSON null to remove, USERPOOL...).
//!
//! Run by `scripts/moto-e2e.sh` (part of `./scripts/test.sh`); ignored by a plain `cargo test`.

use aws_config::SdkConfig;
use jml_core::config::Config;
use jml_core::doctor::{Check, Status};

async fn sdk(log: &jml_aws::RequestLog) -> SdkConfig {
    let sdk = crate::moto::sdk().await;
    let inner = sdk.http_client().unwrap_or_else(jml_aws::https_client);
    sdk.to_builder().http_client(jml_aws::recording_http_client(inner, log.clone())).build()
}

fn config(env: Vec<(&'static str, String)>) -> Config {
    Config::from_lookup(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap()
}

fn all_passed(checks: &[Check]) {
    let failed: Vec<String> =
        checks.iter().filter(|c| c.status != Status::Pass).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

fn requests<'a>(checks: &'a [Check], step: &str) -> &'a [String] {
    &checks.iter().find(|c| c.name == step).unwrap_or_else(|| panic!("no step {step}")).requests
}

#[tokio::test]
#[ignore = "needs moto: scripts/moto-e2e.sh"]
async fn moto_doctor_identity_canary_proves_every_write_path_and_records_the_shapes() {
    let log = jml_aws::RequestLog::default();
    let sdk = sdk(&log).await;
    let store_id = format!("d-{:010x}", 0xd0c0_0000u64 + u64::from(std::process::id() % 10_000));
    let ids = aws_sdk_identitystore::Client::new(&sdk);
    ids.create_group().identity_store_id(&store_id).display_name("jml-all-staff").send().await.unwrap();
    let cfg = config(vec![
        ("IDENTITY_STORE_ID", store_id.clone()),
        ("DLQ_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq".into()),
        ("LEDGER_TABLE", "ledger".into()),
        ("MANAGED_GROUPS", "jml-all-staff".into()),
    ]);
    let settings = identity_sync::Settings::from_config(&cfg).unwrap();
    let store = identity_sync::service(&sdk, &settings);
    let pre = identity_sync::doctor::preflight(store.as_ref(), &settings).await;
    all_passed(&pre);
    log.take();
    let shapes = || log.take();
    let checks = identity_sync::doctor::canary(store.as_ref(), &settings, "moto", &shapes).await;
    all_passed(&checks);
    // The shapes the Terraform provider's acceptance-tested identitystore user sends.
    let update = requests(&checks, "UpdateUser emails, phoneNumbers, addresses").join("\n");
    assert!(update.contains("AWSIdentityStore.UpdateUser"), "{update}");
    assert!(update.contains(r#""AttributePath":"emails""#) && update.contains(r#""value":"#), "{update}");
    assert!(update.contains(r#""streetAddress":"2 Canary Street""#) && !update.contains("StreetAddress"), "{update}");
    let removal = requests(&checks, "UpdateUser removes an attribute (JSON null)").join("\n");
    assert!(removal.contains(r#""AttributePath":"title","AttributeValue":null"#), "{removal}");
    let disable = requests(&checks, "UpdateUser userStatus DISABLED").join("\n");
    assert!(disable.contains(r#""AttributePath":"userStatus","AttributeValue":"DISABLED""#), "{disable}");
    assert!(requests(&checks, "DeleteUser (cleanup)").iter().any(|r| r.starts_with("AWSIdentityStore.DeleteUser")));
    // Nothing is left behind.
    let users = ids.list_users().identity_store_id(&store_id).send().await.unwrap();
    assert!(users.users().iter().all(|u| !u.user_name().unwrap_or_default().starts_with("jml-doctor-canary-")));
}

#[tokio::test]
#[ignore = "needs moto: scripts/moto-e2e.sh"]
async fn moto_doctor_iam_preflight_fails_on_a_missing_boundary_and_the_canary_cleans_up() {
    let log = jml_aws::RequestLog::default();
    let sdk = sdk(&log).await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    // Under IAM_GROUP_PATH (default /jml/): the preflight checks every mapped group is.
    let _ = iam.create_group().group_name("doctor-staff").path("/jml/").send().await;
    let _ = iam.create_group().group_name("doctor-root").send().await;
    let missing = config(vec![
        ("DLQ_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq".into()),
        ("LEDGER_TABLE", "ledger".into()),
        ("IAM_PERMISSIONS_BOUNDARY", "arn:aws:iam::123456789012:policy/jml-doctor-no-such-policy".into()),
        ("IAM_GROUP_MAP", r#"{"staff": ["doctor-staff", "doctor-ghost"], "ops": ["doctor-root"]}"#.into()),
    ]);
    let settings = iam_sync::Settings::from_config(&missing).unwrap();
    let service = iam_sync::service(&sdk);
    let pre = iam_sync::doctor::preflight(&service, &settings).await;
    let by = |n: &str| pre.iter().find(|c| c.name.starts_with(n)).unwrap();
    assert_eq!(by("permissions boundary").status, Status::Fail, "{pre:?}");
    let groups = by("IAM group map");
    assert_eq!(groups.status, Status::Fail);
    assert!(groups.detail.contains("doctor-ghost") && !groups.detail.contains("doctor-staff"), "{}", groups.detail);
    // A mapped group outside IAM_GROUP_PATH: joiners would be AccessDenied under the role.
    let path = by("IAM group map groups are under");
    assert_eq!(path.status, Status::Fail, "{pre:?}");
    assert!(path.detail.contains("doctor-root (/)") && !path.detail.contains("doctor-staff"), "{}", path.detail);
    // With the policy and groups in place: everything passes, and the canary leaves nothing.
    let policy = iam
        .create_policy()
        .policy_name(format!("jml-doctor-boundary-{}", std::process::id()))
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let arn = policy.policy().unwrap().arn().unwrap().to_string();
    let ok = config(vec![
        ("DLQ_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq".into()),
        ("LEDGER_TABLE", "ledger".into()),
        ("IAM_PERMISSIONS_BOUNDARY", arn),
        ("IAM_GROUP_MAP", r#"{"staff": ["doctor-staff"]}"#.into()),
    ]);
    let settings = iam_sync::Settings::from_config(&ok).unwrap();
    all_passed(&iam_sync::doctor::preflight(&service, &settings).await);
    log.take();
    let shapes = || log.take();
    let checks = iam_sync::doctor::canary(&service, &settings, "moto", &shapes).await;
    all_passed(&checks);
    let create = requests(&checks, "CreateUser with path, permissions boundary and tags").join("\n");
    assert!(create.contains("Action=CreateUser") && create.contains("PermissionsBoundary=arn:aws:iam::"), "{create}");
    assert!(create.contains("Path=/jml/doctor-canary/"), "{create}");
    let users = iam.list_users().path_prefix("/jml/doctor-canary/").send().await.unwrap();
    assert!(users.users().is_empty(), "the canary user is deleted");
}
