//! The SQS dead-letter adapter: parks a record with its reason as message attributes.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::MessageAttributeValue;
use sha2::{Digest, Sha256};

use jml_core::ports::{DeadLetterQueue, ParkedMessage, ServiceError};

#[derive(Clone, Debug)]
pub struct SqsDeadLetterQueue {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetterQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    fn is_fifo(&self) -> bool {
        self.queue_url.ends_with(".fifo")
    }
}

fn attr(v: &str) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder().data_type("String").string_value(v).build().ok()
}

/// SQS attribute values must be non-empty and at most 256 KiB overall; reasons are short, but
/// cap them so an oversize reason can never make parking fail.
fn cap(s: &str) -> &str {
    match s.char_indices().nth(4000) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn park(&self, m: &ParkedMessage) -> Result<(), ServiceError> {
        let mut req = self.client.send_message().queue_url(&self.queue_url).message_body(&m.body);
        for (k, v) in [
            ("ErrorCode", Some(m.error_code.as_str())),
            ("ErrorReason", Some(cap(&m.reason))),
            ("EventId", m.event_id.as_deref()),
            ("ExternalId", m.external_id.as_deref()),
            ("SourceMessageId", m.source_message_id.as_deref()),
        ] {
            if let Some(a) = v.filter(|v| !v.is_empty()).and_then(attr) {
                req = req.message_attributes(k, a);
            }
        }
        if self.is_fifo() {
            // A FIFO DLQ keeps the person's group; dedup on the source message (a re-park of the
            // same delivery within 5 minutes is dropped by SQS, not duplicated).
            let group = m.message_group.clone().unwrap_or_else(|| "jml-parked".to_string());
            let dedup_src = m.source_message_id.as_deref().unwrap_or(&m.body);
            let dedup = format!("{:x}", Sha256::digest(dedup_src.as_bytes()));
            req = req.message_group_id(group).message_deduplication_id(dedup);
        }
        req.send().await.map(|_| ()).map_err(|e| classify(&e))
    }
}

fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> ServiceError {
    let op = jml_core::ports::op::SEND_MESSAGE;
    match err.as_service_error() {
        Some(e) => match e.code().unwrap_or_default() {
            c if c.contains("Throttl") || c == "RequestThrottled" => {
                ServiceError::Throttled { op, retry_after_seconds: None }
            }
            c if c.contains("AccessDenied") || c.contains("KmsAccessDenied") => {
                ServiceError::AccessDenied { op, message: e.message().unwrap_or_default().to_string() }
            }
            c => ServiceError::Unavailable { op, message: c.to_string() },
        },
        None => ServiceError::Unavailable { op, message: "dispatch failure or timeout".to_string() },
    }
}

/// Sends fanned-out HR events to a target's FIFO queue.
#[derive(Clone, Debug)]
pub struct SqsPublisher {
    client: Client,
}

impl SqsPublisher {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl jml_core::ingest::Publisher for SqsPublisher {
    async fn send(&self, queue_url: &str, body: &str, group_id: &str, dedup_id: &str) -> Result<(), ServiceError> {
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .message_group_id(group_id)
            .message_deduplication_id(dedup_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn send_batch(
        &self,
        queue_url: &str,
        messages: &[jml_core::ingest::Outgoing],
    ) -> Result<Vec<(usize, String)>, ServiceError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .set_message_group_id(m.group_id.clone())
                    .set_message_deduplication_id(m.dedup_id.clone())
                    .build()
                    .map_err(|e| ServiceError::Validation {
                        op: jml_core::ports::op::SEND_MESSAGE,
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .failed()
            .iter()
            .filter_map(|f| {
                f.id().parse::<usize>().ok().map(|i| (i, format!("{}: {}", f.code(), f.message().unwrap_or_default())))
            })
            .collect())
    }
}

/// Reads and removes dead-letter messages for `jml redrive`.
#[derive(Clone, Debug)]
pub struct SqsDlqSource {
    client: Client,
}

impl SqsDlqSource {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl jml_core::redrive::DlqSource for SqsDlqSource {
    async fn receive(&self, queue_url: &str) -> Result<Vec<jml_core::redrive::DlqMessage>, ServiceError> {
        let out = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| jml_core::redrive::DlqMessage {
                sent_at: m
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp))
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .and_then(chrono::DateTime::from_timestamp_millis),
                message_id: m.message_id().unwrap_or_default().to_string(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
                error_code: m
                    .message_attributes()
                    // A jml-sync function's parking code, or EventBridge Scheduler's own
                    // (its dead-letter messages carry `ERROR_CODE`, `ERROR_MESSAGE`, ...).
                    .and_then(|a| a.get("ErrorCode").or_else(|| a.get("ERROR_CODE")))
                    .and_then(|v| v.string_value())
                    .map(str::to_string),
            })
            .collect())
    }

    async fn release(&self, queue_url: &str, receipt_handle: &str) -> Result<(), ServiceError> {
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), ServiceError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}
