//! The op lists the roles are checked against (`jml operations`, scripts/test_template.py) cannot
//! drift from the code:
//! - on the simulators (which count every call by the same `op::` constants the adapters use),
//!   the samples' joiners, movers, leavers and rehires send no operation outside their target's
//!   `OPERATIONS`, and reconciliation none outside `RECONCILE_OPERATIONS`;
//! - in the sources, every SDK call of each adapter is an operation of its lists (function,
//!   reconcile, doctor-only), and every listed operation has a call: no list names a phantom.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use jml_core::ports::Op;
use jml_core::reconcile::{Reconciler, parse_snapshot, reconcile};
use jml_core::sim::CallCounts;

use crate::{events_dir, memory_config, run};

fn outside(calls: &CallCounts, allowed: &[Op]) -> Vec<String> {
    calls.by_op.keys().filter(|op| !allowed.contains(op)).map(|op| op.label().to_string()).collect()
}

#[tokio::test]
async fn every_call_on_the_samples_and_reconciliation_is_in_its_targets_lists() {
    let cfg = memory_config(&[]);
    let identity = Arc::new(identity_sync::sim::demo_identity_store());
    let (id_state, mem) = identity_sync::memory(identity.clone(), &cfg).unwrap();
    let ledger = mem.ledger.clone();
    let subs = Arc::new(subscription_sync::sim::SimUserSubscriptions::demo());
    let apps = Arc::new(appstream_sync::sim::SimAppStream::demo());
    let iam = Arc::new(iam_sync::sim::SimIam::demo());
    let states = [
        id_state,
        subscription_sync::memory_with_ledger(subs.clone(), ledger.clone(), &cfg).unwrap().0,
        appstream_sync::memory_with_ledger(apps.clone(), ledger.clone(), &cfg).unwrap().0,
        iam_sync::memory_with_ledger(iam.clone(), ledger.clone(), &cfg).unwrap().0,
    ];
    let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.to_string_lossy().ends_with(".schema.json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "joiner, mover, leaver, rehire samples");
    for f in &files {
        let body = std::fs::read_to_string(f).unwrap();
        for s in &states {
            run(s, &body).await;
        }
    }
    let id_calls = identity.calls();
    assert_eq!(outside(&id_calls, identity_sync::port::OPERATIONS), Vec::<String>::new(), "identity-sync");
    assert_eq!(outside(&subs.calls(), subscription_sync::port::OPERATIONS), Vec::<String>::new(), "subscription-sync");
    assert_eq!(outside(&apps.calls(), appstream_sync::port::OPERATIONS), Vec::<String>::new(), "appstream-sync");
    let iam_calls = iam.calls();
    assert_eq!(outside(&iam_calls, iam_sync::port::OPERATIONS), Vec::<String>::new(), "iam-sync");
    // The samples reach the paths the lists exist for: the leaver's read-back included.
    assert!(iam_calls.get(iam_sync::port::op::GET_LOGIN_PROFILE) > 0, "the IAM leaver reads the password back");
    assert!(iam_calls.get(iam_sync::port::op::ADD_USER_TO_GROUP) > 0);
    assert!(id_calls.get(identity_sync::port::op::CREATE_GROUP_MEMBERSHIP) > 0);

    identity.reset_calls();
    subs.reset_calls();
    apps.reset_calls();
    iam.reset_calls();
    let reconcilers: Vec<Arc<dyn Reconciler>> = vec![
        identity_sync::reconciler(identity.clone(), &cfg).unwrap(),
        subscription_sync::reconciler(subs.clone(), &cfg).unwrap(),
        appstream_sync::reconciler(apps.clone(), &cfg).unwrap(),
        iam_sync::reconciler(iam.clone(), &cfg).unwrap(),
    ];
    let text = std::fs::read_to_string(events_dir().join("hr-snapshot.jsonl")).unwrap();
    let snap = parse_snapshot(&text, "2027-06-01T00:00:00Z".parse().unwrap());
    let _ = reconcile(&snap, &reconcilers, ledger.as_ref(), 1.0).await;
    let id_calls = identity.calls();
    assert!(id_calls.total() > 0, "reconciliation read the Identity Store");
    assert_eq!(outside(&id_calls, identity_sync::port::RECONCILE_OPERATIONS), Vec::<String>::new());
    assert_eq!(outside(&subs.calls(), subscription_sync::port::RECONCILE_OPERATIONS), Vec::<String>::new());
    assert_eq!(outside(&apps.calls(), appstream_sync::port::RECONCILE_OPERATIONS), Vec::<String>::new());
    assert_eq!(outside(&iam.calls(), iam_sync::port::RECONCILE_OPERATIONS), Vec::<String>::new());
}

fn source(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The SDK operations a source sends (`client.<operation>()`, `Client::new(sdk).<operation>()`),
/// as their API names lower-cased without separators (`list_ssh_public_keys` -> `listsshpublickeys`).
fn sdk_calls(text: &str) -> BTreeSet<String> {
    let mut flat: String = text.split_whitespace().collect();
    while let Some(i) = flat.find("Client::new(") {
        let end = flat[i..].find(')').map_or(flat.len(), |j| i + j + 1);
        flat.replace_range(i..end, "client");
    }
    let mut out = BTreeSet::new();
    for (i, m) in flat.match_indices("client.") {
        let rest = &flat[i + m.len()..];
        let name: String =
            rest.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        if !name.is_empty() && rest[name.len()..].starts_with("()") && name != "clone" {
            out.insert(name.replace('_', ""));
        }
    }
    out
}

fn api_names<'a>(lists: impl IntoIterator<Item = &'a [Op]>) -> BTreeSet<String> {
    lists.into_iter().flatten().map(|op| op.api_name().to_lowercase()).collect()
}

#[test]
fn every_sdk_call_of_an_adapter_is_listed_and_every_listed_operation_is_called() {
    let slices: [(&str, &str, BTreeSet<String>); 4] = [
        (
            "identity-sync",
            "functions/identity-sync/src/aws.rs",
            api_names([
                identity_sync::port::OPERATIONS,
                identity_sync::port::RECONCILE_OPERATIONS,
                identity_sync::port::DOCTOR_OPERATIONS,
            ]),
        ),
        (
            "subscription-sync",
            "functions/subscription-sync/src/aws.rs",
            api_names([
                subscription_sync::port::OPERATIONS,
                subscription_sync::port::RECONCILE_OPERATIONS,
                subscription_sync::port::DOCTOR_OPERATIONS,
            ]),
        ),
        (
            "appstream-sync",
            "functions/appstream-sync/src/aws.rs",
            api_names([
                appstream_sync::port::OPERATIONS,
                appstream_sync::port::RECONCILE_OPERATIONS,
                appstream_sync::port::DOCTOR_OPERATIONS,
            ]),
        ),
        (
            "iam-sync",
            "functions/iam-sync/src/aws.rs",
            api_names([
                iam_sync::port::OPERATIONS,
                iam_sync::port::RECONCILE_OPERATIONS,
                iam_sync::port::DOCTOR_OPERATIONS,
            ]),
        ),
    ];
    for (name, path, listed) in slices {
        let called = sdk_calls(&source(path));
        assert_eq!(called, listed, "{name}: the adapter's SDK calls ({path}) and its op lists");
    }
    // The ledger: a function's calls (op::TARGET_FUNCTION), reconcile's Scan, the operator's
    // Query and DeleteItem (`jml audit`, `jml release-held`) and the doctor's DescribeTable.
    use jml_core::ports::op;
    let ledger = sdk_calls(&source("shared/dynamodb/src/lib.rs"));
    let mut listed = api_names([op::TARGET_FUNCTION, &[op::LEDGER_SCAN, op::LEDGER_QUERY, op::LEDGER_DELETE][..]]);
    for not_the_ledger in ["sendmessage", "createschedule", "deleteschedule"] {
        listed.remove(not_the_ledger);
    }
    listed.insert("describetable".into());
    assert_eq!(ledger, listed, "jml-dynamodb's calls");
    // The queues: parking and the fan-out (SendMessage), reconcile's corrections
    // (SendMessageBatch) and DLQ clearing, the doctor's GetQueueAttributes.
    let sqs = sdk_calls(&source("shared/aws/src/sqs.rs"));
    let mut listed = api_names([&[
        op::SEND_MESSAGE,
        op::SEND_MESSAGE_BATCH,
        op::RECEIVE_MESSAGE,
        op::DELETE_MESSAGE,
        op::CHANGE_MESSAGE_VISIBILITY,
    ][..]]);
    listed.insert("getqueueattributes".into());
    let sqs_and_doctor = sqs.union(&sdk_calls(&source("shared/aws/src/lib.rs"))).cloned().collect::<BTreeSet<_>>();
    assert_eq!(sqs_and_doctor, listed, "jml-aws's calls");
    // The schedules of pending changes: every target function's (op::TARGET_FUNCTION).
    let schedules = sdk_calls(&source("shared/aws/src/schedules.rs"));
    assert_eq!(schedules, api_names([op::SCHEDULES]), "jml-aws's schedule calls");
    assert!(op::SCHEDULES.iter().all(|o| op::TARGET_FUNCTION.contains(o)), "every target function schedules");
}
