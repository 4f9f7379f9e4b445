#!/usr/bin/env bash
# The benchmark command: release binaries, real RabbitMQ and Redis, figures printed as a table.
# Arguments pick groups of scenarios (loop, throughput, round-trips, own-tasks, downloads); none runs all.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
cargo build --release --workspace --bins --locked
cargo bench -p taskq-tests --bench end_to_end --locked -- "$@"
