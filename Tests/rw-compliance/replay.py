#!/usr/bin/env python3
"""Replays the receiver cases of the Prometheus remote-write compliance suite
(github.com/prometheus/compliance, remotewrite/receiver: metrics, histograms, exemplars,
metadata, content types and encodings, corrupt bodies, RW 1.0 compatibility) against a running
Aligner, and checks each answer the way the suite does: a 2xx must carry exactly the expected
X-Prometheus-Remote-Write-*-Written counts (and be 204 for the SHOULD variants), a 4xx must be
400 unless a code is named, and never write more than expected.

  protoc -I Sources/CAlignerRemoteWrite/proto --python_out=/tmp/rwc Sources/CAlignerRemoteWrite/proto/*.proto
  pip install protobuf cramjam
  ./scripts/run.sh --listen 127.0.0.1:19095 &        # or any running Aligner
  python3 Tests/rw-compliance/replay.py http://127.0.0.1:19095/api/v1/write

Last run (2026-11-26): every case passes. The cases are written from the suite's descriptions;
none of its code is here.
"""
import os, sys, time, struct, math, urllib.request, urllib.error, cramjam
sys.path.insert(0, os.environ.get('RW_PB2_DIR', '/tmp/rwc'))
import remote_write_v2_pb2 as v2, remote_write_v1_pb2 as v1
URL = sys.argv[1] if len(sys.argv) > 1 else 'http://127.0.0.1:9095/api/v1/write'
STALE = struct.unpack('<d', struct.pack('<Q', 0x7ff0000000000002))[0]
NAN = struct.unpack('<d', struct.pack('<Q', 0x7ff8000000000001))[0]
VALUES = {'1.0': 1.0, 'StaleNaN': STALE, 'NaN': NAN, 'Inf': math.inf, '-Inf': -math.inf}
fails = []

def now_ms(off=0):
    time.sleep(0.011)
    return int(time.time()*1000) + off

def hist(sum_, pos, neg, zero, custom, bad):
    h = v2.Histogram(sum=sum_)
    count = 0
    if pos:
        h.positive_spans.add(offset=0, length=3); h.positive_spans.add(offset=2, length=2)
        h.positive_deltas.extend([1,2,1,3,1]); count += 23
    if neg:
        h.negative_spans.add(offset=0, length=2); h.negative_deltas.extend([1,1]); count += 3
    if zero: count += 1; h.zero_count_int = 1
    if custom:
        del h.positive_spans[:]; del h.positive_deltas[:]
        h.positive_spans.add(offset=0, length=6); h.positive_deltas.extend([2,1,2,3,-1,-2]); count = 30
        h.schema = -53; h.custom_values.extend([0.1,0.5,1.0,2.5,5.0,10.0])
    if bad: count = 99
    h.count_int = count
    return h

def request(samples=(), histograms=(), exemplars=(), metadata=(), unsafe=False):
    t = now_ms()
    syms = ['']; idx = {'': 0}
    def sym(s):
        if s not in idx: idx[s] = len(syms); syms.append(s)
        return idx[s]
    req = v2.Request()
    md = {}
    for (labels, typ, help_, unit) in metadata:
        n = labels.get('__name__', '')
        if n or unsafe: md[n] = (typ, sym(help_), sym(unit))
    used = set()
    def attach(ts, labels):
        for i, (el, exl, val, off) in enumerate(exemplars):
            if i in used: continue
            if el == labels:
                e = ts.exemplars.add(value=val, timestamp=t+off)
                for k, vv in exl.items(): e.labels_refs.extend([sym(k), sym(vv)])
                used.add(i); break
    for (labels, val, off) in samples:
        ts = req.timeseries.add()
        for k, vv in labels.items(): ts.labels_refs.extend([sym(k), sym(vv)])
        ts.samples.add(value=val, timestamp=t+off)
        attach(ts, labels)
        n = labels.get('__name__', '')
        if (n or unsafe) and n in md:
            ts.metadata.type, ts.metadata.help_ref, ts.metadata.unit_ref = md[n]
    for (labels, h) in histograms:
        ts = req.timeseries.add()
        for k, vv in labels.items(): ts.labels_refs.extend([sym(k), sym(vv)])
        hh = ts.histograms.add(); hh.CopyFrom(h); hh.timestamp = t
        attach(ts, labels)
        n = labels.get('__name__', '')
        if n in md: ts.metadata.type, ts.metadata.help_ref, ts.metadata.unit_ref = md[n]
    for i, (el, exl, val, off) in enumerate(exemplars):
        if i in used: continue
        ts = req.timeseries.add()
        for k, vv in el.items(): ts.labels_refs.extend([sym(k), sym(vv)])
        e = ts.exemplars.add(value=val, timestamp=t+off)
        for k, vv in exl.items(): e.labels_refs.extend([sym(k), sym(vv)])
    names_with_data = {l.get('__name__') for (l, _, _) in samples} | {l.get('__name__') for (l, _) in histograms}
    for (labels, typ, help_, unit) in metadata:
        n = labels.get('__name__', '')
        if not n or n in names_with_data: continue
        ts = req.timeseries.add()
        for k, vv in labels.items(): ts.labels_refs.extend([sym(k), sym(vv)])
        ts.metadata.type, ts.metadata.help_ref, ts.metadata.unit_ref = typ, sym(help_), sym(unit)
    req.symbols.extend(syms)
    body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
    return body, {'Content-Encoding': 'snappy', 'Content-Type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request', 'X-Prometheus-Remote-Write-Version': '2.0.0'}

