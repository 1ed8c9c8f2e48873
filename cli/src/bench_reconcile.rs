//! `jml bench-reconcile`: reconciling every target for `people` employed people in `groups`
//! managed groups (each person in 3), on tokio's paused (virtual) clock: each simulator answers
//! every request (every page of a list call) after `latency` and rejects requests beyond 20 in
//! any second (the quota), and the reader paces itself to 20 requests/s per page, as the
//! adapter's paced HTTP client does. The Identity Store is seeded directly; the other targets
//! hold what their own handlers made of each person's joiner (the ledger's inventory is what
//! makes their accounts ours). Side by side, in the same run: what a per-person reader would do
//! instead (run for the Identity Store: GetUserId by userName, DescribeUser,
//! ListGroupMembershipsForMember; counted for the others).

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

/// The people's departments: two with stacks of their own under the demo rules, one with `*`'s.
const DEPARTMENTS: [&str; 3] = ["Platform Engineering", "Finance", "Sales"];

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
                "displayName": user_name, "name": {"givenName": "Bench", "familyName": "User"}, "email": format!("{user_name}@example.com"),
                "directoryUserName": format!("bench{n}"),
                "enterprise": {"department": DEPARTMENTS[n % 3]}},
                "groups": mine,
                "subscriptions": [{"product": "OFFICE_PROFESSIONAL_PLUS", "instanceIds": ["i-0a1b2c3d4e5f60001"]}]})
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

/// One target's row: its requests, the fewest a list reader can make, its time, throttled
/// requests and drift.
struct Row {
    target: &'static str,
    reads: &'static str,
    requests: usize,
    minimum: usize,
    seconds: f64,
    throttled: usize,
    drift: usize,
    /// Per-person reads instead: requests a person, and what it reads.
    per_person: (usize, &'static str),
}

/// The other three targets, built by their handlers from each person's joiner.
struct Others {
    subs: Arc<subscription_sync::sim::SimUserSubscriptions>,
    apps: Arc<appstream_sync::sim::SimAppStream>,
    iam: Arc<iam_sync::sim::SimIam>,
    ledger: Arc<SimLedger>,
    cfg: jml_core::config::Config,
}

async fn others(snapshot: &Snapshot, names: &[String]) -> Result<Others, String> {
    use jml_core::lambda::{RecordMeta, process_record};
    let map: serde_json::Map<String, serde_json::Value> =
        names.iter().map(|n| (n.clone(), json!([format!("iam-{n}")]))).collect();
    let map = serde_json::Value::Object(map).to_string();
    let cfg = jml_core::config::Config::from_lookup(move |k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "IAM_GROUP_MAP" => Some(map.clone()),
        _ => None,
    })
    .map_err(|e| e.to_string())?;
    let subs = Arc::new(subscription_sync::sim::SimUserSubscriptions::demo());
    let apps = Arc::new(appstream_sync::sim::SimAppStream::demo());
    apps.set_quota(snapshot.people.len() + 10);
    let iam = Arc::new(iam_sync::sim::SimIam::demo());
    for n in names {
        iam.add_group(&format!("iam-{n}"));
    }
    let ledger = Arc::new(SimLedger::default());
    let mut states = [
        subscription_sync::memory_with_ledger(subs.clone(), ledger.clone(), &cfg).map_err(|e| e.to_string())?.0,
        appstream_sync::memory_with_ledger(apps.clone(), ledger.clone(), &cfg).map_err(|e| e.to_string())?.0,
        iam_sync::memory_with_ledger(iam.clone(), ledger.clone(), &cfg).map_err(|e| e.to_string())?.0,
    ];
    for s in &mut states {
        s.metrics = Arc::new(jml_core::metrics::NullSink);
    }
    for (key, raw) in &snapshot.raw {
        let mut joiner = raw.clone();
        joiner["eventId"] = json!(format!("bench-join-{key}"));
        joiner["occurredAt"] = json!("2026-01-01T00:00:00Z");
        let body = joiner.to_string();
        for state in &states {
            let r = process_record(state, &body, &RecordMeta::default()).await;
            if let Some((code, reason)) = r.error {
                return Err(format!("{key} on {}: {code} {reason}", state.engine.target_name()));
            }
        }
    }
    Ok(Others { subs, apps, iam, ledger, cfg })
}

