"""The original case: a FastAPI fraud server, watched through modelwatch's collector.

    uvicorn app:app --host 127.0.0.1 --port 8000          # in examples/fastapi-fraud

POST /predict scores one transaction with the scikit-learn model in model/, answers
{"score", "decision"}, and hands the prediction to modelwatch_client.Watch, which sends
it to `modelwatch serve` in the background. /metrics has the app's own HTTP metrics
(prometheus_client) and the client's counters.

Environment:
  MODELWATCH_URL     the collector (serve's API address), default http://127.0.0.1:8080
  MODELWATCH_MODEL   the monitor-only card's name, default fraud-fastapi
  MODELWATCH_CLIENT  0 turns the client off (the benchmark's baseline), default 1
  MODELWATCH_BATCH_SIZE  events per batch the client sends, default 100
  FRAUD_MODEL        the model file, default model/fraud-fastapi.joblib
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import joblib
import numpy as np
from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, REGISTRY
from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
try:
    from modelwatch_client import Watch
except ImportError:  # run from the repository without installing the client
    sys.path.insert(0, str(HERE.parent.parent / "clients" / "python" / "src"))
    from modelwatch_client import Watch

artifact = joblib.load(os.environ.get("FRAUD_MODEL", HERE / "model" / "fraud-fastapi.joblib"))
MODEL = artifact["model"]
FEATURES = artifact["features"]
MEDIANS = artifact["medians"]
THRESHOLD = artifact["threshold"]
MEDIANS_BY_NAME = dict(zip(FEATURES, MEDIANS))

watch: Optional[Watch] = None
if os.environ.get("MODELWATCH_CLIENT", "1") != "0":
    watch = Watch(
        os.environ.get("MODELWATCH_URL", "http://127.0.0.1:8080"),
        os.environ.get("MODELWATCH_MODEL", "fraud-fastapi"),
        batch_size=int(os.environ.get("MODELWATCH_BATCH_SIZE", "100")),
    )

REQUESTS = Counter("fraud_http_requests", "HTTP requests", ["handler", "code"])
LATENCY = Histogram("fraud_http_request_duration_seconds", "HTTP request latency", ["handler"])
PREDICT_OK = REQUESTS.labels("/predict", "200")
PREDICT_BAD = REQUESTS.labels("/predict", "422")
PREDICT_LATENCY = LATENCY.labels("/predict")


class WatchStats:
    """The client's counters as fraud_modelwatch_events_total{outcome}."""

    def collect(self):
        family = CounterMetricFamily(
            "fraud_modelwatch_events", "Predictions handed to modelwatch, by outcome",
            labels=["outcome"],
        )
        if watch is not None:
            for outcome, n in watch.stats()._asdict().items():
                if outcome not in ("retries", "buffered"):
                    family.add_metric([outcome], n)
        yield family


REGISTRY.register(WatchStats())


class Transaction(BaseModel):
    """One transaction, with the aggregates the caller's feature pipeline computed."""

    transaction_id: Optional[str] = None
    features: Dict[str, Optional[float]]
    # Unix time each feature group was computed at (customer, terminal).
    feature_times: Optional[Dict[str, float]] = None


@contextlib.asynccontextmanager
async def lifespan(_app):
    yield
    if watch is not None:
        watch.close(5)  # sends what is still buffered


app = FastAPI(title="fraud (FastAPI example)", lifespan=lifespan)


@app.get("/metrics")
def metrics():
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@app.get("/healthz")
def healthz():
    return {"status": "ok", "model": "fraud-fastapi"}


@app.post("/predict")
def predict(tx: Transaction):
    started = time.perf_counter()
    given = tx.features
    unknown = [n for n in given if n not in MEDIANS_BY_NAME]
    if unknown:
        PREDICT_BAD.inc()
        raise HTTPException(422, f"unknown features: {', '.join(sorted(unknown))}")
    # feature_fetch: the row in model order; a missing value gets the training median
    # (the model has none), while modelwatch is told it was missing.
    row = np.array(
        [[MEDIANS_BY_NAME[n] if (v := given.get(n)) is None else v for n in FEATURES]],
        dtype=np.float32,
    )
    fetched = time.perf_counter()
    score = float(MODEL.predict_proba(row)[0, 1])
    inferred = time.perf_counter()
    decision = "declined" if score >= THRESHOLD else "approved"
    done = time.perf_counter()
    if watch is not None:
        watch.observe(
            score=score,
            decision=decision,
            features=given,
            feature_times=tx.feature_times,
            stages={
                "feature_fetch": fetched - started,
                "inference": inferred - fetched,
                "postprocess": done - inferred,
            },
            prediction_id=tx.transaction_id,
            duration=done - started,
        )
    PREDICT_OK.inc()
    PREDICT_LATENCY.observe(done - started)
    return {"transaction_id": tx.transaction_id, "score": score, "decision": decision}


@app.get("/watch/stats")
def watch_stats():
    """The client's counters (what it sent, refused and dropped)."""
    if watch is None:
        return {"enabled": False}
    return {"enabled": True, **watch.stats()._asdict(), "sender_thread_id": watch.sender_thread_id}



