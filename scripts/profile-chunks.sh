#!/usr/bin/env bash
# CPU-seconds per process (RabbitMQ, Redis, 2 workers, consumer) and items/s for
# `square 1..=N --chunk-size 1`: where the per-message cost goes. Compare two builds side by side by
# alternating runs with BIN pointing at each build's release binaries; the machine is noisy.
#   BIN=target/release N=20000 scripts/profile-chunks.sh      (WARM=1: a 1,000,000-item job first)
# Needs RabbitMQ and Redis running (scripts/services.sh); cleans up with rabbitmqctl and the management API.
set -euo pipefail
BIN=$(realpath "${BIN:-target/release}")
N=${N:-20000}
PREFIX=profile$$
WORK=$(mktemp -d)
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f} REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export TASKQ_PREFIX=$PREFIX TASKQ_OUTPUT_DIR=$WORK RUST_LOG=warn

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cleanup() {
    kill "${PIDS[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    for queue in $(rabbitmqctl -q list_queues name 2>/dev/null | grep "^$PREFIX\." || true); do
        rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || true
    done
    for exchange in $(rabbitmqctl -q list_exchanges name 2>/dev/null | grep "^$PREFIX\." || true); do
        curl -s -u guest:guest -X DELETE "http://127.0.0.1:15672/api/exchanges/%2f/$exchange" >/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/worker" 2>"$WORK/worker-1.log" & PIDS=($!)
"$BIN/worker" 2>"$WORK/worker-2.log" & PIDS+=($!)
"$BIN/consumer" 2>"$WORK/consumer.log" & PIDS+=($!)
sleep 2
if [ "${WARM:-0}" = 1 ]; then
    "$BIN/producer" submit square --values 1..=1000000 --wait >/dev/null
fi
PROCESSES=("$(pgrep -f beam.smp | head -1)" "$(pgrep redis-server | head -1)" "${PIDS[@]}")
declare -A BEFORE
for pid in "${PROCESSES[@]}"; do BEFORE[$pid]=$(ticks "$pid"); done
START=$(date +%s.%N)
"$BIN/producer" submit square --values "1..=$N" --chunk-size 1 --wait >/dev/null
END=$(date +%s.%N)
HZ=$(getconf CLK_TCK)
cpu() { echo "scale=2; ($(ticks "$1") - ${BEFORE[$1]}) / $HZ" | bc; }
printf 'wall %.2f s, %.0f items/s | CPU-s: rabbitmq %s, redis %s, worker-1 %s, worker-2 %s, consumer %s\n' \
    "$(echo "$END - $START" | bc)" "$(echo "$N / ($END - $START)" | bc -l)" \
    "$(cpu "${PROCESSES[0]}")" "$(cpu "${PROCESSES[1]}")" "$(cpu "${PIDS[0]}")" "$(cpu "${PIDS[1]}")" "$(cpu "${PIDS[2]}")"
