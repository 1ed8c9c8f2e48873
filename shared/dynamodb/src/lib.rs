//! The person ledger on DynamoDB.
//!
//! One table, `pk` (S) = the person's `issuer#id`, `sk` (S) = `target#<target>` for the person
//! record of a target, or `audit#<occurredAt>#<target>#<eventId>` for an audit entry; `expiresAt`
//! (N) is the TTL attribute of audit entries. The record and its audit entry are committed in one
//! TransactWriteItems, the record conditioned on its `version` (optimistic concurrency).
//! A name claim is `pk` = `claim#<target>#<name>`, `sk` = `claim`, `owner` = the person's key,
//! written once with a conditional Put in one transaction with the owner's account inventory
//! (`pk` = person, `sk` = `inventory#<target>`, `accounts` (SS), only ever ADDed to).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use jml_core::ledger::{
    Audit, AuditEntry, Breaker, HeldEvent, Inventory, Leased, Leases, PersonRecord, PersonStatus, Records,
};
use jml_core::ports::{Op, ServiceError};

pub mod keys;

#[derive(Clone, Debug)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// A transaction item putting `item` in the table, optionally conditioned.
    fn put(
        &self,
        item: Item,
        condition: Option<(&str, Option<AttributeValue>)>,
    ) -> Result<TransactWriteItem, ServiceError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some((expression, expected)) = condition {
            put = put.condition_expression(expression);
            if let Some(v) = expected {
                put = put.expression_attribute_values(":expected", v);
            }
        }
        let put = put
            .build()
            .map_err(|e| ServiceError::Validation { op: jml_core::ports::op::LEDGER_WRITE, message: e.to_string() })?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A transaction item adding an account key to a person's inventory (a string set: ADD is
    /// idempotent and never removes).
    /// The lease item, written only if free, expired or already ours.
    fn lease_put(&self, person: &str, target: &str, holder: &str, expires_at: i64) -> Result<Put, ServiceError> {
        Put::builder()
            .table_name(&self.table)
            .item("pk", s(person))
            .item("sk", s(keys::lease_sort_key(target)))
            .item("holder", s(holder))
            .item("leaseUntil", n(expires_at))
            .item("expiresAt", n(expires_at + 86_400))
            .condition_expression("attribute_not_exists(pk) OR holder = :h OR leaseUntil < :now")
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .build()
            .map_err(|e| ServiceError::Validation { op: jml_core::ports::op::LEDGER_WRITE, message: e.to_string() })
    }

    /// The lease expired in place, only if `holder` still has it (UpdateItem: no DeleteItem
    /// permission needed).
    fn lease_release(&self, person: &str, target: &str, holder: &str) -> Result<Update, ServiceError> {
        Update::builder()
            .table_name(&self.table)
            .key("pk", s(person))
            .key("sk", s(keys::lease_sort_key(target)))
            .update_expression("SET leaseUntil = :zero")
            .condition_expression("holder = :h")
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(|e| ServiceError::Validation { op: jml_core::ports::op::LEDGER_WRITE, message: e.to_string() })
    }

    fn inventory_add(&self, person: &str, target: &str, account: &str) -> Result<TransactWriteItem, ServiceError> {
        self.inventory_add_all(person, target, &[account.to_string()])
    }

    /// Adds `accounts` (not empty) to the person's inventory on `target`, as a transaction item.
    fn inventory_add_all(
        &self,
        person: &str,
        target: &str,
        accounts: &[String],
    ) -> Result<TransactWriteItem, ServiceError> {
        Ok(TransactWriteItem::builder().update(self.inventory_update(person, target, accounts)?).build())
    }

    /// The inventory's `ADD accounts` update.
    fn inventory_update(&self, person: &str, target: &str, accounts: &[String]) -> Result<Update, ServiceError> {
        Update::builder()
            .table_name(&self.table)
            .key("pk", s(person))
            .key("sk", s(keys::inventory_sort_key(target)))
            .update_expression("ADD accounts :a")
            .expression_attribute_values(":a", AttributeValue::Ss(accounts.to_vec()))
            .build()
            .map_err(|e| ServiceError::Validation { op: jml_core::ports::op::LEDGER_WRITE, message: e.to_string() })
    }

    /// The string set `attribute` of one item (a strongly consistent GetItem); empty when the
    /// item or the attribute is absent.
    async fn string_set(&self, pk: &str, sk: &str, attribute: &str) -> Result<BTreeSet<String>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(jml_core::ports::op::LEDGER_READ, &e))?;
        Ok(out
            .item()
            .and_then(|i| i.get(attribute))
            .and_then(|v| v.as_ss().ok())
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default())
    }

    /// Every item of a Query (all pages), converted.
    async fn query_all<T>(
        &self,
        key_condition: &str,
        values: &[(&str, String)],
        convert: fn(&Item) -> Result<T, ServiceError>,
    ) -> Result<Vec<T>, ServiceError> {
        let mut query = self.client.query().table_name(&self.table).key_condition_expression(key_condition);
        for (k, v) in values {
            query = query.expression_attribute_values(*k, s(v));
        }
        let mut pages = query.into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(jml_core::ports::op::LEDGER_READ, &e))?;
            for item in page.items() {
                out.push(convert(item)?);
            }
        }
        Ok(out)
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn time(t: &DateTime<Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_time(item: &Item, k: &str) -> Option<DateTime<Utc>> {
    get_s(item, k).and_then(|v| DateTime::parse_from_rfc3339(v).ok()).map(|d| d.with_timezone(&Utc))
}

fn get_n<T: std::str::FromStr>(item: &Item, k: &str) -> Option<T> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// A conditional PutItem whose condition did not hold (nothing was written).
fn put_condition_failed<R>(e: &SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, R>) -> bool {
    matches!(
        e.as_service_error(),
        Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
    )
}

fn corrupt(what: &str) -> ServiceError {
    ServiceError::Unavailable {
        op: jml_core::ports::op::LEDGER_READ,
        message: format!("ledger item is missing or has an invalid {what}"),
    }
}

pub fn record_item(r: &PersonRecord) -> Item {
    let mut item: Item = HashMap::from([
        ("pk".to_string(), s(&r.person)),
        ("sk".to_string(), s(keys::record_sort_key(&r.target))),
        ("target".to_string(), s(&r.target)),
        ("status".to_string(), s(r.status.as_str())),
        ("lastEventId".to_string(), s(&r.last_event_id)),
        ("lastOccurredAt".to_string(), time(&r.last_occurred_at)),
        ("updatedAt".to_string(), time(&r.updated_at)),
        ("version".to_string(), n(r.version)),
    ]);
    if !r.events.is_empty() {
        // The person's dated knowledge: each event's body and effective instant.
        let list = r
            .events
            .iter()
            .map(|e| {
                AttributeValue::M(HashMap::from([
                    ("body".to_string(), s(&e.body)),
                    ("effective".to_string(), time(&e.effective)),
                ]))
            })
            .collect();
        item.insert("events".to_string(), AttributeValue::L(list));
    }
    for (k, v) in [
        ("userId", &r.user_id),
        ("userName", &r.user_name),
        ("lastEvent", &r.last_event),
        ("lifecycleEvent", &r.lifecycle_event),
        ("held", &r.held),
    ] {
        if let Some(v) = v {
            item.insert(k.to_string(), s(v));
        }
    }
    item
}

/// The `events` list of a person record (absent: none).
fn events_from(item: &Item) -> Result<Vec<jml_core::ledger::StoredEvent>, ServiceError> {
    let Some(list) = item.get("events") else { return Ok(Vec::new()) };
    let list = list.as_l().map_err(|_| corrupt("events"))?;
    list.iter()
        .map(|v| {
            let m = v.as_m().map_err(|_| corrupt("events"))?;
            Ok(jml_core::ledger::StoredEvent {
                body: get_s(m, "body").ok_or_else(|| corrupt("events body"))?.to_string(),
                effective: get_time(m, "effective").ok_or_else(|| corrupt("events effective"))?,
            })
        })
        .collect()
}

pub fn record_from_item(item: &Item) -> Result<PersonRecord, ServiceError> {
    Ok(PersonRecord {
        person: get_s(item, "pk").ok_or_else(|| corrupt("pk"))?.to_string(),
        target: get_s(item, "target").ok_or_else(|| corrupt("target"))?.to_string(),
        user_id: get_s(item, "userId").map(str::to_string),
        user_name: get_s(item, "userName").map(str::to_string),
        status: get_s(item, "status").and_then(PersonStatus::parse).ok_or_else(|| corrupt("status"))?,
        last_event_id: get_s(item, "lastEventId").ok_or_else(|| corrupt("lastEventId"))?.to_string(),
        last_occurred_at: get_time(item, "lastOccurredAt").ok_or_else(|| corrupt("lastOccurredAt"))?,
        last_event: get_s(item, "lastEvent").map(str::to_string),
        lifecycle_event: get_s(item, "lifecycleEvent").map(str::to_string),
        held: get_s(item, "held").map(str::to_string),
        events: events_from(item)?,
        version: get_n(item, "version").ok_or_else(|| corrupt("version"))?,
        updated_at: get_time(item, "updatedAt").ok_or_else(|| corrupt("updatedAt"))?,
    })
}

pub fn audit_item(a: &AuditEntry) -> Item {
    let mut item: Item = HashMap::from([
        ("pk".to_string(), s(&a.person)),
        ("sk".to_string(), s(keys::audit_sort_key(a))),
        ("target".to_string(), s(&a.target)),
        ("eventId".to_string(), s(&a.event_id)),
        ("eventType".to_string(), s(&a.event_type)),
        ("occurredAt".to_string(), time(&a.occurred_at)),
        ("decision".to_string(), s(&a.decision)),
        ("actions".to_string(), n(a.actions)),
        ("writes".to_string(), n(a.writes)),
        ("recordedAt".to_string(), time(&a.recorded_at)),
    ]);
    if let Some(e) = a.expires_at {
        item.insert("expiresAt".to_string(), n(e));
    }
    item
}

pub fn audit_from_item(item: &Item) -> Result<AuditEntry, ServiceError> {
    let text = |k: &str| get_s(item, k).map(str::to_string).ok_or_else(|| corrupt(k));
    Ok(AuditEntry {
        person: text("pk")?,
        target: text("target")?,
        event_id: text("eventId")?,
        event_type: text("eventType")?,
        occurred_at: get_time(item, "occurredAt").ok_or_else(|| corrupt("occurredAt"))?,
        decision: text("decision")?,
        actions: get_n(item, "actions").unwrap_or(0),
        writes: get_n(item, "writes").unwrap_or(0),
        recorded_at: get_time(item, "recordedAt").ok_or_else(|| corrupt("recordedAt"))?,
        expires_at: get_n(item, "expiresAt"),
    })
}

pub fn held_item(h: &HeldEvent) -> Item {
    HashMap::from([
        ("pk".to_string(), s(keys::held_partition(&h.target))),
        ("sk".to_string(), s(keys::held_sort_key(h))),
        ("target".to_string(), s(&h.target)),
        ("person".to_string(), s(&h.person)),
        ("eventId".to_string(), s(&h.event_id)),
        ("occurredAt".to_string(), time(&h.occurred_at)),
        ("body".to_string(), s(&h.body)),
        ("heldAt".to_string(), time(&h.held_at)),
    ])
}

/// Whether an item of a held-events partition is a held event: its sort key starts with the
/// held event's time (a digit); a person's items (in the legacy partition `held#<target>`, the
/// key of the person `held`/`<target>`) have sort keys that start with a letter.
pub fn is_held_item(item: &Item) -> bool {
    get_s(item, "sk").is_some_and(|sk| sk.starts_with(|c: char| c.is_ascii_digit()))
}

pub fn held_from_item(item: &Item) -> Result<HeldEvent, ServiceError> {
    let text = |k: &str| get_s(item, k).map(str::to_string).ok_or_else(|| corrupt(k));
    Ok(HeldEvent {
        target: text("target")?,
        person: text("person")?,
        event_id: text("eventId")?,
        occurred_at: get_time(item, "occurredAt").ok_or_else(|| corrupt("occurredAt"))?,
        body: text("body")?,
        held_at: get_time(item, "heldAt").ok_or_else(|| corrupt("heldAt"))?,
    })
}

/// Every DynamoDB failure is worth a retry (throttling, 5xx, a missing table or permission
/// being fixed); the source queue's maxReceiveCount bounds it.
/// A transaction cancelled because its first item's condition failed (the conditional record or
/// the claim): a lost race or another owner, not an error.
fn first_condition_failed<R>(e: &SdkError<TransactWriteItemsError, R>) -> bool {
    condition_failed_at(e, 0)
}

/// The transaction was cancelled by the condition of its item `index`.
fn condition_failed_at<R>(e: &SdkError<TransactWriteItemsError, R>, index: usize) -> bool {
    matches!(e.as_service_error(), Some(TransactWriteItemsError::TransactionCanceledException(t))
        if t.cancellation_reasons().get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed"))
}

fn classify<E: ProvideErrorMetadata, R>(op: Op, err: &SdkError<E, R>) -> ServiceError {
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or("dispatch failure or timeout");
    if code.contains("Throughput") || code.contains("Throttl") || code.contains("LimitExceeded") {
        ServiceError::Throttled { op, retry_after_seconds: None }
    } else {
        ServiceError::Unavailable { op, message: code.to_string() }
    }
}

#[async_trait]
impl Records for DynamoLedger {
    async fn get(&self, person: &str, target: &str) -> Result<Option<PersonRecord>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(person))
            .key("sk", s(keys::record_sort_key(target)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(jml_core::ports::op::LEDGER_READ, &e))?;
        out.item().map(record_from_item).transpose()
    }

    async fn commit(
        &self,
        record: &PersonRecord,
        expected: Option<u64>,
        audit: &AuditEntry,
    ) -> Result<bool, ServiceError> {
        let op = jml_core::ports::op::LEDGER_WRITE;
        let condition = match expected {
            None => ("attribute_not_exists(pk)", None),
            Some(v) => ("version = :expected", Some(n(v))),
        };
        let res = self
            .client
            .transact_write_items()
            .transact_items(self.put(record_item(record), Some(condition))?)
            .transact_items(self.put(audit_item(audit), None)?)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if first_condition_failed(&e) => Ok(false),
            Err(e) => Err(classify(op, &e)),
        }
    }

    async fn known(&self, target: &str) -> Result<BTreeMap<String, jml_core::ledger::Known>, ServiceError> {
        // A paged Scan of the person items of this target (record and inventory): the ledger has
        // no index by target, and reconciliation reads everything once.
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :r OR sk = :i")
            .expression_attribute_values(":r", s(keys::record_sort_key(target)))
            .expression_attribute_values(":i", s(keys::inventory_sort_key(target)))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut out: BTreeMap<String, jml_core::ledger::Known> = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(jml_core::ports::op::LEDGER_READ, &e))?;
            for item in page.items() {
                let sk = get_s(item, "sk").unwrap_or_default();
                if sk.starts_with("inventory#") {
                    let person = get_s(item, "pk").unwrap_or_default().to_string();
                    let accounts = item.get("accounts").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default();
                    out.entry(person).or_default().accounts = accounts.into_iter().collect();
                } else {
                    let record = record_from_item(item)?;
                    let person = record.person.clone();
                    out.entry(person).or_default().record = Some(record);
                }
            }
        }
        Ok(out)
    }

    async fn index_variant(&self, folded: &str, person: &str) -> Result<(), ServiceError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::variant_partition(folded)))
            .key("sk", s(keys::VARIANT_SORT_KEY))
            .update_expression("ADD people :p")
            .expression_attribute_values(":p", AttributeValue::Ss(vec![person.to_string()]))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(jml_core::ports::op::LEDGER_WRITE, &e))
    }

    async fn variants(&self, folded: &str) -> Result<std::collections::BTreeSet<String>, ServiceError> {
        self.string_set(&keys::variant_partition(folded), keys::VARIANT_SORT_KEY, "people").await
    }
}

