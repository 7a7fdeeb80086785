#!/usr/bin/env python3
"""modelwatch's false-alarm benchmark: 24 compressed hours of clean traffic at
three rates, one table.

Runs `modelwatch drill --scenario clean --duration 24h` (the lab: a real
`modelwatch serve` and a real Prometheus with the mixin at 1/60 time scale, so 24
compressed hours take 24 minutes) at 5, 50 and 200 req/s, all three at once, and
reports for each rate every alert that went pending or fired, and those still
pending after the warm-up (the drift window filling once). A config that passes has
zero fired and zero pending after warm-up at every rate.

Use it to tune a mixin config to your own traffic: pass `--config mixin.toml` and
your rates. Needs Debian's prometheus (apt-get install -y prometheus) and a built
binary (cargo build -p modelwatch-cli).

    python3 bench/false_alarm.py [--rates 5,50,200] [--duration 24h] [--config FILE]
        [--binary target/debug/modelwatch] [--out target/false-alarm]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="5,50,200", help="req/s, comma-separated")
    parser.add_argument("--duration", default="24h", help="compressed length of each drill")
    parser.add_argument("--speedup", default="60", help="time compression")
    parser.add_argument("--config", help="a mixin config (TOML) instead of the lab's")
    parser.add_argument(
        "--binary",
        default=os.path.join(root, "target", "debug", "modelwatch"),
        help="the modelwatch binary",
    )
    parser.add_argument(
        "--out",
        default=os.path.join(root, "target", "false-alarm"),
        help="where each drill's JSON and log go",
    )
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        print(f"error: {args.binary} does not exist", file=sys.stderr)
        print("hint: cargo build -p modelwatch-cli", file=sys.stderr)
        return 2
    rates = [r.strip() for r in args.rates.split(",") if r.strip()]
    os.makedirs(args.out, exist_ok=True)
    # A private copy, so that a rebuild during the 24 minutes changes nothing.
    work = tempfile.mkdtemp(prefix="modelwatch-false-alarm-")
    binary = os.path.join(work, "modelwatch")
    shutil.copy2(args.binary, binary)
    runs = []
    for i, rate in enumerate(rates):
        command = [
            binary, "drill", "--scenario", "clean", "--rps", rate,
            "--duration", args.duration, "--speedup", args.speedup,
            "--stream", str(1000 + i), "--json",
        ]
        if args.config:
            command += ["--config", args.config]
        stdout = open(os.path.join(args.out, f"clean-{rate}rps.json"), "w")
        stderr = open(os.path.join(args.out, f"clean-{rate}rps.log"), "w")
        runs.append((rate, subprocess.Popen(command, stdout=stdout, stderr=stderr), stdout, stderr))
    rows = []
    failed = False
    for rate, process, stdout, stderr in runs:
        code = process.wait()
        stdout.close()
        stderr.close()
        path = os.path.join(args.out, f"clean-{rate}rps.json")
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError):
            print(f"error: the drill at {rate} req/s wrote no report (exit {code})", file=sys.stderr)
            print(f"hint: see {os.path.join(args.out, f'clean-{rate}rps.log')}", file=sys.stderr)
            failed = True
            continue
        alerts = report["alerts"]
        pending = sorted(a for a, t in alerts.items() if t["first_pending_seconds"] is not None)
        fired = sorted(a for a, t in alerts.items() if t["first_firing_seconds"] is not None)
        late = report["pending_after_warm_up"]
        failed |= bool(fired or late)
        rows.append((rate, report, pending, fired, late))
    shutil.rmtree(work, ignore_errors=True)
    print(f"clean traffic, {args.duration} compressed (1/{args.speedup}), config: {args.config or 'the lab'}\n")
    print("| req/s | requests answered | warm-up | went pending (any time) | fired | pending after warm-up |")
    print("|---:|---:|---:|---|---|---|")
    for rate, report, pending, fired, late in rows:
        print(
            f"| {rate} | {report['requests_ok']} of {report['requests_sent']} "
            f"| {report['warm_up_seconds']:.0f} s | {', '.join(pending) or 'none'} "
            f"| {', '.join(fired) or 'none'} | {', '.join(late) or 'none'} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