def send(body, headers):
    r = urllib.request.Request(URL, data=body, headers=headers, method='POST')
    try:
        with urllib.request.urlopen(r) as resp: return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e: return e.code, e.headers, e.read()

def hv(h, k):
    v = h.get('X-Prometheus-Remote-Write-%s-Written' % k)
    return int(v) if v else 0

def check(name, req, samples=0, exemplars=0, histograms=0, success=True, strict=False, exact=0):
    code, h, body = send(*req)
    s, e, hi = hv(h, 'Samples'), hv(h, 'Exemplars'), hv(h, 'Histograms')
    err = None
    if exact and code != exact: err = 'code %d != %d' % (code, exact)
    elif code // 100 == 2:
        if not success: err = 'got %d but expected failure' % code
        elif (s, e, hi) != (samples, exemplars, histograms): err = 'written s/e/h %s != %s' % ((s,e,hi), (samples,exemplars,histograms))
        elif strict and code != 204: err = 'code %d not 204' % code
    elif code // 100 == 4:
        if not exact and code != 400: err = 'code %d not 400' % code
        elif s > samples or e > exemplars or hi > histograms: err = 'written too many'
    else: err = 'code %d' % code
    status = 'FAIL' if err else 'ok  '
    print('%s %-60s %d s/e/h=%s %s %s' % (status, name, code, (s,e,hi), err or '', body[:100] if (err or code >= 400) else ''))
    if err: fails.append(name)

def compliance(name, make, samples=0, exemplars=0, histograms=0, success=True):
    if success: check(name + ' returns 204', make(), samples, exemplars, histograms, True, True)
    check(name, make(), samples, exemplars, histograms, success)

def basic(n): return {'__name__': n}
JI = {'__name__': 'up', 'job': 'testjob', 'instance': 'localhost:9090'}

for k, val in VALUES.items():
    for (n, labels, ok) in [('simple', basic('up'), True), ('multi', JI, True),
                            ('newlines', {'__name__': 'up', 'job': 'test\njob\n', 'instance': 'localhost:9090'}, True),
                            ('dots', {'__name__': 'resource.cpu.usage', 'job.name': 'testjob', 'instance.name': 'localhost:9090'}, True),
                            ('spaces', {'__name__': 'resource cpu usage', 'job name': 'testjob', 'instance name': 'localhost:9090'}, True),
                            ('noname', {'job': 'testjob', 'instance': 'localhost:9090'}, False), ('empty', {}, False)]:
        compliance('single %s %s' % (k, n), lambda: request(samples=[(labels, val, 0)]), samples=1, success=ok)
    mk = lambda inst: {'__name__': 'up', 'job': 'testjob', 'instance': inst}
    compliance('multiple %s' % k, lambda: request(samples=[(mk('localhost:909%d' % i), val, 0) for i in range(4)]), samples=4)
    compliance('multiple noname %s' % k, lambda: request(samples=[({'job': 'testjob', 'instance': 'localhost:909%d' % i}, val, 0) for i in range(4)]), samples=0, success=False)
    compliance('multiple 1 noname %s' % k, lambda: request(samples=[({'job': 'testjob', 'instance': 'localhost:9090'}, val, 0)] + [(mk('localhost:909%d' % i), val, 0) for i in range(1, 4)]), samples=3, success=False)

compliance('counter created ts', lambda: request(samples=[({'__name__': 'http_requests_total', 'job': 'api'}, 100.0, 0)]), samples=1)

def started(req, where):
    """The request with a start timestamp an hour before each sample: rc.3's created_timestamp
    on the series, or rc.4's start_timestamp on each sample. Counted, never an extra sample."""
    body, headers = req
    m = v2.Request(); m.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    for ts in m.timeseries:
        for s in ts.samples:
            if where == 'series': ts.created_timestamp = s.timestamp - 3600000
            else: s.start_timestamp = s.timestamp - 3600000
    return bytes(cramjam.snappy.compress_raw(m.SerializeToString())), headers

