//! Module implementing the Open Inference Protocol (KServe v2) over REST: its messages,
//! the decoding of an infer request (JSON tensors and the binary tensor extension),
//! the mapping of tensors onto request rows and the encoding of the response. See
//! [`decode_infer`], [`rows_from_tensors`] and [`encode_response`] for details; the
//! endpoints are in [`routes`].
//!
//! Nothing here knows a model: the input tensors are the card's request fields
//! ([`inputs_of`]), the outputs follow its task ([`Output::of`]), and each tensor row
//! becomes a [`RequestFields`] row of the generic pipeline ([`crate::predict_fields`]).
//!
//! The decoder trusts nothing it is sent: every shape product and byte count is
//! checked arithmetic, nothing is allocated from a declared size (only from bytes that
//! are really in the body), and every refusal is an [`OipError`] that names the
//! tensor and what is wrong with it.

mod json;
mod routes;

pub use routes::routes;

use crate::api::Prediction;
use crate::error::ApiError;
use crate::features::{FieldValue, RequestFields};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use json::{Map, Value};
use modelwatch_runtime::ModelCard;
use modelwatch_runtime::card::{FieldKind, Task};
use serde::Serialize;
use std::fmt;

/// The header that gives the length of the JSON part of a body that carries binary
/// tensors after it.
pub const HEADER_LENGTH_HEADER: &str = "inference-header-content-length";
/// Input and response-output parameter: the tensor's byte count in the binary part.
pub const BINARY_DATA_SIZE: &str = "binary_data_size";
/// Requested-output parameter: return this output as binary data.
pub const BINARY_DATA: &str = "binary_data";
/// Request parameter: return every output as binary data unless the output says not.
pub const BINARY_DATA_OUTPUT: &str = "binary_data_output";
/// The extension named in the server metadata.
pub const BINARY_TENSOR_EXTENSION: &str = "binary_tensor_data";

/// A tensor element type of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    /// `BOOL`
    Bool,
    /// `UINT8`
    Uint8,
    /// `UINT16`
    Uint16,
    /// `UINT32`
    Uint32,
    /// `UINT64`
    Uint64,
    /// `INT8`
    Int8,
    /// `INT16`
    Int16,
    /// `INT32`
    Int32,
    /// `INT64`
    Int64,
    /// `FP16`
    Fp16,
    /// `FP32`
    Fp32,
    /// `FP64`
    Fp64,
    /// `BYTES`: strings or opaque bytes.
    Bytes,
}

impl Datatype {
    const ALL: [Datatype; 13] = [
        Datatype::Bool,
        Datatype::Uint8,
        Datatype::Uint16,
        Datatype::Uint32,
        Datatype::Uint64,
        Datatype::Int8,
        Datatype::Int16,
        Datatype::Int32,
        Datatype::Int64,
        Datatype::Fp16,
        Datatype::Fp32,
        Datatype::Fp64,
        Datatype::Bytes,
    ];

    /// The datatypes this server decodes; the others are refused by name.
    pub const DECODED: [Datatype; 5] = [
        Datatype::Fp32,
        Datatype::Fp64,
        Datatype::Int32,
        Datatype::Int64,
        Datatype::Bytes,
    ];

    /// The protocol's spelling (`FP32`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp16 => "FP16",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }

    /// Parses the protocol's spelling (case-sensitive, as the protocol says).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == text)
    }

    /// Bytes per element in binary data; `None` for `BYTES` (length-prefixed).
    const fn width(self) -> Option<usize> {
        match self {
            Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => Some(1),
            Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 => Some(2),
            Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => Some(4),
            Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => Some(8),
            Datatype::Bytes => None,
        }
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Datatype {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The decoded elements of one tensor, flat, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// `FP32`
    Fp32(Vec<f32>),
    /// `FP64`
    Fp64(Vec<f64>),
    /// `INT32`
    Int32(Vec<i32>),
    /// `INT64`
    Int64(Vec<i64>),
    /// `BYTES`
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    /// Whether there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Bytes(_) => Datatype::Bytes,
        }
    }

    /// Element `i` as a number (`None` for `BYTES` or past the end).
    fn number(&self, i: usize) -> Option<f64> {
        match self {
            TensorData::Fp32(v) => v.get(i).map(|x| f64::from(*x)),
            TensorData::Fp64(v) => v.get(i).copied(),
            TensorData::Int32(v) => v.get(i).map(|x| f64::from(*x)),
            // Exact up to 2^53, which no feature value or time needs.
            TensorData::Int64(v) => v.get(i).map(|x| *x as f64),
            TensorData::Bytes(_) => None,
        }
    }

    /// Element `i` as bytes (`None` unless `BYTES`).
    fn bytes(&self, i: usize) -> Option<&[u8]> {
        match self {
            TensorData::Bytes(v) => v.get(i).map(Vec::as_slice),
            _ => None,
        }
    }
}

/// One input tensor of an infer request, decoded and checked against its own shape.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    /// The tensor's name.
    pub name: String,
    /// Its shape; the product of the dimensions is the number of elements.
    pub shape: Vec<u64>,
    /// Its elements.
    pub data: TensorData,
}

/// An output the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    /// The output's name.
    pub name: String,
    /// Its `binary_data` parameter, when given.
    pub binary: Option<bool>,
}

