#!/usr/bin/env bash
# The relay's container image, tested as far as these machines allow (issue 15): `podman run`
# does not work here (crun cannot set rlimits), so the image is built, created and exported, and
# its entrypoint and command run from the unpacked image with chroot as the image's user, with
# loopback addresses given as flags after the command (as `podman run IMAGE serve … --http …`).
# Run by scripts/test.sh as root, after cargo test built the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=container
source installers/test-lib.sh
[ "$(id -u)" = 0 ] || fail "needs root (podman's storage, chroot)"

WORK="$(mktemp -d)"
ROOT="$WORK/root"
TAG="localhost/deskline-relay:test-$$"
RELAY_PID=""
cleanup() {
  [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null || true
  podman rm -f "deskline-test-$$" >/dev/null 2>&1 || true
  podman rmi -f "$TAG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step "building the image"
built="$(bash installers/container/build.sh --profile dev --no-build --tag "$TAG" | tail -1)"
[ "$built" = "$TAG" ] || fail "build.sh said $built"
config="$(podman image inspect "$TAG" --format '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Volumes}}')"
IFS='|' read -r user entrypoint cmd volumes <<<"$config"
[ "$user" = "10001:10001" ] || fail "the image runs as $user"
[ "$entrypoint" = '["/usr/bin/deskline-relay"]' ] || fail "entrypoint $entrypoint"
[ "$cmd" = '["serve","--config","/etc/deskline/relay.toml"]' ] || fail "command $cmd"
grep -q '"/var/lib/deskline"' <<<"$volumes" || fail "no volume for /var/lib/deskline: $volumes"

step "exporting it and checking what is inside"
podman create --name "deskline-test-$$" "$TAG" >/dev/null
mkdir "$ROOT"
podman export "deskline-test-$$" | tar -x -C "$ROOT"
[ ! -e "$ROOT/bin/sh" ] && [ ! -e "$ROOT/usr/bin/sh" ] || fail "the image has a shell"
for f in usr/bin/deskline-relay usr/lib/deskline/deskline-agent usr/lib/deskline/deskline-agent.exe etc/deskline/relay.toml; do
  [ -f "$ROOT/$f" ] || fail "/$f is not in the image"
done
[ "$(stat -c '%u:%g %a' "$ROOT/var/lib/deskline")" = "10001:10001 700" ] || fail "/var/lib/deskline is $(stat -c '%u:%g %a' "$ROOT/var/lib/deskline")"
size="$(du -sm "$ROOT" | cut -f1)"
echo "    the unpacked image: $size MiB ($(find "$ROOT" -type f | wc -l) files)"

in_image() { chroot --userspec=10001:10001 "$ROOT" "$@"; }

step "the first admin, created with the image's binary as its user"
PASSWORD="harbour violet ninety comet"
printf '%s\n' "$PASSWORD" | in_image /usr/bin/deskline-relay admin create --username admin >/dev/null ||
  fail "admin create in the image"

step "its entrypoint and command, then the API"
pick_ports
# (chroot itself, not a function: RELAY_PID must be the relay, which chroot execs.)
chroot --userspec=10001:10001 "$ROOT" /usr/bin/deskline-relay serve --config /etc/deskline/relay.toml \
  --http "127.0.0.1:$HTTP_PORT" --quic "127.0.0.1:$QUIC_PORT" --metrics "127.0.0.1:$METRICS_PORT" \
  >"$WORK/relay.out" 2>"$WORK/relay.err" &
RELAY_PID=$!
await_relay
grep -q "invite pages offer the support app for Windows /usr/lib/deskline/deskline-agent.exe" "$WORK/relay.out" ||
  fail "the image's Windows app is not offered: $(cat "$WORK/relay.out")"
curl -sk --fail "$BASE/healthz" | grep -q '"ok"' || fail "/healthz"
login
api POST /channels/1/sessions '{"kind":"link","name":"in a container"}' >/dev/null || fail "creating a session"
api GET /sessions | grep -q '"in a container"' || fail "the session is not listed"
curl -sk --fail "$BASE/" | grep -qi "<html" || fail "the web console"
curl -s --fail "http://127.0.0.1:$METRICS_PORT/metrics" | grep -q '^deskline_sessions{state="waiting"} 1$' || fail "metrics"
stop_relay
[ "$(stat -c %u "$ROOT/var/lib/deskline/deskline.db")" = 10001 ] || fail "the database is not the image user's"

step "backup with the image's binary"
in_image /usr/bin/deskline-relay backup --to /var/lib/deskline/backup.db >/dev/null || fail "backup"
[ -s "$ROOT/var/lib/deskline/backup.db" ] || fail "no backup"

echo "==> container: all checks passed"
