//! The pure subscriptions planner.
#![allow(clippy::unwrap_used)]
use std::collections::BTreeSet;

use jml_core::contract::{InstanceId, Product, Subscription};
use jml_core::engine::Step;
use subscription_sync::Code;
use subscription_sync::planner::{CurrentSubscriptions, SubscriptionStep, plan_subscriptions};
use subscription_sync::port::SubscriptionInstance;

/// The AD user name the steps are planned for.
const U: &str = "alovelace";

fn instances() -> Vec<SubscriptionInstance> {
    vec![
        SubscriptionInstance {
            instance_id: "i-00000001".into(),
            products: vec!["OFFICE".into()],
            status: "ACTIVE".into(),
        },
        SubscriptionInstance { instance_id: "i-00000002".into(), products: vec!["VS".into()], status: "ACTIVE".into() },
    ]
}

fn want(product: &str, ids: &[&str]) -> Subscription {
    Subscription {
        product: Product::parse(product).unwrap(),
        instance_ids: ids.iter().map(|i| InstanceId::parse(i).unwrap()).collect(),
    }
}

fn holding(products: &[&str], instances: &[&str]) -> CurrentSubscriptions {
    CurrentSubscriptions {
        products: products.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>(),
        instances: instances.iter().map(|i| i.to_string()).collect(),
    }
}

fn described(a: Vec<SubscriptionStep>) -> Vec<String> {
    a.iter().map(SubscriptionStep::describe).collect()
}

#[test]
fn joiner_starts_the_product_before_associating() {
    let plan = plan_subscriptions(Some(&[want("OFFICE", &["i-00000001"])]), U, &holding(&[], &[]), &instances(), false)
        .unwrap();
    assert_eq!(described(plan), vec!["StartProductSubscription OFFICE", "AssociateUser i-00000001"]);
}

#[test]
fn an_instance_change_releases_before_granting_and_equal_state_does_nothing() {
    let cur = holding(&["OFFICE"], &["i-00000001"]);
    let plan = plan_subscriptions(Some(&[want("VS", &["i-00000002"])]), U, &cur, &instances(), false).unwrap();
    assert_eq!(
        described(plan),
        vec![
            "DisassociateUser i-00000001",
            "StopProductSubscription OFFICE",
            "StartProductSubscription VS",
            "AssociateUser i-00000002"
        ]
    );
    assert!(
        plan_subscriptions(Some(&[want("OFFICE", &["i-00000001"])]), U, &cur, &instances(), false).unwrap().is_empty()
    );
}

#[test]
fn a_leaver_releases_every_association_then_every_product() {
    let cur = holding(&["OFFICE", "VS"], &["i-00000001", "i-00000002"]);
    let plan = plan_subscriptions(None, U, &cur, &instances(), false).unwrap();
    assert_eq!(
        described(plan),
        vec![
            "DisassociateUser i-00000001",
            "DisassociateUser i-00000002",
            "StopProductSubscription OFFICE",
            "StopProductSubscription VS"
        ]
    );
}

#[test]
fn instances_are_chosen_among_those_listed_never_guessed() {
    let e = plan_subscriptions(Some(&[want("OFFICE", &["i-0000000f"])]), U, &holding(&[], &[]), &instances(), false)
        .unwrap_err();
    assert_eq!(e.0, Code::UnknownInstance);
    assert_eq!(e.0.as_str(), "UnknownInstance");
    assert!(e.1.contains("subscriptions[0]") && e.1.contains("i-0000000f"));
    let e = plan_subscriptions(Some(&[want("VS", &["i-00000001"])]), U, &holding(&[], &[]), &instances(), false)
        .unwrap_err();
    assert_eq!(e.0, Code::ProductNotOnInstance);
}

#[test]
fn the_rds_sal_beside_a_product_that_stays_is_not_drift_where_the_service_adds_it_and_goes_last_with_the_rest() {
    use subscription_sync::planner::RDS_SAL;
    let held = |products: &[&str]| holding(products, &[]);
    let office = [want("OFFICE", &[])];
    // The same state sent again (RDS added by the service): nothing to do.
    assert_eq!(plan_subscriptions(Some(&office), U, &held(&["OFFICE", RDS_SAL]), &instances(), true).unwrap(), vec![]);
    // Another product stops, office stays: the SAL stays.
    let stops = plan_subscriptions(Some(&office), U, &held(&["OFFICE", "VS", RDS_SAL]), &instances(), true).unwrap();
    assert_eq!(stops, vec![SubscriptionStep::Stop { user: U.into(), product: "VS".into() }]);
    // Nothing left (a leaver): everything stops, the SAL last.
    let all = plan_subscriptions(None, U, &held(&["OFFICE", "VS", RDS_SAL]), &instances(), true).unwrap();
    let order: Vec<_> = all
        .iter()
        .map(|a| match a {
            SubscriptionStep::Stop { product, .. } => product.as_str(),
            _ => "other",
        })
        .collect();
    assert_eq!(order, vec!["OFFICE", "VS", RDS_SAL]);
    // Asked for explicitly, it is like any other product.
    let rds = [want(RDS_SAL, &[])];
    assert_eq!(plan_subscriptions(Some(&rds), U, &held(&[RDS_SAL]), &instances(), true).unwrap(), vec![]);
}

