#!/usr/bin/env bash
# Installs what is needed, builds, and runs the relay with its embedded defaults:
# SQLite and a self-signed certificate in ./data, a one-time admin password printed on first
# start, the console and API URLs printed. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "==> building (release): the relay, the CLI and viewer, the support app its invite pages offer (and the benchmarks)"
# The whole workspace, not `-p` the three packages: cargo unifies dependency features over the
# packages it builds, and the benchmarks' dependencies turn on features of syn and others that
# every proc-macro and so most crates depend on. Built alone, the three got other feature sets
# than `cargo build --release --workspace`, so each of the two rebuilt ~300 crates after the
# other; built this way they share every artefact, for one more binary (deskline-bench).
cargo build --release --locked --workspace --bins
echo "==> cross-building the support app for Windows"
bash scripts/build-windows.sh

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
DATA_DIR="${DESKLINE_DATA_DIR:-$PWD/data}"
echo "==> starting the relay (data in $DATA_DIR); the CLI is $TARGET_DIR/release/deskline"
# Invite pages offer each visitor the support app for their system.
exec "$TARGET_DIR/release/deskline-relay" serve --data-dir "$DATA_DIR" --demo-admin admin \
  --agent-binary "$TARGET_DIR/release/deskline-agent" \
  --agent-binary "$TARGET_DIR/x86_64-pc-windows-gnu/dist/deskline-agent.exe" "$@"
