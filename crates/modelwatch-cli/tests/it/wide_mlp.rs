//! A deliberately slow model for the concurrency tests: a wide MLP over the fraud
//! model's 16 features, written as ONNX by hand (a few protobuf fields), with
//! deterministic weights. In a debug build a batch of 32 rows takes milliseconds in
//! tract, so clients that hang up 2 to 22 ms into a request do so mid-batch.

use std::path::{Path, PathBuf};

/// Hidden units per layer.
pub const HIDDEN: usize = 1024;

/// Rough scale of each fraud feature, so the first layer sees values near 1.
const FEATURE_SCALE: [f32; 16] = [
    500.0, 24.0, 1.0, 1.0, 5.0, 200.0, 20.0, 200.0, 60.0, 200.0, 20.0, 1.0, 100.0, 1.0, 400.0, 1.0,
];

/// Writes `wide.onnx`, `wide.card.json` and `wide.reference.json` into `dir` and
/// returns the card's path.
pub fn write(dir: &Path) -> PathBuf {
    let n = FEATURE_SCALE.len();
    // Deterministic weights in [-1, 1], scaled by fan-in.
    let weight = |seed: usize, i: usize, j: usize| -> f32 {
        let h =
            (i.wrapping_mul(2_654_435_761) ^ j.wrapping_mul(40_503) ^ seed.wrapping_mul(97)) % 2001;
        h as f32 / 1000.0 - 1.0
    };
    let w1: Vec<f32> = (0..n * HIDDEN)
        .map(|k| weight(1, k / HIDDEN, k % HIDDEN) / FEATURE_SCALE[k / HIDDEN])
        .collect();
    let b1: Vec<f32> = (0..HIDDEN).map(|j| weight(2, 0, j) * 0.1).collect();
    let fan = (HIDDEN as f32).sqrt();
    let w2: Vec<f32> = (0..HIDDEN * HIDDEN)
        .map(|k| weight(3, k / HIDDEN, k % HIDDEN) / fan)
        .collect();
    let b2: Vec<f32> = (0..HIDDEN).map(|j| weight(4, 0, j) * 0.1).collect();
    let w3: Vec<f32> = (0..HIDDEN * 2)
        .map(|k| weight(5, k / 2, k % 2) * 2.0 / fan)
        .collect();

    let mut graph = Vec::new();
    for (inputs, output, op) in [
        (&["features", "w1"][..], "h1", "MatMul"),
        (&["h1", "b1"][..], "h1b", "Add"),
        (&["h1b"][..], "r1", "Relu"),
        (&["r1", "w2"][..], "h2", "MatMul"),
        (&["h2", "b2"][..], "h2b", "Add"),
        (&["h2b"][..], "r2", "Relu"),
        (&["r2", "w3"][..], "logits", "MatMul"),
    ] {
        field(&mut graph, 1, &node(inputs, output, op, None));
    }
    field(
        &mut graph,
        1,
        &node(&["logits"], "probabilities", "Softmax", Some(("axis", 1))),
    );
    field(&mut graph, 2, b"wide_mlp");
    for (name, dims, values) in [
        ("w1", vec![n, HIDDEN], &w1),
        ("b1", vec![HIDDEN], &b1),
        ("w2", vec![HIDDEN, HIDDEN], &w2),
        ("b2", vec![HIDDEN], &b2),
        ("w3", vec![HIDDEN, 2], &w3),
    ] {
        field(&mut graph, 5, &tensor(name, &dims, values));
    }
    field(&mut graph, 11, &value_info("features", n));
    field(&mut graph, 12, &value_info("probabilities", 2));

    let mut model = Vec::new();
    varint_field(&mut model, 1, 8); // ir_version
    let mut opset = Vec::new();
    field(&mut opset, 1, b"");
    varint_field(&mut opset, 2, 13);
    field(&mut model, 8, &opset);
    field(&mut model, 7, &graph);
    std::fs::write(dir.join("wide.onnx"), model).expect("write wide.onnx");

    let bundled: serde_json::Value =
        serde_json::from_str(modelwatch_server::load::bundled::CARD).expect("bundled card");
    let mut card = bundled.clone();
    card["name"] = "wide".into();
    card["onnx"]["file"] = "wide.onnx".into();
    card["architecture"] = format!("mlp(16-{HIDDEN}-{HIDDEN}-2, fixed weights)").into();
    card["framework"] = "hand-written onnx (tests)".into();
    let card_path = dir.join("wide.card.json");
    std::fs::write(&card_path, serde_json::to_vec_pretty(&card).expect("json")).expect("card");
    let mut reference: serde_json::Value =
        serde_json::from_str(modelwatch_server::load::bundled::REFERENCE).expect("reference");
    reference["model"] = "wide".into();
    std::fs::write(
        dir.join("wide.reference.json"),
        serde_json::to_vec_pretty(&reference).expect("json"),
    )
    .expect("reference");
    card_path
}

fn node(inputs: &[&str], output: &str, op: &str, int_attr: Option<(&str, i64)>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in inputs {
        field(&mut out, 1, i.as_bytes());
    }
    field(&mut out, 2, output.as_bytes());
    field(&mut out, 3, format!("{op}_{output}").as_bytes());
    field(&mut out, 4, op.as_bytes());
    if let Some((name, value)) = int_attr {
        let mut attr = Vec::new();
        field(&mut attr, 1, name.as_bytes());
        varint_field(&mut attr, 3, value as u64);
        varint_field(&mut attr, 20, 2); // AttributeType INT
        field(&mut out, 5, &attr);
    }
    out
}

fn tensor(name: &str, dims: &[usize], values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in dims {
        varint_field(&mut out, 1, *d as u64);
    }
    varint_field(&mut out, 2, 1); // FLOAT
    field(&mut out, 8, name.as_bytes());
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    field(&mut out, 9, &raw);
    out
}

/// A FLOAT tensor of shape [N, width] with a symbolic batch dimension.
fn value_info(name: &str, width: usize) -> Vec<u8> {
    let mut batch = Vec::new();
    field(&mut batch, 2, b"N");
    let mut cols = Vec::new();
    varint_field(&mut cols, 1, width as u64);
    let mut shape = Vec::new();
    field(&mut shape, 1, &batch);
    field(&mut shape, 1, &cols);
    let mut tensor_type = Vec::new();
    varint_field(&mut tensor_type, 1, 1);
    field(&mut tensor_type, 2, &shape);
    let mut type_proto = Vec::new();
    field(&mut type_proto, 1, &tensor_type);
    let mut out = Vec::new();
    field(&mut out, 1, name.as_bytes());
    field(&mut out, 2, &type_proto);
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(out: &mut Vec<u8>, number: u64, value: u64) {
    varint(out, number << 3);
    varint(out, value);
}

/// A length-delimited field (bytes, string or embedded message).
fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, (number << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}
