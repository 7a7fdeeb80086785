#!/usr/bin/env python3
"""modelwatch's load benchmark: one run, one table.

Starts each server in turn (an axum JSON echo as the HTTP stack's ceiling, then
`modelwatch serve` with its metrics, then `modelwatch serve --no-instrumentation`)
and measures, for each:

- start-up time (spawn to /readyz answering 200);
- saturation: wrk -t1 -c32 for 15 s with varied bodies (bench/wrk-predict.lua),
  requests/s, p50 and p99;
- latency at a fixed moderate rate (modelwatch loadgen, 200 req/s, 15 s), p50 and p99;
- /metrics scrape time (median of 20) and size;
- RSS after load.

Figures from one run are comparable with each other (same machine, same minute);
quote ratios. Needs wrk (apt-get install -y wrk).

    python3 bench/load.py [--duration 15] [--connections 32] [--rate 200]

With --mixes, it measures traffic mixes instead (bench/wrk-predict.lua describes
them): one `modelwatch serve`, then rounds of wrk alternating `realistic`, `uniform`
and `unknown`, and a table of the median of each with the unknown flood's throughput
as a share of the realistic mix's (the median of the per-round ratios; target: at
least 80%).

    python3 bench/load.py --mixes [--rounds 3] [--binary PATH] [--no-build]

With --protocols, it compares the two APIs on one `modelwatch serve`: rounds of wrk
alternating `POST /v1/predict` and the Open Inference Protocol's
`POST /v2/models/fraud/infer` with one row per request, plus `/v1/predict/batch`
with one transaction (the scoring path v2 shares), the same transactions (the
realistic mix, same seed) in all, and prints the median of each and each one's
throughput against /v1/predict per round.

    python3 bench/load.py --protocols [--rounds 3] [--mix realistic] [--binary PATH]

With --compare, the three systems run side by side (each idle while another is
measured) and rounds alternate between them: in each round, for each traffic mix
(realistic, uniform, unknown), wrk runs against the echo, `serve` and `serve
--no-instrumentation`, in an order that rotates from round to round, then the fixed
rate (loadgen) against each. It prints the median of the per-round ratios (serve /
echo, the instrumentation's cost 1 - serve / bare), each round's ratios, and the
machine's load during each run (load average, and the CPU of processes it did not
start, in cores), so a disturbed round can be seen and set aside.

    python3 bench/load.py --compare [--rounds 5] [--duration 8] [--mixes-of realistic,uniform]
"""

import argparse
import json
import os
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import load_average, measured  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def release_binaries(args, echo=False):
    """(modelwatch binary, echo binary) to measure: `--binary` if given, else the
    release builds, built first unless `--no-build`. Two cargo calls: with
    `--example`, cargo builds only the examples of every package named."""
    if args.binary is None and not args.no_build:
        log("building the release binaries..." if echo else "building the release binary...")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "modelwatch-cli"], check=True, cwd=ROOT)
        if echo:
            subprocess.run(["cargo", "build", "--release", "-q", "-p", "modelwatch-server", "--example", "echo"],
                           check=True, cwd=ROOT)
    release = os.path.join(ROOT, "target", "release")
    return args.binary or os.path.join(release, "modelwatch"), os.path.join(release, "examples", "echo")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def wait_ready(url, proc, timeout=120.0):
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return rps, pct(50), pct(99), int(non2xx.group(1)) if non2xx else 0


MIXES = ("realistic", "uniform", "unknown")


def wrk(url, duration, connections, mix="uniform", population=(5000, 10000), seed=1, bodies=None,
        protocol="v1"):
    lua = os.path.join(ROOT, "bench", "wrk-predict.lua")
    extra = [str(bodies or 0), protocol]
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", lua, url,
         "--", mix, str(seed), str(population[0]), str(population[1]), *extra],
        check=True, capture_output=True, text=True,
    ).stdout
    return parse_wrk(out)


