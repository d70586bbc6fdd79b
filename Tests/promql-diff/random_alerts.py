#!/usr/bin/env python3
"""Random alerting rules over random series, as a rule-test file for promql_diff.py alerts.

  random_alerts.py SEED DIR      write DIR/random_rules.yml and DIR/random_test.yml

Then `promql_diff.py alerts DIR/random_test.yml DIR/filled_test.yml` fills every alert_rule_test
with what promtool (Prometheus 2.42) reports firing, and `aligner rules test DIR/filled_test.yml`
must pass it: `for`, `keep_firing_for`, recording rules feeding alerts of the same group, gaps and
stale markers, and templated labels and annotations, against Prometheus' own alerting.
"""
import os
import random
import sys

import yaml


def values(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.06:
            out.append('_')
        elif r < 0.09:
            out.append('stale')
        else:
            out.append(str(rng.choice([0, 1, 2, 3, 4, 5, 5, 5, 6, 8, 10])))
    return ' '.join(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    seed, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    n = 40
    series = []
    for metric in ['load', 'errors', 'ready']:
        for pod in ['p1', 'p2', 'p3']:
            if rng.random() < 0.85:
                series.append({'series': '%s{namespace="shop",pod="%s"}' % (metric, pod), 'values': values(rng, n)})
    series.append({'series': 'spec{namespace="shop"}', 'values': '3x%d' % (n - 1)})
    durations = ['0s', '30s', '1m', '90s', '2m', '3m30s']
    groups = []
    for g in range(2):
        rules = []
        # A group reads only its own recording rule: promtool evaluates groups in a random order,
        # so a rule reading another group's record would get either step's value.
        record = 'shop:load:sum%d' % g
        if rng.random() < 0.6:
            rules.append({'record': record, 'expr': 'sum by (namespace) (load)'})
        for i in range(rng.randint(3, 6)):
            metric = rng.choice(['load', 'errors', 'ready'])
            expr = rng.choice([
                '%s > %d' % (metric, rng.randint(2, 7)),
                '%s >= %d' % (metric, rng.randint(2, 7)),
                'avg_over_time(%s[2m]) > %d' % (metric, rng.randint(2, 6)),
                'max_over_time(%s[1m]) > %d' % (metric, rng.randint(4, 8)),
                'spec - on(namespace) count by (namespace) (%s > 3) > 0' % metric,
                'changes(%s[3m]) > 2' % metric,
                '%s > %d' % (record, rng.randint(8, 16)),
                'absent(%s{pod="p4"})' % metric,
                'sum by (pod) (rate(%s[2m])) > 0.02' % metric,
            ])
            rule = {'alert': 'A%d_%d' % (g, i), 'expr': expr}
            duration = rng.choice(durations)
            if duration != '0s':
                rule['for'] = duration
            if rng.random() < 0.4:
                rule['keep_firing_for'] = rng.choice(durations[1:])
            rule['labels'] = {'severity': rng.choice(['warning', 'critical'])}
            if rng.random() < 0.4:
                rule['labels']['level'] = rng.choice([
                    '{{ if gt $value 5.0 }}high{{ else if eq $value 5.0 }}five{{ else }}low{{ end }}',
                    '{{ $value | humanize }}',
                    '{{ with $labels.pod }}{{ . | toUpper }}{{ else }}none{{ end }}',
                ])
            rule['annotations'] = {'summary': rng.choice([
                '{{ $labels.pod }} at {{ $value }}',
                '{{ $value | humanize }} on {{ $labels.namespace }}',
                '{{ printf "%.2f" $value }}',
                '{{- range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end -}} ({{ len $labels }})',
                '{{ $x := printf "%s/%s" $labels.namespace $labels.pod }}{{ $x | title }} {{ if and (ne $labels.pod "p1") (lt $value 7.0) }}odd{{ end }}',
                '{{ .Labels.pod }} {{ .Value }} {{ index $labels "namespace" }} {{ not (match "^p[12]$" $labels.pod) }}',
                '{{ reReplaceAll "p([0-9])" "pod-$1" $labels.pod }} {{ print 1 2 "x" 3 }} {{ stripPort "host:9090" }}',
                '{{ humanizeTimestamp 1.5e9 }} {{ 1609459200.25 | humanizeTimestamp }}',
            ])}
            rules.append(rule)
        group = {'name': 'g%d' % g, 'rules': rules}
        if rng.random() < 0.5:
            group['interval'] = rng.choice(['30s', '1m'])
        groups.append(group)
    with open(os.path.join(out, 'random_rules.yml'), 'w') as f:
        yaml.safe_dump({'groups': groups}, f, sort_keys=False, width=1000)
    times = sorted(set(rng.choice(range(0, n * 30, 30)) for _ in range(12)))
    tests = []
    for g in groups:
        for r in g['rules']:
            if 'alert' in r:
                for t in times:
                    tests.append({'eval_time': '%ds' % t, 'alertname': r['alert'], 'exp_alerts': []})
    doc = {
        'rule_files': ['random_rules.yml'],
        'evaluation_interval': rng.choice(['15s', '30s']),
        'tests': [{'interval': '30s', 'input_series': series, 'alert_rule_test': tests}],
    }
    with open(os.path.join(out, 'random_test.yml'), 'w') as f:
        f.write('# random_alerts.py %d\n' % seed)
        yaml.safe_dump(doc, f, sort_keys=False, width=1000)


if __name__ == '__main__':
    main()
