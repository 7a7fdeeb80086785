//! Decoding and encoding, with hostile inputs: every one is a typed error, none panics.

use super::*;
use serde_json::{Value, json};

fn decode_json(request: Value) -> Result<InferRequest, OipError> {
    decode_infer(None, request.to_string().as_bytes())
}

/// A JSON header followed by `binary`, as the binary extension sends it.
fn with_binary(header: Value, binary: &[u8]) -> (String, Vec<u8>) {
    let json = header.to_string();
    let mut body = json.clone().into_bytes();
    body.extend_from_slice(binary);
    (json.len().to_string(), body)
}

fn problem(result: Result<InferRequest, OipError>) -> (String, TensorProblem) {
    match result {
        Err(OipError::InvalidInput { tensor, problem }) => (tensor, problem),
        other => panic!("expected an input error, got {other:?}"),
    }
}

fn length_prefixed(items: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in items {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

fn fraud_card() -> ModelCard {
    ModelCard::from_json_str(crate::load::bundled::CARD).unwrap()
}

fn spend_card() -> ModelCard {
    ModelCard::from_json_str(include_str!("../../../../models/fixtures/spend.card.json")).unwrap()
}

/// A card with every kind of field: a nullable number, a time read by a transform
/// and by nobody else, an event time only, and a store group whose features are all
/// nullable (so its key is optional) beside one that is not.
fn mixed_card() -> ModelCard {
    ModelCard::from_json_str(
        &json!({"format_version": 2, "name": "mixed", "version": "2.0.0",
        "framework": "none", "training_date": "2026-11-24", "architecture": "toy",
        "task": {"type": "regression"},
        "groups": {"req": {"source": "request", "event_time_field": "seen_at"},
                   "user": {"source": "store", "entity_key": "user_id"},
                   "shop": {"source": "store", "entity_key": "shop_id"}},
        "features": [
            {"name": "price", "group": "req"},
            {"name": "discount", "group": "req", "nullable": true},
            {"name": "hour", "group": "req", "transform": {"fn": "hour_of_day", "field": "at"}},
            {"name": "user_nb_tx", "group": "user"},
            {"name": "shop_rating", "group": "shop", "nullable": true}]})
        .to_string(),
    )
    .unwrap()
}

fn fraud_rows(inputs: &[InputTensor], max_rows: usize) -> Result<Vec<RequestFields>, OipError> {
    rows_from_tensors(&inputs_of(&fraud_card()), inputs, max_rows, || NOW)
}

/// The arrival time the tests pass as `now`.
const NOW: i64 = 1_795_514_400;

fn fraud_request(n: usize) -> Value {
    let ids: Vec<String> = (0..n).map(|i| format!("C{i:06}")).collect();
    let terminals: Vec<String> = (0..n).map(|i| format!("T{i:05}")).collect();
    let amounts: Vec<f64> = (0..n).map(|i| 10.0 + i as f64).collect();
    json!({"id": "r-1", "inputs": [
        {"name": "amount", "datatype": "FP64", "shape": [n, 1], "data": amounts},
        {"name": "customer_id", "datatype": "BYTES", "shape": [n], "data": ids},
        {"name": "terminal_id", "datatype": "BYTES", "shape": [n], "data": terminals},
    ]})
}

#[test]
fn json_tensors_decode_flat_or_nested() {
    let request = decode_json(json!({"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [2, 2], "data": [[1.5, 2], [3, 4]]},
        {"name": "b", "datatype": "INT64", "shape": [3], "data": [1, -2, 3]},
        {"name": "c", "datatype": "BYTES", "shape": [1], "data": ["x"]},
        {"name": "d", "datatype": "INT32", "shape": [2], "data": [7, 8]},
    ]}))
    .unwrap();
    assert_eq!(
        request.inputs[0].data,
        TensorData::Fp32(vec![1.5, 2.0, 3.0, 4.0])
    );
    assert_eq!(request.inputs[1].data, TensorData::Int64(vec![1, -2, 3]));
    assert_eq!(
        request.inputs[2].data,
        TensorData::Bytes(vec![b"x".to_vec()])
    );
    assert_eq!(request.inputs[3].data, TensorData::Int32(vec![7, 8]));
    assert_eq!(request.outputs, None);
    assert!(!request.binary_data_output);
}

#[test]
fn binary_tensors_decode_in_input_order() {
    let mut binary = Vec::new();
    for x in [1.25f32, -2.0] {
        binary.extend_from_slice(&x.to_le_bytes());
    }
    let strings = length_prefixed(&["C000001", ""]);
    binary.extend_from_slice(&strings);
    let header = json!({"inputs": [
        {"name": "amount", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
        {"name": "customer_id", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": strings.len()}},
        {"name": "terminal_id", "datatype": "BYTES", "shape": [2], "data": ["T1", "T2"]},
    ], "parameters": {"binary_data_output": true}});
    let (length, body) = with_binary(header, &binary);
    let request = decode_infer(Some(length.as_bytes()), &body).unwrap();
    assert_eq!(request.inputs[0].data, TensorData::Fp32(vec![1.25, -2.0]));
    assert_eq!(
        request.inputs[1].data,
        TensorData::Bytes(vec![b"C000001".to_vec(), Vec::new()])
    );
    assert!(request.binary_data_output);
}

#[test]
fn header_length_past_the_body_or_not_a_number_is_refused() {
    let body = br#"{"inputs": []}"#;
    assert!(matches!(
        decode_infer(Some(b"9999"), body),
        Err(OipError::HeaderPastBody {
            header_length: 9999,
            body_length: 14
        })
    ));
    assert!(matches!(
        decode_infer(Some(b"99999999999999999999999"), body),
        Err(OipError::InvalidHeaderLength(_))
    ));
    for bad in [&b"-1"[..], b"", b"1e3", b" ", b"\xff\xfe"] {
        assert!(
            matches!(
                decode_infer(Some(bad), body),
                Err(OipError::InvalidHeaderLength(_))
            ),
            "{bad:?}"
        );
    }
    // Zero: the JSON part is empty.
    assert!(matches!(
        decode_infer(Some(b"0"), body),
        Err(OipError::InvalidJson(_))
    ));
}

#[test]
fn truncated_binary_is_refused_naming_the_tensor() {
    let header = json!({"inputs": [
        {"name": "amount", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}},
    ]});
    let (length, body) = with_binary(header, &[0u8; 10]);
    let (tensor, p) = problem(decode_infer(Some(length.as_bytes()), &body));
    assert_eq!(tensor, "amount");
    assert_eq!(
        p,
        TensorProblem::BinaryPastBody {
            declared: 16,
            remaining: 10
        }
    );

    // A size that does not match the shape.
    let header = json!({"inputs": [
        {"name": "amount", "datatype": "FP64", "shape": [2], "parameters": {"binary_data_size": 12}},
    ]});
    let (length, body) = with_binary(header, &[0u8; 12]);
    let (_, p) = problem(decode_infer(Some(length.as_bytes()), &body));
    assert_eq!(
        p,
        TensorProblem::BinarySize {
            declared: 12,
            expected: 16
        }
    );

    // Bytes left over after the last tensor.
    let header = json!({"inputs": [
        {"name": "amount", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}},
    ]});
    let (length, body) = with_binary(header, &[0u8; 7]);
    assert!(matches!(
        decode_infer(Some(length.as_bytes()), &body),
        Err(OipError::TrailingBytes { count: 3 })
    ));
}

#[test]
fn broken_length_prefixed_strings_are_refused() {
    let cases: Vec<(Vec<u8>, u64, &str)> = vec![
        // Two bytes of a four-byte prefix.
        (vec![1, 0], 1, "truncated length prefix"),
        // A prefix that claims 4 GiB.
        (
            vec![0xff, 0xff, 0xff, 0xff, b'a'],
            1,
            "declares 4294967295 bytes",
        ),
        // One element more than the shape.
        (length_prefixed(&["a", "b"]), 1, "more than the 1 elements"),
        // One element fewer.
        (
            length_prefixed(&["a"]),
            2,
            "shape holds 2 elements but data has 1",
        ),
    ];
    for (binary, n, expected) in cases {
        let header = json!({"inputs": [
            {"name": "customer_id", "datatype": "BYTES", "shape": [n], "parameters": {"binary_data_size": binary.len()}},
        ]});
        let (length, body) = with_binary(header, &binary);
        let error = decode_infer(Some(length.as_bytes()), &body).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("input \"customer_id\": ") && message.contains(expected),
            "{message}"
        );
    }
}

