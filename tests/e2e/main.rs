//! Workspace end-to-end tests: the `events/` fixtures through the real `identity-sync` handler
//! on the in-memory simulators. One test binary (link once).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod bad_events;
mod breaker;
mod ingest;
mod ledger;
mod metrics;
mod moto;
mod moto_doctor;
mod moto_iam;
mod moto_reconcile;
mod moto_scheduler;
mod operations;
mod properties;
mod reconcile;
mod samples;
mod trust;

use std::sync::Arc;

use identity_sync::{MemoryBackend, State};
use jml_core::config::Config;

pub use jml_core::testkit::{
    decision, events_dir, failures, fixture, fixture_json, invoke, memory_config, run, sqs_batch,
};

/// A handler state on a fresh demo simulator (groups of the samples, manager seeded).
pub fn memory_state() -> (State, MemoryBackend) {
    let config = Config::from_lookup(|k| (k == "JML_BACKEND").then(|| "memory".to_string())).unwrap();
    identity_sync::memory(Arc::new(identity_sync::sim::demo_identity_store()), &config).expect("memory settings")
}
