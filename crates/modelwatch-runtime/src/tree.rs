//! Our own evaluator for the ONNX-ML tree ensembles (`TreeEnsembleClassifier`,
//! `TreeEnsembleRegressor`) as exported by skl2onnx, onnxmltools (XGBoost, LightGBM).
//!
//! # Layout
//! The attribute tuples are flattened into one array of 16-byte [`Node`]s holding only
//! the branching nodes: feature index (with the comparison kind in its top bits),
//! threshold, and the two children. A child is either the index of another node or,
//! with [`LEAF_BIT`] set, the index of a leaf. Each tree is laid out contiguously in
//! depth-first order, so a walk touches one or two cache lines per tree. Leaves are a
//! separate array: one `f32` per leaf when every leaf carries exactly one weight for the
//! same class (every binary export we know), or a range into a `(class, weight)` list.
//!
//! # Walking
//! A walk is a chain of dependent loads (node, then feature value, then child), and a
//! data-dependent branch mispredicts about half the time. So child selection is
//! branch-free (a mask), and several walks advance side by side, one level at a time:
//! one row walks 8 trees at once, and in a batch, blocks of 8 rows walk each tree
//! together. Scores are still summed tree by tree, in order, so a row gets the same
//! bits alone or in a batch. Nothing is allocated per call.
//!
//! # Semantics
//! The output reproduces ONNX Runtime's CPU kernels, including their choices where the
//! ONNX specification is vague:
//! - a node with `nodes_missing_value_tracks_true = 1` sends NaN to its true branch;
//!   otherwise NaN follows the comparison (which is false for NaN, except `BRANCH_NEQ`);
//! - scores are summed in `f32`, tree by tree, in the order trees first appear;
//! - a two-class classifier whose weights all go to one class id is the "binary case":
//!   when no leaf scores class 1, its single score `s` (plus `base_values[0]`) becomes
//!   `[σ(-s), σ(s)]` under `LOGISTIC`, else `[1 - s, s]` when every weight is
//!   non-negative and `[-s, s]` when signs are mixed; `base_values` of length 2 follow
//!   ONNX Runtime's rules too, and a class that no visited leaf scored is written as 0
//!   before the transform;
//! - a one-target regressor applies only `PROBIT` (ONNX Runtime ignores the other
//!   transforms there).
//!
//! Combinations where ONNX Runtime leaves the requested probability column undefined
//! are rejected at load time.

use crate::error::RuntimeError;
use crate::onnx::{attr, attr_floats, attr_int, attr_ints, attr_string, attr_strings, node_label};
use std::collections::HashMap;
use tract_onnx::pb::NodeProto;

/// Set on a child index when it refers to a leaf rather than a branching node.
const LEAF_BIT: u32 = 1 << 31;
/// Feature indices use the low bits of [`Node::feature`]; the comparison kind the top 3.
const KIND_SHIFT: u32 = 29;
const FEATURE_MASK: u32 = (1 << KIND_SHIFT) - 1;
/// Most classes a classifier may have (scores live in a fixed array on the stack).
pub(crate) const MAX_CLASSES: usize = 32;
/// Rows walked together through each tree in a batch.
const BLOCK: usize = 8;

/// Comparison kinds after normalisation: every ONNX mode becomes one of these, with the
/// children swapped where needed. `yes` is taken when the comparison holds.
mod kind {
    /// `x <= t`; NaN goes to `no`.
    pub const LE: u8 = 0;
    /// `x < t`; NaN goes to `no`.
    pub const LT: u8 = 1;
    /// `x <= t`, or NaN.
    pub const LE_OR_NAN: u8 = 2;
    /// `x < t`, or NaN.
    pub const LT_OR_NAN: u8 = 3;
    /// `x == t`; NaN goes to `no`.
    pub const EQ: u8 = 4;
    /// `x == t`, or NaN.
    pub const EQ_OR_NAN: u8 = 5;
    /// Not a kind: the ensemble mixes kinds and each node is decoded on the way.
    pub const MIXED: u8 = 6;
}

/// One branching node (16 bytes).
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Feature index in the low 29 bits, comparison kind in the top 3.
    feature: u32,
    threshold: f32,
    yes: u32,
    no: u32,
}