/// Issue 22 E: the products wanted are the event's. Where the service does not add the SAL
/// itself, a SAL an earlier event asked for is not kept because another product stays: the
/// plan is a function of (event, holdings, service), and the holdings it leaves are the event's.
#[test]
fn a_sal_the_latest_event_does_not_ask_for_is_stopped_where_the_service_does_not_add_it() {
    use subscription_sync::planner::RDS_SAL;
    let office = [want("OFFICE", &[])];
    let plan = plan_subscriptions(Some(&office), U, &holding(&["OFFICE", RDS_SAL], &[]), &instances(), false).unwrap();
    assert_eq!(plan, vec![SubscriptionStep::Stop { user: U.into(), product: RDS_SAL.into() }]);
}

/// A rename (here in case only): what the previous spelling holds is released first, then the
/// new spelling is converged; a leaver releases every name; an impossible want releases nothing.
#[test]
fn a_person_releases_every_other_name_before_converging_the_one_the_event_gives() {
    use subscription_sync::planner::{Holdings, plan_person};
    let held = Holdings::from([
        ("ALovelace".to_string(), holding(&["OFFICE"], &["i-00000001"])),
        (U.to_string(), holding(&["OFFICE"], &[])),
    ]);
    let steps = plan_person(Some((U, &[want("OFFICE", &["i-00000001"])])), &held, &instances(), false).unwrap();
    let users: Vec<&str> = steps.iter().map(SubscriptionStep::user).collect();
    assert_eq!(users, vec!["ALovelace", "ALovelace", U]);
    assert_eq!(
        described(steps),
        vec!["DisassociateUser i-00000001", "StopProductSubscription OFFICE", "AssociateUser i-00000001"]
    );
    let leaver = plan_person(None, &held, &instances(), false).unwrap();
    assert_eq!(leaver.iter().filter(|s| s.user() == U).count(), 1);
    assert!(leaver.iter().all(Step::revokes));
    let e = plan_person(Some((U, &[want("OFFICE", &["i-0000000f"])])), &held, &instances(), false).unwrap_err();
    assert_eq!(e.0, Code::UnknownInstance);
}

mod properties {
    use std::collections::{BTreeMap, BTreeSet};

    use jml_core::engine::Step;
    use proptest::prelude::*;
    use subscription_sync::planner::{CurrentSubscriptions, Holdings, RDS_SAL, SubscriptionStep, plan_person};
    use subscription_sync::port::SubscriptionInstance;

    use super::want;

    const PRODUCTS: [&str; 4] = ["OFFICE", "VS", "VSE", RDS_SAL];
    const INSTANCES: [(&str, &[&str]); 3] =
        [("i-00000001", &["OFFICE"]), ("i-00000002", &["VS", "VSE"]), ("i-00000003", &[RDS_SAL])];
    const NAMES: [&str; 3] = ["ALovelace", "alovelace", "lovelacea"];

    fn instances() -> Vec<SubscriptionInstance> {
        INSTANCES
            .iter()
            .map(|(id, p)| SubscriptionInstance {
                instance_id: id.to_string(),
                products: p.iter().map(|p| p.to_string()).collect(),
                status: "ACTIVE".into(),
            })
            .collect()
    }

    /// Holdings under any of the names: any products and any instances (by hand, or stale).
    fn holdings() -> impl Strategy<Value = Holdings> {
        prop::collection::btree_map(
            prop::sample::select(NAMES.to_vec()).prop_map(str::to_string),
            (
                prop::collection::btree_set(prop::sample::select(PRODUCTS.to_vec()), 0..4),
                prop::collection::btree_set(prop::sample::select(INSTANCES.map(|i| i.0).to_vec()), 0..3),
            )
                .prop_map(|(p, i)| CurrentSubscriptions {
                    products: p.into_iter().map(str::to_string).collect(),
                    instances: i.into_iter().map(str::to_string).collect(),
                }),
            0..3,
        )
    }

    /// A valid want: some (instance, product it provides) pairs, and products without instance.
    fn wants() -> impl Strategy<Value = Vec<(usize, usize, bool)>> {
        prop::collection::vec((0..3usize, 0..2usize, any::<bool>()), 0..3)
    }

