//! Module implementing the collector: prediction events from a server that is not
//! ours, for a monitor-only model (a card without an ONNX file). See [`Collector`]
//! and [`decode`] for details.
//!
//! `POST /v1/models/{model}/observations` takes a batch of events as JSON
//! (`{"events": [...]}`) or NDJSON (one event per line). Each event is checked
//! against the card: a malformed one is refused by its index and the valid ones are
//! kept. The valid ones go into a bounded queue and the answer (202) leaves before
//! they are recorded; a dedicated thread records each exactly as a served prediction
//! would be (request counters, latency, stage durations, score histogram, score and
//! feature bins, drift windows, missing and out-of-range values, feature age). When
//! the queue is full the whole request is answered 429 and its events are counted
//! as `dropped`: the caller's server is never slowed down by ours.
//!
//! Labels come from the card, never from an event: an unknown feature, feature group
//! or stage name is counted in `model_observation_ignored_total` and ignored.
//!
//! Decoding is one pass over the body with no intermediate JSON tree: every field is
//! read leniently (any JSON type), so a wrong type refuses that one event, and only a
//! syntax error refuses the whole JSON body.

use crate::error::ApiError;
use modelwatch::{
    Decision, DriftHandle, IgnoredField, ModelHandle, NOT_USED, ObservationHandle,
    ObservationOutcome, Stage, Status,
};
use modelwatch_runtime::ModelCard;
use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest `prediction_id` of an event, in bytes.
pub const MAX_PREDICTION_ID_LEN: usize = 128;

/// How far in the future an event's `time` may be (clock skew between servers).
pub const MAX_FUTURE_SECONDS: f64 = 300.0;

/// Most refusals listed in one answer; the count of refused events is always exact.
pub const MAX_LISTED_REFUSALS: usize = 100;

/// The body formats the endpoint reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `{"events": [...]}`.
    Json,
    /// One event object per line; blank lines are skipped.
    Ndjson,
}

impl BodyFormat {
    /// The format a `Content-Type` names: JSON when absent, `None` for anything
    /// else than JSON or NDJSON.
    pub fn from_content_type(value: Option<&str>) -> Option<Self> {
        let Some(value) = value else {
            return Some(BodyFormat::Json);
        };
        let essence = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "" => Some(BodyFormat::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(BodyFormat::Ndjson),
            _ => None,
        }
    }
}

/// What the decoder needs to know of a card: feature and group positions, the task
/// and the decision names.
#[derive(Debug)]
pub struct EventLayout {
    features: HashMap<String, usize>,
    groups: HashMap<String, usize>,
    n_groups: usize,
    threshold: Option<f64>,
    decisions: Option<(String, String)>,
}

impl EventLayout {
    /// The layout of `card`'s events; group positions are `drift`'s (the order its
    /// freshness slots take timestamps in).
    pub fn new(card: &ModelCard, drift: &DriftHandle) -> Self {
        let features = card
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let groups = drift
            .feature_groups()
            .iter()
            .enumerate()
            .map(|(i, g)| (g.clone(), i))
            .collect();
        Self {
            features,
            groups,
            n_groups: drift.feature_groups().len(),
            threshold: card.threshold(),
            decisions: card
                .task
                .decisions()
                .map(|d| (d.below.clone(), d.at_or_above.clone())),
        }
    }

    /// Features per event row.
    pub fn width(&self) -> usize {
        self.features.len()
    }
}

/// One checked event, ready to record (its feature values sit in the batch's rows).
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    /// Classifier score or regression value; NaN when the prediction failed.
    pub output: f64,
    /// The decision (given, or from the threshold).
    pub decision: Decision,
    /// success, error or timeout.
    pub status: Status,
    /// Stage durations in seconds, NaN where not given (indexed by [`Stage::index`]).
    pub stages: [f64; Stage::COUNT],
    /// End-to-end latency: `duration`, else the sum of the stages given.
    pub duration: Option<f64>,
    /// When the prediction was made, Unix seconds (the arrival time by default).
    pub time: f64,
    /// The caller's prediction id.
    pub prediction_id: Option<String>,
}

