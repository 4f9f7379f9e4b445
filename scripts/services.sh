#!/usr/bin/env bash
# Installs (when missing) and starts the two services taskq needs on this host, for development and tests:
# RabbitMQ with the management and Prometheus plugins, and Redis. Also installs Prometheus itself (not
# started: the scrape test runs its own). Idempotent: running it again leaves running services alone.
# Uses Debian's packages; on other systems start them your own way (or `docker compose up -d rabbitmq redis`).
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
  local missing=()
  command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
  command -v redis-server >/dev/null || missing+=(redis-server)
  # Prometheus and promtool, for the scrape test (tests/integration/metrics.rs); without the exporters
  # Debian recommends.
  command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]} from Debian's packages"
  as_root apt-get update -q
  # policy-rc.d may forbid starting services at install time; we start them ourselves below.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
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
    printf '%s\n' 'listeners.tcp.default = 127.0.0.1:5672' 'management.tcp.ip = 127.0.0.1' \
      'prometheus.tcp.ip = 127.0.0.1' | as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null
    as_root rabbitmq-plugins --offline enable rabbitmq_management rabbitmq_prometheus >/dev/null
    as_root chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq 2>/dev/null || true
    as_root runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq rabbitmq-server -detached
  fi
  wait_for rabbitmq 90 as_root rabbitmq-diagnostics -q check_port_connectivity
  wait_for "rabbitmq management" 60 curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview
  enable_prometheus_plugin
  wait_for "rabbitmq metrics" 60 curl -fsS -o /dev/null http://127.0.0.1:15692/metrics
}

# A broker started before the Prometheus plugin was part of this script gets it without a restart, on
# loopback like the other listeners (the setting the configuration file gives a fresh start).
enable_prometheus_plugin() {
  as_root rabbitmq-plugins -q is_enabled rabbitmq_prometheus >/dev/null 2>&1 && return
  log "enabling rabbitmq_prometheus (metrics on http://127.0.0.1:15692/metrics)"
  as_root rabbitmqctl -q eval \
    'application:set_env(rabbitmq_prometheus, tcp_config, [{ip, "127.0.0.1"}, {port, 15692}]).' >/dev/null
  as_root rabbitmq-plugins -q enable rabbitmq_prometheus >/dev/null
}

install_missing
start_redis
start_rabbitmq
log "ready: AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f REDIS_URL=redis://127.0.0.1:6379"
