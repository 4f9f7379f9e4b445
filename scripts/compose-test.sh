#!/usr/bin/env bash
# End-to-end test of the Docker deployment, run with the same docker-compose.yml users run:
#   1. builds the release binaries, the local stand-ins for the public images when they are missing
#      (deploy/images/build.sh: this machine has a Docker engine but no registry), and the taskq image from
#      deploy/Dockerfile (target `prebuilt`, from those binaries);
#   2. `up` with 3 workers, each on one CPU thread so work queues up, and the consumer;
#   3. the seed job from the producer service, every result checked against the closed form, and counted in
#      the workers' and the consumer's /metrics; RabbitMQ's Prometheus metrics on their published port;
#   4. a bigger job: reads the task queue's depth from the management HTTP API while work is queued, kills a
#      busy worker (SIGKILL), stops another gracefully (SIGTERM), scales to 1 worker, and checks the job still
#      completes with exact results, the killed worker's chunks redelivered and nothing dead-lettered;
#   5. scales the compose workers to 0 and runs the seed job on a worker started outside the project with
#      `docker run`, reaching the broker and Redis only through the published ports and AMQP_URL/REDIS_URL,
#      as a worker on another host would;
#   6. `down -v`, also when something fails.
# Ports are published on 127.0.0.1 only, on ephemeral host ports, under the test's own compose project, so it
# runs beside the RabbitMQ and Redis a developer may have on this host. Every wait is bounded.
# PASS/FAIL lines and the final count go to stdout; progress, timings and diagnostics to stderr.
#
# Usage: scripts/compose-test.sh
#   TASKQ_SKIP_CARGO_BUILD=1   use the binaries in $CARGO_TARGET_DIR/release (default target/release) as they
#                              are instead of running `cargo build --release --bins`
#   BIG_FROM, BIG_COUNT        the bigger job (default 1000000000, 24: about 1 s of CPU per item)
set -euo pipefail

cd "$(dirname "$0")/.."

big_from=${BIG_FROM:-1000000000}
big_count=${BIG_COUNT:-24}
seed_from=5000000
seed_count=20

e2e_name="compose-test"
tmp=$(mktemp -d)
stack_up=0
# shellcheck source=scripts/lib/e2e.sh
. scripts/lib/e2e.sh

# ---------------------------------------------------------------------------------------------- compose
find_compose
dc() { "${compose[@]}" --env-file deploy/images/local.env "$@"; }
use_local_images

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-taskq-compose-test}
export TASKQ_IMAGE=${TASKQ_IMAGE:-taskq:latest}
export TASKQ_BIND_ADDRESS=127.0.0.1 TASKQ_AMQP_PORT=0 TASKQ_MANAGEMENT_PORT=0 TASKQ_REDIS_PORT=0 \
  TASKQ_RABBITMQ_METRICS_PORT=0
TASKQ_RABBITMQ_PASSWORD=$(random_secret)
TASKQ_REDIS_PASSWORD=$(random_secret)
export TASKQ_RABBITMQ_USER=taskq-test TASKQ_RABBITMQ_PASSWORD TASKQ_REDIS_PASSWORD
export TASKQ_CPU_THREADS=1
project=$COMPOSE_PROJECT_NAME

diagnostics() {
  log "diagnostics: containers and the last log lines"
  dc ps >&2 || true
  dc logs --tail 30 >&2 || true
}

remote_worker=$project-remote-worker

teardown() { # bounded; safe to call twice
  docker rm -f "$remote_worker" >/dev/null 2>&1 || true
  [ "$stack_up" -eq 1 ] || return 0
  timeout 180 "${compose[@]}" --env-file deploy/images/local.env down -v --remove-orphans -t 10 >&2 2>&1 || true
  stack_up=0
}

finish() {
  local status=$?
  if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then
    [ "$stack_up" -eq 1 ] && diagnostics
  fi
  teardown
  rm -rf "$tmp"
  if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then fail "stopped early (exit status $status)"; fi
  print_timings
  printf '%s passed, %s failed\n' "$passed" "$failed"
  if [ "$failed" -gt 0 ]; then exit 1; fi
}
trap finish EXIT
trap 'fail "command failed at line $LINENO: $BASH_COMMAND"' ERR

# ----------------------------------------------------------------------------------------- helpers
running_workers() {
  docker ps -q --no-trunc --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=worker"
}

