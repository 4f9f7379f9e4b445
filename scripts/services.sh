#!/usr/bin/env bash
# Installs (when missing) and starts the two services taskq needs on this host, for development and tests:
# RabbitMQ with the management plugin, and Redis. Idempotent: running it again leaves running services alone.
# Uses Debian's packages; on other systems start them your own way (or `docker compose up -d rabbitmq redis`).
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
  local missing=()
  command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]} from Debian's packages"
  as_root apt-get update -q
  # policy-rc.d may forbid starting services at install time; we start them ourselves below.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

wait_for() { # name, tries, command...
  local name=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "$name did not come up; see its log above or in /var/log"; return 1
}

start_redis() {
  if redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then log "redis already running"; return; fi
  log "starting redis on 127.0.0.1:6379"
  # Append-only file, synced every second: job state survives a Redis restart.
  as_root mkdir -p /var/lib/taskq-redis
  as_root redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --dir /var/lib/taskq-redis \
    --appendonly yes --appendfsync everysec --save '' --logfile /var/lib/taskq-redis/redis.log
  wait_for redis 30 redis-cli -h 127.0.0.1 ping
}

start_rabbitmq() {
  if as_root rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then
    log "rabbitmq already running"
  else
    log "starting rabbitmq on 127.0.0.1:5672 (management UI on http://127.0.0.1:15672, guest/guest)"
    as_root mkdir -p /etc/rabbitmq
    # Loopback only: tests and development never expose the broker.
    printf 'listeners.tcp.default = 127.0.0.1:5672\nmanagement.tcp.ip = 127.0.0.1\n' \
      | as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null
    as_root rabbitmq-plugins --offline enable rabbitmq_management >/dev/null
    as_root chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq 2>/dev/null || true
    as_root runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq rabbitmq-server -detached
  fi
  wait_for rabbitmq 90 as_root rabbitmq-diagnostics -q check_port_connectivity
  wait_for "rabbitmq management" 60 curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview
}

install_missing
start_redis
start_rabbitmq
log "ready: AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f REDIS_URL=redis://127.0.0.1:6379"
