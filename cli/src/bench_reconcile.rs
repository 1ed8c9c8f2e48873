//! `jml bench-reconcile`: reconciling the Identity Store of `people` managed users in `groups`
//! managed groups (each person in 3), on tokio's paused (virtual) clock: the simulator answers
//! every request after `latency` and rejects requests beyond 20 in any second (the account
//! quota), and the reader paces itself to 20 requests/s per page, as the adapter's paced HTTP
//! client does. Side by side, in the same run: what a per-person reader would do instead (for
//! each person GetUserId by userName, DescribeUser, ListGroupMembershipsForMember).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use identity_sync::port::IdentityStore;
use identity_sync::sim::{PAGE, SimIdentityStore};
use jml_core::ledger::Ledger;
use jml_core::pacing::SlidingWindow;
use jml_core::reconcile::{Snapshot, parse_snapshot, reconcile};
use jml_core::sim::SimLedger;
use serde_json::json;

use crate::scale::QUOTA_PER_SECOND;

/// The simulator with `people` managed users, each in 3 of `groups` managed groups, and the
/// snapshot that matches it exactly (no drift: the whole state is still read and compared).
async fn world(
    people: usize,
    groups: usize,
    latency: Duration,
) -> Result<(SimIdentityStore, Snapshot, Vec<String>), String> {
    let pacer = Arc::new(SlidingWindow::per_second(f64::from(QUOTA_PER_SECOND)));
    let store = SimIdentityStore::new().with_latency(latency).with_rate_limit(QUOTA_PER_SECOND).with_pacer(pacer);
    let names: Vec<String> = (0..groups).map(|g| format!("jml-bench-{g:02}")).collect();
    let ids: BTreeMap<&str, String> = names.iter().map(|n| (n.as_str(), store.create_group(n))).collect();
    let mut lines = Vec::with_capacity(people);
    for n in 0..people {
        let user_name = format!("bench.user.{n}");
        let mine: Vec<&String> = (0..3).map(|k| &names[(n + k * 7) % groups]).collect();
        lines.push(
            json!({"person": {"externalId": {"issuer": "workday", "id": format!("r{n}")}, "userName": user_name,
                "displayName": user_name, "name": {"givenName": "Bench", "familyName": "User"}, "email": format!("{user_name}@example.com")},
                "groups": mine})
            .to_string(),
        );
    }
    let snapshot = parse_snapshot(&lines.join("\n"), chrono::Utc::now());
    if let Some(bad) = snapshot.bad.first() {
        return Err(format!("bench snapshot line {}: {:?}", bad.line, bad.errors));
    }
    for event in snapshot.people.values() {
        let Some(profile) = event.profile() else { continue };
        let id = &event.external_id;
        // Created with the attributes jml-sync gives the person (the setup's calls are not
        // counted: the counters are reset before the run).
        let attributes = identity_sync::planner::desired_attributes(profile, id, None);
        let user = store.create_user(&attributes).await.map_err(|e| e.to_string())?;
        for g in &profile.groups {
            if let Some(gid) = ids.get(g.as_str()) {
                store.seed_membership(gid, &user);
            }
        }
    }
    Ok((store, snapshot, names))
}

/// Peak resident set size of this process (Linux `VmHWM`), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub async fn run(people: usize, groups: usize, latency_ms: u64) -> Result<(), String> {
    if groups < 3 {
        return Err("--groups: at least 3 (each person is in 3)".into());
    }
    let latency = Duration::from_millis(latency_ms);
    let (store, snapshot, names) = world(people, groups, latency).await?;
    let store = Arc::new(store);
    let managed = names.join(",");
    let cfg = jml_core::config::Config::from_lookup(move |k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "MANAGED_GROUPS" => Some(managed.clone()),
        _ => None,
    })
    .map_err(|e| e.to_string())?;
    let reconciler = identity_sync::reconciler(store.clone(), &cfg).map_err(|e| e.to_string())?;
    let ledger = SimLedger::default();
    store.reset_calls();
    let throttled_before = store.throttled();
    let start = tokio::time::Instant::now();
    let outcome = reconcile(&snapshot, &[reconciler], &ledger as &dyn Ledger, 0.10).await.map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    let c = store.calls();
    let calls = c.reads() + c.writes();
    let throttled = store.throttled() - throttled_before;
    // The fewest requests a list-based reader can make.
    // Members per managed group, from the snapshot the simulator was built from.
    let mut members: BTreeMap<&str, usize> = BTreeMap::new();
    for p in snapshot.people.values().filter_map(|e| e.profile()) {
        for g in &p.groups {
            *members.entry(g.as_str()).or_default() += 1;
        }
    }
    let per_group = members.values().sum::<usize>() / groups;
    let min_calls = people.div_ceil(PAGE).max(1)
        + groups.div_ceil(PAGE).max(1)
        + members.values().map(|m| m.div_ceil(PAGE).max(1)).sum::<usize>();
    let floor = calls as f64 / f64::from(QUOTA_PER_SECOND);
    let rss = peak_rss_mb();

    // What users would run instead: a per-person read (three requests a person), same pacing.
    store.reset_calls();
    let start = tokio::time::Instant::now();
    for (key, event) in &snapshot.people {
        let Some(profile) = event.profile() else { continue };
        let Some(id) = store.find_user_by_user_name(&profile.user_name).await.map_err(|e| e.to_string())? else {
            return Err(format!("{key}: not found"));
        };
        store.describe_user(&id).await.map_err(|e| e.to_string())?;
        store.memberships(&id).await.map_err(|e| e.to_string())?;
    }
    let naive_seconds = start.elapsed().as_secs_f64();
    let nc = store.calls();
    let naive_calls = nc.reads() + nc.writes();

    println!(
        "Reconciling the Identity Store on the simulator ({latency_ms} ms per request, {QUOTA_PER_SECOND} requests/s quota, paced to {QUOTA_PER_SECOND}/s, virtual time)\n"
    );
    println!(
        "| reader | people | managed groups (~members) | requests | minimum list requests | requests / minimum | time | time / (requests / 20 per s) | throttled | drift |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| jml reconcile (ListUsers, ListGroups, ListGroupMemberships per group; pages of 100) | {people} | {groups} (~{per_group}) | {calls} | {min_calls} | {:.3} | {seconds:.1} s | {:.3} | {throttled} | {} |",
        calls as f64 / min_calls as f64,
        seconds / floor,
        outcome.report.drift.len()
    );
    println!(
        "| per-person reads (GetUserId by userName, DescribeUser, ListGroupMembershipsForMember) | {people} | {groups} | {naive_calls} | - | - | {naive_seconds:.1} s | {:.3} | - | - |",
        naive_seconds / (naive_calls as f64 / f64::from(QUOTA_PER_SECOND))
    );
    println!(
        "\nlist reads vs per-person reads: {:.1}x fewer requests, {:.1}x less time; peak RSS of the whole run (state of {people} people held in memory): {}",
        naive_calls as f64 / calls as f64,
        naive_seconds / seconds,
        rss.map(|m| format!("{m:.1} MB")).unwrap_or_else(|| "n/a (no /proc)".into())
    );
    let checks = [
        ("requests within 1.1x of the minimum list requests", calls as f64 <= 1.1 * min_calls as f64),
        ("time within 1.1x of requests / 20 per second", seconds / floor <= 1.1),
        ("0 throttled", throttled == 0),
        ("no drift on an exact snapshot (everything read and compared)", outcome.report.drift.is_empty()),
        ("faster than per-person reads", seconds < naive_seconds),
    ];
    println!();
    crate::bench::verdict(checks)
}
