#!/usr/bin/env bash
# Builds the Debian packages into target/debian/ (or $DESKLINE_DEB_DIR):
#   deskline-relay  the relay, its systemd unit, /etc/deskline/relay.toml, the support apps it
#                   offers (Linux and Windows)
#   deskline        the technicians' CLI and native viewer
#   deskline-support the Linux support app with its desktop entry, for machines it is installed on
# Usage: bash scripts/package.sh [--deb-version V] [--profile dev --no-build] [--fast]
# (the test suite packages the binaries it already built: --profile dev --no-build --fast).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="${DESKLINE_DEB_DIR:-$TARGET_DIR/debian}"
profile=release
build=1
deb_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --profile) profile="$2"; deb_args+=(--profile "$2"); shift ;;
    *) deb_args+=("$1") ;;
  esac
  shift
done

if [ "$build" = 1 ]; then
  echo "==> building ($profile): the relay, the CLI and viewer, the Linux support app"
  cargo build --locked --profile "$profile" --workspace --bins
  echo "==> cross-building the Windows support app"
  bash scripts/build-windows.sh
fi
# The relay package offers the Windows build too; cargo-deb takes it from a fixed place.
mkdir -p installers/build
cp "$TARGET_DIR/x86_64-pc-windows-gnu/dist/deskline-agent.exe" installers/build/deskline-agent.exe

mkdir -p "$OUT"
for package in deskline-relay deskline-console deskline-agent; do
  # (cargo-deb warns that packaging a dev build is for tests only: it is, here.)
  cargo deb --locked -p "$package" --no-build --output "$OUT" ${deb_args[@]+"${deb_args[@]}"} 2>&1 |
    { grep -v -e "dev profile is not supported" -e "To enable debug symbols" || true; }
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "cargo deb failed for $package" >&2; exit 1; }
done
ls "$OUT"/*.deb