api() { # path under /api/
  curl -fsS --max-time 5 -u "$TASKQ_RABBITMQ_USER:$TASKQ_RABBITMQ_PASSWORD" "http://$ui/api/$1"
}

queue_stats() { # queue -> "messages ready unacked consumers redelivered" (the management API's view)
  api "queues/%2f/$1" 2>/dev/null | python3 -c '
import json, sys
q = json.load(sys.stdin)
stats = q.get("message_stats") or {}
print(*(int(q.get(k) or 0) for k in ("messages", "messages_ready", "messages_unacknowledged", "consumers")),
      int(stats.get("redeliver") or 0))' 2>/dev/null
}

queue_field() { # position in queue_stats' line (1-5), queue -> that number (0 when the API has no answer)
  local values
  values=$(queue_stats "$2" || echo 0 0 0 0 0)
  # shellcheck disable=SC2086 # split the line into its numbers
  set -- "$1" $values
  shift "$1"
  echo "$1"
}

metric_sum() { # metric name with labels, container ids -> the sum of that series over their /metrics
  local series=$1 id; shift
  for id in "$@"; do
    # The port is not published; the images have no curl, so bash's /dev/tcp on the container's loopback.
    docker exec "$id" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9100 &&
      printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3'
  done | python3 -c '
import sys
series = sys.argv[1]
print(int(sum(float(line.split()[-1]) for line in sys.stdin if line.startswith(series + " "))))' "$series"
}

live_table() { # rabbitmqctl list_* command and columns -> JSON rows, read live from the broker
  # Not the management API: its statistics lag by up to 5 s, long enough for a worker to finish
  # what the API still shows it holding.
  dc exec -T rabbitmq rabbitmqctl -q "$@" --formatter json 2>/dev/null || echo '[]'
}

busiest_worker() { # the running worker whose channels hold the most unacknowledged chunks now, and how many
  local pairs=() id ip
  for id in $(running_workers); do
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
    pairs+=("$ip=$id")
  done
  python3 -c '
import json, sys
by_ip = dict(pair.split("=", 1) for pair in sys.argv[3:])
import ipaddress
def address(host):  # rabbitmqctl gives an address as a list: 4 octets, or 8 IPv6 groups (IPv4-mapped)
    if isinstance(host, list) and len(host) == 8:
        v6 = ipaddress.IPv6Address(b"".join(group.to_bytes(2, "big") for group in host))
        return str(v6.ipv4_mapped or v6)
    return ".".join(map(str, host)) if isinstance(host, list) else str(host)
peer = {row["pid"]: address(row["peer_host"]) for row in json.loads(sys.argv[1])}
held = {}
for channel in json.loads(sys.argv[2]):
    container = by_ip.get(peer.get(channel["connection"]))
    if container:
        held[container] = held.get(container, 0) + int(channel.get("messages_unacknowledged") or 0)
container, count = max(held.items(), key=lambda item: item[1], default=(next(iter(by_ip.values())), 0))
print(container, count)' "$(live_table list_connections pid peer_host)" \
    "$(live_table list_channels connection messages_unacknowledged)" "${pairs[@]}"
}

# ------------------------------------------------------------------------------------------ images
build_images
check "the taskq image runs its binaries as a non-root user ($(docker run --rm "$TASKQ_IMAGE" worker --version))" \
  test "$(docker run --rm "$TASKQ_IMAGE" id -u)" = 10001

# ------------------------------------------------------------------------------------------ up
compose_version=$("${compose[@]}" version --short 2>/dev/null || "${compose[@]}" version | head -1)
check "docker-compose.yml is valid for ${compose[*]} $compose_version" dc config -q

started=$(now)
stack_up=1
log "up -d --scale worker=3"
timeout 300 "${compose[@]}" --env-file deploy/images/local.env up -d --scale worker=3 >&2 2>&1
timed "compose up (3 workers, waits for healthy rabbitmq and redis)" "$started"

for service in rabbitmq redis; do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$(dc ps -q "$service")")
  check "$service is healthy (its compose health check)" test "$health" = healthy
done
ui=$(dc port rabbitmq 15672)
check "the management UI answers on http://$ui" curl -fsS --max-time 5 -o /dev/null "http://$ui/"
check "3 worker containers are running" test "$(running_workers | wc -l)" -eq 3
three_consumers() { [ "$(queue_field 4 taskq.tasks.sum-squares)" -ge 3 ]; }
check "the management API shows the 3 workers consuming taskq.tasks.sum-squares" wait_for "3 consumers" 40 1 three_consumers

