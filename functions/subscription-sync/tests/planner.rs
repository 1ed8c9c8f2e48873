//! The pure subscriptions planner.
#![allow(clippy::unwrap_used)]
use std::collections::BTreeSet;

use jml_core::contract::{InstanceId, Product, Subscription};
use subscription_sync::port::SubscriptionInstance;
use subscription_sync::target::{CurrentSubscriptions, SubscriptionAction, plan_subscriptions};

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

fn described(a: Vec<SubscriptionAction>) -> Vec<String> {
    a.iter().map(SubscriptionAction::describe).collect()
}

#[test]
fn joiner_starts_the_product_before_associating() {
    let plan =
        plan_subscriptions(Some(&[want("OFFICE", &["i-00000001"])]), &holding(&[], &[]), &instances(), false).unwrap();
    assert_eq!(described(plan), vec!["StartProductSubscription OFFICE", "AssociateUser i-00000001"]);
}

#[test]
fn an_instance_change_releases_before_granting_and_equal_state_does_nothing() {
    let cur = holding(&["OFFICE"], &["i-00000001"]);
    let plan = plan_subscriptions(Some(&[want("VS", &["i-00000002"])]), &cur, &instances(), false).unwrap();
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
        plan_subscriptions(Some(&[want("OFFICE", &["i-00000001"])]), &cur, &instances(), false).unwrap().is_empty()
    );
}

#[test]
fn a_leaver_releases_every_association_then_every_product() {
    let cur = holding(&["OFFICE", "VS"], &["i-00000001", "i-00000002"]);
    let plan = plan_subscriptions(None, &cur, &instances(), false).unwrap();
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
    let e = plan_subscriptions(Some(&[want("OFFICE", &["i-0000000f"])]), &holding(&[], &[]), &instances(), false)
        .unwrap_err();
    assert_eq!(e.0, "UnknownInstance");
    assert!(e.1.contains("subscriptions[0]") && e.1.contains("i-0000000f"));
    let e =
        plan_subscriptions(Some(&[want("VS", &["i-00000001"])]), &holding(&[], &[]), &instances(), false).unwrap_err();
    assert_eq!(e.0, "ProductNotOnInstance");
}

#[test]
fn the_rds_sal_beside_a_product_that_stays_is_not_drift_where_the_service_adds_it_and_goes_last_with_the_rest() {
    use subscription_sync::target::RDS_SAL;
    let held = |products: &[&str]| holding(products, &[]);
    let office = [want("OFFICE", &[])];
    // The same state sent again (RDS added by the service): nothing to do.
    assert_eq!(plan_subscriptions(Some(&office), &held(&["OFFICE", RDS_SAL]), &instances(), true).unwrap(), vec![]);
    // Another product stops, office stays: the SAL stays.
    let stops = plan_subscriptions(Some(&office), &held(&["OFFICE", "VS", RDS_SAL]), &instances(), true).unwrap();
    assert_eq!(stops, vec![SubscriptionAction::Stop { product: "VS".into() }]);
    // Nothing left (a leaver): everything stops, the SAL last.
    let all = plan_subscriptions(None, &held(&["OFFICE", "VS", RDS_SAL]), &instances(), true).unwrap();
    let order: Vec<_> = all
        .iter()
        .map(|a| match a {
            SubscriptionAction::Stop { product } => product.as_str(),
            _ => "other",
        })
        .collect();
    assert_eq!(order, vec!["OFFICE", "VS", RDS_SAL]);
    // Asked for explicitly, it is like any other product.
    let rds = [want(RDS_SAL, &[])];
    assert_eq!(plan_subscriptions(Some(&rds), &held(&[RDS_SAL]), &instances(), true).unwrap(), vec![]);
}

/// Issue 22 E: the products wanted are the event's. Where the service does not add the SAL
/// itself, a SAL an earlier event asked for is not kept because another product stays: the
/// plan is a function of (event, holdings, service), and the holdings it leaves are the event's.
#[test]
fn a_sal_the_latest_event_does_not_ask_for_is_stopped_where_the_service_does_not_add_it() {
    use subscription_sync::target::RDS_SAL;
    let office = [want("OFFICE", &[])];
    let plan = plan_subscriptions(Some(&office), &holding(&["OFFICE", RDS_SAL], &[]), &instances(), false).unwrap();
    assert_eq!(plan, vec![SubscriptionAction::Stop { product: RDS_SAL.into() }]);
}
