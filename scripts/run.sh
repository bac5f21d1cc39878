#!/usr/bin/env bash
# Installs what is needed, builds, and runs the relay with its embedded defaults:
# SQLite and a self-signed certificate in ./data, a one-time admin password printed on first
# start, the console and API URLs printed. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "==> building (release): the relay, the CLI and viewer, and the support app its invite pages offer"
cargo build --release --locked -p deskline-relay -p deskline-console -p deskline-agent

DATA_DIR="${DESKLINE_DATA_DIR:-$PWD/data}"
echo "==> starting the relay (data in $DATA_DIR); the CLI is target/release/deskline"
exec target/release/deskline-relay serve --data-dir "$DATA_DIR" --demo-admin admin "$@"
