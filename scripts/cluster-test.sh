#!/usr/bin/env bash
# Failover test of the cluster deployment, run with the same deploy/cluster/docker-compose.yml users run:
#   1. builds the release binaries, the stand-in images when missing and the taskq image (as compose-test.sh);
#   2. `up` with 2 workers (one CPU thread each) and the consumer; waits until the three RabbitMQ nodes are
#      one cluster, the classic queues mirrored, and the Sentinels see the Redis master, its replica and each
#      other; runs a 1000-item job (exact) and from its speed sizes the big job to last JOB_SECONDS;
#   3. submits a 100,000-item sum-squares job and, while it runs, one failure after another:
#      - cuts the node that leads the task queue off the network for PARTITION_SECONDS (20): with
#        pause_minority it pauses, the other two carry on; after it is reconnected the cluster heals;
#      - `docker kill`s the Redis master: Sentinel promotes a replica, the job goes on; the old master
#        comes back as a replica;
#      - `docker kill`s the RabbitMQ node that leads the task queue, checks the job goes on without it,
#        starts it again and checks the queue has its three members online again;
#   4. checks the job is exact: completed, 100,000 distinct indexes in the output file, each with the right
#      value, none missing, none twice, nothing dead-lettered; and prints, per failure, the longest time the
#      job made no progress (read from Redis every 0.2 s) and the duplicate results the consumer ignored;
#   5. `down -v`, also when something fails (after printing the containers' last log lines).
# Nothing is published but the management UIs, on ephemeral ports bound to 127.0.0.1, under the test's own
# compose project and network. Every wait is bounded. PASS/FAIL lines, the table and the final count go to
# stdout; progress, timings and diagnostics to stderr.
#
# Usage: scripts/cluster-test.sh
#   TASKQ_SKIP_CARGO_BUILD=1   use the binaries in $CARGO_TARGET_DIR/release (default target/release) as they
#                              are instead of running `cargo build --release --bins`
#   JOB_COUNT, JOB_CHUNK_SIZE  the job: JOB_COUNT (100000) items in chunks of JOB_CHUNK_SIZE (100)
#   JOB_SECONDS                how long the job should run (240): a first 1000-item job measures how fast
#                              this machine runs sum-squares, and the big job's n is chosen to last this long
#   JOB_FROM                   the big job's first n instead (no measuring)
#   PARTITION_SECONDS          how long the partitioned node stays cut off (20)
#   TASKQ_TEST_KEEP=1          keep the scratch directory (progress samples, failure times, job output)
set -euo pipefail

cd "$(dirname "$0")/.."
script_started=$(date +%s.%N)

job_count=${JOB_COUNT:-100000}
job_seconds=${JOB_SECONDS:-240}
calibration_from=2000000
calibration_count=1000
chunk_size=${JOB_CHUNK_SIZE:-100}
partition_seconds=${PARTITION_SECONDS:-20}
task_queue=taskq.tasks.sum-squares

e2e_name="cluster-test"
tmp=$(mktemp -d)
stack_up=0
poller=
# shellcheck source=scripts/lib/e2e.sh
. scripts/lib/e2e.sh
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

find_compose
use_local_images
compose_file=deploy/cluster/docker-compose.yml
dc() { "${compose[@]}" -f "$compose_file" --env-file deploy/images/local.env "$@"; }

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-taskq-cluster-test}
export TASKQ_IMAGE=${TASKQ_IMAGE:-taskq:latest}
export TASKQ_BIND_ADDRESS=127.0.0.1 TASKQ_MANAGEMENT_PORT_1=0 TASKQ_MANAGEMENT_PORT_2=0 TASKQ_MANAGEMENT_PORT_3=0
TASKQ_RABBITMQ_PASSWORD=$(random_secret)
TASKQ_REDIS_PASSWORD=$(random_secret)
TASKQ_ERLANG_COOKIE=$(random_secret)
export TASKQ_RABBITMQ_USER=taskq-test TASKQ_RABBITMQ_PASSWORD TASKQ_REDIS_PASSWORD TASKQ_ERLANG_COOKIE
export TASKQ_CPU_THREADS=1
project=$COMPOSE_PROJECT_NAME

teardown() { # bounded; safe to call twice
  if [ -n "$poller" ]; then kill "$poller" 2>/dev/null || true; poller=; fi
  [ "$stack_up" -eq 1 ] || return 0
  timeout 180 "${compose[@]}" -f "$compose_file" --env-file deploy/images/local.env \
    down -v --remove-orphans -t 10 >&2 2>&1 || true
  stack_up=0
}

