#!/usr/bin/env bash
# End-to-end tests of the real AWS adapters over HTTP against moto server (identitystore with
# the extension in scripts/moto_jml.py, IAM, DynamoDB, SQS FIFO). moto listens on a free loopback
# port and is stopped by its own PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

source scripts/lib.sh

port=$(free_port)
start_server target/moto.log python scripts/moto_jml.py "$port"
pid=$SERVER_PID
wait_ready 30 python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)"
echo "moto $(python -c 'import moto; print(moto.__version__)') on 127.0.0.1:$port (pid $pid)"

JML_MOTO_ENDPOINT="http://127.0.0.1:$port" cargo test --locked --workspace --test e2e -- --ignored moto --test-threads 1

# `jml doctor` as a user runs it before `sam deploy`, on moto: the read-only preflight, then the
# canary (identity-sync and iam-sync: moto has no AppStream or License Manager backend; those
# are proved on the simulators and with aws-smithy-mocks). Each prints its table; a failed
# check fails the test command. A missing group must fail the preflight.
jml="${CARGO_TARGET_DIR:-target}/debug/jml"
eval "$(python scripts/doctor-moto.py "http://127.0.0.1:$port")"
"$jml" doctor --backend aws --targets identity,iam
"$jml" doctor --backend aws --targets identity,iam --canary
if MANAGED_GROUPS="jml-all-staff,jml-no-such-group" "$jml" doctor --backend aws --targets identity >target/doctor-missing.log; then
  cat target/doctor-missing.log
  echo "FAIL: jml doctor passed with a managed group that does not exist" >&2
  exit 1
fi
grep -q "missing: jml-no-such-group" target/doctor-missing.log
echo "PASS: jml doctor exits 1 on a missing managed group and names it"
