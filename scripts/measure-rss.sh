#!/usr/bin/env bash
# Peak RSS of each function's release binary handling SQS batches: `cargo lambda watch --release`
# (host build) on the memory backend, one invocation with the 3-record sample batch and one with a
# 10-record batch, then VmHWM of the function process. Prints a table. Not part of the test
# command (it needs a release build); run it by hand. Servers on loopback, stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
source scripts/lib.sh

port=$(free_port)
start_server target/rss-watch.log \
  cargo lambda watch --release --invoke-address 127.0.0.1 --invoke-port "$port" --env-var JML_BACKEND=memory
wait_ready 600 port_open "$port"

# A 10-record batch: ten people's joiners.
python3 - > target/rss-batch10.json <<'PY'
import json
j = json.load(open("events/01-joiner-ada.json"))
recs = []
for n in range(10):
    e = dict(j, eventId=f"rss-{n}")
    e["person"] = dict(j["person"], externalId={"issuer": "workday", "id": f"r{n}"}, userName=f"rss.user.{n}",
                       email=f"rss.user.{n}@example.com", directoryUserName=f"rssuser{n}")
    recs.append({"messageId": f"m-{n}", "body": json.dumps(e), "attributes": {"MessageGroupId": f"g-{n}"}, "eventSource": "aws:sqs"})
print(json.dumps({"Records": recs}))
PY

# The function processes started by this watch server (children of its PID tree).
descendants() { local p; for p in $(cat /proc/*/stat 2>/dev/null | awk -v pp="$1" '$4==pp {print $1}'); do echo "$p"; descendants "$p"; done; }

printf '| function | peak RSS after a 3-record and a 10-record batch |\n|---|---|\n'
for f in identity-sync subscription-sync appstream-sync iam-sync; do
  timeout 900 cargo lambda invoke "$f" --invoke-address 127.0.0.1 --invoke-port "$port" --data-file events/lambda/sqs-batch.json > /dev/null
  timeout 300 cargo lambda invoke "$f" --invoke-address 127.0.0.1 --invoke-port "$port" --data-file target/rss-batch10.json > /dev/null
  hwm=""
  for p in $(descendants "$SERVER_PID"); do
    if [ "$(basename "$(readlink -f /proc/$p/exe 2>/dev/null)")" = "$f" ]; then
      hwm=$(awk '/VmHWM/ {print $2 " " $3}' /proc/$p/status)
    fi
  done
  printf '| %s | %s |\n' "$f" "${hwm:-not found}"
done
