#!/usr/bin/env python3
"""Turns Prometheus' own PromQL test files (promql/testdata/*.test of a checkout at v2.42.0) into
specs for promql_diff.py, so that Aligner can be compared with promtool on them:

  git -C prometheus checkout v2.42.0
  python3 from_upstream.py prometheus/promql/testdata /tmp/upstream-specs
  for s in /tmp/upstream-specs/*.yml; do python3 promql_diff.py compare $s | tail -1; done

Only the data and the expressions are taken: `load` blocks become input series (blocks of a
segment with different intervals are put on the smallest one, with gaps), each `eval instant at T
EXPR` becomes a case; the expected values in the files are ignored, promtool's answers count.
Segments whose intervals do not divide (or differ more than 60-fold) are skipped. Nothing from
Prometheus is written into this repository.
"""
import os
import re
import sys

import yaml

UNITS = {'ms': 1, 's': 1000, 'm': 60000, 'h': 3600000, 'd': 86400000, 'w': 604800000, 'y': 31536000000}


def milliseconds(text):
    if not re.search('[a-z]', text):
        return int(float(text) * 1000)
    return sum(int(n) * UNITS[u] for n, u in re.findall(r'(\d+)(ms|s|m|h|d|w|y)', text))


def duration(ms):
    if ms % 60000 == 0:
        return '%dm' % (ms // 60000)
    if ms % 1000 == 0:
        return '%ds' % (ms // 1000)
    return '%dms' % ms


def expand(values):
    out = []
    number = r'([-+]?[\d.e]+|[-+]?Inf|NaN)'
    for tok in values.split():
        m = re.match(r'^_x(\d+)$', tok)
        if m:
            out += ['_'] * int(m.group(1))
            continue
        m = re.match('^' + number + r'([+-])([\d.e]+)x(\d+)$', tok)
        if m:
            a, b, n = float(m.group(1)), float(m.group(3)), int(m.group(4))
            out += [repr(a + (i * b if m.group(2) == '+' else -i * b)) for i in range(n + 1)]
            continue
        m = re.match('^' + number + r'x(\d+)$', tok)
        if m:
            out += [m.group(1)] * (int(m.group(2)) + 1)
            continue
        out.append(tok)
    return out


def segments(text):
    seg = {'loads': [], 'evals': []}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith('load '):
            interval = milliseconds(line.split()[1])
            i += 1
            while i < len(lines) and lines[i][:1] in (' ', '\t') and lines[i].strip():
                m = re.match(r'^(\S*\{[^}]*\}|\S+)\s+(.*)$', lines[i].strip())
                seg['loads'].append((interval, m.group(1), m.group(2)))
                i += 1
            continue
        if line.startswith('clear'):
            yield seg
            seg = {'loads': [], 'evals': []}
        m = re.match(r'^eval(?:_ordered|_fail)? instant at (\S+) (.*)$', line)
        if m:
            seg['evals'].append((m.group(2).strip(), duration(milliseconds(m.group(1))) if milliseconds(m.group(1)) else '0s'))
        i += 1
    yield seg


def convert(path, out):
    base = os.path.basename(path)[:-len('.test')]
    written = 0
    for k, seg in enumerate(segments(open(path).read())):
        if not seg['evals']:
            continue
        loads = seg['loads'] or [(60000, 'placeholder_series', '1')]
        step = min(interval for interval, _, _ in loads)
        series = []
        for interval, name, values in loads:
            if interval != step:
                if interval % step or interval // step > 60:
                    break
                spaced = []
                for v in expand(values):
                    spaced += [v] + ['_'] * (interval // step - 1)
                values = ' '.join(spaced)
            series.append({'series': name, 'values': values})
        else:
            # One spec per evaluation time: promtool sees samples up to the test's last eval_time.
            by_time = {}
            for expr, time in seg['evals']:
                by_time.setdefault(time, []).append(expr)
            for time, exprs in by_time.items():
                spec = {'interval': duration(step), 'times': [time], 'series': series, 'exprs': exprs}
                with open(os.path.join(out, '%s_%02d_%s.yml' % (base, k, time)), 'w') as f:
                    yaml.safe_dump(spec, f, sort_keys=False, width=1000)
                written += 1
    return written


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    os.makedirs(sys.argv[2], exist_ok=True)
    for name in sorted(os.listdir(sys.argv[1])):
        if name.endswith('.test'):
            print(name, convert(os.path.join(sys.argv[1], name), sys.argv[2]))
