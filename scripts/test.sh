#!/usr/bin/env bash
# Command 2: run the whole test suite. Installs and starts what the tests need first (the local
# model; PostgreSQL with pgvector on loopback, stopped again at exit), then
# checks formatting and lints, then runs every test in the workspace. Under CI=true a missing
# dependency fails the run instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> fetching the local embedding model"
scripts/fetch-model.sh

echo "==> starting test services (PostgreSQL + pgvector on loopback)"
log="$(mktemp)"
trap 'rm -f "$log"; scripts/services.sh stop >/dev/null 2>&1' EXIT
eval "$(scripts/services.sh start)"

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

echo "==> cargo test"
cargo test --locked --workspace --all-features -- --test-threads=2 2>&1 | tee "$log"

# cargo prints one "test result" line per test binary, the last of them a doc-test binary that may
# run nothing; close with the totals so the run's last line says how many tests ran.
awk '/^test result:/ { p += $4; f += $6 } END {
  if (p == 0) { print "no tests ran"; exit 1 }
  printf "summary: %d passed, %d failed\n", p, f
}' "$log"
