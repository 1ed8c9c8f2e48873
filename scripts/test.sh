#!/usr/bin/env bash
# The project's whole test command (README "Quick start", called by .ci/run).
# Formatting, lints, every test in the workspace, then the main job and the call-count benchmark
# on the embedded simulator (both exit non-zero when they fail their own checks).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# A clean CI build gains nothing from incremental compilation's caches, only their cost.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

step() { printf '\n==> [%ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "one slice per target: each function links only its own SDK (cargo tree), shared code names no target"
./scripts/check-slices.sh

step "cargo test (unit, adapter, planner, end-to-end, property; also builds every function's debug binary, which the smoke runs)"
cargo test --workspace --locked

# The jml binary the tests built (same features: a `cargo run` would build it again without the
# test-only features of the SDK crates).
jml="${CARGO_TARGET_DIR:-target}/debug/jml"

step "main job on the embedded simulator: jml replay events/"
"$jml" replay events/ > target/replay.txt
grep -q "ada.lovelace" target/replay.txt
grep -q "leaver check workday#100234: no access left in 4 target(s)" target/replay.txt

step "reconciliation demo: drift in every target (exit 3), then --apply converges to no drift"
demo=(reconcile --backend memory --replay events/ --as-of 2026-12-01T00:00:00Z --max-missing 0.5 events/hr-snapshot.jsonl)
set +e; "$jml" "${demo[@]}" > target/reconcile.txt 2>&1; rc=$?; set -e
[ "$rc" = 3 ] || { cat target/reconcile.txt; echo "expected exit 3, got $rc"; exit 1; }
for t in identity-store user-subscriptions appstream-user-pool iam-users; do grep -q "^$t: [1-9]" target/reconcile.txt; done
# Still exit 3 after the corrections: the sample's bad line 4 is bad input until HR fixes it.
set +e; "$jml" "${demo[@]}" --apply > target/reconcile-apply.txt 2>&1; rc=$?; set -e
[ "$rc" = 3 ] || { cat target/reconcile-apply.txt; echo "expected exit 3 (bad line 4), got $rc"; exit 1; }
grep -q "after --apply: 0 drift(s)" target/reconcile-apply.txt

step "template.yaml: sam validate --lint, and the checks it cannot make (scripts/test_template.py)"
source scripts/tools.sh
AWS_DEFAULT_REGION=eu-west-2 SAM_CLI_TELEMETRY=0 sam validate --lint --template template.yaml
python -m unittest -v scripts/test_template.py

step "API calls per event type (targets checked by the bench itself)"
"$jml" bench

step "bulk onboarding under the 20 requests/s quota on virtual time (2,000 joiners; README has the 10,000 run)"
"$jml" bench-scale --joiners 2000

step "reconciling every target at scale on virtual time (2,000 people, 30 groups; README has the 10,000 run)"
"$jml" bench-reconcile --people 2000

step "every function under cargo lambda watch (memory backend) answers cargo lambda invoke"
./scripts/lambda-smoke.sh

step "real AWS adapters against moto server (Identity Store + extension, IAM + extension, DynamoDB ledger, SQS FIFO DLQ)"
./scripts/moto-e2e.sh

# The latency benchmark builds a second, native release identity-sync (about 150 s on 2 cores
# from clean): CI's 15-minute budget cannot hold it next to the six arm64 release builds, so a
# CI run skips it unless JML_BENCH_LATENCY=1; a local run of this script always runs it.
if [ "${CI:-}" != true ] || [ -n "${JML_BENCH_LATENCY:-}" ]; then
  step "latency: a fresh identity-sync process vs a Python + boto3 function, one joiner each, against moto (targets checked by the bench)"
  ./scripts/bench-latency.sh
else
  step "latency benchmark skipped on CI (JML_BENCH_LATENCY=1 runs it; README has the last measured run)"
fi

# The arm64 release build with the shipped profile (fat LTO, one codegen unit: each binary's link
# optimises its whole program alone). reconcile links every target's slice and SDK and S3, and
# hr-ingest the rest, so those two cross-compile every crate of every function; the other four
# bins are their init-only main.rs, built natively by the test step. CI builds those two (the
# six took 531 s of a 961 s clean run); JML_FULL_RELEASE=1, or any run off CI, builds all six.
if [ "${CI:-}" != true ] || [ -n "${JML_FULL_RELEASE:-}" ]; then
  step "release build of every function with cargo lambda (arm64), bootstrap and zip sizes"
  ./scripts/build-lambdas.sh
else
  step "release build (arm64) of reconcile and hr-ingest, which between them compile every crate of every function"
  ./scripts/build-lambdas.sh reconcile hr-ingest
fi

printf '\n==> all steps passed in %ss\n' "$(( $(date +%s) - start ))"
