//! Module implementing the request and response types of the prediction API and their
//! validation. See [`Transaction`] and [`Prediction`] for details.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};

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

/// The answer for one transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Prediction {
    /// Id of this prediction, for joining a delayed label later.
    pub prediction_id: String,
    /// The caller's transaction id, when one was given.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transaction_id: Option<String>,
    /// Probability of fraud, in [0, 1].
    #[schema(minimum = 0, maximum = 1)]
    pub score: f64,
    /// `approved` below the threshold, `declined` at or above.
    pub decision: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
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

/// Decodes and validates the body of `/v1/predict/batch`, as the handler does: one
/// to `max_transactions` transactions, every one valid, or the whole batch is refused
/// with an error naming the first bad row. Every failure is a 4xx [`ApiError`].
pub fn decode_batch(
    body: &[u8],
    max_transactions: usize,
    now: i64,
) -> Result<Vec<Transaction>, ApiError> {
    let batch = parse_json::<BatchIn>(body)?;
    let n = batch.transactions.len();
    if n > max_transactions {
        return Err(ApiError::BatchTooLarge {
            given: n,
            limit: max_transactions,
        });
    }
    if n == 0 {
        return Err(ApiError::field(
            "transactions",
            "must hold at least one transaction",
        ));
    }
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
