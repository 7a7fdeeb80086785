//! The body of `POST /v1/predict`, through the handler's own decoding.
#![no_main]

mod checks;

use libfuzzer_sys::fuzz_target;
use modelwatch_server::api::decode_transaction;

fuzz_target!(|body: &[u8]| {
    match decode_transaction(body, checks::NOW) {
        Ok(tx) => checks::accepted(&tx),
        Err(e) => checks::refused(&e),
    }
});