def metric_sum(metrics_url, name, label=None):
    """Sum of one metric's samples (those carrying `label`, if given) in a scrape."""
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and (label is None or label in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def stored_population(data):
    """(customers, terminals) the seeded store holds: the ids are 0..n-1 in order,
    so the count is the first unknown id. Read from the SQLite file itself."""
    import sqlite3
    db = sqlite3.connect(os.path.join(data, "features.sqlite"))
    try:
        counts = dict(db.execute(
            "SELECT feature_group, COUNT(*) FROM feature_values GROUP BY feature_group"))
        highest = dict(db.execute(
            "SELECT feature_group, MAX(entity_id) FROM feature_values GROUP BY feature_group"))
    finally:
        db.close()
    customers, terminals = counts["customer"], counts["terminal"]
    # Known really is known: the highest stored id is n-1 in the store's format.
    assert highest["customer"] == f"C{customers - 1:06d}", highest
    assert highest["terminal"] == f"T{terminals - 1:05d}", highest
    return customers, terminals


def seed_store(binary, data):
    port, mport = free_port(), free_port()
    seed = subprocess.Popen([binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
                             "--metrics-listen", f"127.0.0.1:{mport}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log("seeding the feature store (first start)...")
    wait_ready(f"http://127.0.0.1:{port}/readyz", seed, timeout=600)
    seed.send_signal(signal.SIGTERM)
    seed.wait(timeout=30)


def run_mixes(args, binary):
    data = tempfile.mkdtemp(prefix="modelwatch-bench-")
    rounds = []
    try:
        seed_store(binary, data)
        population = stored_population(data)
        log(f"store holds customers C000000..C{population[0] - 1:06d}, "
            f"terminals T00000..T{population[1] - 1:05d}")
        port, mport = free_port(), free_port()
        cmd = [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
               "--metrics-listen", f"127.0.0.1:{mport}", *args.serve_arg]
        log(f"== {' '.join(cmd)}")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api, metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}/metrics"
        try:
            wait_ready(api + "/readyz", proc)
            for mix in MIXES:
                wrk(api, 3, args.connections, mix, population)
            for r in range(args.rounds):
                results = {}
                for mix in MIXES:
                    before = {op: metric_sum(metrics, "model_feature_cache_operations_total",
                                             f'operation="{op}"') for op in ("hit", "miss")}
                    # A new seed each round: the unknown flood's ids are new to the cache.
                    rps, p50, p99, non2xx = wrk(api, args.duration,
                                                args.connections, mix, population, seed=r + 1,
                                                bodies=args.bodies if mix != "uniform" else None)
                    after = {op: metric_sum(metrics, "model_feature_cache_operations_total",
                                            f'operation="{op}"') for op in ("hit", "miss")}
                    hits, misses = (after[op] - before[op] for op in ("hit", "miss"))
                    results[mix] = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non2xx": non2xx,
                                    "hit_ratio": hits / (hits + misses) if hits + misses else None}
                    log(f"   round {r + 1} {mix:<10} {rps:>9,.0f} req/s  p99 {p99:.2f} ms  "
                        f"non-2xx {non2xx}")
                rounds.append(results)
            rss = rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        shutil.rmtree(data, ignore_errors=True)

    def med(mix, key):
        values = [r[mix][key] for r in rounds if r[mix][key] is not None]
        return statistics.median(values) if values else None

    width = 12
    print(f"{'':<26}" + "".join(f"{m:>{width}}" for m in MIXES))
    for label, key, fmt in [("req/s (median)", "rps", "{:,.0f}"), ("p50 ms", "p50_ms", "{:.3f}"),
                            ("p99 ms", "p99_ms", "{:.3f}"), ("non-2xx answers", "non2xx", "{:.0f}"),
                            ("cache hit ratio", "hit_ratio", "{:.3f}")]:
        cells = []
        for m in MIXES:
            v = med(m, key)
            cells.append(f"{(fmt.format(v) if v is not None else '-'):>{width}}")
        print(f"{label:<26}" + "".join(cells))
    ratios = [r["unknown"]["rps"] / r["realistic"]["rps"] for r in rounds]
    print()
    print(f"rounds: {args.rounds} x {args.duration} s per mix, wrk -t1 -c{args.connections}, "
          f"{args.bodies or 65536} distinct bodies (realistic, unknown); "
          f"RSS after load {rss:.1f} MiB")
    print("unknown / realistic throughput per round: " + ", ".join(f"{x:.2f}" for x in ratios))
    verdict = "meets" if statistics.median(ratios) >= 0.8 else "misses"
    print(f"unknown / realistic throughput (median):  {statistics.median(ratios):.2f} "
          f"({verdict} the 0.80 target)")
    if args.json:
        print(json.dumps(rounds, indent=2))


def redis_calls(port, command="hmget"):
    """Calls of one Redis command so far (INFO commandstats)."""
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "INFO", "commandstats"],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(rf"^cmdstat_{command}:calls=(\d+)", out, re.M)
    return int(m.group(1)) if m else 0