# ------------------------------------------------------------------------------------------ seed job
started=$(now)
log "run --rm producer submit sum-squares --from $seed_from --count $seed_count --wait"
timeout 180 "${compose[@]}" --env-file deploy/images/local.env run --rm -T producer \
  submit sum-squares --from "$seed_from" --count "$seed_count" --wait --timeout 120 >"$tmp/seed.json"
timed "seed job (20 items, 3 workers)" "$started"
check "seed job: the producer's summary has all $seed_count exact results and the aggregate" \
  check_results "$tmp/seed.json" "$seed_from" "$seed_count"

# ------------------------------------------------------------------------------------------ metrics
# shellcheck disable=SC2046 # one id per worker container
worker_items=$(metric_sum 'taskq_worker_items_total{kind="sum-squares",stage="0",outcome="ok"}' $(running_workers))
check "the workers' /metrics count the seed job's $seed_count items (got $worker_items)" \
  test "$worker_items" -eq "$seed_count"
seed_chunks=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["chunks"])' "$tmp/seed.json")
recorded=$(metric_sum 'taskq_consumer_results_recorded_total{kind="sum-squares"}' "$(dc ps -q consumer)")
check "the consumer's /metrics count the seed job's $seed_chunks results (got $recorded)" \
  test "$recorded" -eq "$seed_chunks"
rabbitmq_metrics=$(dc port rabbitmq 15692)
queue_metrics() {
  curl -fsS --max-time 5 "http://$rabbitmq_metrics/metrics/detailed?family=queue_consumer_count" |
    grep -q '^rabbitmq_detailed_queue_consumers{vhost="/",queue="taskq.tasks.sum-squares"} 3'
}
check "RabbitMQ's Prometheus metrics on http://$rabbitmq_metrics show the 3 workers consuming" \
  wait_for "RabbitMQ's queue metrics" 20 1 queue_metrics

# ------------------------------------------------------------------------------------------ big job
started=$(now)
job=$(timeout 60 "${compose[@]}" --env-file deploy/images/local.env run --rm -T producer \
  submit sum-squares --from "$big_from" --count "$big_count")
log "submitted job $job ($big_count items from n=$big_from)"
check "the producer printed a job id" test -n "$job"

# Queue statistics reach the API every few seconds; poll until they show queued work.
depth=""
for _ in $(seq 60); do
  read -r messages ready unacked consumers _ < <(queue_stats taskq.tasks.sum-squares || echo 0 0 0 0 0)
  log "taskq.tasks.sum-squares: messages=$messages ready=$ready unacknowledged=$unacked consumers=$consumers"
  if [ "$ready" -gt 0 ] && [ "$unacked" -gt 0 ]; then
    depth="messages=$messages (ready $ready + unacknowledged $unacked), consumers=$consumers"
    break
  fi
  sleep 0.5
done
check "queue depth read from the management API while work is queued: ${depth:-none seen}" \
  test -n "$depth" -a "${messages:-0}" -eq "$((ready + unacked))"

# Wait until some worker holds chunks (read live from the broker) and kill that one.
for _ in $(seq 10); do
  read -r victim held < <(busiest_worker)
  if [ "$held" -gt 0 ]; then break; fi
  sleep 0.5
done
docker kill -s KILL "$victim" >/dev/null
log "killed worker ${victim:0:12} (holding $held unacknowledged chunks per the API)"
check "killed worker ${victim:0:12} mid-job with SIGKILL (it held $held unacknowledged chunks)" \
  test "$held" -gt 0 -a "$(docker inspect -f '{{.State.ExitCode}}' "$victim")" -eq 137

read -r stopping _ < <(busiest_worker)
stop_started=$(now)
docker stop -t 45 "$stopping" >/dev/null
stop_seconds=$(since "$stop_started")
stopped_cleanly() { # container: exit status 0 after logging the graceful stop
  [ "$(docker inspect -f '{{.State.ExitCode}}' "$1")" -eq 0 ] &&
    docker logs "$1" 2>&1 | grep "stop requested" >/dev/null
}
check "worker ${stopping:0:12} stopped gracefully on SIGTERM in ${stop_seconds}s (exit 0, within the 45 s grace period)" \
  stopped_cleanly "$stopping"

scale_started=$(now)
log "up -d --scale worker=1"
timeout 180 "${compose[@]}" --env-file deploy/images/local.env up -d --scale worker=1 >&2 2>&1
check "scaled to 1 worker in $(since "$scale_started")s" test "$(running_workers | wc -l)" -eq 1

