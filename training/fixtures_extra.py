"""Extra tree-ensemble fixtures for the runtime's parity tests.

The bundled model and the RF/MLP fixtures come from train.py. This script adds small
ensembles that exercise the corners of the ONNX-ML tree operators which those exports
do not reach: every node mode (BRANCH_LEQ, _LT, _GTE, _GT, _EQ, _NEQ), NaN inputs with
and without nodes_missing_value_tracks_true, base_values of length 2, binary models
whose weights all go to class 1, all-positive weights under LOGISTIC, SOFTMAX_ZERO on
four classes, TreeEnsembleRegressor with AVERAGE and PROBIT, a regressor followed by
Sigmoid and Mul nodes, and a real scikit-learn GradientBoostingRegressor export.

For each case it writes models/fixtures/<name>.onnx and <name>.parity.json, where the
expected probabilities are what onnxruntime computes. It also writes error_*.onnx: valid
graphs (onnxruntime runs them) that the runtime must refuse with a clear error.
Deterministic (fixed seeds).

    python training/fixtures_extra.py [--out models/fixtures]
"""

import argparse
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

N_FEATURES = 6
N_ROWS = 300
GRID = np.arange(-2.0, 2.01, 0.5, dtype=np.float32)
ALL_MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


def random_trees(rng, n_trees, depth, modes, leaf_weights):
    """Random full-ish trees as ONNX attribute lists.

    Thresholds come from GRID so that inputs on the grid hit equality tests. Within a
    tree the root is listed first and the other nodes in shuffled order; node ids are
    shuffled too, so nothing relies on ids following the layout. `leaf_weights(rng)`
    returns the (class_or_target_id, weight) pairs of one leaf.
    """
    attrs = {k: [] for k in ["treeids", "nodeids", "featureids", "values", "modes",
                             "truenodeids", "falsenodeids", "missing"]}
    weights = []  # (tree, node, id, weight)
    for t in range(n_trees):
        nodes = []  # (local index, feature, value, mode, true local, false local, missing)

        def build(level):
            me = len(nodes)
            nodes.append(None)
            if level == depth or (level > 1 and rng.random() < 0.2):
                nodes[me] = (me, 0, 0.0, "LEAF", 0, 0, 0)
                return me
            left = build(level + 1)
            right = build(level + 1)
            nodes[me] = (me, int(rng.integers(N_FEATURES)), float(rng.choice(GRID)),
                         str(rng.choice(modes)), left, right, int(rng.random() < 0.5))
            return me

        build(0)
        ids = rng.permutation(len(nodes))  # local index -> node id
        order = [0] + list(rng.permutation(np.arange(1, len(nodes))))
        for li in order:
            _, feat, val, mode, tl, fl, miss = nodes[li]
            attrs["treeids"].append(t)
            attrs["nodeids"].append(int(ids[li]))
            attrs["featureids"].append(feat)
            attrs["values"].append(val)
            attrs["modes"].append(mode)
            attrs["truenodeids"].append(int(ids[tl]) if mode != "LEAF" else 0)
            attrs["falsenodeids"].append(int(ids[fl]) if mode != "LEAF" else 0)
            attrs["missing"].append(miss if mode != "LEAF" else 0)
            if mode == "LEAF":
                for cid, w in leaf_weights(rng):
                    weights.append((t, int(ids[li]), cid, float(w)))
    order = rng.permutation(len(weights))  # weights listed out of order
    weights = [weights[i] for i in order]
    return attrs, weights


