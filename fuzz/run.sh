#!/usr/bin/env bash
# Builds the libFuzzer target (fast remote-write decoder against libprotobuf-c) and runs it for a
# bounded time: fuzz/run.sh [seconds, default 60]. Crashes and disagreements are written to
# fuzz/out/; replay one with: swift run aligner-fuzz fuzz/out/crash-*
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
swift build -c release --scratch-path .build-fuzz --product aligner-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld -Xcc -fsanitize=fuzzer-no-link,address
mkdir -p fuzz/corpus fuzz/out
# Seed the corpus with the committed seeds (valid 1.0 and 2.0 bodies with a selector byte).
cp -n fuzz/seeds/* fuzz/corpus/ 2>/dev/null || true
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
  .build-fuzz/release/aligner-fuzz fuzz/corpus -max_total_time="$seconds" -max_len=4096 \
  -artifact_prefix=fuzz/out/ -print_final_stats=1 2>&1 | tail -n 25
