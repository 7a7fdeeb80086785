#!/usr/bin/env python3
"""The collector's benchmark: ingest throughput, and the Python client's cost.

(a) Ingest: one `modelwatch serve --model-repository examples/fastapi-fraud/model`
    (the monitor-only fraud-fastapi card), saturated by wrk -t1 (sharing the 2 cores)
    with POST /v1/models/fraud-fastapi/observations, bodies of realistic events (the
    example's holdout rows: 16 features, the score, the decision, three stage times,
    feature times, an id) in batches of 100 and of 1. Events/s are counted from
    serve's own model_observations_total{outcome="accepted"} (and 429s as dropped).
    Target: >= 200,000 events/s in batches.

(b) The client's cost: the FastAPI example app (examples/fastapi-fraud/app.py) twice
    under uvicorn, with the client (MODELWATCH_CLIENT=1, sending to the serve above)
    and without (MODELWATCH_CLIENT=0), driven by wrk in alternating short rounds at
    the same rate (--app-rate, default 400 req/s: a served model runs below its
    saturation; 0 saturates). For each round: the uvicorn process's CPU seconds
    (utime + stime of every thread, the client's sender thread included, from
    /proc/PID/stat) per request. Prints the median of each and the median of the
    per-round ratios. Target: the client adds <= 5%.

It prints a table; it asserts nothing. Needs wrk (apt-get install -y wrk) and the
example's requirements in the python running it (or --python).

    python3 bench/collector.py [--binary target/release/modelwatch] [--rounds 4]
        [--duration 10] [--app-duration 8] [--app-rate 400] [--skip-ingest] [--skip-client]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "fastapi-fraud")
MODEL = "fraud-fastapi"
LUA = os.path.join(ROOT, "bench", "wrk-bodies.lua")
PACED_LUA = os.path.join(ROOT, "bench", "wrk-bodies-paced.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[collector-bench] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, timeout=180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid, tid=None):
    """utime + stime of the whole process (all its threads), or of its thread `tid`,
    in seconds."""
    with open(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def metric(metrics_url, name, **labels):
    """Sum of a counter's samples whose labels include `labels`."""
    with urllib.request.urlopen(metrics_url, timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def parse_wrk(text):
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "requests": requests,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def wrk(url, path, bodies, duration, connections, rate=0):
    """wrk -t1 with `bodies` round robin; at about `rate` requests/s when > 0."""
    script = ["-s", LUA, url, "--", path, bodies]
    if rate > 0:
        script = ["-s", PACED_LUA, url, "--", path, bodies, "application/json", str(rate),
                  str(connections)]
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", *script],
        capture_output=True, text=True, check=True,
    ).stdout
    return parse_wrk(out)


# ------------------------------------------------------------------ bodies


