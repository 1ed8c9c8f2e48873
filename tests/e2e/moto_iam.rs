//! iam-sync's real IAM adapter over HTTP against moto server (which implements users, groups,
//! login profiles, access keys, tags and permissions boundaries), with the DynamoDB ledger and
//! the SQS FIFO dead-letter queue: joiner -> mover -> leaver -> rehire -> duplicate, and a
//! hijack refusal parked with its reason.
//!
//! Run by `scripts/moto-e2e.sh` (part of `./scripts/test.sh`); ignored by a plain `cargo test`.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::config::Credentials;
use aws_sdk_iam::types::StatusType;
use iam_sync::sim::{DEMO_BOUNDARY, DEMO_IAM_GROUP_MAP, DEMO_IAM_GROUPS};
use iam_sync::{RecordMeta, State, process_record};
use jml_core::config::Config;
use jml_core::engine::Decision;

use crate::{failures, fixture, sqs_batch};

struct Moto {
    sdk: SdkConfig,
    dlq_url: String,
    state: State,
    iam: aws_sdk_iam::Client,
}

async fn moto(tag: &str) -> Moto {
    let endpoint = std::env::var("JML_MOTO_ENDPOINT").expect("JML_MOTO_ENDPOINT: run scripts/moto-e2e.sh");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await;
    let n = format!("{tag}-{}", std::process::id());
    let iam = aws_sdk_iam::Client::new(&sdk);
    // The account's groups and the boundary policy (moto's account is 123456789012, as DEMO_BOUNDARY).
    for g in DEMO_IAM_GROUPS {
        let _exists_already_is_fine = iam.create_group().group_name(*g).send().await;
    }
    let _ = iam
        .create_policy()
        .policy_name("jml-sync-user-boundary")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#)
        .send()
        .await;
    let table = format!("jml-ledger-iam-{n}");
    crate::moto::ledger_table(&sdk, &table).await;
    let dlq_url = crate::moto::fifo_queue(&aws_sdk_sqs::Client::new(&sdk), &format!("jml-iam-dlq-{n}")).await;
    let env = [
        ("DLQ_URL", dlq_url.clone()),
        ("LEDGER_TABLE", table),
        ("IAM_PERMISSIONS_BOUNDARY", DEMO_BOUNDARY.to_string()),
        ("IAM_GROUP_MAP", DEMO_IAM_GROUP_MAP.to_string()),
    ];
    let config = Config::from_lookup(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let state = iam_sync::from_sdk_config(&sdk, &config).unwrap();
    Moto { sdk, dlq_url, state, iam }
}

impl Moto {
    async fn apply(&self, body: &str) -> (Decision, Vec<String>) {
        let r = process_record(&self.state, body, &RecordMeta::default()).await;
        r.outcome.map(|o| (o.decision, o.actions)).unwrap_or_else(|| panic!("not applied: {:?}", r.error))
    }

    async fn groups(&self, user: &str) -> Vec<String> {
        let out = self.iam.list_groups_for_user().user_name(user).send().await.unwrap();
        let mut g: Vec<String> = out.groups().iter().map(|g| g.group_name().to_string()).collect();
        g.sort();
        g
    }

    /// SSH keys, service-specific credentials and signing certificates: each exists, none active.
    async fn assert_other_credentials_inactive(&self, user: &str) {
        let ssh = self.iam.list_ssh_public_keys().user_name(user).send().await.unwrap();
        let svc = self.iam.list_service_specific_credentials().user_name(user).send().await.unwrap();
        let certs = self.iam.list_signing_certificates().user_name(user).send().await.unwrap();
        let statuses: Vec<&StatusType> = ssh
            .ssh_public_keys()
            .iter()
            .map(|k| k.status())
            .chain(svc.service_specific_credentials().iter().map(|c| c.status()))
            .chain(certs.certificates().iter().map(|c| c.status()))
            .collect();
        assert_eq!(statuses.len(), 3, "one of each kind was added");
        assert!(statuses.iter().all(|s| **s == StatusType::Inactive), "{statuses:?}");
    }

    async fn tag(&self, user: &str, key: &str) -> Option<String> {
        let out = self.iam.list_user_tags().user_name(user).send().await.unwrap();
        out.tags().iter().find(|t| t.key() == key).map(|t| t.value().to_string())
    }
}

#[tokio::test]
#[ignore = "needs moto: scripts/moto-e2e.sh"]
async fn moto_iam_joiner_mover_leaver_rehire_duplicate() {
    let m = moto("life").await;
    const ADA: &str = "ada.lovelace";
    // joiner
    let (d, _) = m.apply(&fixture("01-joiner-ada.json")).await;
    assert_eq!(d, Decision::Create);
    let u = m.iam.get_user().user_name(ADA).send().await.unwrap();
    let u = u.user().unwrap();
    assert_eq!(u.path(), "/jml/platform-engineering/");
    assert_eq!(u.permissions_boundary().and_then(|b| b.permissions_boundary_arn()), Some(DEMO_BOUNDARY));
    assert_eq!(m.tag(ADA, "jml-sync:external-id").await.as_deref(), Some("workday/100234"));
    assert_eq!(m.groups(ADA).await, vec!["all-staff", "engineers", "vpn-users"]);
    // mover: path and groups
    let (d, _) = m.apply(&fixture("03-mover-ada.json")).await;
    assert_eq!(d, Decision::Update);
    let u = m.iam.get_user().user_name(ADA).send().await.unwrap();
    assert_eq!(u.user().unwrap().path(), "/jml/site-reliability/");
    assert_eq!(m.groups(ADA).await, vec!["all-staff", "oncall", "vpn-users"]);
    // a human gives ada a console password and an access key
    m.iam.create_login_profile().user_name(ADA).password("Tr0ub4dor&3-horse").send().await.unwrap();
    let key = m.iam.create_access_key().user_name(ADA).send().await.unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_string();
    // ...and an SSH key (CodeCommit), a service-specific credential and a signing certificate
    m.iam
        .upload_ssh_public_key()
        .user_name(ADA)
        .ssh_public_key_body("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests ada")
        .send()
        .await
        .unwrap();
    m.iam
        .create_service_specific_credential()
        .user_name(ADA)
        .service_name("codecommit.amazonaws.com")
        .send()
        .await
        .unwrap();
    let pem =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/signing-certificate.pem")).unwrap();
    m.iam.upload_signing_certificate().user_name(ADA).certificate_body(pem).send().await.unwrap();
    // leaver: locked down, not deleted
    let (d, actions) = m.apply(&fixture("04-leaver-ada.json")).await;
    assert_eq!(d, Decision::Disable);
    assert!(actions.contains(&"DeleteLoginProfile".to_string()), "{actions:?}");
    assert!(m.iam.get_login_profile().user_name(ADA).send().await.is_err(), "no console password");
    let keys = m.iam.list_access_keys().user_name(ADA).send().await.unwrap();
    assert!(keys.access_key_metadata().iter().all(|k| k.status() == Some(&StatusType::Inactive)));
    assert!(m.groups(ADA).await.is_empty());
    m.assert_other_credentials_inactive(ADA).await;
    assert_eq!(m.tag(ADA, "jml-sync:status").await.as_deref(), Some("disabled"));
    assert!(m.iam.get_user().user_name(ADA).send().await.is_ok(), "the principal stays for audit");
    // rehire: groups back, credentials stay off
    let (d, _) = m.apply(&fixture("05-rehire-ada.json")).await;
    assert_eq!(d, Decision::Rehire);
    assert_eq!(m.groups(ADA).await, vec!["all-staff", "engineers"]);
    assert_eq!(m.tag(ADA, "jml-sync:status").await.as_deref(), Some("active"));
    assert_eq!(m.tag(ADA, "jml-sync:disabled-at").await, None);
    let keys = m.iam.list_access_keys().user_name(ADA).send().await.unwrap();
    assert_eq!(keys.access_key_metadata()[0].access_key_id(), Some(key_id.as_str()));
    assert_eq!(keys.access_key_metadata()[0].status(), Some(&StatusType::Inactive));
    assert!(m.iam.get_login_profile().user_name(ADA).send().await.is_err());
    m.assert_other_credentials_inactive(ADA).await;
    // duplicate
    let (d, actions) = m.apply(&fixture("05-rehire-ada.json")).await;
    assert_eq!((d, actions.len()), (Decision::Duplicate, 0));
}

#[tokio::test]
#[ignore = "needs moto: scripts/moto-e2e.sh"]
async fn moto_iam_an_unmanaged_user_is_never_taken_over_and_is_parked_with_its_reason() {
    let m = moto("hijack").await;
    // A hand-made IAM user holds alan's derived name.
    m.iam.create_user().user_name("alan.turing").send().await.unwrap();
    let batch = sqs_batch(&[("m-1", "p-alan", &fixture("02-joiner-alan.json"))]);
    let out = iam_sync::handler(&m.state, lambda_runtime::LambdaEvent::new(batch, lambda_runtime::Context::default()))
        .await
        .unwrap();
    assert!(failures(&out).is_empty(), "parked, so not retried: {out}");
    assert!(m.groups("alan.turing").await.is_empty(), "untouched");
    let sqs = aws_sdk_sqs::Client::new(&m.sdk);
    let got = sqs.receive_message().queue_url(&m.dlq_url).message_attribute_names("All").send().await.unwrap();
    let msg = &got.messages()[0];
    let attr =
        |k: &str| msg.message_attributes().and_then(|a| a.get(k)).and_then(|v| v.string_value()).map(str::to_string);
    assert_eq!(attr("ErrorCode").as_deref(), Some("IamUserNotManaged"));
    assert!(attr("ErrorReason").unwrap().contains("refusing to take it over"));
}