def run_stores(args, binary):
    """The realistic mix against two `serve`s of one population, the embedded SQLite
    store and Redis in our layout, alternating rounds in one run."""
    data = tempfile.mkdtemp(prefix="modelwatch-bench-")
    procs = []
    try:
        seed_store(binary, data)
        population = stored_population(data)
        rport = free_port()
        redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(rport),
                                  "--save", "", "--appendonly", "no", "--dir", data],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(redis)
        servers = {}
        for name, store in (("sqlite", []), ("redis", ["--feature-store", f"redis://127.0.0.1:{rport}/0"])):
            port, mport = free_port(), free_port()
            # One data directory (one seeded population), but each server its own
            # prediction log: a log takes one server.
            cmd = [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
                   "--metrics-listen", f"127.0.0.1:{mport}",
                   "--prediction-log", os.path.join(data, f"predictions-{name}.redb"),
                   *store, *args.serve_arg]
            log(f"== {' '.join(cmd)}")
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            api = f"http://127.0.0.1:{port}"
            # The Redis one seeds Redis from the simulator on its first start.
            wait_ready(api + "/readyz", proc, timeout=600)
            servers[name] = (api, f"http://127.0.0.1:{mport}/metrics")
        for name, (api, _) in servers.items():
            wrk(api, 3, args.connections, "realistic", population)
        rounds = []
        for r in range(args.rounds):
            results = {}
            for name, (api, metrics) in servers.items():
                calls = redis_calls(rport)
                requests = metric_sum(metrics, "model_requests_total")
                rps, p50, p99, non2xx = wrk(api, args.duration, args.connections, "realistic",
                                            population, seed=r + 1, bodies=args.bodies)
                answered = metric_sum(metrics, "model_requests_total") - requests
                trips = (redis_calls(rport) - calls) / answered if answered else None
                results[name] = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non2xx": non2xx,
                                 "redis_round_trips_per_request": trips}
                log(f"   round {r + 1} {name:<7} {rps:>9,.0f} req/s  p99 {p99:.2f} ms  "
                    f"non-2xx {non2xx}  Redis round trips/request {trips:.4f}")
            rounds.append(results)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(data, ignore_errors=True)

    names = ("sqlite", "redis")
    print(f"{'':<32}" + "".join(f"{n:>12}" for n in names))
    for label, key, fmt in [("req/s (median)", "rps", "{:,.0f}"), ("p50 ms", "p50_ms", "{:.3f}"),
                            ("p99 ms", "p99_ms", "{:.3f}"), ("non-2xx answers", "non2xx", "{:.0f}"),
                            ("Redis round trips per request", "redis_round_trips_per_request", "{:.4f}")]:
        print(f"{label:<32}" + "".join(
            f"{fmt.format(statistics.median(r[n][key] for r in rounds)):>12}" for n in names))
    ratios = [r["redis"]["rps"] / r["sqlite"]["rps"] for r in rounds]
    print()
    print(f"rounds: {args.rounds} x {args.duration} s per store, realistic mix, wrk -t1 "
          f"-c{args.connections}; redis / sqlite throughput per round: "
          + ", ".join(f"{x:.2f}" for x in ratios))
    if args.json:
        print(json.dumps(rounds, indent=2))


PROTOCOLS = ("v1", "v1-batch", "v2")