/// A decoded infer request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    /// The request's `id`, echoed in the response.
    pub id: Option<String>,
    /// The input tensors, in request order.
    pub inputs: Vec<InputTensor>,
    /// The requested outputs; `None` means every output.
    pub outputs: Option<Vec<RequestedOutput>>,
    /// The request's `binary_data_output` parameter.
    pub binary_data_output: bool,
}

/// What is wrong with one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorProblem {
    /// The model has no input of that name.
    UnknownName {
        /// The names it has.
        expected: Vec<String>,
    },
    /// A required input is not in the request.
    Missing,
    /// The input appears twice.
    Duplicate,
    /// A field of the tensor is missing or of the wrong JSON type.
    MissingField {
        /// The field (`shape`, `datatype`).
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The datatype is not one of the protocol's.
    UnknownDatatype(String),
    /// The datatype is the protocol's but not accepted here.
    UnsupportedDatatype {
        /// What was sent.
        given: Datatype,
        /// What is accepted.
        accepted: Vec<Datatype>,
    },
    /// A dimension is not a non-negative integer.
    InvalidDimension {
        /// Its position in the shape.
        index: usize,
        /// What it was, as sent.
        value: String,
    },
    /// The product of the dimensions (or the byte count) does not fit in 64 bits.
    ShapeOverflow {
        /// The shape as sent.
        shape: Vec<u64>,
    },
    /// The shape is valid but not one this input takes.
    WrongShape {
        /// The shape as sent.
        shape: Vec<u64>,
        /// What it should look like.
        expected: &'static str,
    },
    /// The tensor's row count differs from the first input's.
    RowCount {
        /// This tensor's rows.
        rows: u64,
        /// The first input's rows.
        expected: u64,
        /// The first input's name.
        first: String,
    },
    /// The number of elements in `data` differs from the shape's.
    DataLength {
        /// Elements the shape declares.
        declared: u64,
        /// Elements present.
        given: usize,
    },
    /// One element cannot be read as the datatype.
    InvalidElement {
        /// The element's flat index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Neither `data` nor `binary_data_size`.
    NoData,
    /// Both `data` and `binary_data_size`.
    DataAndBinary,
    /// `binary_data_size` without an `Inference-Header-Content-Length` header.
    BinaryWithoutHeader,
    /// `binary_data_size` differs from what the shape and datatype need.
    BinarySize {
        /// The parameter's value.
        declared: u64,
        /// Bytes the shape and datatype need.
        expected: u64,
    },
    /// `binary_data_size` reaches past the end of the body.
    BinaryPastBody {
        /// The parameter's value.
        declared: u64,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// A parameter has the wrong type or value.
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A row's value is refused by the request's validation.
    InvalidValue {
        /// The row.
        row: usize,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for TensorProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorProblem::UnknownName { expected } => {
                write!(f, "no such input; the model takes {}", expected.join(", "))
            }
            TensorProblem::Missing => f.write_str("is required and missing from the request"),
            TensorProblem::Duplicate => f.write_str("is given more than once"),
            TensorProblem::MissingField { field, expected } => {
                write!(f, "has no {field:?} field ({expected})")
            }
            TensorProblem::UnknownDatatype(d) => write!(f, "unknown datatype {d:?}"),
            TensorProblem::UnsupportedDatatype { given, accepted } => write!(
                f,
                "datatype {given} is not accepted; use {}",
                join(accepted)
            ),
            TensorProblem::InvalidDimension { index, value } => write!(
                f,
                "shape dimension {index} is {value}; dimensions are non-negative integers"
            ),
            TensorProblem::ShapeOverflow { shape } => {
                write!(f, "shape {shape:?} is too large (its size overflows)")
            }
            TensorProblem::WrongShape { shape, expected } => {
                write!(f, "shape {shape:?} is not {expected}")
            }
            TensorProblem::RowCount {
                rows,
                expected,
                first,
            } => write!(
                f,
                "has {rows} rows but input {first:?} has {expected}; every input needs one value per row"
            ),
            TensorProblem::DataLength { declared, given } => {
                write!(f, "shape holds {declared} elements but data has {given}")
            }
            TensorProblem::InvalidElement { index, reason } => {
                write!(f, "element {index}: {reason}")
            }
            TensorProblem::NoData => {
                write!(
                    f,
                    "has neither \"data\" nor a {BINARY_DATA_SIZE:?} parameter"
                )
            }
            TensorProblem::DataAndBinary => {
                write!(f, "has both \"data\" and a {BINARY_DATA_SIZE:?} parameter")
            }
            TensorProblem::BinaryWithoutHeader => write!(
                f,
                "has a {BINARY_DATA_SIZE:?} parameter but the request has no Inference-Header-Content-Length header"
            ),
            TensorProblem::BinarySize { declared, expected } => write!(
                f,
                "{BINARY_DATA_SIZE} is {declared} bytes but its shape and datatype need {expected}"
            ),
            TensorProblem::BinaryPastBody {
                declared,
                remaining,
            } => write!(
                f,
                "{BINARY_DATA_SIZE} is {declared} bytes but only {remaining} are left in the body"
            ),
            TensorProblem::InvalidParameter { name, reason } => {
                write!(f, "parameter {name:?} {reason}")
            }
            TensorProblem::InvalidValue { row, reason } => write!(f, "row {row}: {reason}"),
        }
    }
}

fn join(datatypes: &[Datatype]) -> String {
    datatypes
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything an OIP request can end in other than an answer. Each becomes the
/// protocol's error body, `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum OipError {
    /// No model of that name.
    #[error("unknown model {given:?}; this server serves {}", available.join(", "))]
    UnknownModel {
        /// The name in the path.
        given: String,
        /// The models served.
        available: Vec<String>,
    },
    /// The model has no such version.
    #[error("model {model:?} has no version {given:?}; its versions: {}", available.join(", "))]
    UnknownVersion {
        /// The model.
        model: String,
        /// The version in the path.
        given: String,
        /// The versions served.
        available: Vec<String>,
    },
    /// `Inference-Header-Content-Length` is not a byte count.
    #[error("Inference-Header-Content-Length {0}")]
    InvalidHeaderLength(String),
    /// `Inference-Header-Content-Length` is longer than the body.
    #[error(
        "Inference-Header-Content-Length is {header_length} but the body has only {body_length} bytes"
    )]
    HeaderPastBody {
        /// The header's value.
        header_length: u64,
        /// The body's length.
        body_length: usize,
    },
    /// The JSON part does not parse, or is not an infer request.
    #[error("the inference request is not valid JSON: {0}")]
    InvalidJson(String),
    /// A request-level field is wrong.
    #[error("{0}")]
    InvalidRequest(String),
    /// One input tensor is wrong.
    #[error("input {tensor:?}: {problem}")]
    InvalidInput {
        /// The tensor's name (or its position when it has no name).
        tensor: String,
        /// What is wrong.
        problem: TensorProblem,
    },
    /// A requested output does not exist.
    #[error("output {name:?}: no such output; the model returns {}", expected.join(", "))]
    UnknownOutput {
        /// The name asked for.
        name: String,
        /// The outputs there are.
        expected: Vec<String>,
    },
    /// A requested output's parameter is wrong.
    #[error("output {name:?}: parameter {parameter:?} {reason}")]
    InvalidOutputParameter {
        /// The output.
        name: String,
        /// The parameter.
        parameter: &'static str,
        /// Why.
        reason: String,
    },
    /// Bytes left over after the last binary tensor.
    #[error(
        "{count} bytes follow the last binary tensor; the {BINARY_DATA_SIZE} parameters must add up to the binary part"
    )]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A compressed body (`Content-Encoding`), which this server does not read.
    #[error("Content-Encoding {0:?} is not supported; send the body uncompressed")]
    UnsupportedEncoding(String),
    /// An error of the prediction pipeline (or a body or batch limit).
    #[error("{0}")]
    Pipeline(#[from] ApiError),
}

