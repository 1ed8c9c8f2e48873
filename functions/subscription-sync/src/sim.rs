//! An in-memory License Manager user-based subscriptions service: a user must hold a product
//! subscription for a product the instance provides before being associated; a product
//! subscription cannot be stopped while the user is still associated with an instance that
//! provides only that product; unknown instances are ResourceNotFound; call counting.
//!
//! User names are Active Directory's: case-only variants (`ALovelace`, `alovelace`) name one
//! user, as AD compares sAMAccountNames. License Manager's documentation does not say how it
//! compares them, so the simulator offers both readings: by default (one user) a row keeps the
//! spelling of the call that created it, a write in another spelling acts on that row, and a
//! filtered list answers every spelling with the row's own; with
//! [`SimUserSubscriptions::case_sensitive_user_names`] each spelling is a user of its own.

use crate::port::op;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::naming::same_ad_user;
use crate::port::{Op, ServiceError, SubscriptionInstance, UserSubscriptions};
use jml_core::sim::{CallCounts, Calls};

/// The instances the sample events use.
pub const DEMO_INSTANCES: &[(&str, &[&str])] = &[
    ("i-0a1b2c3d4e5f60001", &["OFFICE_PROFESSIONAL_PLUS"]),
    ("i-0a1b2c3d4e5f60002", &["VISUAL_STUDIO_PROFESSIONAL", "VISUAL_STUDIO_ENTERPRISE"]),
    ("i-0a1b2c3d4e5f60003", &["REMOTE_DESKTOP_SERVICES"]),
];

#[derive(Debug, Default)]
struct State {
    /// Each spelling of an AD user name is a License Manager user of its own.
    case_sensitive: bool,
    /// Starting another product also subscribes the user to the RDS SAL (as License Manager does).
    rds_with_others: bool,
    /// Asynchronous mode: a started product is PENDING, a disassociation DISASSOCIATING, for this
    /// many status reads (0: done at once).
    settle_reads: u32,
    /// (user, product) -> status reads left while PENDING.
    pending: BTreeMap<(String, String), u32>,
    /// (user, instance) -> status reads left while DISASSOCIATING.
    disassociating: BTreeMap<(String, String), u32>,
    instances: Vec<SubscriptionInstance>,
    products: BTreeSet<(String, String)>,
    associations: BTreeSet<(String, String)>,
    calls: Calls,
}

#[derive(Debug, Default)]
pub struct SimUserSubscriptions {
    state: Mutex<State>,
    /// Latency, quota and pacing of the list calls, for benchmarks (off by default).
    pub quota: jml_core::sim::Quota,
}

/// The page of ListInstances, ListUserAssociations and ListProductSubscriptions: the adapter
/// sends no MaxResults and the service's default is not documented; the simulator assumes 50.
pub const LIST_PAGE: usize = 50;

impl SimUserSubscriptions {
    /// From now on, License Manager works asynchronously, as it does: a started product subscription
    /// is PENDING (AssociateUser refused) and a disassociation DISASSOCIATING (StopProductSubscription
    /// refused) for `reads` status reads.
    pub fn settle_after(&self, reads: u32) {
        self.lock().settle_reads = reads;
    }

    /// From now on, starting any other product also subscribes the user to the Remote Desktop
    /// Services SAL, as License Manager does.
    pub fn subscribe_rds_with_other_products(&self) {
        self.lock().rds_with_others = true;
    }

    /// From now on, License Manager compares user names with case: `ALovelace` and `alovelace`
    /// hold rows of their own (the other reading of the undocumented behaviour, see the module).
    pub fn case_sensitive_user_names(&self) {
        self.lock().case_sensitive = true;
    }

    pub fn demo() -> Self {
        let sim = Self::default();
        for (id, products) in DEMO_INSTANCES {
            sim.add_instance(id, products);
        }
        sim
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn add_instance(&self, id: &str, products: &[&str]) {
        self.lock().instances.push(SubscriptionInstance {
            instance_id: id.to_string(),
            products: products.iter().map(|p| p.to_string()).collect(),
            status: "ACTIVE".to_string(),
        });
    }

    /// The next call of `op` fails with `error`.
    pub fn fail_next(&self, op: Op, error: ServiceError) {
        self.lock().calls.fail_next(op, error);
    }

    pub fn calls(&self) -> CallCounts {
        self.lock().calls.counts()
    }

    pub fn reset_calls(&self) {
        self.lock().calls.reset();
    }

    /// A product subscription and an instance association made (or removed) outside jml-sync.
    pub fn hold_by_hand(&self, username: &str, product: Option<&str>, instance: Option<&str>, held: bool) {
        let mut s = self.lock();
        if let Some(p) = product {
            let key = (username.to_string(), p.to_string());
            if held {
                s.products.insert(key)
            } else {
                s.products.remove(&key)
            };
        }
        if let Some(i) = instance {
            let key = (username.to_string(), i.to_string());
            if held {
                s.associations.insert(key)
            } else {
                s.associations.remove(&key)
            };
        }
    }

    /// (products, instances) the AD user `username` names holds, under any spelling (AD compares
    /// names without case, whatever License Manager does), sorted and without repeats.
    pub fn holdings(&self, username: &str) -> (Vec<String>, Vec<String>) {
        let s = self.lock();
        let of = |rows: &BTreeSet<(String, String)>| -> Vec<String> {
            let set: BTreeSet<String> =
                rows.iter().filter(|(u, _)| same_ad_user(u, username)).map(|(_, x)| x.clone()).collect();
            set.into_iter().collect()
        };
        (of(&s.products), of(&s.associations))
    }

    /// Every (user, product) and (user, instance) held, by the user name exactly as the service
    /// holds it: for the CLI's table and the property tests.
    pub fn all_holdings(&self) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
        let s = self.lock();
        let mut out: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for (u, p) in &s.products {
            out.entry(u.clone()).or_default().0.push(p.clone());
        }
        for (u, i) in &s.associations {
            out.entry(u.clone()).or_default().1.push(i.clone());
        }
        out
    }