/// The checked events of one request.
#[derive(Debug, Default)]
pub struct EventBatch {
    /// Feature values, `width` per event, NaN for missing.
    pub rows: Vec<f32>,
    /// Feature group event times (Unix seconds), `n_groups` per event, NaN when not
    /// given.
    pub times: Vec<f64>,
    /// One per event.
    pub events: Vec<EventMeta>,
    /// Unknown names seen in the accepted events, by [`IgnoredField::index`].
    pub ignored: [u64; IgnoredField::COUNT],
}

impl EventBatch {
    /// Accepted events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event was accepted.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// One refused event: its index in the batch and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Refusal {
    /// Position in the batch (for NDJSON, among the non-blank lines).
    pub index: usize,
    /// The error, in the API's error shape.
    pub error: RefusalError,
}

/// Why an event was refused.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RefusalError {
    /// `invalid_json` (an NDJSON line that does not parse) or `invalid_field`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Names the field, such as `events[3].features.amount: must be a number or null`.
    pub message: String,
}

/// The decoded request: the accepted events and the refusals.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Events that passed every check.
    pub batch: EventBatch,
    /// Refused events (at most [`MAX_LISTED_REFUSALS`] listed).
    pub refusals: Vec<Refusal>,
    /// Refused events in all.
    pub refused: usize,
}

/// Decodes and checks a request body. `now` is the arrival time (Unix seconds), the
/// default `time` of an event.
///
/// # Errors
/// [`ApiError::InvalidJson`] when a JSON body does not parse or is not
/// `{"events": [...]}`; [`ApiError::TooManyEvents`] past `max_events`.
pub fn decode(
    body: &[u8],
    format: BodyFormat,
    layout: &EventLayout,
    max_events: usize,
    now: f64,
) -> Result<Decoded, ApiError> {
    let mut sink = Sink {
        layout,
        now,
        decoded: Decoded::default(),
        index: 0,
        scratch: Scratch::new(layout),
        max_events,
    };
    match format {
        BodyFormat::Json => {
            let mut de = serde_json::Deserializer::from_slice(body);
            let result = de
                .deserialize_map(BodyVisitor(&mut sink))
                .and_then(|()| de.end());
            if let Err(e) = result {
                if sink.index > max_events {
                    return Err(too_many(sink.index, max_events));
                }
                return Err(ApiError::InvalidJson(format!(
                    "the body is not {{\"events\": [...]}}: {e}"
                )));
            }
        }
        BodyFormat::Ndjson => {
            let blank = |line: &&[u8]| line.iter().all(u8::is_ascii_whitespace);
            let lines = body.split(|b| *b == b'\n').filter(|l| !blank(l)).count();
            if lines > max_events {
                return Err(too_many(lines, max_events));
            }
            for line in body.split(|b| *b == b'\n').filter(|l| !blank(l)) {
                let mut de = serde_json::Deserializer::from_slice(line);
                let parsed = EventSeed(&mut sink)
                    .deserialize(&mut de)
                    .and_then(|()| de.end());
                if let Err(e) = parsed {
                    // The line's own syntax error: this event only.
                    sink.refuse_invalid_json(format!("line {}: {e}", sink.index));
                }
            }
        }
    }
    Ok(sink.decoded)
}

fn too_many(given: usize, limit: usize) -> ApiError {
    ApiError::TooManyEvents { given, limit }
}

/// The event being decoded.
#[derive(Debug)]
struct Scratch {
    row: Vec<f32>,
    times: Vec<f64>,
    ignored: [u64; IgnoredField::COUNT],
    output: Option<f64>,
    value_given: bool,
    score_given: bool,
    decision: Option<Decision>,
    status: Status,
    stages: [f64; Stage::COUNT],
    duration: Option<f64>,
    time: Option<f64>,
    prediction_id: Option<String>,
    error: Option<String>,
}

