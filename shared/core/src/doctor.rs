//! `jml doctor`'s plain data: a check's verdict and the table it prints, and the canary's step
//! runner. The checks themselves live with what they check (each target's slice, the AWS
//! plumbing); this module names no target (the IAM action names of operations are the services' own).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use crate::ports::Op;

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

/// The IAM actions that authorise one operation (`service:Operation`, the service prefix being
/// the `Op`'s service), with the two exceptions the services document: a TransactWriteItems is
/// authorised item by item (the ledger's transactions hold Puts, Updates and ConditionChecks),
/// and SendMessageBatch is authorised as SendMessage.
/// (DynamoDB Developer Guide, "Using IAM with DynamoDB transactions": Put, Update, Delete and Get
/// are governed by PutItem, UpdateItem, DeleteItem, GetItem; ConditionCheck by
/// dynamodb:ConditionCheckItem. SQS API Reference: a batch action's permission is its single
/// action's.)
pub fn iam_actions(op: Op) -> Vec<String> {
    match (op.service, op.api) {
        ("dynamodb", "TransactWriteItems") => {
            ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"].map(String::from).to_vec()
        }
        ("sqs", "SendMessageBatch") => vec!["sqs:SendMessage".to_string()],
        // A schedule names the role EventBridge Scheduler assumes to send its message: the caller
        // must be allowed to pass that role (EventBridge Scheduler User Guide, "Set up the
        // execution role").
        ("scheduler", "CreateSchedule") => ["scheduler:CreateSchedule", "iam:PassRole"].map(String::from).to_vec(),
        (service, api) => vec![format!("{service}:{api}")],
    }
}

/// Every IAM action a list of operations needs, once each, sorted.
pub fn required_actions(ops: &[Op]) -> Vec<String> {
    ops.iter().flat_map(|op| iam_actions(*op)).collect::<BTreeSet<_>>().into_iter().collect()
}

/// One question to the IAM policy simulator: may the role send `action` on `resource` (an ARN,
/// or `*` for actions without resource-level permissions), with these condition keys?
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Probe {
    pub action: String,
    pub resource: String,
    /// Condition keys and values the call carries (e.g. `iam:PermissionsBoundary`).
    pub context: Context,
}

impl Probe {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self { action: action.into(), resource: resource.into(), context: Vec::new() }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context.push((key.to_string(), value.to_string()));
        self
    }
}

/// The simulator's answer for one probe: `allowed`, `implicitDeny` or `explicitDeny`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Simulated {
    pub probe: Probe,
    pub decision: String,
}

/// Condition keys and their values, as a probe carries them.
pub type Context = Vec<(String, String)>;

/// One simulator request: a resource, the context, every action asked on it.
pub type Batch = (String, Context, Vec<String>);

/// The probes as the simulator takes them: one request per resource and context (each request
/// evaluates every action it names on its one resource), in a stable order.
pub fn probe_batches(probes: &[Probe]) -> Vec<Batch> {
    let mut by: BTreeMap<(String, Context), BTreeSet<String>> = BTreeMap::new();
    for p in probes {
        by.entry((p.resource.clone(), p.context.clone())).or_default().insert(p.action.clone());
    }
    by.into_iter().map(|((resource, context), actions)| (resource, context, actions.into_iter().collect())).collect()
}

