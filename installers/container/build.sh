#!/usr/bin/env bash
# Builds the relay's container image with Debian's podman:
#   bash installers/container/build.sh [--profile dev --no-build] [--tag NAME:TAG]
# The image holds the relay Debian builds with the shared libraries it links (found with ldd:
# four of them) rather than a second, static musl build: one build serves the package and the
# image, and the relay keeps glibc's allocator. It prints the image's name on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
profile=release
build=1
tag="deskline-relay:$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --profile) profile="$2"; shift ;;
    --tag) tag="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$build" = 1 ]; then
  source scripts/setup.sh
  cargo build --locked --profile "$profile" -p deskline-relay -p deskline-agent --bins
  bash scripts/build-windows.sh
fi
out="$TARGET_DIR/$([ "$profile" = dev ] && echo debug || echo "$profile")"
relay="$out/deskline-relay"
[ -x "$relay" ] || { echo "no $relay: build it first" >&2; exit 1; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/rootfs"
mkdir -p "$root/usr/bin" "$root/usr/lib/deskline" "$root/etc/deskline" "$stage/var-lib/deskline"
install -m 755 "$relay" "$root/usr/bin/deskline-relay"
install -m 755 "$out/deskline-agent" "$root/usr/lib/deskline/deskline-agent"
install -m 644 "$TARGET_DIR/x86_64-pc-windows-gnu/dist/deskline-agent.exe" "$root/usr/lib/deskline/deskline-agent.exe"
install -m 644 installers/container/relay.toml "$root/etc/deskline/relay.toml"
# The libraries the relay links, at the paths its loader looks for them.
for lib in $(ldd "$relay" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# SQLite may put temporary files in /tmp.
mkdir -m 1777 "$root/tmp"
chmod 700 "$stage/var-lib/deskline"
cp installers/container/Containerfile "$stage/"
podman build --quiet --tag "$tag" --file "$stage/Containerfile" "$stage" >/dev/null
echo "$tag"
