#!/bin/sh
# Starts a Redis Sentinel of deploy/cluster/docker-compose.yml. Sentinel rewrites its configuration file as
# it learns the replicas, the other Sentinels and failovers, so the file is written here, into the container's
# writable data directory, rather than mounted read-only.
#   REDIS_PASSWORD     the password of the Redis servers, and of this Sentinel
#   SENTINEL_QUORUM    Sentinels that must agree the master is down before a failover (2 of 3)
#   SENTINEL_DOWN_AFTER_MS   how long the master may not answer before it counts as down
set -eu
: "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
config=/data/sentinel.conf

# Only on the first start: after a failover the file names the new master, and a restarted Sentinel must
# keep following it rather than go back to redis-master.
if [ -f "$config" ]; then exec redis-server "$config" --sentinel; fi

cat >"$config" <<CONF
port 26379
protected-mode no
# Address servers and Sentinels by their compose host names: a container's IP address may change when it
# restarts, its name does not. Both lines must come before the monitor line.
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $(hostname)
requirepass $REDIS_PASSWORD
sentinel sentinel-pass $REDIS_PASSWORD
sentinel monitor taskq redis-master 6379 ${SENTINEL_QUORUM:-2}
sentinel auth-pass taskq $REDIS_PASSWORD
sentinel down-after-milliseconds taskq ${SENTINEL_DOWN_AFTER_MS:-5000}
sentinel failover-timeout taskq 60000
sentinel parallel-syncs taskq 1
CONF

exec redis-server "$config" --sentinel
