//! `jml replay` as a user runs it (the built binary on a directory of events): regression tests
//! of the leaver check after a superseded leaver, and of the final tables (long names ran into
//! the next column).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn sample(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A fresh directory holding `events` as 01.json, 02.json, ... (replayed in that order).
fn dir(tag: &str, events: &[Value]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jml-replay-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for (i, e) in events.iter().enumerate() {
        std::fs::write(d.join(format!("{:02}.json", i + 1)), e.to_string()).unwrap();
    }
    d
}

fn replay(d: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jml")).arg("replay").arg(d).env("RUST_LOG", "error").output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_superseded_leaver_is_not_checked_and_an_applied_one_is() {
    // joiner t1, rehire t3, then the leaver t2 arrives late: stale, the person is active
    let joiner = sample("01-joiner-ada.json");
    let mut leaver = sample("04-leaver-ada.json");
    let rehire = sample("05-rehire-ada.json");
    let (t_leaver, t_rehire) = (leaver["occurredAt"].as_str().unwrap(), rehire["occurredAt"].as_str().unwrap());
    assert!(t_leaver < t_rehire, "the samples keep HR time order");
    let d = dir("stale-leaver", &[joiner.clone(), rehire, leaver.clone()]);
    let (ok, out) = replay(&d);
    assert!(ok, "a correct state must not fail the run:\n{out}");
    assert!(!out.contains("ACCESS REMAINS"), "{out}");
    assert!(!out.contains("leaver check"), "no check after a stale leaver:\n{out}");
    // An applied leaver is checked across the inventory of all four targets
    leaver["occurredAt"] = "2026-12-01T00:00:00Z".into();
    let d = dir("applied-leaver", &[joiner, leaver]);
    let (ok, out) = replay(&d);
    assert!(ok, "{out}");
    assert!(out.contains("leaver check workday#100234: no access left in 4 target(s)"), "{out}");
}

#[test]
fn final_tables_keep_columns_apart_for_long_names() {
    let mut joiner = sample("02-joiner-alan.json");
    let long = "grace.murray.hopper.the.admiral.of.cobol@engineering.example.com";
    joiner["person"]["email"] = long.into();
    joiner["person"]["userName"] = long.into();
    joiner["person"]["directoryUserName"] = "ghopper".into();
    let d = dir("long-names", &[joiner]);
    let (ok, out) = replay(&d);
    assert!(ok, "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(long)).collect();
    assert!(!rows.is_empty(), "the long name is in a final table:\n{out}");
    for row in &rows {
        let after = &row[row.find(long).unwrap() + long.len()..];
        assert!(after.is_empty() || after.starts_with(' '), "a column runs into the name: {row:?}");
    }
    // Each table's header lines up with its rows: the column after the name starts where the
    // header's does.
    for (title, header) in [("Identity Store", "status"), ("AppStream", "first / last name"), ("IAM", "path")] {
        let table: Vec<&str> = out.lines().skip_while(|l| !l.contains(&format!("final {title}"))).skip(1).collect();
        let col = table[0].find(header).unwrap();
        let row = table.iter().find(|l| l.contains(long)).unwrap();
        assert_eq!(row[..col].trim_end().len(), row.find(long).unwrap() + long.len(), "{title}: {row:?}");
        assert_ne!(&row[col..col + 1], " ", "{title}: the next column starts under its header: {row:?}");
    }
}
