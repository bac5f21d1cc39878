#!/usr/bin/env bash
# Runs a command beside a throw-away PostgreSQL server: Debian's postgresql, run as the postgres
# user (as root) in a temporary directory, reachable only through a Unix socket there, removed
# afterwards. The command finds it in DESKLINE_TEST_DATABASE_URL (the relay's tests create a
# database of their own on it for each test; `serve --database-url "$DESKLINE_TEST_DATABASE_URL"`
# runs a relay on it).
#   bash scripts/with-postgres.sh cargo test -p deskline-relay --test api
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -x "$bin/initdb" ]] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
dir=$(mktemp -d /tmp/deskline-pg.XXXXXX)
as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
stop() {
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT
as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
# No TCP at all (listen_addresses empty): the socket in $dir is the only way in. Durability is
# not what these runs test: fsync off keeps a test database's many small commits cheap.
if ! as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses='' -k $dir -c max_connections=400 -c fsync=off" start >/dev/null; then
    cat "$dir/server.log" >&2
    exit 1
fi
export DESKLINE_TEST_DATABASE_URL="host=$dir user=postgres dbname=postgres"
"$@"