    fn enter(&self, op: Op) -> Result<std::sync::MutexGuard<'_, State>, ServiceError> {
        let mut s = self.lock();
        s.calls.enter(op)?;
        Ok(s)
    }

    /// A list call of every page: its items, one call counted per page of [`LIST_PAGE`].
    fn counted_pages<T>(&self, op: Op, items: impl FnOnce(&State) -> Vec<T>) -> Result<Vec<T>, ServiceError> {
        let mut s = self.enter(op)?;
        let out = items(&s);
        s.calls.further_pages(op, out.len(), LIST_PAGE);
        Ok(out)
    }
}

fn invalid(op: Op, m: &str) -> ServiceError {
    ServiceError::Validation { op, message: m.to_string() }
}

impl State {
    /// Do two user names name the same License Manager user?
    fn same(&self, a: &str, b: &str) -> bool {
        if self.case_sensitive { a == b } else { same_ad_user(a, b) }
    }

    /// The rows of `rows` (user, item) for this user: the stored user name and the item.
    fn rows_of<'a>(
        &'a self,
        rows: &'a BTreeSet<(String, String)>,
        username: &'a str,
    ) -> impl Iterator<Item = &'a (String, String)> + 'a {
        rows.iter().filter(move |(u, _)| self.same(u, username))
    }

    /// The key of the user's row for `item` in `rows`, as stored (`None`: no row).
    fn row(&self, rows: &BTreeSet<(String, String)>, username: &str, item: &str) -> Option<(String, String)> {
        self.rows_of(rows, username).find(|(_, x)| x == item).cloned()
    }

    /// The key of the user's entry for `item` in a status map, as stored.
    fn status_key<V>(
        &self,
        map: &BTreeMap<(String, String), V>,
        username: &str,
        item: &str,
    ) -> Option<(String, String)> {
        map.keys().find(|(u, x)| self.same(u, username) && x == item).cloned()
    }
}

#[async_trait]
impl UserSubscriptions for SimUserSubscriptions {
    async fn instances(&self) -> Result<Vec<SubscriptionInstance>, ServiceError> {
        let out = self.counted_pages(op::LIST_INSTANCES, |s| s.instances.clone())?;
        self.quota.pages(op::LIST_INSTANCES, out.len(), LIST_PAGE).await?;
        Ok(out)
    }

    async fn associated_as(&self, instance_id: &str, username: &str) -> Result<Vec<String>, ServiceError> {
        let s = self.enter(op::LIST_USER_ASSOCIATIONS)?;
        if !s.instances.iter().any(|i| i.instance_id == instance_id) {
            return Err(ServiceError::NotFound { op: op::LIST_USER_ASSOCIATIONS });
        }
        Ok(s.rows_of(&s.associations, username).filter(|(_, i)| i == instance_id).map(|(u, _)| u.clone()).collect())
    }

    async fn associated_users(&self, instance_id: &str) -> Result<Vec<String>, ServiceError> {
        let out = self.counted_pages(op::LIST_USER_ASSOCIATIONS, |s| {
            s.associations.iter().filter(|(_, i)| i == instance_id).map(|(u, _)| u.clone()).collect()
        })?;
        self.quota.pages(op::LIST_USER_ASSOCIATIONS, out.len(), LIST_PAGE).await?;
        Ok(out)
    }

    async fn subscribers(&self) -> Result<Vec<(String, String)>, ServiceError> {
        let out = self.counted_pages(op::LIST_PRODUCT_SUBSCRIPTIONS, |s| s.products.iter().cloned().collect())?;
        self.quota.pages(op::LIST_PRODUCT_SUBSCRIPTIONS, out.len(), LIST_PAGE).await?;
        Ok(out)
    }

