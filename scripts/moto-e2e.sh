#!/usr/bin/env bash
# End-to-end tests of the real AWS adapters over HTTP against moto server (identitystore with
# the extension in scripts/moto_jml.py, DynamoDB, SQS FIFO). moto listens on a free loopback
# port and is stopped by its own PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
mkdir -p target
log=target/moto.log
python scripts/moto_jml.py "$port" > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 60); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || { echo "moto exited:"; cat "$log"; exit 1; }
  sleep 0.5
done
echo "moto $(python -c 'import moto; print(moto.__version__)') on 127.0.0.1:$port (pid $pid)"

JML_MOTO_ENDPOINT="http://127.0.0.1:$port" cargo test --locked -p jml-e2e --test e2e -- --ignored moto:: --test-threads 1
