#!/usr/bin/env python3
"""Send a bounded number of simulated transactions to the FastAPI fraud app.

    python drive.py --url http://127.0.0.1:8000 --count 3000 --rate 100
    python drive.py --count 3000 --rate 100 --drift-amount 4    # amounts x4: drift

The transactions are the holdout rows of the example's simulation
(model/fraud-fastapi.holdout.csv, replayed in order and wrapped around), each POSTed to
/predict with its features and the time its customer and terminal aggregates were
computed (now minus --feature-age). Then it waits (--wait-sent) until the app's
modelwatch client has settled all of them (GET /watch/stats), so that a test can query
Prometheus right after. Standard library only. Prints one JSON summary line and exits
1 when a request failed or the client did not send every prediction.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_rows(holdout: Path, card: Path):
    spec = json.loads(card.read_text())
    names = [f["name"] for f in spec["features"]]
    with open(holdout, newline="") as f:
        reader = csv.DictReader(f)
        return [{n: float(r[n]) for n in names} for r in reader]


SETTLED = ("sent", "rejected_by_server", "invalid", "dropped_buffer_full",
           "dropped_send_failed", "dropped_closed")


def watch_stats(url: str) -> dict:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/watch/stats", timeout=5) as r:
            return json.load(r)
    except (OSError, ValueError):
        return {}


def wait_settled(url: str, before: dict, count: int, timeout: float) -> dict:
    """The client's counts for this run, once `count` predictions are settled (or timeout).

    Settled: sent, refused or dropped, i.e. nothing of this run left in the buffer.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = watch_stats(url)
        delta = {k: now.get(k, 0) - before.get(k, 0) for k in SETTLED}
        if sum(delta.values()) >= count or time.monotonic() >= deadline:
            delta["settled"] = sum(delta[k] for k in SETTLED) >= count
            return delta
        time.sleep(0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000", help="the app")
    ap.add_argument("--count", type=int, default=1000, help="transactions to send (bound)")
    ap.add_argument("--rate", type=float, default=100.0, help="transactions per second, all connections")
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--drift-amount", type=float, default=1.0,
                    help="multiply every amount by this (1: no drift)")
    ap.add_argument("--missing", type=float, default=0.0,
                    help="share of requests with the customer's 1-day average missing (null)")
    ap.add_argument("--feature-age", type=float, default=30.0,
                    help="seconds between computing the aggregates and the request")
    ap.add_argument("--skip", type=int, default=0, help="start at this holdout row")
    ap.add_argument("--holdout", type=Path, default=HERE / "model" / "fraud-fastapi.holdout.csv")
    ap.add_argument("--card", type=Path, default=HERE / "model" / "fraud-fastapi.card.json")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--wait-sent", type=float, default=10.0,
                    help="then wait at most this many seconds for the app's client to settle "
                         "every prediction (GET /watch/stats); 0: do not wait")
    args = ap.parse_args()
    if args.count < 0 or args.rate <= 0 or args.connections < 1:
        print("error: --count >= 0, --rate > 0 and --connections >= 1", file=sys.stderr)
        return 2

    rows = load_rows(args.holdout, args.card)
    target = urllib.parse.urlsplit(args.url)
    before = watch_stats(args.url)
    lock = threading.Lock()
    result = {"sent": 0, "ok": 0, "failed": 0, "declined": 0, "errors": []}
    started = time.monotonic()

    def worker(k: int) -> None:
        rng = random.Random(args.seed * 1000 + k)
        conn = None
        for i in range(k, args.count, args.connections):
            due = started + i / args.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            features = dict(rows[(args.skip + i) % len(rows)])
            features["amount"] = round(features["amount"] * args.drift_amount, 2)
            if args.missing and rng.random() < args.missing:
                features["customer_avg_amount_1d"] = None
            computed = time.time() - args.feature_age
            body = json.dumps({
                "transaction_id": f"tx-{args.skip + i:08d}",
                "features": features,
                "feature_times": {"customer": computed, "terminal": computed},
            }).encode()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
                ok = response.status == 200
                declined = ok and json.loads(answer)["decision"] == "declined"
                error = None if ok else f"HTTP {response.status}: {answer[:200]!r}"
            except (OSError, http.client.HTTPException) as err:
                if conn is not None:
                    conn.close()
                conn = None
                ok, declined, error = False, False, f"{type(err).__name__}: {err}"
            with lock:
                result["sent"] += 1
                result["ok"] += ok
                result["failed"] += not ok
                result["declined"] += declined
                if error and len(result["errors"]) < 5:
                    result["errors"].append(error)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    result["seconds"] = round(elapsed, 2)
    result["rate"] = round(result["sent"] / elapsed, 1) if elapsed else 0.0
    result["drift_amount"] = args.drift_amount
    if args.wait_sent > 0 and before.get("enabled"):
        result["client"] = wait_settled(args.url, before, result["ok"], args.wait_sent)
    print(json.dumps(result))
    client = result.get("client")
    unsent = client is not None and client["sent"] < result["ok"]
    return 1 if result["failed"] or unsent else 0


if __name__ == "__main__":
    sys.exit(main())
