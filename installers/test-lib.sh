# What installers/test-packages.sh and test-container.sh share: sourced, not run.
# The caller sets NAME (its messages' prefix), WORK (a scratch directory) and PASSWORD.

fail() { echo "test-$NAME: FAILED: $*" >&2; exit 1; }
step() { echo "==> $NAME: $*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || shuf -i 20000-60000 -n 1; }

# Picks loopback ports for a relay: HTTP_PORT, QUIC_PORT, METRICS_PORT, and BASE (its HTTPS URL).
pick_ports() {
  HTTP_PORT="$(free_port)"; QUIC_PORT="$(free_port)"; METRICS_PORT="$(free_port)"
  BASE="https://127.0.0.1:$HTTP_PORT"
}

# Waits until the relay started as RELAY_PID (stdout in $WORK/relay.out, stderr in
# $WORK/relay.err) serves.
await_relay() {
  for _ in $(seq 100); do
    grep -q "^session links are built on" "$WORK/relay.out" 2>/dev/null && return 0
    kill -0 "$RELAY_PID" 2>/dev/null || fail "the relay stopped: $(cat "$WORK/relay.err")"
    sleep 0.1
  done
  fail "the relay did not start: $(cat "$WORK/relay.err")"
}

# SIGTERM, as systemd or podman stop: the relay must end cleanly.
stop_relay() {
  kill -TERM "$RELAY_PID"
  local rc=0; wait "$RELAY_PID" || rc=$?
  [ "$rc" = 0 ] || fail "the relay did not stop cleanly (exit $rc): $(tail -5 "$WORK/relay.err")"
  RELAY_PID=""
}

api() { # METHOD PATH [BODY] with $TOKEN
  curl -sk --fail-with-body -X "$1" "$BASE/api/v1$2" -H "Authorization: Bearer ${TOKEN:-}" -H 'Content-Type: application/json' ${3:+-d "$3"}
}

login() { # as admin with $PASSWORD
  TOKEN="$(curl -sk --fail-with-body "$BASE/api/v1/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | grep -o '"token":"[^"]*"' | cut -d'"' -f4)"
  [ -n "$TOKEN" ] || fail "cannot sign in"
}
