#!/usr/bin/env python3
"""Train `spend`, the second bundled model: a regressor of a transaction's amount.

    python3 training/train_spend.py                 # simulate, train, write models/fixtures/
    python3 training/train_spend.py --data f.csv    # from an existing simulated CSV
    python3 training/train_spend.py --check         # retrain in a temp dir, compare

Same simulation as train.py (its CONFIG: seed, sizes, burn-in, holdout), a different
task and feature set: from the customer's recent spending (counts and mean amounts
over 7 and 30 days, sent in the request) and the transaction's time, predict the
amount. No feature store: every feature is a request field, so the model runs
beside the fraud model without sharing its store groups.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import sklearn
import skl2onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor

import train
from train import CONFIG, Dataset, f32, log, session, shortest, split_thresholds, write_json

NAME = "spend"
SPEND = {
    "random_state": 11,
    "model": {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1},
    # A sample of the training rows is plenty for 6 features and 60 small trees.
    "train_rows": 200_000,
    "holdout_csv_rows": 3_000,
    "parity_sample_rows": 200,
}

# (feature, request field, transform). The time features are transforms of the
# request's `timestamp`; the others are request fields named like the simulator's
# columns, so its CSV (and the holdout CSV below) feed `modelwatch reference` as is.
FEATURES = [
    ("hour", "timestamp", "hour_of_day"),
    ("is_weekend", "timestamp", "is_weekend"),
    ("customer_nb_tx_7d", None, None),
    ("customer_avg_amount_7d", None, None),
    ("customer_nb_tx_30d", None, None),
    ("customer_avg_amount_30d", None, None),
]
FEATURE_NAMES = [name for name, _, _ in FEATURES]
TARGET = "amount"
OUTPUT = "variable"


def columns(ds: Dataset, names: list[str]) -> np.ndarray:
    idx = [train.FEATURE_NAMES.index(n) for n in names]
    return np.ascontiguousarray(ds.X[:, idx], dtype=np.float32)


def to_onnx(model) -> onnx.ModelProto:
    proto = convert_sklearn(
        model,
        initial_types=[(train.INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
        target_opset=CONFIG["target_opset"],
    )
    return train.reproducible(proto, NAME)


def predict(sess, X: np.ndarray) -> np.ndarray:
    out = sess.run([OUTPUT], {train.INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})
    return out[0][:, 0].astype(np.float32)


def parity_rows(X_hold: np.ndarray, proto: onnx.ModelProto) -> np.ndarray:
    """Holdout rows, edge cases, and values on the first split thresholds and one
    float32 step either side of them."""
    rng = np.random.default_rng(SPEND["random_state"] + 1)
    pick = np.sort(rng.choice(len(X_hold), size=SPEND["parity_sample_rows"], replace=False))
    rows = [X_hold[i] for i in pick]
    idx = {name: i for i, name in enumerate(FEATURE_NAMES)}
    base = X_hold[pick[0]].copy()

    def edge(**values):
        row = base.copy()
        for k, v in values.items():
            row[idx[k]] = v
        rows.append(row)

    rows.append(np.zeros(len(FEATURE_NAMES), dtype=np.float32))
    rows.append(np.full(len(FEATURE_NAMES), 1e6, dtype=np.float32))
    edge(hour=0.0)
    edge(hour=23.0, is_weekend=1.0)
    edge(customer_nb_tx_7d=0.0, customer_avg_amount_7d=0.0,
         customer_nb_tx_30d=0.0, customer_avg_amount_30d=0.0)
    edge(customer_avg_amount_7d=5000.0, customer_avg_amount_30d=5000.0)
    edge(customer_avg_amount_30d=-5.0)
    for feature, threshold in split_thresholds(proto, 12):
        t = np.float32(threshold)
        for v in (np.nextafter(t, np.float32(-np.inf)), t, np.nextafter(t, np.float32(np.inf))):
            row = base.copy()
            row[feature] = v
            rows.append(row)
    return np.vstack(rows).astype(np.float32)


def write_parity(path: Path, rows: np.ndarray, values: np.ndarray) -> None:
    """train.py's parity format; `probabilities` holds the predicted values, from
    output `variable`, column 0."""
    text = "\n".join([
        "{",
        f'  "model": "{NAME}.onnx",',
        f'  "input_name": {json.dumps(train.INPUT_NAME)},',
        f'  "feature_names": {json.dumps(FEATURE_NAMES)},',
        f'  "output": "{OUTPUT}",',
        '  "positive_class_index": 0,',
        '  "rows": [',
        ",\n".join("    [" + ", ".join(repr(f32(v)) for v in row) + "]" for row in rows),
        "  ],",
        '  "probabilities": [',
        ",\n".join("    " + repr(f32(p)) for p in values),
        "  ]",
        "}",
    ])
    json.loads(text)
    path.write_text(text + "\n")


def build(out_dir: Path, data: Path | None) -> dict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelwatch-spend-") as tmp:
        if data is None:
            data = Path(tmp) / "simulated.csv"
            train.simulate(data)
        ds = Dataset(data)
    rs = SPEND["random_state"]
    X_all, y_all = columns(ds, FEATURE_NAMES), columns(ds, [TARGET])[:, 0]
    train_idx = np.flatnonzero(ds.train)
    n = min(SPEND["train_rows"], len(train_idx))
    pick = np.sort(np.random.default_rng(rs).choice(train_idx, size=n, replace=False))
    model = GradientBoostingRegressor(random_state=rs, **SPEND["model"])
    model.fit(X_all[pick], y_all[pick])
    log(f"{NAME}: trained on {n} rows in {time.monotonic() - started:.1f}s")

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{NAME}.onnx"
    proto = to_onnx(model)
    onnx.save(proto, str(path))
    sess = session(path)
    X_hold, y_hold = X_all[ds.holdout], y_all[ds.holdout]
    pred = predict(sess, X_hold)
    err = pred.astype(np.float64) - y_hold
    metrics = {
        "mae": round(float(np.mean(np.abs(err))), 6),
        "rmse": round(float(np.sqrt(np.mean(err ** 2))), 6),
        "r2": round(float(1 - np.sum(err ** 2) / np.sum((y_hold - y_hold.mean()) ** 2)), 6),
        # The baseline a user compares with: predict the customer's 30-day mean.
        "mae_of_30d_mean": round(float(np.mean(np.abs(
            X_hold[:, FEATURE_NAMES.index("customer_avg_amount_30d")] - y_hold))), 6),
        "holdout_rows": int(len(y_hold)),
        "max_abs_diff_sklearn_vs_onnx": float(np.max(np.abs(model.predict(X_hold) - pred))),
    }
    rows = parity_rows(X_hold, proto)
    write_parity(out_dir / f"{NAME}.parity.json", rows, predict(sess, rows))

    # The holdout sample `modelwatch reference` reads: features, target and score.
    hold = np.flatnonzero(ds.holdout)
    sample = np.sort(np.random.default_rng(rs + 2).choice(
        len(hold), size=min(SPEND["holdout_csv_rows"], len(hold)), replace=False))
    with open(out_dir / f"{NAME}.holdout.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*FEATURE_NAMES, TARGET, "score"])
        for i in sample:
            w.writerow([*(shortest(v) for v in X_hold[i]), shortest(y_hold[i]),
                        shortest(pred[i])])

    def feature(name, field, transform):
        spec = {"name": name, "group": "request"}
        if transform:
            spec["transform"] = {"fn": transform, "field": field}
        return spec

    m = SPEND["model"]
    card = {
        "format_version": 2,
        "name": NAME,
        "version": "1.0.0",
        "framework": f"sklearn-{sklearn.__version__}/skl2onnx-{skl2onnx.__version__}",
        "training_date": CONFIG["training_date"],
        "architecture": (f"gradient_boosted_regression_trees(n_estimators={m['n_estimators']},"
                         f"max_depth={m['max_depth']})"),
        "onnx": {"file": path.name, "input": train.INPUT_NAME, "output": OUTPUT, "column": 0},
        "task": {"type": "regression"},
        "target": f"{TARGET} (the transaction's amount)",
        "groups": {"request": {"source": "request"}},
        "features": [feature(*f) for f in FEATURES],
        "metrics": {k: v for k, v in metrics.items() if k != "max_abs_diff_sklearn_vs_onnx"},
        "training": {
            "seed": CONFIG["seed"],
            "data_rows": n,
            "random_state": rs,
            "simulation": {k: CONFIG[k] for k in
                           ("customers", "terminals", "days", "holdout_days", "burn_in_days")},
            "holdout_csv_rows": len(sample),
        },
    }
    write_json(out_dir / f"{NAME}.card.json", card)
    log(f"{NAME}: holdout MAE {metrics['mae']:.2f} (30-day mean alone: "
        f"{metrics['mae_of_30d_mean']:.2f}), RMSE {metrics['rmse']:.2f}, R2 {metrics['r2']:.3f}; "
        f"max |sklearn - onnxruntime| = {metrics['max_abs_diff_sklearn_vs_onnx']:.2e}; "
        f"{path.stat().st_size / 1024:.0f} KiB; {time.monotonic() - started:.0f}s")
    return metrics


def check(out_dir: Path, data: Path | None) -> int:
    """Retrains into a temp dir; its values on the committed parity rows, and the
    committed model's, must equal the committed values within train.py's tolerance."""
    committed = json.loads((out_dir / f"{NAME}.parity.json").read_text())
    rows = np.array(committed["rows"], dtype=np.float32)
    want = np.array(committed["probabilities"], dtype=np.float64)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="modelwatch-spend-check-") as tmp:
        build(Path(tmp), data)
        for label, path in [("committed", out_dir / f"{NAME}.onnx"),
                            ("retrained", Path(tmp) / f"{NAME}.onnx")]:
            diff = float(np.max(np.abs(predict(session(path), rows) - want)))
            ok = diff <= train.PARITY_TOLERANCE
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {NAME}.onnx ({label}): max |diff| = {diff:.3e} "
                  f"over {len(rows)} rows")
    print("check passed" if failures == 0 else f"check FAILED ({failures})")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="use this simulated CSV instead of running cargo")
    parser.add_argument("--out-dir", type=Path, default=train.REPO / "models" / "fixtures",
                        help="where to write the model, card and fixtures (default: models/fixtures/)")
    parser.add_argument("--check", action="store_true",
                        help="retrain in a temp dir and compare with the committed parity file")
    args = parser.parse_args()
    if args.check:
        return check(args.out_dir, args.data)
    build(args.out_dir, args.data)
    print(f"next: modelwatch reference --model {args.out_dir / (NAME + '.card.json')} "
          f"--holdout {args.out_dir / (NAME + '.holdout.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
