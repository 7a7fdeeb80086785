#!/usr/bin/env python3
"""modelwatch serve against two Python peers serving the same model, in one run.

The three systems, each on its own loopback ports:

- `modelwatch serve`: the bundled fraud model (models/fraud.onnx), features fetched
  from its seeded store; POST /v1/predict with bench/wrk-predict.lua's `realistic`
  mix (a new seed each round);
- the seed's Python stack (bench/peers/seed_app.py): FastAPI under uvicorn with
  `--workers 2`, prometheus_client metrics in multiprocess mode, the same ONNX file
  scored by onnxruntime on one thread; POST /predict with the 16 features by name;
- MLServer 1.7.1 (`"parallel_workers": 0`, `"debug": false`) with a small ONNX
  runtime (bench/peers/mlserver_onnx.py), over the Open Inference Protocol:
  POST /v2/models/fraud/infer with one FP32 tensor of shape [1, 16].

The peers are sent 2,000 distinct holdout rows (models/fraud.holdout.csv) round robin
through bench/wrk-bodies.lua. Before any load, the same holdout rows are scored once
by each peer and by onnxruntime in process: every score must agree to 1e-5 (serve
takes ids and fetches its own features, so it has no rows to compare).

Then --rounds rounds, each running wrk -t1 -c32 for --duration seconds against each
system in turn, the order reversed every other round. Each round prints the 1-minute
load average before and after it, the CPU the machine spent on processes this script
did not start (in cores) while each system was measured, and the seed stack's busiest
worker's share of its workers' CPU (uvicorn's two workers share one listening socket,
and one of them often accepts all 32 of wrk's connections, which halves the stack's
throughput; the figure shows when that happened). The table gives per
system the median req/s, p50 and p99 of the rounds and the non-2xx answers of all
rounds, and the serve/seed and serve/MLServer throughput ratios per round with their
medians, against the targets (at least 20x the seed stack, 40x MLServer).

The peers' Python 3.11 virtual environments are created under target/peer-venvs/ from
bench/peers/requirements-seed.txt and requirements-mlserver.txt (every package
pinned), and reused while those files are unchanged. Needs wrk (apt-get install -y
wrk) and a python3.11 (or --python). Not run in CI.

    python3 bench/peers.py [--rounds 3] [--duration 10] [--binary PATH | --no-build] [--json]
"""

import argparse
import csv
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import (  # noqa: E402  (bench/ is not a package)
    ROOT, free_port, log, parse_wrk, release_binaries, seed_store, stored_population, wait_ready, wrk)
from machine import load_average, measured  # noqa: E402

PEERS = os.path.join(ROOT, "bench", "peers")
VENVS = os.path.join(ROOT, "target", "peer-venvs")
CARD = os.path.join(ROOT, "models", "fraud.card.json")
HOLDOUT = os.path.join(ROOT, "models", "fraud.holdout.csv")
BODIES_LUA = os.path.join(ROOT, "bench", "wrk-bodies.lua")

SYSTEMS = ("serve", "seed", "mlserver")
TITLES = {"serve": "modelwatch serve", "seed": "seed FastAPI", "mlserver": "MLServer 1.7.1"}
# serve's throughput over each peer's, the least we aim for.
TARGETS = {"seed": 20.0, "mlserver": 40.0}
TOLERANCE = 1e-5


# ------------------------------------------------------------------ environments


def python311(given):
    """The interpreter the venvs are made from: --python, else python3.11 on PATH, else
    this one if it is 3.11. The pins were resolved for 3.11 only."""
    candidates = [given] if given else [shutil.which("python3.11"), sys.executable]
    for python in candidates:
        if not python:
            continue
        try:
            version = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                                     capture_output=True, text=True, check=True).stdout.split()
        except (OSError, subprocess.CalledProcessError):
            continue
        if version == ["3", "11"]:
            return python
    sys.exit("error: no Python 3.11 found (the peers' requirements are pinned for 3.11)\n"
             "hint: install python3.11 or give --python PATH")


