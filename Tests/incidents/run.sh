#!/usr/bin/env bash
# Ten workloads and two nodes, six in trouble, played in real time (Tests/incidents/exporter.py):
# Debian's Prometheus scrapes them every 5 s and remote-writes to an Aligner running the bundled
# pack with its defaults; after the play, each troubled subject must have exactly one event of the
# expected class and no other subject any. Loopback only; everything stops at the end.
#   [SCRAPE_INTERVAL=5s] Tests/incidents/run.sh [ALIGNER_BINARY] [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
aligner=${1:-$here/../../.build/debug/aligner}
play_s=${2:-240}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/prometheus.yml" <<YAML
global: {scrape_interval: ${SCRAPE_INTERVAL:-5s}, evaluation_interval: 5s}
scrape_configs:
  - job_name: cluster
    honor_labels: true
    static_configs: [{targets: ['127.0.0.1:19310']}]
remote_write:
  - url: http://127.0.0.1:19096/api/v1/write
    queue_config: {batch_send_deadline: 1s}
YAML
# The bundled pack, with every other setting at its default.
printf 'rules: {paths: [%s]}\nevents: {data_dir: %s}\n' "$here/../../rules/kubernetes.yml" "$work/data" > "$work/aligner.yml"
"$aligner" serve --listen 127.0.0.1:19096 --config "$work/aligner.yml" > "$work/aligner.log" 2>&1 &
python3 "$here/exporter.py" 19310 &
sleep 1
prometheus --config.file="$work/prometheus.yml" --web.listen-address=127.0.0.1:19091 \
  --storage.tsdb.path="$work/prometheus" > "$work/prometheus.log" 2>&1 &
echo "playing $play_s s..."
sleep "$play_s"
curl -sf http://127.0.0.1:19096/api/v1/events > "${EVENTS_OUT:-$work/events.json}"
python3 - "$here" "${EVENTS_OUT:-$work/events.json}" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
from exporter import EXPECTED, QUIET
events = json.load(open(sys.argv[2]))['data']
by_subject = {}
for e in events:
    s = e['subject']
    by_subject.setdefault(f"{s['namespace']}/{s['kind']}/{s['name']}", []).append(e)
failures = []
for subject, cls in EXPECTED.items():
    got = by_subject.get(subject, [])
    if len(got) != 1:
        failures.append(f'{subject}: {len(got)} events, want 1')
    elif got[0]['class'] not in (cls if isinstance(cls, tuple) else (cls,)):
        failures.append(f"{subject}: class {got[0]['class']}, want {cls}")
for subject in by_subject:
    if subject not in EXPECTED:
        failures.append(f'{subject}: an event, want none' + (' (a quiet workload)' if subject in QUIET else ''))
for subject, got in sorted(by_subject.items()):
    for e in got:
        print(f"{subject}: {e['id']} {e['class']} {e['state']}: {e['summary']}")
print('\n'.join(failures) if failures else 'every expected event, and no other')
sys.exit(1 if failures else 0)
PY