/// The doctor's verdict on one function's deployed role: one failure per probe the simulator did
/// not allow (naming the function, the action and the resource), or one pass; a simulation that
/// could not run fails as a whole. A probe with no answer fails too: silence is not a grant.
pub fn role_checks(
    function: &str,
    role_arn: &str,
    probes: &[Probe],
    answers: Result<Vec<Simulated>, String>,
) -> Vec<Check> {
    let name = "role allows what the function sends (SimulatePrincipalPolicy)";
    let answers = match answers {
        Ok(a) => a,
        Err(e) => return vec![Check::of(function, name, Err(format!("{role_arn}: {e}")))],
    };
    let mut out = Vec::new();
    for p in probes {
        let decision = answers
            .iter()
            .find(|a| a.probe.action == p.action && a.probe.resource == p.resource && a.probe.context == p.context)
            .map_or("no answer", |a| a.decision.as_str());
        if decision != "allowed" {
            out.push(Check::of(
                function,
                format!("role denies {}", p.action),
                Err(format!("{} on {}: {decision} ({role_arn})", p.action, p.resource)),
            ));
        }
    }
    if out.is_empty() {
        let actions = probes.iter().map(|p| p.action.as_str()).collect::<BTreeSet<_>>().len();
        out.push(Check::of(function, name, Ok(format!("all {actions} action(s) allowed for {role_arn}"))));
    }
    out
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

    #[test]
    fn an_operation_needs_its_own_action_but_a_transaction_and_a_batch_as_documented() {
        use crate::ports::op;
        assert_eq!(iam_actions(op::LEDGER_READ), vec!["dynamodb:GetItem"]);
        assert_eq!(iam_actions(Op::read("iam", "GetLoginProfile")), vec!["iam:GetLoginProfile"]);
        // Two labels of one operation are one action.
        let by_name = Op::read("identitystore", "GetUserId").labelled("GetUserId(userName)");
        let by_id = Op::read("identitystore", "GetUserId").labelled("GetUserId(ExternalId)");
        assert_eq!(required_actions(&[by_name, by_id]), vec!["identitystore:GetUserId"]);
        assert_eq!(
            iam_actions(op::LEDGER_WRITE),
            vec!["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"]
        );
        assert_eq!(iam_actions(op::SEND_MESSAGE_BATCH), vec!["sqs:SendMessage"]);
        assert_eq!(iam_actions(op::CREATE_SCHEDULE), vec!["scheduler:CreateSchedule", "iam:PassRole"]);
        assert_eq!(iam_actions(op::DELETE_SCHEDULE), vec!["scheduler:DeleteSchedule"]);
        for o in op::TARGET_FUNCTION {
            assert!(iam_actions(*o).iter().all(|a| !a.contains("Transact") && !a.ends_with("Batch")), "{o}");
        }
    }

    fn probe() -> impl proptest::strategy::Strategy<Value = Probe> {
        use proptest::prelude::*;
        (0..4usize, 0..3usize, proptest::option::of(0..2usize)).prop_map(|(a, r, c)| {
            let p = Probe::new(format!("svc:Action{a}"), format!("arn:aws:svc:::res/{r}"));
            match c {
                Some(c) => p.with("svc:Key", &format!("v{c}")),
                None => p,
            }
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("JML_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
        ))]

        /// Each probe is asked exactly once, in the one request of its resource and context.
        #[test]
        fn every_probe_is_asked_once_in_the_request_of_its_resource_and_context(
            probes in proptest::collection::vec(probe(), 0..20),
        ) {
            let batches = probe_batches(&probes);
            let asked: Vec<Probe> = batches
                .iter()
                .flat_map(|(r, c, actions)| actions.iter().map(|a| Probe { action: a.clone(), resource: r.clone(), context: c.clone() }))
                .collect();
            let unique: BTreeSet<Probe> = probes.iter().cloned().collect();
            proptest::prop_assert_eq!(asked.len(), unique.len());
            proptest::prop_assert_eq!(asked.into_iter().collect::<BTreeSet<_>>(), unique);
            let keys: BTreeSet<_> = batches.iter().map(|(r, c, _)| (r.clone(), c.clone())).collect();
            proptest::prop_assert_eq!(keys.len(), batches.len());
        }

        /// The role check fails exactly the probes the simulator did not answer `allowed` (an
        /// unanswered probe included), each naming its action and resource; none: one pass.
        #[test]
        fn the_role_check_fails_exactly_the_probes_not_allowed(
            probes in proptest::collection::btree_set(probe(), 1..12),
            decisions in proptest::collection::vec(0..4usize, 12),
        ) {
            let probes: Vec<Probe> = probes.into_iter().collect();
            let answers: Vec<Simulated> = probes
                .iter()
                .zip(&decisions)
                .filter(|(_, d)| **d != 3)
                .map(|(p, d)| Simulated { probe: p.clone(), decision: ["allowed", "implicitDeny", "explicitDeny"][*d].to_string() })
                .collect();
            let denied: Vec<&Probe> = probes.iter().zip(&decisions).filter(|(_, d)| **d != 0).map(|(p, _)| p).collect();
            let checks = role_checks("fn", "arn:aws:iam::123456789012:role/r", &probes, Ok(answers));
            let failed: Vec<&Check> = checks.iter().filter(|c| c.status == Status::Fail).collect();
            proptest::prop_assert_eq!(failed.len(), denied.len());
            for (c, p) in failed.iter().zip(&denied) {
                proptest::prop_assert!(c.scope == "fn" && c.detail.contains(&p.action) && c.detail.contains(&p.resource));
            }
            proptest::prop_assert_eq!(checks.len(), denied.len().max(1));
        }
    }

    #[test]
    fn a_simulation_that_cannot_run_fails_the_function() {
        let checks = role_checks("fn", "arn", &[Probe::new("a:B", "*")], Err("AccessDenied".into()));
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].detail.contains("AccessDenied"));
    }
}
