#!/usr/bin/env bash
# Proves README "Running the functions locally": hr-ingest, the four target functions and reconcile,
# each a Lambda runtime process on the memory backend, answer `cargo lambda invoke --data-file`
# with the sample envelopes through cargo lambda's own Lambda emulator, offline.
#
# The emulator runs as `cargo lambda watch --only-lambda-apis`, and each function is the debug
# binary `cargo test` already built (the same code; a plain `cargo lambda watch` compiles every
# function again with each package's own feature set: about 150 s of a clean CI run). Each process
# gets the environment watch would give it (AWS_LAMBDA_RUNTIME_API=<emulator>/.rt/<function>, as
# read off the processes watch starts). Everything listens on loopback only and is stopped by its
# own PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

source scripts/lib.sh

bin_dir="${CARGO_TARGET_DIR:-target}/debug"
functions=(hr-ingest identity-sync subscription-sync appstream-sync iam-sync reconcile)
for fn in "${functions[@]}"; do
  [ -x "$bin_dir/$fn" ] || { echo "missing $bin_dir/$fn: run cargo test --workspace first"; exit 1; }
done

port=$(free_port)
start_server target/lambda-watch.log \
  cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$port"
log=$SERVER_LOG
wait_ready 60 port_open "$port"

: > target/lambda-functions.log
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop_all EXIT
for fn in "${functions[@]}"; do
  env JML_BACKEND=memory \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/$fn" AWS_LAMBDA_FUNCTION_NAME="$fn" \
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 AWS_LAMBDA_FUNCTION_VERSION='$LATEST' \
    AWS_LAMBDA_LOG_STREAM_NAME=smoke AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/$fn" \
    "$bin_dir/$fn" >> target/lambda-functions.log 2>&1 &
  pids+=($!)
done

invoke() {
  timeout 300 cargo lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$port" --data-file "$2"
}

out=$(invoke identity-sync events/lambda/sqs-batch.json)
echo "sqs-batch.json -> $out"
[ "$out" = '{"batchItemFailures":[]}' ] || { echo "unexpected response"; cat "$log" target/lambda-functions.log; exit 1; }

out=$(invoke identity-sync events/lambda/eventbridge-leaver.json)
echo "eventbridge-leaver.json -> $out"
# (Key order is serde_json's: the test build's feature set keeps insertion order.)
if [[ "$out" != *'"decision":"disable"'* || "$out" != *'"status":"applied"'* ]]; then
  echo "unexpected response"; cat "$log" target/lambda-functions.log; exit 1
fi
out=$(invoke subscription-sync events/lambda/sqs-batch.json)
echo "subscription-sync sqs-batch.json -> $out"
[ "$out" = '{"batchItemFailures":[]}' ] || { echo "unexpected response"; cat "$log" target/lambda-functions.log; exit 1; }

out=$(invoke subscription-sync events/lambda/eventbridge-leaver.json)
echo "subscription-sync eventbridge-leaver.json -> $out"
if [[ "$out" != *'"decision":"disable"'* || "$out" != *'StopProductSubscription VISUAL_STUDIO_PROFESSIONAL'* ]]; then
  echo "unexpected response"; cat "$log" target/lambda-functions.log; exit 1
fi
for fn in appstream-sync iam-sync; do
  out=$(invoke $fn events/lambda/sqs-batch.json)
  echo "$fn sqs-batch.json -> $out"
  [ "$out" = '{"batchItemFailures":[]}' ] || { echo "unexpected response"; cat "$log" target/lambda-functions.log; exit 1; }
done
out=$(invoke appstream-sync events/lambda/eventbridge-leaver.json)
echo "appstream-sync eventbridge-leaver.json -> $out"
if [[ "$out" != *'"decision":"disable"'* || "$out" != *'DisableUser'* ]]; then
  echo "unexpected response"; cat "$log" target/lambda-functions.log; exit 1
fi
out=$(invoke iam-sync events/lambda/eventbridge-leaver.json)
echo "iam-sync eventbridge-leaver.json -> $out"
if [[ "$out" != *'"decision":"disable"'* || "$out" != *'TagUser jml-sync:disabled-at,jml-sync:status'* ]]; then
  echo "unexpected response"; cat "$log" target/lambda-functions.log; exit 1
fi
out=$(invoke hr-ingest events/lambda/eventbridge-joiner.json)
echo "hr-ingest eventbridge-joiner.json -> $out"
if [[ "$out" != *'"status":"fanned-out"'* || "$out" != *'"targets":4'* ]]; then
  echo "unexpected response"; cat "$log" target/lambda-functions.log; exit 1
fi
out=$(invoke reconcile events/lambda/scheduler-reconcile.json)
echo "reconcile scheduler-reconcile.json -> ${out:0:200}..."
# The memory backend's empty demo targets against the sample snapshot: every person is missing.
if [[ "$out" != *'"status":"drift"'* || "$out" != *'"missing-account"'* || "$out" != *'"mode":"report"'* ]]; then
  echo "unexpected response"; cat "$log" target/lambda-functions.log; exit 1
fi
for p in "${pids[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "a function process exited"; cat target/lambda-functions.log; exit 1; }
done
echo "cargo lambda invoke against every function (memory backend, cargo lambda's emulator): ok"
