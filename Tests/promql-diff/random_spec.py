#!/usr/bin/env python3
"""Random PromQL expressions over random series, as a spec for promql_diff.py.

  random_spec.py SEED COUNT OUT      write a spec with COUNT expressions (deterministic per SEED)
  random_spec.py SEED COUNT OUT at   only expressions with `@`, subqueries six times as often

Then `promql_diff.py compare OUT` asks Prometheus (promtool, 2.42) and Aligner the same questions.
The generator keeps to what alerting and recording rules use: selectors with the four matcher
kinds, offsets, range functions, aggregations, binary operators with vector matching, the common
functions, and now and then a subquery. Expressions that fail to evaluate (many-to-many matching,
duplicate series after dropping the name) are part of the test: both engines must fail.
"""
import random
import sys

import yaml

METRICS = {
    'req_total': 'counter', 'err_total': 'counter', 'cpu_seconds_total': 'counter',
    'mem_bytes': 'gauge', 'ready': 'gauge', 'spec_replicas': 'gauge', 'lat_bucket': 'bucket',
}
JOBS = ['api', 'web']
INSTANCES = ['a', 'b', 'c']
CODES = ['200', '404', '500', '503']
RANGES = ['30s', '1m', '90s', '2m', '5m', '10m']


def counter_values(rng, n):
    out, v = [], rng.choice([0, 0, 10, 100])
    for _ in range(n):
        r = rng.random()
        if r < 0.06:
            out.append('_')
            continue
        if r < 0.09:
            out.append('stale')
            continue
        if r < 0.13:
            v = rng.randint(0, 3)   # counter reset
        else:
            v += rng.choice([0, 1, 2, 5, 10, 0.5])
        out.append(fmt(v))
    return ' '.join(out)


