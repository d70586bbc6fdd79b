#!/usr/bin/env python3
"""A cluster in trouble, as its exporters show it: kube-state-metrics, cAdvisor and application
series for ten workloads and two nodes, each playing one scenario in real time from the moment
this starts.
Served as Prometheus text on 127.0.0.1:PORT/metrics (default 19310), for a real Prometheus to scrape
and remote-write to Aligner (Tests/incidents/run.sh). The scenarios, and what an operator expects:

  web/Deployment/frontend   a rolling update, one pod at a time (ready dips while each starts)   quiet
  pay/Deployment/billing    memory climbs, a pod is OOM killed once at 60 s and restarts         event: oom_killed
  shop/Deployment/checkout  30% of requests fail from 90 s to 180 s, at 10 requests/s           event: error_rate_spike
  data/Deployment/etl       CPU at 70% of its limit all along, otherwise healthy                 quiet
  shop/Deployment/quiet     every request fails, at one request every 10 s (no traffic to speak of) quiet
  img/Deployment/api        a rollout whose new pod cannot pull its image from 30 s on           event: image_pull_failure
  scale/Deployment/worker   scaled from 3 to 6 at 60 s, the new pods ready 30-50 s later         quiet
  db/StatefulSet/pg         pg-2 crash loops from 30 s on, 2/3 ready                             event: crash_loop
  edge/Deployment/cache     one of its 3 pods is on node n-bad, which stops being ready at 60 s   quiet
  Node n-bad                not ready from 60 s on                                              event: node_not_ready
  jvm/Deployment/orders     a Spring Boot service (Micrometer's counters): every request fails
                            from 100 s to 110 s, and again from 150 s to 160 s                  event: error_rate_spike

EXPECTED (below) is what run.sh checks against GET /api/v1/events after the play.
"""
import http.server
import sys
import threading
import time

START = time.time()
EXPECTED = {
    'pay/Deployment/billing': 'oom_killed',
    'shop/Deployment/checkout': 'error_rate_spike',
    'img/Deployment/api': 'image_pull_failure',
    # The class is the first signal's (both are critical): scraped every 5 s the crash loop comes
    # first; every 30 s (SCRAPE_INTERVAL=30s) the replica mismatch can.
    'db/StatefulSet/pg': ('crash_loop', 'replica_mismatch'),
    '/Node/n-bad': 'node_not_ready',
    'jvm/Deployment/orders': 'error_rate_spike',
}
QUIET = ['web/Deployment/frontend', 'data/Deployment/etl', 'shop/Deployment/quiet', 'scale/Deployment/worker',
         'edge/Deployment/cache']


def series(out, name, value, **labels):
    text = ','.join(f'{k}="{v}"' for k, v in labels.items())
    out.append(f'{name}{{{text}}} {value}')


def pod(out, ns, name, owner_kind, owner, *, started, ready, phase='Running', restarts=0, waiting=None,
        last_terminated=None, cpu=None, cpu_limit=1.0, memory=None, memory_limit=2 ** 30):
    """One pod of one container `app`, with its kube-state-metrics and cAdvisor series."""
    series(out, 'kube_pod_owner', 1, namespace=ns, pod=name, owner_kind=owner_kind, owner_name=owner, owner_is_controller='true')
    series(out, 'kube_pod_start_time', int(started), namespace=ns, pod=name)
    for p in ('Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'):
        series(out, 'kube_pod_status_phase', int(p == phase), namespace=ns, pod=name, phase=p)
    for c in ('true', 'false'):
        series(out, 'kube_pod_status_ready', int((c == 'true') == ready), namespace=ns, pod=name, condition=c)
    series(out, 'kube_pod_container_status_restarts_total', restarts, namespace=ns, pod=name, container='app')
    series(out, 'kube_pod_container_status_ready', int(ready), namespace=ns, pod=name, container='app')
    if waiting:
        series(out, 'kube_pod_container_status_waiting_reason', 1, namespace=ns, pod=name, container='app', reason=waiting)
    if last_terminated:
        series(out, 'kube_pod_container_status_last_terminated_reason', 1, namespace=ns, pod=name, container='app', reason=last_terminated)
    series(out, 'kube_pod_container_resource_limits', cpu_limit, namespace=ns, pod=name, container='app', resource='cpu', unit='core')
    series(out, 'kube_pod_container_resource_limits', memory_limit, namespace=ns, pod=name, container='app', resource='memory', unit='byte')
    if cpu is not None:
        series(out, 'container_cpu_usage_seconds_total', round(cpu, 3), namespace=ns, pod=name, container='app')
    if memory is not None:
        series(out, 'container_memory_working_set_bytes', int(memory), namespace=ns, pod=name, container='app')


def deployment(out, ns, name, *, spec, ready, updated=None, available=None):
    for metric, v in (('kube_deployment_spec_replicas', spec), ('kube_deployment_status_replicas', spec),
                      ('kube_deployment_status_replicas_ready', ready),
                      ('kube_deployment_status_replicas_available', ready if available is None else available),
                      ('kube_deployment_status_replicas_updated', spec if updated is None else updated)):
        series(out, metric, v, namespace=ns, deployment=name)