def ensemble_node(op, attrs, weights, outputs, **extra):
    prefix = "class" if op == "TreeEnsembleClassifier" else "target"
    kwargs = dict(
        nodes_treeids=attrs["treeids"], nodes_nodeids=attrs["nodeids"],
        nodes_featureids=attrs["featureids"], nodes_values=attrs["values"],
        nodes_modes=attrs["modes"], nodes_truenodeids=attrs["truenodeids"],
        nodes_falsenodeids=attrs["falsenodeids"],
        nodes_missing_value_tracks_true=attrs["missing"],
    )
    kwargs[f"{prefix}_treeids"] = [w[0] for w in weights]
    kwargs[f"{prefix}_nodeids"] = [w[1] for w in weights]
    kwargs[f"{prefix}_ids"] = [w[2] for w in weights]
    kwargs[f"{prefix}_weights"] = [w[3] for w in weights]
    kwargs.update(extra)
    return helper.make_node(op, ["features"], outputs, domain="ai.onnx.ml", name="ensemble", **kwargs)


def make_model(nodes, outputs, initializers=()):
    graph = helper.make_graph(
        nodes, "fixture",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, N_FEATURES])],
        outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def classifier(attrs, weights, n_classes, **extra):
    node = ensemble_node("TreeEnsembleClassifier", attrs, weights, ["label", "probabilities"],
                         classlabels_int64s=list(range(n_classes)), **extra)
    outs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_classes])]
    return make_model([node], outs)


def regressor(attrs, weights, output="variable", post=(), initializers=(), **extra):
    node = ensemble_node("TreeEnsembleRegressor", attrs, weights, ["variable"], n_targets=1, **extra)
    outs = [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 1])]
    return make_model([node, *post], outs, initializers)


def rows(rng):
    on_grid = rng.choice(GRID, size=(N_ROWS, N_FEATURES))
    off_grid = rng.normal(0, 1.2, size=(N_ROWS, N_FEATURES)).astype(np.float32)
    x = np.where(rng.random((N_ROWS, N_FEATURES)) < 0.5, on_grid, off_grid).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x


def cases(rng):
    signed = lambda r: [(0, r.normal(0, 0.5))]
    yield "extra_modes_binary", classifier(
        *random_trees(rng, 40, 4, ALL_MODES, lambda r: [(1, r.normal(0, 0.5))]), 2,
        base_values=[-1.25], post_transform="LOGISTIC"), {}
    yield "extra_xgb_style", classifier(
        *random_trees(rng, 40, 5, ["BRANCH_LT"], signed), 2,
        base_values=[0.3], post_transform="LOGISTIC"), {}
    yield "extra_base2", classifier(
        *random_trees(rng, 30, 4, ["BRANCH_LEQ", "BRANCH_GT"],
                      lambda r: [(int(c), r.normal(0, 0.4)) for c in
                                 [[0], [1], [0, 1]][r.integers(3)]]), 2,
        base_values=[-0.5, 0.25], post_transform="LOGISTIC"), {}
    yield "extra_positive_logistic", classifier(
        *random_trees(rng, 25, 3, ["BRANCH_LEQ"], lambda r: [(0, r.uniform(0, 0.04))]), 2,
        post_transform="LOGISTIC"), {}
    yield "extra_both_classes_none", classifier(
        *random_trees(rng, 25, 4, ["BRANCH_GTE", "BRANCH_LEQ"],
                      lambda r: [(0, p := r.uniform(0, 1) / 25), (1, 1 / 25 - p)]), 2), {}
    yield "extra_softmax_zero", classifier(
        *random_trees(rng, 30, 4, ALL_MODES,
                      lambda r: [(int(c), r.normal(0, 1)) for c in
                                 r.choice(4, size=r.integers(1, 4), replace=False)]), 4,
        base_values=[0.1, 0.0, -0.2, 0.3], post_transform="SOFTMAX_ZERO"), {"positive_class_index": 2}
    yield "extra_regressor_average_probit", regressor(
        *random_trees(rng, 30, 4, ["BRANCH_LT", "BRANCH_EQ"], lambda r: [(0, r.uniform(0.05, 0.45))]),
        aggregate_function="AVERAGE", base_values=[0.2], post_transform="PROBIT"), {}
    post = [helper.make_node("Sigmoid", ["variable"], ["squashed"]),
            helper.make_node("Mul", ["squashed", "half"], ["probabilities"])]
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    yield "extra_regressor_sigmoid_mul", regressor(
        *random_trees(rng, 30, 4, ALL_MODES, signed), output="probabilities", post=post,
        initializers=[half], base_values=[-0.1], post_transform="LOGISTIC"), {}


