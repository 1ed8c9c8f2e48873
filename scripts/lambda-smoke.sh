#!/usr/bin/env bash
# Proves README "Running the functions locally": hr-ingest, the four target functions and reconcile under `cargo lambda watch` with the
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
  timeout 300 cargo lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$port" --data-file "$2"
}

out=$(invoke identity-sync events/lambda/sqs-batch.json)
echo "sqs-batch.json -> $out"
[ "$out" = '{"batchItemFailures":[]}' ] || { echo "unexpected response"; cat "$log"; exit 1; }

out=$(invoke identity-sync events/lambda/eventbridge-leaver.json)
echo "eventbridge-leaver.json -> $out"
case "$out" in
  *'"decision":"disable"'*'"status":"applied"'*) ;;
  *) echo "unexpected response"; cat "$log"; exit 1 ;;
esac
out=$(invoke subscription-sync events/lambda/sqs-batch.json)
echo "subscription-sync sqs-batch.json -> $out"
[ "$out" = '{"batchItemFailures":[]}' ] || { echo "unexpected response"; cat "$log"; exit 1; }

out=$(invoke subscription-sync events/lambda/eventbridge-leaver.json)
echo "subscription-sync eventbridge-leaver.json -> $out"
if [[ "$out" != *'"decision":"disable"'* || "$out" != *'StopProductSubscription VISUAL_STUDIO_PROFESSIONAL'* ]]; then
  echo "unexpected response"; cat "$log"; exit 1
fi
for fn in appstream-sync iam-sync; do
  out=$(invoke $fn events/lambda/sqs-batch.json)
  echo "$fn sqs-batch.json -> $out"
  [ "$out" = '{"batchItemFailures":[]}' ] || { echo "unexpected response"; cat "$log"; exit 1; }
done
out=$(invoke appstream-sync events/lambda/eventbridge-leaver.json)
echo "appstream-sync eventbridge-leaver.json -> $out"
if [[ "$out" != *'"decision":"disable"'* || "$out" != *'DisableUser'* ]]; then
  echo "unexpected response"; cat "$log"; exit 1
fi
out=$(invoke iam-sync events/lambda/eventbridge-leaver.json)
echo "iam-sync eventbridge-leaver.json -> $out"
if [[ "$out" != *'"decision":"disable"'* || "$out" != *'TagUser jml-sync:disabled-at,jml-sync:status'* ]]; then
  echo "unexpected response"; cat "$log"; exit 1
fi
out=$(invoke hr-ingest events/lambda/eventbridge-joiner.json)
echo "hr-ingest eventbridge-joiner.json -> $out"
if [[ "$out" != *'"status":"fanned-out"'* || "$out" != *'"targets":4'* ]]; then
  echo "unexpected response"; cat "$log"; exit 1
fi
out=$(invoke reconcile events/lambda/scheduler-reconcile.json)
echo "reconcile scheduler-reconcile.json -> ${out:0:200}..."
# The memory backend's empty demo targets against the sample snapshot: every person is missing.
if [[ "$out" != *'"status":"drift"'* || "$out" != *'"missing-account"'* || "$out" != *'"mode":"report"'* ]]; then
  echo "unexpected response"; cat "$log"; exit 1
fi
echo "cargo lambda watch/invoke on the memory backend: ok"
