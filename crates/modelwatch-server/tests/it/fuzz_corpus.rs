//! Replays the committed cargo-fuzz corpus (fuzz/corpus/) through the handlers' own
//! decoding, on the stable toolchain, with the fuzz targets' own checks: each body is
//! accepted with every field within its bounds, or refused with a 4xx, never a panic.
//! See fuzz/README.md for growing the corpus.

use modelwatch_server::api::{decode_batch, decode_transaction};
use std::path::PathBuf;

/// The targets' clock, batch limit and acceptance checks, shared with them.
#[path = "../../../../fuzz/fuzz_targets/checks.rs"]
mod checks;
use checks::{MAX_TRANSACTIONS, NOW};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("read corpus file");
            (path, bytes)
        })
        .collect()
}

#[test]
fn every_transaction_corpus_body_is_accepted_or_refused_with_a_4xx() {
    let (mut accepted, mut refused) = (0, 0);
    for (path, body) in corpus("decode_transaction") {
        match decode_transaction(&body, NOW) {
            Ok(tx) => {
                eprintln!("{}", path.display());
                checks::accepted(&tx);
                accepted += 1;
            }
            Err(e) => {
                eprintln!("{}", path.display());
                checks::refused(&e);
                refused += 1;
            }
        }
    }
    // The seeds are valid, and the fuzzer's finds are mostly not: both sides are run.
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn every_batch_corpus_body_is_accepted_or_refused_with_a_4xx() {
    let (mut accepted, mut refused) = (0, 0);
    for (path, body) in corpus("decode_batch") {
        match decode_batch(&body, MAX_TRANSACTIONS, NOW) {
            Ok(batch) => {
                eprintln!("{}", path.display());
                assert!((1..=MAX_TRANSACTIONS).contains(&batch.len()));
                batch.iter().for_each(checks::accepted);
                accepted += 1;
            }
            Err(e) => {
                eprintln!("{}", path.display());
                checks::refused(&e);
                refused += 1;
            }
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}
