#!/usr/bin/env python3
"""Train the bundled fraud model and the runtime's test fixtures, reproducibly.

    python3 training/train.py            # simulate, train, write models/
    python3 training/train.py --check    # retrain in a temp dir, compare with models/
    python3 training/train.py --data f.csv --out-dir /tmp/m   # from an existing CSV

Data comes from `modelwatch simulate` (run through cargo) with the seed and sizes of
CONFIG below. Every random choice is seeded and the math runs on one thread, so a
rerun on the same machine gives the same probabilities (see --check).
"""

from __future__ import annotations

import os

# One thread everywhere, before numpy loads: multi-threaded BLAS may sum in a
# different order from run to run, and the parity check compares to 1e-6.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import copy
import csv
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
import skl2onnx
from onnx import helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import precision_recall_curve, roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

REPO = Path(__file__).resolve().parent.parent
DAY = 86_400

# Everything that determines the outputs. Change a value here, rerun, commit models/.
CONFIG = {
    # The simulation (`modelwatch simulate` flags).
    "seed": 42,
    "customers": 5_000,
    "terminals": 10_000,
    "days": 120,
    "holdout_days": 14,
    # Rows of the first days see half-empty 30-day windows; serving never does.
    "burn_in_days": 30,
    # Pinned, not today's date, so that a rerun writes the same card.
    "training_date": "2026-05-02",
    "model_version": "1.0.0",
    "random_state": 7,
    "gradient_boosting": {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1},
    # Gradient boosting trains on every fraud and this share of the genuine rows, with
    # weight 1/share on the genuine ones: the same expected loss (so calibrated
    # probabilities) in a quarter of the time.
    "gradient_boosting_genuine_share": 0.25,
    "random_forest": {"n_estimators": 30, "max_depth": 8, "max_samples": 200_000},
    "mlp": {
        "hidden_layer_sizes": (32, 16),
        "max_iter": 25,
        "batch_size": 512,
        "learning_rate_init": 1e-3,
        "train_rows": 300_000,
    },
    # ONNX opsets: ai.onnx.ml 3 keeps trees as TreeEnsembleClassifier (version 5 would
    # allow the newer TreeEnsemble operator).
    "target_opset": {"": 17, "ai.onnx.ml": 3},
    "holdout_csv_rows": 20_000,
    "parity_sample_rows": 260,
}

FEATURES = [
    ("amount", "transaction"),
    ("hour", "transaction"),
    ("is_weekend", "transaction"),
    ("is_night", "transaction"),
    ("customer_nb_tx_1d", "customer"),
    ("customer_avg_amount_1d", "customer"),
    ("customer_nb_tx_7d", "customer"),
    ("customer_avg_amount_7d", "customer"),
    ("customer_nb_tx_30d", "customer"),
    ("customer_avg_amount_30d", "customer"),
    ("terminal_nb_tx_1d", "terminal"),
    ("terminal_risk_1d", "terminal"),
    ("terminal_nb_tx_7d", "terminal"),
    ("terminal_risk_7d", "terminal"),
    ("terminal_nb_tx_30d", "terminal"),
    ("terminal_risk_30d", "terminal"),
]
FEATURE_NAMES = [name for name, _ in FEATURES]
INPUT_NAME = "features"
PARITY_TOLERANCE = 1e-6


def log(msg: str) -> None:
    print(f"[train] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def simulate(out_csv: Path) -> None:
    """Runs `modelwatch simulate` through cargo with the configured seed and sizes."""
    cmd = [
        "cargo", "run", "--quiet", "--release", "-p", "modelwatch-cli", "--",
        "simulate",
        "--seed", str(CONFIG["seed"]),
        "--customers", str(CONFIG["customers"]),
        "--terminals", str(CONFIG["terminals"]),
        "--days", str(CONFIG["days"]),
        "--holdout-days", str(CONFIG["holdout_days"]),
        "--out", str(out_csv),
    ]
    log("running " + " ".join(cmd))
    started = time.monotonic()
    subprocess.run(cmd, cwd=REPO, check=True)
    log(f"simulate took {time.monotonic() - started:.1f}s (including any build)")


class Dataset:
    """The simulated CSV as arrays: features (float32), labels, timestamps, split."""

    def __init__(self, path: Path):
        with open(path, newline="") as f:
            header = next(csv.reader(f))
        missing = [c for c in ["timestamp", *FEATURE_NAMES, "is_fraud", "split"] if c not in header]
        if missing:
            raise SystemExit(f"{path}: missing columns {missing}")
        col = {name: i for i, name in enumerate(header)}
        numeric = [col["timestamp"], *(col[n] for n in FEATURE_NAMES), col["is_fraud"]]
        # Float64 first: timestamps need more than float32's 24 bits.
        data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=numeric, dtype=np.float64)
        split = np.loadtxt(path, delimiter=",", skiprows=1, usecols=[col["split"]], dtype=str)
        self.timestamp = data[:, 0].astype(np.int64)
        self.X = data[:, 1:-1].astype(np.float32)
        self.y = data[:, -1].astype(np.int64)
        self.holdout = split == "holdout"
        start = int(self.timestamp.min()) // DAY * DAY
        self.train = ~self.holdout & (self.timestamp >= start + CONFIG["burn_in_days"] * DAY)


