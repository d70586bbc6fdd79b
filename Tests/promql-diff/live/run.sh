#!/usr/bin/env bash
# Live differential: a fake target, Debian's Prometheus scraping it and remote-writing to Aligner,
# then compare.py asks both the same queries. Loopback only; everything stops at the end.
#   Tests/promql-diff/live/run.sh [ALIGNER_BINARY] [SECONDS_OF_DATA]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
aligner=${1:-$here/../../../.build/debug/aligner}
wait_s=${2:-200}  # the earliest range point reads 170 s back
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/prometheus.yml" <<YAML
global: {scrape_interval: 2s, evaluation_interval: 2s}
scrape_configs:
  - job_name: app
    static_configs: [{targets: ['127.0.0.1:19300']}]
remote_write:
  - url: http://127.0.0.1:19095/api/v1/write
    queue_config: {batch_send_deadline: 1s, max_samples_per_send: 500}
YAML
# The subquery step Prometheus takes is its global evaluation_interval: the same here.
printf 'rules: {paths: [%s], subquery_step: 2s}\n' "$here/rules.yml" > "$work/aligner.yml"
python3 "$here/exporter.py" &
ALIGNER_DATA_DIR="$work/aligner" "$aligner" serve --listen 127.0.0.1:19095 --config "$work/aligner.yml" > "$work/aligner.log" 2>&1 &
sleep 1
prometheus --config.file="$work/prometheus.yml" --web.listen-address=127.0.0.1:19090 \
  --storage.tsdb.path="$work/prometheus" > "$work/prometheus.log" 2>&1 &
echo "collecting $wait_s s of data..."
sleep "$wait_s"
python3 "$here/compare.py"