#[inline(always)]
fn compare<const K: u8>(node_feature: u32, x: f32, t: f32) -> bool {
    let k = if K == kind::MIXED {
        (node_feature >> KIND_SHIFT) as u8
    } else {
        K
    };
    match k {
        kind::LE => x <= t,
        kind::LT => x < t,
        // One unordered comparison each once compiled (`!(x > t)`, `!(x >= t)`).
        kind::LE_OR_NAN => x <= t || x.is_nan(),
        kind::LT_OR_NAN => x < t || x.is_nan(),
        kind::EQ => x == t,
        _ => x == t || x.is_nan(),
    }
}

/// The post-evaluation transform of an ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

#[derive(Debug, Clone)]
enum Leaves {
    /// Every leaf has exactly one weight, all for the same class (or target).
    Single { values: Vec<f32>, class: usize },
    /// Leaves with several weights: `ranges[leaf]` indexes `weights`.
    Multi {
        ranges: Vec<(u32, u32)>,
        weights: Vec<(u32, f32)>,
    },
}

#[derive(Debug, Clone)]
enum Finalize {
    /// One-target regressor: `sum` (or `sum / n_trees`) + `base`, then PROBIT if set.
    Regressor {
        average: bool,
        base: f32,
        probit: bool,
    },
    /// Classifier with ONNX Runtime's rules; `column` is the probability column returned.
    Classifier {
        n_classes: usize,
        base: Vec<f32>,
        binary_case: bool,
        all_positive: bool,
        transform: Transform,
        column: usize,
    },
}

/// Which ensemble operator a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnsembleOp {
    /// `ai.onnx.ml.TreeEnsembleClassifier`.
    Classifier,
    /// `ai.onnx.ml.TreeEnsembleRegressor`.
    Regressor,
}

/// A compiled tree ensemble producing one probability (or regression value) per row.
#[derive(Debug, Clone)]
pub(crate) struct TreeEnsemble {
    n_features: usize,
    nodes: Vec<Node>,
    roots: Vec<u32>,
    leaves: Leaves,
    uniform_kind: u8,
    finalize: Finalize,
}

/// Structural facts about a compiled ensemble, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnsembleStats {
    /// Number of trees.
    pub trees: usize,
    /// Branching nodes over all trees.
    pub branches: usize,
    /// Leaves over all trees.
    pub leaves: usize,
    /// Deepest root-to-leaf path, in branching nodes.
    pub max_depth: usize,
}

impl TreeEnsemble {
    /// Compiles a tree-ensemble node.
    ///
    /// `n_features` is the input width when the graph or card knows it; otherwise the
    /// largest feature index + 1 is used. `column` is the output column to return: the
    /// class index for a classifier, 0 for a one-target regressor.
    pub(crate) fn compile(
        node: &NodeProto,
        op: EnsembleOp,
        n_features: Option<usize>,
        column: usize,
    ) -> Result<Self, RuntimeError> {
        let label = node_label(node);
        let invalid = |reason: String| RuntimeError::InvalidTreeEnsemble {
            node: label.clone(),
            reason,
        };
        let unsupported = |attribute: &str, reason: String| RuntimeError::UnsupportedTreeEnsemble {
            node: label.clone(),
            attribute: attribute.to_string(),
            reason,
        };

        for a in [
            "nodes_values_as_tensor",
            "base_values_as_tensor",
            "class_weights_as_tensor",
            "target_weights_as_tensor",
        ] {
            if let Some(at) = attr(node, a)
                && at.t.is_some()
            {
                return Err(unsupported(
                    a,
                    "double-precision trees are not supported; export with float thresholds".into(),
                ));
            }
        }

        let tree_ids = attr_ints(node, "nodes_treeids");
        let node_ids = attr_ints(node, "nodes_nodeids");
        let feature_ids = attr_ints(node, "nodes_featureids");
        let values = attr_floats(node, "nodes_values");
        let modes = attr_strings(node, "nodes_modes");
        let true_ids = attr_ints(node, "nodes_truenodeids");
        let false_ids = attr_ints(node, "nodes_falsenodeids");
        let missing_true = attr_ints(node, "nodes_missing_value_tracks_true");
        let n = tree_ids.len();
        if n == 0 {
            return Err(invalid("the ensemble has no nodes".into()));
        }
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", feature_ids.len()),
            ("nodes_values", values.len()),
            ("nodes_modes", modes.len()),
            ("nodes_truenodeids", true_ids.len()),
            ("nodes_falsenodeids", false_ids.len()),
        ] {
            if len != n {
                return Err(invalid(format!(
                    "`{name}` has {len} entries, `nodes_treeids` has {n}"
                )));
            }
        }
        if missing_true.len() > n {
            return Err(invalid(format!(
                "`nodes_missing_value_tracks_true` has {} entries for {n} nodes",
                missing_true.len()
            )));
        }

