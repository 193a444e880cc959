#!/usr/bin/env bash
# Command 2: run the whole test suite. Installs what the tests need first (the local model), then
# checks formatting and lints, then runs every test in the workspace. Under CI=true a missing
# dependency fails the run instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> fetching the local embedding model"
scripts/fetch-model.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

echo "==> cargo test"
cargo test --locked --workspace --all-features -- --test-threads=2 2>&1 | tee "${TMPDIR:-/tmp}/navigator-test.log"
grep -q "test result: ok" "${TMPDIR:-/tmp}/navigator-test.log" || { echo "no tests ran"; exit 1; }