#[test]
fn huge_negative_or_fractional_shapes_are_refused_without_allocating() {
    // The product overflows u64.
    let (tensor, p) = problem(decode_json(json!({"inputs": [
        {"name": "amount", "datatype": "FP32", "shape": [u64::MAX, 2], "data": [1.0]},
    ]})));
    assert_eq!(tensor, "amount");
    assert!(matches!(p, TensorProblem::ShapeOverflow { .. }), "{p:?}");

    // Huge but representable: refused by the element count, not allocated.
    let (_, p) = problem(decode_json(json!({"inputs": [
        {"name": "amount", "datatype": "FP32", "shape": [1u64 << 40, 1u64 << 20], "data": [1.0]},
    ]})));
    assert_eq!(
        p,
        TensorProblem::DataLength {
            declared: 1 << 60,
            given: 1
        }
    );
    // Huge in binary: elements times width overflows.
    let header = json!({"inputs": [
        {"name": "amount", "datatype": "FP64", "shape": [1u64 << 62], "parameters": {"binary_data_size": 0}},
    ]});
    let (length, body) = with_binary(header, &[]);
    let (_, p) = problem(decode_infer(Some(length.as_bytes()), &body));
    assert!(matches!(p, TensorProblem::ShapeOverflow { .. }), "{p:?}");

    for (dim, shown) in [
        (json!(-1), "-1"),
        (json!(1.5), "1.5"),
        (json!("2"), "\"2\""),
    ] {
        let (_, p) = problem(decode_json(json!({"inputs": [
            {"name": "amount", "datatype": "FP32", "shape": [2, dim], "data": [1.0, 2.0]},
        ]})));
        assert_eq!(
            p,
            TensorProblem::InvalidDimension {
                index: 1,
                value: shown.to_string()
            }
        );
    }
}

