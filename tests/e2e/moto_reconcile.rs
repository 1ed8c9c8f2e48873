//! Reconciliation against moto server with the real adapters: Identity Store (with the
//! extension: ListUsers answers UserStatus) and IAM (GetAccountAuthorizationDetails), the
//! DynamoDB ledger read with a Scan. People join through the real handlers; then users are
//! changed by hand with the SDK; the JSON report names each drift; the corrective events
//! through the handlers leave no drift; a second run of them is all duplicates.
//!
//! Run by `scripts/moto-e2e.sh` (part of `./scripts/test.sh`); ignored by a plain `cargo test`.

use std::collections::BTreeSet;

use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
use iam_sync::sim::{DEMO_BOUNDARY, DEMO_IAM_GROUP_MAP, DEMO_IAM_GROUPS};
use jml_core::config::Config;
use jml_core::lambda::{RecordMeta, State, process_record};
use jml_core::reconcile::{parse_snapshot, reconcile};
use serde_json::Value;

use crate::fixture_json;

fn line(mut v: Value) -> String {
    for k in ["eventId", "type", "occurredAt"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v.to_string()
}

#[tokio::test]
#[ignore = "needs moto server: scripts/moto-e2e.sh"]
async fn moto_reconcile_identity_and_iam_drift_by_hand_json_report_then_converged() {
    let sdk = crate::moto::sdk().await;
    let n = std::process::id();
    let store_id = format!("d-{:010x}", 0x7700_0000u64 + u64::from(n));
    let ids = aws_sdk_identitystore::Client::new(&sdk);
    for g in identity_sync::sim::DEMO_GROUPS {
        ids.create_group().identity_store_id(&store_id).display_name(*g).send().await.unwrap();
    }
    let iam = aws_sdk_iam::Client::new(&sdk);
    for g in DEMO_IAM_GROUPS {
        let _exists_already_is_fine = iam.create_group().group_name(*g).send().await;
    }
    let _ = iam
        .create_policy()
        .policy_name("jml-sync-user-boundary")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#)
        .send()
        .await;
    let table = format!("jml-ledger-reconcile-{n}");
    crate::moto::ledger_table(&sdk, &table).await;
    let dlq = crate::moto::fifo_queue(&aws_sdk_sqs::Client::new(&sdk), &format!("jml-reconcile-dlq-{n}")).await;
    // A prefix of this run only: IAM is account-wide on moto and other tests create users too.
    let prefix = format!("/jml{n}/");
    let env = [
        ("IDENTITY_STORE_ID", store_id.clone()),
        ("DLQ_URL", dlq),
        ("LEDGER_TABLE", table),
        ("MANAGED_GROUP_PREFIX", "jml-".to_string()),
        ("IDENTITY_STORE_RPS", "20".to_string()),
        ("IAM_PERMISSIONS_BOUNDARY", DEMO_BOUNDARY.to_string()),
        ("IAM_GROUP_MAP", DEMO_IAM_GROUP_MAP.to_string()),
        ("IAM_PATH_PREFIX", prefix.clone()),
    ];
    let cfg = Config::from_lookup(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let states: Vec<State> =
        vec![identity_sync::from_sdk_config(&sdk, &cfg).unwrap(), iam_sync::from_sdk_config(&sdk, &cfg).unwrap()];
    let reconcilers =
        reconcile::aws_reconcilers(&sdk, &cfg, &[reconcile::TargetKind::Identity, reconcile::TargetKind::Iam]).unwrap();
    let ledger = jml_dynamodb::ledger(&sdk, cfg.ledger_table.as_deref());
    let deliver = |e: Value| {
        let states = &states;
        async move {
            let mut out = Vec::new();
            for s in states {
                let r = process_record(s, &e.to_string(), &RecordMeta::default()).await;
                out.push(
                    r.outcome.map(|o| o.decision.as_str().to_string()).unwrap_or_else(|| format!("{:?}", r.error)),
                );
            }
            out
        }
    };
    // Unique people of this run (IAM names are account-wide on moto).
    let person = |file: &str, id: &str, user: &str| {
        let mut v = fixture_json(file);
        v["person"]["externalId"]["id"] = id.into();
        v["person"]["userName"] = user.into();
        v["person"]["enterprise"].as_object_mut().unwrap().remove("manager");
        v
    };
    let ada = person("01-joiner-ada.json", &format!("rA{n}"), &format!("ada.r{n}"));
    let alan = person("02-joiner-alan.json", &format!("rB{n}"), &format!("alan.r{n}"));
    for e in [&ada, &alan] {
        let d = deliver(e.clone()).await;
        assert_eq!(d, vec!["create", "create"], "{d:?}");
    }
    // By hand with the SDK: ada loses a membership in the Identity Store, her vpn group and
    // her path in IAM; alan is gone from HR without a leaver.
    let ada_id = ids
        .get_user_id()
        .identity_store_id(&store_id)
        .alternate_identifier(AlternateIdentifier::UniqueAttribute(
            UniqueAttribute::builder()
                .attribute_path("userName")
                .attribute_value(aws_smithy_types::Document::String(format!("ada.r{n}")))
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap()
        .user_id()
        .to_string();
    let m = ids
        .list_group_memberships_for_member()
        .identity_store_id(&store_id)
        .member_id(aws_sdk_identitystore::types::MemberId::UserId(ada_id.clone()))
        .send()
        .await
        .unwrap();
    let first = m.group_memberships()[0].membership_id().to_string();
    ids.delete_group_membership().identity_store_id(&store_id).membership_id(first).send().await.unwrap();
    let ada_iam = format!("ada.r{n}");
    iam.remove_user_from_group().user_name(&ada_iam).group_name("vpn-users").send().await.unwrap();
    iam.update_user().user_name(&ada_iam).new_path("/elsewhere/").send().await.unwrap();

    let snap = parse_snapshot(&line(ada.clone()), "2026-12-01T00:00:00Z".parse().unwrap());
    // 1 of 2 people missing: refused at 10%, read at 50%.
    assert!(reconcile(&snap, &reconcilers, &ledger, 0.10).await.is_err());
    let before = reconcile(&snap, &reconcilers, &ledger, 0.5).await.unwrap();
    let json = before.report.to_json();
    let kinds: BTreeSet<(String, String, String)> = json["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["person"].as_str().unwrap().split('#').nth(1).unwrap().to_string(),
                d["target"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let (a, b) = (format!("rA{n}"), format!("rB{n}"));
    let want: BTreeSet<(String, String, String)> = [
        (&a, "identity-store", "groups-missing"),
        (&a, "iam-users", "groups-missing"),
        (&a, "iam-users", "iam-path"),
        (&b, "identity-store", "orphan-account"),
        (&b, "iam-users", "orphan-account"),
    ]
    .iter()
    .map(|(p, t, k)| (p.to_string(), t.to_string(), k.to_string()))
    .collect();
    assert_eq!(kinds, want, "{json:#}");
    assert_eq!(json["targets"]["iam-users"]["orphan-account"], 1);

    // The corrections through the real handlers, then no drift; a re-run is all duplicates.
    let events = before.report.corrective_events(&snap, &before.left).events;
    assert_eq!(events.len(), 2);
    for e in &events {
        deliver(e.clone()).await;
    }
    let after = reconcile(&snap, &reconcilers, &ledger, 0.5).await.unwrap();
    assert!(after.report.drift.is_empty(), "{:#?}", after.report.drift);
    for e in &events {
        assert_eq!(deliver(e.clone()).await, vec!["duplicate", "duplicate"]);
    }
}

/// The scheduled function's snapshot source against S3 on moto, through the real SDK: the
/// exporter's `as-of` user metadata (`x-amz-meta-as-of`) is the snapshot's time, exact;
/// without it, LastModified, not exact (corrections held); a future one fails the run.
#[tokio::test]
#[ignore = "needs moto server: scripts/moto-e2e.sh"]
async fn moto_s3_snapshot_time_is_the_as_of_metadata_else_the_upload_time_not_exact() {
    use chrono::SubsecRound;
    use reconcile::SnapshotSource;
    let sdk = crate::moto::sdk().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let bucket = format!("jml-hr-{}", std::process::id());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let text = line(fixture_json("01-joiner-ada.json"));
    let exported = (chrono::Utc::now() - chrono::TimeDelta::hours(3)).trunc_subsecs(0);
    let put = |key: &str, as_of: Option<String>| {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(text.clone().into_bytes()))
            .set_metadata(as_of.map(|t| std::collections::HashMap::from([("as-of".to_string(), t)])))
            .send()
    };
    let source = |key: &str| reconcile::S3Snapshot { client: s3.clone(), bucket: bucket.clone(), key: key.into() };
    put("hr/snapshot.jsonl", Some(exported.to_rfc3339())).await.unwrap();
    let f = source("hr/snapshot.jsonl").fetch().await.unwrap();
    assert_eq!((f.as_of, f.exact, f.text.as_str()), (exported, true, text.as_str()));

    put("hr/plain.jsonl", None).await.unwrap();
    let f = source("hr/plain.jsonl").fetch().await.unwrap();
    assert!(!f.exact, "LastModified is the upload's time");
    assert!((chrono::Utc::now() - f.as_of).num_seconds().abs() < 300, "{}", f.as_of);

    let tomorrow = chrono::Utc::now() + chrono::TimeDelta::days(1);
    put("hr/future.jsonl", Some(tomorrow.to_rfc3339())).await.unwrap();
    let err = source("hr/future.jsonl").fetch().await.unwrap_err();
    assert!(err.contains("in the future"), "{err}");
}
