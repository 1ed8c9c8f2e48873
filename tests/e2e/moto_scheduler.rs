//! The schedules of pending changes (`jml_aws::EventBridgeSchedules`) against moto's EventBridge
//! Scheduler backend: the schedule a firing creates (read back with GetSchedule), the same firing
//! again (idempotent), another instant (another schedule), its deletion and a second deletion
//! (absent = fine); then through the real
//! identity-sync handler: a joiner dated ahead schedules its firing, its rescind deletes it.
//!
//! moto never fires a schedule (that a firing applies the change is proven on the simulators:
//! `jml replay --until`, the dated property test). moto 5.2.5 stores and returns every field the
//! adapter sends (Target with SqsParameters, RetryPolicy and DeadLetterConfig, FlexibleTimeWindow,
//! ActionAfterCompletion, the time zone) but validates none of them: it accepts a FIFO target
//! without content-based deduplication and does not check the role (the template test does).
//!
//! Run by `scripts/moto-e2e.sh` with the other moto tests; ignored by a plain `cargo test`.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode};
use jml_aws::EventBridgeSchedules;
use jml_core::config::{Config, ScheduleConfig};
use jml_core::engine::Decision;
use jml_core::ports::{Firing, Schedules};

use crate::moto::{ledger_table, sdk};
use crate::{decision, run};

static NEXT: AtomicU32 = AtomicU32::new(1);

fn unique() -> u32 {
    NEXT.fetch_add(1, Ordering::SeqCst) + std::process::id() % 1000 * 100
}

/// A schedule group on moto and the variables that name it (the queues need not exist: moto's
/// scheduler never sends).
async fn group(sdk: &aws_config::SdkConfig, n: u32) -> ScheduleConfig {
    let group = format!("jml-dates-{n}");
    aws_sdk_scheduler::Client::new(sdk).create_schedule_group().name(&group).send().await.unwrap();
    ScheduleConfig {
        group,
        role_arn: "arn:aws:iam::123456789012:role/jml-scheduler".into(),
        target_queue_arn: format!("arn:aws:sqs:us-east-1:123456789012:jml-identity-{n}.fifo"),
        dlq_arn: format!("arn:aws:sqs:us-east-1:123456789012:jml-schedule-dlq-{n}"),
    }
}

