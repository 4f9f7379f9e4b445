# Shared by the Docker end-to-end tests (scripts/compose-test.sh, scripts/cluster-test.sh); sourced, not run.
# PASS/FAIL lines and counting, timings, bounded waits, finding docker compose, and building the images the
# compose files run: the release binaries, the local stand-ins for the public images (deploy/images/build.sh:
# these machines have a Docker engine but no registry), and the taskq image (deploy/Dockerfile, target
# `prebuilt`). The sourcing script sets `e2e_name` (its log prefix) and `tmp` (a scratch directory) first.
# shellcheck shell=bash disable=SC2154 # e2e_name and tmp come from the sourcing script

passed=0
failed=0
timings=()

log() { printf '%s: %s\n' "$e2e_name" "$*" >&2; }
pass() { printf 'PASS %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }
check() { # description, command...
  local description=$1; shift
  if "$@"; then pass "$description"; else fail "$description"; fi
}
now() { date +%s.%N; }
since() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.1f}")' "$1" "$(now)"; }
timed() { # phase name, start time
  local seconds; seconds=$(since "$2")
  timings+=("$1: ${seconds}s")
  log "$1 took ${seconds}s"
}
print_timings() { log "timings:"; local line; for line in "${timings[@]}"; do log "  $line"; done; }

wait_for() { # description, tries, seconds between, command...
  local description=$1 tries=$2 pause=$3; shift 3
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep "$pause"
  done
  log "gave up waiting for $description"
  return 1
}

# Exit 0 if a sum-squares job's summary (from `producer submit --wait` or `wait`) says completed with
# `count` items from n = `first`, none failed, each result inline and exact, and the right aggregate.
check_results() { # summary.json, first n, count: exact values against sum(i*i for i < n) = n(n-1)(2n-1)/6
  python3 - "$@" <<'EOF'
import json, sys
path, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    summary = json.load(open(path))
except ValueError as error:
    sys.exit(f"not JSON ({error}): {open(path).read()[:300]!r}")
want = [(i, n, n * (n - 1) * (2 * n - 1) // 6) for i, n in enumerate(range(start, start + count))]
problems = []
for key, expected in (("status", "completed"), ("items", count), ("failed", 0)):
    if summary.get(key) != expected:
        problems.append(f"{key} is {summary.get(key)!r}, expected {expected!r}")
got = sorted((r["index"], r["input"], r["output"]) for r in summary.get("results", []))
if got != want:
    wrong = [(g, w) for g, w in zip(got, want) if g != w][:3]
    problems.append(f"{len(got)} results, expected {count}; first differences (got, want): {wrong}")
total = sum(w[2] for w in want)
if summary.get("aggregate", {}).get("total") != total:
    problems.append(f"aggregate total {summary.get('aggregate')!r}, expected {total}")
for problem in problems:
    print(f"  {path}: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
}

random_secret() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }

# Sets `compose` to `docker compose` (v2) or `docker-compose` (v1); exits with a FAIL line if neither exists.
find_compose() {
  # shellcheck disable=SC2034 # used by the sourcing script
  if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
  else
    fail "neither \`docker compose\` nor \`docker-compose\` is installed"
    printf '%s passed, %s failed\n' "$passed" "$failed"
    exit 1
  fi
}

# Exports the stand-ins' names from deploy/images/local.env, unless the caller chose other images.
use_local_images() {
  local key value
  while IFS='=' read -r key value; do
    case $key in '' | \#*) continue ;; esac
    if [ -z "${!key:-}" ]; then export "$key=$value"; fi
  done <deploy/images/local.env
}

# The release binaries (unless TASKQ_SKIP_CARGO_BUILD=1; in $CARGO_TARGET_DIR/release, by default
# target/release), the stand-in images when missing, and the taskq image $TASKQ_IMAGE from them.
build_images() {
  local started release=${CARGO_TARGET_DIR:-target}/release
  started=$(now)
  if [ "${TASKQ_SKIP_CARGO_BUILD:-0}" != 1 ]; then
    log "cargo build --release --bins"
    cargo build --release --bins >&2
  fi
  timed "release binaries (cargo build --release --bins)" "$started"

  started=$(now)
  deploy/images/build.sh
  timed "stand-in base images (deploy/images/build.sh)" "$started"

  # The classic builder sends the whole context and ignores deploy/Dockerfile.dockerignore, so give it
  # only the three binaries, at the paths the Dockerfile's `prebuilt` stage copies from.
  started=$(now)
  mkdir -p "$tmp/context/target/release"
  cp "$release/producer" "$release/worker" "$release/consumer" "$tmp/context/target/release/"
  log "docker build -f deploy/Dockerfile --target prebuilt -t $TASKQ_IMAGE"
  docker build -q -f deploy/Dockerfile --target prebuilt --build-arg "RUNTIME_IMAGE=$TASKQ_BASE_IMAGE" \
    -t "$TASKQ_IMAGE" "$tmp/context" >&2
  timed "taskq image (deploy/Dockerfile, target prebuilt)" "$started"
}
