#!/usr/bin/env bash
# Proves README "Running the function locally": identity-sync under `cargo lambda watch` with the
# memory backend answers `cargo lambda invoke --data-file` with the sample envelopes, offline.
# The watch server listens on loopback only and is stopped by its own PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

source scripts/lib.sh

port=$(free_port)
start_server target/lambda-watch.log \
  cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --env-var JML_BACKEND=memory
log=$SERVER_LOG
wait_ready 60 port_open "$port"

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