impl OipError {
    fn input(tensor: impl Into<String>, problem: TensorProblem) -> Self {
        OipError::InvalidInput {
            tensor: tensor.into(),
            problem,
        }
    }

    /// The HTTP status code.
    pub fn http_status(&self) -> StatusCode {
        match self {
            OipError::UnknownModel { .. } | OipError::UnknownVersion { .. } => {
                StatusCode::NOT_FOUND
            }
            OipError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OipError::Pipeline(e) => e.http_status(),
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The `status` label a refused infer request is counted under; `None` when it
    /// is not counted (it named no model served here).
    pub fn status(&self) -> Option<modelwatch::Status> {
        match self {
            OipError::UnknownModel { .. } | OipError::UnknownVersion { .. } => None,
            OipError::Pipeline(e) => Some(e.status()),
            _ => Some(modelwatch::Status::Rejected),
        }
    }
}

impl IntoResponse for OipError {
    fn into_response(self) -> Response {
        if let OipError::Pipeline(ApiError::Internal(detail)) = &self {
            tracing::error!(%detail, "internal error while serving an OIP infer request");
        }
        let body = serde_json::json!({"error": self.to_string()});
        let mut response = (self.http_status(), Json(body)).into_response();
        if matches!(self, OipError::Pipeline(ApiError::Overloaded)) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// Decodes an infer request: `body` is JSON, or, when `header_length` (the raw value
/// of `Inference-Header-Content-Length`) is given, that many bytes of JSON followed
/// by the binary tensors in input order.
pub fn decode_infer(header_length: Option<&[u8]>, body: &[u8]) -> Result<InferRequest, OipError> {
    let (json, mut binary) = match header_length {
        None => (body, None),
        Some(raw) => {
            let length = parse_header_length(raw)?;
            let split = usize::try_from(length)
                .ok()
                .filter(|l| *l <= body.len())
                .ok_or(OipError::HeaderPastBody {
                    header_length: length,
                    body_length: body.len(),
                })?;
            let (json, rest) = body.split_at(split);
            (json, Some(rest))
        }
    };
    let request: Value =
        serde_json::from_slice(json).map_err(|e| OipError::InvalidJson(e.to_string()))?;
    let Value::Object(request) = request else {
        return Err(OipError::InvalidJson(format!(
            "expected an object, got {}",
            kind(&request)
        )));
    };

    let id = match request.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.to_string()),
        Some(other) => {
            return Err(OipError::InvalidRequest(format!(
                "\"id\" must be a string, not {}",
                kind(other)
            )));
        }
    };
    let binary_data_output = match parameters(request.get("parameters"))
        .map_err(|reason| OipError::InvalidRequest(format!("\"parameters\" {reason}")))?
        .and_then(|p| p.get(BINARY_DATA_OUTPUT))
    {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(OipError::InvalidRequest(format!(
                "parameter {BINARY_DATA_OUTPUT:?} must be a boolean, not {}",
                kind(other)
            )));
        }
    };

    let Some(Value::Array(raw_inputs)) = request.get("inputs") else {
        return Err(OipError::InvalidRequest(
            "\"inputs\" must be an array of input tensors".into(),
        ));
    };
    let mut inputs = Vec::with_capacity(raw_inputs.len().min(64));
    for (position, raw) in raw_inputs.iter().enumerate() {
        inputs.push(decode_input(position, raw, &mut binary)?);
    }
    if let Some(rest) = binary
        && !rest.is_empty()
    {
        return Err(OipError::TrailingBytes { count: rest.len() });
    }

    let outputs = match request.get("outputs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(raw)) => Some(
            raw.iter()
                .enumerate()
                .map(|(i, o)| decode_output(i, o))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => {
            return Err(OipError::InvalidRequest(format!(
                "\"outputs\" must be an array, not {}",
                kind(other)
            )));
        }
    };
    Ok(InferRequest {
        id,
        inputs,
        outputs,
        binary_data_output,
    })
}

fn parse_header_length(raw: &[u8]) -> Result<u64, OipError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| OipError::InvalidHeaderLength("is not ASCII".into()))?
        .trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OipError::InvalidHeaderLength(format!(
            "is {text:?}; it must be the JSON part's length in bytes"
        )));
    }
    text.parse::<u64>()
        .map_err(|_| OipError::InvalidHeaderLength(format!("{text:?} is out of range")))
}