    async fn products(&self, username: &str) -> Result<Vec<(String, String)>, ServiceError> {
        let s = self.enter(op::LIST_PRODUCT_SUBSCRIPTIONS)?;
        Ok(s.rows_of(&s.products, username).cloned().collect())
    }

    fn adds_rds_with_other_products(&self) -> bool {
        self.lock().rds_with_others
    }

    async fn start_product_subscription(&self, username: &str, product: &str) -> Result<(), ServiceError> {
        let op = op::START_PRODUCT_SUBSCRIPTION;
        let mut s = self.enter(op)?;
        if !s.instances.iter().any(|i| i.products.iter().any(|p| p == product)) {
            return Err(invalid(op, "no instance provides this product"));
        }
        // A row this user already holds (in any spelling the service takes for theirs) is kept.
        if s.row(&s.products, username, product).is_none() {
            let key = (username.to_string(), product.to_string());
            if s.settle_reads > 0 {
                let reads = s.settle_reads;
                s.pending.insert(key.clone(), reads);
            }
            s.products.insert(key);
        }
        let rds = crate::planner::RDS_SAL;
        if s.rds_with_others && product != rds && s.row(&s.products, username, rds).is_none() {
            s.products.insert((username.to_string(), rds.to_string()));
        }
        Ok(())
    }

    async fn stop_product_subscription(&self, username: &str, product: &str) -> Result<(), ServiceError> {
        let op = op::STOP_PRODUCT_SUBSCRIPTION;
        let mut s = self.enter(op)?;
        let held: BTreeSet<&str> = s.rows_of(&s.products, username).map(|(_, p)| p.as_str()).collect();
        let still_needed = s.rows_of(&s.associations, username).any(|(_, id)| {
            s.instances.iter().find(|i| &i.instance_id == id).is_some_and(|i| {
                i.products.iter().any(|p| p == product)
                    && !i.products.iter().any(|p| p != product && held.contains(p.as_str()))
            })
        });
        let mid_disassociation = s.disassociating.keys().filter(|(u, _)| s.same(u, username)).any(|(_, id)| {
            s.instances.iter().find(|i| &i.instance_id == id).is_some_and(|i| i.products.iter().any(|p| p == product))
        });
        if still_needed || mid_disassociation {
            return Err(ServiceError::Conflict { op, reason: crate::port::ConflictReason::Unspecified });
        }
        if let Some(key) = s.row(&s.products, username, product) {
            s.products.remove(&key);
            s.pending.remove(&key);
        }
        Ok(())
    }

    async fn associate_user(&self, username: &str, instance_id: &str) -> Result<(), ServiceError> {
        let op = op::ASSOCIATE_USER;
        let mut s = self.enter(op)?;
        let Some(instance) = s.instances.iter().find(|i| i.instance_id == instance_id).cloned() else {
            return Err(ServiceError::NotFound { op });
        };
        let active = |p: &String| s.row(&s.products, username, p).is_some_and(|key| !s.pending.contains_key(&key));
        if !instance.products.iter().any(active) {
            return Err(invalid(op, "the user has no active product subscription for a product of this instance"));
        }
        if s.row(&s.associations, username, instance_id).is_none() {
            s.associations.insert((username.to_string(), instance_id.to_string()));
        }
        Ok(())
    }

    async fn disassociate_user(&self, username: &str, instance_id: &str) -> Result<(), ServiceError> {
        let mut s = self.enter(op::DISASSOCIATE_USER)?;
        if let Some(key) = s.row(&s.associations, username, instance_id) {
            s.associations.remove(&key);
            if s.settle_reads > 0 {
                let reads = s.settle_reads;
                s.disassociating.insert(key, reads);
            }
        }
        Ok(())
    }

    async fn association_status(&self, instance_id: &str, username: &str) -> Result<Option<String>, ServiceError> {
        let mut s = self.enter(op::LIST_USER_ASSOCIATIONS)?;
        if let Some(key) = s.status_key(&s.disassociating, username, instance_id)
            && let Some(left) = s.disassociating.get_mut(&key)
        {
            *left = left.saturating_sub(1);
            if *left > 0 {
                return Ok(Some("DISASSOCIATING".to_string()));
            }
            s.disassociating.remove(&key);
            return Ok(Some("DISASSOCIATED".to_string()));
        }
        Ok(s.row(&s.associations, username, instance_id).map(|_| "ASSOCIATED".to_string()))
    }

    async fn product_status(&self, username: &str, product: &str) -> Result<Option<String>, ServiceError> {
        let mut s = self.enter(op::LIST_PRODUCT_SUBSCRIPTIONS)?;
        if let Some(key) = s.status_key(&s.pending, username, product)
            && let Some(left) = s.pending.get_mut(&key)
        {
            *left = left.saturating_sub(1);
            if *left > 0 {
                return Ok(Some("PENDING".to_string()));
            }
            s.pending.remove(&key);
        }
        Ok(s.row(&s.products, username, product).map(|_| "ACTIVE".to_string()))
    }
}
