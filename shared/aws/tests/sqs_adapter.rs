//! The SQS adapter against mocked SQS responses.

use aws_smithy_mocks::{mock, mock_client};
use jml_aws::SqsDeadLetterQueue;
use jml_core::ports::{DeadLetterQueue, ParkedMessage};

#[tokio::test]
async fn parking_on_a_fifo_dlq_keeps_the_group_and_carries_the_reason() {
    use aws_sdk_sqs::operation::send_message::SendMessageOutput;
    let rule = mock!(aws_sdk_sqs::Client::send_message)
        .match_requests(|r| {
            let a = r.message_attributes();
            r.queue_url() == Some("https://sqs.eu-west-2.amazonaws.com/1/dlq.fifo")
                && r.message_body() == Some("{\"bad\":true}")
                && r.message_group_id() == Some("g-1")
                && r.message_deduplication_id().is_some_and(|d| d.len() == 64)
                && a.and_then(|a| a.get("ErrorCode")).and_then(|v| v.string_value()) == Some("InvalidEvent")
                && a.and_then(|a| a.get("ErrorReason")).and_then(|v| v.string_value()) == Some("eventId: is required")
        })
        .then_output(|| SendMessageOutput::builder().message_id("x").build());
    let client = mock_client!(aws_sdk_sqs, [&rule]);
    let dlq = SqsDeadLetterQueue::new(client, "https://sqs.eu-west-2.amazonaws.com/1/dlq.fifo");
    dlq.park(&ParkedMessage {
        body: "{\"bad\":true}".into(),
        error_code: "InvalidEvent".into(),
        reason: "eventId: is required".into(),
        event_id: None,
        external_id: None,
        source_message_id: Some("m-1".into()),
        message_group: Some("g-1".into()),
    })
    .await
    .unwrap();
    assert_eq!(rule.num_calls(), 1);
}