def venv(name, requirements, python):
    """target/peer-venvs/NAME with `requirements` installed; reused while the file is
    unchanged (its sha256 is kept beside the venv)."""
    home = os.path.join(VENVS, name)
    marker = os.path.join(home, ".requirements.sha256")
    with open(requirements, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    bin_dir = os.path.join(home, "bin")
    if os.path.exists(marker) and open(marker).read().strip() == digest:
        log(f"venv {name}: reusing {os.path.relpath(home, ROOT)}")
        return bin_dir
    rel = os.path.relpath(requirements, ROOT)
    log(f"venv {name}: creating {os.path.relpath(home, ROOT)} with {python}")
    started = time.perf_counter()
    subprocess.run([python, "-m", "venv", "--clear", home], check=True)
    pip = os.path.join(bin_dir, "pip")
    count = sum(1 for line in open(requirements) if line.strip() and not line.startswith("#"))
    log(f"venv {name}: installing {count} pinned packages from {rel} (a minute or two)")
    # --no-deps, then pip check: a dependency missing from the pins fails here instead
    # of being resolved silently to whatever is newest.
    for step in ([pip, "install", "-q", "--no-deps", "-r", requirements], [pip, "check"]):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            sys.exit(f"error: `{' '.join(step[1:])}` failed in {os.path.relpath(home, ROOT)}\n{tail}\n"
                     f"hint: check that pip can reach the package index, then run again "
                     f"(the venv is rebuilt); the pins in {rel} were resolved for Python 3.11")
    with open(marker, "w") as f:
        f.write(digest + "\n")
    log(f"venv {name}: ready in {time.perf_counter() - started:.0f} s")
    return bin_dir


# ------------------------------------------------------------------ bodies


def holdout_rows(count, seed=7):
    """`count` distinct holdout rows (the card's features, in its order), drawn at random
    with a fixed seed so every run sends the same ones."""
    names = [f["name"] for f in json.load(open(CARD))["features"]]
    with open(HOLDOUT, newline="") as f:
        distinct = list(dict.fromkeys(tuple(float(r[n]) for n in names) for r in csv.DictReader(f)))
    if len(distinct) < count:
        sys.exit(f"error: {HOLDOUT} has {len(distinct)} distinct rows, {count} wanted")
    return names, [list(r) for r in random.Random(seed).sample(distinct, count)]


def seed_body(names, row):
    return {n: v for n, v in zip(names, row)}


def oip_body(row):
    return {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, len(row)], "data": row}]}


def write_lines(path, bodies):
    with open(path, "w") as f:
        for body in bodies:
            f.write(json.dumps(body, separators=(",", ":")) + "\n")


# ------------------------------------------------------------------ processes


def start(name, cmd, tmp, **kwargs):
    """Starts one system in its own process group (uvicorn's workers are its children),
    its output in TMP/NAME.log."""
    log(f"== {name}: {' '.join(cmd)}")
    log_path = os.path.join(tmp, f"{name}.log")
    with open(log_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                **kwargs)
    proc.log_path = log_path
    return proc


def ready(name, url, proc, timeout):
    try:
        seconds = wait_ready(url, proc, timeout=timeout)
    except RuntimeError as e:
        with open(proc.log_path) as f:
            tail = "".join(f.readlines()[-20:])
        raise SystemExit(f"error: {name}: {e}\n{tail}") from None
    log(f"   {name} ready in {seconds:.1f} s")


def stop(proc, timeout=20):
    """SIGTERM to the process we started; if it has not exited after `timeout`, SIGKILL
    to its process group (its id is the process's own), which takes its workers too."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ------------------------------------------------------------------ measuring


def post_json(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.load(r)


def check_agreement(seed_url, mlserver_url, names, rows, bin_dir):
    """Each peer's score of each row against onnxruntime's in process; exits on the
    first disagreement beyond TOLERANCE."""
    reference = json.loads(subprocess.run(
        [os.path.join(bin_dir, "python"), os.path.join(PEERS, "reference.py"), CARD],
        input=json.dumps(rows), capture_output=True, text=True, check=True).stdout)
    worst = {"seed": 0.0, "mlserver": 0.0}
    for i, (row, expected) in enumerate(zip(rows, reference)):
        scores = {
            "seed": post_json(seed_url + "/predict", seed_body(names, row))["score"],
            "mlserver": post_json(mlserver_url + "/v2/models/fraud/infer",
                                  oip_body(row))["outputs"][0]["data"][0],
        }
        for peer, score in scores.items():
            gap = abs(score - expected)
            if gap > TOLERANCE:
                sys.exit(f"error: {TITLES[peer]} scores holdout row {i} {score!r}, onnxruntime in "
                         f"process {expected!r} (|gap| {gap:.2e} > {TOLERANCE:g})")
            worst[peer] = max(worst[peer], gap)
    log(f"agreement: {len(rows)} holdout rows, largest |score - onnxruntime| "
        f"{worst['seed']:.1e} (seed), {worst['mlserver']:.1e} (MLServer)")
    return {"rows": len(rows), "max_gap": worst}


def wrk_bodies(url, path, bodies, duration, connections):
    """wrk -t1 POSTing the lines of `bodies` round robin: (req/s, p50 ms, p99 ms, non-2xx).
    load.py's wrk() drives wrk-predict.lua only; this is its twin for wrk-bodies.lua."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", BODIES_LUA, url,
         "--", path, bodies],
        check=True, capture_output=True, text=True,
    ).stdout
    return parse_wrk(out)


