"""Compares Aligner's query API with Prometheus' on the same live data: Prometheus scrapes
exporter.py every 2 s and remote-writes what it scrapes to Aligner (run.sh starts all three on
loopback). Every expression is asked of both, instantly and as a range over the last minute, 20 s
back (both then hold every sample); answers must match to 1e-9 relative. Aligner keeps only what
its rules read: rules.yml reads every metric here for 2 minutes, so ranges reach back that far
plus the lookback."""
import json, sys, time, urllib.request, urllib.parse, math
P = 'http://127.0.0.1:19090'; A = 'http://127.0.0.1:19095'
exprs = [
 'http_requests_total', 'rate(http_requests_total[1m])', 'irate(http_requests_total[1m])', 'increase(http_requests_total[2m])',
 'resets(http_requests_total[2m])', 'changes(cpu_usage[1m])', 'delta(cpu_usage[1m])', 'idelta(cpu_usage[1m])', 'deriv(cpu_usage[1m])',
 'predict_linear(cpu_usage[1m], 60)', 'avg_over_time(cpu_usage[1m])', 'max_over_time(cpu_usage[30s])', 'stddev_over_time(cpu_usage[1m])',
 'quantile_over_time(0.9, cpu_usage[1m])', 'last_over_time(cpu_usage[1m])', 'count_over_time(cpu_usage[1m])', 'absent_over_time(cpu_usage{pod="zz"}[1m])',
 'cpu_usage', 'cpu_usage offset 30s', 'sum by (pod) (rate(http_requests_total[1m]))', 'sum(rate(http_requests_total{code="500"}[1m])) / sum(rate(http_requests_total[1m]))',
 'histogram_quantile(0.9, sum by (le) (rate(latency_bucket[1m])))', 'histogram_quantile(0.5, rate(latency_bucket[2m]))',
 'topk(2, cpu_usage)', 'cpu_usage > 50', 'cpu_usage > bool 50', 'count(cpu_usage)', 'up', 'timestamp(cpu_usage)',
 'holt_winters(cpu_usage[1m], 0.5, 0.5)', 'rate(http_requests_total[1m] @ end())' , 'max_over_time(rate(http_requests_total[30s])[1m:10s])',
 'label_replace(cpu_usage, "x", "$1", "pod", "(.*)")', 'sort_desc(sum by (pod) (http_requests_total))', 'absent(nothing)',
 'present_over_time(cpu_usage[1m])', 'cpu_usage unless on(pod) cpu_usage{pod="a"}', 'stdvar(cpu_usage)', 'quantile(0.3, cpu_usage)',
 'count_values("v", round(cpu_usage / 10))',
 'sum without (code) (rate(http_requests_total[1m]))',
 'group by (pod) (cpu_usage)',
 'rate(http_requests_total[1m]) * on(pod) group_left cpu_usage',
 'cpu_usage * on(pod) group_right rate(http_requests_total[1m])',
 'scalar(sum(cpu_usage)) + cpu_usage',
 'minute(timestamp(cpu_usage))',
 'day_of_week()',
 'vector(time()) - timestamp(cpu_usage)',
 'avg_over_time(cpu_usage[1m:5s])',
 'rate(http_requests_total[1m] offset 1m)',
 'cpu_usage @ start()',
 'max_over_time(cpu_usage[1m] @ end() offset 10s)',
 'bottomk(1, rate(http_requests_total[1m]))',
 'clamp(cpu_usage, 40, 60)',
 'round(cpu_usage, 0.5)',
 'sgn(deriv(cpu_usage[1m]))',
 'cpu_usage and on(pod) rate(http_requests_total{code="500"}[1m]) > 0',
 'cpu_usage or vector(1)',
 'sum(cpu_usage) by (pod) / ignoring(pod) group_left sum(cpu_usage)',
 'label_join(cpu_usage, "j", "-", "pod", "job")',
 'rate(latency_bucket{le="+Inf"}[1m])',
 'histogram_quantile(1, rate(latency_bucket[1m]))',
 'sum_over_time(up[1m])',
 'changes(up[2m])',
 'absent_over_time(up[1m])',
 '-cpu_usage',
 'cpu_usage % 7',
 'cpu_usage ^ 0.5',
 'cpu_usage == bool on(pod) cpu_usage',
 'min_over_time(timestamp(cpu_usage)[1m:])',
 'sort(cpu_usage)',
 'stddev by (pod) (rate(http_requests_total[1m]))',
 'quantile_over_time(0.5, rate(http_requests_total[30s])[1m:10s])',
 'predict_linear(cpu_usage[1m] @ end(), 60)',
 'timestamp(cpu_usage @ start())',
 'time() - cpu_usage @ end()',
 'max_over_time(deriv(cpu_usage[30s] @ end())[1m:10s])',
 'topk(scalar(count(cpu_usage @ end())), cpu_usage)',
]
def get(base, path, **params):
    return json.load(urllib.request.urlopen(base + path + '?' + urllib.parse.urlencode(params)))
def norm(res):
    out = {}
    for s in res['data']['result']:
        key = json.dumps(s['metric'], sort_keys=True)
        if 'values' in s: out[key] = [(round(t, 3), v) for t, v in s['values']]
        else: out[key] = [(round(s['value'][0], 3), s['value'][1])]
    return out
def close(a, b):
    if a == b: return True
    try:
        x, y = float(a), float(b)
    except: return False
    if math.isnan(x) and math.isnan(y): return True
    return abs(x - y) <= 1e-9 * max(abs(x), abs(y))
now = time.time() - 20  # a moment both have all samples for
bad = 0
for e in exprs:
    for kind in ['query', 'query_range']:
        params = {'query': e, 'time': f'{now:.3f}'} if kind == 'query' else {'query': e, 'start': f'{now-60:.3f}', 'end': f'{now:.3f}', 'step': '7'}
        try:
            p = norm(get(P, '/api/v1/' + kind, **params)); a = norm(get(A, '/api/v1/' + kind, **params))
        except Exception as ex:
            print('ERR', kind, e, ex); bad += 1; continue
        diffs = []
        for k in set(p) | set(a):
            pv, av = p.get(k), a.get(k)
            if pv is None or av is None or len(pv) != len(av) or any(t1 != t2 or not close(v1, v2) for (t1, v1), (t2, v2) in zip(pv, av)):
                diffs.append((k, pv, av))
        if diffs:
            bad += 1
            k, pv, av = diffs[0]
            print(f'DIFF {kind} {e}: {len(diffs)} series differ; e.g. {k}\n   prom {str(pv)[:300]}\n   alig {str(av)[:300]}')
# The metadata endpoints over the same series: every series Aligner holds (rules or not), which
# here are the ones Prometheus scraped (its own `up` included, and the ALERTS it writes excluded).
meta = [('/api/v1/series', {'match[]': 'http_requests_total'}), ('/api/v1/series', {'match[]': '{__name__=~"cpu.*|up"}'}),
        ('/api/v1/labels', {}), ('/api/v1/label/pod/values', {}), ('/api/v1/label/__name__/values', {'match[]': '{job="app"}'})]
for path, params in meta:
    p = get(P, path, **params)['data']; a = get(A, path, **params)['data']
    if isinstance(p, list) and p and isinstance(p[0], dict):
        p = sorted(json.dumps(x, sort_keys=True) for x in p); a = sorted(json.dumps(x, sort_keys=True) for x in a)
    if p != a:
        bad += 1
        print(f'DIFF {path} {params}:\n   prom {str(p)[:300]}\n   alig {str(a)[:300]}')
print('differ:', bad, 'of', 2 * len(exprs) + len(meta))
sys.exit(1 if bad else 0)