#[tokio::test]
#[ignore = "needs moto server: scripts/moto-e2e.sh"]
async fn moto_a_firing_is_one_schedule_created_once_and_deleted_once() {
    let sdk = sdk().await;
    let cfg = group(&sdk, unique()).await;
    let client = aws_sdk_scheduler::Client::new(&sdk);
    let schedules = EventBridgeSchedules::new(client.clone(), cfg.clone());
    let at = "2027-01-04T05:00:00Z".parse().unwrap();
    let firing = Firing::new("identity", "workday#100412", at);

    schedules.put(&firing).await.unwrap();
    let got = client.get_schedule().name(&firing.name).group_name(&cfg.group).send().await.unwrap();
    assert_eq!(got.name(), Some(firing.name.as_str()));
    assert_eq!(got.group_name(), Some(cfg.group.as_str()));
    // The first whole minute after the instant (60-second precision: never early).
    assert_eq!(got.schedule_expression(), Some("at(2027-01-04T05:01:00)"));
    assert_eq!(got.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(got.flexible_time_window().map(|w| w.mode()), Some(&FlexibleTimeWindowMode::Off));
    assert_eq!(got.action_after_completion(), Some(&ActionAfterCompletion::Delete));
    let target = got.target().unwrap();
    assert_eq!(target.arn(), cfg.target_queue_arn);
    assert_eq!(target.role_arn(), cfg.role_arn);
    assert_eq!(target.input(), Some(firing.body().as_str()));
    assert_eq!(Firing::person_of(target.input().unwrap()).as_deref(), Some("workday#100412"));
    assert_eq!(
        target.sqs_parameters().and_then(|p| p.message_group_id()),
        Some(jml_core::ingest::person_group_id("workday#100412").as_str()),
        "the person's FIFO group: ordered with their HR events"
    );
    assert_eq!(target.dead_letter_config().and_then(|d| d.arn()), Some(cfg.dlq_arn.as_str()));
    let retry = target.retry_policy().unwrap();
    assert_eq!(
        (retry.maximum_event_age_in_seconds(), retry.maximum_retry_attempts()),
        (Some(jml_aws::schedules::MAX_EVENT_AGE_SECONDS), Some(jml_aws::schedules::MAX_RETRY_ATTEMPTS))
    );

    // The same firing again (a retried record): ConflictException on AWS and on moto, success here.
    schedules.put(&firing).await.unwrap();
    let listed = client.list_schedules().group_name(&cfg.group).send().await.unwrap();
    assert_eq!(listed.schedules().len(), 1, "one schedule per firing");

    // A corrected date is another firing (the name carries the instant): the engine deletes the
    // old schedule and creates the new one (never UpdateSchedule, which resets omitted fields).
    let moved = Firing::new("identity", "workday#100412", "2027-01-11T05:00:00Z".parse().unwrap());
    assert_ne!(moved.name, firing.name);
    schedules.put(&moved).await.unwrap();
    let listed = client.list_schedules().group_name(&cfg.group).send().await.unwrap();
    assert_eq!(listed.schedules().len(), 2);
    schedules.delete(&moved).await.unwrap();

    schedules.delete(&firing).await.unwrap();
    let gone = client.get_schedule().name(&firing.name).group_name(&cfg.group).send().await.unwrap_err();
    assert!(gone.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()), "{gone:?}");
    // Absent (already fired and deleted by ActionAfterCompletion, or deleted): nothing to do.
    schedules.delete(&firing).await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto server: scripts/moto-e2e.sh"]
async fn moto_a_dated_joiner_schedules_its_firing_and_its_rescind_deletes_it() {
    let sdk = sdk().await;
    let n = unique();
    let cfg = group(&sdk, n).await;
    let table = format!("jml-ledger-sched-{n}");
    ledger_table(&sdk, &table).await;
    let env = [
        ("IDENTITY_STORE_ID", format!("d-{n:010x}")),
        ("DLQ_URL", format!("https://sqs.us-east-1.amazonaws.com/123456789012/unused-{n}.fifo")),
        ("LEDGER_TABLE", table),
        ("MANAGED_GROUP_PREFIX", "jml-".to_string()),
        ("SCHEDULE_GROUP", cfg.group.clone()),
        ("SCHEDULER_ROLE_ARN", cfg.role_arn.clone()),
        ("SCHEDULE_TARGET_QUEUE_ARN", cfg.target_queue_arn.clone()),
        ("SCHEDULE_DLQ_ARN", cfg.dlq_arn.clone()),
    ];
    let config = Config::from_lookup(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let state = identity_sync::from_sdk_config(&sdk, &config).unwrap();
    let person = format!("{n}");
    let now = chrono::Utc::now();
    let start = (now + chrono::Duration::days(30)).date_naive();
    let joiner = serde_json::json!({
        "eventId": format!("hr-sched-{n}"), "type": "joiner",
        "occurredAt": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "effectiveDate": start.to_string(),
        "person": {
            "externalId": {"issuer": "workday", "id": person},
            "userName": format!("dated.joiner{n}"), "displayName": "Dated Joiner",
            "name": {"givenName": "Dated", "familyName": "Joiner"},
            "email": format!("dated.joiner{n}@example.com"), "timezone": "Europe/London"
        },
        "groups": []
    });
    let report = run(&state, &joiner.to_string()).await;
    assert_eq!(decision(&report), Decision::Scheduled, "{:?}", report.error);

    let client = aws_sdk_scheduler::Client::new(&sdk);
    let listed = client.list_schedules().group_name(&cfg.group).send().await.unwrap();
    assert_eq!(listed.schedules().len(), 1, "one firing for the pending joiner");
    let name = listed.schedules()[0].name().unwrap().to_string();
    let got = client.get_schedule().name(&name).group_name(&cfg.group).send().await.unwrap();
    let input = got.target().and_then(|t| t.input()).unwrap();
    assert_eq!(Firing::person_of(input), Some(format!("workday#{person}")));
    assert_eq!(got.target().unwrap().arn(), cfg.target_queue_arn, "its own queue");

    let rescind = serde_json::json!({
        "eventId": format!("hr-sched-{n}-rescind"), "type": "rescind",
        "occurredAt": (now + chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "rescinds": format!("hr-sched-{n}"),
        "person": {"externalId": {"issuer": "workday", "id": person}}
    });
    let report = run(&state, &rescind.to_string()).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let listed = client.list_schedules().group_name(&cfg.group).send().await.unwrap();
    assert_eq!(listed.schedules().len(), 0, "the rescind deleted the firing: {:?}", listed.schedules());
}