# --------------------------------------------------------------------------- models


def train_models(ds: Dataset):
    rs = CONFIG["random_state"]
    X, y = ds.X[ds.train], ds.y[ds.train]
    log(f"training on {len(y)} rows ({y.mean():.4%} fraud)")

    started = time.monotonic()
    share = CONFIG["gradient_boosting_genuine_share"]
    keep = (y == 1) | (np.random.default_rng(rs).random(len(y)) < share)
    weight = np.where(y[keep] == 1, 1.0, 1.0 / share)
    gb = GradientBoostingClassifier(random_state=rs, **CONFIG["gradient_boosting"])
    gb.fit(X[keep], y[keep], sample_weight=weight)
    log(f"gradient boosting: {time.monotonic() - started:.1f}s")

    started = time.monotonic()
    rf = RandomForestClassifier(random_state=rs, n_jobs=1, **CONFIG["random_forest"])
    rf.fit(X, y)
    log(f"random forest: {time.monotonic() - started:.1f}s")

    started = time.monotonic()
    mlp_cfg = dict(CONFIG["mlp"])
    n = min(mlp_cfg.pop("train_rows"), len(y))
    pick = np.sort(np.random.default_rng(rs).choice(len(y), size=n, replace=False))
    mlp = Pipeline([
        ("scale", StandardScaler()),
        ("mlp", MLPClassifier(random_state=rs, **mlp_cfg)),
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X[pick], y[pick])
    log(f"mlp: {time.monotonic() - started:.1f}s")
    return gb, rf, fold_scaler(mlp)


def fold_scaler(pipeline: Pipeline) -> MLPClassifier:
    """Returns one MLPClassifier equal to StandardScaler + MLP.

    (x - mean) / scale @ W + b  ==  x @ (W / scale[:, None]) + (b - (mean / scale) @ W),
    so the exported graph has no Scaler operator (which tract cannot run), only
    MatMul, Add, Relu and Sigmoid.
    """
    scaler, mlp = pipeline.named_steps["scale"], pipeline.named_steps["mlp"]
    folded = copy.deepcopy(mlp)
    w, b = mlp.coefs_[0], mlp.intercepts_[0]
    folded.coefs_[0] = w / scaler.scale_[:, None]
    folded.intercepts_[0] = b - (scaler.mean_ / scaler.scale_) @ w
    return folded


def to_onnx(model, name: str) -> onnx.ModelProto:
    n = len(FEATURE_NAMES)
    proto = convert_sklearn(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n]))],
        options={id(model): {"zipmap": False}},
        target_opset=CONFIG["target_opset"],
    )
    if isinstance(model, MLPClassifier):
        proto = standard_label_output(proto)
    return reproducible(proto, name)


def reproducible(proto, name: str):
    """The exported graph made byte-for-byte reproducible, then checked."""
    # skl2onnx names the graph with a random UUID; a fixed name keeps the file
    # byte-for-byte reproducible.
    proto.graph.name = name
    # skl2onnx may list the default domain twice, and in any order: keep the first of
    # each domain, sorted by domain.
    seen, ops = set(), []
    for op in proto.opset_import:
        if op.domain not in seen:
            seen.add(op.domain)
            ops.append(op)
    ops.sort(key=lambda op: op.domain)
    del proto.opset_import[:]
    proto.opset_import.extend(ops)
    onnx.checker.check_model(proto)
    return proto


