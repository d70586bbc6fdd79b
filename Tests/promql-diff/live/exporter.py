# A fake target: counters with resets, gauges, a histogram, changing every scrape.
import http.server, math, random, time, threading
random.seed(3)
state = {'c': {}, 'h': {}}
lock = threading.Lock()
start = time.time()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        with lock:
            t = time.time() - start
            out = []
            for pod in ['a', 'b', 'c']:
                for code in ['200', '500']:
                    k = (pod, code)
                    inc = random.randint(0, 20) if code == '200' else random.choice([0, 0, 0, 3, 9])
                    v = state['c'].get(k, 0) + inc
                    if pod == 'c' and code == '200' and random.random() < 0.05: v = inc  # a reset
                    state['c'][k] = v
                    out.append(f'http_requests_total{{pod="{pod}",code="{code}"}} {v}')
                out.append(f'cpu_usage{{pod="{pod}"}} {50 + 40*math.sin(t/7 + ord(pod)) + random.random():.3f}')
                for le in ['0.1', '0.5', '1', '+Inf']:
                    k = (pod, le)
                    v = state['h'].get(k, 0) + {'0.1': 3, '0.5': 5, '1': 6, '+Inf': 7}[le] * random.randint(0, 3)
                    state['h'][k] = max(v, max([state['h'].get((pod, l), 0) for l in ['0.1', '0.5', '1', '+Inf'][: ['0.1', '0.5', '1', '+Inf'].index(le)]] + [0]))
                    out.append(f'latency_bucket{{pod="{pod}",le="{le}"}} {state["h"][k]}')
            if int(t) % 40 < 8: out = [l for l in out if 'pod="b"' not in l or 'cpu' not in l]  # b's gauge goes away at times
            body = ('\n'.join(out) + '\n').encode()
        self.send_response(200); self.send_header('Content-Type', 'text/plain; version=0.0.4'); self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(('127.0.0.1', 19300), H).serve_forever()
