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
    """The holdout's feature rows, and each row's ground truth (is_fraud)."""
    spec = json.loads(card.read_text())
    names = [f["name"] for f in spec["features"]]
    with open(holdout, newline="") as f:
        reader = list(csv.DictReader(f))
    rows = [{n: float(r[n]) for n in names} for r in reader]
    truth = [float(r.get("is_fraud") or 0) >= 0.5 for r in reader]
    return rows, truth


class Labeler:
    """Sends each answered prediction's ground truth to modelwatch's
    POST /v1/feedback/batch `delay` seconds after its answer, in batches, from a
    thread of its own: the delayed labels of the original case."""

    BATCH = 200

    def __init__(self, url: str, delay: float):
        self.target = urllib.parse.urlsplit(url)
        self.delay = delay
        self.pending = []  # (due, prediction_id, label), in answer order
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.counts = {"labels_sent": 0, "labels_failed": 0}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, prediction_id: str, label: bool) -> None:
        with self.lock:
            self.pending.append((time.monotonic() + self.delay, prediction_id, label))

    def _due(self, everything: bool):
        now = time.monotonic()
        with self.lock:
            n = 0
            while n < len(self.pending) and n < self.BATCH and (
                    everything or self.pending[n][0] <= now):
                n += 1
            taken, self.pending = self.pending[:n], self.pending[n:]
        return taken

    def _post(self, batch) -> None:
        body = json.dumps({"labels": [
            {"prediction_id": pid, "label": label} for _, pid, label in batch]}).encode()
        try:
            conn = http.client.HTTPConnection(self.target.hostname, self.target.port or 80, timeout=10)
            conn.request("POST", "/v1/feedback/batch", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            conn.close()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        self.counts["labels_sent" if ok else "labels_failed"] += len(batch)

    def _run(self) -> None:
        while True:
            finishing = self.done.is_set()
            batch = self._due(everything=False)
            if batch:
                self._post(batch)
                continue
            with self.lock:
                empty = not self.pending
            if finishing and empty:
                return
            time.sleep(0.2)

    def close(self, timeout: float) -> dict:
        """Waits (bounded) until every label is due and sent."""
        self.done.set()
        self.thread.join(self.delay + timeout)
        with self.lock:
            self.counts["labels_unsent"] = len(self.pending)
        return dict(self.counts)


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
    ap.add_argument("--labels", metavar="URL", default=None,
                    help="modelwatch serve's API: send each answered prediction's ground truth "
                         "(the holdout's is_fraud) to URL/v1/feedback/batch, --label-delay later")
    ap.add_argument("--label-delay", type=float, default=3.0,
                    help="seconds from an answer to its label (default 3)")
    ap.add_argument("--wait-sent", type=float, default=10.0,
                    help="then wait at most this many seconds for the app's client to settle "
                         "every prediction (GET /watch/stats); 0: do not wait")
    args = ap.parse_args()
    if args.count < 0 or args.rate <= 0 or args.connections < 1:
        print("error: --count >= 0, --rate > 0 and --connections >= 1", file=sys.stderr)
        return 2

    rows, truth = load_rows(args.holdout, args.card)
    labeler = Labeler(args.labels, args.label_delay) if args.labels else None
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
            row = (args.skip + i) % len(rows)
            features = dict(rows[row])
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
                if ok and labeler is not None:
                    labeler.add(f"tx-{args.skip + i:08d}", truth[row])
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
    if labeler is not None:
        result["labels"] = labeler.close(timeout=30.0)
    print(json.dumps(result))
    client = result.get("client")
    unsent = client is not None and client["sent"] < result["ok"]
    labels = result.get("labels", {})
    unlabelled = labels.get("labels_failed", 0) + labels.get("labels_unsent", 0)
    return 1 if result["failed"] or unsent or unlabelled else 0


if __name__ == "__main__":
    sys.exit(main())
