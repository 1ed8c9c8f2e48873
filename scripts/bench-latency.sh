#!/usr/bin/env bash
# The latency benchmark (issue 15): a fresh identity-sync process against moto through a local
# Lambda Runtime API stand-in, side by side with a Python + boto3 function, in one run. Builds a
# native release identity-sync (the deployed profile) unless BENCH_BINARY names one. moto listens
# on a free loopback port and is stopped by its own PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
source scripts/lib.sh

binary=${BENCH_BINARY:-}
if [ -z "$binary" ]; then
  cargo build --locked --release -q -p identity-sync
  binary="${CARGO_TARGET_DIR:-target}/release/identity-sync"
fi
# The build leaves hundreds of MB to write back: flush them first, so the disk does not compete
# with the measured runs.
sync
# A fresh venv has no bytecode yet: import boto3 once (and load the service model) so the first
# warm-up process does not compile botocore within its 30 s (seen on a clean CI run).
python -c "import boto3; boto3.client('identitystore', region_name='us-east-1')"
port=$(free_port)
start_server target/moto-bench.log python scripts/moto_jml.py "$port"
wait_ready 30 python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)"
python scripts/bench/latency.py "http://127.0.0.1:$port" "$binary" "${BENCH_PAIRS:-15}"