#[test]
fn data_of_the_wrong_kind_or_count_is_refused() {
    let cases = [
        (
            json!({"name": "t", "datatype": "FP32", "shape": [2], "data": [1.0]}),
            "shape holds 2 elements but data has 1",
        ),
        (
            json!({"name": "t", "datatype": "FP32", "shape": [1], "data": ["1"]}),
            "element 0: expected a number, got a string",
        ),
        (
            json!({"name": "t", "datatype": "FP32", "shape": [1], "data": [1e300]}),
            "out of the FP32 range",
        ),
        (
            json!({"name": "t", "datatype": "INT32", "shape": [1], "data": [3_000_000_000u64]}),
            "out of the INT32 range",
        ),
        (
            json!({"name": "t", "datatype": "INT64", "shape": [1], "data": [1.5]}),
            "expected an integer, got 1.5",
        ),
        (
            json!({"name": "t", "datatype": "BYTES", "shape": [1], "data": [7]}),
            "expected a string, got a number",
        ),
        (
            json!({"name": "t", "datatype": "BOOL", "shape": [1], "data": [true]}),
            "datatype BOOL is not accepted",
        ),
        (
            json!({"name": "t", "datatype": "fp32", "shape": [1], "data": [1]}),
            "unknown datatype \"fp32\"",
        ),
        (
            json!({"name": "t", "shape": [1], "data": [1]}),
            "has no \"datatype\" field",
        ),
        (
            json!({"name": "t", "datatype": "FP32", "data": [1]}),
            "has no \"shape\" field",
        ),
        (
            json!({"name": "t", "datatype": "FP32", "shape": [1]}),
            "neither \"data\" nor",
        ),
        (
            json!({"name": "t", "datatype": "FP32", "shape": [1], "data": [1], "parameters": {"binary_data_size": 4}}),
            "both \"data\" and",
        ),
        (
            json!({"name": "t", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}),
            "no Inference-Header-Content-Length",
        ),
        (
            json!({"name": "t", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": -4}}),
            "must be a non-negative integer",
        ),
        (
            json!({"name": "t", "datatype": "FP32", "shape": [1], "data": [1], "parameters": []}),
            "parameter \"parameters\" must be an object",
        ),
    ];
    for (input, expected) in cases {
        let error = decode_json(json!({ "inputs": [input] })).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("input \"t\": ") && message.contains(expected),
            "{message} does not say {expected:?}"
        );
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn request_level_mistakes_are_refused() {
    for (body, expected) in [
        ("", "not valid JSON"),
        ("[1]", "not valid JSON"),
        ("{\"inputs\": 3}", "\"inputs\" must be an array"),
        ("{}", "\"inputs\" must be an array"),
        ("{\"inputs\": [3]}", "inputs[0] must be an object"),
        ("{\"inputs\": [{}]}", "inputs[0] has no \"name\""),
        ("{\"id\": 5, \"inputs\": []}", "\"id\" must be a string"),
        (
            "{\"inputs\": [], \"parameters\": {\"binary_data_output\": 1}}",
            "must be a boolean",
        ),
        (
            "{\"inputs\": [], \"outputs\": [{\"name\": \"score\", \"parameters\": {\"binary_data\": \"yes\"}}]}",
            "output \"score\": parameter \"binary_data\" must be a boolean",
        ),
        (
            "{\"inputs\": [], \"outputs\": {}}",
            "\"outputs\" must be an array",
        ),
    ] {
        let message = decode_infer(None, body.as_bytes()).unwrap_err().to_string();
        assert!(message.contains(expected), "{body}: {message}");
    }
    // Deeply nested data: serde_json's recursion limit answers, not the stack.
    let deep = format!(
        "{{\"inputs\": [{{\"name\": \"t\", \"datatype\": \"FP32\", \"shape\": [1], \"data\": {}1{}}}]}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(matches!(
        decode_infer(None, deep.as_bytes()),
        Err(OipError::InvalidJson(_))
    ));
}

#[test]
fn garbage_never_panics() {
    // A cheap deterministic fuzz: prefixes and byte flips of a valid binary request.
    let mut binary = Vec::new();
    binary.extend_from_slice(&3.5f32.to_le_bytes());
    binary.extend_from_slice(&length_prefixed(&["C000001"]));
    let header = json!({"inputs": [
        {"name": "amount", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}},
        {"name": "customer_id", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 11}},
    ]});
    let (length, body) = with_binary(header, &binary);
    for cut in 0..=body.len() {
        let _ = decode_infer(Some(length.as_bytes()), &body[..cut]);
        let _ = decode_infer(None, &body[..cut]);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut mutated = body.clone();
        let at = (state as usize) % mutated.len();
        mutated[at] = (state >> 32) as u8;
        if let Ok(request) = decode_infer(Some(length.as_bytes()), &mutated) {
            let _ = fraud_rows(&request.inputs, 8);
        }
    }
}