def gauge_values(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.05:
            out.append('_')
        elif r < 0.07:
            out.append('stale')
        elif r < 0.08:
            out.append(rng.choice(['NaN', 'Inf', '-Inf']))
        else:
            out.append(fmt(rng.choice([rng.randint(-5, 20), rng.randint(0, 5) / 4])))
    return ' '.join(out)


def fmt(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def series(rng, n):
    out = []
    for metric, kind in METRICS.items():
        seen = set()
        for _ in range(rng.randint(2, 5)):
            labels = {'job': rng.choice(JOBS), 'instance': rng.choice(INSTANCES)}
            if metric in ('req_total', 'err_total'):
                labels['code'] = rng.choice(CODES)
            if kind == 'bucket':
                labels.pop('instance')
                for le in ['0.1', '0.5', '1', '+Inf']:
                    key = (labels['job'], le)
                    if key in seen:
                        continue
                    seen.add(key)
                    text = ','.join('%s="%s"' % kv for kv in sorted({**labels, 'le': le}.items()))
                    base = {'0.1': 1, '0.5': 3, '1': 4, '+Inf': 5}[le]
                    out.append({'series': '%s{%s}' % (metric, text), 'values': '0+%dx%d' % (base, n)})
                continue
            key = tuple(sorted(labels.items()))
            if key in seen:
                continue
            seen.add(key)
            text = ','.join('%s="%s"' % kv for kv in key)
            values = counter_values(rng, n) if kind == 'counter' else gauge_values(rng, n)
            out.append({'series': '%s{%s}' % (metric, text), 'values': values})
    return out


class Gen:
    def __init__(self, rng, subquery_share=0.05):
        self.rng = rng
        self.in_subquery = 0
        self.subquery_share = subquery_share

    def pick(self, *xs):
        return self.rng.choice(xs)

    def matcher(self):
        label = self.pick('job', 'instance', 'code')
        values = {'job': JOBS, 'instance': INSTANCES, 'code': CODES}[label]
        op = self.pick('=', '!=', '=~', '!~')
        if op in ('=~', '!~'):
            value = self.pick(self.rng.choice(values), '|'.join(self.rng.sample(values, 2)),
                              '5..', 'a.*', '.*', '.+', '', '[ab]')
        else:
            value = self.pick(self.rng.choice(values), '')
        return '%s%s"%s"' % (label, op, value)

    def selector(self, kinds=None):
        names = [m for m, k in METRICS.items() if kinds is None or k in kinds]
        name = self.rng.choice(names)
        r = self.rng.random()
        if r < 0.35:
            text = name
        elif r < 0.9:
            text = '%s{%s}' % (name, ','.join(self.matcher() for _ in range(self.rng.randint(1, 2))))
        else:
            text = '{__name__=~"%s|%s"}' % (name, self.rng.choice(names))
        r = self.rng.random()
        if r < 0.10:
            text += ' offset %s' % self.pick('1m', '2m', '5m', '-1m', '30s')
        elif r < 0.16 + 0.08 * (self.in_subquery > 0):
            text += ' @ %s' % self.pick('60', '300', '450.5', 'start()', 'end()')
        return text

    def range_vector(self, kinds=None):
        sel = self.selector(kinds)
        rng = self.rng.choice(RANGES)
        for modifier in (' offset ', ' @ '):
            if modifier in sel:
                base, rest = sel.split(modifier)
                return '%s[%s]%s%s' % (base, rng, modifier, rest)
        return '%s[%s]' % (sel, rng)

    def scalar(self, depth):
        r = self.rng.random()
        if r < 0.6 or depth > 2:
            return self.pick('0', '1', '2', '0.5', '10', '100', '-1', '3')
        if r < 0.75:
            return 'scalar(%s)' % self.vector(depth + 1)
        if r < 0.85:
            return 'time()'
        return '(%s %s %s)' % (self.scalar(depth + 1), self.pick('+', '-', '*', '/'), self.scalar(depth + 1))

    def vector(self, depth=0):
        r = self.rng.random()
        if depth > 3 or r < 0.15:
            return self.selector()
        if r >= 1 - self.subquery_share and self.in_subquery < 2:
            return self.subquery(depth)
        # The other kinds share what is left in the same proportions.
        r = 0.15 + (r - 0.15) * 0.80 / (0.85 - self.subquery_share)
        if r < 0.40:
            return self.range_function()
        if r < 0.58:
            return self.aggregation(depth)
        if r < 0.80:
            return self.binary(depth)
        return self.function(depth)

    def range_function(self):
        f = self.pick('rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'changes', 'resets',
                      'avg_over_time', 'min_over_time', 'max_over_time', 'sum_over_time',
                      'count_over_time', 'stddev_over_time', 'stdvar_over_time', 'last_over_time',
                      'present_over_time', 'quantile_over_time', 'predict_linear', 'absent_over_time')
        kinds = ('counter',) if f in ('rate', 'irate', 'increase', 'resets') else None
        rv = self.range_vector(kinds)
        if f == 'quantile_over_time':
            return '%s(%s, %s)' % (f, self.pick('0', '0.5', '0.9', '1'), rv)
        if f == 'predict_linear':
            return '%s(%s, %s)' % (f, rv, self.pick('60', '600', '3600'))
        return '%s(%s)' % (f, rv)

    def grouping(self):
        labels = self.rng.sample(['job', 'instance', 'code', 'le', '__name__'], self.rng.randint(0, 2))
        return '%s (%s)' % (self.pick('by', 'without'), ', '.join(labels))

    def aggregation(self, depth):
        op = self.pick('sum', 'avg', 'min', 'max', 'count', 'stddev', 'stdvar', 'group',
                       'topk', 'bottomk', 'quantile', 'count_values')
        inner = self.vector(depth + 1)
        grouping = self.grouping() if self.rng.random() < 0.7 else ''
        if op in ('topk', 'bottomk'):
            param = self.pick('1', '2')
        elif op == 'quantile':
            param = self.pick('0.5', '0.9', '0', '1')
        elif op == 'count_values':
            param = '"value"'
        else:
            param = None
        args = '%s, %s' % (param, inner) if param else inner
        if self.rng.random() < 0.5:
            return '%s %s (%s)' % (op, grouping, args)
        return '%s(%s) %s' % (op, args, grouping)

    def binary(self, depth):
        op = self.pick('+', '-', '*', '/', '%', '^', '==', '!=', '>', '<', '>=', '<=', 'and', 'or', 'unless')
        comparison = op in ('==', '!=', '>', '<', '>=', '<=')
        setop = op in ('and', 'or', 'unless')
        left = self.vector(depth + 1)
        if not setop and self.rng.random() < 0.4:
            right = self.scalar(depth + 1)
            if self.rng.random() < 0.5:
                left, right = right, left
        else:
            right = self.vector(depth + 1)
        modifier = ''
        if comparison and self.rng.random() < 0.3:
            modifier += ' bool'
        if self.rng.random() < 0.4:
            labels = ', '.join(self.rng.sample(['job', 'instance', 'code'], self.rng.randint(0, 2)))
            modifier += ' %s(%s)' % (self.pick('on', 'ignoring'), labels)
            if not setop and self.rng.random() < 0.3:
                modifier += ' %s(%s)' % (self.pick('group_left', 'group_right'),
                                         self.pick('', 'code', 'instance'))
        return '(%s %s%s %s)' % (left, op, modifier, right)

    def function(self, depth):
        f = self.pick('abs', 'ceil', 'floor', 'round', 'clamp', 'clamp_min', 'clamp_max', 'sqrt',
                      'exp', 'ln', 'log2', 'log10', 'sgn', 'timestamp', 'label_replace', 'label_join',
                      'sort', 'sort_desc', 'absent', 'histogram_quantile', 'vector', 'minute', 'hour',
                      'day_of_week', 'days_in_month', 'negate', 'timestamp_of', 'topk_scalar')
        inner = self.vector(depth + 1)
        if f == 'round':
            return 'round(%s, %s)' % (inner, self.pick('1', '0.5', '3'))
        if f == 'clamp':
            return 'clamp(%s, %s, %s)' % (inner, self.pick('0', '-1'), self.pick('5', '1'))
        if f in ('clamp_min', 'clamp_max'):
            return '%s(%s, %s)' % (f, inner, self.pick('0', '3'))
        if f == 'timestamp':
            return 'timestamp(%s)' % self.selector()
        if f == 'label_replace':
            return 'label_replace(%s, "%s", "$1-x", "%s", "%s")' % (
                inner, self.pick('dst', 'job', 'instance'), self.pick('job', 'instance', 'code'),
                self.pick('(.*)', '(a)', 'a(.*)', '(.+)p(.*)'))
        if f == 'label_join':
            return 'label_join(%s, "%s", "%s", "job", "instance")' % (
                inner, self.pick('dst', 'job'), self.pick('-', ''))
        if f == 'histogram_quantile':
            b = 'lat_bucket' if self.rng.random() < 0.5 else 'rate(lat_bucket[%s])' % self.rng.choice(RANGES)
            if self.rng.random() < 0.5:
                b = 'sum by (le%s) (%s)' % (self.pick('', ', job'), b)
            return 'histogram_quantile(%s, %s)' % (self.pick('0.5', '0.9', '0.99', '1', '0'), b)
        if f == 'timestamp_of':
            return 'timestamp(%s)' % inner
        if f == 'topk_scalar':
            return '%s(scalar(count(%s)) - 1, %s)' % (self.pick('topk', 'bottomk'), self.selector(), inner)
        if f == 'vector':
            return 'vector(%s)' % self.scalar(depth + 1)
        if f in ('minute', 'hour', 'day_of_week', 'days_in_month'):
            return '%s(%s)' % (f, self.pick('', inner))
        if f == 'negate':
            return '-%s' % inner if inner[0] in '(abcdefghijklmnopqrstuvwxyz' else '-(%s)' % inner
        return '%s(%s)' % (f, inner)

    def subquery(self, depth):
        f = self.pick('max_over_time', 'min_over_time', 'avg_over_time', 'rate', 'count_over_time')
        # At most two subqueries deep: each level multiplies the steps evaluated.
        self.in_subquery += 1
        inner = self.vector(depth + 1) if f != 'rate' else self.selector(('counter',))
        self.in_subquery -= 1
        modifiers = self.pick('', '', '', ' offset 1m', ' offset -30s', ' @ 300', ' @ 450.5', ' @ end()', ' @ 600 offset 2m')
        return '%s((%s)[%s:%s]%s)' % (f, inner, self.pick('5m', '10m'), self.pick('', '1m', '30s'), modifiers)


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[4:] not in ([], ['at']):
        sys.exit(__doc__)
    seed, count, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    only_at = sys.argv[4:] == ['at']
    rng = random.Random(seed)
    n = 40
    g = Gen(rng, subquery_share=0.30 if only_at else 0.05)
    exprs = []
    while len(exprs) < count:
        e = g.vector()
        if e not in exprs and ('@' in e or not only_at):
            exprs.append(e)
    spec = {
        'interval': rng.choice(['15s', '30s', '1m']),
        'times': ['0s', '2m', '4m10s', '7m', '9m45s', '12m'] if True else [],
        'series': series(rng, n),
        'exprs': exprs,
    }
    with open(out, 'w') as f:
        f.write('# random_spec.py %d %d\n' % (seed, count))
        yaml.safe_dump(spec, f, sort_keys=False, width=1000)


if __name__ == '__main__':
    main()
