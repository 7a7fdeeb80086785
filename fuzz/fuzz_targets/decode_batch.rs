//! The body of `POST /v1/predict/batch`, through the handler's own decoding.
#![no_main]

mod checks;

use libfuzzer_sys::fuzz_target;
use modelwatch_server::api::decode_batch;

fuzz_target!(|body: &[u8]| {
    match decode_batch(body, checks::MAX_TRANSACTIONS, checks::NOW) {
        Ok(transactions) => {
            assert!((1..=checks::MAX_TRANSACTIONS).contains(&transactions.len()));
            transactions.iter().for_each(checks::accepted);
        }
        Err(e) => checks::refused(&e),
    }
});
