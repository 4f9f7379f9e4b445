# The steps of scripts/cluster-test.sh and what they look at; sourced after scripts/lib/e2e.sh, with
# `project`, `tmp`, `job_count`, `chunk_size`, `task_queue` and `partition_seconds` set. Three sources of truth: the
# management HTTP API of whichever RabbitMQ node answers (the cluster's view), redis-cli inside the Sentinel
# and Redis containers, and a background sampler of the job's progress in Redis.
# shellcheck shell=bash disable=SC2154 # the settings above come from the sourcing script

# ----------------------------------------------------------------------------------- where things are
container_of() { # service -> its container's id, running or not
  docker ps -aq --no-trunc --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" | head -n 1
}

api() { # path under /api/ -> JSON from the first RabbitMQ node whose management API answers
  local service address
  for service in rabbit1 rabbit2 rabbit3; do
    # A restarted container gets a new ephemeral host port, so look it up each time.
    address=$(docker port "$(container_of "$service")" 15672 2>/dev/null | head -n 1) || continue
    [ -n "$address" ] || continue
    if curl -fsS --max-time 3 -u "$TASKQ_RABBITMQ_USER:$TASKQ_RABBITMQ_PASSWORD" "http://$address/api/$1" \
      2>/dev/null; then
      return 0
    fi
  done
  return 1
}

json() { # python expression over `d`, the JSON document on stdin -> printed
  python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

queue_value() { api "queues/%2f/$1" | json "d.get('$2') or 0"; }
queue_leader() { api "queues/%2f/$1" | json "d['leader'].split('@')[1]"; } # rabbit@rabbit2 -> rabbit2
queue_online() { # queue, n: n members, all of them online
  [ "$(api "queues/%2f/$1" | json "len(d['members']) == len(d['online']) == $2")" = True ]
}
leader_is_not() { local leader; leader=$(queue_leader "$task_queue") && [ "$leader" != "$1" ]; }
mirrored() { # classic queue: a synchronised copy on both other nodes
  [ "$(api "queues/%2f/$1" | json "len(d.get('synchronised_slave_nodes') or [])")" -eq 2 ]
}
consumers_at_least() { [ "$(queue_value "$1" consumers)" -ge "$2" ]; }
# All three nodes running and none reporting a partition.
cluster_whole() { [ "$(api nodes | json "sum(1 for n in d if n['running'] and not n.get('partitions'))")" -eq 3 ]; }
node_down() { [ "$(api nodes | json "[n['running'] for n in d if n['name'] == 'rabbit@$1'][0]")" = False ]; }

sentinel() { # redis-cli arguments -> the answer of Sentinel 1
  docker exec "$(container_of sentinel1)" redis-cli -p 26379 --raw "$@"
}
sentinel_field() { sentinel sentinel master taskq | paste - - | awk -F '\t' -v key="$1" '$1 == key { print $2 }'; }
sentinel_sees_all() {
  [ "$(sentinel_field ip)" = redis-master ] && [ "$(sentinel_field flags)" = master ] &&
    [ "$(sentinel_field num-slaves)" -eq 2 ] && [ "$(sentinel_field num-other-sentinels)" -eq 2 ]
}
redis_master() { sentinel sentinel get-master-addr-by-name taskq | head -n 1; }
master_is_not() { local master; master=$(redis_master) && [ -n "$master" ] && [ "$master" != "$1" ]; }
replica_linked() { # service: a replica whose link to its master is up
  docker exec "$(container_of "$1")" redis-cli --raw info replication | tr -d '\r' >"$tmp/replication"
  grep -qx 'role:slave' "$tmp/replication" && grep -qx 'master_link_status:up' "$tmp/replication"
}

# ----------------------------------------------------------------------------------- progress sampler
# Runs in Sentinel 1's container (it has redis-cli and outlives every failure here): every 0.2 s one
# redis-cli reads the master's clock and the job's counters, one line per sample:
# "<unix time> <master> <items_done>,<duplicates>,<status>," (or "<time> none" when the read failed). It asks
# Sentinel for the master at the start, after a failed read and every 25 samples, and stops by itself when
# the job ends, or after 20 minutes.
# shellcheck disable=SC2016 # expanded by the container's shell
poll_loop='
key=$1
master=
n=0
end=$(( $(date +%s) + 1200 ))
while [ "$(date +%s)" -lt "$end" ]; do
  if [ -z "$master" ] || [ $((n % 25)) -eq 0 ]; then
    master=$(timeout 2 redis-cli -p 26379 --raw sentinel get-master-addr-by-name taskq 2>/dev/null | head -n 1)
  fi
  n=$((n + 1))
  out=$(printf "TIME\nHMGET %s items_done duplicates status\n" "$key" |
    timeout 2 redis-cli -h "${master:-none}" --raw 2>/dev/null | tr "\n" ",")
  IFS=, read -r secs micros items dups status rest <<SAMPLE
$out
SAMPLE
  if [ -n "$micros" ]; then
    printf "%s.%06d %s %s,%s,%s,\n" "$secs" "$micros" "$master" "$items" "$dups" "$status"
  else
    echo "$(date +%s.%N) none"
    master=
  fi
  case $status in completed|failed|cancelled) exit 0 ;; esac
  sleep 0.2