/// The parameters object, if any; `Err` when it is not an object.
fn parameters<'v, 'a>(value: Option<&'v Value<'a>>) -> Result<Option<&'v Map<'a>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(format!("must be an object, not {}", kind(other))),
    }
}

fn kind(value: &Value<'_>) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn decode_input(
    position: usize,
    raw: &Value<'_>,
    binary: &mut Option<&[u8]>,
) -> Result<InputTensor, OipError> {
    let Value::Object(input) = raw else {
        return Err(OipError::InvalidRequest(format!(
            "inputs[{position}] must be an object, not {}",
            kind(raw)
        )));
    };
    let name = match input.get("name") {
        Some(Value::String(name)) => name.to_string(),
        _ => {
            return Err(OipError::InvalidRequest(format!(
                "inputs[{position}] has no \"name\" string"
            )));
        }
    };
    let fail = |problem| Err(OipError::input(name.clone(), problem));

    let datatype = match input.get("datatype") {
        Some(Value::String(text)) => match Datatype::parse(text) {
            Some(d) if Datatype::DECODED.contains(&d) => d,
            Some(d) => {
                return fail(TensorProblem::UnsupportedDatatype {
                    given: d,
                    accepted: Datatype::DECODED.to_vec(),
                });
            }
            None => return fail(TensorProblem::UnknownDatatype(text.to_string())),
        },
        _ => {
            return fail(TensorProblem::MissingField {
                field: "datatype",
                expected: "a string",
            });
        }
    };

    let Some(Value::Array(raw_shape)) = input.get("shape") else {
        return fail(TensorProblem::MissingField {
            field: "shape",
            expected: "an array of dimensions",
        });
    };
    let mut shape = Vec::with_capacity(raw_shape.len().min(8));
    for (index, dim) in raw_shape.iter().enumerate() {
        match dim.as_u64() {
            Some(d) => shape.push(d),
            None => {
                return fail(TensorProblem::InvalidDimension {
                    index,
                    value: dim.to_string(),
                });
            }
        }
    }
    let Some(elements) = shape.iter().try_fold(1u64, |n, d| n.checked_mul(*d)) else {
        return fail(TensorProblem::ShapeOverflow { shape });
    };

    let binary_size = match parameters(input.get("parameters")) {
        Err(reason) => {
            return fail(TensorProblem::InvalidParameter {
                name: "parameters",
                reason,
            });
        }
        Ok(params) => match params.and_then(|p| p.get(BINARY_DATA_SIZE)) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(size) => Some(size),
                None => {
                    return fail(TensorProblem::InvalidParameter {
                        name: BINARY_DATA_SIZE,
                        reason: format!("must be a non-negative integer, not {v}"),
                    });
                }
            },
        },
    };
    let data = input.get("data").filter(|d| !d.is_null());

    let data = match (data, binary_size) {
        (Some(_), Some(_)) => return fail(TensorProblem::DataAndBinary),
        (None, None) => return fail(TensorProblem::NoData),
        (Some(json), None) => decode_json_data(datatype, elements, json),
        (None, Some(declared)) => {
            let Some(rest) = binary.as_mut() else {
                return fail(TensorProblem::BinaryWithoutHeader);
            };
            let size = usize::try_from(declared)
                .ok()
                .filter(|s| *s <= rest.len())
                .ok_or(TensorProblem::BinaryPastBody {
                    declared,
                    remaining: rest.len(),
                });
            match size {
                Err(problem) => Err(problem),
                Ok(size) => {
                    let (bytes, tail) = rest.split_at(size);
                    *rest = tail;
                    decode_binary_data(datatype, &shape, elements, bytes)
                }
            }
        }
    };
    match data {
        Ok(data) => Ok(InputTensor { name, shape, data }),
        Err(problem) => fail(problem),
    }
}