#[async_trait]
impl Inventory for DynamoLedger {
    async fn claim(&self, target: &str, name: &str, person: &str) -> Result<String, ServiceError> {
        let key = keys::claim_key(target, name);
        let claim = Put::builder()
            .table_name(&self.table)
            .item("pk", s(&key))
            .item("sk", s("claim"))
            .item("owner", s(person))
            .condition_expression("attribute_not_exists(pk) OR #owner = :person")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":person", s(person))
            .build()
            .map_err(|e| ServiceError::Validation { op: jml_core::ports::op::LEDGER_WRITE, message: e.to_string() })?;
        // The claim and the person's inventory entry in one transaction: a claimed account is
        // always in its owner's inventory before the write that creates it.
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(claim).build())
            .transact_items(self.inventory_add(person, target, name)?)
            .send()
            .await;
        match res {
            Ok(_) => Ok(person.to_string()),
            Err(e) if first_condition_failed(&e) => {
                self.owner(target, name).await?.ok_or_else(|| corrupt("claim owner"))
            }
            Err(e) => Err(classify(jml_core::ports::op::LEDGER_WRITE, &e)),
        }
    }

    async fn owner(&self, target: &str, name: &str) -> Result<Option<String>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::claim_key(target, name)))
            .key("sk", s("claim"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(jml_core::ports::op::LEDGER_READ, &e))?;
        Ok(out.item().and_then(|i| get_s(i, "owner")).map(str::to_string))
    }

    async fn remember(&self, person: &str, target: &str, account: &str) -> Result<(), ServiceError> {
        // One item: a plain UpdateItem (atomic on its own; a one-item transaction costs twice).
        let update = self.inventory_update(person, target, &[account.to_string()])?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_expression_attribute_values(update.expression_attribute_values)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(jml_core::ports::op::LEDGER_WRITE, &e))
    }

    async fn accounts(&self, person: &str, target: &str) -> Result<BTreeSet<String>, ServiceError> {
        self.string_set(person, &keys::inventory_sort_key(target), "accounts").await
    }
}

