#!/usr/bin/env bash
# Helpers for test scripts that start a local server: a free loopback port, start in the
# background with a stop-by-PID trap, and wait for readiness.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_server LOG CMD...: runs CMD in the background with output to LOG; sets SERVER_PID and
# stops that PID (never a name) when the calling script exits.
start_server() {
  local log=$1
  shift
  mkdir -p "$(dirname "$log")"
  "$@" > "$log" 2>&1 &
  SERVER_PID=$!
  SERVER_LOG=$log
  trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
}

# wait_ready SECONDS CHECK...: polls CHECK every half second until it succeeds; fails early,
# with the server's log, if the server died.
wait_ready() {
  local tries=$(( $1 * 2 ))
  shift
  for _ in $(seq 1 "$tries"); do
    if "$@" > /dev/null 2>&1; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "the server exited:"; cat "$SERVER_LOG"; return 1
    fi
    sleep 0.5
  done
  echo "the server was not ready in time:"; cat "$SERVER_LOG"; return 1
}

# port_open PORT: true when something listens on 127.0.0.1:PORT.
port_open() {
  python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$1"
}