def holdout_rows():
    card = json.load(open(os.path.join(EXAMPLE, "model", f"{MODEL}.card.json")))
    names = [f["name"] for f in card["features"]]
    with open(os.path.join(EXAMPLE, "model", f"{MODEL}.holdout.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    return card, names, rows


def event(card, names, row, rng, now, i):
    score = float(row["score"])
    return {
        "prediction_id": f"tx-{i:09d}",
        "score": score,
        "decision": "declined" if score >= card["task"]["threshold"] else "approved",
        "features": {n: float(row[n]) for n in names},
        "feature_times": {"customer": now - rng.uniform(1, 60), "terminal": now - rng.uniform(1, 60)},
        "stages": {
            "feature_fetch": rng.uniform(2e-5, 8e-5),
            "inference": rng.uniform(2e-4, 6e-4),
            "postprocess": rng.uniform(2e-6, 8e-6),
        },
        "status": "success",
        "time": now,
    }


def write_observation_bodies(path, batch, count, seed=1):
    """`count` lines, each a {"events": [...]} batch of `batch` events."""
    card, names, rows = holdout_rows()
    rng = random.Random(seed)
    now = time.time()
    size = 0
    with open(path, "w") as f:
        for b in range(count):
            events = [event(card, names, rows[(b * batch + k) % len(rows)], rng, now, b * batch + k)
                      for k in range(batch)]
            line = json.dumps({"events": events}, separators=(",", ":"))
            size += len(line)
            f.write(line + "\n")
    return size / count


def write_predict_bodies(path, count=2000):
    _, names, rows = holdout_rows()
    now = time.time()
    with open(path, "w") as f:
        for i in range(count):
            row = rows[i % len(rows)]
            f.write(json.dumps({
                "transaction_id": f"tx-{i:08d}",
                "features": {n: float(row[n]) for n in names},
                "feature_times": {"customer": now - 30, "terminal": now - 30},
            }, separators=(",", ":")) + "\n")


# ------------------------------------------------------------------ runs


def start_serve(args, tmp):
    port, mport = free_port(), free_port()
    cmd = [args.binary, "serve", "--model-repository", os.path.join(EXAMPLE, "model"),
           "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}",
           "--data-dir", os.path.join(tmp, "serve-data"), *args.serve_arg]
    log("starting " + " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "serve.log"), "w"))
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    return proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}/metrics"


def run_ingest(args, api, metrics_url, tmp):
    path = f"/v1/models/{MODEL}/observations"
    rows = []
    for batch in (100, 1):
        bodies = os.path.join(tmp, f"bodies-{batch}.ndjson")
        mean_bytes = write_observation_bodies(bodies, batch, 200 if batch > 1 else 5000)
        results = []
        for r in range(args.ingest_rounds):
            acc0 = metric(metrics_url, "model_observations_total", model=MODEL, outcome="accepted")
            drop0 = metric(metrics_url, "model_observations_total", model=MODEL, outcome="dropped")
            started = time.monotonic()
            w = wrk(api, path, bodies, args.duration, args.connections)
            elapsed = time.monotonic() - started
            time.sleep(1.0)  # recording happens after the answer: let the queue drain
            acc = metric(metrics_url, "model_observations_total", model=MODEL, outcome="accepted") - acc0
            drop = metric(metrics_url, "model_observations_total", model=MODEL, outcome="dropped") - drop0
            results.append((acc / elapsed, drop / elapsed, w["requests"] / elapsed, w))
            log(f"batch {batch} round {r + 1}: {acc / elapsed:,.0f} accepted events/s, "
                f"{drop / elapsed:,.0f} dropped/s, {w}")
        rows.append((batch, mean_bytes, results))
    return rows


def start_app(args, port, client_on, collector, tmp):
    env = dict(os.environ, MODELWATCH_CLIENT="1" if client_on else "0",
               MODELWATCH_URL=collector or "http://127.0.0.1:9", MODELWATCH_MODEL=MODEL,
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [args.python, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log", "--log-level", "warning"]
    name = "on" if client_on else "off"
    proc = subprocess.Popen(cmd, cwd=EXAMPLE, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, f"app-{name}.log"), "w"))
    wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


def run_client_cost(args, api, tmp):
    bodies = os.path.join(tmp, "predict.ndjson")
    write_predict_bodies(bodies)
    on_port, off_port = free_port(), free_port()
    on = start_app(args, on_port, True, api, tmp)
    off = start_app(args, off_port, False, None, tmp)
    per_request = {True: [], False: []}
    rps = {True: [], False: []}
    sender_per_request = []
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{on_port}/watch/stats", timeout=5) as r:
            sender = json.load(r)["sender_thread_id"]
        for client_on, port, proc in ((True, on_port, on), (False, off_port, off)):  # warm-up
            wrk(f"http://127.0.0.1:{port}", "/predict", bodies, 2, args.app_connections)
        for r in range(args.rounds):
            order = [(True, on_port, on), (False, off_port, off)]
            if r % 2:
                order.reverse()
            for client_on, port, proc in order:
                cpu0 = cpu_seconds(proc.pid)
                sender0 = cpu_seconds(on.pid, sender)
                started = time.monotonic()
                w = wrk(f"http://127.0.0.1:{port}", "/predict", bodies, args.app_duration,
                        args.app_connections, rate=args.app_rate)
                elapsed = time.monotonic() - started
                time.sleep(0.3)  # the last batch of the sender thread lands in this round
                cpu = cpu_seconds(proc.pid) - cpu0
                ok = w["requests"] - w["non2xx"]
                per_request[client_on].append(cpu / max(ok, 1))
                if client_on:
                    sender_per_request.append((cpu_seconds(on.pid, sender) - sender0) / max(ok, 1))
                rps[client_on].append(ok / elapsed)
                log(f"round {r + 1} client {'on ' if client_on else 'off'}: {ok / elapsed:,.0f} req/s, "
                    f"{cpu / max(ok, 1) * 1e6:,.0f} µs CPU/request, {w}")
        with urllib.request.urlopen(f"http://127.0.0.1:{on_port}/watch/stats", timeout=5) as r:
            stats = json.load(r)
    finally:
        stop(on)
        stop(off)
    ratios = [a / b for a, b in zip(per_request[True], per_request[False])]
    return per_request, rps, ratios, stats, sender_per_request


def run_observe_cost(args, api):
    """The client's own CPU per observe() call, in this process: a loop of observe()
    with the example's arguments against the real collector, flushed, against the
    same loop without the call. process_time() counts every thread, the sender's
    encoding, JSON and HTTP included."""
    sys.path.insert(0, os.path.join(ROOT, "clients", "python", "src"))
    from modelwatch_client import Watch

    _, names, rows = holdout_rows()
    now = time.time()
    calls = []
    for i in range(args.observe_calls):
        row = rows[i % len(rows)]
        calls.append({
            "score": float(row["score"]), "decision": "approved",
            "features": {n: float(row[n]) for n in names},
            "feature_times": {"customer": now - 30, "terminal": now - 30},
            "stages": {"feature_fetch": 3e-5, "inference": 4e-4, "postprocess": 5e-6},
            "prediction_id": f"tx-{i:08d}", "duration": 4.4e-4,
        })

    def baseline(**kwargs):
        return None

    results = []
    for r in range(3):
        with Watch(api, MODEL, max_buffer=len(calls) + 1) as watch:
            start = time.process_time()
            for kwargs in calls:
                baseline(**kwargs)
            empty = time.process_time() - start
            start = time.process_time()
            for kwargs in calls:
                watch.observe(**kwargs)
            observed = time.process_time() - start
            watch.flush(60)
            total = time.process_time() - start
            stats = watch.stats()
        results.append(((observed - empty) / len(calls), (total - empty) / len(calls), stats))
        log(f"observe() round {r + 1}: {results[-1][0] * 1e6:.1f} µs in the caller, "
            f"{results[-1][1] * 1e6:.1f} µs with the sender thread's work; {stats}")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "modelwatch"))
    ap.add_argument("--python", default=sys.executable, help="a python with the example's requirements")
    ap.add_argument("--duration", type=int, default=10, help="seconds per ingest round")
    ap.add_argument("--ingest-rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32, help="wrk connections for ingest")
    ap.add_argument("--rounds", type=int, default=6, help="rounds of each app variant")
    ap.add_argument("--app-duration", type=int, default=8, help="seconds per app round")
    ap.add_argument("--app-connections", type=int, default=16)
    ap.add_argument("--app-rate", type=int, default=400,
                    help="requests/s of the app rounds, about (default 400, about a third of its "
                         "saturation on 2 cores); 0 saturates it, where GIL and scheduler contention "
                         "make CPU per request swing with throughput")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-client", action="store_true")
    ap.add_argument("--observe-calls", type=int, default=50_000,
                    help="observe() calls per round of the in-process measure")
    ap.add_argument("--serve-arg", action="append", default=[], help="an extra flag for serve")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("error: wrk not found\nhint: apt-get install -y wrk")
    if not os.path.exists(args.binary):
        sys.exit(f"error: no binary at {args.binary}\n"
                 "hint: cargo build --release -p modelwatch-cli (or give --binary PATH)")

    with tempfile.TemporaryDirectory(prefix="collector-bench-") as tmp:
        serve, api, metrics_url = start_serve(args, tmp)
        try:
            ingest = None if args.skip_ingest else run_ingest(args, api, metrics_url, tmp)
            cost = None if args.skip_client else run_client_cost(args, api, tmp)
            observe = None if args.skip_client else run_observe_cost(args, api)
        finally:
            stop(serve)

    print()
    if ingest:
        print(f"(a) ingest: POST /v1/models/{MODEL}/observations, wrk -t1 -c{args.connections}, "
              f"{args.duration}s x {args.ingest_rounds} rounds, 2 shared cores")
        print(f"{'batch':>6} {'body bytes':>11} {'requests/s':>11} {'accepted events/s':>18} "
              f"{'dropped events/s':>17} {'non-2xx':>8}")
        for batch, mean_bytes, results in ingest:
            med = statistics.median(x[0] for x in results)
            req = statistics.median(x[2] for x in results)
            print(f"{batch:>6} {mean_bytes:>11,.0f} {req:>11,.0f} {med:>18,.0f} "
                  f"{statistics.median(x[1] for x in results):>17,.0f} "
                  f"{sum(x[3]['non2xx'] for x in results):>8}")
        print("target: >= 200,000 events/s in batches (the median of the rounds above)")
        print()
    if cost:
        per_request, rps, ratios, stats, sender_per_request = cost
        pace = f"at about {args.app_rate} req/s" if args.app_rate > 0 else "saturated"
        print(f"(b) the client's cost: examples/fastapi-fraud under uvicorn (1 worker), wrk -t1 "
              f"-c{args.app_connections} {pace}, {args.rounds} alternating rounds of "
              f"{args.app_duration}s")
        print(f"{'client':>7} {'req/s':>8} {'CPU µs/request':>15}")
        for on in (False, True):
            print(f"{'on' if on else 'off':>7} {statistics.median(rps[on]):>8,.0f} "
                  f"{statistics.median(per_request[on]) * 1e6:>15,.0f}")
        print(f"ratio on/off per round: {', '.join(f'{r:.3f}' for r in ratios)}; "
              f"median {statistics.median(ratios):.3f} (target <= 1.05)")
        sender = statistics.median(sender_per_request)
        print(f"the client's sender thread alone: {sender * 1e6:.0f} µs CPU/request (median), "
              f"{sender / statistics.median(per_request[False]):.1%} of the app without the client")
        print(f"client stats: {json.dumps(stats)}")
        print()
        caller = statistics.median(x[0] for x in observe)
        whole = statistics.median(x[1] for x in observe)
        off = statistics.median(per_request[False])
        print(f"(c) one observe() call in this process ({args.observe_calls:,} calls x 3 rounds, "
              f"sent to the collector above, in batches of 100):")
        print(f"    {caller * 1e6:.1f} µs CPU in the caller, {whole * 1e6:.1f} µs with the sender "
              f"thread's encoding, JSON and HTTP: {whole / off:.1%} of the app's "
              f"{off * 1e6:,.0f} µs CPU per request without the client (target <= 5%)")


if __name__ == "__main__":
    main()