read -r messages ready unacked consumers _ < <(queue_stats taskq.tasks.sum-squares || echo 0 0 0 0 0)
log "after the kill, the stop and the scale-down: messages=$messages ready=$ready unacknowledged=$unacked consumers=$consumers"
log "run --rm producer wait $job"
timeout 360 "${compose[@]}" --env-file deploy/images/local.env run --rm -T producer \
  wait "$job" --timeout 300 >"$tmp/big.json"
timed "big job ($big_count items; worker killed, one stopped, scaled to 1)" "$started"
check "big job: all $big_count exact results and the aggregate despite the killed worker" \
  check_results "$tmp/big.json" "$big_from" "$big_count"

redelivered() { [ "$(queue_field 5 taskq.tasks.sum-squares)" -gt 0 ]; }
drained() { [ "$(queue_field 1 taskq.tasks.sum-squares)" -eq 0 ] && [ "$(queue_field 4 taskq.tasks.sum-squares)" -gt 0 ]; }
check "the broker redelivered the killed worker's chunks (redeliver counter > 0)" \
  wait_for "redeliveries in the statistics" 20 1 redelivered
check "taskq.tasks.sum-squares drained" wait_for "an empty task queue" 20 1 drained
read -r dead _ < <(queue_stats taskq.dead || echo 1)
check "nothing dead-lettered (taskq.dead holds $dead messages)" test "$dead" -eq 0

dc exec -T consumer sh -c "cat \"\$TASKQ_OUTPUT_DIR/$job.summary.json\"" >"$tmp/big.summary.json" || true
lines=$(dc exec -T consumer sh -c "wc -l < \"\$TASKQ_OUTPUT_DIR/$job.jsonl\"" | tr -d ' \r' || true)
output_complete() { [ "$lines" = "$big_count" ] && check_results "$tmp/big.summary.json" "$big_from" "$big_count"; }
check "the consumer's output volume holds the job's summary (exact) and $big_count result lines (got ${lines:-none})" \
  output_complete

# ------------------------------------------------------------------------------------------ remote worker
started=$(now)
timeout 180 "${compose[@]}" --env-file deploy/images/local.env up -d --scale worker=0 >&2 2>&1
check "scaled the compose workers to 0" test "$(running_workers | wc -l)" -eq 0
amqp=$(dc port rabbitmq 5672)
redis=$(dc port redis 6379)
docker run -d --name "$remote_worker" --network host --stop-timeout 45 \
  -e "AMQP_URL=amqp://$TASKQ_RABBITMQ_USER:$TASKQ_RABBITMQ_PASSWORD@$amqp/%2f" \
  -e "REDIS_URL=redis://:$TASKQ_REDIS_PASSWORD@$redis" \
  -e TASKQ_WORKER_ID=remote-worker -e TASKQ_CPU_THREADS=1 \
  "$TASKQ_IMAGE" worker >/dev/null
one_consumer() { [ "$(queue_field 4 taskq.tasks.sum-squares)" -eq 1 ]; }
check "a worker outside the project (docker run, published ports $amqp and $redis) consumes the task queue" \
  wait_for "the outside worker" 40 1 one_consumer
timeout 180 "${compose[@]}" --env-file deploy/images/local.env run --rm -T producer \
  submit sum-squares --from "$seed_from" --count "$seed_count" --wait --timeout 120 >"$tmp/remote.json"
check "seed job run by that worker alone: all $seed_count exact results" \
  check_results "$tmp/remote.json" "$seed_from" "$seed_count"
docker stop -t 45 "$remote_worker" >/dev/null
check "the outside worker stopped gracefully on SIGTERM" stopped_cleanly "$remote_worker"
docker rm "$remote_worker" >/dev/null
timed "outside worker (scale to 0, docker run worker, seed job)" "$started"

# ------------------------------------------------------------------------------------------ down
started=$(now)
timeout 180 "${compose[@]}" --env-file deploy/images/local.env down -v --remove-orphans >&2 2>&1
stack_up=0
timed "compose down -v" "$started"
left=$(docker ps -aq --filter "label=com.docker.compose.project=$project" | wc -l)
volumes=$(docker volume ls -q --filter "label=com.docker.compose.project=$project" | wc -l)
check "down -v removed every container ($left left) and volume ($volumes left)" test "$left" -eq 0 -a "$volumes" -eq 0