        let (w_prefix, id_attr) = match op {
            EnsembleOp::Classifier => ("class", "class_ids"),
            EnsembleOp::Regressor => ("target", "target_ids"),
        };
        let w_tree = attr_ints(node, &format!("{w_prefix}_treeids"));
        let w_node = attr_ints(node, &format!("{w_prefix}_nodeids"));
        let w_ids = attr_ints(node, id_attr);
        let w_values = attr_floats(node, &format!("{w_prefix}_weights"));
        if w_node.len() != w_tree.len()
            || w_ids.len() != w_tree.len()
            || w_values.len() != w_tree.len()
        {
            return Err(invalid(format!(
                "the `{w_prefix}_*` attributes have different lengths ({}, {}, {}, {})",
                w_tree.len(),
                w_node.len(),
                w_ids.len(),
                w_values.len()
            )));
        }

        // Modes, normalised: (kind, swap children).
        let mut norm = Vec::with_capacity(n);
        for (i, m) in modes.iter().enumerate() {
            let mt = missing_true.get(i).copied().unwrap_or(0) == 1;
            let k = match m.as_str() {
                "LEAF" => None,
                "BRANCH_LEQ" => Some((if mt { kind::LE_OR_NAN } else { kind::LE }, false)),
                "BRANCH_LT" => Some((if mt { kind::LT_OR_NAN } else { kind::LT }, false)),
                // x >= t is !(x < t); NaN must reach the original true child only if mt.
                "BRANCH_GTE" => Some((if mt { kind::LT } else { kind::LT_OR_NAN }, true)),
                "BRANCH_GT" => Some((if mt { kind::LE } else { kind::LE_OR_NAN }, true)),
                "BRANCH_EQ" => Some((if mt { kind::EQ_OR_NAN } else { kind::EQ }, false)),
                // x != t holds for NaN, so NaN always takes the original true child.
                "BRANCH_NEQ" => Some((kind::EQ, true)),
                other => {
                    return Err(unsupported(
                        "nodes_modes",
                        format!("unknown node mode `{other}` at position {i}"),
                    ));
                }
            };
            norm.push(k);
        }

        // Index (tree, node) pairs and group nodes into trees, in order of appearance.
        let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        let mut tree_first: Vec<usize> = Vec::new();
        let mut tree_of_first: HashMap<i64, usize> = HashMap::new();
        for i in 0..n {
            if index.insert((tree_ids[i], node_ids[i]), i).is_some() {
                return Err(invalid(format!(
                    "node {} of tree {} appears twice",
                    node_ids[i], tree_ids[i]
                )));
            }
            if i == 0 || tree_ids[i] != tree_ids[i - 1] {
                if tree_of_first.insert(tree_ids[i], i).is_some() {
                    return Err(unsupported(
                        "nodes_treeids",
                        format!(
                            "the nodes of tree {} are not contiguous; each tree's nodes must be listed together",
                            tree_ids[i]
                        ),
                    ));
                }
                tree_first.push(i);
            }
        }

