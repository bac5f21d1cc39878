#!/usr/bin/env bash
# Runs a command beside a throw-away PostgreSQL server: Debian's postgresql, run as the postgres
# user (as root) in a temporary directory, removed afterwards. The command finds it in
# DESKLINE_TEST_DATABASE_URL, through a Unix socket in that directory (the relay's tests create a
# database of their own on it for each test; `serve --database-url "$DESKLINE_TEST_DATABASE_URL"`
# runs a relay on it), and in DESKLINE_TEST_TLS_DATABASE_URL over TCP on loopback inside TLS only,
# with a certificate for "localhost" from a CA made for this run (the URL names it in
# sslrootcert=): what a server on another machine looks like to the relay.
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
# The CA and the server's certificate (openssl comes with postgresql, through ssl-cert).
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -days 2 -subj /CN=deskline-test-ca -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req "${ec[@]}" -subj /CN=localhost -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
    -extfile <(printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n') -out "$dir/server.crt" 2>/dev/null
chmod 600 "$dir/server.key"
[[ $(id -u) -eq 0 ]] && chown postgres: "$dir/server.key" "$dir/server.crt"
# The socket in $dir without a password; TCP only inside TLS (no `host` line: plain TCP is refused).
printf '%s\n' 'local all all trust' 'hostssl all all 127.0.0.1/32 trust' >"$dir/data/pg_hba.conf"
# Durability is not what these runs test: fsync off keeps a test database's many small commits
# cheap. The port is random (several runs may share a machine): another is tried if it is taken.
for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 30000))
    if as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-c listen_addresses=127.0.0.1 -p $port \
        -k $dir -c max_connections=400 -c fsync=off -c ssl=on -c ssl_cert_file=$dir/server.crt \
        -c ssl_key_file=$dir/server.key" start >/dev/null; then
        break
    fi
    if [[ $attempt -eq 5 ]]; then
        cat "$dir/server.log" >&2
        exit 1
    fi
done
export DESKLINE_TEST_DATABASE_URL="host=$dir port=$port user=postgres dbname=postgres"
export DESKLINE_TEST_TLS_DATABASE_URL="postgres://postgres@localhost:$port/postgres?sslmode=require&sslrootcert=$dir/ca.crt"
"$@"
