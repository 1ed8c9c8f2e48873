//! The logs of a full scenario (JSON, as in Lambda) carry ids and decisions, never personal data.
//!
//! A test binary of its own: every test in it captures logs, so no thread without a capture
//! registers a log call site first (tracing caches a call site's interest globally; in a binary
//! shared with other tests, a call site first hit elsewhere could be skipped here).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

use jml_core::testkit::{failures, fixture, fixture_json, invoke, memory_config, sqs_batch};

/// A handler state on a fresh demo simulator (groups of the samples, manager seeded).
fn memory_state() -> (identity_sync::State, identity_sync::MemoryBackend) {
    identity_sync::memory(Arc::new(identity_sync::sim::demo_identity_store()), &memory_config(&[]))
        .expect("memory settings")
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// JSON logs, as in Lambda, captured for this thread until the guard drops.
fn capture_json_logs() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Other tests run the handler on other threads with no subscriber: make every callsite ask
    // again, so none stays cached as "never enabled" while this capture is in place.
    tracing::callsite::rebuild_interest_cache();
    (capture, guard)
}

#[tokio::test]
async fn a_full_scenario_logs_no_email_name_or_phone() {
    let (capture, _guard) = capture_json_logs();

    let (state, mem) = memory_state();
    // joiner, duplicate, mover, leaver, rehire, a hijack attempt, a bad event, a throttled record
    let mut bad = fixture_json("01-joiner-ada.json");
    bad["person"]["email"] = "ada.lovelace at example.com".into();
    let mut hijack = fixture_json("02-joiner-alan.json");
    hijack["person"]["externalId"]["id"] = "666".into();
    mem.store.inject(identity_sync::sim::Fault {
        op: identity_sync::port::op::CREATE_USER,
        user_name: Some("alan.turing".into()),
        error: jml_core::ports::ServiceError::Throttled {
            op: identity_sync::port::op::CREATE_USER,
            retry_after_seconds: None,
        },
        times: 1,
        after: 0,
    });
    let steps = [
        fixture("01-joiner-ada.json"),
        fixture("01-joiner-ada.json"),
        fixture("02-joiner-alan.json"),
        fixture("02-joiner-alan.json"),
        hijack.to_string(),
        fixture("03-mover-ada.json"),
        bad.to_string(),
        fixture("04-leaver-ada.json"),
        fixture("05-rehire-ada.json"),
    ];
    for (i, body) in steps.iter().enumerate() {
        let _ = failures(&invoke(&state, sqs_batch(&[(&format!("m-{i}"), "g", body)])).await.unwrap());
    }
    assert_eq!(mem.dlq.parked().len(), 2, "the hijack and the bad event were parked");

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The logs say what happened, by id...
    for expected in [
        "hr-2026-11-02-0001",
        "workday#100234",
        "\"decision\":\"create\"",
        "\"decision\":\"parked\"",
        "\"decision\":\"retry\"",
    ] {
        assert!(logs.contains(expected), "logs should contain {expected}");
    }
    // ...and never who it happened to.
    let lower = logs.to_lowercase();
    for personal in ["lovelace", "turing", "\"ada", "alan", "example.com", "7946", "staff engineer", "london"] {
        assert!(!lower.contains(personal), "personal data '{personal}' leaked into the logs:\n{logs}");
    }
}

#[tokio::test]
async fn subscription_sync_and_hr_ingest_log_no_personal_data_either() {
    let (capture, _guard) = capture_json_logs();

    let config = jml_core::config::Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".into())).unwrap();
    let (subs, _) =
        subscription_sync::memory(std::sync::Arc::new(subscription_sync::sim::SimUserSubscriptions::demo()), &config)
            .expect("memory settings");
    let (ingest, _) = hr_ingest::memory(&config);
    let mut bad = fixture_json("02-joiner-alan.json");
    bad["person"]["directoryUserName"] = "alan turing the great".into();
    for body in
        [fixture("01-joiner-ada.json"), fixture("03-mover-ada.json"), bad.to_string(), fixture("04-leaver-ada.json")]
    {
        let _ = invoke(&subs, sqs_batch(&[("m", "g", &body)])).await.unwrap();
        let _ = hr_ingest::handler(
            &ingest,
            lambda_runtime::LambdaEvent::new(sqs_batch(&[("m", "g", &body)]), Default::default()),
        )
        .await
        .unwrap();
    }
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "\"target\":\"user-subscriptions\"",
        "\"decision\":\"fanned-out\"",
        "workday#100234",
        "\"decision\":\"parked\"",
    ] {
        assert!(logs.contains(expected), "logs should contain {expected}");
    }
    let lower = logs.to_lowercase();
    for personal in ["lovelace", "alovelace", "turing", "example.com", "7946", "london"] {
        assert!(!lower.contains(personal), "personal data '{personal}' leaked into the logs:\n{logs}");
    }
}

#[tokio::test]
async fn appstream_sync_and_iam_sync_log_no_personal_data_either() {
    let (capture, _guard) = capture_json_logs();
    let (apps, _) =
        appstream_sync::memory(std::sync::Arc::new(appstream_sync::sim::SimAppStream::demo()), &memory_config(&[]))
            .expect("memory settings");
    let (iam, iam_mem) = iam_sync::memory(std::sync::Arc::new(iam_sync::sim::SimIam::demo()), &memory_config(&[]))
        .expect("memory settings");
    // alan's derived IAM name is taken by a hand-made user: parked, with its reason in the logs
    iam_mem.service.seed_user("alan.turing", &[]);
    let mut renamed = fixture_json("03-mover-ada.json");
    renamed["eventId"] = "mover-renamed".into();
    renamed["occurredAt"] = "2026-11-10T00:00:00Z".into();
    renamed["person"]["name"]["familyName"] = "King".into();
    for body in [
        fixture("01-joiner-ada.json"),
        fixture("02-joiner-alan.json"),
        fixture("03-mover-ada.json"),
        renamed.to_string(),
        fixture("04-leaver-ada.json"),
        fixture("05-rehire-ada.json"),
    ] {
        let _ = appstream_sync::handler(
            &apps,
            lambda_runtime::LambdaEvent::new(sqs_batch(&[("m", "g", &body)]), Default::default()),
        )
        .await
        .unwrap();
        let _ = iam_sync::handler(
            &iam,
            lambda_runtime::LambdaEvent::new(sqs_batch(&[("m", "g", &body)]), Default::default()),
        )
        .await
        .unwrap();
    }
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "\"target\":\"appstream-user-pool\"",
        "\"target\":\"iam-users\"",
        "\"decision\":\"rehire\"",
        "\"decision\":\"parked\"",
        "IamUserNotManaged",
        "workday#100235",
    ] {
        assert!(logs.contains(expected), "logs should contain {expected}");
    }
    let lower = logs.to_lowercase();
    for personal in ["lovelace", "turing", "example.com", "king", "7946", "london"] {
        assert!(!lower.contains(personal), "personal data '{personal}' leaked into the logs:\n{logs}");
    }
}
