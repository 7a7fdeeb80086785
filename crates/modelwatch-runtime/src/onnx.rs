//! Reading ONNX protobuf graphs with tract-onnx's generated types: decoding, attribute
//! access, finding producers, and pruning a graph down to what one output needs.

use crate::error::RuntimeError;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tract_onnx::pb::{self, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use tract_onnx::tract_hir::prelude::Framework;

/// The domain of the classic-ML ONNX operators.
pub(crate) const ML_DOMAIN: &str = "ai.onnx.ml";

/// Reads and decodes an `.onnx` file.
pub(crate) fn read_model(path: &Path) -> Result<ModelProto, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|e| RuntimeError::io(path, e))?;
    tract_onnx::onnx()
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| RuntimeError::OnnxDecode {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        })
}

/// A printable name for a node: its name, or its first output when it has none.
pub(crate) fn node_label(node: &NodeProto) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else if let Some(out) = node.output.first() {
        format!("<unnamed, output `{out}`>")
    } else {
        format!("<unnamed {}>", node.op_type)
    }
}

/// Whether `node` is `op` from the given domain (`""` and `ai.onnx` are the same domain).
pub(crate) fn is_op(node: &NodeProto, domain: &str, op: &str) -> bool {
    let d = if node.domain == "ai.onnx" {
        ""
    } else {
        node.domain.as_str()
    };
    d == domain && node.op_type == op
}

pub(crate) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(crate) fn attr_ints<'a>(node: &'a NodeProto, name: &str) -> &'a [i64] {
    attr(node, name).map_or(&[], |a| a.ints.as_slice())
}

pub(crate) fn attr_floats<'a>(node: &'a NodeProto, name: &str) -> &'a [f32] {
    attr(node, name).map_or(&[], |a| a.floats.as_slice())
}

pub(crate) fn attr_strings(node: &NodeProto, name: &str) -> Vec<String> {
    attr(node, name).map_or_else(Vec::new, |a| {
        a.strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    })
}

pub(crate) fn attr_string(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

pub(crate) fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

/// The graph of a model, or an error when the model has none.
pub(crate) fn graph(model: &ModelProto) -> Result<&GraphProto, RuntimeError> {
    model
        .graph
        .as_ref()
        .ok_or_else(|| RuntimeError::UnsupportedGraph {
            reason: "the model has no graph".into(),
        })
}

/// The graph inputs that are fed at run time (not initializers).
pub(crate) fn runtime_inputs(graph: &GraphProto) -> Vec<&pb::ValueInfoProto> {
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect()
}

/// Picks the feature input: the one named `wanted` if given, else the only runtime input.
pub(crate) fn feature_input<'g>(
    graph: &'g GraphProto,
    wanted: Option<&str>,
) -> Result<&'g pb::ValueInfoProto, RuntimeError> {
    let inputs = runtime_inputs(graph);
    let names = || {
        inputs
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(name) => inputs
            .iter()
            .find(|i| i.name == name)
            .copied()
            .ok_or_else(|| RuntimeError::MissingTensor {
                kind: "input",
                name: name.to_string(),
                available: names(),
            }),
        None => match inputs.as_slice() {
            [one] => Ok(one),
            _ => Err(RuntimeError::UnsupportedGraph {
                reason: format!(
                    "expected exactly one runtime input, found {} ({})",
                    inputs.len(),
                    names()
                ),
            }),
        },
    }
}

/// The declared shape of a value: `Some(dim)` per fixed dimension, `None` per symbolic
/// or unknown one. `None` overall when the value has no tensor type or shape.
pub(crate) fn declared_shape(info: &pb::ValueInfoProto) -> Option<Vec<Option<usize>>> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    use pb::type_proto::Value as Ty;
    let Ty::TensorType(t) = info.r#type.as_ref()?.value.as_ref()?;
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(Dim::DimValue(v)) if v >= 0 => usize::try_from(v).ok(),
                _ => None,
            })
            .collect(),
    )
}

/// The width (features per row) of a `[batch, width]` input, if fixed.
pub(crate) fn input_width(info: &pb::ValueInfoProto) -> Result<Option<usize>, RuntimeError> {
    match declared_shape(info) {
        None => Ok(None),
        Some(dims) if dims.len() == 2 => Ok(dims[1]),
        Some(dims) => Err(RuntimeError::UnsupportedGraph {
            reason: format!(
                "input `{}` has rank {}; a [batch, features] matrix is expected",
                info.name,
                dims.len()
            ),
        }),
    }
}

/// Where each value comes from: node index and output slot.
pub(crate) fn producers(graph: &GraphProto) -> HashMap<&str, (usize, usize)> {
    let mut map = HashMap::new();
    for (ni, node) in graph.node.iter().enumerate() {
        for (slot, out) in node.output.iter().enumerate() {
            if !out.is_empty() {
                map.insert(out.as_str(), (ni, slot));
            }
        }
    }
    map
}