        // Leaf weights, sorted by (tree, node, position) as ONNX Runtime does.
        let n_outputs = match op {
            EnsembleOp::Classifier => {
                let ints = attr_ints(node, "classlabels_int64s").len();
                let strings = attr_strings(node, "classlabels_strings").len();
                ints.max(strings)
            }
            EnsembleOp::Regressor => {
                usize::try_from(attr_int(node, "n_targets").unwrap_or(1)).unwrap_or(0)
            }
        };
        if n_outputs == 0 {
            return Err(invalid(match op {
                EnsembleOp::Classifier => "no class labels".into(),
                EnsembleOp::Regressor => "`n_targets` must be at least 1".into(),
            }));
        }
        if n_outputs > MAX_CLASSES {
            return Err(unsupported(
                id_attr,
                format!("{n_outputs} outputs; at most {MAX_CLASSES} are supported"),
            ));
        }
        let mut order: Vec<usize> = (0..w_tree.len()).collect();
        order.sort_by_key(|&i| (w_tree[i], w_node[i], i));
        let mut leaf_weights: HashMap<usize, Vec<(u32, f32)>> = HashMap::new();
        for &wi in &order {
            let Some(&ni) = index.get(&(w_tree[wi], w_node[wi])) else {
                return Err(invalid(format!(
                    "a weight refers to node {} of tree {}, which does not exist",
                    w_node[wi], w_tree[wi]
                )));
            };
            if norm[ni].is_some() {
                // ONNX Runtime ignores weights on branching nodes (old onnxmltools).
                continue;
            }
            let class = w_ids[wi];
            let class = usize::try_from(class)
                .ok()
                .filter(|&c| c < n_outputs)
                .ok_or_else(|| {
                    invalid(format!(
                        "`{id_attr}` holds {class}, outside the {n_outputs} output(s)"
                    ))
                })?;
            leaf_weights
                .entry(ni)
                .or_default()
                .push((u32::try_from(class).unwrap_or(u32::MAX), w_values[wi]));
        }
        for i in 0..n {
            if norm[i].is_none() && !leaf_weights.contains_key(&i) {
                return Err(invalid(format!(
                    "leaf {} of tree {} has no weight",
                    node_ids[i], tree_ids[i]
                )));
            }
        }

        // Feature range.
        let mut max_feature = 0usize;
        for i in 0..n {
            if norm[i].is_some() {
                let f = usize::try_from(feature_ids[i])
                    .ok()
                    .filter(|&f| f <= FEATURE_MASK as usize)
                    .ok_or_else(|| {
                        invalid(format!(
                            "node {} of tree {} reads feature {}",
                            node_ids[i], tree_ids[i], feature_ids[i]
                        ))
                    })?;
                max_feature = max_feature.max(f);
            }
        }
        let n_features = n_features.unwrap_or(max_feature + 1);
        if max_feature >= n_features {
            return Err(invalid(format!(
                "a node reads feature {max_feature} but the input has {n_features} columns"
            )));
        }

        // Flatten: depth-first from each tree's first node (ONNX Runtime's root).
        let mut nodes: Vec<Node> = Vec::new();
        let mut leaf_of: Vec<usize> = Vec::new(); // leaf slot -> attribute index
        let mut roots = Vec::with_capacity(tree_first.len());
        let mut state = vec![0u8; n]; // 0 unvisited, 1 placed
        for &first in &tree_first {
            let tree = tree_ids[first];
            // Explicit stack of (attribute index, slot to patch: Some((node, is_yes))).
            let mut stack: Vec<(usize, Option<(usize, bool)>)> = vec![(first, None)];
            let mut root_ref = None;
            while let Some((ai, patch)) = stack.pop() {
                if state[ai] != 0 {
                    return Err(invalid(format!(
                        "node {} of tree {tree} is reached twice; the tree has a cycle or a shared child",
                        node_ids[ai]
                    )));
                }
                state[ai] = 1;
                let reference = match norm[ai] {
                    None => {
                        leaf_of.push(ai);
                        u32::try_from(leaf_of.len() - 1)
                            .ok()
                            .filter(|v| v & LEAF_BIT == 0)
                            .ok_or_else(|| invalid("too many leaves".into()))?
                            | LEAF_BIT
                    }
                    Some((k, swap)) => {
                        let slot = nodes.len();
                        let slot_u32 = u32::try_from(slot)
                            .ok()
                            .filter(|v| v & LEAF_BIT == 0)
                            .ok_or_else(|| invalid("too many nodes".into()))?;
                        let feature = u32::try_from(feature_ids[ai]).unwrap_or(0)
                            | (u32::from(k) << KIND_SHIFT);
                        nodes.push(Node {
                            feature,
                            threshold: values[ai],
                            yes: 0,
                            no: 0,
                        });
                        let child = |id: i64, which: &str| {
                            index.get(&(tree, id)).copied().ok_or_else(|| {
                                invalid(format!(
                                    "node {} of tree {tree} has {which} child {id}, which does not exist",
                                    node_ids[ai]
                                ))
                            })
                        };
                        let t = child(true_ids[ai], "true")?;
                        let f = child(false_ids[ai], "false")?;
                        let (yes, no) = if swap { (f, t) } else { (t, f) };
                        // Push `no` first so `yes` is laid out right after its parent.
                        stack.push((no, Some((slot, false))));
                        stack.push((yes, Some((slot, true))));
                        slot_u32
                    }
                };
                match patch {
                    None => root_ref = Some(reference),
                    Some((parent, true)) => nodes[parent].yes = reference,
                    Some((parent, false)) => nodes[parent].no = reference,
                }
            }
            roots.push(root_ref.ok_or_else(|| invalid(format!("tree {tree} is empty")))?);
        }