impl Scratch {
    fn new(layout: &EventLayout) -> Self {
        Self {
            row: vec![f32::NAN; layout.width()],
            times: vec![f64::NAN; layout.n_groups],
            ignored: [0; IgnoredField::COUNT],
            output: None,
            value_given: false,
            score_given: false,
            decision: None,
            status: Status::Success,
            stages: [f64::NAN; Stage::COUNT],
            duration: None,
            time: None,
            prediction_id: None,
            error: None,
        }
    }

    fn reset(&mut self) {
        self.row.fill(f32::NAN);
        self.times.fill(f64::NAN);
        self.ignored = [0; IgnoredField::COUNT];
        self.output = None;
        self.value_given = false;
        self.score_given = false;
        self.decision = None;
        self.status = Status::Success;
        self.stages = [f64::NAN; Stage::COUNT];
        self.duration = None;
        self.time = None;
        self.prediction_id = None;
        self.error = None;
    }

    /// Keeps the first error of the event.
    fn fail(&mut self, message: impl FnOnce() -> String) {
        if self.error.is_none() {
            self.error = Some(message());
        }
    }
}

/// Collects checked events and refusals.
struct Sink<'l> {
    layout: &'l EventLayout,
    now: f64,
    decoded: Decoded,
    index: usize,
    scratch: Scratch,
    max_events: usize,
}

impl Sink<'_> {
    fn refuse(&mut self, kind: &'static str, message: String) {
        self.decoded.refused += 1;
        if self.decoded.refusals.len() < MAX_LISTED_REFUSALS {
            self.decoded.refusals.push(Refusal {
                index: self.index,
                error: RefusalError { kind, message },
            });
        }
        self.index += 1;
    }

    fn refuse_invalid_json(&mut self, message: String) {
        self.refuse("invalid_json", message);
    }

    /// Checks the decoded event and keeps it, or refuses it.
    fn finish_event(&mut self) {
        let at = self.index;
        let s = &mut self.scratch;
        let layout = self.layout;
        let classifier = layout.threshold.is_some();
        if s.error.is_none() {
            if classifier && s.value_given {
                s.fail(|| "value: this model is a classifier; send its `score`".into());
            } else if !classifier && s.score_given {
                s.fail(|| "score: this model is a regressor; send its `value`".into());
            } else if s.status == Status::Success && s.output.is_none() {
                let field = if classifier { "score" } else { "value" };
                s.fail(|| format!("{field}: required when the status is success"));
            } else if !classifier && s.decision.is_some() {
                s.fail(|| "decision: this model is a regressor and takes no decision".into());
            }
        }
        if let Some(time) = s.time {
            if time > self.now + MAX_FUTURE_SECONDS {
                s.fail(|| {
                    format!(
                        "time: {time} is more than {MAX_FUTURE_SECONDS} s ahead of this server's clock ({})",
                        self.now
                    )
                });
            }
        }
        if let Some(message) = s.error.take() {
            // `: ...` is about the event itself, anything else names a field.
            let dot = if message.starts_with(':') { "" } else { "." };
            self.refuse("invalid_field", format!("events[{at}]{dot}{message}"));
            return;
        }
        let output = if s.status == Status::Success {
            s.output.unwrap_or(f64::NAN)
        } else {
            f64::NAN
        };
        let decision = match (s.status, s.decision, layout.threshold) {
            (Status::Success, Some(d), _) => d,
            (Status::Success, None, Some(t)) => Decision::for_score(output, t),
            _ => Decision::None,
        };
        let stage_sum = s.stages.iter().filter(|v| !v.is_nan()).sum::<f64>();
        let any_stage = s.stages.iter().any(|v| !v.is_nan());
        let batch = &mut self.decoded.batch;
        batch.rows.extend_from_slice(&s.row);
        batch.times.extend_from_slice(&s.times);
        for (total, n) in batch.ignored.iter_mut().zip(s.ignored) {
            *total += n;
        }
        batch.events.push(EventMeta {
            output,
            decision,
            status: s.status,
            stages: s.stages,
            duration: s.duration.or(any_stage.then_some(stage_sum)),
            time: s.time.unwrap_or(self.now),
            prediction_id: s.prediction_id.take(),
        });
        self.index += 1;
    }
}

