//! The [`Model`] trait and the loaders that pick an implementation from the ONNX graph.
//!
//! Loading follows the requested output (the card's `positive_class_output`) back
//! through the graph:
//! - if it reaches a `TreeEnsembleClassifier` (its probabilities) or a
//!   `TreeEnsembleRegressor` through nothing but `Identity`, `Cast` to float, `Sigmoid`
//!   and multiplication or division by a scalar constant, the ensemble is compiled for
//!   our own evaluator ([`Backend::TreeEnsemble`]);
//! - if the graph holds no tree ensemble, it runs in tract ([`Backend::Tract`]), pruned
//!   to that output, with any `Scaler` rewritten to `Sub` and `Mul`;
//! - anything else (a `ZipMap`, a tree ensemble behind a preprocessing operator) fails
//!   with [`RuntimeError::UnsupportedOp`] naming the operator and node.

use crate::card::ModelCard;
use crate::error::RuntimeError;
use crate::onnx::{self, ML_DOMAIN, is_op, node_label};
use crate::tract_backend::TractModel;
use crate::tree::{EnsembleOp, EnsembleStats, TreeEnsemble, logistic};
use std::fmt;
use std::path::Path;
use tract_onnx::pb::{GraphProto, ModelProto};

/// A loaded model: rows of features in, positive-class probabilities out.
///
/// Implementations are immutable after loading and can be shared between threads.
pub trait Model: Send + Sync + fmt::Debug {
    /// Features per row.
    fn n_features(&self) -> usize;

    /// Scores `out.len()` rows. `input` is row-major, `out.len() * n_features()` values;
    /// `out[i]` receives row `i`'s positive-class probability (for a regressor, its
    /// value). The tree-ensemble path allocates nothing.
    ///
    /// # Errors
    /// [`RuntimeError::InputWidth`] when the rows are not `n_features()` wide,
    /// [`RuntimeError::BatchShape`] when `input` cannot be cut into `out.len()` rows,
    /// [`RuntimeError::Tract`] when tract fails at run time.
    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), RuntimeError>;

    /// Scores one row.
    ///
    /// # Errors
    /// As [`Model::predict`].
    fn predict_one(&self, row: &[f32]) -> Result<f32, RuntimeError> {
        let mut out = [0f32];
        self.predict(row, &mut out)?;
        Ok(out[0])
    }

    /// Which evaluator runs this model.
    fn backend(&self) -> Backend;
}

/// The evaluator behind a [`Model`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Our own tree-ensemble evaluator.
    TreeEnsemble(EnsembleStats),
    /// tract, for every other graph.
    Tract,
}

/// What to read from a graph. `None` fields are chosen from the graph (see each field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Feature input; by default the graph's only runtime input.
    pub input_name: Option<String>,
    /// Probability output; by default `probabilities` when the graph has it, else the
    /// graph's only output.
    pub output: Option<String>,
    /// Column of that output; by default 1 for a classifier (the positive class of a
    /// binary model) and 0 for a one-column output.
    pub class_index: Option<usize>,
    /// Features per row; needed only when the graph does not declare its input width.
    /// When both are known they must agree.
    pub n_features: Option<usize>,
}

/// Loads an ONNX model with default [`LoadOptions`].
///
/// # Errors
/// See [`load_model_with`].
pub fn load_model(path: &Path) -> Result<Box<dyn Model>, RuntimeError> {
    load_model_with(path, &LoadOptions::default())
}

/// Loads the model a card describes; `card_dir` is the directory holding the card (its
/// `onnx.file` is relative to it). The card's input, output, class index and feature
/// count are all checked against the graph.
///
/// # Errors
/// See [`load_model_with`]; also [`RuntimeError::FeatureCount`] when the model's input
/// width is not the card's number of features.
pub fn load_model_for_card(
    card: &ModelCard,
    card_dir: &Path,
) -> Result<Box<dyn Model>, RuntimeError> {
    let onnx = card.onnx.as_ref().ok_or_else(|| {
        RuntimeError::card("onnx", "this monitor-only card names no ONNX model to load")
    })?;
    let options = LoadOptions {
        input_name: onnx.input.clone(),
        output: onnx.output.clone(),
        class_index: onnx.column,
        n_features: Some(card.features.len()),
    };
    let model = load_model_with(&card_dir.join(&onnx.file), &options)?;
    if model.n_features() != card.features.len() {
        return Err(RuntimeError::FeatureCount {
            card: card.features.len(),
            model: model.n_features(),
        });
    }
    Ok(model)
}

