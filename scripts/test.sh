#!/usr/bin/env bash
# The whole test suite: installs what is needed, then lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# The web console's test drives a real headless Chromium through chromedriver.
DESKLINE_EXTRA_PACKAGES=(chromium chromium-driver)
source scripts/setup.sh

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