finish() {
  local status=$?
  if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then
    if [ "$stack_up" -eq 1 ]; then
      log "diagnostics: containers and the last log lines"
      dc ps >&2 || true
      dc logs --tail 40 >&2 || true
    fi
  fi
  teardown
  if [ "${TASKQ_TEST_KEEP:-0}" = 1 ]; then log "kept the progress samples and outputs in $tmp"; else rm -rf "$tmp"; fi
  if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then fail "stopped early (exit status $status)"; fi
  print_timings
  log "the whole script took $(since "$script_started")s"
  printf '%s passed, %s failed\n' "$passed" "$failed"
  if [ "$failed" -gt 0 ]; then exit 1; fi
}
trap finish EXIT
trap 'fail "command failed at line $LINENO: $BASH_COMMAND"' ERR

# ------------------------------------------------------------------------------------------ images, up
build_images
check "deploy/cluster/docker-compose.yml is valid for ${compose[*]}" dc config -q

started=$(now)
stack_up=1
log "up -d --scale worker=2"
timeout 420 "${compose[@]}" -f "$compose_file" --env-file deploy/images/local.env up -d --scale worker=2 >&2 2>&1
timed "compose up (3 RabbitMQ nodes, Redis master and 2 replicas, 3 Sentinels, 2 workers, consumer)" "$started"

started=$(now)
check "the three RabbitMQ nodes run as one cluster" wait_for "a cluster of three" 60 2 cluster_whole
check "Sentinel watches master redis-master with 2 replicas and 2 other Sentinels" \
  wait_for "Sentinel's view" 30 2 sentinel_sees_all
check "the 2 workers consume $task_queue" wait_for "2 workers" 60 1 consumers_at_least "$task_queue" 2
check "the consumer consumes taskq.results" wait_for "the consumer" 60 1 consumers_at_least taskq.results 1
check "taskq.dead is mirrored on the other two nodes (policy taskq-classic-mirrored)" \
  wait_for "a mirrored dead-letter queue" 30 2 mirrored taskq.dead
timed "cluster formed, clients connected" "$started"

# ------------------------------------------------------------------------------------------ calibration
# The failures need the job to run for minutes whatever this machine's speed: a small job of the same kind
# measures it, and the big job's n (the work per item grows with n) is chosen to last about JOB_SECONDS.
started=$(now)
timeout 300 "${compose[@]}" -f "$compose_file" --env-file deploy/images/local.env run --rm -T producer \
  submit sum-squares --from "$calibration_from" --count "$calibration_count" --chunk-size "$chunk_size" \
  --wait --timeout 240 >"$tmp/calibration.json"
check "a first $calibration_count-item job on the cluster: every result exact" \
  check_results "$tmp/calibration.json" "$calibration_from" "$calibration_count"
job_from=${JOB_FROM:-$(python3 scripts/lib/cluster_report.py size "$tmp/calibration.json" "$calibration_from" \
  "$calibration_count" "$job_count" "$job_seconds")}
timed "calibration job ($calibration_count items; the big job starts at n = $job_from)" "$started"

# ------------------------------------------------------------------------------------------ the job
started=$(now)
job=$(timeout 120 "${compose[@]}" -f "$compose_file" --env-file deploy/images/local.env run --rm -T producer \
  submit sum-squares --from "$job_from" --count "$job_count" --chunk-size "$chunk_size")
check "submitted a $job_count-item job in chunks of $chunk_size: ${job:-no job id}" test -n "$job"
: >"$tmp/events.tsv"
start_poller "taskq:job:$job" "$tmp/progress.log"
check "the job makes progress" wait_for "first results" 120 1 progress_above 0

# ------------------------------------------------------------------------------------------ failures
check "the job reached 5% before the first failure" wait_for "5% of the job" 300 1 progress_above $((job_count / 20))
# The node kill last: its node's restart and rejoin are slow, and their checks need not wait for the job.
partition_queue_leader
kill_redis_master
kill_queue_leader

# ------------------------------------------------------------------------------------------ results
log "run --rm producer wait $job"
job_completed() {
  timeout 660 "${compose[@]}" -f "$compose_file" --env-file deploy/images/local.env run --rm -T producer \
    wait "$job" --timeout 600 >"$tmp/summary.json"
}
check "the job completed" job_completed
timed "the job, through three failures" "$started"
dc exec -T consumer sh -c "cat \"\$TASKQ_OUTPUT_DIR/$job.jsonl\"" >"$tmp/output.jsonl" || true
check "exact: the summary says completed, $job_count items, none failed; the output has each index once, right" \
  python3 scripts/lib/cluster_report.py check "$tmp/summary.json" "$tmp/output.jsonl" "$job_from" "$job_count" \
  "$tmp/lost"
dead=$(queue_value taskq.dead messages)
check "nothing dead-lettered (taskq.dead holds ${dead:-?} messages)" test "${dead:-1}" -eq 0
wait_for "the progress sampler to stop" 20 1 poller_done || true
python3 scripts/lib/cluster_report.py table "$tmp/progress.log" "$tmp/events.tsv" "$tmp/summary.json" "$tmp/lost"