#[test]
fn inputs_come_from_the_card() {
    let spec = |name, kind, required| InputSpec {
        name,
        kind,
        required,
    };
    assert_eq!(
        inputs_of(&fraud_card()),
        [
            spec("amount", FieldKind::Number, true),
            spec("timestamp", FieldKind::Time, true),
            spec("customer_id", FieldKind::EntityKey, true),
            spec("terminal_id", FieldKind::EntityKey, true),
        ]
    );
    let card = mixed_card();
    let inputs = inputs_of(&card);
    assert_eq!(
        inputs,
        [
            spec("price", FieldKind::Number, true),
            spec("discount", FieldKind::Number, false),
            spec("at", FieldKind::Time, true),
            spec("seen_at", FieldKind::Time, false),
            spec("shop_id", FieldKind::EntityKey, false),
            spec("user_id", FieldKind::EntityKey, true),
        ]
    );
    let types: Vec<_> = inputs
        .iter()
        .map(|i| (i.datatype(), i.accepted()))
        .collect();
    assert_eq!(types[0], (Datatype::Fp32, NUMBERS));
    assert_eq!(
        types[2],
        (Datatype::Bytes, &[Datatype::Bytes, Datatype::Int64][..])
    );
    assert_eq!(types[4], (Datatype::Bytes, &[Datatype::Bytes][..]));
    // The second model: request fields only.
    let spend = spend_card();
    let names: Vec<_> = inputs_of(&spend).iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        [
            "timestamp",
            "customer_nb_tx_7d",
            "customer_avg_amount_7d",
            "customer_nb_tx_30d",
            "customer_avg_amount_30d"
        ]
    );
}

#[test]
fn outputs_follow_the_task() {
    assert_eq!(Output::of(&fraud_card()), Output::CLASSIFIER);
    assert_eq!(
        Output::of(&spend_card()),
        [Output::Value, Output::PredictionId]
    );
    let request = decode_json(json!({"inputs": [], "outputs": [{"name": "decision"}]})).unwrap();
    let e = select_outputs(&request, Output::REGRESSOR).unwrap_err();
    assert_eq!(
        e.to_string(),
        "output \"decision\": no such output; the model returns value, prediction_id"
    );
}