/// What one target's row says of it besides the measurement.
struct About {
    target: &'static str,
    reads: &'static str,
    minimum: usize,
    per_person: (usize, &'static str),
}

/// Reconciles one target alone: its row (requests, virtual time, throttled, drift).
async fn measure(
    snapshot: &Snapshot,
    reconciler: Arc<dyn jml_core::reconcile::Reconciler>,
    ledger: &dyn Ledger,
    calls: impl Fn() -> usize,
    throttled: impl Fn() -> usize,
    about: About,
) -> Result<Row, String> {
    let (c0, t0) = (calls(), throttled());
    let start = tokio::time::Instant::now();
    let outcome = reconcile(snapshot, &[reconciler], ledger, 0.10).await.map_err(|e| e.to_string())?;
    Ok(Row {
        target: about.target,
        reads: about.reads,
        requests: calls() - c0,
        minimum: about.minimum,
        seconds: start.elapsed().as_secs_f64(),
        throttled: throttled() - t0,
        drift: outcome.report.drift.len(),
        per_person: about.per_person,
    })
}

pub async fn run(people: usize, groups: usize, latency_ms: u64) -> Result<(), String> {
    use jml_core::sim::list_pages;
    if groups < 3 {
        return Err("--groups: at least 3 (each person is in 3)".into());
    }
    let latency = Duration::from_millis(latency_ms);
    let (store, snapshot, names) = world(people, groups, latency).await?;
    let store = Arc::new(store);
    let o = others(&snapshot, &names).await?;
    let managed = names.join(",");
    let cfg = jml_core::config::Config::from_lookup(move |k| match k {
        "JML_BACKEND" => Some("memory".into()),
        "MANAGED_GROUPS" => Some(managed.clone()),
        _ => None,
    })
    .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();

    // Identity Store.
    let reconciler = identity_sync::reconciler(store.clone(), &cfg).map_err(|e| e.to_string())?;
    let empty = SimLedger::default();
    store.reset_calls();
    let mut members: BTreeMap<&str, usize> = BTreeMap::new();
    for p in snapshot.people.values().filter_map(|e| e.profile()) {
        for g in &p.groups {
            *members.entry(g.as_str()).or_default() += 1;
        }
    }
    let per_group = members.values().sum::<usize>() / groups;
    let minimum = list_pages(people, PAGE)
        + list_pages(groups, PAGE)
        + members.values().map(|m| list_pages(*m, PAGE)).sum::<usize>();
    let about = About {
        target: "identity-store",
        reads: "ListUsers, ListGroups, ListGroupMemberships per group (pages of 100)",
        minimum,
        per_person: (3, "GetUserId, DescribeUser, ListGroupMembershipsForMember"),
    };
    rows.push(measure(&snapshot, reconciler, &empty, || store.calls().total(), || store.throttled(), about).await?);

    // The other targets, each with its own 20 requests/s quota and pacing.
    for (quota, _) in [(&o.subs.quota, ()), (&o.apps.quota, ()), (&o.iam.quota, ())] {
        quota.configure(
            latency,
            Some(QUOTA_PER_SECOND),
            Some(Arc::new(SlidingWindow::per_second(f64::from(QUOTA_PER_SECOND)))),
        );
    }
    let ledger = o.ledger.as_ref() as &dyn Ledger;
    // Subscriptions: ListInstances, ListUserAssociations per instance, ListProductSubscriptions.
    let holdings = o.subs.all_holdings();
    let instances = subscription_sync::sim::DEMO_INSTANCES.len();
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    let mut products = 0;
    for (prods, ins) in holdings.values() {
        for i in ins {
            *per_instance.entry(i.clone()).or_default() += 1;
        }
        products += prods.len();
    }
    let page = subscription_sync::sim::LIST_PAGE;
    let minimum = list_pages(instances, page)
        + subscription_sync::sim::DEMO_INSTANCES
            .iter()
            .map(|(i, _)| list_pages(per_instance.get(*i).copied().unwrap_or(0), page))
            .sum::<usize>()
        + list_pages(products, page);
    let r = subscription_sync::reconciler(o.subs.clone(), &o.cfg).map_err(|e| e.to_string())?;
    let about = About {
        target: "user-subscriptions",
        reads: "ListInstances, ListUserAssociations per instance, ListProductSubscriptions (pages of 50, assumed)",
        minimum,
        per_person: (
            instances + 1,
            "ListUserAssociations per instance and ListProductSubscriptions, filtered to the user",
        ),
    };
    rows.push(measure(&snapshot, r, ledger, || o.subs.calls().total(), || o.subs.quota.throttled(), about).await?);

    // AppStream: DescribeUsers, DescribeUserStackAssociations per managed stack.
    let pool = o.apps.all();
    let mut per_stack: BTreeMap<String, usize> = BTreeMap::new();
    for (_, stacks) in pool.values() {
        for st in stacks {
            *per_stack.entry(st.clone()).or_default() += 1;
        }
    }
    let rules = appstream_sync::Settings::from_config(&o.cfg).map_err(|e| e.to_string())?.stacks;
    let stacks = appstream_sync::reconcile::managed_stacks(&rules, &snapshot);
    let minimum = list_pages(pool.len(), appstream_sync::sim::DESCRIBE_USERS_PAGE)
        + stacks
            .iter()
            .map(|st| list_pages(per_stack.get(st).copied().unwrap_or(0), appstream_sync::sim::STACK_ASSOCIATIONS_PAGE))
            .sum::<usize>();
    let r = appstream_sync::reconciler(o.apps.clone(), &o.cfg).map_err(|e| e.to_string())?;
    let about = About {
        target: "appstream-user-pool",
        reads: "DescribeUsers (pages of 50, assumed), DescribeUserStackAssociations per managed stack (pages of 500)",
        minimum,
        per_person: (1, "DescribeUserStackAssociations by user name"),
    };
    rows.push(measure(&snapshot, r, ledger, || o.apps.calls().total(), || o.apps.quota.throttled(), about).await?);

    // IAM: GetAccountAuthorizationDetails (users, their groups, tags and boundary in one listing).
    let minimum = list_pages(people, iam_sync::sim::AUTHORIZATION_DETAILS_PAGE);
    let r = iam_sync::reconciler(o.iam.clone(), &o.cfg).map_err(|e| e.to_string())?;
    let about = About {
        target: "iam-users",
        reads: "GetAccountAuthorizationDetails, Filter User (pages of 1,000)",
        minimum,
        per_person: (3, "GetUser, ListUserTags, ListGroupsForUser"),
    };
    rows.push(measure(&snapshot, r, ledger, || o.iam.calls().total(), || o.iam.quota.throttled(), about).await?);
    let rss = peak_rss_mb();

    // What users would run instead on the Identity Store, measured: a per-person read.
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
    let naive_calls = store.calls().total();

    println!(
        "Reconciling every target on the simulators: {people} people, {groups} managed groups (~{per_group} members each), {latency_ms} ms per request, {QUOTA_PER_SECOND} requests/s quota per service, paced to {QUOTA_PER_SECOND}/s, virtual time\n"
    );
    println!(
        "| target | list reads | requests | minimum list requests | requests / minimum | time | time / (requests / 20 per s) | throttled | drift | per-person reads instead |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let per_s = f64::from(QUOTA_PER_SECOND);
    for r in &rows {
        let instead = r.per_person.0 * people;
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.1} s | {:.3} | {} | {} | {instead} requests, {:.0} s ({}; {:.1}x the requests) |",
            r.target,
            r.reads,
            r.requests,
            r.minimum,
            r.requests as f64 / r.minimum as f64,
            r.seconds,
            r.seconds / (r.requests as f64 / per_s),
            r.throttled,
            r.drift,
            instead as f64 / per_s,
            r.per_person.1,
            instead as f64 / r.requests as f64,
        );
    }
    let total: usize = rows.iter().map(|r| r.requests).sum();
    let total_seconds: f64 = rows.iter().map(|r| r.seconds).sum();
    let id_row = &rows[0];
    println!(
        "\nall targets, one after another: {total} requests, {total_seconds:.1} s. Identity Store per-person reads, run: {naive_calls} requests, {naive_seconds:.1} s: {:.1}x the requests and {:.1}x the time of its list reads. Peak RSS of the whole run (four targets' state of {people} people in memory): {}",
        naive_calls as f64 / id_row.requests as f64,
        naive_seconds / id_row.seconds,
        rss.map(|m| format!("{m:.1} MB")).unwrap_or_else(|| "n/a (no /proc)".into())
    );
    let mut checks = Vec::new();
    for r in &rows {
        checks.push((
            format!("{}: requests within 1.1x of the minimum list requests", r.target),
            r.requests as f64 <= 1.1 * r.minimum as f64,
        ));
        checks.push((
            format!("{}: time within 1.1x of requests / 20 per second", r.target),
            r.seconds / (r.requests as f64 / per_s) <= 1.1,
        ));
        checks.push((format!("{}: 0 throttled", r.target), r.throttled == 0));
        checks.push((
            format!("{}: no drift on an exact snapshot (everything read and compared)", r.target),
            r.drift == 0,
        ));
    }
    checks.push(("Identity Store: faster than per-person reads".to_string(), id_row.seconds < naive_seconds));
    println!();
    crate::bench::verdict(checks)
}
