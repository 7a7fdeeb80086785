"""The seed's Python stack, as a peer for bench/peers.py: FastAPI under uvicorn,
prometheus_client metrics, and the bundled fraud model scored by onnxruntime.

    PROMETHEUS_MULTIPROC_DIR=DIR uvicorn seed_app:app --app-dir bench/peers --workers 2

POST /predict takes one JSON object holding the model's 16 features by name (the
names in models/fraud.card.json) and answers {"score", "decision"}. GET /metrics has
a request counter, a latency histogram and a score histogram; with several uvicorn
workers, set PROMETHEUS_MULTIPROC_DIR to an empty directory so /metrics adds up every
worker (prometheus_client's multiprocess mode). GET /healthz answers once the model
is loaded.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from pydantic import create_model

MODELS = Path(__file__).resolve().parents[2] / "models"
CARD = json.loads((MODELS / "fraud.card.json").read_text())
FEATURES = [f["name"] for f in CARD["features"]]
THRESHOLD = CARD["task"]["threshold"]
DECLINED = CARD["task"]["decisions"]["at_or_above"]
APPROVED = CARD["task"]["decisions"]["below"]
INPUT = CARD["onnx"]["input"]
OUTPUT = CARD["onnx"]["output"]
COLUMN = CARD["onnx"]["column"]


def session(path: Path) -> ort.InferenceSession:
    """One onnxruntime session on one thread: each uvicorn worker is its own process,
    so more threads per worker would only fight over the same cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


MODEL = session(MODELS / CARD["onnx"]["file"])

REQUESTS = Counter("fraud_requests", "Predictions answered, by decision", ["decision"])
LATENCY = Histogram("fraud_request_duration_seconds", "Time to answer one prediction")
SCORES = Histogram(
    "fraud_score", "Fraud probability of each prediction",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0),
)
# Handles looked up once, not per request.
ANSWERED = {d: REQUESTS.labels(d) for d in (DECLINED, APPROVED)}

# The request body: the 16 features by name, every one required and a number.
Features = create_model("Features", **{name: (float, ...) for name in FEATURES})

app = FastAPI(title="fraud (the seed's Python stack)")


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.get("/metrics")
def metrics():
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        # A registry per scrape that reads every worker's files.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@app.post("/predict")
def predict(features: Features):
    started = time.perf_counter()
    row = np.array([[getattr(features, name) for name in FEATURES]], dtype=np.float32)
    score = float(MODEL.run([OUTPUT], {INPUT: row})[0][0, COLUMN])
    decision = DECLINED if score >= THRESHOLD else APPROVED
    SCORES.observe(score)
    ANSWERED[decision].inc()
    LATENCY.observe(time.perf_counter() - started)
    return {"score": score, "decision": decision}