#[async_trait]
impl Leases for DynamoLedger {
    async fn lease(&self, person: &str, target: &str, holder: &str, expires_at: i64) -> Result<bool, ServiceError> {
        let put = self.lease_put(person, target, holder, expires_at)?;
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_values(put.expression_attribute_values)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if put_condition_failed(&e) => Ok(false),
            Err(e) => Err(classify(jml_core::ports::op::LEDGER_WRITE, &e)),
        }
    }

    async fn lease_if_unchanged(
        &self,
        person: &str,
        target: &str,
        holder: &str,
        expires_at: i64,
        expected: Option<u64>,
        ahead: &[String],
    ) -> Result<Leased, ServiceError> {
        // One transaction: the lease, a check that the record is still the one read, and the
        // inventory keys the work may need.
        let mut check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(person))
            .key("sk", s(keys::record_sort_key(target)));
        check = match expected {
            None => check.condition_expression("attribute_not_exists(pk)"),
            Some(v) => check.condition_expression("version = :expected").expression_attribute_values(":expected", n(v)),
        };
        let check = check
            .build()
            .map_err(|e| ServiceError::Validation { op: jml_core::ports::op::LEDGER_WRITE, message: e.to_string() })?;
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder().put(self.lease_put(person, target, holder, expires_at)?).build(),
            )
            .transact_items(TransactWriteItem::builder().condition_check(check).build());
        if !ahead.is_empty() {
            tx = tx.transact_items(self.inventory_add_all(person, target, ahead)?);
        }
        let res = tx.send().await;
        match res {
            Ok(_) => Ok(Leased::Unchanged),
            Err(e) if first_condition_failed(&e) => Ok(Leased::Busy),
            // Only the record changed: the lease alone, and the caller reads the record again.
            Err(e) if condition_failed_at(&e, 1) => {
                Ok(if self.lease(person, target, holder, expires_at).await? { Leased::Taken } else { Leased::Busy })
            }
            Err(e) => Err(classify(jml_core::ports::op::LEDGER_WRITE, &e)),
        }
    }

    async fn commit_and_release(
        &self,
        record: &PersonRecord,
        expected: Option<u64>,
        audit: &AuditEntry,
        holder: &str,
        remember: &[String],
    ) -> Result<bool, ServiceError> {
        let condition = match expected {
            None => ("attribute_not_exists(pk)", None),
            Some(v) => ("version = :expected", Some(n(v))),
        };
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(self.put(record_item(record), Some(condition))?)
            .transact_items(self.put(audit_item(audit), None)?)
            .transact_items(
                TransactWriteItem::builder()
                    .update(self.lease_release(&record.person, &record.target, holder)?)
                    .build(),
            );
        if !remember.is_empty() {
            tx = tx.transact_items(self.inventory_add_all(&record.person, &record.target, remember)?);
        }
        let res = tx.send().await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if first_condition_failed(&e) => Ok(false),
            // The lease was taken over (it expired): nothing written; the record is retried.
            Err(e) => Err(classify(jml_core::ports::op::LEDGER_WRITE, &e)),
        }
    }

    async fn release(&self, person: &str, target: &str, holder: &str) -> Result<(), ServiceError> {
        // UpdateItem alone (a one-item transaction costs twice).
        let update = self.lease_release(person, target, holder)?;
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_condition_expression(update.condition_expression)
            .set_expression_attribute_values(update.expression_attribute_values)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // Expired and taken by another holder: theirs now.
            Err(e) if matches!(e.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => {
                Ok(())
            }
            Err(e) => Err(classify(jml_core::ports::op::LEDGER_WRITE, &e)),
        }
    }
}