done'

start_poller() { # job hash key, log file
  progress_log=$2
  docker exec "$(container_of sentinel1)" sh -c "$poll_loop" poller "$1" >"$progress_log" 2>/dev/null &
  poller=$!
}
progress_now() { # the last items_done sampled
  awk 'NF >= 3 { split($3, f, ","); if (f[1] != "") items = f[1] } END { print items + 0 }' "$progress_log"
}
progress_above() { [ "$(progress_now)" -gt "$1" ]; }
progressed_between() { # from, to (unix times), items: the samples taken in between show that much progress
  awk -v from="$1" -v to="$2" -v want="$3" '
    NF >= 3 { split($3, f, ","); if (f[1] == "") next
              if ($1 <= from) start = f[1]; else if ($1 <= to) last = f[1] }
    END { exit !(last - start >= want) }' "$progress_log"
}
poller_done() { ! kill -0 "$poller" 2>/dev/null; }

event() { # name: a failure starts now (the report measures each one until the next starts)
  printf '%s\t%s\n' "$(now)" "$1" >>"$tmp/events.tsv"
  log "$1 (at $(progress_now) items)"
}

job_running() { # before a failure: the job must still have most of its work ahead
  local reached; reached=$(progress_now)
  if [ "$reached" -ge $((job_count * 9 / 10)) ]; then
    fail "the job was at $reached of $job_count items before: $1; make it longer (JOB_FROM)"
    return 1
  fi
}

# ----------------------------------------------------------------------------------- the failures
kill_queue_leader() {
  local started leader victim at
  job_running "killing the task queue's leader" || return 0
  started=$(now)
  leader=$(queue_leader "$task_queue")
  victim=$(container_of "$leader")
  at=$(progress_now)
  docker kill "$victim" >/dev/null
  event "kill RabbitMQ $leader (queue leader)"
  check "$task_queue elected a leader among the other two nodes" wait_for "a new leader" 60 1 leader_is_not "$leader"
  check "the job went on without $leader (10 chunks past $at items)" \
    wait_for "progress" 120 1 progress_above $((at + 10 * chunk_size))
  docker start "$victim" >/dev/null
  check "$leader restarted and rejoined: three running nodes, no partition" wait_for "$leader back" 90 2 cluster_whole
  check "$task_queue has its 3 members online again" wait_for "3 online members" 60 2 queue_online "$task_queue" 3
  timed "failure 3: RabbitMQ $leader killed and restarted" "$started"
}

partition_queue_leader() {
  local started leader victim at network aliases alias cut until
  job_running "cutting off the task queue's leader" || return 0
  started=$(now)
  leader=$(queue_leader "$task_queue")
  victim=$(container_of "$leader")
  # Reconnecting must restore the names the other nodes reach it by (its service name is its node's host).
  read -r network aliases < <(docker inspect -f \
    '{{range $name, $net := .NetworkSettings.Networks}}{{$name}} {{join $net.Aliases " "}}{{end}}' "$victim")
  at=$(progress_now)
  cut=$(now)
  docker network disconnect "$network" "$victim"
  event "cut RabbitMQ $leader off for ${partition_seconds}s"
  check "the other two nodes count $leader as down" wait_for "$leader down" "$partition_seconds" 1 node_down "$leader"
  until=$((${cut%.*} + partition_seconds))
  while [ "$(date +%s)" -lt "$until" ]; do sleep 1; done # the partition lasts this long, whatever happens
  check "$leader paused itself as the minority (pause_minority)" \
    sh -c "docker logs --since ${cut%.*} '$victim' 2>&1 | grep -qi 'minority'"
  local connect=(docker network connect) healed
  for alias in $aliases; do connect+=(--alias "$alias"); done
  "${connect[@]}" "$network" "$victim"
  healed=$(now)
  check "the job went on while $leader was cut off (10 chunks from $at items, in samples taken meanwhile)" \
    progressed_between "$cut" "$healed" $((10 * chunk_size))
  check "$leader reconnected and the cluster healed: three running nodes, no partition" \
    wait_for "the cluster to heal" 90 2 cluster_whole
  check "$task_queue has its 3 members online again" wait_for "3 online members" 60 2 queue_online "$task_queue" 3
  timed "failure 1: RabbitMQ $leader cut off for ${partition_seconds}s and reconnected" "$started"
}

kill_redis_master() {
  local started master victim at promoted
  job_running "killing the Redis master" || return 0
  started=$(now)
  master=$(redis_master)
  victim=$(container_of "$master")
  at=$(progress_now)
  docker kill "$victim" >/dev/null
  event "kill Redis master $master"
  check "Sentinel promoted a new master" wait_for "a new Redis master" 60 1 master_is_not "$master"
  promoted=$(redis_master)
  check "the job went on with $promoted as master (10 chunks past $at items)" \
    wait_for "progress" 120 1 progress_above $((at + 10 * chunk_size))
  docker start "$victim" >/dev/null
  check "$master came back as a replica of $promoted" wait_for "$master as a replica" 60 2 replica_linked "$master"
  timed "failure 2: Redis master $master killed and restarted" "$started"
}