def standard_label_output(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Rebuilds the label output of an MLP graph with standard operators only.

    skl2onnx maps argmax to class labels with ai.onnx.ml ArrayFeatureExtractor. The
    classes are 0 and 1, so the label is the argmax itself: keep what `probabilities`
    needs, then `label = ArgMax(probabilities, axis=1, keepdims=0)` (int64).
    """
    graph = proto.graph
    needed, keep = {"probabilities"}, []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    keep.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0,
                                 name="label_argmax"))
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for node in keep for i in node.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    label = next(o for o in graph.output if o.name == "label")
    label.CopyFrom(helper.make_tensor_value_info("label", onnx.TensorProto.INT64, [None]))
    if not any(n.domain == "ai.onnx.ml" for n in graph.node):
        ops = [o for o in proto.opset_import if o.domain != "ai.onnx.ml"]
        del proto.opset_import[:]
        proto.opset_import.extend(ops)
    return proto


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def positive_probability(sess: ort.InferenceSession, X: np.ndarray) -> np.ndarray:
    out = sess.run(["probabilities"], {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})
    return out[0][:, 1].astype(np.float32)


# --------------------------------------------------------------------------- metrics


def evaluate(y: np.ndarray, p: np.ndarray) -> dict:
    """AUC, and precision/recall at the threshold that maximises F1 (decline if p >= t)."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))
    return {
        "auc": float(roc_auc_score(y, p)),
        "precision": float(precision[best]),
        "recall": float(recall[best]),
        "f1": float(f1[best]),
        "threshold": float(thresholds[best]),
    }


# --------------------------------------------------------------------------- fixtures


def f32(x) -> float:
    """A float32 value as the exact Python float, so that JSON carries it losslessly."""
    return float(np.float32(x))


def shortest(x) -> str:
    """The shortest decimal that reads back to the same float32."""
    return np.format_float_positional(np.float32(x), unique=True, trim="-")


def split_thresholds(proto: onnx.ModelProto, limit: int) -> list[tuple[int, float]]:
    """(feature, threshold) pairs of the first split nodes of a tree ensemble."""
    for node in proto.graph.node:
        if node.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor"):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            pairs = [
                (int(f), float(v))
                for f, v, mode in zip(attrs["nodes_featureids"], attrs["nodes_values"],
                                      attrs["nodes_modes"])
                if mode != b"LEAF"
            ]
            return pairs[:limit]
    return []


def parity_rows(ds: Dataset, proto: onnx.ModelProto | None) -> np.ndarray:
    """A few hundred holdout rows (frauds over-represented) plus edge cases."""
    rng = np.random.default_rng(CONFIG["random_state"] + 1)
    hold = np.flatnonzero(ds.holdout)
    frauds = hold[ds.y[hold] == 1]
    n = CONFIG["parity_sample_rows"]
    pick = np.concatenate([
        rng.choice(hold, size=min(n - 60, len(hold)), replace=False),
        rng.choice(frauds, size=min(60, len(frauds)), replace=False),
    ])
    rows = [ds.X[i] for i in np.sort(np.unique(pick))]

    idx = {name: i for i, name in enumerate(FEATURE_NAMES)}
    base = ds.X[hold[0]].copy()

    def edge(**values):
        row = base.copy()
        for k, v in values.items():
            row[idx[k]] = v
        rows.append(row)

    rows.append(np.zeros(len(FEATURE_NAMES), dtype=np.float32))
    edge(amount=0.0)
    edge(amount=0.01)
    edge(amount=220.0)
    edge(amount=220.01)
    edge(amount=1e4)
    edge(amount=1e6)
    edge(amount=-5.0)
    edge(hour=0.0, is_night=1.0)
    edge(hour=23.0, is_night=0.0)
    edge(is_weekend=1.0)
    edge(terminal_risk_1d=1.0, terminal_risk_7d=1.0, terminal_risk_30d=1.0,
         terminal_nb_tx_1d=3.0, terminal_nb_tx_7d=20.0, terminal_nb_tx_30d=80.0)
    edge(customer_nb_tx_1d=0.0, customer_avg_amount_1d=0.0, customer_nb_tx_7d=0.0,
         customer_avg_amount_7d=0.0, customer_nb_tx_30d=0.0, customer_avg_amount_30d=0.0)
    edge(customer_nb_tx_1d=500.0, customer_nb_tx_7d=5000.0, customer_nb_tx_30d=20000.0)
    edge(amount=5000.0, customer_avg_amount_30d=10.0, customer_avg_amount_7d=10.0)
    rows.append(np.full(len(FEATURE_NAMES), 1e6, dtype=np.float32))
    # Missing values (NaN, written as null): a tree sends them down the false branch.
    # Only for trees; an MLP would answer NaN.
    if proto is not None:
        customer = [i for i, (_, g) in enumerate(FEATURES) if g == "customer"]
        terminal = [i for i, (_, g) in enumerate(FEATURES) if g == "terminal"]
        for cols in (customer, terminal, customer + terminal):
            row = base.copy()
            row[cols] = np.nan
            rows.append(row)
    # Values exactly on split thresholds, and one float32 step either side: a tree
    # evaluator must send `x <= threshold` left like ONNX Runtime does.
    if proto is not None:
        for feature, threshold in split_thresholds(proto, 12):
            t = np.float32(threshold)
            for v in (np.nextafter(t, np.float32(-np.inf)), t, np.nextafter(t, np.float32(np.inf))):
                row = base.copy()
                row[feature] = v
                rows.append(row)
    return np.vstack(rows).astype(np.float32)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def write_parity(path: Path, onnx_file: str, rows: np.ndarray, probs: np.ndarray) -> None:
    """The parity fixture, one row per line. Values are float32 written exactly."""
    def row_json(row):
        return "[" + ", ".join("null" if np.isnan(v) else repr(f32(v)) for v in row) + "]"
    text = "\n".join([
        "{",
        f'  "model": {json.dumps(onnx_file)},',
        f'  "input_name": {json.dumps(INPUT_NAME)},',
        f'  "feature_names": {json.dumps(FEATURE_NAMES)},',
        '  "rows": [',
        ",\n".join("    " + row_json(row) for row in rows),
        "  ],",
        '  "probabilities": [',
        ",\n".join("    " + repr(f32(p)) for p in probs),
        "  ]",
        "}",
    ])
    json.loads(text)  # well-formed
    path.write_text(text + "\n")


