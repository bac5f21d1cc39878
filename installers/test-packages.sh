#!/usr/bin/env bash
# The Debian packages, tested as an operator uses them (issue 15). Run by scripts/test.sh as
# root on a throwaway machine: it installs, upgrades, removes and purges deskline-relay,
# installs deskline and deskline-support, and connects the installed support app (finding the
# relay in /etc/deskline/support.toml) to the installed relay, viewed by the installed CLI.
# There is no running systemd here, so the service is started as the unit says — its exact ExecStart, as its user — with loopback addresses given as flags (flags win
# over the packaged config, which binds every interface). Packages are made from the debug
# binaries the test suite already built (scripts/package.sh --profile dev --no-build --fast).
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=packages
source installers/test-lib.sh
[ "$(id -u)" = 0 ] || fail "needs root (it installs packages)"

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
DEBS="$(mktemp -d)"
WORK="$(mktemp -d)"
RELAY_PID=""
cleanup() {
  [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null || true
  [ -n "${AGENT_PID:-}" ] && kill "$AGENT_PID" 2>/dev/null || true
  dpkg -P deskline-relay deskline deskline-support >/dev/null 2>&1 || true
  rm -f /etc/deskline/support.toml
  rm -rf "$DEBS" "$WORK"
}
trap cleanup EXIT

step "building 0.1.0-1 and 0.1.1-1"
# (cargo-deb's output goes to the log: a dependency it could not compute is only a warning.)
DESKLINE_DEB_DIR="$DEBS" bash scripts/package.sh --profile dev --no-build --fast --deb-version 0.1.0-1 >&2
DESKLINE_DEB_DIR="$DEBS/next" bash scripts/package.sh --profile dev --no-build --fast --deb-version 0.1.1-1 >/dev/null
RELAY_DEB="$DEBS/deskline-relay_0.1.0-1_amd64.deb"
NEXT_DEB="$DEBS/next/deskline-relay_0.1.1-1_amd64.deb"
CLI_DEB="$DEBS/deskline_0.1.0-1_amd64.deb"
SUPPORT_DEB="$DEBS/deskline-support_0.1.0-1_amd64.deb"

step "inspecting the relay package"
contents="$(dpkg-deb -c "$RELAY_DEB")"
for f in ./usr/bin/deskline-relay ./usr/lib/deskline/deskline-agent ./usr/lib/deskline/deskline-agent.exe \
  ./etc/deskline/relay.toml ./usr/lib/systemd/system/deskline-relay.service ./usr/share/doc/deskline-relay/README.md \
  ./usr/lib/sysctl.d/60-deskline-relay.conf; do
  grep -q " $f\$" <<<"$contents" || fail "$f is not in the relay package"
done
info="$(dpkg-deb -I "$RELAY_DEB")"
grep -q "Depends: .*adduser" <<<"$info" || fail "the relay package does not depend on adduser"
dpkg-deb -e "$RELAY_DEB" "$WORK/control"
grep -qx "/etc/deskline/relay.toml" "$WORK/control/conffiles" || fail "relay.toml is not a conffile"
grep -q "adduser --system" "$WORK/control/postinst" || fail "postinst makes no system user"
grep -q "deb-systemd-helper enable deskline-relay.service" "$WORK/control/postinst" || fail "postinst does not enable the unit"
grep -q 'rm -rf /var/lib/deskline' "$WORK/control/postrm" || fail "purge does not delete the data"
dpkg-deb -c "$CLI_DEB" | grep -q " ./usr/bin/deskline$" || fail "the CLI package has no deskline"

step "inspecting the support app's package"
contents="$(dpkg-deb -c "$SUPPORT_DEB")"
for f in ./usr/bin/deskline-agent ./usr/share/applications/deskline-support.desktop \
  ./usr/share/icons/hicolor/scalable/apps/deskline-support.svg ./usr/share/doc/deskline-support/support.toml.example; do
  grep -q " $f\$" <<<"$contents" || fail "$f is not in the support app's package"
done
dpkg-deb -x "$SUPPORT_DEB" "$WORK/support"
desktop-file-validate "$WORK/support/usr/share/applications/deskline-support.desktop" || fail "the desktop entry is not valid"
grep -qx "Exec=deskline-agent" "$WORK/support/usr/share/applications/deskline-support.desktop" || fail "the desktop entry does not start deskline-agent"
# (Read whole first: `grep -q` quits at its match, and under pipefail the writer's broken pipe
# would count as a failure.)
support_info="$(dpkg-deb -I "$SUPPORT_DEB")"
if ! grep -q "Depends: .*libc6" <<<"$support_info"; then
  # cargo-deb computes them with dpkg-shlibdeps and only warns when that fails: say why.
  mkdir -p "$WORK/shlibdeps/debian" && touch "$WORK/shlibdeps/debian/control"
  agent_bin="$(realpath "$TARGET_DIR/debug/deskline-agent")"
  (cd "$WORK/shlibdeps" && dpkg-shlibdeps -O "$agent_bin") >&2 || true
  fail "the support app's package has no computed dependencies (dpkg-shlibdeps said the above)"
fi
grep -q "Recommends: .*zenity" <<<"$support_info" || fail "the support app's package does not recommend a file dialog"

step "installing deskline-relay"
dpkg -P deskline-relay >/dev/null 2>&1 || true
notes="$(dpkg -i "$RELAY_DEB" 2>&1)" || fail "dpkg -i: $notes"
grep -q "deskline-relay admin create" <<<"$notes" || fail "the install does not say how to create the first admin: $notes"
getent passwd deskline | grep -q ":/var/lib/deskline:/usr/sbin/nologin$" || fail "no system user deskline: $(getent passwd deskline)"
[ "$(stat -c '%U:%G %a' /var/lib/deskline)" = "deskline:deskline 700" ] || fail "/var/lib/deskline is $(stat -c '%U:%G %a' /var/lib/deskline)"
[ -f /etc/deskline/relay.toml ] || fail "no /etc/deskline/relay.toml"
[ "$(stat -c '%a %U:%G' /etc/deskline/relay.toml)" = "640 root:deskline" ] \
    || fail "relay.toml is $(stat -c '%a %U:%G' /etc/deskline/relay.toml), not 640 root:deskline (it may hold the database password)"
# Where this machine's kernel settings can be written at all (not in most containers).
if [ -w /proc/sys/net/core/rmem_max ]; then
  [ "$(sysctl -n net.core.rmem_max)" -ge 4194304 ] || fail "the install left net.core.rmem_max at $(sysctl -n net.core.rmem_max)"
fi

step "creating the first admin as the service user, starting the unit's ExecStart"
PASSWORD="lantern orbit seven meadow"
printf '%s\n' "$PASSWORD" | runuser -u deskline -- deskline-relay admin create --username admin --data-dir /var/lib/deskline >/dev/null
EXEC_START="$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/deskline-relay.service)"
[ "$EXEC_START" = "/usr/bin/deskline-relay serve --config /etc/deskline/relay.toml" ] || fail "ExecStart is $EXEC_START"
start_relay() {
  pick_ports
  # shellcheck disable=SC2086
  # setpriv execs the relay itself (as systemd does), so the signals below reach it.
  setpriv --reuid=deskline --regid=deskline --init-groups -- $EXEC_START --http "127.0.0.1:$HTTP_PORT" --quic "127.0.0.1:$QUIC_PORT" \
    --metrics "127.0.0.1:$METRICS_PORT" >"$WORK/relay.out" 2>"$WORK/relay.err" &
  RELAY_PID=$!
  await_relay
  grep -q "invite pages offer the support app for Windows /usr/lib/deskline/deskline-agent.exe" "$WORK/relay.out" ||
    fail "the packaged Windows app is not offered: $(cat "$WORK/relay.out")"
}
start_relay
curl -sk --fail "$BASE/healthz" | grep -q '"ok"' || fail "/healthz"
login
api POST /channels/1/sessions '{"kind":"pin","name":"kept across the upgrade"}' >/dev/null
api GET /sessions | grep -q "kept across the upgrade" || fail "the session is not listed"
curl -s --fail "http://127.0.0.1:$METRICS_PORT/metrics" | grep -q '^deskline_sessions{state="waiting"} 1$' || fail "metrics"
[ "$(stat -c %U /var/lib/deskline/deskline.db)" = deskline ] || fail "the database is not the service user's"

step "the installed support app finds the relay in /etc/deskline/support.toml; the installed CLI views it"
dpkg -i "$CLI_DEB" "$SUPPORT_DEB" >/dev/null 2>&1 || apt-get install -y -qq -f >/dev/null || fail "installing deskline and deskline-support"
export DESKLINE_CONFIG="$WORK/cli.json" XDG_CONFIG_HOME="$WORK/config" # this test's login, not the machine's
HTTPS_PIN="$(sed -n 's/^relay certificate SHA-256 fingerprint[^:]*: //p' "$WORK/relay.out")"
printf '%s\n' "$PASSWORD" | deskline login --server "$BASE" --username admin --password-stdin --insecure-pin-cert "$HTTPS_PIN" >/dev/null ||
  fail "deskline login"
deskline support-config >/etc/deskline/support.toml || fail "deskline support-config"
grep -q "^relay = \"127.0.0.1:$QUIC_PORT\"\$" /etc/deskline/support.toml || fail "support.toml: $(cat /etc/deskline/support.toml)"
created="$(deskline --json session new --channel 1 --pin --name "installed support app")"
PIN="$(sed -n 's/^  "pin": "\([0-9]*\)",\?$/\1/p' <<<"$created")"
SESSION_ID="$(sed -n 's/^  "id": \([0-9]*\),$/\1/p' <<<"$created")"
[ -n "$PIN" ] && [ -n "$SESSION_ID" ] || fail "no PIN session: pin $PIN, id $SESSION_ID"
# No --relay, no --fingerprint, no link: only support.toml says where the relay is.
deskline-agent --pin "$PIN" --synthetic 320x240 --auto-consent allow >"$WORK/agent.out" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do grep -q "^connected to" "$WORK/agent.out" && break; sleep 0.1; done
grep -q "^connected to" "$WORK/agent.out" || fail "the installed support app did not connect: $(cat "$WORK/agent.out")"
deskline session remote "$SESSION_ID" >/dev/null || fail "deskline session remote"
# The whole report first: `grep -q` on the pipe closes it at the first match, and the CLI's
# next line then meets a broken pipe (it failed so once in CI).
viewed="$(deskline --json view "$SESSION_ID" --headless --frames 5 --timeout 20)" || fail "deskline view: $viewed"
grep -q '^  "frames": 5,$' <<<"$viewed" || fail "no frames from the installed support app: $viewed"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""
rm /etc/deskline/support.toml
stop_relay

step "backing up as root (as the README says), running and stopped; restoring into an emptied data directory"
# (The relay was stopped above; start it again for the backup of a running relay.)
start_relay
deskline-relay backup --data-dir /var/lib/deskline --to "$WORK/while-running.db" >/dev/null || fail "backup of the running relay"
stop_relay
BACKUP="/var/backups/deskline-test-$$.db"
deskline-relay backup --data-dir /var/lib/deskline --to "$BACKUP" >/dev/null || fail "backup of the stopped relay"
strays="$(find /var/lib/deskline ! -user deskline)"
[ -z "$strays" ] || fail "the backup as root left files the service cannot use: $strays"
mkdir "$WORK/moved-aside" && mv /var/lib/deskline/deskline.db* "$WORK/moved-aside/"
deskline-relay restore --from "$BACKUP" --data-dir /var/lib/deskline >/dev/null || fail "restore"
rm -f "$BACKUP"
[ "$(stat -c %U:%G /var/lib/deskline/deskline.db)" = deskline:deskline ] || fail "the restored database is $(stat -c %U:%G /var/lib/deskline/deskline.db)"

step "upgrading to 0.1.1-1: data (the restored database) and the operator's config kept"
echo "# the operator's own note" >>/etc/deskline/relay.toml
dpkg -i "$NEXT_DEB" >/dev/null 2>&1 || fail "upgrade"
[ "$(dpkg-query -W -f='${Version}' deskline-relay)" = "0.1.1-1" ] || fail "the upgrade did not install 0.1.1-1"
grep -q "the operator's own note" /etc/deskline/relay.toml || fail "the upgrade replaced the operator's config"
start_relay
login
api GET /sessions | grep -q "kept across the upgrade" || fail "the upgrade lost the session"
stop_relay

step "removing keeps the data; purging deletes it"
dpkg -r deskline-relay >/dev/null
[ -f /var/lib/deskline/deskline.db ] || fail "removing deleted the data"
[ ! -e /usr/bin/deskline-relay ] || fail "removing left the binary"
dpkg -P deskline-relay >/dev/null
[ ! -e /var/lib/deskline ] || fail "purging kept /var/lib/deskline"
! getent passwd deskline >/dev/null || fail "purging kept the user"

step "removing the CLI and the support app"
[[ "$(deskline --version)" == "deskline "* ]] || fail "deskline --version"
dpkg -P deskline deskline-support >/dev/null
[ ! -e /usr/bin/deskline-agent ] || fail "purging deskline-support left its binary"

echo "==> packages: all checks passed"