/// Reads a card file and loads its model.
///
/// # Errors
/// See [`ModelCard::load`] and [`load_model_for_card`].
pub fn load_card_and_model(card_path: &Path) -> Result<(ModelCard, Box<dyn Model>), RuntimeError> {
    let card = ModelCard::load(card_path)?;
    let dir = card_path.parent().unwrap_or_else(|| Path::new("."));
    let model = load_model_for_card(&card, dir)?;
    Ok((card, model))
}

/// Loads an ONNX model, choosing the evaluator from the graph (see the module docs).
///
/// # Errors
/// [`RuntimeError::FileNotFound`] / [`RuntimeError::Io`] / [`RuntimeError::OnnxDecode`]
/// for the file; [`RuntimeError::MissingTensor`] for an input or output the graph does
/// not have; [`RuntimeError::UnsupportedOp`], [`RuntimeError::UnsupportedTreeEnsemble`],
/// [`RuntimeError::InvalidTreeEnsemble`] and [`RuntimeError::UnsupportedGraph`] for
/// graphs outside what the runtime evaluates; [`RuntimeError::ClassIndex`] for a column
/// the output does not have; [`RuntimeError::FeatureCount`] when `n_features` disagrees
/// with the graph; [`RuntimeError::Tract`] when tract cannot prepare the graph.
pub fn load_model_with(path: &Path, options: &LoadOptions) -> Result<Box<dyn Model>, RuntimeError> {
    let proto = onnx::read_model(path)?;
    load_from_proto(proto, options)
}

fn load_from_proto(
    mut proto: ModelProto,
    options: &LoadOptions,
) -> Result<Box<dyn Model>, RuntimeError> {
    let graph = onnx::graph(&proto)?;
    let input = onnx::feature_input(graph, options.input_name.as_deref())?;
    let input_name = input.name.clone();
    let declared_width = onnx::input_width(input)?;
    let n_features = match (declared_width, options.n_features) {
        (Some(g), Some(c)) if g != c => {
            return Err(RuntimeError::FeatureCount { card: c, model: g });
        }
        (g, c) => g.or(c),
    };
    let output = match &options.output {
        Some(o) => o.clone(),
        None => default_output(graph)?,
    };
    onnx::check_output(graph, &output)?;

    match trace_output(graph, &output, &input_name) {
        Trace::Tree { node, op, post } => {
            check_tree_input(graph, node, &input_name)?;
            let column = options.class_index.unwrap_or(match op {
                EnsembleOp::Classifier => 1,
                EnsembleOp::Regressor => 0,
            });
            let ensemble = TreeEnsemble::compile(&graph.node[node], op, n_features, column)?;
            Ok(Box::new(TreeModel { ensemble, post }))
        }
        Trace::Stopped { node, reason } => {
            if let Some(tree) = graph.node.iter().find(|n| tree_op(n).is_some()) {
                let (op, domain, label) = match node {
                    Some(ni) => {
                        let n = &graph.node[ni];
                        (n.op_type.clone(), n.domain.clone(), node_label(n))
                    }
                    None => (tree.op_type.clone(), tree.domain.clone(), node_label(tree)),
                };
                return Err(RuntimeError::UnsupportedOp {
                    op,
                    domain,
                    node: label,
                    reason: format!(
                        "{reason}; in a tree-ensemble graph only Identity, Cast to float, Sigmoid and scalar Mul/Div may follow the ensemble"
                    ),
                });
            }
            let n_features = n_features.ok_or_else(|| RuntimeError::UnsupportedGraph {
                reason: format!(
                    "input `{input_name}` does not declare its width; pass the number of features"
                ),
            })?;
            let graph = proto
                .graph
                .as_mut()
                .ok_or_else(|| RuntimeError::UnsupportedGraph {
                    reason: "the model has no graph".into(),
                })?;
            onnx::prune_to_output(graph, &output);
            onnx::lower_scalers(graph)?;
            let input_index = onnx::runtime_inputs(graph)
                .iter()
                .position(|i| i.name == input_name)
                .unwrap_or(0);
            let column = options.class_index.unwrap_or(1);
            let model = match TractModel::new(&proto, input_index, n_features, &output, column) {
                Err(RuntimeError::ClassIndex { columns: 1, .. })
                    if options.class_index.is_none() =>
                {
                    TractModel::new(&proto, input_index, n_features, &output, 0)?
                }
                other => other?,
            };
            Ok(Box::new(model))
        }
    }
}

