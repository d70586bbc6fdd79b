#!/usr/bin/env bash
# The whole test suite: unit and HTTP tests, the end-to-end tests with a real Prometheus, incidents
# played in real time, and the decoder fuzzer against libprotobuf-c for a bounded time (ALIGNER_FUZZ_SECONDS, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
swift build --build-tests
# A hung test must not hold CI for its whole budget.
timeout --kill-after=30 1800 swift test --skip-build
# Nine workloads and two nodes, five in trouble, played for 4 minutes through a real Prometheus into the bundled pack.
timeout --kill-after=30 600 Tests/incidents/run.sh .build/debug/aligner 240
fuzz/run.sh "${ALIGNER_FUZZ_SECONDS:-60}"
