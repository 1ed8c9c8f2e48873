#!/usr/bin/env bash
# Proves README "Running the function locally": identity-sync under `cargo lambda watch` with the
# memory backend answers `cargo lambda invoke --data-file` with the sample envelopes, offline.
# The watch server listens on loopback only and is stopped by its own PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log=target/lambda-watch.log
mkdir -p target
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --env-var JML_BACKEND=memory > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 120); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || { echo "cargo lambda watch exited:"; cat "$log"; exit 1; }
  sleep 1
done

invoke() {
  timeout 300 cargo lambda invoke identity-sync --invoke-address 127.0.0.1 --invoke-port "$port" --data-file "$1"
}

out=$(invoke events/lambda/sqs-batch.json)
echo "sqs-batch.json -> $out"
[ "$out" = '{"batchItemFailures":[]}' ] || { echo "unexpected response"; cat "$log"; exit 1; }

out=$(invoke events/lambda/eventbridge-leaver.json)
echo "eventbridge-leaver.json -> $out"
case "$out" in
  *'"decision":"disable"'*'"status":"applied"'*) ;;
  *) echo "unexpected response"; cat "$log"; exit 1 ;;
esac
echo "cargo lambda watch/invoke on the memory backend: ok"