fn default_output(graph: &GraphProto) -> Result<String, RuntimeError> {
    if graph.output.iter().any(|o| o.name == "probabilities") {
        return Ok("probabilities".into());
    }
    match graph.output.as_slice() {
        [one] => Ok(one.name.clone()),
        outputs => Err(RuntimeError::MissingTensor {
            kind: "output",
            name: "probabilities".into(),
            available: outputs
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn tree_op(node: &tract_onnx::pb::NodeProto) -> Option<EnsembleOp> {
    if is_op(node, ML_DOMAIN, "TreeEnsembleClassifier") {
        Some(EnsembleOp::Classifier)
    } else if is_op(node, ML_DOMAIN, "TreeEnsembleRegressor") {
        Some(EnsembleOp::Regressor)
    } else {
        None
    }
}

/// An elementwise step between the ensemble and the requested output.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PostOp {
    Sigmoid,
    Mul(f32),
    Div(f32),
}

enum Trace {
    /// The output is the ensemble's probabilities (or value), then `post` in order.
    Tree {
        node: usize,
        op: EnsembleOp,
        post: Vec<PostOp>,
    },
    /// Tracing stopped at `node` (or at the graph input when `None`).
    Stopped { node: Option<usize>, reason: String },
}

fn trace_output(graph: &GraphProto, output: &str, input: &str) -> Trace {
    let producers = onnx::producers(graph);
    let mut post = Vec::new();
    let mut value = output.to_string();
    loop {
        if value == input {
            return Trace::Stopped {
                node: None,
                reason: "the output is reached from the input without a tree ensemble".into(),
            };
        }
        let Some(&(ni, slot)) = producers.get(value.as_str()) else {
            return Trace::Stopped {
                node: None,
                reason: format!("value `{value}` is not produced by any node"),
            };
        };
        let node = &graph.node[ni];
        let first = node.input.first().cloned().unwrap_or_default();
        let stop = |reason: String| Trace::Stopped {
            node: Some(ni),
            reason,
        };
        if let Some(op) = tree_op(node) {
            if op == EnsembleOp::Classifier && slot != 1 {
                return stop(
                    "the requested output is the classifier's label, not its probabilities".into(),
                );
            }
            post.reverse();
            return Trace::Tree { node: ni, op, post };
        }
        if is_op(node, "", "Identity")
            || (is_op(node, "", "Cast") && onnx::attr_int(node, "to") == Some(1))
        {
            value = first;
        } else if is_op(node, "", "Sigmoid") {
            post.push(PostOp::Sigmoid);
            value = first;
        } else if is_op(node, "", "Mul") || is_op(node, "", "Div") {
            let (a, b) = match node.input.as_slice() {
                [a, b] => (a, b),
                _ => return stop("expected two inputs".into()),
            };
            let is_mul = node.op_type == "Mul";
            if let Some(c) = onnx::scalar_constant(graph, b) {
                post.push(if is_mul {
                    PostOp::Mul(c)
                } else {
                    PostOp::Div(c)
                });
                value = a.clone();
            } else if let (true, Some(c)) = (is_mul, onnx::scalar_constant(graph, a)) {
                post.push(PostOp::Mul(c));
                value = b.clone();
            } else {
                return stop(
                    "only multiplication or division by a scalar constant is supported".into(),
                );
            }
        } else if is_op(node, ML_DOMAIN, "ZipMap") {
            return stop("ZipMap outputs maps; export the model with zipmap disabled".into());
        } else {
            return stop("not an operator the tree path evaluates".into());
        }
    }
}

/// The ensemble must read the feature input directly (or through Identity/Cast).
fn check_tree_input(graph: &GraphProto, tree: usize, input: &str) -> Result<(), RuntimeError> {
    let producers = onnx::producers(graph);
    let mut value = graph.node[tree].input.first().cloned().unwrap_or_default();
    loop {
        if value == input {
            return Ok(());
        }
        let Some(&(ni, _)) = producers.get(value.as_str()) else {
            return Err(RuntimeError::UnsupportedGraph {
                reason: format!(
                    "the tree ensemble reads `{value}`, which is not the feature input `{input}`"
                ),
            });
        };
        let node = &graph.node[ni];
        let pass = is_op(node, "", "Identity")
            || (is_op(node, "", "Cast") && onnx::attr_int(node, "to") == Some(1));
        if !pass {
            return Err(RuntimeError::UnsupportedOp {
                op: node.op_type.clone(),
                domain: node.domain.clone(),
                node: node_label(node),
                reason:
                    "only Identity or Cast to float may sit between the input and a tree ensemble"
                        .into(),
            });
        }
        value = node.input.first().cloned().unwrap_or_default();
    }
}

/// A tree ensemble plus the elementwise steps the graph applies after it.
#[derive(Debug)]
struct TreeModel {
    ensemble: TreeEnsemble,
    post: Vec<PostOp>,
}

impl Model for TreeModel {
    fn n_features(&self) -> usize {
        self.ensemble.n_features()
    }

    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), RuntimeError> {
        check_shape(self.n_features(), input, out.len())?;
        self.ensemble.predict(input, out);
        for op in &self.post {
            for v in out.iter_mut() {
                *v = match *op {
                    PostOp::Sigmoid => logistic(*v),
                    PostOp::Mul(c) => *v * c,
                    PostOp::Div(c) => *v / c,
                };
            }
        }
        Ok(())
    }

    fn backend(&self) -> Backend {
        Backend::TreeEnsemble(self.ensemble.stats())
    }
}

impl Model for TractModel {
    fn n_features(&self) -> usize {
        TractModel::n_features(self)
    }

    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), RuntimeError> {
        check_shape(self.n_features(), input, out.len())?;
        TractModel::predict(self, input, out)
    }

    fn backend(&self) -> Backend {
        Backend::Tract
    }
}

/// Checks that `input` holds `rows` rows of `n_features` values.
///
/// # Errors
/// [`RuntimeError::InputWidth`] when `input` divides into `rows` rows of another width,
/// [`RuntimeError::BatchShape`] otherwise.
pub fn check_shape(n_features: usize, input: &[f32], rows: usize) -> Result<(), RuntimeError> {
    if rows.checked_mul(n_features) == Some(input.len()) {
        return Ok(());
    }
    if rows > 0 && input.len() % rows == 0 {
        return Err(RuntimeError::InputWidth {
            expected: n_features,
            given: input.len() / rows,
        });
    }
    Err(RuntimeError::BatchShape {
        len: input.len(),
        rows,
        n_features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::{self, AttributeProto, NodeProto, ValueInfoProto};

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            ints: v.to_vec(),
            ..AttributeProto::default()
        }
    }
    fn floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            floats: v.to_vec(),
            ..AttributeProto::default()
        }
    }
    fn strings(name: &str, v: &[&str]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..AttributeProto::default()
        }
    }
    fn string(name: &str, v: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            s: v.as_bytes().to_vec(),
            ..AttributeProto::default()
        }
    }
    fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
        use pb::tensor_shape_proto::{Dimension, dimension::Value as Dim};
        ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: 1,
                    shape: Some(pb::TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|d| Dimension {
                                value: d.map(Dim::DimValue),
                                ..Dimension::default()
                            })
                            .collect(),
                    }),
                })),
                ..pb::TypeProto::default()
            }),
            ..ValueInfoProto::default()
        }
    }

    /// One stump per tree on feature `tree % 2`: `x <= 0.5` gives `left`, else `right`.
    fn stumps(op: &str, leaves: &[(f32, f32)], extra: Vec<AttributeProto>) -> NodeProto {
        let (mut t, mut n, mut f, mut v, mut m, mut tt, mut ff) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut wt, mut wn, mut wi, mut ww) = (vec![], vec![], vec![], vec![]);
        for (k, (left, right)) in leaves.iter().enumerate() {
            let k = k as i64;
            t.extend([k, k, k]);
            n.extend([0, 1, 2]);
            f.extend([k % 2, 0, 0]);
            v.extend([0.5, 0.0, 0.0]);
            m.extend(["BRANCH_LEQ", "LEAF", "LEAF"]);
            tt.extend([1, 0, 0]);
            ff.extend([2, 0, 0]);
            wt.extend([k, k]);
            wn.extend([1, 2]);
            wi.extend([0, 0]);
            ww.extend([*left, *right]);
        }
        let prefix = if op == "TreeEnsembleClassifier" {
            "class"
        } else {
            "target"
        };
        let mut attribute = vec![
            ints("nodes_treeids", &t),
            ints("nodes_nodeids", &n),
            ints("nodes_featureids", &f),
            floats("nodes_values", &v),
            strings("nodes_modes", &m),
            ints("nodes_truenodeids", &tt),
            ints("nodes_falsenodeids", &ff),
            ints(&format!("{prefix}_treeids"), &wt),
            ints(&format!("{prefix}_nodeids"), &wn),
            ints(&format!("{prefix}_ids"), &wi),
            floats(&format!("{prefix}_weights"), &ww),
        ];
        if op == "TreeEnsembleClassifier" {
            attribute.push(ints("classlabels_int64s", &[0, 1]));
        }
        attribute.extend(extra);
        let output = if op == "TreeEnsembleClassifier" {
            vec!["label".into(), "probabilities".into()]
        } else {
            vec!["probabilities".into()]
        };
        NodeProto {
            input: vec!["features".into()],
            output,
            name: "trees".into(),
            op_type: op.into(),
            domain: ML_DOMAIN.into(),
            attribute,
            ..NodeProto::default()
        }
    }

    fn model(nodes: Vec<NodeProto>, outputs: &[&str]) -> ModelProto {
        ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                node: nodes,
                input: vec![value("features", &[None, Some(2)])],
                output: outputs.iter().map(|o| value(o, &[None, Some(2)])).collect(),
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        }
    }

    fn load(proto: ModelProto) -> Result<Box<dyn Model>, RuntimeError> {
        load_from_proto(proto, &LoadOptions::default())
    }

    #[test]
    fn binary_gbdt_is_logistic_of_sum_plus_base() {
        let node = stumps(
            "TreeEnsembleClassifier",
            &[(-1.0, 2.0), (0.5, -0.25)],
            vec![
                floats("base_values", &[-0.5]),
                string("post_transform", "LOGISTIC"),
            ],
        );
        let m = load(model(vec![node], &["label", "probabilities"])).expect("loads");
        assert!(matches!(m.backend(), Backend::TreeEnsemble(s) if s.trees == 2 && s.branches == 2));
        let mut out = [0f32; 3];
        m.predict(&[0.0, 0.0, 1.0, 0.0, 1.0, 1.0], &mut out)
            .expect("predicts");
        let expect = |s: f32| 1.0 / (1.0 + (-s).exp());
        for (o, s) in out
            .iter()
            .zip([-1.0 + 0.5 - 0.5, 2.0 + 0.5 - 0.5, 2.0 - 0.25 - 0.5])
        {
            assert!((o - expect(s)).abs() < 1e-6, "{o} vs {}", expect(s));
        }
    }

    #[test]
    fn nan_follows_missing_value_tracks() {
        let mut node = stumps("TreeEnsembleClassifier", &[(0.25, 0.75)], vec![]);
        let m = load(model(vec![node.clone()], &["label", "probabilities"])).expect("loads");
        assert_eq!(m.predict_one(&[f32::NAN, 0.0]).expect("predicts"), 0.75);
        node.attribute
            .push(ints("nodes_missing_value_tracks_true", &[1, 0, 0]));
        let m = load(model(vec![node], &["label", "probabilities"])).expect("loads");
        assert_eq!(m.predict_one(&[f32::NAN, 0.0]).expect("predicts"), 0.25);
        assert_eq!(
            m.predict_one(&[0.5, 0.0]).expect("predicts"),
            0.25,
            "x == threshold goes left"
        );
    }

    #[test]
    fn the_label_output_is_refused() {
        let node = stumps("TreeEnsembleClassifier", &[(0.1, 0.9)], vec![]);
        let err = load_from_proto(
            model(vec![node], &["label", "probabilities"]),
            &LoadOptions {
                output: Some("label".into()),
                ..LoadOptions::default()
            },
        )
        .expect_err("label is not a probability");
        assert!(err.to_string().contains("classifier's label"), "{err}");
    }

    #[test]
    fn an_unknown_operator_after_trees_is_named() {
        let mut node = stumps("TreeEnsembleClassifier", &[(0.1, 0.9)], vec![]);
        node.output[1] = "raw".into();
        let clip = NodeProto {
            input: vec!["raw".into()],
            output: vec!["probabilities".into()],
            name: "clip_it".into(),
            op_type: "Clip".into(),
            ..NodeProto::default()
        };
        let err =
            load(model(vec![node, clip], &["probabilities"])).expect_err("Clip is not supported");
        assert!(
            err.to_string()
                .starts_with("unsupported operator `Clip` (domain ``) in node `clip_it`"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_ensemble_attributes_are_named() {
        let node = stumps(
            "TreeEnsembleRegressor",
            &[(0.1, 0.9)],
            vec![string("aggregate_function", "MIN")],
        );
        let err = load(model(vec![node], &["probabilities"])).expect_err("MIN");
        assert_eq!(
            err.to_string(),
            "unsupported tree ensemble in node `trees`: attribute `aggregate_function`: `MIN` is not supported (SUM and AVERAGE are)"
        );
        let node = stumps(
            "TreeEnsembleClassifier",
            &[(0.1, 0.9)],
            vec![string("post_transform", "PROBIT")],
        );
        let err = load(model(vec![node], &["label", "probabilities"])).expect_err("PROBIT");
        assert!(
            err.to_string().contains("attribute `post_transform`"),
            "{err}"
        );
    }

    #[test]
    fn broken_trees_are_invalid() {
        let mut node = stumps("TreeEnsembleClassifier", &[(0.1, 0.9)], vec![]);
        for a in &mut node.attribute {
            if a.name == "nodes_falsenodeids" {
                a.ints[0] = 7;
            }
        }
        let err =
            load(model(vec![node.clone()], &["label", "probabilities"])).expect_err("dangling");
        assert_eq!(
            err.to_string(),
            "invalid tree ensemble in node `trees`: node 0 of tree 0 has false child 7, which does not exist"
        );
        for a in &mut node.attribute {
            if a.name == "nodes_falsenodeids" {
                a.ints[0] = 0;
            }
        }
        let err = load(model(vec![node], &["label", "probabilities"])).expect_err("cycle");
        assert!(err.to_string().contains("reached twice"), "{err}");
    }

    #[test]
    fn class_index_out_of_range() {
        let node = stumps("TreeEnsembleClassifier", &[(0.1, 0.9)], vec![]);
        let err = load_from_proto(
            model(vec![node], &["label", "probabilities"]),
            &LoadOptions {
                class_index: Some(2),
                ..LoadOptions::default()
            },
        )
        .expect_err("no column 2");
        assert_eq!(
            err.to_string(),
            "positive class index 2 is out of range: output `probabilities` has 2 column(s)"
        );
    }

    #[test]
    fn card_width_must_match_the_graph() {
        let node = stumps("TreeEnsembleClassifier", &[(0.1, 0.9)], vec![]);
        let err = load_from_proto(
            model(vec![node], &["label", "probabilities"]),
            &LoadOptions {
                n_features: Some(3),
                ..LoadOptions::default()
            },
        )
        .expect_err("3 != 2");
        assert_eq!(
            err.to_string(),
            "model card lists 3 features but the model takes 2 input columns"
        );
    }

    #[test]
    fn shape_checks() {
        assert!(check_shape(3, &[0.0; 6], 2).is_ok());
        assert!(check_shape(3, &[], 0).is_ok());
        assert_eq!(
            check_shape(3, &[0.0; 8], 2).expect_err("width").to_string(),
            "wrong input width: the model expects 3 features per row, got 4"
        );
        assert_eq!(
            check_shape(3, &[0.0; 7], 2).expect_err("shape").to_string(),
            "input of 7 values cannot be 2 rows of 3 features"
        );
    }
}
