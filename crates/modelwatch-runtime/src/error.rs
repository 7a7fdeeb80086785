//! The one error type of the runtime: one variant per cause, each naming what a user
//! needs to fix it (the path, the field, the operator and node, the widths).

use std::path::PathBuf;

/// Everything that can go wrong while loading a model card, a model or a reference file,
/// or while scoring rows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A file the runtime was asked to read does not exist.
    #[error("file not found: {}", path.display())]
    FileNotFound {
        /// The path that was looked up.
        path: PathBuf,
    },

    /// A file exists but could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The bytes of an `.onnx` file are not a valid ONNX protobuf model.
    #[error("cannot decode ONNX model {}: {message}", path.display())]
    OnnxDecode {
        /// The model file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },

    /// A JSON file (model card, reference, parity fixture) is not valid JSON for its
    /// format, or lacks a required field (serde names the field).
    #[error("{}: {source}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The parse error, which names the offending field and position.
        #[source]
        source: serde_json::Error,
    },

    /// A model card field has a value the runtime cannot accept.
    #[error("model card field `{field}`: {reason}")]
    InvalidCard {
        /// The card field, such as `threshold` or `features[3].name`.
        field: String,
        /// Why the value is rejected.
        reason: String,
    },

    /// A reference-distribution field has a value the runtime cannot accept.
    #[error("reference field `{field}`: {reason}")]
    InvalidReference {
        /// The field, such as `features[2].fractions`.
        field: String,
        /// Why the value is rejected.
        reason: String,
    },

    /// The graph needs an operator this runtime does not evaluate.
    #[error("unsupported operator `{op}` (domain `{domain}`) in node `{node}`: {reason}")]
    UnsupportedOp {
        /// The operator type, such as `ZipMap`.
        op: String,
        /// The operator domain (empty for the default ONNX domain).
        domain: String,
        /// The node name (or its first output when the node has no name).
        node: String,
        /// Why the operator cannot be used here.
        reason: String,
    },

    /// A tree-ensemble attribute is valid ONNX but outside what the evaluator supports.
    #[error("unsupported tree ensemble in node `{node}`: attribute `{attribute}`: {reason}")]
    UnsupportedTreeEnsemble {
        /// The tree-ensemble node.
        node: String,
        /// The attribute that is not supported.
        attribute: String,
        /// Why.
        reason: String,
    },

    /// A tree-ensemble's attributes are inconsistent (dangling child, cycle, length mismatch).
    #[error("invalid tree ensemble in node `{node}`: {reason}")]
    InvalidTreeEnsemble {
        /// The tree-ensemble node.
        node: String,
        /// What is inconsistent.
        reason: String,
    },

    /// The graph does not have the input or output the caller (or the card) asked for.
    #[error("model has no {kind} named `{name}`; it has: {available}")]
    MissingTensor {
        /// `input` or `output`.
        kind: &'static str,
        /// The name that was asked for.
        name: String,
        /// The names the graph does have, comma-separated.
        available: String,
    },

    /// The graph is structurally unusable: no graph, several inputs, a non-2-D input.
    #[error("unsupported model graph: {reason}")]
    UnsupportedGraph {
        /// What is wrong.
        reason: String,
    },

    /// The requested class column does not exist in the probability output.
    #[error(
        "positive class index {index} is out of range: output `{output}` has {columns} column(s)"
    )]
    ClassIndex {
        /// The output tensor.
        output: String,
        /// The requested column.
        index: usize,
        /// How many columns the output has.
        columns: usize,
    },

    /// The card's feature list and the model's input width disagree.
    #[error("model card lists {card} features but the model takes {model} input columns")]
    FeatureCount {
        /// Features in the card.
        card: usize,
        /// Input columns of the model.
        model: usize,
    },

    /// A prediction was asked for rows of the wrong width.
    #[error("wrong input width: the model expects {expected} features per row, got {given}")]
    InputWidth {
        /// Features per row the model takes.
        expected: usize,
        /// Features per row the caller gave.
        given: usize,
    },

    /// The flat input cannot be cut into the number of rows given by the output buffer.
    #[error("input of {len} values cannot be {rows} rows of {n_features} features")]
    BatchShape {
        /// Length of the flat input.
        len: usize,
        /// Rows asked for (the length of the output buffer).
        rows: usize,
        /// Features per row the model takes.
        n_features: usize,
    },

    /// tract failed while preparing or running a graph.
    #[error("tract: {context}: {message}")]
    Tract {
        /// What the runtime was doing.
        context: &'static str,
        /// tract's error chain.
        message: String,
    },

    /// A data file (such as the holdout CSV) has a problem.
    #[error("{}: {reason}", path.display())]
    Data {
        /// The data file.
        path: PathBuf,
        /// What is wrong, with row and column where known.
        reason: String,
    },
}

impl RuntimeError {
    /// Maps an I/O error on `path` to [`RuntimeError::FileNotFound`] or [`RuntimeError::Io`].
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            RuntimeError::FileNotFound {
                path: path.to_path_buf(),
            }
        } else {
            RuntimeError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    /// Wraps a tract error with what the runtime was doing.
    pub(crate) fn tract(context: &'static str, err: impl std::fmt::Display) -> Self {
        RuntimeError::Tract {
            context,
            message: format!("{err:#}"),
        }
    }

    pub(crate) fn card(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RuntimeError::InvalidCard {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn reference(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RuntimeError::InvalidReference {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
