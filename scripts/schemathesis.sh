#!/usr/bin/env bash
# Property-based test of the HTTP API against its own OpenAPI document with schemathesis (from
# PyPI, pinned, in a virtualenv next to the build): the real relay binary on loopback, signed in
# as an administrator; every operation gets generated valid and invalid requests, and every
# answer must be documented (status, content type, schema) and never a server error.
# Usage: bash scripts/schemathesis.sh [SECONDS]   (the test suite: 60 s; needs a debug build)
# To dig into a finding: SCHEMATHESIS_SEED=N (default 14) and SCHEMATHESIS_ARGS="--phases coverage
# --include-path-regex /remote" (added to the run's options); on failure the relay's log is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
target="${CARGO_TARGET_DIR:-target}"
relay="$target/debug/deskline-relay"
[ -x "$relay" ] || { echo "schemathesis: $relay is not built (cargo build -p deskline-relay)" >&2; exit 1; }
venv="$target/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "==> installing schemathesis 4.32.5 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
py="$venv/bin/python"

work="$(mktemp -d)"
relay_pid=""
cleanup() {
  local status=$?
  if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null || true; fi
  if [ "$status" -ne 0 ] && [ -f "$work/relay.err" ]; then
    echo "==> the relay's warnings and errors (sign-in refusals left out):" >&2
    grep -a -v 'sign-in\|login failed\|wrong password\|wrong current password' "$work/relay.err" | tail -40 >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

RUST_LOG=warn "$relay" serve --http 127.0.0.1:0 --quic 127.0.0.1:0 --demo-admin admin --data-dir "$work/relay" \
  >"$work/relay.out" 2>"$work/relay.err" &
relay_pid=$!
for _ in $(seq 100); do
  grep -q '^web console: ' "$work/relay.out" && break
  sleep 0.1
done
url="$(sed -n 's/^web console: \(https:[^ ]*\)\/$/\1/p' "$work/relay.out" | head -1)"
one_time="$(sed -n 's/.*one-time password: *//p' "$work/relay.out" | head -1)"
[ -n "$url" ] && [ -n "$one_time" ] || { cat "$work/relay.out" "$work/relay.err" >&2; echo "schemathesis: the relay did not start" >&2; exit 1; }

# Sign in and set the admin's own password (the printed one is one-time).
token="$("$py" - "$url" "$one_time" <<'EOF'
import json, ssl, sys, urllib.request
url, one_time = sys.argv[1], sys.argv[2]
context = ssl._create_unverified_context()  # the relay's self-signed certificate, on loopback
def post(path, body, token=None):
    request = urllib.request.Request(url + "/api/v1" + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", "Bearer " + token)
    return json.load(urllib.request.urlopen(request, context=context))
first = post("/login", {"username": "admin", "password": one_time})
own = post("/me/password", {"current_password": one_time, "new_password": "violet harbour quietly sings"}, first["token"])
print(own["token"])
EOF
)"

echo "==> schemathesis against $url for ${seconds}s"
# Signing out would end the token the run uses; turning a second factor on would too; the live
# event stream never ends. Three checks are left out, each for a reason:
# - positive_data_acceptance: the relay refuses requests the schema cannot describe as wrong
#   (a weak password by zxcvbn, control characters in a name, a channel's limits, someone not
#   invited) with a 400 naming the field — refusing them is right;
# - ensure_resource_availability: schemathesis guesses links between operations and used a new
#   channel's id as a technician's id (the 404 "technician not found" is right);
# - use_after_free: a deleted session's history (`GET /sessions/{id}/events`) stays readable to
#   its channel on purpose — deleting takes a session off the lists, never out of the audit trail.
"$venv/bin/schemathesis" run "$url/api/v1/openapi.json" --url "$url" \
  -H "Authorization: Bearer $token" --tls-verify false \
  --checks all --exclude-checks positive_data_acceptance,ensure_resource_availability,use_after_free \
  --max-time "$seconds" --max-examples 40 --seed "${SCHEMATHESIS_SEED:-14}" --workers 2 \
  --exclude-path /api/v1/logout --exclude-path /api/v1/me/second-factor/confirm \
  --exclude-path /api/v1/events --suppress-health-check all \
  --report junit --report-dir "$target/schemathesis-report" ${SCHEMATHESIS_ARGS:-}