/// Checks the graph declares `name` as an output.
pub(crate) fn check_output(graph: &GraphProto, name: &str) -> Result<(), RuntimeError> {
    if graph.output.iter().any(|o| o.name == name) {
        Ok(())
    } else {
        Err(RuntimeError::MissingTensor {
            kind: "output",
            name: name.to_string(),
            available: graph
                .output
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// A float scalar held by an initializer or a `Constant` node, if `name` is one.
pub(crate) fn scalar_constant(graph: &GraphProto, name: &str) -> Option<f32> {
    if let Some(t) = graph.initializer.iter().find(|t| t.name == name) {
        return tensor_scalar_f32(t);
    }
    let node = graph
        .node
        .iter()
        .find(|n| is_op(n, "", "Constant") && n.output.first().is_some_and(|o| o == name))?;
    if let Some(a) = attr(node, "value_float") {
        return Some(a.f);
    }
    attr(node, "value")
        .and_then(|a| a.t.as_ref())
        .and_then(tensor_scalar_f32)
}

fn tensor_scalar_f32(t: &TensorProto) -> Option<f32> {
    if t.data_type != pb::tensor_proto::DataType::Float as i32 {
        return None;
    }
    if t.dims.iter().product::<i64>() != 1 {
        return None;
    }
    if let Some(v) = t.float_data.first() {
        return Some(*v);
    }
    let raw: [u8; 4] = t.raw_data.get(..4)?.try_into().ok()?;
    Some(f32::from_le_bytes(raw))
}

/// Keeps only the nodes that `output` depends on and makes `output` the only graph
/// output. Labels and other outputs the runtime does not read then never reach tract.
pub(crate) fn prune_to_output(graph: &mut GraphProto, output: &str) {
    let prod = producers(graph);
    let mut needed_nodes = HashSet::new();
    let mut stack = vec![output.to_string()];
    let mut seen_values = HashSet::new();
    while let Some(v) = stack.pop() {
        if !seen_values.insert(v.clone()) {
            continue;
        }
        if let Some(&(ni, _)) = prod.get(v.as_str())
            && needed_nodes.insert(ni)
        {
            stack.extend(
                graph.node[ni]
                    .input
                    .iter()
                    .filter(|i| !i.is_empty())
                    .cloned(),
            );
        }
    }
    let nodes = std::mem::take(&mut graph.node);
    graph.node = nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| needed_nodes.contains(i))
        .map(|(_, n)| n)
        .collect();
    graph.output.retain(|o| o.name == output);
    let used: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    graph.initializer.retain(|t| used.contains(&t.name));
}

/// Rewrites each `ai.onnx.ml` `Scaler` (`y = (x - offset) * scale`) into the standard
/// `Sub` and `Mul` operators, which tract runs. Returns how many were rewritten.
pub(crate) fn lower_scalers(graph: &mut GraphProto) -> Result<usize, RuntimeError> {
    let mut lowered = Vec::with_capacity(graph.node.len());
    let mut count = 0;
    let nodes = std::mem::take(&mut graph.node);
    for node in nodes {
        if !is_op(&node, ML_DOMAIN, "Scaler") {
            lowered.push(node);
            continue;
        }
        let label = node_label(&node);
        let (Some(input), Some(output)) = (node.input.first(), node.output.first()) else {
            return Err(RuntimeError::UnsupportedOp {
                op: node.op_type.clone(),
                domain: node.domain.clone(),
                node: label,
                reason: "a Scaler needs one input and one output".into(),
            });
        };
        let offset = attr_floats(&node, "offset").to_vec();
        let scale = attr_floats(&node, "scale").to_vec();
        let stem = format!("modelwatch_scaler_{count}");
        let offset_name = format!("{stem}_offset");
        let scale_name = format!("{stem}_scale");
        let shifted = format!("{stem}_shifted");
        graph.initializer.push(float_vector(&offset_name, &offset));
        graph.initializer.push(float_vector(&scale_name, &scale));
        lowered.push(NodeProto {
            input: vec![input.clone(), offset_name],
            output: vec![shifted.clone()],
            name: format!("{stem}_sub"),
            op_type: "Sub".into(),
            ..NodeProto::default()
        });
        lowered.push(NodeProto {
            input: vec![shifted, scale_name],
            output: vec![output.clone()],
            name: format!("{stem}_mul"),
            op_type: "Mul".into(),
            ..NodeProto::default()
        });
        count += 1;
    }
    graph.node = lowered;
    Ok(count)
}

fn float_vector(name: &str, values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: vec![i64::try_from(values.len()).unwrap_or(i64::MAX)],
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: values.to_vec(),
        ..TensorProto::default()
    }
}
