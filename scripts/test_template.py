"""Checks of template.yaml that `sam validate --lint` cannot make: it does not look inside the
resources SAM generates, so a typo in FunctionResponseTypes or an absurd BatchSize would pass.

Run by scripts/test.sh: `python -m unittest scripts/test_template.py` (needs PyYAML from the
project venv and a built `target/debug/jml`).
"""

import json
import os
import re
import subprocess
import unittest
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class Tag:
    """A CloudFormation intrinsic (!Ref, !Sub, !GetAtt, !If, ...)."""

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __repr__(self):
        return f"!{self.name} {self.value!r}"


class Loader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tag(suffix, value)


Loader.add_multi_constructor("!", _tag)

T = yaml.load(TEMPLATE.read_text(), Loader=Loader)
RES = T["Resources"]
GLOBAL_FN = T.get("Globals", {}).get("Function", {})
FUNCTIONS = {k: v for k, v in RES.items() if v["Type"] == "AWS::Serverless::Function"}
QUEUES = {k: v for k, v in RES.items() if v["Type"] == "AWS::SQS::Queue"}

# The scenario the environment check resolves: every optional part enabled.
PARAMS = {
    "IdentityStoreId": "d-1234567890",
    "DirectoryId": "d-0123456789",
    "DirectoryDomain": "corp.example.com",
    "ManagedGroups": "jml-admins",
    "EnableSubscriptions": "true",
    "EnableAppStream": "true",
    "AppStreamStacksByDepartment": '{"Finance": ["finance-desktop"], "*": ["office-apps"]}',
    "EnableIam": "true",
    "IamPermissionsBoundary": "arn:aws:iam::123456789012:policy/jml-sync-user-boundary",
    "IamGroupMap": '{"jml-engineering": ["engineers"]}',
    "ExistingEventBusName": "",
    "AlarmEmail": "ops@example.com",
    "EnableReconcile": "true",
    "SnapshotBucket": "hr-exports",
}


def param(name):
    return PARAMS.get(name, T["Parameters"].get(name, {}).get("Default", ""))


def condition(name):
    c = T["Conditions"][name]
    return evaluate(c)


def ref_value(name):
    if name in T.get("Parameters", {}):
        return param(name)
    if name.startswith("AWS::"):
        return {"AWS::NoValue": None, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}.get(name, name)
    res = RES[name]
    if res["Type"] == "AWS::SQS::Queue":
        fifo = ".fifo" if res["Properties"].get("FifoQueue") else ""
        return f"https://sqs.eu-west-2.amazonaws.com/123456789012/{name}{fifo}"
    return name


def evaluate(v):
    """Resolves the intrinsics the function environments use."""
    if not isinstance(v, Tag):
        return v
    if v.name == "Ref":
        return ref_value(v.value)
    if v.name == "GetAtt":
        # The schedule variables name ARNs (SCHEDULER_ROLE_ARN, SCHEDULE_TARGET_QUEUE_ARN,
        # SCHEDULE_DLQ_ARN): a queue's or a role's, as CloudFormation returns them.
        name, attr = v.value if isinstance(v.value, list) else v.value.split(".", 1)
        res = RES[name]
        assert attr == "Arn", f"unexpected attribute {v!r}"
        if res["Type"] == "AWS::SQS::Queue":
            fifo = ".fifo" if res["Properties"].get("FifoQueue") else ""
            return f"arn:aws:sqs:eu-west-2:123456789012:{name}{fifo}"
        if res["Type"] == "AWS::IAM::Role":
            return f"arn:aws:iam::123456789012:role/{name}"
        raise AssertionError(f"unexpected intrinsic {v!r}")
    if v.name == "Sub":
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: str(ref_value(m.group(1))), v.value)
    if v.name == "If":
        cond, yes, no = v.value
        return evaluate(yes) if condition(cond) else evaluate(no)
    if v.name == "Join":
        sep, items = v.value
        return sep.join(str(x) for x in (evaluate(i) for i in items) if x is not None)
    if v.name == "Equals":
        a, b = (evaluate(x) for x in v.value)
        return a == b
    if v.name == "Not":
        return not evaluate(v.value[0])
    raise AssertionError(f"unexpected intrinsic {v!r}")


