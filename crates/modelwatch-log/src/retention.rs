//! Module implementing the retention order: one row per commit, listing what it
//! wrote. See [`Batch`] for details.
//!
//! A row's value is a run of entries, each a kind byte, the entry's unix
//! milliseconds (little-endian u64), the id's length (little-endian u16) and the id.
//! Predictions' ids are at most [`MAX_ID_LEN`](crate::MAX_ID_LEN) bytes, and the
//! server refuses longer label ids; a label id of over 64 KiB from another caller
//! would be listed cut short, so the sweep would not find it.

use crate::{LEGACY_BY_TIME, LogError, PREDICTIONS, RETENTION, bytes_of, codec, to_millis};
use redb::{ReadableTable, TableHandle};

/// What an entry ages out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A prediction, with its label: deleted when the prediction still has this
    /// entry's time (a replaced prediction is aged by its newer entry).
    Prediction,
    /// A label that matched no prediction: deleted unless a prediction came since,
    /// which then ages it.
    Label,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Prediction => 0,
            Kind::Label => 1,
        }
    }
}

/// The entries of one commit, encoded as they are stored.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    bytes: Vec<u8>,
    newest_ms: u64,
}

impl Batch {
    pub(crate) fn push(&mut self, kind: Kind, ms: u64, id: &str) {
        let id = &id.as_bytes()[..id.len().min(u16::MAX as usize)];
        self.bytes.push(kind.byte());
        self.bytes.extend_from_slice(&ms.to_le_bytes());
        self.bytes
            .extend_from_slice(&(id.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(id);
        self.newest_ms = self.newest_ms.max(ms);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The row's key part: the newest time among the entries.
    pub(crate) fn newest_ms(&self) -> u64 {
        self.newest_ms
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    pub(crate) ms: u64,
    pub(crate) id: String,
}

/// The entries of one stored row.
pub(crate) fn entries(mut bytes: &[u8]) -> Result<Vec<Entry>, LogError> {
    let truncated = || LogError::Storage("a retention row is truncated".into());
    let mut out = Vec::new();
    while let Some((&kind, rest)) = bytes.split_first() {
        let kind = match kind {
            0 => Kind::Prediction,
            1 => Kind::Label,
            other => {
                return Err(LogError::Storage(format!(
                    "a retention row has an entry of kind {other}, this build reads 0 and 1"
                )));
            }
        };
        let (ms, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(truncated)?;
        let len = u16::from_le_bytes(*len) as usize;
        let (id, rest) = rest.split_at_checked(len).ok_or_else(truncated)?;
        out.push(Entry {
            kind,
            ms: u64::from_le_bytes(*ms),
            id: String::from_utf8_lossy(id).into_owned(),
        });
        bytes = rest;
    }
    Ok(out)
}

/// Deletes what `entry` ages out; returns the stored bytes after.
pub(crate) fn delete(
    entry: &Entry,
    predictions: &mut redb::Table<&str, &[u8]>,
    labels: &mut redb::Table<&str, &[u8]>,
    mut bytes: u64,
) -> Result<u64, LogError> {
    let id = entry.id.as_str();
    let stored_ms = predictions
        .get(id)?
        .map(|v| codec::prediction_unix_time(v.value()).map(to_millis));
    let delete = match (entry.kind, stored_ms) {
        // A later entry (a replacement) ages the prediction now stored.
        (Kind::Prediction, Some(ms)) => ms.is_none_or(|ms| ms == entry.ms),
        // Its label, if any, went with it.
        (Kind::Prediction, None) => false,
        // A prediction came after the label: the label goes with it.
        (Kind::Label, Some(_)) => false,
        (Kind::Label, None) => true,
    };
    if !delete {
        return Ok(bytes);
    }
    if let Some(old) = predictions.remove(id)? {
        bytes = bytes.saturating_sub(bytes_of(id, old.value()));
    }
    if let Some(old) = labels.remove(id)? {
        bytes = bytes.saturating_sub(bytes_of(id, old.value()));
    }
    Ok(bytes)
}

/// Longest time between the oldest and newest entry of a migrated row.
const MIGRATED_ROW_SPAN_MS: u64 = 60_000;

/// Moves a log's per-prediction retention order (written before [`RETENTION`]) into
/// rows of up to [`MAX_BATCH`](crate::MAX_BATCH) entries, oldest first, and drops
/// the old table. Runs once, in the transaction that opens the log.
pub(crate) fn migrate_legacy(txn: &redb::WriteTransaction) -> Result<(), LogError> {
    let legacy = txn
        .list_tables()?
        .any(|t| t.name() == LEGACY_BY_TIME.name());
    if !legacy {
        return Ok(());
    }
    let mut rows = 0;
    {
        let old = txn.open_table(LEGACY_BY_TIME)?;
        let predictions = txn.open_table(PREDICTIONS)?;
        let mut table = txn.open_table(RETENTION)?;
        let mut meta = txn.open_table(crate::META)?;
        let mut commit = meta.get(crate::NEXT_COMMIT)?.map_or(0, |v| v.value());
        // Written as they fill, so a large log is not held in memory.
        let mut flush = |batch: &mut Batch| -> Result<(), LogError> {
            table.insert((batch.newest_ms(), commit), batch.bytes())?;
            commit += 1;
            rows += 1;
            *batch = Batch::default();
            Ok(())
        };
        let mut batch = Batch::default();
        let (mut first_ms, mut entries) = (0, 0);
        for item in old.iter()? {
            let (key, _) = item?;
            let (ms, id) = key.value();
            // The old rows are in time order: a row of them spans at most a minute
            // and holds at most MAX_BATCH entries, like a live commit, so none is kept
            // much past its retention.
            if entries > 0
                && (ms.saturating_sub(first_ms) > MIGRATED_ROW_SPAN_MS
                    || entries >= crate::MAX_BATCH)
            {
                flush(&mut batch)?;
                entries = 0;
            }
            if entries == 0 {
                first_ms = ms;
            }
            let kind = if predictions.get(id)?.is_some() {
                Kind::Prediction
            } else {
                Kind::Label
            };
            batch.push(kind, ms, id);
            entries += 1;
        }
        if entries > 0 {
            flush(&mut batch)?;
        }
        meta.insert(crate::NEXT_COMMIT, commit)?;
    }
    txn.delete_table(LEGACY_BY_TIME)?;
    tracing::info!(
        rows,
        "prediction log: moved the per-prediction retention order into one row per commit"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_what_a_batch_wrote() {
        let mut batch = Batch::default();
        batch.push(
            Kind::Prediction,
            1_700_000_000_123,
            "4f1c2a9e3b7d-0000000001",
        );
        batch.push(Kind::Label, 5, "zzz");
        assert_eq!(batch.newest_ms(), 1_700_000_000_123);
        let read = entries(batch.bytes()).unwrap();
        assert_eq!(
            read,
            vec![
                Entry {
                    kind: Kind::Prediction,
                    ms: 1_700_000_000_123,
                    id: "4f1c2a9e3b7d-0000000001".into()
                },
                Entry {
                    kind: Kind::Label,
                    ms: 5,
                    id: "zzz".into()
                },
            ]
        );
        // A truncated row is an error, not a panic or a short list.
        let bytes = batch.bytes();
        for cut in 1..bytes.len() {
            if cut == 34 {
                // The first entry ends here: a valid row of one.
                continue;
            }
            assert!(entries(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