/// The elements of a JSON `data` array, flat or nested (row-major either way).
fn decode_json_data(
    datatype: Datatype,
    declared: u64,
    data: &Value<'_>,
) -> Result<TensorData, TensorProblem> {
    let mut leaves = Vec::new();
    // serde_json refuses documents nested deeper than 128, so this recursion is
    // bounded; it stops collecting once past the declared count.
    fn walk<'v, 'a>(v: &'v Value<'a>, out: &mut Vec<&'v Value<'a>>, cap: usize) {
        match v {
            Value::Array(items) => {
                for item in items {
                    if out.len() > cap {
                        return;
                    }
                    walk(item, out, cap);
                }
            }
            leaf => out.push(leaf),
        }
    }
    let cap = usize::try_from(declared).unwrap_or(usize::MAX);
    walk(data, &mut leaves, cap);
    if u64::try_from(leaves.len()).ok() != Some(declared) {
        return Err(TensorProblem::DataLength {
            declared,
            given: leaves.len(),
        });
    }
    let element = |index: usize, reason: String| TensorProblem::InvalidElement { index, reason };
    let number = |i: usize, v: &Value<'_>| {
        v.as_f64()
            .ok_or_else(|| element(i, format!("expected a number, got {}", kind(v))))
    };
    let integer = |i: usize, v: &Value<'_>| {
        v.as_i64()
            .ok_or_else(|| element(i, format!("expected an integer, got {v}")))
    };
    Ok(match datatype {
        Datatype::Fp32 => TensorData::Fp32(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let x = number(i, v)?;
                    let narrow = x as f32;
                    if narrow.is_finite() {
                        Ok(narrow)
                    } else {
                        Err(element(i, format!("{x} is out of the FP32 range")))
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Fp64 => TensorData::Fp64(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| number(i, v))
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Int32 => TensorData::Int32(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let x = integer(i, v)?;
                    i32::try_from(x)
                        .map_err(|_| element(i, format!("{x} is out of the INT32 range")))
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Int64 => TensorData::Int64(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| integer(i, v))
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Bytes => TensorData::Bytes(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.as_bytes().to_vec()),
                    other => Err(element(
                        i,
                        format!("expected a string, got {}", kind(other)),
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        // Refused before the data is read.
        _ => {
            return Err(TensorProblem::UnsupportedDatatype {
                given: datatype,
                accepted: Datatype::DECODED.to_vec(),
            });
        }
    })
}

/// The elements of one tensor's binary data: little-endian, row-major, no padding;
/// `BYTES` elements are each a 4-byte little-endian length and that many bytes.
fn decode_binary_data(
    datatype: Datatype,
    shape: &[u64],
    declared: u64,
    bytes: &[u8],
) -> Result<TensorData, TensorProblem> {
    let size = bytes.len() as u64;
    let Some(width) = datatype.width() else {
        return decode_binary_strings(declared, bytes).map(TensorData::Bytes);
    };
    let expected =
        declared
            .checked_mul(width as u64)
            .ok_or_else(|| TensorProblem::ShapeOverflow {
                shape: shape.to_vec(),
            })?;
    if expected != size {
        return Err(TensorProblem::BinarySize {
            declared: size,
            expected,
        });
    }
    Ok(match datatype {
        Datatype::Fp32 => TensorData::Fp32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Datatype::Fp64 => TensorData::Fp64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        Datatype::Int32 => TensorData::Int32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Datatype::Int64 => TensorData::Int64(
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        _ => {
            return Err(TensorProblem::UnsupportedDatatype {
                given: datatype,
                accepted: Datatype::DECODED.to_vec(),
            });
        }
    })
}

fn decode_binary_strings(declared: u64, mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, TensorProblem> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while !bytes.is_empty() {
        let index = out.len();
        if out.len() as u64 >= declared {
            return Err(TensorProblem::InvalidElement {
                index,
                reason: format!(
                    "the binary data holds more than the {declared} elements of the shape ({} bytes left at byte {offset})",
                    bytes.len()
                ),
            });
        }
        let Some((prefix, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(TensorProblem::InvalidElement {
                index,
                reason: format!(
                    "truncated length prefix at byte {offset} ({} of 4 bytes)",
                    bytes.len()
                ),
            });
        };
        let length = u32::from_le_bytes(*prefix) as usize;
        if length > rest.len() {
            return Err(TensorProblem::InvalidElement {
                index,
                reason: format!(
                    "declares {length} bytes at byte {offset} but only {} are left",
                    rest.len()
                ),
            });
        }
        let (element, rest) = rest.split_at(length);
        out.push(element.to_vec());
        bytes = rest;
        offset += 4 + length;
    }
    if out.len() as u64 != declared {
        return Err(TensorProblem::DataLength {
            declared,
            given: out.len(),
        });
    }
    Ok(out)
}

fn decode_output(position: usize, raw: &Value<'_>) -> Result<RequestedOutput, OipError> {
    let Value::Object(output) = raw else {
        return Err(OipError::InvalidRequest(format!(
            "outputs[{position}] must be an object, not {}",
            kind(raw)
        )));
    };
    let Some(Value::String(name)) = output.get("name") else {
        return Err(OipError::InvalidRequest(format!(
            "outputs[{position}] has no \"name\" string"
        )));
    };
    let invalid = |parameter, reason| OipError::InvalidOutputParameter {
        name: name.to_string(),
        parameter,
        reason,
    };
    let params = parameters(output.get("parameters")).map_err(|r| invalid("parameters", r))?;
    let binary = match params.and_then(|p| p.get(BINARY_DATA)) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(invalid(
                BINARY_DATA,
                format!("must be a boolean, not {}", kind(other)),
            ));
        }
    };
    Ok(RequestedOutput {
        name: name.to_string(),
        binary,
    })
}

/// One input tensor the served model takes: a request field of its card
/// ([`ModelCard::request_fields`]), one tensor row per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpec<'a> {
    /// The tensor's name: the request field it fills.
    pub name: &'a str,
    /// What the field carries, which gives the datatypes it accepts.
    pub kind: FieldKind,
    /// Whether a request must carry it: some feature that reads it is not nullable
    /// (for an entity key: some feature of a group it keys). A required time input
    /// may still be left out; see [`rows_from_tensors`].
    pub required: bool,
}

const NUMBERS: &[Datatype] = &[
    Datatype::Fp32,
    Datatype::Fp64,
    Datatype::Int32,
    Datatype::Int64,
];
const TIMES: &[Datatype] = &[Datatype::Bytes, Datatype::Int64];
const STRINGS: &[Datatype] = &[Datatype::Bytes];

impl InputSpec<'_> {
    /// The datatype the model metadata advertises: `FP32` for a number (the model's
    /// own input type, so `FP64` gives the same score), `BYTES` for a time (RFC 3339)
    /// and an entity id.
    pub const fn datatype(&self) -> Datatype {
        match self.kind {
            FieldKind::Number => Datatype::Fp32,
            FieldKind::Time | FieldKind::EntityKey => Datatype::Bytes,
        }
    }

    /// Every datatype accepted: any number type for a number, `BYTES` (RFC 3339) or
    /// `INT64` (Unix seconds) for a time, `BYTES` (UTF-8) for an entity id.
    pub const fn accepted(&self) -> &'static [Datatype] {
        match self.kind {
            FieldKind::Number => NUMBERS,
            FieldKind::Time => TIMES,
            FieldKind::EntityKey => STRINGS,
        }
    }
}

/// The inputs of the model `card` describes, in the card's order (the order of
/// [`ModelCard::request_fields`]). The fraud card's: `amount`, `timestamp`,
/// `customer_id`, `terminal_id`.
pub fn inputs_of(card: &ModelCard) -> Vec<InputSpec<'_>> {
    card.request_fields()
        .into_iter()
        .map(|(name, kind)| {
            let required = match kind {
                FieldKind::Number | FieldKind::Time => card
                    .features
                    .iter()
                    .any(|f| f.field.as_deref() == Some(name) && !f.nullable),
                FieldKind::EntityKey => card.groups.iter().any(|(group, spec)| {
                    spec.entity_key.as_deref() == Some(name)
                        && card
                            .features
                            .iter()
                            .any(|f| &f.group == group && !f.nullable)
                }),
            };
            InputSpec {
                name,
                kind,
                required,
            }
        })
        .collect()
}