def workspace_binaries():
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return {t["name"] for p in json.loads(out)["packages"] for t in p["targets"] if "bin" in t["kind"]}


def sqs_events(fn):
    return {k: e for k, e in fn["Properties"].get("Events", {}).items() if e["Type"] == "SQS"}


def statements(fn):
    for policy in fn["Properties"].get("Policies", []):
        for st in policy.get("Statement", []):
            yield st


def as_list(v):
    return v if isinstance(v, list) else [v]


# Grants with no call of their own in a function's code, each with why. (The ledger's
# TransactWriteItems is authorised item by item: `jml operations` already lists PutItem, UpdateItem
# and ConditionCheckItem for it. Lambda's SQS poller, logs and X-Ray permissions are SAM's own
# managed policies, not in these statements.)
GRANTED_WITHOUT_A_CALL = {}


def jml_operations():
    """{binary: [IAM actions its calls need]}: `jml operations`, from the slices' op lists."""
    jml = ROOT / "target" / "debug" / "jml"
    out = subprocess.run([str(jml), "operations"], capture_output=True, text=True, check=True).stdout
    return {f: set(a) for f, a in json.loads(out).items()}


def granted_actions(fn):
    return {a for st in statements(fn) if st.get("Effect") == "Allow" for a in as_list(st["Action"])}


def role_drift(needed, fn):
    """(actions the function sends that its role does not grant, granted actions it never sends)."""
    granted = granted_actions(fn)
    return sorted(needed - granted), sorted(granted - needed - set(GRANTED_WITHOUT_A_CALL))