#[test]
fn rows_map_one_per_tensor_row() {
    let request = decode_json(fraud_request(3)).unwrap();
    let rows = fraud_rows(&request.inputs, 8).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].entities["customer_id"], "C000002");
    assert_eq!(rows[2].entities["terminal_id"], "T00002");
    assert_eq!(rows[2].features["amount"], FieldValue::Number(12.0));
    // No timestamp tensor: the arrival time, as /v1/predict dates a transaction.
    assert_eq!(
        rows[2].features["timestamp"],
        FieldValue::Number(NOW as f64)
    );
    assert_eq!(rows[2].features.len(), 2);
    assert_eq!(rows[2].entities.len(), 2);
}

#[test]
fn every_field_kind_decodes_from_each_accepted_datatype() {
    let card = mixed_card();
    let specs = inputs_of(&card);
    let mut binary = Vec::new();
    binary.extend_from_slice(&1.5f32.to_le_bytes());
    binary.extend_from_slice(&(-2.25f32).to_le_bytes());
    let header = json!({"inputs": [
        {"name": "price", "datatype": "FP32", "shape": [2, 1], "parameters": {"binary_data_size": 8}},
        {"name": "discount", "datatype": "INT32", "shape": [2], "data": [3, 4]},
        {"name": "at", "datatype": "INT64", "shape": [2], "data": [1_795_514_400i64, 0]},
        {"name": "seen_at", "datatype": "BYTES", "shape": [2], "data": ["2026-11-24T10:00:00Z", "x"]},
        {"name": "user_id", "datatype": "BYTES", "shape": [2], "data": ["u1", "u2"]},
    ]});
    let (length, body) = with_binary(header, &binary);
    let request = decode_infer(Some(length.as_bytes()), &body).unwrap();
    let rows =
        rows_from_tensors(&specs, &request.inputs, 8, || panic!("no time is missing")).unwrap();
    let number = FieldValue::Number;
    assert_eq!(rows[1].features["price"], number(-2.25));
    assert_eq!(rows[1].features["discount"], number(4.0));
    assert_eq!(rows[0].features["at"], number(1_795_514_400.0));
    assert_eq!(
        rows[0].features["seen_at"],
        FieldValue::Text("2026-11-24T10:00:00Z".into())
    );
    // Text is passed on as sent; the pipeline checks it (and names tensor and row).
    assert_eq!(rows[1].features["seen_at"], FieldValue::Text("x".into()));
    assert_eq!(rows[1].entities["user_id"], "u2");
    assert!(!rows[0].entities.contains_key("shop_id"));

    // Only what is required: the optional inputs are missing in every row, and the
    // left-out required time is the arrival time.
    let request = decode_json(json!({"inputs": [
        {"name": "price", "datatype": "FP64", "shape": [1], "data": [9.5]},
        {"name": "user_id", "datatype": "BYTES", "shape": [1], "data": ["u1"]},
    ]}))
    .unwrap();
    let rows = rows_from_tensors(&specs, &request.inputs, 8, || 77).unwrap();
    assert_eq!(
        rows[0].features.keys().collect::<Vec<_>>(),
        ["at", "price"],
        "{rows:?}"
    );
    assert_eq!(rows[0].features["at"], number(77.0));
    assert_eq!(rows[0].entities.keys().collect::<Vec<_>>(), ["user_id"]);

    // A missing required number or entity key is named; a time of the wrong kind too.
    for (inputs, says) in [
        (
            json!([{"name": "user_id", "datatype": "BYTES", "shape": [1], "data": ["u1"]}]),
            "input \"price\": is required and missing from the request",
        ),
        (
            json!([{"name": "price", "datatype": "FP32", "shape": [1], "data": [1]}]),
            "input \"user_id\": is required and missing from the request",
        ),
        (
            json!([{"name": "at", "datatype": "FP64", "shape": [1], "data": [1.5]}]),
            "input \"at\": datatype FP64 is not accepted; use BYTES, INT64",
        ),
        (
            json!([{"name": "price", "datatype": "BYTES", "shape": [1], "data": ["1"]}]),
            "input \"price\": datatype BYTES is not accepted; use FP32, FP64, INT32, INT64",
        ),
    ] {
        let request = decode_json(json!({ "inputs": inputs })).unwrap();
        let e = rows_from_tensors(&specs, &request.inputs, 8, || 0).unwrap_err();
        assert_eq!(e.to_string(), says);
        assert_eq!(e.http_status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn mapping_names_the_tensor_and_what_is_wrong() {
    let with = |f: &dyn Fn(&mut Vec<Value>)| {
        let mut request = fraud_request(2);
        let inputs = request["inputs"].as_array_mut().unwrap();
        f(inputs);
        let decoded = decode_json(request).unwrap();
        fraud_rows(&decoded.inputs, 8).unwrap_err()
    };
    let e = with(&|i| i[0]["name"] = json!("amt"));
    assert_eq!(
        e.to_string(),
        "input \"amt\": no such input; the model takes amount, timestamp, customer_id, terminal_id"
    );
    let e = with(&|i| {
        i.remove(2);
    });
    assert_eq!(
        e.to_string(),
        "input \"terminal_id\": is required and missing from the request"
    );
    let e = with(&|i| {
        let copy = i[1].clone();
        i.push(copy);
    });
    assert_eq!(
        e.to_string(),
        "input \"customer_id\": is given more than once"
    );
    let e = with(&|i| {
        i[1] = json!({"name": "customer_id", "datatype": "INT64", "shape": [2], "data": [1, 2]})
    });
    assert_eq!(
        e.to_string(),
        "input \"customer_id\": datatype INT64 is not accepted; use BYTES"
    );
    let e = with(&|i| {
        i[0] = json!({"name": "amount", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]})
    });
    assert!(
        e.to_string().contains("shape [1, 2] is not [N] or [N, 1]"),
        "{e}"
    );
    let e = with(&|i| {
        i[0] = json!({"name": "amount", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]})
    });
    assert_eq!(
        e.to_string(),
        "input \"customer_id\": has 2 rows but input \"amount\" has 3; every input needs one value per row"
    );
    let e = with(&|i| {
        for t in i.iter_mut() {
            t["shape"] = json!([0]);
            t["data"] = json!([]);
        }
    });
    assert!(e.to_string().contains("hold no row"), "{e}");

    // Too many rows is the batch limit's 413.
    let decoded = decode_json(fraud_request(9)).unwrap();
    let e = fraud_rows(&decoded.inputs, 8).unwrap_err();
    assert_eq!(e.http_status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Binary ids that are not UTF-8.
    let header = json!({"inputs": [
        {"name": "amount", "datatype": "FP64", "shape": [1], "data": [1.0]},
        {"name": "customer_id", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}},
        {"name": "terminal_id", "datatype": "BYTES", "shape": [1], "data": ["T1"]},
    ]});
    let (length, body) = with_binary(header, &[2, 0, 0, 0, 0xc3, 0x28]);
    let decoded = decode_infer(Some(length.as_bytes()), &body).unwrap();
    let e = fraud_rows(&decoded.inputs, 8).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input \"customer_id\": element 0: is not UTF-8 text"
    );
}

