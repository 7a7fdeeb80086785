#!/usr/bin/env python3
"""Train the example's own fraud model and write what the example needs into model/.

    python train.py --modelwatch PATH/TO/modelwatch      # simulate, train, write model/
    python train.py --data sim.csv                        # from an existing simulation

The data comes from `modelwatch simulate` (the project's simulator), with a smaller
configuration than the bundled model's (training/train.py), so that this runs in a few
minutes. It writes, into model/:

- fraud-fastapi.joblib: the GradientBoostingClassifier, its feature order, the training
  medians (the app fills a missing value with them) and the decision threshold;
- fraud-fastapi.card.json: a monitor-only card (format 2, no "onnx");
- fraud-fastapi.holdout.csv: holdout rows, the card's feature columns and `score`;
- fraud-fastapi.reference.json: with `modelwatch reference` when the binary builds a
  monitor-only reference (from the holdout's `score` column); otherwise with the same
  binning as crates/modelwatch-runtime/src/reference.rs, ported below.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import precision_recall_curve, roc_auc_score

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NAME = "fraud-fastapi"
DAY = 86_400

CONFIG = {
    "seed": 7,
    "customers": 2_000,
    "terminals": 4_000,
    "days": 75,
    "holdout_days": 14,
    "burn_in_days": 30,
    "training_date": "2026-12-03",
    "model_version": "1.0.0",
    "random_state": 11,
    "gradient_boosting": {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1},
    "holdout_csv_rows": 5_000,
    "bins": 10,
}


def card_features():
    """The bundled card's feature names and groups, in its (model input) order."""
    card = json.loads((REPO / "models" / "fraud.card.json").read_text())
    return [(f["name"], f["group"]) for f in card["features"]]


FEATURES = card_features()
FEATURE_NAMES = [n for n, _ in FEATURES]


def log(msg: str) -> None:
    print(f"[train] {msg}", file=sys.stderr, flush=True)


def simulate(modelwatch: str, out_csv: Path) -> None:
    cmd = [
        modelwatch, "simulate",
        "--seed", str(CONFIG["seed"]),
        "--customers", str(CONFIG["customers"]),
        "--terminals", str(CONFIG["terminals"]),
        "--days", str(CONFIG["days"]),
        "--holdout-days", str(CONFIG["holdout_days"]),
        "--out", str(out_csv),
    ]
    log("running " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def load(path: Path):
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    col = {name: i for i, name in enumerate(header)}
    numeric = [col["timestamp"], *(col[n] for n in FEATURE_NAMES), col["is_fraud"]]
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=numeric, dtype=np.float64)
    split = np.loadtxt(path, delimiter=",", skiprows=1, usecols=[col["split"]], dtype=str)
    ts = data[:, 0].astype(np.int64)
    X = data[:, 1:-1].astype(np.float32)
    y = data[:, -1].astype(np.int64)
    holdout = split == "holdout"
    train = ~holdout & (ts >= ts.min() + CONFIG["burn_in_days"] * DAY)
    return X, y, train, holdout


# ------------------------------------------------- reference (port of reference.rs)


def _shortest_decimal_in(low: float, high: float) -> float:
    """The number with the fewest significant digits in [low, high) (reference.rs)."""
    if low <= 0.0 < high:
        return 0.0
    if not math.isfinite(high):
        return low
    for digits in range(17):
        text = f"{low:.{digits}e}"
        rounded = float(text)
        if rounded >= low:
            candidate = rounded
        else:
            exponent = int(text.split("e")[1])
            bumped = rounded + float(f"1e{exponent - digits}")
            candidate = float(f"{bumped:.{digits}e}")
        if low <= candidate < high:
            return candidate
    return low


