#!/usr/bin/env bash
# Runs the benchmarks in release mode and prints their numbers (record them in docs/benchmarks.md
# with the machine and the date).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh >/dev/null
cargo build --release --locked -p navigator-server --bin navigator -p navigator-bench --bin ingest-bench
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/ingest-bench"
