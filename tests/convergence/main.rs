//! The lifecycle invariants of issues 11 and 12 as property tests over all four targets, in
//! their own test binary: thousands of handler runs on other threads must not race the log
//! capture tests of `e2e` for tracing's callsite cache.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod identity_manager;
mod leaver;
mod properties;
mod regressions;

/// A sample event from `events/`, as JSON.
pub fn fixture_json(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