def replicaset(out, ns, rs, deployment_name):
    series(out, 'kube_replicaset_owner', 1, namespace=ns, replicaset=rs, owner_kind='Deployment', owner_name=deployment_name)


def requests(out, ns, service, t, rate, failing):
    """Counters since the start: `rate` requests a second, `failing(s)` the failing share in second s."""
    ok = bad = 0.0
    for s in range(int(t)):
        f = failing(s)
        ok += rate * (1 - f)
        bad += rate * f
    series(out, 'http_requests_total', int(ok), namespace=ns, service=service, code='200')
    series(out, 'http_requests_total', int(bad), namespace=ns, service=service, code='500')


def micrometer_requests(out, ns, service, pod_name, t, rate, failing):
    """Micrometer's (Spring Boot's) request counters of one pod, as a ServiceMonitor scrape labels
    them: the 503 series appears with the first failed request."""
    ok = bad = 0.0
    for s in range(int(t)):
        f = failing(s)
        ok += rate * (1 - f)
        bad += rate * f
    labels = dict(namespace=ns, service=service, pod=pod_name, method='GET', uri='/orders')
    series(out, 'http_server_requests_seconds_count', int(ok), **labels, outcome='SUCCESS', status='200')
    if bad:
        series(out, 'http_server_requests_seconds_count', int(bad), **labels, outcome='SERVER_ERROR', status='503')