# ------------------------------------------------------------------ the run


def mlserver_folder(tmp, ports):
    """settings.json and fraud/model-settings.json for `mlserver start FOLDER`."""
    folder = os.path.join(tmp, "mlserver")
    os.makedirs(os.path.join(folder, "fraud"))
    onnx = json.load(open(CARD))["onnx"]
    settings = {
        "host": "127.0.0.1", "http_port": ports[0], "grpc_port": ports[1], "metrics_port": ports[2],
        # 1.7.1's default worker pool dies at start-up with the current uvloop.
        "parallel_workers": 0,
        # debug (the default) writes an access log line per request; a deployment turns it off.
        "debug": False,
        "metrics_dir": os.path.join(tmp, "mlserver-metrics"),
        "model_repository_root": folder,
    }
    model = {
        "name": "fraud",
        "implementation": "mlserver_onnx.OnnxClassifier",
        "parameters": {
            "uri": os.path.join(os.path.dirname(CARD), onnx["file"]),
            "extra": {"input": onnx["input"], "output": onnx["output"], "column": onnx["column"]},
        },
    }
    with open(os.path.join(folder, "settings.json"), "w") as f:
        json.dump(settings, f, indent=2)
    with open(os.path.join(folder, "fraud", "model-settings.json"), "w") as f:
        json.dump(model, f, indent=2)
    return folder