#[async_trait]
impl Breaker for DynamoLedger {
    async fn window(&self, key: &str) -> Result<(Vec<(String, i64)>, u64), ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::BREAKER_PARTITION))
            .key("sk", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(jml_core::ports::op::LEDGER_READ, &e))?;
        let Some(item) = out.item() else { return Ok((vec![], 0)) };
        let entries = match item.get("entries") {
            Some(AttributeValue::M(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    AttributeValue::N(t) => t.parse().map(|t| (k.clone(), t)).map_err(|_| corrupt("breaker entry")),
                    _ => Err(corrupt("breaker entry")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => vec![],
        };
        Ok((entries, get_n(item, "version").ok_or_else(|| corrupt("breaker version"))?))
    }

    async fn put_window(
        &self,
        key: &str,
        entries: &[(String, i64)],
        expected: u64,
        expires_at: i64,
    ) -> Result<bool, ServiceError> {
        let map = entries.iter().map(|(m, t)| (m.clone(), n(t))).collect();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::BREAKER_PARTITION))
            .item("sk", s(key))
            .item("entries", AttributeValue::M(map))
            .item("version", n(expected + 1))
            .item("expiresAt", n(expires_at));
        put = match expected {
            0 => put.condition_expression("attribute_not_exists(pk)"),
            v => put.condition_expression("version = :v").expression_attribute_values(":v", n(v)),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if put_condition_failed(&e) => Ok(false),
            Err(e) => Err(classify(jml_core::ports::op::LEDGER_WRITE, &e)),
        }
    }

    async fn decide(
        &self,
        person: &str,
        event_id: &str,
        decision: &str,
        expires_at: i64,
    ) -> Result<String, ServiceError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(person))
            .item("sk", s(keys::decision_sort_key(event_id)))
            .item("decision", s(decision))
            .item("expiresAt", n(expires_at))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(decision.to_string()),
            Err(e) if put_condition_failed(&e) => {
                self.decision(person, event_id).await?.ok_or_else(|| corrupt("breaker decision"))
            }
            Err(e) => Err(classify(jml_core::ports::op::LEDGER_WRITE, &e)),
        }
    }

    async fn decision(&self, person: &str, event_id: &str) -> Result<Option<String>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(person))
            .key("sk", s(keys::decision_sort_key(event_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(jml_core::ports::op::LEDGER_READ, &e))?;
        Ok(out.item().and_then(|i| get_s(i, "decision")).map(str::to_string))
    }

    async fn hold(&self, held: &HeldEvent, audit: &AuditEntry) -> Result<(), ServiceError> {
        self.client
            .transact_write_items()
            .transact_items(self.put(held_item(held), None)?)
            .transact_items(self.put(audit_item(audit), None)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(jml_core::ports::op::LEDGER_WRITE, &e))
    }

    async fn held(&self, target: &str) -> Result<Vec<HeldEvent>, ServiceError> {
        let mut out = self.query_all("pk = :p", &[(":p", keys::held_partition(target))], held_from_item).await?;
        // Held before the partition moved: the legacy partition is also the key of the person
        // whose issuer is `held` (their record, audit, ...): only held-event items are read.
        let legacy = self
            .query_all("pk = :p", &[(":p", keys::held_legacy_partition(target))], |item| {
                is_held_item(item).then(|| held_from_item(item)).transpose()
            })
            .await?;
        out.extend(legacy.into_iter().flatten());
        out.sort_by_key(keys::held_sort_key);
        Ok(out)
    }

    async fn forget_held(&self, held: &HeldEvent) -> Result<(), ServiceError> {
        // From both partitions (a DeleteItem of an absent item succeeds): one held before the
        // move is in the legacy one. The sort key starts with a digit: never a person's item.
        for pk in [keys::held_partition(&held.target), keys::held_legacy_partition(&held.target)] {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(keys::held_sort_key(held)))
                .send()
                .await
                .map_err(|e| classify(jml_core::ports::op::LEDGER_WRITE, &e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Audit for DynamoLedger {
    async fn append_audit(&self, audit: &AuditEntry) -> Result<(), ServiceError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(audit_item(audit)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(jml_core::ports::op::LEDGER_WRITE, &e))
    }

    async fn audit_trail(&self, person: &str) -> Result<Vec<AuditEntry>, ServiceError> {
        let values = [(":p", person.to_string()), (":a", "audit#".to_string())];
        self.query_all("pk = :p AND begins_with(sk, :a)", &values, audit_from_item).await
    }
}

/// The ledger on `table`, with the SDK configuration the process loaded.
pub fn ledger(sdk: &aws_config::SdkConfig, table: Option<&str>) -> DynamoLedger {
    DynamoLedger::new(Client::new(sdk), table.unwrap_or_default())
}

/// `jml doctor`: the ledger table answers DescribeTable with the key schema jml-sync writes
/// (`pk` HASH and `sk` RANGE, both strings); `Ok`: its ARN and status.
pub async fn check_table(sdk: &aws_config::SdkConfig, table: &str) -> Result<String, String> {
    use aws_sdk_dynamodb::types::{KeyType, ScalarAttributeType};
    let out = Client::new(sdk)
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| format!("DescribeTable: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
    let t = out.table().ok_or("DescribeTable: no table in the answer")?;
    let key =
        |kind: KeyType| t.key_schema().iter().find(|k| k.key_type() == &kind).map(|k| k.attribute_name().to_string());
    let string = |name: &str| {
        t.attribute_definitions()
            .iter()
            .any(|a| a.attribute_name() == name && a.attribute_type() == &ScalarAttributeType::S)
    };
    let (hash, range) = (key(KeyType::Hash), key(KeyType::Range));
    if hash.as_deref() != Some("pk") || range.as_deref() != Some("sk") || !string("pk") || !string("sk") {
        return Err(format!(
            "key schema is HASH {} / RANGE {}; the ledger needs HASH pk (S) / RANGE sk (S)",
            hash.as_deref().unwrap_or("-"),
            range.as_deref().unwrap_or("-")
        ));
    }
    let status = t.table_status().map(|s| s.as_str().to_string()).unwrap_or_else(|| "?".into());
    Ok(format!("{} ({status}, pk/sk)", t.table_arn().unwrap_or(table)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jml_core::ledger::PersonStatus;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn record() -> PersonRecord {
        PersonRecord {
            person: "workday#100234".into(),
            target: "example-target".into(),
            user_id: Some("u-1".into()),
            user_name: Some("ada".into()),
            status: PersonStatus::Disabled,
            last_event_id: "e-2".into(),
            last_occurred_at: at("2026-11-02T09:00:00.123Z"),
            last_event: Some("{\"type\":\"joiner\"}".into()),
            lifecycle_event: Some("{\"type\":\"leaver\"}".into()),
            held: Some("e-3".into()),
            events: Vec::new(),
            version: 7,
            updated_at: at("2026-11-02T09:00:01Z"),
        }
    }

    #[test]
    fn a_record_reads_back_as_written_with_and_without_its_optional_fields() {
        let mut full = record();
        full.events = vec![
            jml_core::ledger::StoredEvent { body: "{\"eventId\":\"a\"}".into(), effective: at("2026-12-31T23:59:59Z") },
            jml_core::ledger::StoredEvent {
                body: "{\"eventId\":\"b\"}".into(),
                effective: at("2026-11-02T09:00:00.5Z"),
            },
        ];
        assert_eq!(record_from_item(&record_item(&full)).unwrap(), full);
        let bare = PersonRecord {
            user_id: None,
            user_name: None,
            status: PersonStatus::Deleted,
            last_event: None,
            lifecycle_event: None,
            held: None,
            ..record()
        };
        assert_eq!(record_from_item(&record_item(&bare)).unwrap(), bare);
        let item = record_item(&full);
        assert_eq!(get_s(&item, "pk"), Some("workday#100234"));
        assert_eq!(get_s(&item, "sk"), Some("target#example-target"));
    }

    #[test]
    fn an_item_missing_a_required_attribute_is_refused_as_corrupt_not_read_as_a_default() {
        let mut item = record_item(&record());
        item.remove("version");
        assert!(record_from_item(&item).is_err());
        let mut item = record_item(&record());
        item.insert("status".into(), s("enabled-ish"));
        assert!(record_from_item(&item).is_err());
    }

    #[test]
    fn audit_and_held_items_read_back_as_written() {
        let audit = AuditEntry {
            person: "workday#100234".into(),
            target: "example-target".into(),
            event_id: "e-2".into(),
            event_type: "leaver".into(),
            occurred_at: at("2026-11-02T09:00:00.123Z"),
            decision: "disable".into(),
            actions: 4,
            writes: 4,
            recorded_at: at("2026-11-02T09:00:01Z"),
            expires_at: Some(1_800_000_000),
        };
        assert_eq!(audit_from_item(&audit_item(&audit)).unwrap(), audit);
        let held = HeldEvent {
            target: "example-target".into(),
            person: "workday#100234".into(),
            event_id: "e-2".into(),
            occurred_at: at("2026-11-02T09:00:00.123Z"),
            body: "{}".into(),
            held_at: at("2026-11-02T09:00:01Z"),
        };
        let item = held_item(&held);
        assert!(is_held_item(&item));
        assert_eq!(held_from_item(&item).unwrap(), held);
        assert!(!is_held_item(&record_item(&record())));
    }
}
