//! `jml doctor` for identity-sync on the simulator: the preflight names what is missing, and the
//! canary stops at a refused write but still deletes its test user.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use identity_sync::Settings;
use identity_sync::doctor::{CANARY_PREFIX, canary, preflight};
use identity_sync::sim::SimIdentityStore;
use jml_core::config::Config;
use jml_core::doctor::Status;

fn settings(groups: &str) -> Settings {
    let groups = groups.to_string();
    let cfg = Config::from_lookup(move |k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "MANAGED_GROUPS" => Some(groups.clone()),
        _ => None,
    })
    .unwrap();
    Settings::from_config(&cfg).unwrap()
}

fn statuses(checks: &[jml_core::doctor::Check]) -> Vec<(&str, Status)> {
    checks.iter().map(|c| (c.name.as_str(), c.status)).collect()
}

#[tokio::test]
async fn the_preflight_names_every_missing_managed_group() {
    let store = SimIdentityStore::new();
    store.create_group("jml-all-staff");
    let checks = preflight(&store, &settings("jml-all-staff,jml-vpn,jml-ghost")).await;
    let groups = checks.iter().find(|c| c.name == "every managed group exists").unwrap();
    assert_eq!(groups.status, Status::Fail);
    assert!(
        groups.detail.contains("jml-vpn, jml-ghost") || groups.detail.contains("jml-ghost, jml-vpn"),
        "{}",
        groups.detail
    );
    store.create_group("jml-vpn");
    store.create_group("jml-ghost");
    let checks = preflight(&store, &settings("jml-all-staff,jml-vpn,jml-ghost")).await;
    assert!(checks.iter().all(|c| c.status == Status::Pass), "{checks:?}");
}

#[tokio::test]
async fn the_canary_passes_every_write_path_and_leaves_nothing() {
    let store = SimIdentityStore::new();
    store.create_group("jml-all-staff");
    let checks = canary(&store, &settings("jml-all-staff"), "t1", &Vec::new).await;
    assert!(checks.iter().all(|c| c.status == Status::Pass), "{checks:?}");
    assert_eq!(checks.len(), 8);
    assert!(store.users().is_empty(), "the canary user is deleted");
}

#[tokio::test]
async fn a_refused_disable_fails_its_step_skips_the_rest_and_still_cleans_up() {
    // The service as it might be: UpdateUser on userStatus refused
    let store = SimIdentityStore::new();
    store.create_group("jml-all-staff");
    store.reject_user_status_writes(true);
    let checks = canary(&store, &settings("jml-all-staff"), "t2", &Vec::new).await;
    let got = statuses(&checks);
    assert_eq!(got[3], ("UpdateUser userStatus DISABLED", Status::Fail));
    assert!(checks[3].detail.contains("DisableUnsupported"), "{}", checks[3].detail);
    assert!(got[4..7].iter().all(|(_, s)| *s == Status::Skip), "{got:?}");
    assert_eq!(got[7], ("DeleteUser (cleanup)", Status::Pass));
    assert!(store.users().iter().all(|u| !u.user_name.starts_with(CANARY_PREFIX)), "cleaned up after the failure");
}