/// `{"events": [...]}`.
struct BodyVisitor<'s, 'l>(&'s mut Sink<'l>);

impl<'de> Visitor<'de> for BodyVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"events\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "events" {
                map.next_value_seed(EventsSeed(&mut *self.0))?;
                seen = true;
            } else {
                return Err(de::Error::custom(format!(
                    "unknown key {:?}; the body holds only `events`",
                    truncate(&key.0)
                )));
            }
        }
        if !seen {
            return Err(de::Error::custom("missing `events`"));
        }
        Ok(())
    }
}

struct EventsSeed<'s, 'l>(&'s mut Sink<'l>);

impl<'de> DeserializeSeed<'de> for EventsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            if self.0.index >= self.0.max_events {
                // Count the rest without checking them, for the error message.
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    self.0.index += 1;
                }
                if self.0.index > self.0.max_events {
                    return Err(de::Error::custom("too many events"));
                }
                return Ok(());
            }
            if seq.next_element_seed(EventSeed(&mut *self.0))?.is_none() {
                return Ok(());
            }
        }
    }
}

/// One event: an object, checked field by field; never a decoding error unless the
/// JSON itself is broken.
struct EventSeed<'s, 'l>(&'s mut Sink<'l>);

impl<'de> DeserializeSeed<'de> for EventSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.scratch.reset();
        d.deserialize_any(EventVisitor(self.0))
    }
}

struct EventVisitor<'s, 'l>(&'s mut Sink<'l>);

