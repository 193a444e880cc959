#!/usr/bin/env bash
# Runs the benchmarks in release mode and prints their numbers (record them in docs/benchmarks.md
# with the machine and the date).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh >/dev/null
cargo build --release --locked -p navigator-server --bin navigator -p navigator-bench --bin ingest-bench \
    --bin queue-bench --bin search-bench --bin audit-bench
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/ingest-bench"
# queue-bench, search-bench and audit-bench also measure PostgreSQL when NAVIGATOR_TEST_DATABASE_URL is set
# (eval "$(scripts/services.sh env)"); otherwise they print that PostgreSQL was skipped.
"$target_dir/release/queue-bench"
"$target_dir/release/search-bench"
"$target_dir/release/audit-bench"