def distribution(name, group, values: np.ndarray, n_bins: int) -> dict:
    values = np.asarray(values, dtype=np.float32)
    total = len(values)
    present = np.sort(values[~np.isnan(values)])
    n = len(present)
    if n == 0:
        raise SystemExit(f"{name}: no value present in {total} rows")
    lo, hi = present[0], present[-1]
    distinct = np.unique(present)
    if len(distinct) <= n_bins:
        cuts = list(distinct[:-1])
    else:
        cuts = []
        for k in range(1, n_bins):
            i = max(-(-(k * n) // n_bins) - 1, 0)
            c = present[i]
            if c < hi and np.isfinite(c) and (not cuts or cuts[-1] != c):
                cuts.append(c)
    edges = []
    for cut in cuts:
        at = np.searchsorted(distinct, cut, side="right")
        nxt = float(distinct[at]) if at < len(distinct) else math.inf
        edges.append(_shortest_decimal_in(float(cut), nxt))
    bins = np.searchsorted(np.array(edges, dtype=np.float64), present.astype(np.float64), side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    out = {"name": name}
    if group is not None:
        out["group"] = group
    out.update(
        edges=edges,
        fractions=[int(c) / n for c in counts],
        min=float(lo),
        max=float(hi),
        missing_fraction=(total - n) / total,
    )
    return out


def reference(X: np.ndarray, scores: np.ndarray, n_bins: int) -> dict:
    return {
        "format_version": 1,
        "model": NAME,
        "version": CONFIG["model_version"],
        "rows": int(len(scores)),
        "bins": n_bins,
        "score": distribution("score", None, scores, n_bins),
        "features": [distribution(n, g, X[:, j], n_bins) for j, (n, g) in enumerate(FEATURES)],
    }


def short(v) -> str:
    """The shortest decimal that reads back as the same float32."""
    return np.format_float_positional(np.float32(v), trim="-")


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modelwatch", default=str(REPO / "target" / "release" / "modelwatch"),
                    help="the modelwatch binary (simulate, reference)")
    ap.add_argument("--data", type=Path, help="an existing `modelwatch simulate` CSV")
    ap.add_argument("--out-dir", type=Path, default=HERE / "model")
    ap.add_argument("--python-reference", action="store_true",
                    help="build the reference here even if `modelwatch reference` can")
    args = ap.parse_args()
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "sim.csv"
            simulate(args.modelwatch, data)
        X, y, train, holdout = load(data)
    log(f"{len(y)} rows, {train.sum()} train, {holdout.sum()} holdout, "
        f"fraud rate {y.mean():.4f}")

    started = time.monotonic()
    clf = GradientBoostingClassifier(random_state=CONFIG["random_state"], **CONFIG["gradient_boosting"])
    clf.fit(X[train], y[train])
    log(f"trained in {time.monotonic() - started:.0f}s")

    Xh, yh = X[holdout], y[holdout]
    p = clf.predict_proba(Xh)[:, 1]
    precision, recall, thresholds = precision_recall_curve(yh, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))
    threshold = float(np.float32(thresholds[best]))
    declined = p >= threshold
    metrics = {
        "auc": round(float(roc_auc_score(yh, p)), 6),
        "precision": round(float(yh[declined].mean()) if declined.any() else 0.0, 6),
        "recall": round(float(declined[yh == 1].mean()), 6),
        "holdout_rows": int(len(yh)),
        "positive_rate": round(float(yh.mean()), 6),
    }
    log(f"holdout {metrics}, threshold {threshold}")

    medians = np.median(X[train], axis=0).astype(np.float64)
    joblib.dump(
        {"model": clf, "features": FEATURE_NAMES, "medians": medians.tolist(), "threshold": threshold},
        out / f"{NAME}.joblib",
        compress=3,
    )

    card = {
        "format_version": 2,
        "name": NAME,
        "version": CONFIG["model_version"],
        "framework": f"sklearn-{sklearn.__version__}",
        "training_date": CONFIG["training_date"],
        "architecture": "gradient_boosted_trees(n_estimators={n_estimators},max_depth={max_depth})".format(
            **CONFIG["gradient_boosting"]),
        "task": {
            "type": "binary_classification",
            "threshold": threshold,
            "decisions": {"below": "approved", "at_or_above": "declined"},
        },
        # Monitor-only: the FastAPI app computes every feature and sends it in the event.
        "groups": {g: {"source": "request"} for g in dict.fromkeys(g for _, g in FEATURES)},
        "features": [{"name": n, "group": g} for n, g in FEATURES],
        "metrics": metrics,
    }
    write_json(out / f"{NAME}.card.json", card)

    # The holdout CSV: the first rows of the holdout days, in time order.
    rows = min(CONFIG["holdout_csv_rows"], len(yh))
    holdout_csv = out / f"{NAME}.holdout.csv"
    with open(holdout_csv, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*FEATURE_NAMES, "is_fraud", "score"])
        for i in range(rows):
            w.writerow([*(short(v) for v in Xh[i]), int(yh[i]), short(p[i])])
    log(f"wrote {holdout_csv} ({rows} rows)")

    ref_path = out / f"{NAME}.reference.json"
    made = False
    if not args.python_reference and Path(args.modelwatch).exists():
        cmd = [args.modelwatch, "reference", "--model", str(out / f"{NAME}.card.json"),
               "--holdout", str(holdout_csv), "--bins", str(CONFIG["bins"]), "--out", str(ref_path)]
        made = subprocess.run(cmd).returncode == 0
        if not made:
            log("`modelwatch reference` cannot build a monitor-only reference (yet); "
                "building it here")
    if not made:
        # The same rows as the CSV, read back as the Rust side reads them (f32).
        back = np.loadtxt(holdout_csv, delimiter=",", skiprows=1, dtype=np.float64)
        write_json(ref_path, reference(back[:, : len(FEATURES)].astype(np.float32),
                                       back[:, -1].astype(np.float32), CONFIG["bins"]))
    log(f"wrote {ref_path}")


if __name__ == "__main__":
    main()
