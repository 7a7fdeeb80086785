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

/// Names the corpus file being checked when a check fails.
struct Naming<'a>(&'a std::path::Path);

impl Drop for Naming<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("failing corpus file: {}", self.0.display());
        }
    }
}

/// Runs every file of `target`'s corpus through `decode`, checks an accepted value
/// with `accepted` and a refusal with the targets' own check, and requires both sides
/// to be exercised (the seeds are valid, the fuzzer's finds mostly not).
fn replay<T>(
    target: &str,
    decode: impl Fn(&[u8]) -> Result<T, modelwatch_server::error::ApiError>,
    accepted: impl Fn(&T),
) {
    let (mut n_accepted, mut n_refused) = (0, 0);
    for (path, body) in corpus(target) {
        let _naming = Naming(&path);
        match decode(&body) {
            Ok(value) => {
                accepted(&value);
                n_accepted += 1;
            }
            Err(e) => {
                checks::refused(&e);
                n_refused += 1;
            }
        }
    }
    assert!(
        n_accepted > 0 && n_refused > 0,
        "{target}: {n_accepted} accepted, {n_refused} refused"
    );
}

#[test]
fn every_transaction_corpus_body_is_accepted_or_refused_with_a_4xx() {
    replay(
        "decode_transaction",
        |body| decode_transaction(body, NOW),
        checks::accepted,
    );
}

#[test]
fn every_batch_corpus_body_is_accepted_or_refused_with_a_4xx() {
    replay(
        "decode_batch",
        |body| decode_batch(body, MAX_TRANSACTIONS, NOW),
        |batch| {
            assert!((1..=MAX_TRANSACTIONS).contains(&batch.len()));
            batch.iter().for_each(checks::accepted);
        },
    );
}
