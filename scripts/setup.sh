#!/usr/bin/env bash
# Installs everything Deskline needs on Debian (as root): system packages and a Rust toolchain.
# Idempotent and quick when everything is there already. Sourced by run.sh and test.sh.
set -euo pipefail

# Build: nasm makes openh264 about 3x faster (its build silently falls back to C without it).
# Capture/injection/windows: libxcb (scrap), libxkbcommon (enigo), libwayland (eframe), and
# Mesa's OpenGL for the eframe windows (software rendering where there is no GPU).
# Benchmarks: ffmpeg (libx264 and x11grab) as the reference measured side by side, and its
# ffplay as the moving picture for the real-app latency run.
# Tests: a real X server (xvfb) and tools to drive and observe it; test.sh adds Chromium and
# its WebDriver for the web console's browser test (DESKLINE_EXTRA_PACKAGES).
# The Windows support app: mingw-w64's cross-compilers (posix threads, for openh264's C++),
# and Wine to run it in the tests (scripts/build-windows.sh, agent/tests/wine.rs).
DESKLINE_PACKAGES=(
  build-essential pkg-config ca-certificates curl git
  nasm libxcb-shm0-dev libxcb-randr0-dev libxkbcommon-dev libwayland-dev libssl-dev
  xvfb xdotool x11-utils x11-xserver-utils x11-xkb-utils xinput imagemagick
  libgl1-mesa-dri libegl1 libxkbcommon-x11-0
  ffmpeg
  gcc-mingw-w64-x86-64-posix g++-mingw-w64-x86-64-posix wine wine64
  ${DESKLINE_EXTRA_PACKAGES[@]+"${DESKLINE_EXTRA_PACKAGES[@]}"}
)

deskline_missing_packages() {
  local missing=()
  for p in "${DESKLINE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

missing="$(deskline_missing_packages)"
if [ -n "$missing" ]; then
  echo "==> installing system packages: $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "==> installing the Rust toolchain (rustup)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# Debian packages are built with cargo-deb (scripts/package.sh), from crates.io.
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "==> installing cargo-deb (Debian packages)"
  cargo install --locked --quiet cargo-deb --version 3.8.0 --no-default-features
fi

# The Windows support app is cross-built with rustup's target for mingw-w64.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
  echo "==> adding the Rust target x86_64-pc-windows-gnu (the Windows support app)"
  rustup target add x86_64-pc-windows-gnu
fi