#[test]
fn pipeline_errors_name_tensor_and_row() {
    let field = |field: &str| ApiError::InvalidField {
        field: field.into(),
        reason: "is not RFC 3339".into(),
    };
    let e = pipeline_error(field("inputs[3].features.timestamp"));
    assert_eq!(e.to_string(), "input \"timestamp\": row 3: is not RFC 3339");
    assert_eq!(e.http_status(), StatusCode::BAD_REQUEST);
    assert_eq!(e.status(), Some(modelwatch::Status::Rejected));
    let e = pipeline_error(field("inputs[12].entities.customer_id"));
    assert_eq!(
        e.to_string(),
        "input \"customer_id\": row 12: is not RFC 3339"
    );
    // Anything else keeps the pipeline's own words.
    for other in [
        "rows[1].features.x",
        "inputs[x].features.a",
        "inputs[1].other.a",
        "amount",
    ] {
        assert_eq!(
            pipeline_error(field(other)).to_string(),
            format!("{other}: is not RFC 3339")
        );
    }
    assert_eq!(
        pipeline_error(ApiError::Overloaded).http_status(),
        ApiError::Overloaded.http_status()
    );
}

fn predictions() -> Vec<Prediction> {
    ["approved", "declined"]
        .iter()
        .enumerate()
        .map(|(i, d)| Prediction {
            prediction_id: format!("p-{i}"),
            transaction_id: None,
            id: None,
            score: Some(f64::from(0.1f32 + i as f32 * 0.5)),
            value: None,
            decision: Some((*d).into()),
            model: "fraud".into(),
            version: "1.0.0".into(),
        })
        .collect()
}

