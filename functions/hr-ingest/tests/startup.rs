//! The deployed binary's start-up check: a misconfigured hr-ingest refuses to start (Lambda
//! reports an init error) and names the variable and the rule, before it takes any event.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn start(env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hr-ingest"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_misconfigured_hr_ingest_refuses_to_start_and_names_the_variable() {
    let (ok, log) = start(&[("JML_BACKEND", "aws")]);
    assert!(!ok);
    assert!(log.contains("DLQ_URL") && log.contains("is required with JML_BACKEND=aws"), "{log}");
    let (ok, log) = start(&[("JML_BACKEND", "aws"), ("DLQ_URL", "https://sqs.eu-west-2.amazonaws.com/1/dlq")]);
    assert!(!ok);
    assert!(log.contains("TARGET_QUEUES") && log.contains("every enabled target"), "{log}");
    let (ok, log) = start(&[("JML_BACKEND", "okta")]);
    assert!(!ok);
    assert!(log.contains("JML_BACKEND") && log.contains("must be 'aws' or 'memory'"), "{log}");
}
