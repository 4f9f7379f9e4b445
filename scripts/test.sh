#!/usr/bin/env bash
# The project's test command (README, CI): makes sure RabbitMQ and Redis run (installing them from Debian's
# packages when missing), builds the binaries the end-to-end tests start, and runs the whole suite.
# Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
cargo build --workspace --bins --locked
# Every end-to-end test starts its own workers and consumer; four at a time keep a 2-core machine responsive.
cargo test --workspace --locked "$@" -- --test-threads=4