def scrape():
    t = time.time() - START
    long_ago = START - 86400
    out = []

    # web/frontend: 4 replicas updated one at a time every 30 s from 20 s; each new pod starts 15 s
    # before it is ready, the old one it replaces goes when the new one is ready.
    replicaset(out, 'web', 'frontend-old', 'frontend')
    replicaset(out, 'web', 'frontend-new', 'frontend')
    updated = min(4, int((t - 20) // 30) + 1) if t >= 20 else 0
    starting = any(20 + 30 * i <= t < 35 + 30 * i for i in range(4))
    deployment(out, 'web', 'frontend', spec=4, ready=3 if starting else 4, updated=updated)
    for i in range(4):
        new_at = 20 + 30 * i
        if t >= new_at:
            pod(out, 'web', f'frontend-new-{i}', 'ReplicaSet', 'frontend-new', started=START + new_at, ready=t >= new_at + 15,
                cpu=0.1 * t, cpu_limit=1)
        if t < new_at + 15:
            pod(out, 'web', f'frontend-old-{i}', 'ReplicaSet', 'frontend-old', started=long_ago, ready=True, cpu=0.1 * t)
    requests(out, 'web', 'frontend', t, 20, lambda s: 0.001)

    # pay/billing: the memory of billing-1 climbs from 60% to 98% of its limit, then it is OOM
    # killed at 60 s: restarted, OOMKilled its last termination, not ready for 20 s.
    replicaset(out, 'pay', 'billing-7c9d', 'billing')
    killed = t >= 60
    deployment(out, 'pay', 'billing', spec=3, ready=2 if 60 <= t < 80 else 3)
    for i in range(3):
        victim = i == 1
        mem = (0.6 + 0.38 * min(t, 60) / 60 if not killed else 0.3) if victim else 0.4
        pod(out, 'pay', f'billing-7c9d-{i}', 'ReplicaSet', 'billing-7c9d', started=long_ago,
            ready=not (victim and 60 <= t < 80), restarts=1 if victim and killed else 0,
            last_terminated='OOMKilled' if victim and killed else None, memory=mem * 2 ** 30, cpu=0.05 * t)
    requests(out, 'pay', 'billing', t, 5, lambda s: 0.0)

    # shop/checkout: 10 requests/s, 30% failing from 90 s to 180 s.
    replicaset(out, 'shop', 'checkout-5f6a', 'checkout')
    deployment(out, 'shop', 'checkout', spec=2, ready=2)
    for i in range(2):
        pod(out, 'shop', f'checkout-5f6a-{i}', 'ReplicaSet', 'checkout-5f6a', started=long_ago, ready=True, cpu=0.1 * t)
    requests(out, 'shop', 'checkout', t, 10, lambda s: 0.3 if 90 <= s < 180 else 0.0)

    # data/etl: CPU at 70% of a 2-core limit, all along.
    replicaset(out, 'data', 'etl-8b1c', 'etl')
    deployment(out, 'data', 'etl', spec=1, ready=1)
    pod(out, 'data', 'etl-8b1c-0', 'ReplicaSet', 'etl-8b1c', started=long_ago, ready=True, cpu=1.4 * t, cpu_limit=2)

    # shop/quiet: one request every 10 s, every one failing.
    replicaset(out, 'shop', 'quiet-2d3e', 'quiet')
    deployment(out, 'shop', 'quiet', spec=1, ready=1)
    pod(out, 'shop', 'quiet-2d3e-0', 'ReplicaSet', 'quiet-2d3e', started=long_ago, ready=True, cpu=0.01 * t)
    requests(out, 'shop', 'quiet', t, 0.1, lambda s: 1.0)

    # img/api: a rollout at 20 s whose new pod waits on ContainerCreating, then cannot pull its
    # image from 30 s on; the old pods stay (maxUnavailable 0): 3/3 ready, 1 updated, stuck.
    replicaset(out, 'img', 'api-old', 'api')
    replicaset(out, 'img', 'api-new', 'api')
    deployment(out, 'img', 'api', spec=3, ready=3, updated=1 if t >= 20 else 3)
    for i in range(3):
        pod(out, 'img', f'api-old-{i}', 'ReplicaSet', 'api-old', started=long_ago, ready=True, cpu=0.1 * t)
    if t >= 20:
        reason = 'ContainerCreating' if t < 30 else ('ErrImagePull' if int(t) % 20 < 5 else 'ImagePullBackOff')
        pod(out, 'img', 'api-new-0', 'ReplicaSet', 'api-new', started=START + 20, ready=False, phase='Pending', waiting=reason)

    # scale/worker: 3 replicas, scaled to 6 at 60 s; the new pods become ready 30, 40 and 50 s later.
    replicaset(out, 'scale', 'worker-4e5f', 'worker')
    spec = 6 if t >= 60 else 3
    ready_new = sum(1 for d in (30, 40, 50) if t >= 60 + d)
    deployment(out, 'scale', 'worker', spec=spec, ready=3 + ready_new, available=3 + ready_new)
    for i in range(spec):
        new = i >= 3
        pod(out, 'scale', f'worker-4e5f-{i}', 'ReplicaSet', 'worker-4e5f', started=START + 60 if new else long_ago,
            ready=not new or t >= 60 + (30, 40, 50)[i - 3], cpu=0.2 * t)

    # db/pg: pg-2 crash loops from 30 s on: restarting every 20 s, waiting in CrashLoopBackOff
    # between its runs (kube-state-metrics drops the waiting series while it runs).
    for metric, v in (('kube_statefulset_replicas', 3), ('kube_statefulset_status_replicas_ready', 2 if t >= 30 else 3),
                      ('kube_statefulset_status_replicas_available', 2 if t >= 30 else 3),
                      ('kube_statefulset_status_replicas_updated', 3), ('kube_statefulset_status_replicas_current', 3)):
        series(out, metric, v, namespace='db', statefulset='pg')
    for i in range(3):
        crashing = i == 2 and t >= 30
        restarts = int((t - 30) // 20) + 1 if crashing else 0
        running = crashing and (t - 30) % 20 < 4
        pod(out, 'db', f'pg-{i}', 'StatefulSet', 'pg', started=long_ago, ready=not crashing, restarts=restarts,
            waiting='CrashLoopBackOff' if crashing and not running else None,
            last_terminated='Error' if crashing else None, cpu=0.1 * t)
    # Node n-bad stops being ready at 60 s (its kubelet gone): the node controller marks it and
    # its pods not ready; cache, one of whose 3 pods ran there, has 2 ready until the pod is
    # evicted and replaced (after 5 minutes, past the play).
    down = t >= 60
    for node in ('n-good', 'n-bad'):
        bad = node == 'n-bad' and down
        for status in ('true', 'false', 'unknown'):
            series(out, 'kube_node_status_condition', int(status == ('unknown' if bad else 'true')), node=node, condition='Ready', status=status)
    replicaset(out, 'edge', 'cache-6a7b', 'cache')
    deployment(out, 'edge', 'cache', spec=3, ready=2 if down else 3)
    for i in range(3):
        node = 'n-bad' if i == 0 else 'n-good'
        series(out, 'kube_pod_info', 1, namespace='edge', pod=f'cache-6a7b-{i}', node=node)
        pod(out, 'edge', f'cache-6a7b-{i}', 'ReplicaSet', 'cache-6a7b', started=long_ago, ready=not (node == 'n-bad' and down), cpu=0.1 * t)

    # jvm/orders: a Spring Boot service, 2 pods of 5 requests/s each; every request fails from
    # 100 s to 110 s and from 150 s to 160 s, none otherwise.
    replicaset(out, 'jvm', 'orders-9c8d', 'orders')
    deployment(out, 'jvm', 'orders', spec=2, ready=2)
    for i in range(2):
        name = f'orders-9c8d-{i}'
        pod(out, 'jvm', name, 'ReplicaSet', 'orders-9c8d', started=long_ago, ready=True, cpu=0.2 * t)
        micrometer_requests(out, 'jvm', 'orders', name, t, 5, lambda s: 1.0 if 100 <= s < 110 or 150 <= s < 160 else 0.0)
    return '\n'.join(out) + '\n'


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = scrape().encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.end_headers()
        self.wfile.write(body)


if __name__ == '__main__':
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 19310
    http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()