impl<'de> Visitor<'de> for EventVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let sink = self.0;
        let layout = sink.layout;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let s = &mut sink.scratch;
            match &*key.0 {
                "prediction_id" => match map.next_value::<Any<'de>>()? {
                    Any::Null => {}
                    Any::Str(id) if id.is_empty() => s.fail(|| "prediction_id: must not be empty".into()),
                    Any::Str(id) if id.len() > MAX_PREDICTION_ID_LEN => s.fail(|| {
                        format!(
                            "prediction_id: is {} bytes; at most {MAX_PREDICTION_ID_LEN} are allowed",
                            id.len()
                        )
                    }),
                    Any::Str(id) => s.prediction_id = Some(id.into_owned()),
                    other => s.fail(|| format!("prediction_id: must be a string, not {}", other.kind())),
                },
                "score" | "value" => {
                    let field = if &*key.0 == "score" { "score" } else { "value" };
                    if field == "score" {
                        s.score_given = true;
                    } else {
                        s.value_given = true;
                    }
                    match map.next_value::<Any<'de>>()? {
                        Any::Number(x) if x.is_finite() => s.output = Some(x),
                        Any::Null => {}
                        other => s.fail(|| format!("{field}: must be a finite number, not {}", other.kind())),
                    }
                }
                "decision" => match map.next_value::<Any<'de>>()? {
                    Any::Null => {}
                    Any::Str(name) => match &layout.decisions {
                        Some((below, _)) if *name == **below => {
                            s.decision = Some(Decision::Below);
                        }
                        Some((_, at_or_above)) if *name == **at_or_above => {
                            s.decision = Some(Decision::AtOrAbove);
                        }
                        Some((below, at_or_above)) => s.fail(|| {
                            format!(
                                "decision: {:?} is not one of this model's decisions ({below}, {at_or_above})",
                                truncate(&name)
                            )
                        }),
                        None => s.fail(|| "decision: this model takes no decision".into()),
                    },
                    other => s.fail(|| format!("decision: must be a string, not {}", other.kind())),
                },
                "status" => match map.next_value::<Any<'de>>()? {
                    Any::Null => {}
                    Any::Str(name) => match &*name {
                        "success" => s.status = Status::Success,
                        "error" => s.status = Status::Error,
                        "timeout" => s.status = Status::Timeout,
                        _ => s.fail(|| {
                            format!(
                                "status: {:?} is not success, error or timeout",
                                truncate(&name)
                            )
                        }),
                    },
                    other => s.fail(|| format!("status: must be a string, not {}", other.kind())),
                },
                "time" => match map.next_value::<Any<'de>>()? {
                    Any::Null => {}
                    Any::Number(t) if t.is_finite() && t > 0.0 => s.time = Some(t),
                    other => s.fail(|| {
                        format!("time: must be Unix seconds (a positive number), not {}", other.describe())
                    }),
                },
                "duration" => match map.next_value::<Any<'de>>()? {
                    Any::Null => {}
                    Any::Number(t) if t.is_finite() && t >= 0.0 => s.duration = Some(t),
                    other => s.fail(|| {
                        format!("duration: must be seconds (a number >= 0), not {}", other.describe())
                    }),
                },
                "features" => map.next_value_seed(NamedNumbers {
                    scratch: s,
                    what: Named::Features(layout),
                })?,
                "feature_times" => map.next_value_seed(NamedNumbers {
                    scratch: s,
                    what: Named::Times(layout),
                })?,
                "stages" => map.next_value_seed(NamedNumbers {
                    scratch: s,
                    what: Named::Stages,
                })?,
                other => {
                    let other = truncate(other);
                    s.fail(|| {
                        format!(
                            "{other}: not a field of an event (prediction_id, score, value, decision, features, feature_times, stages, duration, status, time)"
                        )
                    });
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        sink.finish_event();
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.0
            .scratch
            .fail(|| ": must be an object, not an array".into());
        self.0.finish_event();
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_an_object("null")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_an_object("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_an_object("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_an_object("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_an_object("a number")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_an_object("a string")
    }
}

impl EventVisitor<'_, '_> {
    fn not_an_object<E>(self, kind: &str) -> Result<(), E> {
        self.0
            .scratch
            .fail(|| format!(": must be an object, not {kind}"));
        self.0.finish_event();
        Ok(())
    }
}

/// Which name → number map is being read.
enum Named<'l> {
    Features(&'l EventLayout),
    Times(&'l EventLayout),
    Stages,
}

/// `features`, `feature_times` or `stages`: an object of numbers by name, written
/// straight into the event's scratch.
struct NamedNumbers<'s, 'l> {
    scratch: &'s mut Scratch,
    what: Named<'l>,
}

impl NamedNumbers<'_, '_> {
    fn field(&self) -> &'static str {
        match self.what {
            Named::Features(_) => "features",
            Named::Times(_) => "feature_times",
            Named::Stages => "stages",
        }
    }
}

impl<'de> DeserializeSeed<'de> for NamedNumbers<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NamedNumbers<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of numbers by name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let field = self.field();
        let s = self.scratch;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value = map.next_value::<Any<'de>>()?;
            let name = &*key.0;
            match &self.what {
                Named::Features(layout) => {
                    let Some(&i) = layout.features.get(name) else {
                        s.ignored[IgnoredField::Feature.index()] += 1;
                        continue;
                    };
                    match value {
                        Any::Null => s.row[i] = f32::NAN,
                        Any::Number(x) if x.is_finite() => s.row[i] = x as f32,
                        other => s.fail(|| {
                            format!(
                                "{field}.{name}: must be a finite number or null, not {}",
                                other.kind()
                            )
                        }),
                    }
                }
                Named::Times(layout) => {
                    let Some(&i) = layout.groups.get(name) else {
                        s.ignored[IgnoredField::FeatureGroup.index()] += 1;
                        continue;
                    };
                    match value {
                        Any::Null => {}
                        Any::Number(t) if t.is_finite() && t > 0.0 => s.times[i] = t,
                        other => s.fail(|| {
                            format!(
                                "{field}.{name}: must be Unix seconds (a positive number), not {}",
                                other.describe()
                            )
                        }),
                    }
                }
                Named::Stages => {
                    let Ok(stage) = name.parse::<Stage>() else {
                        s.ignored[IgnoredField::Stage.index()] += 1;
                        continue;
                    };
                    match value {
                        Any::Null => {}
                        Any::Number(t) if t.is_finite() && t >= 0.0 => {
                            s.stages[stage.index()] = t;
                        }
                        other => s.fail(|| {
                            format!(
                                "{field}.{name}: must be seconds (a number >= 0), not {}",
                                other.describe()
                            )
                        }),
                    }
                }
            }
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.wrong("an array")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.wrong("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.wrong("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.wrong("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.wrong("a number")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.wrong("a string")
    }
}

impl NamedNumbers<'_, '_> {
    fn wrong<E>(self, kind: &str) -> Result<(), E> {
        let field = self.field();
        self.scratch
            .fail(|| format!("{field}: must be an object of numbers by name, not {kind}"));
        Ok(())
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, read without building a tree: scalars kept, containers skipped.
enum Any<'de> {
    Null,
    Bool,
    Number(f64),
    Str(Cow<'de, str>),
    Array,
    Object,
}

impl Any<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Any::Null => "null",
            Any::Bool => "a boolean",
            Any::Number(_) => "a number",
            Any::Str(_) => "a string",
            Any::Array => "an array",
            Any::Object => "an object",
        }
    }

    /// The kind, or the number itself when it was a number out of range.
    fn describe(&self) -> String {
        match self {
            Any::Number(x) => x.to_string(),
            other => other.kind().to_string(),
        }
    }
}

