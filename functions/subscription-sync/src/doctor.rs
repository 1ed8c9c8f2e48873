//! `jml doctor` for subscription-sync: the read-only preflight (the directory is set and has
//! instances providing user-based subscriptions), and, only when asked (it bills), the canary:
//! StartProductSubscription, AssociateUser, DisassociateUser, StopProductSubscription for a test
//! Active Directory user the operator names, each waited on and read back, and released even
//! after a failure.

use std::time::Duration;

use crate::naming::SUBSCRIPTIONS_TARGET;
use crate::port::UserSubscriptions;
use crate::settings::Settings;
use jml_core::doctor::{Canary, Check, expect};

pub async fn preflight(service: &dyn UserSubscriptions, settings: &Settings) -> Vec<Check> {
    let scope = SUBSCRIPTIONS_TARGET;
    let directory = settings.directory_id.clone().unwrap_or_else(|| "(memory)".into());
    let result = match service.instances().await {
        Ok(list) if list.is_empty() => {
            Err(format!("{directory}: ListInstances lists no instance for user-based subscriptions"))
        }
        Ok(list) => {
            let products: std::collections::BTreeSet<&str> =
                list.iter().flat_map(|i| i.products.iter().map(String::as_str)).collect();
            Ok(format!(
                "{directory}: {} instance(s), products {}",
                list.len(),
                products.into_iter().collect::<Vec<_>>().join(", ")
            ))
        }
        Err(e) => Err(format!("{directory}: {e}")),
    };
    vec![Check::of(scope, "directory and instances (ListInstances)", result)]
}

/// Pauses between status reads while a License Manager step completes (about 4 minutes in all:
/// the canary may wait longer than a function does).
const WAITS_S: [u64; 9] = [1, 2, 4, 8, 15, 30, 60, 60, 60];

async fn wait<F, Fut>(mut done: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    for pause in std::iter::once(0).chain(WAITS_S) {
        tokio::time::sleep(Duration::from_secs(pause)).await;
        if done().await? {
            return Ok(());
        }
    }
    Err("still in progress after about 4 minutes".into())
}

/// The canary for `ad_user` (an existing test user of the directory): the first product of the
/// first instance providing one.
pub async fn canary(
    service: &dyn UserSubscriptions,
    ad_user: &str,
    shapes: &(dyn Fn() -> Vec<String> + Send + Sync),
) -> Vec<Check> {
    let mut c = Canary::new(SUBSCRIPTIONS_TARGET, shapes);
    let pick = c
        .step("ListInstances: an instance and its product", async {
            let list = service.instances().await.map_err(|e| e.to_string())?;
            let i = list.into_iter().find(|i| !i.products.is_empty()).ok_or("no instance provides a product")?;
            let product = i.products[0].clone();
            Ok(((i.instance_id.clone(), product.clone()), format!("{} providing {product}", i.instance_id)))
        })
        .await;
    let (instance, product) = pick.clone().unwrap_or_default();
    c.step("StartProductSubscription (waits for ACTIVE)", async {
        service.start_product_subscription(ad_user, &product).await.map_err(|e| e.to_string())?;
        wait(|| async {
            let s = service.product_status(ad_user, &product).await.map_err(|e| e.to_string())?;
            Ok(matches!(s.as_deref(), Some("ACTIVE" | "SUBSCRIBED")))
        })
        .await?;
        Ok(((), format!("{product} active")))
    })
    .await;
    c.step("AssociateUser (waits for ASSOCIATED)", async {
        service.associate_user(ad_user, &instance).await.map_err(|e| e.to_string())?;
        wait(|| async {
            Ok(service.association_status(&instance, ad_user).await.map_err(|e| e.to_string())?.as_deref()
                == Some("ASSOCIATED"))
        })
        .await?;
        Ok(((), format!("associated with {instance}")))
    })
    .await;
    c.step("DisassociateUser (waits until gone)", async {
        service.disassociate_user(ad_user, &instance).await.map_err(|e| e.to_string())?;
        wait(|| async {
            let s = service.association_status(&instance, ad_user).await.map_err(|e| e.to_string())?;
            Ok(matches!(s.as_deref(), None | Some("DISASSOCIATED")))
        })
        .await?;
        Ok(((), "disassociated".to_string()))
    })
    .await;
    c.cleanup("StopProductSubscription (cleanup: billing stops)", async {
        if pick.is_none() {
            return Ok(((), "nothing started".to_string()));
        }
        // Whatever failed before: never leave the association or the billing running.
        let _ = service.disassociate_user(ad_user, &instance).await;
        wait(|| async {
            let s = service.association_status(&instance, ad_user).await.map_err(|e| e.to_string())?;
            Ok(matches!(s.as_deref(), None | Some("DISASSOCIATED")))
        })
        .await?;
        service.stop_product_subscription(ad_user, &product).await.map_err(|e| e.to_string())?;
        let left = service.products(ad_user).await.map_err(|e| e.to_string())?;
        expect(!left.iter().any(|(_, p)| p == &product), || format!("{product} still held"))?;
        Ok(((), format!("{product} stopped")))
    })
    .await;
    c.checks
}