#[test]
fn json_response_carries_every_output() {
    let request = decode_json(fraud_request(2)).unwrap();
    let outputs = select_outputs(&request, Output::CLASSIFIER).unwrap();
    let encoded = encode_response("fraud", "1.0.0", Some("r-1"), &predictions(), &outputs);
    assert_eq!(encoded.header_length, None);
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!(body["model_name"], "fraud");
    assert_eq!(body["model_version"], "1.0.0");
    assert_eq!(body["id"], "r-1");
    assert_eq!(
        body["outputs"][0],
        // f32's shortest form, which reads back as the same f32.
        json!({"name": "score", "datatype": "FP32", "shape": [2], "data": [0.1, 0.6]})
    );
    assert_eq!(body["outputs"][1]["data"], json!(["approved", "declined"]));
    assert_eq!(body["outputs"][2]["data"], json!(["p-0", "p-1"]));
    // The JSON number reads back as the same f32.
    let score = body["outputs"][0]["data"][0].as_f64().unwrap() as f32;
    assert_eq!(score, 0.1f32);
}

#[test]
fn binary_response_follows_its_json_header() {
    let request = decode_json(json!({"inputs": [], "outputs": [
        {"name": "decision", "parameters": {"binary_data": true}},
        {"name": "score", "parameters": {"binary_data": true}},
        {"name": "prediction_id"},
    ]}))
    .unwrap();
    let outputs = select_outputs(&request, Output::CLASSIFIER).unwrap();
    assert_eq!(
        outputs,
        [
            (Output::Decision, true),
            (Output::Score, true),
            (Output::PredictionId, false)
        ]
    );
    let encoded = encode_response("fraud", "1.0.0", None, &predictions(), &outputs);
    let split = encoded.header_length.unwrap();
    let header: Value = serde_json::from_slice(&encoded.body[..split]).unwrap();
    assert!(header.get("id").is_none());
    let binary = &encoded.body[split..];
    let decisions = length_prefixed(&["approved", "declined"]);
    assert_eq!(
        header["outputs"][0]["parameters"]["binary_data_size"],
        decisions.len()
    );
    assert!(header["outputs"][0].get("data").is_none());
    assert_eq!(&binary[..decisions.len()], decisions.as_slice());
    let scores = &binary[decisions.len()..];
    assert_eq!(scores.len(), 8);
    assert_eq!(&scores[..4], &0.1f32.to_le_bytes());
    assert_eq!(header["outputs"][2]["data"], json!(["p-0", "p-1"]));

    // The request-level default, overridden per output.
    let request = decode_json(json!({"inputs": [], "parameters": {"binary_data_output": true},
        "outputs": [{"name": "score", "parameters": {"binary_data": false}}, {"name": "decision"}]}))
    .unwrap();
    assert_eq!(
        select_outputs(&request, Output::CLASSIFIER).unwrap(),
        [(Output::Score, false), (Output::Decision, true)]
    );
    let request = decode_json(json!({"inputs": [], "outputs": [{"name": "probability"}]})).unwrap();
    let e = select_outputs(&request, Output::CLASSIFIER).unwrap_err();
    assert_eq!(
        e.to_string(),
        "output \"probability\": no such output; the model returns score, decision, prediction_id"
    );
}

#[test]
fn a_regressor_answers_its_value() {
    let predictions: Vec<Prediction> = [61.25f32, 7.5]
        .iter()
        .enumerate()
        .map(|(i, v)| Prediction {
            prediction_id: format!("p-{i}"),
            transaction_id: None,
            id: None,
            score: None,
            value: Some(f64::from(*v)),
            decision: None,
            model: "spend".into(),
            version: "1.0.0".into(),
        })
        .collect();
    let request = decode_json(json!({"inputs": []})).unwrap();
    let outputs = select_outputs(&request, Output::REGRESSOR).unwrap();
    let encoded = encode_response("spend", "1.0.0", None, &predictions, &outputs);
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!(
        body["outputs"],
        json!([
            {"name": "value", "datatype": "FP32", "shape": [2], "data": [61.25, 7.5]},
            {"name": "prediction_id", "datatype": "BYTES", "shape": [2], "data": ["p-0", "p-1"]},
        ])
    );
}
