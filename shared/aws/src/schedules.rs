//! The schedules of pending changes on EventBridge Scheduler: one one-time schedule per firing,
//! named by the firing (deterministic, no personal data), that sends [`Firing::body`] to the
//! function's own FIFO queue in the person's message group and deletes itself once it has run.
//!
//! Evidence for the request shape (EventBridge Scheduler API reference and User Guide): a FIFO
//! queue target takes `SqsParameters.MessageGroupId` and needs content-based deduplication on
//! the queue (API reference, `SqsParameters`; the template enables it on the target queues); a
//! dead-letter queue cannot be FIFO (User Guide, "Configuring a dead-letter queue"); a one-time
//! schedule is `at(yyyy-mm-ddThh:mm:ss)` with `ScheduleExpressionTimezone`, runs within its
//! minute (User Guide, "Schedule types"), and `ActionAfterCompletion: DELETE` removes it after it
//! ran; `UpdateSchedule` replaces every field, so a changed date is a new schedule, never an
//! update (API reference, `UpdateSchedule`). Tested field by field against moto's scheduler
//! backend (`tests/e2e/moto_scheduler.rs`); `jml doctor` simulates the role's permissions.

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, SqsParameters,
    Target,
};

use jml_core::config::ScheduleConfig;
use jml_core::ports::{ConflictReason, Firing, Op, Schedules, ServiceError, op};

/// How long EventBridge Scheduler keeps retrying a firing it could not send (the service's
/// maximum, 24 hours) before it goes to the dead-letter queue.
pub const MAX_EVENT_AGE_SECONDS: i32 = 86_400;
/// Retries of a firing within [`MAX_EVENT_AGE_SECONDS`] (the service's maximum, 185).
pub const MAX_RETRY_ATTEMPTS: i32 = 185;

/// [`Schedules`] on EventBridge Scheduler (CreateSchedule / DeleteSchedule in one group).
#[derive(Clone, Debug)]
pub struct EventBridgeSchedules {
    client: Client,
    config: ScheduleConfig,
}

impl EventBridgeSchedules {
    pub fn new(client: Client, config: ScheduleConfig) -> Self {
        Self { client, config }
    }

    /// The client on the shared SDK configuration.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, config: ScheduleConfig) -> Self {
        Self::new(Client::new(sdk), config)
    }
}

/// The `at(...)` expression of a firing, in UTC: the first whole minute strictly after the
/// firing's instant. EventBridge Scheduler invokes with 60-second precision (a schedule at 1:00
/// runs between 1:00:00 and 1:00:59), and a firing that arrived before its instant would find
/// nothing due and be gone (the schedule deletes itself): so it is never set earlier than a full
/// minute after the change takes effect.
pub fn at_expression(at: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{DurationRound, TimeDelta};
    let minute = TimeDelta::minutes(1);
    let floor = at.duration_trunc(minute).unwrap_or(at);
    format!("at({})", (floor + minute).format("%Y-%m-%dT%H:%M:%S"))
}

#[async_trait]
impl Schedules for EventBridgeSchedules {
    async fn put(&self, firing: &Firing) -> Result<(), ServiceError> {
        let invalid = |e: aws_sdk_scheduler::error::BuildError| ServiceError::Validation {
            op: op::CREATE_SCHEDULE,
            message: e.to_string(),
        };
        let target = Target::builder()
            .arn(&self.config.target_queue_arn)
            .role_arn(&self.config.role_arn)
            .input(firing.body())
            .sqs_parameters(
                SqsParameters::builder().message_group_id(jml_core::ingest::person_group_id(&firing.person)).build(),
            )
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_event_age_in_seconds(MAX_EVENT_AGE_SECONDS)
                    .maximum_retry_attempts(MAX_RETRY_ATTEMPTS)
                    .build(),
            )
            .dead_letter_config(DeadLetterConfig::builder().arn(&self.config.dlq_arn).build())
            .build()
            .map_err(invalid)?;
        let res = self
            .client
            .create_schedule()
            .name(&firing.name)
            .group_name(&self.config.group)
            .schedule_expression(at_expression(firing.at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(
                FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build().map_err(invalid)?,
            )
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await
            .map_err(|e| classify(op::CREATE_SCHEDULE, &e));
        // The same name is the same target, person and instant: the firing is already scheduled
        // (a retried record, a replayed event). A changed plan is a delete and a new name.
        crate::did(res, |e| matches!(e, ServiceError::Conflict { .. })).map(|_| ())
    }

    async fn delete(&self, firing: &Firing) -> Result<(), ServiceError> {
        let res = self
            .client
            .delete_schedule()
            .name(&firing.name)
            .group_name(&self.config.group)
            .send()
            .await
            .map_err(|e| classify(op::DELETE_SCHEDULE, &e));
        // Absent: already fired (ActionAfterCompletion DELETE) or deleted.
        crate::did(res, crate::is_not_found).map(|_| ())
    }
}

/// EventBridge Scheduler's errors in the service taxonomy (no personal data: names are hashes).
fn classify<E: ProvideErrorMetadata, R>(op: Op, err: &SdkError<E, R>) -> ServiceError {
    let Some(e) = err.as_service_error() else {
        return ServiceError::Unavailable { op, message: "dispatch failure or timeout".to_string() };
    };
    let message = crate::redact_quoted(e.message().unwrap_or_default());
    match e.code().unwrap_or_default() {
        // On a create: the name exists; on a delete: a concurrent change of the schedule.
        "ConflictException" if op == op::CREATE_SCHEDULE => {
            ServiceError::Conflict { op, reason: ConflictReason::UniquenessConstraintViolation }
        }
        "ConflictException" => ServiceError::Conflict { op, reason: ConflictReason::ConcurrentModification },
        "ResourceNotFoundException" => ServiceError::NotFound { op },
        c if c.contains("Throttl") => ServiceError::Throttled { op, retry_after_seconds: None },
        "ValidationException" => ServiceError::Validation { op, message },
        c if c.contains("AccessDenied") => ServiceError::AccessDenied { op, message },
        "ServiceQuotaExceededException" => ServiceError::QuotaExceeded { op },
        c => ServiceError::Unavailable { op, message: c.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_firing_is_set_on_the_first_whole_minute_after_its_instant() {
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        assert_eq!(at_expression(at("2027-03-01T00:00:00Z")), "at(2027-03-01T00:01:00)");
        assert_eq!(at_expression(at("2027-03-01T23:59:30Z")), "at(2027-03-02T00:00:00)");
        assert_eq!(at_expression(at("2027-03-01T08:15:00.5Z")), "at(2027-03-01T08:16:00)");
    }
}
