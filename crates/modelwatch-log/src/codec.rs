//! Module implementing the stored records' byte layout. See [`StoredPrediction`] and
//! [`StoredLabel`] for details.
//!
//! A small fixed layout, little-endian, with a leading format byte so a later
//! layout can read this one.

use crate::{LabelOutcome, LogError, PredictionRecord, Truth};
use modelwatch::Decision;

const FORMAT: u8 = 1;

/// A prediction as read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPrediction {
    /// The `model` label value.
    pub model: String,
    /// The `version` label value.
    pub version: String,
    /// Score or value.
    pub score: f64,
    /// What was decided.
    pub decision: Decision,
    /// When, in unix seconds.
    pub unix_time: f64,
    /// The input row, when it was logged.
    pub features: Option<Vec<f32>>,
}

/// Which outcome a stored label had when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Joined in time.
    Matched,
    /// Joined, late.
    Late,
    /// No prediction then.
    Unmatched,
}

impl OutcomeKind {
    pub(crate) fn of(outcome: &LabelOutcome) -> Self {
        match outcome {
            LabelOutcome::Matched(_) | LabelOutcome::Duplicate(_) => OutcomeKind::Matched,
            LabelOutcome::Late(_) => OutcomeKind::Late,
            LabelOutcome::Unmatched => OutcomeKind::Unmatched,
        }
    }
}

/// A label as read back from the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredLabel {
    /// The ground truth.
    pub truth: Truth,
    /// When it was observed, in unix seconds.
    pub unix_time: f64,
    /// What it was joined to when it arrived.
    pub outcome: OutcomeKind,
}

fn decision_byte(d: Decision) -> u8 {
    match d {
        Decision::None => 0,
        Decision::Below => 1,
        Decision::AtOrAbove => 2,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..n]);
}

pub(crate) fn encode_prediction(p: &PredictionRecord, out: &mut Vec<u8>) {
    out.push(FORMAT);
    out.push(decision_byte(p.decision));
    out.extend_from_slice(&p.score.to_le_bytes());
    out.extend_from_slice(&p.unix_time.to_le_bytes());
    put_str(out, &p.model);
    put_str(out, &p.version);
    match &p.features {
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(row) => {
            out.extend_from_slice(&(row.len() as u32).to_le_bytes());
            for v in row {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        if self.0.len() < n {
            return Err(LogError::Storage("a stored record is truncated".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, LogError> {
        Ok(self.take(1)?[0])
    }
    fn f64(&mut self) -> Result<f64, LogError> {
        let b = self.take(8)?;
        Ok(f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn u32(&mut self) -> Result<u32, LogError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
    }
    fn string(&mut self) -> Result<String, LogError> {
        let b = self.take(2)?;
        let n = u16::from_le_bytes([b[0], b[1]]) as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

fn check_format(r: &mut Reader<'_>) -> Result<(), LogError> {
    let format = r.u8()?;
    if format != FORMAT {
        return Err(LogError::Storage(format!(
            "a stored record has format {format}, this build reads {FORMAT}"
        )));
    }
    Ok(())
}

/// The time of a stored prediction without decoding the rest (the retention sweep
/// reads one per entry it ages out); `None` for another format.
pub(crate) fn prediction_unix_time(bytes: &[u8]) -> Option<f64> {
    if bytes.first() != Some(&FORMAT) {
        return None;
    }
    // The format byte, the decision byte, the score, then the time.
    let time: [u8; 8] = bytes.get(10..18)?.try_into().ok()?;
    Some(f64::from_le_bytes(time))
}

pub(crate) fn decode_prediction(bytes: &[u8]) -> Result<StoredPrediction, LogError> {
    let mut r = Reader(bytes);
    check_format(&mut r)?;
    let decision = match r.u8()? {
        1 => Decision::Below,
        2 => Decision::AtOrAbove,
        _ => Decision::None,
    };
    let score = r.f64()?;
    let unix_time = r.f64()?;
    let model = r.string()?;
    let version = r.string()?;
    let n = r.u32()?;
    let features = if n == u32::MAX {
        None
    } else {
        let raw = r.take(4 * n as usize)?;
        Some(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    };
    Ok(StoredPrediction {
        model,
        version,
        score,
        decision,
        unix_time,
        features,
    })
}

pub(crate) fn encode_label(l: &StoredLabel, out: &mut Vec<u8>) {
    out.push(FORMAT);
    out.push(match l.outcome {
        OutcomeKind::Matched => 0,
        OutcomeKind::Late => 1,
        OutcomeKind::Unmatched => 2,
    });
    let (kind, value) = match l.truth {
        Truth::Class(positive) => (0u8, if positive { 1.0 } else { 0.0 }),
        Truth::Value(v) => (1u8, v),
    };
    out.push(kind);
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(&l.unix_time.to_le_bytes());
}

pub(crate) fn decode_label(bytes: &[u8]) -> Result<StoredLabel, LogError> {
    let mut r = Reader(bytes);
    check_format(&mut r)?;
    let outcome = match r.u8()? {
        0 => OutcomeKind::Matched,
        1 => OutcomeKind::Late,
        _ => OutcomeKind::Unmatched,
    };
    let kind = r.u8()?;
    let value = r.f64()?;
    let unix_time = r.f64()?;
    let truth = if kind == 0 {
        Truth::Class(value != 0.0)
    } else {
        Truth::Value(value)
    };
    Ok(StoredLabel {
        truth,
        unix_time,
        outcome,
    })
}