        // Leaves.
        let first_class = leaf_weights
            .values()
            .next()
            .and_then(|w| w.first())
            .map_or(0, |w| w.0);
        let single = leaf_of.iter().all(|ai| {
            let w = &leaf_weights[ai];
            w.len() == 1 && w[0].0 == first_class
        });
        let leaves = if single {
            Leaves::Single {
                values: leaf_of.iter().map(|ai| leaf_weights[ai][0].1).collect(),
                class: first_class as usize,
            }
        } else {
            let mut ranges = Vec::with_capacity(leaf_of.len());
            let mut weights = Vec::new();
            for ai in &leaf_of {
                let w = &leaf_weights[ai];
                let start = u32::try_from(weights.len()).unwrap_or(u32::MAX);
                weights.extend_from_slice(w);
                ranges.push((start, u32::try_from(w.len()).unwrap_or(u32::MAX)));
            }
            Leaves::Multi { ranges, weights }
        };

        let transform = match attr_string(node, "post_transform").as_deref() {
            None | Some("NONE") => Transform::None,
            Some("LOGISTIC") => Transform::Logistic,
            Some("SOFTMAX") => Transform::Softmax,
            Some("SOFTMAX_ZERO") => Transform::SoftmaxZero,
            Some("PROBIT") => Transform::Probit,
            Some(other) => {
                return Err(unsupported(
                    "post_transform",
                    format!("unknown transform `{other}`"),
                ));
            }
        };
        let base = attr_floats(node, "base_values").to_vec();

        let finalize = match op {
            EnsembleOp::Regressor => {
                if n_outputs != 1 {
                    return Err(unsupported(
                        "n_targets",
                        format!("{n_outputs} targets; only one-target regressors are supported"),
                    ));
                }
                if !matches!(leaves, Leaves::Single { .. }) {
                    return Err(unsupported(
                        "target_weights",
                        "a leaf carries several weights; one weight per leaf is supported".into(),
                    ));
                }
                let average = match attr_string(node, "aggregate_function").as_deref() {
                    None | Some("SUM") => false,
                    Some("AVERAGE") => true,
                    Some(other) => {
                        return Err(unsupported(
                            "aggregate_function",
                            format!("`{other}` is not supported (SUM and AVERAGE are)"),
                        ));
                    }
                };
                if base.len() > 1 {
                    return Err(unsupported(
                        "base_values",
                        format!("{} values for one target", base.len()),
                    ));
                }
                if column != 0 {
                    return Err(RuntimeError::ClassIndex {
                        output: node.output.first().cloned().unwrap_or_default(),
                        index: column,
                        columns: 1,
                    });
                }
                Finalize::Regressor {
                    average,
                    base: base.first().copied().unwrap_or(0.0),
                    probit: transform == Transform::Probit,
                }
            }
            EnsembleOp::Classifier => {
                let k = n_outputs;
                if k < 2 {
                    return Err(unsupported(
                        "classlabels_int64s",
                        "a classifier with a single class is not supported".into(),
                    ));
                }
                if column >= k {
                    return Err(RuntimeError::ClassIndex {
                        output: node.output.get(1).cloned().unwrap_or_default(),
                        index: column,
                        columns: k,
                    });
                }
                if !(base.is_empty() || base.len() == k || (k == 2 && base.len() == 1)) {
                    return Err(unsupported(
                        "base_values",
                        format!("{} values for {k} classes", base.len()),
                    ));
                }
                let mut classes_with_weights = [false; MAX_CLASSES];
                for w in leaf_weights.values().flatten() {
                    classes_with_weights[w.0 as usize] = true;
                }
                let binary_case =
                    k == 2 && classes_with_weights.iter().filter(|c| **c).count() == 1;
                let all_positive = w_values.iter().all(|w| *w >= 0.0 || w.is_nan());
                if k == 2 && column == 1 {
                    // Can a row end with only class 0 scored, leaving one score? Then
                    // ONNX Runtime writes column 1 only in the cases below.
                    let some_leaf_lacks_class1 = leaf_of
                        .iter()
                        .any(|ai| !leaf_weights[ai].iter().any(|w| w.0 == 1));
                    if some_leaf_lacks_class1 && base.len() <= 1 {
                        if transform == Transform::Probit {
                            return Err(unsupported(
                                "post_transform",
                                "PROBIT on a one-score binary classifier leaves the class-1 probability undefined in ONNX Runtime".into(),
                            ));
                        }
                        if base.len() == 1 && !binary_case {
                            return Err(unsupported(
                                "base_values",
                                "one base value with weights for both classes leaves the class-1 probability undefined in ONNX Runtime".into(),
                            ));
                        }
                    }
                }
                Finalize::Classifier {
                    n_classes: k,
                    base,
                    binary_case,
                    all_positive,
                    transform,
                    column,
                }
            }
        };

