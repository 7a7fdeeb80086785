#!/usr/bin/env python3
"""modelwatch's soak run: a release `modelwatch serve` under steady load for minutes.

1. Seeds a feature store in a temporary directory and starts `modelwatch serve`.
2. Measures saturation with the realistic mix (wrk -t1 -c32, 15 s), unless --rate
   is given.
3. Sends the realistic mix at --load (default 80%) of that rate for --duration
   (default 10 minutes) with bench/wrk-paced.lua, and every --interval seconds
   samples the server's RSS, the time one /metrics scrape takes, and the request
   counters.
4. Prints errors (wrk's socket errors and non-2xx answers, and every request the
   server counted with a status other than success), RSS growth after the warm-up
   (default the first minute), and scrape time in the first minute after the
   warm-up against the last minute.

Targets: zero errors, RSS growth under 10% after warm-up, scrape time flat. It is
not part of CI. Needs wrk (apt-get install -y wrk).

    python3 bench/soak.py [--duration 600] [--load 0.8] [--binary PATH] [--no-build]
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (bench/load.py: the shared helpers)

ROOT = load.ROOT


def scrape_once(url):
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode()
    return time.perf_counter() - start, body


def requests_by_status(text):
    """model_requests_total summed by status, from one exposition."""
    totals = {}
    for line in text.splitlines():
        if line.startswith("model_requests_total{"):
            status = re.search(r'status="([^"]*)"', line).group(1)
            totals[status] = totals.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def wrk_errors(text):
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {
        "socket": sum(int(x) for x in socket.groups()) if socket else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=600, help="seconds of paced load (default 600)")
    parser.add_argument("--warmup", type=int, default=60, help="seconds before RSS growth is counted (default 60)")
    parser.add_argument("--interval", type=float, default=5, help="seconds between samples (default 5)")
    parser.add_argument("--load", type=float, default=0.8, help="share of the measured saturation (default 0.8)")
    parser.add_argument("--rate", type=float, help="requests/s to send instead of --load x saturation")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--binary", help="the modelwatch binary (default: the release build; implies --no-build)")
    parser.add_argument("--no-build", action="store_true", help="use the release binary already built")
    parser.add_argument("--json", action="store_true", help="print every sample as JSON too")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("error: wrk not found\nhint: apt-get install -y wrk")
    if args.duration < args.warmup + 120:
        sys.exit("error: --duration must leave two minutes after --warmup\n"
                 "hint: the scrape time compares the first and the last minute after warm-up")
    binary = load.release_binaries(args)[0]

    data = tempfile.mkdtemp(prefix="modelwatch-soak-")
    samples, wrk_out = [], ""
    try:
        load.seed_store(binary, data)
        population = load.stored_population(data)
        port, mport = load.free_port(), load.free_port()
        api, metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}/metrics"
        proc = subprocess.Popen([binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
                                 "--metrics-listen", f"127.0.0.1:{mport}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            load.wait_ready(api + "/readyz", proc)
            if args.rate:
                saturation, rate = None, args.rate
            else:
                load.log("saturation: wrk realistic mix, 15 s")
                saturation = load.wrk(api + "/v1/predict", 15, args.connections, "realistic", population)[0]
                rate = saturation * args.load
            load.log(f"soak: {rate:,.0f} req/s for {args.duration} s")
            _, before = scrape_once(metrics)
            before = requests_by_status(before)
            lua = os.path.join(ROOT, "bench", "wrk-paced.lua")
            wrk = subprocess.Popen(
                ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "-s", lua,
                 api + "/v1/predict", "--", "realistic", "7", str(population[0]), str(population[1]),
                 "0", "v1", str(rate)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            start = time.monotonic()
            try:
                while wrk.poll() is None and time.monotonic() - start < args.duration + 60:
                    t = time.monotonic() - start
                    took, text = scrape_once(metrics)
                    counts = requests_by_status(text)
                    samples.append({"t": t, "rss_mib": load.rss_mib(proc.pid), "scrape_ms": took * 1e3,
                                    "requests": sum(counts.values()) - sum(before.values())})
                    time.sleep(max(0.0, args.interval - (time.monotonic() - start - t)))
                wrk_out = wrk.communicate(timeout=60)[0]
            finally:
                if wrk.poll() is None:
                    wrk.kill()
            _, after = scrape_once(metrics)
            after = requests_by_status(after)
            exit_code = None
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                exit_code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                exit_code = "killed"
    finally:
        shutil.rmtree(data, ignore_errors=True)

    served = {s: after.get(s, 0.0) - before.get(s, 0.0) for s in after}
    failed = {s: n for s, n in served.items() if s != "success" and n > 0}
    errors = wrk_errors(wrk_out)
    total = sum(served.values())
    warm = [s for s in samples if s["t"] >= args.warmup]
    rss_start, rss_end = warm[0]["rss_mib"], warm[-1]["rss_mib"]
    rss_max = max(s["rss_mib"] for s in warm)
    growth = rss_end / rss_start - 1
    first = [s["scrape_ms"] for s in warm if s["t"] < args.warmup + 60]
    last = [s["scrape_ms"] for s in warm if s["t"] >= warm[-1]["t"] - 60]
    per_sample = []
    for s0, s1 in zip(samples, samples[1:]):
        per_sample.append((s1["requests"] - s0["requests"]) / (s1["t"] - s0["t"]))

    print(f"soak: realistic mix, wrk -t1 -c{args.connections}, {args.duration} s, "
          f"sample every {args.interval:g} s, warm-up {args.warmup} s")
    if saturation:
        print(f"saturation (realistic, 15 s)       {saturation:>12,.0f} req/s")
    print(f"target rate                        {rate:>12,.0f} req/s")
    print(f"reached (server count / duration)  {total / args.duration:>12,.0f} req/s")
    print(f"rate per sample, min .. max        {min(per_sample):>12,.0f} .. {max(per_sample):,.0f} req/s")
    print(f"requests served                    {total:>12,.0f}")
    print(f"errors: non-success at the server  {sum(failed.values()):>12,.0f}  {failed or ''}")
    print(f"errors: wrk socket / non-2xx       {errors['socket']:>12} / {errors['non2xx']}")
    print(f"RSS after warm-up .. at the end    {rss_start:>12.1f} .. {rss_end:.1f} MiB (max {rss_max:.1f})")
    print(f"RSS growth after warm-up           {growth:>12.1%}")
    print(f"/metrics scrape ms, median         {statistics.median(first):>12.2f} first minute, "
          f"{statistics.median(last):.2f} last minute")
    print(f"exit code on SIGTERM               {exit_code!s:>12}")
    ok = not failed and not errors["socket"] and not errors["non2xx"] and growth < 0.10
    print(f"targets (zero errors, RSS growth < 10%): {'met' if ok else 'missed'}")
    if args.json:
        print(json.dumps(samples, indent=2))


if __name__ == "__main__":
    main()
