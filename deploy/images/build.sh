#!/usr/bin/env bash
# Builds local stand-ins for the public images that docker-compose.yml and deploy/Dockerfile name, for a
# machine with a Docker engine but no registry (nothing can be pulled):
#   - a Debian bookworm base (stand-in for debian:bookworm-slim), made with debootstrap from Debian's mirror
#     and `docker import`ed;
#   - RabbitMQ with the management plugin (stand-in for rabbitmq:3.13-management), from Debian's package;
#   - Redis (stand-in for redis:7), from Debian's package.
# The stand-ins mimic only what the compose file relies on (ports, RABBITMQ_DEFAULT_USER/PASS, the health-check
# commands, data directories); see deploy/images/*/Dockerfile. Names come from deploy/images/local.env.
# An image that already exists is left alone (pass --force to rebuild all three). Needs root for debootstrap.
# Usage: deploy/images/build.sh [--force]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
log() { printf 'images: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

set -a
# shellcheck source=deploy/images/local.env
. "$here/local.env"
set +a
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
force=0
[ "${1:-}" = "--force" ] && force=1

work=
# The root filesystem belongs to root; remove it whatever happens (--one-file-system: never follow a mount).
cleanup() { if [ -n "$work" ]; then as_root rm -rf --one-file-system "$work"; fi; }
trap cleanup EXIT

missing() { [ "$force" -eq 1 ] || ! docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    # A fresh machine may have no package lists yet.
    as_root apt-get install -y -q debootstrap >&2 || {
      as_root apt-get update -q >&2
      as_root apt-get install -y -q debootstrap >&2
    }
  }
  local root
  work=$(mktemp -d /var/tmp/taskq-rootfs.XXXXXX)
  root=$work/rootfs
  log "debootstrap bookworm (minbase) from $mirror into $root"
  as_root debootstrap --variant=minbase bookworm "$root" "$mirror" >&2

  # What the official Debian images configure: full sources, no services started by package scripts
  # (there is no init in a container), no docs or caches kept in layers.
  as_root tee "$root/etc/apt/sources.list" >/dev/null <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security_mirror bookworm-security main
EOF
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$root/usr/sbin/policy-rc.d" >/dev/null
  as_root chmod 755 "$root/usr/sbin/policy-rc.d"
  as_root tee "$root/etc/dpkg/dpkg.cfg.d/docker-slim" >/dev/null <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
EOF
  as_root tee "$root/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Install-Recommends "false";
Acquire::Languages "none";
EOF
  as_root find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  as_root rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/dev/* \
    "$root"/tmp/* "$root"/etc/hostname "$root"/etc/resolv.conf

  log "importing $TASKQ_BASE_IMAGE"
  as_root tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase bookworm $mirror" \
    - "$TASKQ_BASE_IMAGE" >/dev/null
}

build_on_base() { # image, directory under deploy/images
  log "building $1 from deploy/images/$2"
  docker build -q --build-arg "BASE_IMAGE=$TASKQ_BASE_IMAGE" -t "$1" "$here/$2" >/dev/null
}

if missing "$TASKQ_BASE_IMAGE"; then build_base; else log "$TASKQ_BASE_IMAGE exists"; fi
if missing "$TASKQ_RABBITMQ_IMAGE"; then build_on_base "$TASKQ_RABBITMQ_IMAGE" rabbitmq; else log "$TASKQ_RABBITMQ_IMAGE exists"; fi
if missing "$TASKQ_REDIS_IMAGE"; then build_on_base "$TASKQ_REDIS_IMAGE" redis; else log "$TASKQ_REDIS_IMAGE exists"; fi
