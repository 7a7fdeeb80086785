//! What every decoded body must satisfy, shared by the targets.

use modelwatch_server::api::{MAX_AMOUNT, MAX_ID_LEN, Transaction};
use modelwatch_server::error::ApiError;

/// A fixed "now", so a failure replays identically.
pub const NOW: i64 = 1_795_514_400;

/// The batch limit the batch target decodes with (small, so the limit is reached).
pub const MAX_TRANSACTIONS: usize = 8;

/// An accepted transaction holds only what validation promises.
pub fn accepted(tx: &Transaction) {
    assert!(tx.amount.is_finite() && (0.0..=MAX_AMOUNT).contains(&tx.amount));
    let ids = [
        Some(&tx.customer_id),
        Some(&tx.terminal_id),
        tx.transaction_id.as_ref(),
    ];
    for id in ids.into_iter().flatten() {
        assert!(!id.is_empty() && id.len() <= MAX_ID_LEN, "{id:?}");
        assert!(!id.chars().any(char::is_control), "{id:?}");
    }
}

/// A refusal is the client's fault, with a type and a message for the JSON body.
pub fn refused(e: &ApiError) {
    assert!(e.http_status().is_client_error(), "{e:?}");
    assert!(!e.error_type().is_empty());
    assert!(!e.to_string().is_empty(), "{e:?}");
}