        let mut kinds = nodes.iter().map(|nd| (nd.feature >> KIND_SHIFT) as u8);
        let first_kind = kinds.next().unwrap_or(kind::LE);
        let uniform_kind = if kinds.all(|k| k == first_kind) {
            first_kind
        } else {
            kind::MIXED
        };

        Ok(TreeEnsemble {
            n_features,
            nodes,
            roots,
            leaves,
            uniform_kind,
            finalize,
        })
    }

    /// Input width.
    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// Structural facts about the compiled ensemble.
    pub(crate) fn stats(&self) -> EnsembleStats {
        let mut max_depth = 0;
        let mut stack: Vec<(u32, usize)> = self.roots.iter().map(|&r| (r, 0)).collect();
        while let Some((r, d)) = stack.pop() {
            if r & LEAF_BIT != 0 {
                max_depth = max_depth.max(d);
            } else {
                let nd = &self.nodes[r as usize];
                stack.push((nd.yes, d + 1));
                stack.push((nd.no, d + 1));
            }
        }
        let leaves = match &self.leaves {
            Leaves::Single { values, .. } => values.len(),
            Leaves::Multi { ranges, .. } => ranges.len(),
        };
        EnsembleStats {
            trees: self.roots.len(),
            branches: self.nodes.len(),
            leaves,
            max_depth,
        }
    }

    /// Scores `out.len()` rows of `input` (row-major, `n_features` wide). The caller has
    /// checked the shape.
    pub(crate) fn predict(&self, input: &[f32], out: &mut [f32]) {
        match self.uniform_kind {
            kind::LE => self.predict_kind::<{ kind::LE }>(input, out),
            kind::LT => self.predict_kind::<{ kind::LT }>(input, out),
            kind::LE_OR_NAN => self.predict_kind::<{ kind::LE_OR_NAN }>(input, out),
            kind::LT_OR_NAN => self.predict_kind::<{ kind::LT_OR_NAN }>(input, out),
            _ => self.predict_kind::<{ kind::MIXED }>(input, out),
        }
    }

    #[inline(always)]
    fn leaf<const K: u8>(&self, root: u32, row: &[f32]) -> usize {
        let mut at = root;
        while at & LEAF_BIT == 0 {
            let nd = &self.nodes[at as usize];
            let x = row[(nd.feature & FEATURE_MASK) as usize];
            // A mask instead of a branch: a data-dependent branch mispredicts about half
            // the time, while the rows of a block walk their trees side by side.
            let mask = u32::from(compare::<K>(nd.feature, x, nd.threshold)).wrapping_neg();
            at = (nd.yes & mask) | (nd.no & !mask);
        }
        (at & !LEAF_BIT) as usize
    }

    /// `N` walks side by side (lane `i`: tree `at[i]` on `rows[i]`), one level at a time,
    /// so their dependent loads overlap; returns the leaf of each lane.
    #[inline(always)]
    fn leaves<const K: u8, const N: usize>(&self, mut at: [u32; N], rows: [&[f32]; N]) -> [u32; N] {
        loop {
            let mut walking = false;
            for (a, row) in at.iter_mut().zip(rows) {
                if *a & LEAF_BIT == 0 {
                    walking = true;
                    let nd = &self.nodes[*a as usize];
                    let x = row[(nd.feature & FEATURE_MASK) as usize];
                    let mask = u32::from(compare::<K>(nd.feature, x, nd.threshold)).wrapping_neg();
                    *a = (nd.yes & mask) | (nd.no & !mask);
                }
            }
            if !walking {
                return at;
            }
        }
    }

    /// The sum of one row's leaf values, trees in order, walking `LANES` trees at once.
    #[inline(always)]
    fn row_sum<const K: u8>(&self, values: &[f32], row: &[f32]) -> f32 {
        const LANES: usize = 8;
        let mut sum = 0f32;
        let mut groups = self.roots.chunks_exact(LANES);
        for group in &mut groups {
            let roots: [u32; LANES] = std::array::from_fn(|i| group[i]);
            for leaf in self.leaves::<K, LANES>(roots, [row; LANES]) {
                sum += values[(leaf & !LEAF_BIT) as usize];
            }
        }
        for &root in groups.remainder() {
            sum += values[self.leaf::<K>(root, row)];
        }
        sum
    }

    fn predict_kind<const K: u8>(&self, input: &[f32], out: &mut [f32]) {
        match &self.leaves {
            Leaves::Single { values, class } => {
                let has = if self.roots.is_empty() {
                    0
                } else {
                    1u32 << class
                };
                // Blocks of rows walk each tree together: their walks are independent,
                // so the CPU overlaps them. Each row still sums its trees in order.
                let width = self.n_features * BLOCK;
                let mut blocks = input.chunks_exact(width);
                let mut outs = out.chunks_exact_mut(BLOCK);
                for (block, outs) in (&mut blocks).zip(&mut outs) {
                    let rows: [&[f32]; BLOCK] = std::array::from_fn(|r| {
                        &block[r * self.n_features..(r + 1) * self.n_features]
                    });
                    let mut sums = [0f32; BLOCK];
                    for &root in &self.roots {
                        let leaves = self.leaves::<K, BLOCK>([root; BLOCK], rows);
                        for (sum, leaf) in sums.iter_mut().zip(leaves) {
                            *sum += values[(leaf & !LEAF_BIT) as usize];
                        }
                    }
                    for (o, sum) in outs.iter_mut().zip(sums) {
                        *o = self.finish_single(sum, *class, has);
                    }
                }
                let rest = blocks.remainder().chunks_exact(self.n_features);
                for (row, o) in rest.zip(outs.into_remainder()) {
                    *o = self.finish_single(self.row_sum::<K>(values, row), *class, has);
                }
            }
            Leaves::Multi { ranges, weights } => {
                let rows = input.chunks_exact(self.n_features);
                for (row, o) in rows.zip(out.iter_mut()) {
                    let mut scores = [0f32; MAX_CLASSES];
                    let mut has = 0u32;
                    for &root in &self.roots {
                        let (start, len) = ranges[self.leaf::<K>(root, row)];
                        for &(c, w) in &weights[start as usize..(start + len) as usize] {
                            scores[c as usize] += w;
                            has |= 1 << c;
                        }
                    }
                    *o = self.finish(&mut scores, has);
                }
            }
        }
    }

    #[inline]
    fn finish_single(&self, sum: f32, class: usize, has: u32) -> f32 {
        match &self.finalize {
            Finalize::Regressor {
                average,
                base,
                probit,
            } => {
                let mut s = sum;
                if *average {
                    s /= self.roots.len() as f32;
                }
                s += base;
                if *probit { probit_f32(s) } else { s }
            }
            Finalize::Classifier { .. } => {
                let mut scores = [0f32; MAX_CLASSES];
                scores[class] = sum;
                self.finish(&mut scores, has)
            }
        }
    }

    /// ONNX Runtime's classifier finalisation; returns the requested column.
    fn finish(&self, scores: &mut [f32; MAX_CLASSES], has: u32) -> f32 {
        let Finalize::Classifier {
            n_classes,
            base,
            binary_case,
            all_positive,
            transform,
            column,
        } = &self.finalize
        else {
            return self.finish_single(scores[0], 0, has);
        };
        let k = *n_classes;
        if k > 2 {
            for (s, b) in scores.iter_mut().zip(base) {
                *s += b;
            }
            return transform_column(&mut scores[..k], *transform, *column);
        }
        // Two classes.
        let has0 = has & 1 != 0;
        let mut has1 = has & 2 != 0;
        let mut width = 2;
        let mut second: i8 = -1;
        match base.len() {
            2 => {
                if has1 {
                    // ONNX Runtime uses base_values[1] only, on the class-0 score.
                    scores[1] = base[1] + scores[0];
                    scores[0] = -scores[1];
                } else {
                    scores[1] += base[1];
                    scores[0] += base[0];
                }
            }
            1 => {
                scores[0] += base[0];
                if !has1 {
                    width = 1;
                }
            }
            _ => {
                second = 3;
                if !has1 {
                    width = 1;
                }
            }
        }
        if width == 1 {
            has1 = false;
        }
        if *binary_case {
            let positive = if has1 {
                scores[1]
            } else if has0 {
                scores[0]
            } else {
                0.0
            };
            second = match (*all_positive, positive) {
                (true, p) if p > 0.5 => 0,
                (true, _) => 1,
                (false, p) if p > 0.0 => 2,
                (false, _) => 3,
            };
        }
        if width == 2 {
            // ONNX Runtime writes a class that no leaf scored as 0 (base value or not).
            if !has0 {
                scores[0] = 0.0;
            }
            if !has1 {
                scores[1] = 0.0;
            }
            return transform_column(&mut scores[..2], *transform, *column);
        }
        let s = if has0 { scores[0] } else { 0.0 };
        let pair = if *transform == Transform::Probit {
            [probit_f32(s), f32::NAN]
        } else {
            match second {
                0..=3 if *transform == Transform::Logistic => [logistic(-s), logistic(s)],
                0 | 1 => [1.0 - s, s],
                2 | 3 => [-s, s],
                _ => [s, f32::NAN],
            }
        };
        pair[*column]
    }
}