def run(args, binary, seed_bin, mlserver_bin):
    tmp = tempfile.mkdtemp(prefix="modelwatch-peers-")
    procs = []
    try:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        seed_store(binary, data)
        population = stored_population(data)
        names, rows = holdout_rows(args.rows)
        seed_bodies, oip_bodies = os.path.join(tmp, "seed.jsonl"), os.path.join(tmp, "oip.jsonl")
        write_lines(seed_bodies, (seed_body(names, r) for r in rows))
        write_lines(oip_bodies, (oip_body(r) for r in rows))

        port, mport = free_port(), free_port()
        serve_url = f"http://127.0.0.1:{port}"
        procs.append(start("serve", [binary, "serve", "--data-dir", data, "--listen",
                                     f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}"],
                           tmp))
        ready("serve", serve_url + "/readyz", procs[-1], 120)

        port = free_port()
        seed_url = f"http://127.0.0.1:{port}"
        prom = os.path.join(tmp, "seed-metrics")
        os.makedirs(prom)
        procs.append(start("seed", [os.path.join(seed_bin, "uvicorn"), "seed_app:app", "--app-dir",
                                    PEERS, "--host", "127.0.0.1", "--port", str(port), "--workers",
                                    "2", "--no-access-log", "--log-level", "warning"],
                           tmp, cwd=tmp, env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": prom}))
        ready("seed", seed_url + "/healthz", procs[-1], 180)
        seed_pid = procs[-1].pid

        ports = (free_port(), free_port(), free_port())
        mlserver_url = f"http://127.0.0.1:{ports[0]}"
        folder = mlserver_folder(tmp, ports)
        procs.append(start("mlserver", [os.path.join(mlserver_bin, "mlserver"), "start", folder],
                           tmp, cwd=tmp, env={**os.environ, "PYTHONPATH": PEERS}))
        ready("mlserver", mlserver_url + "/v2/models/fraud/ready", procs[-1], 300)

        agreement = check_agreement(seed_url, mlserver_url, names, rows[:args.check_rows], seed_bin)

        loads = {
            "serve": lambda r, d: wrk(serve_url, d, args.connections, "realistic", population,
                                      seed=r + 1),
            "seed": lambda r, d: wrk_bodies(seed_url, "/predict", seed_bodies, d, args.connections),
            "mlserver": lambda r, d: wrk_bodies(mlserver_url, "/v2/models/fraud/infer", oip_bodies,
                                                d, args.connections),
        }
        warmup = min(3, args.duration)
        log(f"warming up each system ({warmup} s)")
        for system in SYSTEMS:
            loads[system](0, warmup)

        rounds = []
        for r in range(args.rounds):
            order = SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]
            result = {"order": list(order), "load_before": load_average()}
            for system in order:
                result[system] = measured(lambda: loads[system](r, args.duration),
                                          workers_of=seed_pid if system == "seed" else None)
                m = result[system]
                share = (f"  busiest worker {m['busiest_worker_share']:.0%} of the workers' CPU"
                         if m.get("busiest_worker_share") is not None else "")
                log(f"   round {r + 1} {system:<9} {m['rps']:>9,.0f} req/s  p50 {m['p50_ms']:.3f} ms  "
                    f"p99 {m['p99_ms']:.2f} ms  non-2xx {m['non2xx']}  "
                    f"foreign CPU {max(m['foreign_cores'], 0):.2f} cores{share}")
            result["load_after"] = load_average()
            for peer in TARGETS:
                result[f"serve_over_{peer}"] = result["serve"]["rps"] / result[peer]["rps"]
            log(f"   round {r + 1}: load average {result['load_before']:.2f} -> "
                f"{result['load_after']:.2f}; serve/seed {result['serve_over_seed']:.1f}x, "
                f"serve/mlserver {result['serve_over_mlserver']:.1f}x")
            rounds.append(result)
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return agreement, rounds


def report(args, agreement, rounds):
    def med(system, key):
        return statistics.median(r[system][key] for r in rounds)

    width = 18
    print(f"{'':<22}" + "".join(f"{TITLES[s]:>{width}}" for s in SYSTEMS))
    for label, key, fmt in [("req/s (median)", "rps", "{:,.0f}"), ("p50 ms (median)", "p50_ms", "{:.3f}"),
                            ("p99 ms (median)", "p99_ms", "{:.3f}")]:
        print(f"{label:<22}" + "".join(f"{fmt.format(med(s, key)):>{width}}" for s in SYSTEMS))
    print(f"{'non-2xx (all rounds)':<22}"
          + "".join(f"{sum(r[s]['non2xx'] for r in rounds):>{width},}" for s in SYSTEMS))
    print()
    print(f"rounds: {args.rounds} x {args.duration} s per system, order reversed every other "
          f"round, wrk -t1 -c{args.connections}; serve: realistic mix; peers: {args.rows:,} "
          f"holdout rows; agreement checked on {agreement['rows']} rows")
    for i, r in enumerate(rounds):
        foreign = ", ".join(f"{s} {max(r[s]['foreign_cores'], 0):.2f}" for s in r["order"])
        share = r["seed"].get("busiest_worker_share")
        print(f"round {i + 1}: load average {r['load_before']:.2f} -> {r['load_after']:.2f}; "
              f"foreign CPU (cores) {foreign}; seed's busiest worker "
              f"{'-' if share is None else f'{share:.0%}'}; serve/seed {r['serve_over_seed']:.1f}x, "
              f"serve/mlserver {r['serve_over_mlserver']:.1f}x")
    medians = {}
    for peer, target in TARGETS.items():
        medians[peer] = statistics.median(r[f"serve_over_{peer}"] for r in rounds)
        verdict = "meets" if medians[peer] >= target else "misses"
        print(f"serve / {TITLES[peer]} throughput (median): {medians[peer]:.1f}x "
              f"(target >= {target:g}x: {verdict})")
    if args.json:
        print(json.dumps({"agreement": agreement, "rounds": rounds,
                          "median_ratios": {f"serve_over_{p}": v for p, v in medians.items()},
                          "targets": {f"serve_over_{p}": t for p, t in TARGETS.items()}}, indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per system per round (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--rows", type=int, default=2000,
                        help="distinct holdout rows the peers are sent (default 2000)")
    parser.add_argument("--check-rows", type=int, default=200,
                        help="rows of those scored once by each peer and compared (default 200)")
    parser.add_argument("--binary", help="the modelwatch binary (default: the release build; implies --no-build)")
    parser.add_argument("--no-build", action="store_true", help="use target/release/modelwatch as it is")
    parser.add_argument("--python", help="the Python 3.11 the venvs are made from (default: python3.11)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration < 1 or args.rows < 1 or not 1 <= args.check_rows <= args.rows:
        parser.error("--rounds, --duration and --rows must be at least 1, --check-rows 1 to --rows")
    if not shutil.which("wrk"):
        sys.exit("error: wrk not found\nhint: apt-get install -y wrk")
    binary = os.path.abspath(release_binaries(args)[0])
    if not os.access(binary, os.X_OK):
        sys.exit(f"error: {binary} is not an executable\n"
                 "hint: cargo build --release -p modelwatch-cli (or give --binary PATH)")
    python = python311(args.python)
    seed_bin = venv("seed", os.path.join(PEERS, "requirements-seed.txt"), python)
    mlserver_bin = venv("mlserver", os.path.join(PEERS, "requirements-mlserver.txt"), python)
    report(args, *run(args, binary, seed_bin, mlserver_bin))


if __name__ == "__main__":
    main()