def run_protocols(args, binary):
    """/v1/predict against /v2/models/fraud/infer, one row per request, alternating
    within each round on one server."""
    data = tempfile.mkdtemp(prefix="modelwatch-bench-")
    rounds = []
    try:
        seed_store(binary, data)
        population = stored_population(data)
        port, mport = free_port(), free_port()
        cmd = [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
               "--metrics-listen", f"127.0.0.1:{mport}", *args.serve_arg]
        log(f"== {' '.join(cmd)}")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api, metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}/metrics"
        try:
            wait_ready(api + "/readyz", proc)
            for protocol in PROTOCOLS:
                wrk(api, 3, args.connections, args.mix, population, protocol=protocol)
            for r in range(args.rounds):
                results = {}
                # Rotate which goes first, so none always runs on a warmer cache.
                for protocol in PROTOCOLS[r % 3:] + PROTOCOLS[:r % 3]:
                    before = metric_sum(metrics, "model_requests_total", 'status="success"')
                    rps, p50, p99, non2xx = wrk(api, args.duration, args.connections, args.mix,
                                                population, seed=r + 1, bodies=args.bodies,
                                                protocol=protocol)
                    scored = metric_sum(metrics, "model_requests_total", 'status="success"') - before
                    results[protocol] = {"rps": rps, "p50_ms": p50, "p99_ms": p99,
                                         "non2xx": non2xx, "scored": scored}
                    log(f"   round {r + 1} {protocol:<8} {rps:>9,.0f} req/s  p50 {p50:.3f} ms  "
                        f"p99 {p99:.2f} ms  non-2xx {non2xx}  scored {scored:,.0f}")
                rounds.append(results)
            rss = rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        shutil.rmtree(data, ignore_errors=True)

    width = 16
    names = {"v1": "/v1/predict", "v1-batch": "/v1/.../batch", "v2": "/v2/.../infer"}
    print(f"{'':<22}" + "".join(f"{names[p]:>{width}}" for p in PROTOCOLS))
    for label, key, fmt in [("req/s (median)", "rps", "{:,.0f}"), ("p50 ms", "p50_ms", "{:.3f}"),
                            ("p99 ms", "p99_ms", "{:.3f}"), ("non-2xx answers", "non2xx", "{:.0f}")]:
        cells = [f"{fmt.format(statistics.median(r[p][key] for r in rounds)):>{width}}"
                 for p in PROTOCOLS]
        print(f"{label:<22}" + "".join(cells))
    print()
    print(f"rounds: {args.rounds} x {args.duration} s per API, rotating, wrk -t1 "
          f"-c{args.connections}, mix {args.mix}, one row per request; RSS after load {rss:.1f} MiB")
    for other in ("v1-batch", "v2"):
        ratios = [r[other]["rps"] / r["v1"]["rps"] for r in rounds]
        print(f"{other} / v1 throughput per round: " + ", ".join(f"{x:.2f}" for x in ratios)
              + f"; median {statistics.median(ratios):.2f}")
    if args.json:
        print(json.dumps(rounds, indent=2))


