#!/bin/sh
# The official image's redis-server is built with protected mode off, so other containers may connect
# without a password; Debian's is not, so say it on the command line (later arguments still override it).
set -eu

if [ "${1:-}" = redis-server ]; then
  shift
  set -- redis-server --protected-mode no "$@"
fi
exec "$@"
