#!/usr/bin/env bash
# The benchmark command: release binaries, real RabbitMQ and Redis, figures printed as a table.
# Arguments pick groups of scenarios (queue-ceiling, loop, throughput, round-trips, own-tasks, downloads,
# image, metrics); none runs all. With queue-ceiling and throughput both, one-item chunks are also shown as a
# share of the queue's ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
cargo build --release --workspace --bins --locked
# The image group runs Pillow's blur beside ours.
if { [ $# -eq 0 ] || [[ " $* " == *" image "* ]]; } && ! python3 -c 'import PIL' 2>/dev/null; then
  python3 -m pip install --quiet pillow || echo "bench: Pillow could not be installed; its figures are skipped" >&2
fi
cargo bench -p taskq-tests --bench end_to_end --locked -- "$@"
