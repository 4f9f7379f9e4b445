#!/usr/bin/env bash
# The main job, on this machine: starts RabbitMQ and Redis (installing them if needed), two workers and a
# consumer, submits the seed job (sum(i*i for i in range(n)) for n = 5,000,000..5,000,019), prints its
# summary, and stops the processes it started. Output files land in ./output.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
cargo build --release --bins --locked --quiet
bin=target/release
export TASKQ_PREFIX=${TASKQ_PREFIX:-taskq} TASKQ_OUTPUT_DIR=${TASKQ_OUTPUT_DIR:-output}
logs=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; echo "logs: $logs" >&2' EXIT
for i in 1 2; do "$bin/worker" 2>"$logs/worker-$i.log" & pids+=($!); done
"$bin/consumer" 2>"$logs/consumer.log" & pids+=($!)

"$bin/producer" submit sum-squares --from 5000000 --count 20 --wait