/// One output of the served model; each has one element per row, shape `[N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `score`, FP32: a classifier's positive-class probability, as `/v1` returns it.
    Score,
    /// `value`, FP32: a regressor's predicted value, as `/v1` returns it.
    Value,
    /// `decision`, BYTES: the card's decision for the score (`approved`, `declined`).
    Decision,
    /// `prediction_id`, BYTES: the id to post the delayed label with.
    PredictionId,
}

impl Output {
    /// Every output of a binary classifier, in the order the response lists them by
    /// default.
    pub const CLASSIFIER: &[Output] = &[Output::Score, Output::Decision, Output::PredictionId];
    /// Every output of a regressor: no score and no decision.
    pub const REGRESSOR: &[Output] = &[Output::Value, Output::PredictionId];

    /// The outputs of the model `card` describes, by its task.
    pub fn of(card: &ModelCard) -> &'static [Output] {
        match card.task {
            Task::BinaryClassification { .. } => Self::CLASSIFIER,
            Task::Regression => Self::REGRESSOR,
        }
    }

    /// The tensor's name.
    pub const fn name(self) -> &'static str {
        match self {
            Output::Score => "score",
            Output::Value => "value",
            Output::Decision => "decision",
            Output::PredictionId => "prediction_id",
        }
    }

    /// The tensor's datatype.
    pub const fn datatype(self) -> Datatype {
        match self {
            Output::Score | Output::Value => Datatype::Fp32,
            Output::Decision | Output::PredictionId => Datatype::Bytes,
        }
    }
}

/// What `[N]` or `[N, 1]` means in a shape error.
const ROW_SHAPES: &str = "[N] or [N, 1] (one value per row)";

/// The `prefix` [`crate::predict_fields`] is given for infer rows, so that
/// [`pipeline_error`] can tell the tensor and row of a refused value.
pub const ROWS_PREFIX: &str = "inputs";

