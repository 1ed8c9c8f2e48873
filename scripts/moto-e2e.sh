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
