//! Graphs that are not tree ensembles (an MLP, a linear model) run in tract as it is.

use crate::error::RuntimeError;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

type Plan = TypedSimplePlan;

/// A tract plan with a symbolic batch dimension, returning one column of one output.
pub(crate) struct TractModel {
    plan: Arc<Plan>,
    n_features: usize,
    column: usize,
    columns: usize,
}

impl std::fmt::Debug for TractModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractModel")
            .field("n_features", &self.n_features)
            .field("column", &self.column)
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl TractModel {
    /// Builds the plan from a graph already pruned to `output` (its only output) and
    /// with its feature input first.
    pub(crate) fn new(
        proto: &ModelProto,
        input_index: usize,
        n_features: usize,
        output: &str,
        column: usize,
    ) -> Result<Self, RuntimeError> {
        let framework = tract_onnx::onnx();
        let mut model = framework
            .model_for_proto_model(proto)
            .map_err(|e| RuntimeError::tract("parsing the graph", e))?;
        let batch = model.symbols.sym("N");
        model
            .set_input_fact(
                input_index,
                f32::fact([batch.to_dim(), n_features.to_dim()]).into(),
            )
            .map_err(|e| RuntimeError::tract("setting the input shape", e))?;
        model
            .select_outputs_by_name([output])
            .map_err(|e| RuntimeError::tract("selecting the output", e))?;
        let typed = model
            .into_optimized()
            .map_err(|e| RuntimeError::tract("optimizing the graph", e))?;
        let fact = typed
            .output_fact(0)
            .map_err(|e| RuntimeError::tract("reading the output shape", e))?
            .clone();
        let rank = fact.rank();
        let columns = match rank {
            1 => 1,
            2 => fact.shape[1]
                .as_usize()
                .ok_or_else(|| RuntimeError::UnsupportedGraph {
                    reason: format!("output `{output}` has a symbolic number of columns"),
                })?,
            r => {
                return Err(RuntimeError::UnsupportedGraph {
                    reason: format!(
                        "output `{output}` has rank {r}; [batch] or [batch, classes] is expected"
                    ),
                });
            }
        };
        if column >= columns {
            return Err(RuntimeError::ClassIndex {
                output: output.to_string(),
                index: column,
                columns,
            });
        }
        let plan = typed
            .into_runnable()
            .map_err(|e| RuntimeError::tract("building the plan", e))?;
        Ok(TractModel {
            plan,
            n_features,
            column,
            columns,
        })
    }

    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    pub(crate) fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), RuntimeError> {
        let rows = out.len();
        if rows == 0 {
            return Ok(());
        }
        let tensor = Tensor::from_shape(&[rows, self.n_features], input)
            .map_err(|e| RuntimeError::tract("building the input tensor", e))?;
        let result = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| RuntimeError::tract("running the graph", e))?;
        let first = result.first().ok_or_else(|| RuntimeError::Tract {
            context: "running the graph",
            message: "no output".into(),
        })?;
        let plain = first
            .try_as_plain_ram()
            .map_err(|e| RuntimeError::tract("reading the output", e))?;
        let values = plain
            .as_slice::<f32>()
            .map_err(|e| RuntimeError::tract("reading the output", e))?;
        if values.len() != rows * self.columns {
            return Err(RuntimeError::Tract {
                context: "reading the output",
                message: format!(
                    "expected {} values for {rows} rows, got {}",
                    rows * self.columns,
                    values.len()
                ),
            });
        }
        for (o, chunk) in out.iter_mut().zip(values.chunks_exact(self.columns)) {
            *o = chunk[self.column];
        }
        Ok(())
    }
}