class TemplateTest(unittest.TestCase):
    def test_every_role_grants_exactly_what_its_function_sends(self):
        # Least privilege both ways: a missing grant is AccessDenied on AWS (moto enforces no
        # policy), an unused one is privilege nobody needs.
        ops = jml_operations()
        binaries = {fn["Metadata"]["BuildProperties"]["Binary"]: name for name, fn in FUNCTIONS.items()}
        self.assertEqual(set(ops), set(binaries), "jml operations and the template name the same functions")
        for binary, name in binaries.items():
            missing, unused = role_drift(ops[binary], FUNCTIONS[name])
            self.assertEqual(missing, [], f"{name} ({binary}) sends these, its role does not grant them")
            self.assertEqual(unused, [], f"{name} ({binary}) is granted these and never sends them")

    def test_the_role_check_catches_a_missing_and_an_unused_grant(self):
        import copy
        needed = jml_operations()["iam-sync"]
        fn = copy.deepcopy(FUNCTIONS["IamSyncFunction"])
        read = next(s for s in statements(fn) if s["Sid"] == "ReadAnyUserToRefuseHijacks")
        read["Action"] = [a for a in read["Action"] if a != "iam:GetLoginProfile"] + ["iam:CreateAccessKey"]
        self.assertEqual(role_drift(needed, fn), (["iam:GetLoginProfile"], ["iam:CreateAccessKey"]))

    def test_iam_sync_joins_only_groups_under_the_group_path_and_leaves_any(self):
        sts = list(statements(FUNCTIONS["IamSyncFunction"]))
        joins = [s for s in sts if "iam:AddUserToGroup" in as_list(s["Action"])]
        self.assertEqual(len(joins), 1)
        self.assertEqual(as_list(joins[0]["Action"]), ["iam:AddUserToGroup"], "alone: nothing else on managed groups")
        self.assertEqual(joins[0]["Resource"].value, "arn:${AWS::Partition}:iam::${AWS::AccountId}:group${IamGroupPath}*")
        self.assertNotEqual(param("IamGroupPath"), "/", "the default path scopes joins to jml-sync's groups")
        leaves = [s for s in sts if "iam:RemoveUserFromGroup" in as_list(s["Action"])]
        self.assertEqual(leaves[0]["Resource"].value, "arn:${AWS::Partition}:iam::${AWS::AccountId}:group/*")
        env = FUNCTIONS["IamSyncFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(evaluate(env["IAM_GROUP_PATH"]), param("IamGroupPath"))

    def test_the_role_arns_output_names_every_function(self):
        value = T["Outputs"]["RoleArns"]["Value"]
        text = repr(value)
        for name, fn in FUNCTIONS.items():
            binary = fn["Metadata"]["BuildProperties"]["Binary"]
            self.assertIn(f"{binary}=${{{name}Role.Arn}}", text, name)

    def test_every_sqs_event_source_reports_batch_item_failures_with_a_sane_batch(self):
        seen = 0
        for name, fn in FUNCTIONS.items():
            for ev_name, ev in sqs_events(fn).items():
                seen += 1
                p = ev["Properties"]
                self.assertEqual(p.get("FunctionResponseTypes"), ["ReportBatchItemFailures"], f"{name}.{ev_name}")
                self.assertTrue(1 <= p.get("BatchSize", 10) <= 10, f"{name}.{ev_name}: BatchSize")
                queue = p["Queue"].value[0] if isinstance(p["Queue"].value, list) else p["Queue"].value.split(".")[0]
                if QUEUES[queue]["Properties"].get("FifoQueue"):
                    mc = p.get("ScalingConfig", {}).get("MaximumConcurrency")
                    self.assertTrue(mc is not None and 2 <= mc <= 5, f"{name}.{ev_name}: MaximumConcurrency bounded (quota)")
        self.assertGreaterEqual(seen, 5)

    def test_every_queue_has_a_dead_letter_queue_or_is_one(self):
        dlqs = set()
        for q in QUEUES.values():
            rp = q["Properties"].get("RedrivePolicy")
            if rp:
                dlqs.add(rp["deadLetterTargetArn"].value[0] if isinstance(rp["deadLetterTargetArn"].value, list)
                         else rp["deadLetterTargetArn"].value.split(".")[0])
        text = TEMPLATE.read_text()
        for name, q in QUEUES.items():
            self.assertTrue(q["Properties"].get("SqsManagedSseEnabled") or q["Properties"].get("KmsMasterKeyId"), f"{name}: encrypted")
            if "RedrivePolicy" in q["Properties"]:
                continue
            # A redrive target, a dead-letter or on-failure destination, or the schedules' DLQ
            # (SCHEDULE_DLQ_ARN: each schedule's DeadLetterConfig, set by the functions).
            used_as_dlq = name in dlqs or re.search(rf"(Arn|Destination|SCHEDULE_DLQ_ARN): !GetAtt {name}\.Arn", text)
            self.assertTrue(used_as_dlq, f"{name} has no DLQ and is no DLQ")
        for name, q in QUEUES.items():
            if name in dlqs:
                self.assertEqual(bool(q["Properties"].get("FifoQueue")), bool(
                    next(v for v in QUEUES.values() if v["Properties"].get("RedrivePolicy")
                         and name in repr(v["Properties"]["RedrivePolicy"]))["Properties"].get("FifoQueue")),
                    f"{name}: a DLQ has its source's FIFO type")

    def test_every_function_has_an_on_failure_destination_on_a_standard_queue(self):
        # Any function can be invoked asynchronously (EventBridge, an operator): after Lambda's
        # retries nothing may be dropped, and Lambda destinations cannot be FIFO queues.
        for name, fn in FUNCTIONS.items():
            cfg = fn["Properties"].get("EventInvokeConfig")
            self.assertIsNotNone(cfg, f"{name}: no EventInvokeConfig")
            dest = cfg["DestinationConfig"]["OnFailure"]
            self.assertEqual(dest["Type"], "SQS", name)
            queue = dest["Destination"].value[0] if isinstance(dest["Destination"].value, list) else dest["Destination"].value.split(".")[0]
            self.assertIn(queue, QUEUES, name)
            self.assertFalse(QUEUES[queue]["Properties"].get("FifoQueue"), f"{name}: {queue} must be a standard queue")
            self.assertLessEqual(cfg.get("MaximumRetryAttempts", 2), 2, name)

    def test_every_function_is_arm64_al2023_cargolambda_with_a_binary_of_the_workspace(self):
        bins = workspace_binaries()
        for name, fn in FUNCTIONS.items():
            p = {**GLOBAL_FN, **fn["Properties"]}
            self.assertEqual(p.get("Architectures"), ["arm64"], name)
            self.assertEqual(p.get("Runtime"), "provided.al2023", name)
            self.assertEqual(p.get("Handler"), "bootstrap", name)
            meta = fn.get("Metadata", {})
            self.assertEqual(meta.get("BuildMethod"), "rust-cargolambda", name)
            self.assertIn(meta.get("BuildProperties", {}).get("Binary"), bins, f"{name}: Binary not in the workspace")
        self.assertEqual({f["Metadata"]["BuildProperties"]["Binary"] for f in FUNCTIONS.values()},
                         {"hr-ingest", "identity-sync", "subscription-sync", "appstream-sync", "iam-sync", "reconcile"})

    def test_no_wildcard_action_and_resource_star_only_with_a_reason(self):
        for name, fn in FUNCTIONS.items():
            for st in statements(fn):
                for action in as_list(st["Action"]):
                    self.assertNotEqual(action, "*", name)
                    self.assertFalse(str(action).endswith(":*"), f"{name}: {action}")
        lines = TEMPLATE.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.search(r'Resource:\s*"\*"', line):
                prev = next(l for l in reversed(lines[:i]) if l.strip())
                self.assertTrue(prev.strip().startswith("#"), f"line {i + 1}: Resource \"*\" needs a comment saying why")

    def test_every_function_environment_passes_its_own_start_up_check(self):
        # Every variable the core or a target's settings section reads.
        sources = [ROOT / "shared/core/src/config.rs", *sorted(ROOT.glob("functions/*/src/settings.rs"))]
        known = {v for p in sources for v in re.findall(r'(?:get|var)\("([A-Z_]+)"\)', p.read_text())}
        jml = ROOT / "target" / "debug" / "jml"
        self.assertTrue(jml.exists(), "build the workspace first (cargo build)")
        for name, fn in FUNCTIONS.items():
            env = {k: evaluate(v) for k, v in fn["Properties"]["Environment"]["Variables"].items()}
            env = {k: str(v) for k, v in env.items() if v is not None}
            unknown = set(env) - known
            self.assertFalse(unknown, f"{name} sets variables no code reads: {unknown}")
            binary = fn["Metadata"]["BuildProperties"]["Binary"]
            run = subprocess.run([str(jml), "check-config", binary], env={"PATH": os.environ["PATH"], **env},
                                 capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, f"{name}: {run.stderr.strip()}")

    def test_alarms_watch_every_dlq_and_every_function(self):
        alarms = [r for r in RES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
        watched = repr([a["Properties"]["Dimensions"] for a in alarms])
        for name, q in QUEUES.items():
            if "RedrivePolicy" not in q["Properties"]:
                self.assertIn(f"'{name}.QueueName'", watched, f"no alarm on DLQ {name}")
        for name in FUNCTIONS:
            metrics = {a["Properties"]["MetricName"] for a in alarms if f"'{name}'" in repr(a["Properties"]["Dimensions"])}
            self.assertEqual(metrics, {"Errors", "Throttles"}, name)


if __name__ == "__main__":
    unittest.main()


class TargetsTest(unittest.TestCase):
    def test_each_target_schedules_its_dated_changes_in_the_group_to_its_own_queue(self):
        # EventBridge Scheduler: a FIFO target needs content-based deduplication, a DLQ must be a
        # standard queue; the functions may create and delete schedules in the group only and
        # pass the scheduler's role only; that role may send to the target queues and the DLQ only.
        targets = {"IdentitySyncFunction": "IdentityQueue", "SubscriptionSyncFunction": "SubscriptionsQueue",
                   "AppStreamSyncFunction": "AppStreamQueue", "IamSyncFunction": "IamQueue"}
        for fn_name, queue in targets.items():
            self.assertTrue(QUEUES[queue]["Properties"].get("ContentBasedDeduplication"), queue)
            env = FUNCTIONS[fn_name]["Properties"]["Environment"]["Variables"]
            self.assertEqual(repr(env["SCHEDULE_TARGET_QUEUE_ARN"]), repr(Tag("GetAtt", f"{queue}.Arn")), fn_name)
            self.assertEqual(repr(env["SCHEDULE_DLQ_ARN"]), repr(Tag("GetAtt", "ScheduleDeadLetterQueue.Arn")), fn_name)
            self.assertEqual(repr(env["SCHEDULE_GROUP"]), repr(Tag("Ref", "ScheduleGroup")), fn_name)
            sts = {s["Sid"]: s for s in statements(FUNCTIONS[fn_name])}
            self.assertEqual(sts["ScheduleDatedChanges"]["Resource"].value,
                             "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*")
            self.assertEqual(repr(sts["PassTheSchedulerRole"]["Resource"]), repr(Tag("GetAtt", "SchedulerRole.Arn")))
        self.assertFalse(QUEUES["ScheduleDeadLetterQueue"]["Properties"].get("FifoQueue"))
        role = RES["SchedulerRole"]["Properties"]
        trust = role["AssumeRolePolicyDocument"]["Statement"]
        self.assertEqual([t["Principal"]["Service"] for t in trust], ["scheduler.amazonaws.com"])
        self.assertTrue(all("aws:SourceAccount" in t["Condition"]["StringEquals"] for t in trust))
        granted = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
        self.assertEqual({a for s in granted for a in as_list(s["Action"])}, {"sqs:SendMessage"})
        resources = repr([r for s in granted for r in as_list(s["Resource"])])
        for queue in [*targets.values(), "ScheduleDeadLetterQueue"]:
            self.assertIn(f"{queue}.Arn", resources)
        self.assertEqual(len(granted[0]["Resource"]), 5, "the four target queues and the schedules' DLQ, nothing else")

    def test_hr_ingest_fans_out_to_every_enabled_target_and_may_send_to_each(self):
        env = FUNCTIONS["HrIngestFunction"]["Properties"]["Environment"]["Variables"]
        names = [part.split("=")[0] for part in evaluate(env["TARGET_QUEUES"]).split(",")]
        self.assertEqual(names, ["identity", "subscriptions", "appstream", "iam"])
        send = next(s for s in statements(FUNCTIONS["HrIngestFunction"]) if s["Sid"] == "FanOutToTargetQueues")
        self.assertEqual(len(send["Resource"]), 5, "every target queue and the ingest DLQ")

    def test_optional_targets_are_whole_under_their_condition(self):
        for cond, prefix in [("SubscriptionsEnabled", "Subscription"), ("AppStreamEnabled", "AppStream"), ("IamEnabled", "Iam")]:
            parts = [k for k in RES if k.startswith(prefix)]
            self.assertGreaterEqual(len(parts), 5, prefix)
            for k in parts:
                self.assertEqual(RES[k].get("Condition"), cond, f"{k} must be conditional on {cond}")

    def test_leavers_that_revoke_nothing_alarm_for_the_whole_deployment(self):
        # The functions emit StaleLeavers and UnknownPersonLeavers once per target and once without
        # dimensions (shared/core/src/metrics.rs): one alarm each watches the dimensionless series.
        for name, metric in [("UnknownPersonLeaversAlarm", "UnknownPersonLeavers"), ("StaleLeaversAlarm", "StaleLeavers")]:
            p = RES[name]["Properties"]
            self.assertEqual((p["MetricName"], p["Dimensions"], p["Namespace"]), (metric, [], "jml-sync"), name)
            self.assertTrue(p["AlarmActions"], name)
            self.assertIsNone(RES[name].get("Condition"), f"{name} is on in every deployment")

    def test_reconcile_is_off_by_default_scheduled_and_reads_every_enabled_target(self):
        self.assertEqual(T["Parameters"]["EnableReconcile"]["Default"], "false")
        self.assertEqual(T["Parameters"]["ReconcileMode"]["Default"], "report")
        parts = [k for k in RES if k.startswith("Reconcile") or k in ("LeaverStillActiveAlarm", "LeaverOverdueAlarm", "ListedAfterLeavingAlarm", "OverdueTransitionsAlarm", "SnapshotRefusedAlarm", "CorrectionsHeldAlarm")]
        self.assertGreaterEqual(len(parts), 7)
        for k in parts:
            self.assertEqual(RES[k].get("Condition"), "ReconcileEnabled", k)
        fn = FUNCTIONS["ReconcileFunction"]
        env = fn["Properties"]["Environment"]["Variables"]
        self.assertEqual(evaluate(env["RECONCILE_TARGETS"]), "identity,subscriptions,appstream,iam")
        self.assertEqual(fn["Properties"]["Events"]["Daily"]["Type"], "ScheduleV2")
        actions = {a for s in statements(fn) for a in as_list(s["Action"])}
        for needed in ["s3:GetObject", "identitystore:ListUsers", "identitystore:ListGroupMemberships",
                       "appstream:DescribeUsers", "appstream:DescribeUserStackAssociations",
                       "iam:GetAccountAuthorizationDetails", "license-manager-user-subscriptions:ListUserAssociations",
                       "license-manager-user-subscriptions:ListProductSubscriptions", "dynamodb:Scan"]:
            self.assertIn(needed, actions)
        own_dlq = [s for s in statements(fn) if s.get("Sid") == "ClearSupersededFailedRuns"]
        self.assertEqual(len(own_dlq), 1)
        self.assertEqual(repr(own_dlq[0]["Resource"]), repr(RES["ReconcileFunction"]["Properties"]["EventInvokeConfig"]
                                                             ["DestinationConfig"]["OnFailure"]["Destination"]),
                         "it may delete messages of its own DLQ only")
        target_actions = {a for s in statements(fn) if s.get("Sid") != "ClearSupersededFailedRuns" for a in as_list(s["Action"])}
        writes = [a for a in target_actions if re.search(r":(Create|Update|Delete|Put|Tag|Untag|Start|Stop|Associate|Disassociate|Batch)", a)]
        self.assertEqual(writes, [], "reconcile only reads; corrections go through the inbound queue")
        alarm = RES["LeaverStillActiveAlarm"]["Properties"]
        self.assertEqual((alarm["MetricName"], alarm["Dimensions"][0]["Value"]), ("Drift", "leaver-still-active"))

    def test_iam_sync_can_only_create_users_with_the_boundary_under_its_path(self):
        sts = {s["Sid"]: s for s in statements(FUNCTIONS["IamSyncFunction"])}
        create = sts["CreateOnlyWithTheBoundary"]
        self.assertIn("iam:CreateUser", create["Action"])
        self.assertEqual(repr(create["Condition"]["StringEquals"]["iam:PermissionsBoundary"]), "!Ref 'IamPermissionsBoundary'")
        self.assertIn("${IamPathPrefix}", create["Resource"].value)
        granted = {a for s in sts.values() for a in as_list(s["Action"])}
        for never in ["iam:CreateLoginProfile", "iam:CreateAccessKey", "iam:DeleteUser", "iam:AttachUserPolicy",
                      "iam:PutUserPolicy", "iam:DeleteUserPermissionsBoundary"]:
            self.assertNotIn(never, granted)
