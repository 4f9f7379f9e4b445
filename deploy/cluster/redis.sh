#!/bin/sh
# Starts a Redis server of deploy/cluster/docker-compose.yml, the master or a replica. Every server keeps an
# append-only file (a restarted one comes back with its data), refuses writes while no replica follows it
# (a master cut off from the others must not go on alone: the Sentinels promote another), and announces its
# host name rather than its address, which may change when the container restarts.
#   REDIS_PASSWORD    what clients and replicas give, and what this server gives the master it follows
#   REDIS_REPLICAOF   host name of the master to follow at first start; empty: start as the master.
#                     After a failover Sentinel tells each server whom to follow, whatever this says.
set -eu
: "${REDIS_PASSWORD:?set REDIS_PASSWORD}"

set -- redis-server --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD" --appendonly yes \
  --min-replicas-to-write 1 --replica-announce-ip "$(hostname)"
if [ -n "${REDIS_REPLICAOF:-}" ]; then set -- "$@" --replicaof "$REDIS_REPLICAOF" 6379; fi
# The image's entry point, as for any redis-server command (the stand-in's turns protected mode off).
exec docker-entrypoint.sh "$@"