impl<'de> de::Deserialize<'de> for Any<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Any<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Any<'de>, E> {
                Ok(Any::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Any<'de>, E> {
                Ok(Any::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Any<'de>, E> {
                Ok(Any::Bool)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Any<'de>, E> {
                Ok(Any::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Any<'de>, E> {
                Ok(Any::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Any<'de>, E> {
                Ok(Any::Number(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Any<'de>, E> {
                Ok(Any::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Any<'de>, E> {
                Ok(Any::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Any::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Any::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// A name echoed in a message, cut to 64 bytes on a character boundary.
fn truncate(name: &str) -> &str {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The recording side of one monitor-only model: a bounded queue and the thread
/// that records what it holds.
#[derive(Debug)]
pub struct Collector {
    layout: EventLayout,
    counters: ObservationHandle,
    queue: Queue,
    gate: Arc<std::sync::Mutex<()>>,
}

#[derive(Debug)]
struct Queue {
    sender: std::sync::Mutex<Option<std::sync::mpsc::Sender<EventBatch>>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// Why a batch was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue holds `capacity` events already.
    Full,
    /// The recorder stopped (shutting down).
    Stopped,
}

/// What the recording thread needs.
struct Recorder {
    metrics: ModelHandle,
    drift: DriftHandle,
    counters: ObservationHandle,
    /// Events older than this (seconds before arrival) are late: counted, left out of
    /// the window gauges.
    window_seconds: f64,
    width: usize,
    n_groups: usize,
    queued: Arc<AtomicUsize>,
    gate: Arc<std::sync::Mutex<()>>,
}

impl Collector {
    /// Starts the recording thread of one monitor-only model. `capacity` bounds the
    /// events waiting to be recorded; `window` is the drift window (older events are
    /// late).
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(
        card: &ModelCard,
        metrics: ModelHandle,
        drift: DriftHandle,
        counters: ObservationHandle,
        capacity: usize,
        window: std::time::Duration,
    ) -> std::io::Result<Self> {
        let layout = EventLayout::new(card, &drift);
        let queued = Arc::new(AtomicUsize::new(0));
        let (sender, receiver) = std::sync::mpsc::channel::<EventBatch>();
        let gate = Arc::new(std::sync::Mutex::new(()));
        let recorder = Recorder {
            gate: gate.clone(),
            metrics,
            drift,
            counters: counters.clone(),
            window_seconds: window.as_secs_f64(),
            width: layout.width(),
            n_groups: layout.n_groups,
            queued: queued.clone(),
        };
        std::thread::Builder::new()
            .name(format!("collector-{}", card.name))
            .spawn(move || {
                // Ends when the sender is dropped and every queued batch is recorded.
                for batch in receiver {
                    let _open = recorder.gate.lock().unwrap_or_else(|p| p.into_inner());
                    recorder.record(&batch);
                }
            })?;
        Ok(Self {
            layout,
            counters,
            queue: Queue {
                sender: std::sync::Mutex::new(Some(sender)),
                queued,
                capacity,
            },
            gate,
        })
    }

    /// Holds the recording thread before its next batch until the guard is dropped
    /// (batches keep queueing): for tests that fill the queue on purpose.
    #[doc(hidden)]
    pub fn hold_recording(&self) -> std::sync::MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The card's event layout, for [`decode`].
    pub fn layout(&self) -> &EventLayout {
        &self.layout
    }

    /// The collector's counters.
    pub fn counters(&self) -> &ObservationHandle {
        &self.counters
    }

    /// Events waiting to be recorded.
    pub fn queued(&self) -> usize {
        self.queue.queued.load(Ordering::Relaxed)
    }

    /// Queues a batch for recording, all or nothing.
    ///
    /// # Errors
    /// [`QueueError::Full`] when it does not fit; [`QueueError::Stopped`] after
    /// [`Collector::stop`].
    pub fn enqueue(&self, batch: EventBatch) -> Result<(), QueueError> {
        let n = batch.len();
        let queued = &self.queue.queued;
        let mut current = queued.load(Ordering::Relaxed);
        loop {
            if current + n > self.queue.capacity {
                return Err(QueueError::Full);
            }
            match queued.compare_exchange_weak(
                current,
                current + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        let sender = self.queue.sender.lock().unwrap_or_else(|p| p.into_inner());
        let sent = sender.as_ref().map(|s| s.send(batch));
        if !matches!(sent, Some(Ok(()))) {
            queued.fetch_sub(n, Ordering::AcqRel);
            return Err(QueueError::Stopped);
        }
        Ok(())
    }

    /// Stops taking batches; the thread records what is queued, then ends.
    pub fn stop(&self) {
        self.queue
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

impl Recorder {
    fn record(&self, batch: &EventBatch) {
        for (field, &n) in IgnoredField::ALL.iter().zip(&batch.ignored) {
            self.counters.ignored(*field, n);
        }
        // One clock read per batch: the recording time of all its events.
        let now = self.drift.now();
        let now_f = now as f64;
        let mut times = vec![NOT_USED; self.n_groups];
        for (i, event) in batch.events.iter().enumerate() {
            self.metrics
                .record_request(event.status, event.decision, event.duration);
            for (stage, &seconds) in Stage::ALL.iter().zip(&event.stages) {
                if !seconds.is_nan() {
                    self.metrics.observe_stage(*stage, seconds);
                }
            }
            if event.status != Status::Success {
                continue;
            }
            self.metrics.observe_score(event.output);
            if !self.metrics.enabled() {
                continue;
            }
            let row = &batch.rows[i * self.width..(i + 1) * self.width];
            let approved = event.decision == Decision::Below;
            if now_f - event.time > self.window_seconds {
                self.drift.record_late(event.output, approved, row);
                continue;
            }
            // Feature age as of the prediction: shift each event time by how long
            // ago the prediction was made.
            let lag = (now_f - event.time).max(0.0);
            let event_times = &batch.times[i * self.n_groups..(i + 1) * self.n_groups];
            for (t, &given) in times.iter_mut().zip(event_times) {
                *t = if given.is_nan() {
                    NOT_USED
                } else {
                    (given + lag).floor() as i64
                };
            }
            self.drift
                .record_prediction(now, event.output, approved, row, &times);
        }
        self.queued.fetch_sub(batch.len(), Ordering::AcqRel);
    }
}

/// Counts a decoded request's outcome.
pub fn count(counters: &ObservationHandle, accepted: usize, invalid: usize, dropped: usize) {
    counters.count(ObservationOutcome::Accepted, accepted as u64);
    counters.count(ObservationOutcome::Invalid, invalid as u64);
    counters.count(ObservationOutcome::Dropped, dropped as u64);
}

/// The answer to an observations request that was read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ObservationsAnswer {
    /// Events queued for recording.
    pub accepted: usize,
    /// Events refused, in all.
    pub refused: usize,
    /// The refused events by index (the first [`MAX_LISTED_REFUSALS`]).
    #[schema(value_type = Vec<Object>)]
    pub rejected: Vec<Refusal>,
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[utoipa::path(post, path = "/v1/models/{model}/observations",
    request_body(content = Object, description = "`{\"events\": [...]}` as application/json, or one event per line as application/x-ndjson; see docs/collector.md"),
    params(("model" = String, Path, description = "A monitor-only model's name")), responses(
    (status = 202, description = "The valid events are queued (recorded after the answer); the refused ones are listed by index", body = ObservationsAnswer),
    (status = 400, description = "`invalid_json` (the body is not `{\"events\": [...]}`) or `invalid_field` (every event refused; the body also holds `accepted` and `rejected`)", body = crate::error::ErrorBody),
    (status = 404, description = "`unknown_model`: the message lists the served names", body = crate::error::ErrorBody),
    (status = 409, description = "`not_monitor_only`: the model is served here and takes no observations", body = crate::error::ErrorBody),
    (status = 413, description = "`payload_too_large` (over --max-body-bytes) or `batch_too_large` (over --max-observation-batch)", body = crate::error::ErrorBody),
    (status = 415, description = "`unsupported_media_type`: not JSON or NDJSON", body = crate::error::ErrorBody),
    (status = 429, description = "`overloaded`: the recording queue is full; nothing of the request was kept", body = crate::error::ErrorBody,
        headers(("Retry-After" = u64, description = "Seconds to wait"))),
    (status = 503, description = "`unavailable`: shutting down", body = crate::error::ErrorBody),
))]
pub(crate) async fn observations(
    axum::extract::State(state): axum::extract::State<Arc<crate::AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> axum::response::Response {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let model = match state.model(&name) {
        Ok(model) => model,
        Err(e) => return e.into_response(),
    };
    let Some(collector) = model.collector() else {
        return ApiError::NotMonitorOnly {
            name: model.card.name.clone(),
        }
        .into_response();
    };
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let Some(format) = BodyFormat::from_content_type(content_type) else {
        return ApiError::UnsupportedMediaType {
            given: truncate(content_type.unwrap_or_default()).to_string(),
            expected: "application/json or application/x-ndjson",
        }
        .into_response();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return crate::body_error(rejection, state.limits.max_body_bytes).into_response();
        }
    };
    let decoded = match decode(
        &body,
        format,
        collector.layout(),
        state.limits.max_observation_batch,
        now_seconds(),
    ) {
        Ok(decoded) => decoded,
        Err(e) => return e.into_response(),
    };
    let counters = collector.counters();
    let Decoded {
        batch,
        refusals,
        refused,
    } = decoded;
    let accepted = batch.len();
    if accepted == 0 && refused > 0 {
        count(counters, 0, refused, 0);
        let first = refusals
            .first()
            .map(|r| r.error.message.clone())
            .unwrap_or_default();
        let body = serde_json::json!({
            "error": {
                "type": "invalid_field",
                "message": format!("every event was refused; the first: {first}"),
            },
            "accepted": 0,
            "refused": refused,
            "rejected": refusals,
        });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    if accepted > 0 {
        match collector.enqueue(batch) {
            Ok(()) => {}
            Err(QueueError::Full) => {
                count(counters, 0, refused, accepted);
                return ApiError::Overloaded.into_response();
            }
            Err(QueueError::Stopped) => return ApiError::Unavailable.into_response(),
        }
    }
    count(counters, accepted, refused, 0);
    let answer = ObservationsAnswer {
        accepted,
        refused,
        rejected: refusals,
    };
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}