def write_holdout_csv(path: Path, ds: Dataset, scores: np.ndarray) -> int:
    """A random sample of holdout rows (in time order) with label and model score."""
    hold = np.flatnonzero(ds.holdout)
    rng = np.random.default_rng(CONFIG["random_state"] + 2)
    n = min(CONFIG["holdout_csv_rows"], len(hold))
    pick = np.sort(rng.choice(len(hold), size=n, replace=False))
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*FEATURE_NAMES, "is_fraud", "score"])
        for i in pick:
            row = ds.X[hold[i]]
            w.writerow([*(shortest(v) for v in row), int(ds.y[hold[i]]), shortest(scores[i])])
    return n


# --------------------------------------------------------------------------- main


def build(out_dir: Path, data: Path | None) -> dict:
    """Simulates (unless given data), trains, and writes every artefact to out_dir."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelwatch-train-") as tmp:
        if data is None:
            data = Path(tmp) / "simulated.csv"
            simulate(data)
        ds = Dataset(data)
    log(f"{len(ds.y)} rows, {int(ds.holdout.sum())} holdout, fraud rate {ds.y.mean():.4%}")

    gb, rf, mlp = train_models(ds)
    fixtures = out_dir / "fixtures"
    fixtures.mkdir(parents=True, exist_ok=True)
    X_hold, y_hold = ds.X[ds.holdout], ds.y[ds.holdout]
    summary = {}
    for name, model, path in [
        ("fraud", gb, out_dir / "fraud.onnx"),
        ("rf", rf, fixtures / "rf.onnx"),
        ("mlp", mlp, fixtures / "mlp.onnx"),
    ]:
        proto = to_onnx(model, name)
        onnx.save(proto, str(path))
        sess = session(path)
        scores = positive_probability(sess, X_hold)
        sk = model.predict_proba(X_hold)[:, 1]
        metrics = evaluate(y_hold, scores)
        metrics["max_abs_diff_sklearn_vs_onnx"] = float(np.max(np.abs(sk - scores)))
        rows = parity_rows(ds, proto if name != "mlp" else None)
        write_parity(path.with_suffix(".parity.json"), path.name, rows,
                     positive_probability(sess, rows))
        summary[name] = metrics
        log(f"{name}: AUC {metrics['auc']:.4f}, precision {metrics['precision']:.4f}, "
            f"recall {metrics['recall']:.4f} at threshold {metrics['threshold']:.4f}; "
            f"max |sklearn - onnxruntime| = {metrics['max_abs_diff_sklearn_vs_onnx']:.2e}; "
            f"{path.stat().st_size / 1024:.0f} KiB")
        if name == "fraud":
            fraud_scores = scores

    m = summary["fraud"]
    holdout_rows = write_holdout_csv(out_dir / "fraud.holdout.csv", ds, fraud_scores)
    gbc = CONFIG["gradient_boosting"]
    # Card format 2 (docs/design/card-format-2.md): the hour, weekend and night flags
    # are transforms of the request's timestamp; the customer and terminal groups are
    # read from the feature store, keyed by the request's ids.
    transforms = {"hour": "hour_of_day", "is_weekend": "is_weekend", "is_night": "is_night"}

    def feature(name, group):
        spec = {"name": name, "group": group}
        if name in transforms:
            spec["transform"] = {"fn": transforms[name], "field": "timestamp"}
        return spec

    card = {
        "format_version": 2,
        "name": "fraud",
        "version": CONFIG["model_version"],
        "framework": f"sklearn-{sklearn.__version__}/skl2onnx-{skl2onnx.__version__}",
        "training_date": CONFIG["training_date"],
        "architecture": (f"gradient_boosted_trees(n_estimators={gbc['n_estimators']},"
                         f"max_depth={gbc['max_depth']})"),
        "onnx": {"file": "fraud.onnx", "input": INPUT_NAME, "output": "probabilities",
                 "column": 1},
        "task": {"type": "binary_classification", "threshold": f32(m["threshold"]),
                 "decisions": {"below": "approved", "at_or_above": "declined"}},
        "threshold_rule": "max_f1_on_holdout: decline when score >= threshold",
        "groups": {
            "transaction": {"source": "request"},
            "customer": {"source": "store", "entity_key": "customer_id"},
            "terminal": {"source": "store", "entity_key": "terminal_id"},
        },
        "features": [feature(n, g) for n, g in FEATURES],
        "metrics": {
            "auc": round(m["auc"], 6),
            "precision": round(m["precision"], 6),
            "recall": round(m["recall"], 6),
            "holdout_rows": int(len(y_hold)),
            "positive_rate": round(float(y_hold.mean()), 6),
        },
        "training": {
            "seed": CONFIG["seed"],
            "data_rows": int(ds.train.sum()),
            "random_state": CONFIG["random_state"],
            "simulation": {k: CONFIG[k] for k in
                           ("customers", "terminals", "days", "holdout_days", "burn_in_days")},
            "holdout_csv_rows": holdout_rows,
        },
    }
    write_json(out_dir / "fraud.card.json", card)
    log(f"wrote {out_dir} in {time.monotonic() - started:.0f}s")
    return summary


def check(models_dir: Path, data: Path | None) -> int:
    """Retrains into a temp dir; new probabilities on the committed parity rows must
    equal the committed ones within PARITY_TOLERANCE."""
    with tempfile.TemporaryDirectory(prefix="modelwatch-check-") as tmp:
        build(Path(tmp), data)
        failures = 0
        for rel in ["fraud.onnx", "fixtures/rf.onnx", "fixtures/mlp.onnx"]:
            committed = json.loads((models_dir / rel).with_suffix(".parity.json").read_text())
            rows = np.array([[np.nan if v is None else v for v in row]
                             for row in committed["rows"]], dtype=np.float32)
            want = np.array(committed["probabilities"], dtype=np.float64)
            for label, path in [("committed", models_dir / rel), ("retrained", Path(tmp) / rel)]:
                got = positive_probability(session(path), rows).astype(np.float64)
                diff = float(np.max(np.abs(got - want)))
                ok = diff <= PARITY_TOLERANCE
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {rel} ({label}): max |diff| = {diff:.3e} "
                      f"over {len(rows)} rows")
    print("check passed" if failures == 0 else f"check FAILED ({failures})")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="use this simulated CSV instead of running cargo")
    parser.add_argument("--out-dir", type=Path, default=REPO / "models",
                        help="where to write the model, card and fixtures (default: models/)")
    parser.add_argument("--check", action="store_true",
                        help="retrain in a temp dir and compare with the committed parity files")
    args = parser.parse_args()
    if args.check:
        return check(args.out_dir, args.data)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    build(args.out_dir, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