def sklearn_regressor(rng):
    from sklearn.ensemble import GradientBoostingRegressor
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    x = rng.normal(size=(2000, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(0, 0.1, 2000) > 0).astype(np.float64)
    model = GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0).fit(x, y)
    proto = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, N_FEATURES]))],
                            target_opset={"": 17, "ai.onnx.ml": 3})
    proto.graph.name = "sklearn_gbr"  # skl2onnx names the graph with a random id
    return proto


def write(out, name, model, x, meta):
    path = os.path.join(out, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    # One thread: onnxruntime then sums trees in order for every batch size. With more
    # threads it sums per-thread partial sums, and the f32 PROBIT formula (which cancels
    # near p = 0.5) turns that last-bit difference into ~1e-6.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    output = meta.get("output") or ("probabilities" if any(
        o.name == "probabilities" for o in sess.get_outputs()) else sess.get_outputs()[0].name)
    column = meta.get("positive_class_index", 1 if output == "probabilities" and
                      sess.get_outputs()[-1].shape[-1] != 1 else 0)
    result = sess.run([output], {"features": x})[0]
    p = result.reshape(len(x), -1)[:, column]
    fixture = {
        "model": f"{name}.onnx", "input_name": "features",
        "feature_names": [f"f{i}" for i in range(N_FEATURES)],
        "output": output, "positive_class_index": int(column),
        "rows": [[None if np.isnan(v) else float(v) for v in r] for r in x],
        "probabilities": [float(v) for v in p],
    }
    with open(os.path.join(out, f"{name}.parity.json"), "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: {len(x)} rows, p in [{p.min():.4f}, {p.max():.4f}]")


def error_cases(rng):
    """Graphs the runtime must refuse, naming the operator and node."""
    attrs, weights = random_trees(rng, 3, 2, ["BRANCH_LEQ"], lambda r: [(0, r.normal())])
    # Probabilities through ZipMap (a list of maps): export with zipmap disabled instead.
    trees = ensemble_node("TreeEnsembleClassifier", attrs, weights, ["label", "raw"],
                          classlabels_int64s=[0, 1], post_transform="LOGISTIC")
    zipmap = helper.make_node("ZipMap", ["raw"], ["probabilities"], domain="ai.onnx.ml",
                              name="zipmap", classlabels_int64s=[0, 1])
    outs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_value_info("probabilities", helper.make_sequence_type_proto(
                helper.make_map_type_proto(TensorProto.INT64,
                                           helper.make_tensor_type_proto(TensorProto.FLOAT, []))))]
    yield "error_zipmap", make_model([trees, zipmap], outs)
    # A Scaler in front of the trees.
    scaler = helper.make_node("Scaler", ["features"], ["scaled"], domain="ai.onnx.ml", name="scaler",
                              offset=[0.5] * N_FEATURES, scale=[2.0] * N_FEATURES)
    trees = ensemble_node("TreeEnsembleClassifier", attrs, weights, ["label", "probabilities"],
                          classlabels_int64s=[0, 1], post_transform="LOGISTIC")
    trees.input[0] = "scaled"
    outs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])]
    yield "error_scaler_trees", make_model([scaler, trees], outs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "models", "fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20261124)
    for name, model, meta in cases(rng):
        write(args.out, name, model, rows(rng), meta)
    write(args.out, "extra_sklearn_gbr", sklearn_regressor(rng), rows(rng), {})
    for name, model in error_cases(rng):
        with open(os.path.join(args.out, f"{name}.onnx"), "wb") as f:
            f.write(model.SerializeToString())
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        print(f"{name}: written (onnxruntime loads it; the runtime must refuse it)")


if __name__ == "__main__":
    main()