fn transform_column(scores: &mut [f32], transform: Transform, column: usize) -> f32 {
    match transform {
        Transform::None => scores[column],
        Transform::Logistic => logistic(scores[column]),
        Transform::Probit => probit_f32(scores[column]),
        Transform::Softmax => {
            let max = scores.iter().copied().fold(-f32::MAX, f32::max);
            let mut sum = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            scores[column] / sum
        }
        Transform::SoftmaxZero => {
            // Zero scores stay (nearly) zero instead of becoming exp(0 - max).
            let max = scores.iter().copied().fold(-f32::MAX, f32::max);
            let exp_neg_max = (-max).exp();
            let mut sum = 0f32;
            for s in scores.iter_mut() {
                if s.abs() > 1e-7 {
                    *s = (*s - max).exp();
                    sum += *s;
                } else {
                    *s *= exp_neg_max;
                }
            }
            scores[column] / sum
        }
    }
}

/// The logistic function as ONNX Runtime computes it in `f32` (symmetric form).
#[inline]
pub(crate) fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// `sqrt(2) * erfinv(2p - 1)` with the closed-form approximation of the inverse error
/// function (Winitzki, a = 0.147) that ONNX Runtime uses, evaluated in `f32` with the same
/// constants and in the same order: near p = 0.5 the formula cancels, and a different
/// rounding shows at 1e-6.
fn probit_f32(p: f32) -> f32 {
    const A: f32 = 0.147;
    const INV_A: f32 = 1.0 / A;
    let x = 2.0 * p - 1.0;
    let sign = if x < 0.0 { -1.0f32 } else { 1.0 };
    let ln = ((1.0 - x) * (1.0 + x)).ln();
    let u = 2.0 / (std::f32::consts::PI * A) + 0.5 * ln;
    let inner = -u + (u * u - INV_A * ln).sqrt();
    std::f32::consts::SQRT_2 * (sign * inner.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_is_symmetric() {
        for x in [-20.0f32, -1.5, 0.0, 0.3, 7.0] {
            assert!((logistic(x) + logistic(-x) - 1.0).abs() < 1e-6);
        }
        assert!((logistic(0.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn probit_inverts_the_normal_cdf_roughly() {
        assert!(probit_f32(0.5).abs() < 1e-6);
        assert!((probit_f32(0.975) - 1.96).abs() < 0.01);
        assert!((probit_f32(0.025) + 1.96).abs() < 0.01);
    }

    #[test]
    fn node_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 16);
    }
}
