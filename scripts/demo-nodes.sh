#!/usr/bin/env bash
# Three relay nodes sharing one PostgreSQL database, on loopback: what several nodes look like
# (README: "Several relay nodes on PostgreSQL"). PostgreSQL is Debian's, run as the postgres user
# in a temporary directory (scripts/with-postgres.sh) and removed with the nodes' data when this
# stops (Ctrl-C). Node 1 makes the database's first admin (its one-time password is printed)
# and the certificate the three share; nodes 2 and 3 start on the same database.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DESKLINE_TEST_DATABASE_URL:-}" ]]; then
    DESKLINE_EXTRA_PACKAGES=(postgresql)
    source scripts/setup.sh
    echo "==> building (release): the relay, the CLI and viewer, the support app"
    cargo build --release --locked --workspace --bins
    exec bash scripts/with-postgres.sh bash "$0" "$@"
fi
RELAY="${CARGO_TARGET_DIR:-target}/release/deskline-relay"
url="$DESKLINE_TEST_DATABASE_URL"
data=$(mktemp -d /tmp/deskline-nodes.XXXXXX)
pids=()
stop() {
    # The nodes stop cleanly (goodbye to apps and viewers) before PostgreSQL does.
    [[ ${#pids[@]} -gt 0 ]] && kill -TERM "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
    rm -rf "$data"
}
trap stop EXIT
trap 'exit 0' INT TERM
start() { # node number, extra serve arguments
    local n=$1
    shift
    mkdir -p "$data/node$n"
    "$RELAY" serve --data-dir "$data/node$n" --database-url "$url" \
        --http "127.0.0.1:$((8442 + n))" --quic "127.0.0.1:$((4432 + n))" "$@" \
        2>"$data/node$n.log" > >(sed -u "s/^/node $n: /") &
    pids+=($!)
}
start 1 --demo-admin admin
for _ in $(seq 100); do [[ -s "$data/node1/relay-key.pem" ]] && break; sleep 0.1; done
for n in 2 3; do
    # One name, one certificate: support apps pin it whichever node they reach.
    mkdir -p "$data/node$n"
    cp "$data/node1/relay-cert.pem" "$data/node1/relay-key.pem" "$data/node$n/"
    start "$n"
done
echo "three nodes on one PostgreSQL; their logs are in $data/node*.log; Ctrl-C stops them"
wait
