//! Benchmarks of request decoding and response encoding, without the pipeline.
//!
//! - `codec/v1_one_transaction`: a `/v1/predict` body parsed, validated, and its
//!   prediction serialised.
//! - `codec/oip_one_row_json`: the same transaction as a one-row OIP infer request
//!   in JSON: [`decode_infer`], the card's inputs ([`inputs_of`]), [`rows_from_tensors`]
//!   into request fields, their check ([`FeatureLayout::prepare`], what the pipeline
//!   does first), and the response with every output ([`encode_response`]).
//! - `codec/oip_one_row_binary`: the same with binary inputs and outputs.
//!
//! Quote the OIP figures as ratios to `v1_one_transaction` from the same run.

use criterion::{Criterion, criterion_group, criterion_main};
use modelwatch_runtime::ModelCard;
use modelwatch_server::api::{Prediction, TransactionIn};
use modelwatch_server::features::FeatureLayout;
use modelwatch_server::oip::{
    Output, decode_infer, encode_response, inputs_of, rows_from_tensors, select_outputs,
};
use std::hint::black_box;

const V1: &[u8] = br#"{"customer_id":"C000123","terminal_id":"T00042","amount":57.30}"#;
const OIP_JSON: &[u8] = br#"{"inputs":[{"name":"amount","datatype":"FP64","shape":[1],"data":[57.30]},{"name":"customer_id","datatype":"BYTES","shape":[1],"data":["C000123"]},{"name":"terminal_id","datatype":"BYTES","shape":[1],"data":["T00042"]}]}"#;

fn prediction() -> Prediction {
    Prediction {
        prediction_id: "047842b2ecd4-0000000001".into(),
        transaction_id: None,
        id: None,
        score: Some(0.0027),
        value: None,
        decision: Some("approved".into()),
        model: "fraud".into(),
        version: "1.0.0".into(),
    }
}

fn oip_binary() -> (String, Vec<u8>) {
    let mut binary = 57.3f64.to_le_bytes().to_vec();
    for id in ["C000123", "T00042"] {
        binary.extend_from_slice(&(id.len() as u32).to_le_bytes());
        binary.extend_from_slice(id.as_bytes());
    }
    let header = r#"{"inputs":[{"name":"amount","datatype":"FP64","shape":[1],"parameters":{"binary_data_size":8}},{"name":"customer_id","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":11}},{"name":"terminal_id","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":10}}],"parameters":{"binary_data_output":true}}"#;
    let mut body = header.as_bytes().to_vec();
    body.extend_from_slice(&binary);
    (header.len().to_string(), body)
}

fn oip(
    header_length: Option<&[u8]>,
    body: &[u8],
    p: &Prediction,
    card: &ModelCard,
    layout: &FeatureLayout,
) -> usize {
    let request = decode_infer(header_length, body).expect("decodes");
    let rows = rows_from_tensors(&inputs_of(card), &request.inputs, 8, || 0).expect("maps");
    let tx: usize = rows
        .iter()
        .map(|r| layout.prepare(r, "", "", 0).expect("valid").entities.len())
        .sum();
    let outputs = select_outputs(&request, Output::of(card)).expect("outputs");
    let encoded = encode_response(
        "fraud",
        "1.0.0",
        request.id.as_deref(),
        std::slice::from_ref(p),
        &outputs,
    );
    encoded.body.len() + tx
}

fn codec(c: &mut Criterion) {
    let p = prediction();
    let card = ModelCard::from_json_str(modelwatch_server::load::bundled::CARD).expect("card");
    let layout = FeatureLayout::from_card(&card).expect("layout");
    let mut group = c.benchmark_group("codec");
    group.bench_function("v1_one_transaction", |b| {
        b.iter(|| {
            let t: TransactionIn = serde_json::from_slice(black_box(V1)).expect("parses");
            let tx = t.validate("", 0).expect("valid");
            serde_json::to_vec(&p).expect("serialises").len() + tx.customer_id.len()
        })
    });
    group.bench_function("oip_one_row_json", |b| {
        b.iter(|| oip(None, black_box(OIP_JSON), &p, &card, &layout))
    });
    let (length, body) = oip_binary();
    group.bench_function("oip_one_row_binary", |b| {
        b.iter(|| {
            oip(
                Some(length.as_bytes()),
                black_box(&body),
                &p,
                &card,
                &layout,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
