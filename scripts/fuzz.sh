#!/usr/bin/env bash
# Fuzzes every decoder of untrusted input (fuzz/fuzz_targets/) with cargo-fuzz: libFuzzer with
# AddressSanitizer, on the nightly toolchain. A crash fails the run and leaves its input in
# fuzz/artifacts/TARGET/ (reproduce: cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…).
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]   (the test suite: 12 s each, a minute in all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-12}"
export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "==> installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz --version 0.13.2
fi
cd fuzz
cargo +nightly fuzz build
for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  echo "==> fuzzing $target for ${seconds}s"
  log="$(mktemp)"
  if ! cargo +nightly fuzz run "$target" "corpus/$target" ${seeds[@]+"${seeds[@]}"} -- -max_total_time="$seconds" >"$log" 2>&1; then
    grep -E -A20 "ERROR|panicked" "$log" | head -60 >&2
    echo "fuzz: $target FAILED (its input is in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E "^Done" "$log"
  rm -f "$log"
done
