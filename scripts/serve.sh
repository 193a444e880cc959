#!/usr/bin/env bash
# Command 1: set up and run Navigator on the embedded default (SQLite, local blob directory,
# built-in parsers, the local all-MiniLM-L6-v2 model). Fetches the model once, builds a release
# binary, and serves on 127.0.0.1:8080 (override with --listen ADDR). Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh >/dev/null
cargo build --release --locked -p navigator-server --bin navigator
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/navigator" serve "$@"
