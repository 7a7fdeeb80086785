//! Module implementing the request and response types of the prediction API and their
//! validation. See [`Transaction`] and [`Prediction`] for details.

use crate::error::ApiError;
use crate::features::{FieldValue, RequestFields};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Longest accepted id (`transaction_id`, `customer_id`, `terminal_id`), in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Largest accepted amount; anything above is a unit mistake, not a transaction.
pub const MAX_AMOUNT: f64 = 1e9;

/// One transaction to score, as posted to `/v1/predict`. Unknown fields are ignored.
///
/// The ids' schema pattern excludes the control characters (Unicode category Cc) that
/// `char::is_control` finds, which is what validation refuses.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TransactionIn {
    /// The caller's id for the transaction, echoed back: 1 to 64 bytes of UTF-8, no
    /// control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$",
        example = "tx-81e2"
    )]
    pub transaction_id: Option<String>,
    /// The card holder: 1 to 64 bytes of UTF-8, no control characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$",
        example = "C000123"
    )]
    pub customer_id: String,
    /// The payment terminal: 1 to 64 bytes of UTF-8, no control characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$",
        example = "T00042"
    )]
    pub terminal_id: String,
    /// Amount in the account currency, from 0 to 1e9.
    #[schema(minimum = 0, maximum = 1e9, example = 42.5)]
    pub amount: f64,
    /// When the transaction happened (RFC 3339); defaults to now.
    #[serde(default)]
    #[schema(format = DateTime, example = "2026-11-24T10:00:00Z")]
    pub timestamp: Option<String>,
}

/// A validated transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// The caller's id, if any.
    pub transaction_id: Option<String>,
    /// The card holder.
    pub customer_id: String,
    /// The payment terminal.
    pub terminal_id: String,
    /// The amount.
    pub amount: f64,
    /// Unix seconds.
    pub timestamp: i64,
}

/// The body of `/v1/predict/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchIn {
    /// The transactions, scored in order: at least one, and at most the server's
    /// `--max-batch-request` (the served document states the configured limit).
    #[schema(min_items = 1)]
    pub transactions: Vec<TransactionIn>,
}

/// The answer for one request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Prediction {
    /// Id of this prediction, for joining a delayed label later.
    pub prediction_id: String,
    /// The caller's transaction id, when one was given (`/v1/predict`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transaction_id: Option<String>,
    /// The caller's id, when one was given (`/v1/models/{model}/predict`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// A binary classifier's score (the fraud model: probability of fraud), in [0, 1].
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(minimum = 0, maximum = 1)]
    pub score: Option<f64>,
    /// A regressor's predicted value.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<f64>,
    /// A binary classifier's decision, named by its card (the fraud model:
    /// `approved` below the threshold, `declined` at or above).
    ///
    /// The names are shared with the model (`Arc<str>`): an answer costs no copy of
    /// them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<String>)]
    pub decision: Option<Arc<str>>,
    /// Model name.
    #[schema(value_type = String)]
    pub model: Arc<str>,
    /// Model version.
    #[schema(value_type = String)]
    pub version: Arc<str>,
}

/// The answer for a batch.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchPrediction {
    /// One prediction per transaction, in request order.
    pub predictions: Vec<Prediction>,
}

fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ApiError::field(
            field,
            format!("is {} bytes; at most {MAX_ID_LEN} are allowed", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl TransactionIn {
    /// Checks every field; `prefix` names the position in a batch (`transactions[3].`).
    pub fn validate(self, prefix: &str, now: i64) -> Result<Transaction, ApiError> {
        let name = |f: &str| format!("{prefix}{f}");
        if let Some(id) = &self.transaction_id {
            check_id(&name("transaction_id"), id)?;
        }
        check_id(&name("customer_id"), &self.customer_id)?;
        check_id(&name("terminal_id"), &self.terminal_id)?;
        if !self.amount.is_finite() {
            return Err(ApiError::field(name("amount"), "must be a finite number"));
        }
        if self.amount < 0.0 {
            return Err(ApiError::field(name("amount"), "must not be negative"));
        }
        if self.amount > MAX_AMOUNT {
            return Err(ApiError::field(
                name("amount"),
                format!("must be at most {MAX_AMOUNT:e}"),
            ));
        }
        let timestamp = match &self.timestamp {
            None => now,
            Some(text) => {
                let parsed = time::OffsetDateTime::parse(
                    text,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| ApiError::field(name("timestamp"), format!("is not RFC 3339: {e}")))?;
                parsed.unix_timestamp()
            }
        };
        Ok(Transaction {
            transaction_id: self.transaction_id,
            customer_id: self.customer_id,
            terminal_id: self.terminal_id,
            amount: self.amount,
            timestamp,
        })
    }
}

impl Transaction {
    /// The transaction as request fields, the default model's view of `/v1/predict`:
    /// features `amount` and `timestamp` (Unix seconds), entities `customer_id` and
    /// `terminal_id`. Returns the transaction id apart.
    pub fn into_fields(self) -> (Option<String>, RequestFields) {
        let mut fields = RequestFields::default();
        fields
            .features
            .insert("amount".into(), FieldValue::Number(self.amount));
        fields.features.insert(
            "timestamp".into(),
            FieldValue::Number(self.timestamp as f64),
        );
        fields
            .entities
            .insert("customer_id".into(), self.customer_id);
        fields
            .entities
            .insert("terminal_id".into(), self.terminal_id);
        (self.transaction_id, fields)
    }
}

/// One request to `/v1/models/{model}/predict`: the card's request fields and entity
/// ids by name.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelRequestIn {
    /// The caller's id, echoed back as `id`: 1 to 64 bytes of UTF-8, no control
    /// characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub id: Option<String>,
    /// Request fields: numbers, and times as RFC 3339 text or Unix seconds. `null`
    /// is missing.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub features: serde_json::Map<String, serde_json::Value>,
    /// Entity ids (strings, or integers) by the request field that keys a store group.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub entities: serde_json::Map<String, serde_json::Value>,
}

/// The body of `/v1/models/{model}/predict/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelBatchIn {
    /// The requests, scored in order: at least one, and at most the server's
    /// `--max-batch-request`.
    #[schema(min_items = 1)]
    pub rows: Vec<ModelRequestIn>,
}