    fn subscriptions(w: &[(usize, usize, bool)]) -> Vec<jml_core::contract::Subscription> {
        let mut by_product: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for &(i, p, on_instance) in w {
            let (id, products) = INSTANCES[i];
            let product = products[p % products.len()];
            let ids = by_product.entry(product).or_default();
            if on_instance {
                ids.push(id);
            }
        }
        by_product.iter().map(|(p, ids)| want(p, ids)).collect()
    }

    /// The service as a model: each step applied to the holdings (License Manager adding the
    /// SAL with another product when `adds_rds`).
    fn apply(held: &Holdings, steps: &[SubscriptionStep], adds_rds: bool) -> Holdings {
        let mut out = held.clone();
        for s in steps {
            let h = out.entry(s.user().to_string()).or_default();
            match s {
                SubscriptionStep::Disassociate { instance_id, .. } => {
                    h.instances.remove(instance_id);
                }
                SubscriptionStep::Stop { product, .. } => {
                    h.products.remove(product);
                }
                SubscriptionStep::Start { product, .. } => {
                    h.products.insert(product.clone());
                    if adds_rds && product != RDS_SAL {
                        h.products.insert(RDS_SAL.to_string());
                    }
                }
                SubscriptionStep::Associate { instance_id, .. } => {
                    h.instances.insert(instance_id.clone());
                }
            }
        }
        out.retain(|_, h| !h.is_empty());
        out
    }

    fn rank(s: &SubscriptionStep) -> u8 {
        match s {
            SubscriptionStep::Disassociate { .. } => 0,
            SubscriptionStep::Stop { product, .. } if product != RDS_SAL => 1,
            SubscriptionStep::Stop { .. } => 2,
            SubscriptionStep::Start { .. } => 3,
            SubscriptionStep::Associate { .. } => 4,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// A leaver's steps leave nothing under any name, all of them revoke, and the plan
        /// revokes exactly when something was held.
        #[test]
        fn a_leaver_leaves_nothing_under_any_name(held in holdings(), adds_rds in any::<bool>()) {
            let steps = plan_person(None, &held, &instances(), adds_rds).unwrap();
            prop_assert_eq!(apply(&held, &steps, adds_rds), Holdings::new());
            prop_assert!(steps.iter().all(Step::revokes));
            prop_assert_eq!(steps.is_empty(), held.values().all(CurrentSubscriptions::is_empty));
        }

        /// A profile's steps leave only the event's name holding, exactly the event's instances
        /// and products (the SAL beside them only where License Manager adds it); each name's
        /// steps are in order (releases before grants, the SAL stopped last), every other name
        /// is released before the event's name is written; planning again finds nothing to do;
        /// and the plan revokes exactly when something held is not wanted.
        #[test]
        fn a_profile_leaves_exactly_the_events_subscriptions_under_its_name(
            held in holdings(),
            w in wants(),
            user in prop::sample::select(NAMES.to_vec()),
            adds_rds in any::<bool>(),
        ) {
            let subs = subscriptions(&w);
            let steps = plan_person(Some((user, &subs)), &held, &instances(), adds_rds).unwrap();
            let after = apply(&held, &steps, adds_rds);
            prop_assert!(after.keys().all(|n| n == user), "{after:?}");
            let mine = after.get(user).cloned().unwrap_or_default();
            let want_products: BTreeSet<String> = subs.iter().map(|s| s.product.as_str().to_string()).collect();
            let want_instances: BTreeSet<String> =
                subs.iter().flat_map(|s| s.instance_ids.iter().map(|i| i.as_str().to_string())).collect();
            prop_assert_eq!(&mine.instances, &want_instances);
            let extra: Vec<&String> = mine.products.difference(&want_products).collect();
            let sal_kept = adds_rds && want_products.iter().any(|p| p != RDS_SAL);
            prop_assert!(extra.is_empty() || (sal_kept && extra == vec![RDS_SAL]), "{extra:?}");
            prop_assert!(want_products.is_subset(&mine.products));
            let first_mine = steps.iter().position(|s| s.user() == user).unwrap_or(steps.len());
            prop_assert!(steps[first_mine..].iter().all(|s| s.user() == user));
            for name in NAMES {
                let ranks: Vec<u8> = steps.iter().filter(|s| s.user() == name).map(rank).collect();
                prop_assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{name}: {steps:?}");
            }
            prop_assert_eq!(plan_person(Some((user, &subs)), &after, &instances(), adds_rds).unwrap(), vec![]);
            let revokes = steps.iter().any(Step::revokes);
            let others_hold = held.iter().any(|(n, h)| n != user && !h.is_empty());
            let mine_before = held.get(user).cloned().unwrap_or_default();
            let mine_lose = !mine_before.instances.is_subset(&want_instances)
                || mine_before.products.iter().any(|p| !(want_products.contains(p) || p == RDS_SAL && sal_kept));
            prop_assert_eq!(revokes, others_hold || mine_lose);
        }
    }
}