check('counter with created_timestamp (rc.3)', started(request(samples=[({'__name__': 'http_requests_total', 'job': 'api'}, 100.0, 0)]), 'series'), samples=1, strict=True)
check('counter with start_timestamp (rc.4)', started(request(samples=[({'__name__': 'http_requests_total', 'job': 'web'}, 100.0, 0)]), 'samples'), samples=1, strict=True)
# bad content types
for ct in ['application/json', 'image/png']:
    b, h = request(samples=[(basic('up'), 1.0, 0)]); b = b'0' + b[1:]; h = dict(h); h['Content-Type'] = ct
    check('bad content type ' + ct, (b, h), success=False, exact=415)
for ce in ['gzip', 'deflate']:
    b, h = request(samples=[(basic('up'), 1.0, 0)]); b = b'0' + b[1:]; h = dict(h); h['Content-Encoding'] = ce
    check('bad encoding ' + ce, (b, h), success=False, exact=415)
b, h = request(samples=[(basic('up'), 1.0, 0)]); check('corrupt body', (b'0' + b[1:], h), success=False)

# histograms
for (n, labels, p, ng, z, c, ok, bad) in [
        ('basic_histogram', basic('test_histogram'), 1, 1, 1, 0, True, 0),
        ('custom_buckets_histogram', basic('test_histogram'), 1, 0, 0, 1, True, 0),
        ('positive_only', {'__name__': 'test_histogram', 'job': 'test'}, 1, 0, 1, 0, True, 0),
        ('negative_only', {'__name__': 'test_histogram', 'instance': 'localhost'}, 0, 1, 0, 0, True, 0),
        ('minimal', basic('minimal_hist'), 0, 0, 1, 0, True, 0),
        ('bad_count', basic('minimal_hist'), 1, 0, 0, 0, False, 1)]:
    compliance('hist ' + n, lambda: request(histograms=[(labels, hist(1.0, p, ng, z, c, bad))]), histograms=1, success=ok)
compliance('hist multiple', lambda: request(histograms=[({'__name__': 'hist1', 'job': 'test'}, hist(10.5, 1, 0, 1, 0, 0)), ({'__name__': 'hist2', 'job': 'test'}, hist(5.2, 0, 1, 0, 0, 0))]), histograms=2)
compliance('hist empty', lambda: request(histograms=[(basic('empty_hist'), hist(0.0, 0, 0, 0, 0, 0))]), histograms=1)
hl = {'__name__': 'http_request_duration_seconds', 'method': 'GET'}
compliance('hist exemplar', lambda: request(histograms=[(hl, hist(1.23, 1, 0, 1, 0, 0))], exemplars=[(hl, {'trace_id': 'abc', 'span_id': 's'}, 1.23, 0)]), histograms=1, exemplars=1)
compliance('hist custom exemplar', lambda: request(histograms=[({'__name__': 'custom_latency_hist', 'version': 'v2'}, hist(0.05, 0, 0, 0, 1, 0))], exemplars=[({'__name__': 'custom_latency_hist', 'version': 'v2'}, {'trace_id': 'x', 'bucket': '0.1'}, 0.05, 0)]), histograms=1, exemplars=1)
compliance('hist metadata', lambda: request(histograms=[({'__name__': 'request_duration_seconds', 'job': 'api'}, hist(2.5, 1, 1, 1, 0, 0))], metadata=[(basic('request_duration_seconds'), 3, 'HTTP', 'seconds')]), histograms=1)
compliance('many hist', lambda: request(histograms=[({'__name__': 'histogram_metric_%d' % i, 'bucket': 'b%d' % i}, hist(i/10, 1, i % 2 == 0, 1, 0, 0)) for i in range(50)],
    metadata=[(basic('histogram_metric_%d' % i), 3, 'h %d' % i, 'seconds') for i in range(50)],
    exemplars=[({'__name__': 'histogram_metric_%d' % i, 'bucket': 'b%d' % i}, {'trace_id': 't%d' % i}, i/10, 0) for i in range(50)]), histograms=50, exemplars=50)

# exemplars
for (n, labels, exl) in [('basic', {'__name__': 'http_requests_total', 'job': 'api'}, {'trace_id': 'abc'}),
                         ('nolabels', basic('simple_counter'), {}),
                         ('unicode', {'__name__': 'unicode_test', 'region': '🌍'}, {'trace_id': 'unicode_trace_测试'})]:
    compliance('exemplar ' + n, lambda: request(samples=[(labels, 1.0, 0)], exemplars=[(labels, exl, 1.0, 0)]), samples=1, exemplars=1)
