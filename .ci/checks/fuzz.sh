#!/usr/bin/env bash
# Fuzzes the envelope scanner (src/forward/scan.rs) for a minute with cargo-fuzz: the target
# (fuzz/fuzz_targets/scan_envelope.rs) runs the same agreement check against serde_json as the
# property test. Fails on a panic, a disagreement or a sanitizer report; libFuzzer prints the
# input, and keeps it in fuzz/artifacts/scan_envelope/ to replay with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run scan_envelope fuzz/artifacts/scan_envelope/<file>`.
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_FUZZ=0.13.2
SECONDS_TO_FUZZ=${FUZZ_SECONDS:-60}

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ" ]; then
  echo "installing cargo-fuzz $CARGO_FUZZ"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ"
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); the stable toolchain here accepts
# them under RUSTC_BOOTSTRAP, and no nightly toolchain can be fetched.
export RUSTC_BOOTSTRAP=1

# The corpus grows in target/ (never committed); the committed seeds are read, not written.
corpus=target/fuzz-corpus/scan_envelope
mkdir -p "$corpus"
cargo fuzz build scan_envelope
cargo fuzz run scan_envelope "$corpus" fuzz/seeds/scan_envelope -- \
  -max_total_time="$SECONDS_TO_FUZZ" -dict=fuzz/scan_envelope.dict -print_final_stats=1
echo "fuzz check passed: scan_envelope ran ${SECONDS_TO_FUZZ}s without a failure"
