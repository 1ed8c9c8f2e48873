//! `jml doctor`'s plain data: a check's verdict and the table it prints, and the canary's step
//! runner. The checks themselves live with what they check (each target's slice, the AWS
//! plumbing); this module names no target and no service.

use std::future::Future;

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// Not run: not configured, or an earlier step it needs failed.
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One line of the doctor's table: what was checked, the verdict, why; for a canary step, the
/// request shapes it sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub scope: String,
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub requests: Vec<String>,
}

impl Check {
    /// `Ok(detail)` passes, `Err(reason)` fails.
    pub fn of(scope: &str, name: impl Into<String>, result: Result<String, String>) -> Self {
        let (status, detail) = match result {
            Ok(d) => (Status::Pass, d),
            Err(e) => (Status::Fail, e),
        };
        Self { scope: scope.to_string(), name: name.into(), status, detail, requests: Vec::new() }
    }

    pub fn skip(scope: &str, name: impl Into<String>, why: impl Into<String>) -> Self {
        Self { scope: scope.to_string(), name: name.into(), status: Status::Skip, detail: why.into(), requests: vec![] }
    }
}

/// Prints the checks as a table (with each step's requests under it); the number that failed.
pub fn print_table(title: &str, checks: &[Check]) -> usize {
    let w = checks.iter().map(|c| c.scope.len()).max().unwrap_or(6).max(6);
    let n = checks.iter().map(|c| c.name.len()).max().unwrap_or(5).clamp(5, 60);
    println!("\n{title}\n");
    println!("{:<w$}  {:<n$}  {:<6}  detail", "target", "check", "result");
    println!("{}  {}  {}  {}", "-".repeat(w), "-".repeat(n), "-".repeat(6), "-".repeat(20));
    for c in checks {
        println!("{:<w$}  {:<n$}  {:<6}  {}", c.scope, c.name, c.status.as_str(), c.detail);
        for r in &c.requests {
            println!("{:<w$}  {:<n$}          > {r}", "", "");
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let passed = checks.iter().filter(|c| c.status == Status::Pass).count();
    println!("\n{passed} passed, {failed} failed, {} skipped", checks.len() - passed - failed);
    failed
}

/// The canary's step runner for one target: each step runs only while every earlier one passed
/// (a later step needs the identity the earlier ones made); `cleanup` steps always run. Each
/// step is recorded with the request shapes `shapes` returns after it (drained: the requests
/// that step sent).
#[allow(missing_debug_implementations)]
pub struct Canary<'a> {
    scope: &'a str,
    shapes: &'a (dyn Fn() -> Vec<String> + Send + Sync),
    pub checks: Vec<Check>,
    broken: bool,
}

impl<'a> Canary<'a> {
    pub fn new(scope: &'a str, shapes: &'a (dyn Fn() -> Vec<String> + Send + Sync)) -> Self {
        shapes();
        Self { scope, shapes, checks: Vec::new(), broken: false }
    }

    /// Whether every step so far passed.
    pub fn ok(&self) -> bool {
        !self.broken
    }

    /// Runs `step` unless an earlier one failed; `Some(value)` when it passed. `step` answers
    /// `Ok((value, detail))`, or `Err(reason)`.
    pub async fn step<T, F>(&mut self, name: &str, step: F) -> Option<T>
    where
        F: Future<Output = Result<(T, String), String>>,
    {
        if self.broken {
            self.checks.push(Check::skip(self.scope, name, "an earlier step failed"));
            return None;
        }
        self.run(name, step).await
    }

    /// Runs `step` whatever failed before (removing what the canary made).
    pub async fn cleanup<T, F>(&mut self, name: &str, step: F) -> Option<T>
    where
        F: Future<Output = Result<(T, String), String>>,
    {
        self.run(name, step).await
    }

    async fn run<T, F>(&mut self, name: &str, step: F) -> Option<T>
    where
        F: Future<Output = Result<(T, String), String>>,
    {
        let result = step.await;
        let mut check = Check::of(self.scope, name, result.as_ref().map(|(_, d)| d.clone()).map_err(Clone::clone));
        check.requests = (self.shapes)();
        self.checks.push(check);
        match result {
            Ok((v, _)) => Some(v),
            Err(_) => {
                self.broken = true;
                None
            }
        }
    }
}

/// `Ok(())` when `cond`, else `Err(reason)`: read-back assertions in canary steps.
pub fn expect(cond: bool, reason: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(reason()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn a_failed_step_skips_the_next_but_not_the_cleanup_and_each_keeps_its_requests() {
        let log = Mutex::new(Vec::<String>::new());
        let shapes = || std::mem::take(&mut *log.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let push = |s: &str| log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(s.to_string());
        push("before the canary");
        let mut c = Canary::new("example-target", &shapes);
        let id = c
            .step("create", async {
                push("POST Create");
                Ok(("id-1", "created".to_string()))
            })
            .await;
        assert_eq!(id, Some("id-1"));
        let none: Option<()> = c
            .step("update", async {
                push("POST Update");
                Err("read back: title is not Canary".to_string())
            })
            .await;
        assert_eq!(none, None);
        let skipped: Option<()> = c.step("disable", async { Ok(((), String::new())) }).await;
        assert_eq!(skipped, None);
        c.cleanup("delete", async {
            push("POST Delete");
            Ok(((), "deleted".to_string()))
        })
        .await;
        assert!(!c.ok());
        let got: Vec<(&str, Status, Vec<String>)> =
            c.checks.iter().map(|k| (k.name.as_str(), k.status, k.requests.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("create", Status::Pass, vec!["POST Create".to_string()]),
                ("update", Status::Fail, vec!["POST Update".to_string()]),
                ("disable", Status::Skip, vec![]),
                ("delete", Status::Pass, vec!["POST Delete".to_string()]),
            ]
        );
        assert_eq!(print_table("t", &c.checks), 1);
    }
}