/// Turns the request's input tensors into request rows for the model whose inputs
/// are `specs` ([`inputs_of`]): tensor row `i` of every input is row `i`'s field of
/// the same name (a number, a time as RFC 3339 text or Unix seconds, an entity id).
/// The rows are then checked and scored exactly like the rows of
/// `/v1/models/{model}/predict/batch`.
///
/// A required time input that is left out is the request's arrival time, `now()`
/// (read once), as `/v1/predict` dates a transaction without a timestamp; an
/// optional input that is left out is missing in every row.
///
/// Refuses unknown, duplicate and (other) missing required inputs, datatypes an
/// input does not accept, shapes other than `[N]` or `[N, 1]`, inputs with different
/// row counts, no rows, more than `max_rows` rows, and `BYTES` that are not UTF-8.
pub fn rows_from_tensors(
    specs: &[InputSpec<'_>],
    inputs: &[InputTensor],
    max_rows: usize,
    now: impl FnOnce() -> i64,
) -> Result<Vec<RequestFields>, OipError> {
    let mut by_spec: Vec<Option<&InputTensor>> = vec![None; specs.len()];
    let mut rows: Option<(u64, &str)> = None;
    for tensor in inputs {
        let Some(slot) = specs.iter().position(|s| s.name == tensor.name) else {
            return Err(OipError::input(
                &tensor.name,
                TensorProblem::UnknownName {
                    expected: specs.iter().map(|s| s.name.to_string()).collect(),
                },
            ));
        };
        let spec = &specs[slot];
        if by_spec[slot].replace(tensor).is_some() {
            return Err(OipError::input(&tensor.name, TensorProblem::Duplicate));
        }
        let datatype = tensor.data.datatype();
        if !spec.accepted().contains(&datatype) {
            return Err(OipError::input(
                &tensor.name,
                TensorProblem::UnsupportedDatatype {
                    given: datatype,
                    accepted: spec.accepted().to_vec(),
                },
            ));
        }
        let n = match tensor.shape.as_slice() {
            [n] | [n, 1] => *n,
            _ => {
                return Err(OipError::input(
                    &tensor.name,
                    TensorProblem::WrongShape {
                        shape: tensor.shape.clone(),
                        expected: ROW_SHAPES,
                    },
                ));
            }
        };
        match rows {
            None => rows = Some((n, &tensor.name)),
            Some((expected, first)) if expected != n => {
                return Err(OipError::input(
                    &tensor.name,
                    TensorProblem::RowCount {
                        rows: n,
                        expected,
                        first: first.to_string(),
                    },
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(spec) = specs.iter().zip(&by_spec).find_map(|(spec, t)| {
        (spec.required && spec.kind != FieldKind::Time && t.is_none()).then_some(spec)
    }) {
        return Err(OipError::input(spec.name, TensorProblem::Missing));
    }
    let n = rows.map_or(0, |(n, _)| n);
    if n == 0 {
        return Err(OipError::InvalidRequest(
            "the inputs hold no row; send at least one".into(),
        ));
    }
    if n > max_rows as u64 {
        return Err(ApiError::BatchTooLarge {
            given: usize::try_from(n).unwrap_or(usize::MAX),
            limit: max_rows,
        }
        .into());
    }
    let arrival = specs
        .iter()
        .zip(&by_spec)
        .any(|(spec, t)| spec.required && t.is_none())
        .then(now);
    (0..n as usize)
        .map(|row| {
            let mut fields = RequestFields::default();
            for (spec, tensor) in specs.iter().zip(&by_spec) {
                // The field's name is allocated only for a value that is there.
                let name = || spec.name.to_owned();
                let Some(tensor) = tensor else {
                    if let Some(now) = arrival.filter(|_| spec.required) {
                        fields
                            .features
                            .insert(name(), FieldValue::Number(now as f64));
                    }
                    continue;
                };
                match (spec.kind, &tensor.data) {
                    (FieldKind::EntityKey, _) => {
                        fields
                            .entities
                            .insert(name(), text(tensor, row)?.to_owned());
                    }
                    (FieldKind::Time, TensorData::Bytes(_)) => {
                        let time = FieldValue::Text(text(tensor, row)?.to_owned());
                        fields.features.insert(name(), time);
                    }
                    // A number, or a time in Unix seconds (exact up to 2^53, far
                    // past any time the pipeline accepts). NaN, which binary data
                    // can carry, is refused by the pipeline as not finite.
                    _ => {
                        let value = tensor.data.number(row).unwrap_or(f64::NAN);
                        fields.features.insert(name(), FieldValue::Number(value));
                    }
                }
            }
            Ok(fields)
        })
        .collect()
}

/// Element `row` of a `BYTES` tensor as text. The datatype and row count are
/// checked by [`rows_from_tensors`], so the element is there.
fn text(tensor: &InputTensor, row: usize) -> Result<&str, OipError> {
    std::str::from_utf8(tensor.data.bytes(row).unwrap_or_default()).map_err(|_| {
        OipError::input(
            &tensor.name,
            TensorProblem::InvalidElement {
                index: row,
                reason: "is not UTF-8 text".into(),
            },
        )
    })
}

/// Renames an error of [`crate::predict_fields`] on the rows of
/// [`rows_from_tensors`] (`inputs[3].features.timestamp: is not RFC 3339`) after the
/// tensor and row it came from (`input "timestamp": row 3: is not RFC 3339`). Other
/// errors (a timeout, an overloaded queue) pass through.
pub fn pipeline_error(error: ApiError) -> OipError {
    match error {
        ApiError::InvalidField { field, reason } => match tensor_and_row(&field) {
            Some((tensor, row)) => {
                OipError::input(tensor, TensorProblem::InvalidValue { row, reason })
            }
            None => ApiError::InvalidField { field, reason }.into(),
        },
        other => other.into(),
    }
}

/// `inputs[3].features.timestamp` or `inputs[3].entities.customer_id`: the field
/// (the tensor's name) and the row.
fn tensor_and_row(field: &str) -> Option<(&str, usize)> {
    let rest = field.strip_prefix(ROWS_PREFIX)?.strip_prefix('[')?;
    let (row, rest) = rest.split_once("].")?;
    let name = rest
        .strip_prefix("features.")
        .or_else(|| rest.strip_prefix("entities."))?;
    Some((name, row.parse().ok()?))
}

/// Which of the model's `available` outputs ([`Output::of`]) to return, each with
/// whether it goes as binary data.
pub fn select_outputs(
    request: &InferRequest,
    available: &[Output],
) -> Result<Vec<(Output, bool)>, OipError> {
    match &request.outputs {
        None => Ok(available
            .iter()
            .map(|o| (*o, request.binary_data_output))
            .collect()),
        Some(wanted) => wanted
            .iter()
            .map(|w| {
                let output = available
                    .iter()
                    .copied()
                    .find(|o| o.name() == w.name)
                    .ok_or_else(|| OipError::UnknownOutput {
                        name: w.name.clone(),
                        expected: available.iter().map(|o| o.name().to_string()).collect(),
                    })?;
                Ok((output, w.binary.unwrap_or(request.binary_data_output)))
            })
            .collect(),
    }
}

/// An encoded infer response.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedResponse {
    /// The body: JSON, then the binary outputs when there are any.
    pub body: Vec<u8>,
    /// The JSON part's length, for `Inference-Header-Content-Length`, when binary
    /// outputs follow it.
    pub header_length: Option<usize>,
}

#[derive(Serialize)]
struct WireResponse<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<WireOutput<'a>>,
}

#[derive(Serialize)]
struct WireOutput<'a> {
    name: &'static str,
    datatype: Datatype,
    shape: [usize; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<WireData<'a>>,
}

#[derive(Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireData<'a> {
    Numbers(Vec<f32>),
    Strings(Vec<&'a str>),
}

/// Encodes the response for `predictions` (one per row, in row order) with the
/// `outputs` chosen by [`select_outputs`].
pub fn encode_response(
    model: &str,
    version: &str,
    id: Option<&str>,
    predictions: &[Prediction],
    outputs: &[(Output, bool)],
) -> EncodedResponse {
    let n = predictions.len();
    let strings = |output: Output| -> Vec<&str> {
        predictions
            .iter()
            .map(|p| match output {
                // A regressor decides nothing: the `decision` label's own word for that.
                Output::Decision => p.decision.as_deref().unwrap_or("none"),
                _ => p.prediction_id.as_str(),
            })
            .collect()
    };
    let mut binary = Vec::new();
    let mut wire = Vec::with_capacity(outputs.len());
    for &(output, as_binary) in outputs {
        // The score or value is the model's f32, widened for /v1; narrowing it back
        // is exact.
        let data = match output {
            Output::Score => WireData::Numbers(
                predictions
                    .iter()
                    .map(|p| p.score.or(p.value).unwrap_or(f64::NAN) as f32)
                    .collect(),
            ),
            Output::Value => WireData::Numbers(
                predictions
                    .iter()
                    .map(|p| p.value.or(p.score).unwrap_or(f64::NAN) as f32)
                    .collect(),
            ),
            Output::Decision | Output::PredictionId => WireData::Strings(strings(output)),
        };
        let (parameters, data) = if as_binary {
            let start = binary.len();
            match &data {
                WireData::Numbers(values) => {
                    values
                        .iter()
                        .for_each(|v| binary.extend_from_slice(&v.to_le_bytes()));
                }
                WireData::Strings(values) => values.iter().for_each(|s| {
                    // Our own strings: ids and decision names, far below 4 GiB.
                    binary.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    binary.extend_from_slice(s.as_bytes());
                }),
            }
            let size = binary.len() - start;
            (
                Some(BinaryParameters {
                    binary_data_size: size,
                }),
                None,
            )
        } else {
            (None, Some(data))
        };
        wire.push(WireOutput {
            name: output.name(),
            datatype: output.datatype(),
            shape: [n],
            parameters,
            data,
        });
    }
    let response = WireResponse {
        model_name: model,
        model_version: version,
        id,
        outputs: wire,
    };
    // Serialising plain structs of strings and finite numbers cannot fail.
    let mut body = serde_json::to_vec(&response).unwrap_or_default();
    if outputs.iter().any(|(_, b)| *b) {
        let header_length = body.len();
        body.extend_from_slice(&binary);
        EncodedResponse {
            body,
            header_length: Some(header_length),
        }
    } else {
        EncodedResponse {
            body,
            header_length: None,
        }
    }
}

#[cfg(test)]
mod tests;
