#!/usr/bin/env bash
# The whole test suite: installs what is needed, then lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# The web console's test drives a real headless Chromium through chromedriver; the service
# unit's test scores it with systemd-analyze (systemd's package; nothing is started); the
# package test installs deskline-relay, which depends on adduser (present on most Debian
# systems, named here for minimal ones), and validates the support app's desktop entry
# (desktop-file-utils); the container test builds the relay's image with podman; schemathesis
# is installed from PyPI into a virtualenv (python3-venv); the clipboard test reads and sets the
# X clipboard with xclip; the support app's "Send a file" opens zenity's file dialog where no
# desktop portal runs (as under Xvfb); the relay's API and desk tests run a second time on a
# throw-away PostgreSQL server (Debian's postgresql, started by scripts/with-postgres.sh).
DESKLINE_EXTRA_PACKAGES=(chromium chromium-driver systemd adduser desktop-file-utils podman python3-venv xclip zenity postgresql)
source scripts/setup.sh

echo "==> cross-building the Windows support app (its test runs it under Wine)"
bash scripts/build-windows.sh
echo "==> cargo clippy (warnings are errors), for Linux and for the Windows support app"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --locked --target x86_64-pc-windows-gnu -p deskline-agent -p deskline-net -p deskline-protocol --lib --bins -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> on PostgreSQL: the relay's API and desk tests again (the same tests, a database each), relay nodes, a browser across nodes"
bash scripts/with-postgres.sh bash -c 'cargo test -p deskline-relay --locked --lib --test api --test nodes -- --include-ignored \
    && cargo test -p deskline-relay --locked --test web_console -- --ignored'
echo "==> schemathesis: generated requests against the API's OpenAPI document (60 s)"
bash scripts/schemathesis.sh 60
echo "==> fuzzing every decoder of untrusted input (cargo-fuzz, nightly; 12 s per target)"
bash scripts/fuzz.sh 12
echo "==> the Debian packages: built from the test build, inspected, installed, upgraded, purged"
bash installers/test-packages.sh
echo "==> the relay's container image: built, exported, its entrypoint run and walked"
bash installers/test-container.sh
