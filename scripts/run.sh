#!/usr/bin/env bash
# Builds Aligner (release) and runs it with the bundled defaults: listens on 127.0.0.1:9095.
# Extra arguments go to `aligner serve` (for example --listen 0.0.0.0:9095 or --config aligner.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
swift build -c release --product aligner
exec .build/release/aligner serve "$@"