ll = basic('latency_hist')
compliance('exemplar timestamps', lambda: request(samples=[(ll, 0.05, -3600000), (ll, 0.15, -60000), (ll, 0.08, 0)], exemplars=[(ll, {'trace_id': 'old'}, 0.05, -3600000), (ll, {'trace_id': 'r'}, 0.15, -60000), (ll, {'trace_id': 'c'}, 0.08, 0)]), samples=3, exemplars=3)
for (n, labels, ok) in [('noname', {'job': 'test'}, False), ('emptyname', {'__name__': ''}, False), ('valid', basic('valid_metric'), True)]:
    check('exemplar validation ' + n, request(samples=[(labels, 1.0, 0)], exemplars=[(labels, {'trace_id': 't'}, 1.0, 0)]), samples=1, exemplars=1, success=ok)
for (n, val) in [('zero', 0.0), ('nan', NAN), ('inf', math.inf), ('-inf', -math.inf), ('large', 1e10)]:
    compliance('exemplar special ' + n, lambda: request(samples=[(basic('test_metric'), val, 0)], exemplars=[(basic('test_metric'), {'trace_id': 's'}, val, 0)]), samples=1, exemplars=1)
compliance('many samples', lambda: request(samples=[({'__name__': 'counter_metric_%d' % i, 'series': 's%d' % i}, i*100.0, 0) for i in range(50)],
    metadata=[(basic('counter_metric_%d' % i), 1, 'c %d' % i, 'count') for i in range(50)],
    exemplars=[({'__name__': 'counter_metric_%d' % i, 'series': 's%d' % i}, {'trace_id': 't%d' % i}, i*100.0, 0) for i in range(50)]), samples=50, exemplars=50)
sl = {'__name__': 'test_metric', 'job': 'test-job_with.special@chars', 'instance': 'localhost:9090', 'environment': 'test🚀'}
compliance('special chars', lambda: request(samples=[(sl, 42.0, 0)], metadata=[(basic('test_metric'), 2, 'äöü\n"q"', 'special/units')], exemplars=[(sl, {'trace_id': 'äöü-123'}, 42.0, 0)]), samples=1, exemplars=1)
# metadata
for (n, typ) in [('counter', 1), ('gauge', 2), ('unspecified', 0), ('info', 6), ('stateset', 7), ('summary', 5), ('gaugehist', 4)]:
    compliance('metadata ' + n, lambda: request(samples=[(basic('m_' + n), 1.0, 0)], metadata=[(basic('m_' + n), typ, 'help', '')]), samples=1)
compliance('metadata histogram', lambda: request(histograms=[(basic('request_duration_seconds'), hist(1.0, 1, 1, 1, 0, 0))], metadata=[(basic('request_duration_seconds'), 3, 'h', 's')]), histograms=1)
check('metadata noname', request(samples=[({'job': 'test'}, 1.0, 0)], metadata=[({'job': 'test'}, 1, 'h', 'u')]), samples=1, success=False)
check('metadata emptyname', request(samples=[({'__name__': ''}, 1.0, 0)], metadata=[({'__name__': ''}, 2, 'h', 'u')], unsafe=True), samples=1, success=False)
check('metadata valid', request(samples=[(basic('valid_metric_name'), 1.0, 0)], metadata=[(basic('valid_metric_name'), 1, 'h', 'u')]), samples=1)
# edge cases
check('metadata without data', request(metadata=[(basic('orphan_metric'), 1, 'Orphaned', 'count')], unsafe=True))
check('exemplars without data', request(exemplars=[(basic('orphan_metric'), {'trace_id': 'o'}, 42.0, 0)], unsafe=True), exemplars=1)
check('mixed timestamps', request(samples=[(basic('old_metric'), 1.0, -3600000), (basic('new_metric'), 2.0, 0)], exemplars=[(basic('old_metric'), {'trace_id': 'o'}, 1.0, -1800000)]), samples=2, exemplars=1)
# rw1
def rw1(samples):
    t = now_ms(); r = v1.WriteRequest()
    for (labels, val) in samples:
        ts = r.timeseries.add()
        for k, vv in labels.items(): ts.labels.add(name=k, value=vv)
        ts.samples.add(value=val, timestamp=t)
    return bytes(cramjam.snappy.compress_raw(r.SerializeToString())), {'Content-Encoding': 'snappy', 'Content-Type': 'application/x-protobuf'}
check('rw1 basic', rw1([(JI, 1.0), (basic('http_requests_total'), 100.0)]))
b, h = rw1([(basic('error_test'), 1.0)]); check('rw1 corrupt', (b'\xff' + b[1:], h), success=False)
print('FAILURES:', len(fails)); [print('  ', f) for f in fails]

sys.exit(1 if fails else 0)