impl ModelRequestIn {
    /// Decodes the body into request fields; `prefix` names the position in a batch
    /// (`rows[3].`).
    ///
    /// # Errors
    /// [`ApiError::InvalidField`] naming a value of the wrong JSON type or a bad id.
    pub fn into_fields(self, prefix: &str) -> Result<(Option<String>, RequestFields), ApiError> {
        if let Some(id) = &self.id {
            check_id(&format!("{prefix}id"), id)?;
        }
        let mut fields = RequestFields::default();
        for (name, value) in self.features {
            let value = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::Number(n) => match n.as_f64() {
                    Some(x) => FieldValue::Number(x),
                    None => {
                        return Err(ApiError::field(
                            format!("{prefix}features.{name}"),
                            "is not a finite number",
                        ));
                    }
                },
                serde_json::Value::String(s) => FieldValue::Text(s),
                _ => {
                    return Err(ApiError::field(
                        format!("{prefix}features.{name}"),
                        "must be a number, a string or null",
                    ));
                }
            };
            fields.features.insert(name, value);
        }
        for (name, value) in self.entities {
            let id = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                _ => {
                    return Err(ApiError::field(
                        format!("{prefix}entities.{name}"),
                        "must be a string or an integer",
                    ));
                }
            };
            fields.entities.insert(name, id);
        }
        Ok((self.id, fields))
    }
}

/// Parses a JSON body, turning serde's error into a client error that names the
/// position and the problem.
pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

/// Decodes and validates the body of `/v1/predict`, as the handler does; `now` (Unix
/// seconds) stands in for a missing timestamp. Every failure is a 4xx [`ApiError`].
pub fn decode_transaction(body: &[u8], now: i64) -> Result<Transaction, ApiError> {
    parse_json::<TransactionIn>(body)?.validate("", now)
}

/// Refuses a batch of `n` rows (the array `field`, of `what`s) that is empty or
/// longer than `limit`.
///
/// # Errors
/// [`ApiError::BatchTooLarge`] (413) or [`ApiError::InvalidField`] (400).
pub fn check_batch_len(n: usize, limit: usize, field: &str, what: &str) -> Result<(), ApiError> {
    if n > limit {
        return Err(ApiError::BatchTooLarge { given: n, limit });
    }
    if n == 0 {
        return Err(ApiError::field(
            field,
            format!("must hold at least one {what}"),
        ));
    }
    Ok(())
}

/// Decodes and validates the body of `/v1/predict/batch`, as the handler does: one
/// to `max_transactions` transactions, every one valid, or the whole batch is refused
/// with an error naming the first bad row. Every failure is a 4xx [`ApiError`].
pub fn decode_batch(
    body: &[u8],
    max_transactions: usize,
    now: i64,
) -> Result<Vec<Transaction>, ApiError> {
    let batch = parse_json::<BatchIn>(body)?;
    check_batch_len(
        batch.transactions.len(),
        max_transactions,
        "transactions",
        "transaction",
    )?;
    batch
        .transactions
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.validate(&format!("transactions[{i}]."), now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(amount: f64) -> TransactionIn {
        TransactionIn {
            transaction_id: None,
            customer_id: "C1".into(),
            terminal_id: "T1".into(),
            amount,
            timestamp: Some("2026-11-24T10:00:00Z".into()),
        }
    }

    #[test]
    fn valid_transaction_parses_its_timestamp() {
        let t = tx(12.5).validate("", 0).unwrap();
        assert_eq!(t.timestamp, 1_795_514_400);
    }

    #[test]
    fn bad_values_name_their_field() {
        let err = tx(-1.0).validate("transactions[2].", 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "transactions[2].amount: must not be negative"
        );
        let mut long = tx(1.0);
        long.customer_id = "x".repeat(65);
        assert!(
            long.validate("", 0)
                .unwrap_err()
                .to_string()
                .contains("at most 64")
        );
        let mut bad_time = tx(1.0);
        bad_time.timestamp = Some("yesterday".into());
        assert!(
            bad_time
                .validate("", 0)
                .unwrap_err()
                .to_string()
                .starts_with("timestamp: is not RFC 3339")
        );
    }
}