def stop(proc, timeout=30):
    """SIGTERM, then SIGKILL after `timeout`; returns the exit code (or "killed")."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "killed"


def series_count(metrics_url):
    """Samples (series) in one scrape: the lines that are not comments."""
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def histograms(metrics_url):
    """{(family, stage or ""): {upper bound: cumulative count}} of serve's request and
    stage latency histograms, summed over the other labels."""
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(model_request_duration_seconds|model_stage_duration_seconds)_bucket\{(.*)\} (\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        key = (m.group(1), labels.get("stage", ""))
        out.setdefault(key, {})
        out[key][le] = out[key].get(le, 0) + float(m.group(3))
    return out


def tail(before, after):
    """Per histogram: (count, share over 0.5 ms, share over 1 ms, p99 by linear
    interpolation within its bucket, in ms) of what was observed between two scrapes."""
    rows = {}
    for key, buckets in after.items():
        delta = {le: c - before.get(key, {}).get(le, 0) for le, c in buckets.items()}
        bounds = sorted(delta)
        total = delta[float("inf")]
        if total <= 0:
            continue
        over = lambda bound: 1 - delta.get(bound, 0) / total  # noqa: E731
        target, low, below, p99 = 0.99 * total, 0.0, 0.0, None
        for le in bounds:
            if delta[le] >= target:
                p99 = le if le == float("inf") else low + (le - low) * (target - below) / max(delta[le] - below, 1e-9)
                break
            low, below = le, delta[le]
        rows[key] = (total, over(0.0005), over(0.001), p99 * 1e3 if p99 is not None else None)
    return rows


def run_compare(args, binary, echo):
    mixes = [m.strip() for m in args.mixes_of.split(",") if m.strip()]
    for m in mixes:
        if m not in MIXES:
            sys.exit(f"error: unknown mix {m!r}\nhint: --mixes-of takes a comma-separated list of "
                     f"{', '.join(MIXES)}")
    data = tempfile.mkdtemp(prefix="modelwatch-bench-")
    procs, urls, metrics_urls = {}, {}, {}
    rounds = []
    systems = SYSTEMS + (["before"] if args.against else [])
    try:
        seed_store(binary, data)
        population = stored_population(data)
        for name in systems:
            port = free_port()
            if name == "echo":
                cmd = [echo, f"127.0.0.1:{port}"]
            else:
                mport = free_port()
                cmd = [args.against if name == "before" else binary, "serve", "--data-dir", data,
                       "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}", *args.serve_arg]
                if name == "before":
                    cmd += ["--prediction-log", os.path.join(data, "before.redb")]
                if name == "bare":
                    # Its own prediction log: one server per file.
                    cmd += ["--no-instrumentation", "--prediction-log", os.path.join(data, "bare.redb")]
                metrics_urls[name] = f"http://127.0.0.1:{mport}/metrics"
            log(f"== {name}: {' '.join(cmd)}")
            procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            urls[name] = f"http://127.0.0.1:{port}"
        for name, proc in procs.items():
            wait_ready(urls[name] + "/readyz", proc)
        log("warming up each system (3 s of each mix)")
        for name in systems:
            for mix in mixes:
                wrk(urls[name], 3, args.connections, mix, population)
        for r in range(args.rounds):
            order = systems[r % len(systems):] + systems[:r % len(systems)]
            result = {"load_before": load_average()}
            for mix in mixes:
                for name in order:
                    run = measured(lambda: wrk(urls[name], args.duration, args.connections, mix, population,
                                               seed=r + 1, bodies=args.bodies if mix != "uniform" else None))
                    result[(mix, name)] = run
                    log(f"   round {r + 1} {mix:<10} {name:<6} {run['rps']:>9,.0f} req/s  p99 {run['p99_ms']:.2f} ms"
                        f"  non-2xx {run['non2xx']}  foreign {run['foreign_cores']:.2f} cores")
            for name in order:
                before = histograms(metrics_urls[name]) if name == "serve" else None
                run = measured(lambda: (None, *loadgen(binary, urls[name], args.rate, args.duration)[:2], 0))
                if before is not None:
                    result["serve_tail"] = tail(before, histograms(metrics_urls[name]))
                f50, f99 = run["p50_ms"], run["p99_ms"]
                result[("fixed", name)] = {"p50_ms": f50, "p99_ms": f99, "foreign_cores": run["foreign_cores"]}
                log(f"   round {r + 1} {args.rate:g} req/s {name:<6} p50 {f50:.3f} ms  p99 {f99:.3f} ms  "
                    f"foreign {run['foreign_cores']:.2f} cores")
            result["load_after"] = load_average()
            rounds.append(result)
        scrapes = {name: scrape(url) for name, url in metrics_urls.items()}
        series = {name: series_count(url) for name, url in metrics_urls.items()}
    finally:
        for proc in procs.values():
            stop(proc)
        shutil.rmtree(data, ignore_errors=True)

    med = statistics.median
    print(f"{args.rounds} rounds; each: {args.duration} s of wrk -t1 -c{args.connections} per mix and system "
          f"(order rotating), then {args.rate:g} req/s (modelwatch loadgen) per system")
    print()
    width = 12
    print(f"{'median req/s':<26}" + "".join(f"{n:>{width}}" for n in systems))
    for mix in mixes:
        print(f"{mix:<26}" + "".join(f"{med([x[(mix, n)]['rps'] for x in rounds]):>{width},.0f}" for n in systems))
    for mix in mixes:
        print(f"{mix + ' p99 ms':<26}" +
              "".join(f"{med([x[(mix, n)]['p99_ms'] for x in rounds]):>{width}.3f}" for n in systems))
    print(f"{f'p50 ms at {args.rate:g} req/s':<26}" +
          "".join(f"{med([x[('fixed', n)]['p50_ms'] for x in rounds]):>{width}.3f}" for n in systems))
    print(f"{f'p99 ms at {args.rate:g} req/s':<26}" +
          "".join(f"{med([x[('fixed', n)]['p99_ms'] for x in rounds]):>{width}.3f}" for n in systems))
    print()
    print("per-round ratios (median last; targets: serve / echo >= 0.80 on the realistic mix, "
          "instrumentation <= 3%):")
    for mix in mixes:
        ratio = [x[(mix, "serve")]["rps"] / x[(mix, "echo")]["rps"] for x in rounds]
        cost = [1 - x[(mix, "serve")]["rps"] / x[(mix, "bare")]["rps"] for x in rounds]
        bare = [x[(mix, "bare")]["rps"] / x[(mix, "echo")]["rps"] for x in rounds]
        print(f"  {mix:<10} serve / echo   " + "  ".join(f"{v:.2f}" for v in ratio) + f"   median {med(ratio):.2f}")
        print(f"  {mix:<10} bare / echo    " + "  ".join(f"{v:.2f}" for v in bare) + f"   median {med(bare):.2f}")
        print(f"  {mix:<10} instrumentation " + " ".join(f"{v:+.1%}" for v in cost) + f"   median {med(cost):+.1%}")
        if args.against:
            gain = [x[(mix, "serve")]["rps"] / x[(mix, "before")]["rps"] for x in rounds]
            print(f"  {mix:<10} serve / before " + "  ".join(f"{v:.2f}" for v in gain) + f"   median {med(gain):.2f}")
    print()
    print(f"where serve's time goes at {args.rate:g} req/s (its own histograms; median over rounds): "
          "share over 0.5 ms, over 1 ms, p99 interpolated in its bucket")
    for key in sorted(rounds[0].get("serve_tail", {})):
        cells = [x["serve_tail"][key] for x in rounds if key in x.get("serve_tail", {})]
        name = "whole request (server side)" if key[0] == "model_request_duration_seconds" else f"stage {key[1]}"
        p99s = [c[3] for c in cells if c[3] is not None]
        print(f"  {name:<30} {med([c[1] for c in cells]):>7.2%} {med([c[2] for c in cells]):>7.2%}"
              f"   p99 {med(p99s) if p99s else float('nan'):.3f} ms")
    print()
    print("machine load per round (load average before, after; most foreign CPU in one run, in cores):")
    for i, x in enumerate(rounds):
        foreign = max(v["foreign_cores"] for k, v in x.items() if isinstance(k, tuple))
        print(f"  round {i + 1}: {x['load_before']:.2f}, {x['load_after']:.2f}; {foreign:.2f}")
    for name in metrics_urls:
        ms, size = scrapes[name]
        print(f"/metrics of {name}: {series[name]:,} series, {size / 1024:.1f} KiB, median {ms:.2f} ms of 20")
    if args.json:
        print(json.dumps([{(k if isinstance(k, str) else "/".join(k)): v for k, v in x.items()
                           if k != "serve_tail"} for x in rounds], indent=2))


SYSTEMS = ["echo", "serve", "bare"]


def run_scrape(args, binary):
    """`/metrics` of a `serve` with enough models (copies of the bundled one, each its
    own `model` label) for --series series, after traffic to each: the median of 50
    scrapes."""
    data = tempfile.mkdtemp(prefix="modelwatch-bench-")
    repo = os.path.join(data, "models")
    os.makedirs(repo)
    try:
        seed_store(binary, data)
        models, series, proc = 0, 0, None
        with open(os.path.join(ROOT, "models", "fraud.card.json")) as f:
            card = json.load(f)
        while series < args.series and models < 64:
            if proc is not None:
                stop(proc)
            models += 2 if series == 0 else max(1, -(-(args.series - series) * models // max(series, 1)))
            for k in range(1, models + 1):
                name = f"fraud-{k}"
                shutil.copy(os.path.join(ROOT, "models", "fraud.onnx"), os.path.join(repo, f"{name}.onnx"))
                shutil.copy(os.path.join(ROOT, "models", "fraud.reference.json"),
                            os.path.join(repo, f"{name}.reference.json"))
                with open(os.path.join(repo, f"{name}.card.json"), "w") as f:
                    json.dump({**card, "name": name, "onnx": {**card["onnx"], "file": f"{name}.onnx"}}, f)
            port, mport = free_port(), free_port()
            cmd = [binary, "serve", "--data-dir", data, "--model-repository", repo,
                   "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}"]
            log(f"== {models} models: {' '.join(cmd)}")
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            for k in range(1, models + 1):
                for i in range(20):
                    body = json.dumps({"features": {"amount": 10 + i, "timestamp": 1764000000 + i * 3600},
                                       "entities": {"customer_id": f"C{i * 37:06d}",
                                                    "terminal_id": f"T{i * 91:05d}"}}).encode()
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/fraud-{k}/predict",
                                                 data=body, headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=5) as r:
                        r.read()
            metrics = f"http://127.0.0.1:{mport}/metrics"
            series = series_count(metrics)
            log(f"   {series:,} series")
        ms, size = scrape(metrics, times=50)
        stop(proc)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    verdict = "meets" if ms <= 1.0 else "misses"
    print(f"/metrics with {models} models: {series:,} series, {size / 1024:.1f} KiB, "
          f"median {ms:.2f} ms of 50 scrapes ({verdict} the 1 ms target for {args.series:,} series)")


def loadgen(binary, target, rate, duration):
    """(p50 ms, p99 ms, report) of `modelwatch loadgen` at a fixed rate."""
    out = subprocess.run(
        [binary, "loadgen", "--target", target, "--rps", str(rate),
         "--duration", f"{duration}s", "--json", "--quiet"],
        check=True, capture_output=True, text=True,
    ).stdout
    report = json.loads(out)
    return report["p50_seconds"] * 1e3, report["p99_seconds"] * 1e3, report


def scrape(url, times=20):
    durations, size = [], 0
    for _ in range(times):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
        durations.append(time.perf_counter() - start)
        size = len(body)
    return statistics.median(durations) * 1e3, size


def measure(name, cmd, ready_url, api, metrics_url, args, binary):
    log(f"== {name}: {' '.join(cmd)}")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        startup = wait_ready(ready_url, proc)
        log(f"   ready in {startup * 1e3:.0f} ms; warming up")
        wrk(api, 3, args.connections)
        log(f"   saturation: wrk -t1 -c{args.connections} {args.duration}s")
        rps, p50, p99, non2xx = wrk(api, args.duration, args.connections)
        log(f"   fixed rate: loadgen {args.rate} req/s {args.duration}s")
        f50, f99, _ = loadgen(binary, api, args.rate, args.duration)
        scrape_ms, scrape_bytes = scrape(metrics_url) if metrics_url else (None, None)
        rss = rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed"
    log(f"   exit code after SIGTERM: {code}")
    return {
        "startup_ms": startup * 1e3, "rps": rps, "p50_ms": p50, "p99_ms": p99,
        "non2xx": non2xx, "fixed_p50_ms": f50, "fixed_p99_ms": f99,
        "scrape_ms": scrape_ms, "scrape_kib": scrape_bytes / 1024 if scrape_bytes else None,
        "rss_mib": rss, "exit": code,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk and loadgen run (default 15)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--rate", type=float, default=200, help="fixed rate in req/s (default 200)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries already built")
    parser.add_argument("--mixes", action="store_true",
                        help="compare the traffic mixes (realistic, uniform, unknown) on one serve")
    parser.add_argument("--stores", action="store_true",
                        help="compare the embedded SQLite store with Redis (our layout) on the realistic mix")
    parser.add_argument("--protocols", action="store_true",
                        help="compare /v1/predict with /v2/models/fraud/infer (one row per request) on one serve")
    parser.add_argument("--compare", action="store_true",
                        help="alternate rounds of echo, serve and serve --no-instrumentation side by side, "
                             "per traffic mix and at the fixed rate; medians of per-round ratios")
    parser.add_argument("--scrape", action="store_true",
                        help="time /metrics of a serve with enough models for --series series")
    parser.add_argument("--series", type=int, default=2000, help="series for --scrape (default 2000)")
    parser.add_argument("--against", metavar="PATH",
                        help="with --compare, also an earlier modelwatch binary (`before`), in the same rounds")
    parser.add_argument("--mixes-of", default="realistic,uniform,unknown",
                        help="the mixes of --compare, comma-separated (default realistic,uniform,unknown)")
    parser.add_argument("--mix", default="realistic", choices=MIXES,
                        help="the traffic mix of --protocols (default realistic)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds with --mixes or --protocols (default 3)")
    parser.add_argument("--binary", help="the modelwatch binary for --mixes (default: the release build; "
                                         "implies --no-build)")
    parser.add_argument("--bodies", type=int, default=None,
                        help="distinct bodies (so ids) of the realistic and unknown mixes (default 65536)")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="an extra `modelwatch serve` argument for --mixes (repeatable)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("error: wrk not found\nhint: apt-get install -y wrk")
    if args.stores and not shutil.which("redis-server"):
        sys.exit("error: redis-server not found\nhint: apt-get install -y redis-server")
    if args.scrape:
        run_scrape(args, release_binaries(args)[0])
        return
    if args.compare:
        run_compare(args, *release_binaries(args, echo=True))
        return
    if args.mixes or args.protocols or args.stores:
        binary = release_binaries(args)[0]
        (run_stores if args.stores else run_protocols if args.protocols else run_mixes)(args, binary)
        return

    binary, echo = release_binaries(args, echo=True)

    data = tempfile.mkdtemp(prefix="modelwatch-bench-")
    results = {}
    try:
        # The first start seeds the feature store; start-up is measured on the next ones.
        seed_store(binary, data)

        port = free_port()
        results["echo"] = measure("echo", [echo, f"127.0.0.1:{port}"], f"http://127.0.0.1:{port}/readyz",
                                  f"http://127.0.0.1:{port}", None, args, binary)
        for name, extra in [("serve", []), ("serve, no instrumentation", ["--no-instrumentation"])]:
            port, mport = free_port(), free_port()
            cmd = [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
                   "--metrics-listen", f"127.0.0.1:{mport}", *extra]
            results[name] = measure(name, cmd, f"http://127.0.0.1:{port}/readyz", f"http://127.0.0.1:{port}",
                                    f"http://127.0.0.1:{mport}/metrics", args, binary)
    finally:
        shutil.rmtree(data, ignore_errors=True)

    cols = list(results)
    rows = [
        ("saturation req/s", "rps", "{:,.0f}"),
        ("saturation p50 ms", "p50_ms", "{:.3f}"),
        ("saturation p99 ms", "p99_ms", "{:.3f}"),
        ("non-2xx answers", "non2xx", "{}"),
        (f"p50 ms at {args.rate:g} req/s", "fixed_p50_ms", "{:.3f}"),
        (f"p99 ms at {args.rate:g} req/s", "fixed_p99_ms", "{:.3f}"),
        ("/metrics scrape ms", "scrape_ms", "{:.2f}"),
        ("/metrics size KiB", "scrape_kib", "{:.1f}"),
        ("RSS after load MiB", "rss_mib", "{:.1f}"),
        ("start-up ms", "startup_ms", "{:.0f}"),
        ("exit code on SIGTERM", "exit", "{}"),
    ]
    width = max(len(c) for c in cols) + 2
    print(f"{'':<24}" + "".join(f"{c:>{width}}" for c in cols))
    for label, key, fmt in rows:
        cells = []
        for c in cols:
            v = results[c][key]
            cells.append(f"{(fmt.format(v) if v is not None else '-'):>{width}}")
        print(f"{label:<24}" + "".join(cells))
    serve, bare, echo_r = results["serve"], results["serve, no instrumentation"], results["echo"]
    print()
    print(f"serve / echo saturation:            {serve['rps'] / echo_r['rps']:.1%}")
    print(f"instrumentation cost (throughput):  {1 - serve['rps'] / bare['rps']:+.1%}")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
