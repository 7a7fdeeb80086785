//! The prediction log: every served or observed prediction by its `prediction_id`,
//! and the delayed labels joined to them. See [`PredictionLog`] for details.
//!
//! The log is an embedded [redb] file. Nothing here speaks HTTP or touches a metric:
//! the server's feedback module turns each [`LabelOutcome`] into its counters.
//!
//! # Writes and the fsync policy
//!
//! One writer thread owns every write. It is fed by a bounded channel, so the request
//! path never waits on the disk:
//!
//! - [`PredictionLog::record`] is a `try_send`: it never blocks, and when the channel
//!   is full the prediction is dropped and counted ([`PredictionLog::dropped`]); its
//!   label will later count as unmatched.
//! - The writer drains what is queued (up to [`MAX_BATCH`] commands) into one write
//!   transaction. A batch of predictions only waits up to [`LogConfig::linger`] (5 ms)
//!   for more, so a busy server commits in few, large transactions; a label, or
//!   [`PredictionLog::close`], ends the wait at once. While it lingers the writer is
//!   parked, not waiting on the channel, so a prediction queued meanwhile wakes no
//!   thread (a wake-up is a system call and two task switches, more than the rest of
//!   `record`); labels, `close` and every [`WAKE_EVERY`]th prediction unpark it. A
//!   batch of predictions only is
//!   committed without an fsync (`Durability::None`); at most every
//!   [`LogConfig::flush_interval`] a commit is made durable (`Durability::Immediate`),
//!   which persists every commit before it.
//!   A crash loses at most that interval of predictions, never a label.
//! - A batch that holds a label is always committed with `Durability::Immediate`, and
//!   only then are the labels' callbacks called. So a label the server acknowledged
//!   (a 2xx) is on disk, and a label the client retries after a crash is found and
//!   counted as a duplicate, never twice.
//!
//! # Retention
//!
//! Predictions older than [`LogConfig::retention`] are deleted with their labels, and
//! when the stored bytes pass [`LogConfig::max_bytes`] the oldest go first. Freed
//! pages are reused by redb, so the file stops growing at about that size.
//!
//! The retention order is kept per write transaction, not per prediction: each commit
//! adds one row to the retention table, keyed by the newest time it holds, listing
//! the ids it wrote with their times. A B-tree insert costs the writer about as much
//! as the prediction's own insert, so one per commit instead of one per prediction
//! halves the writer's work. A prediction is therefore deleted once its commit's row
//! comes first: a live server's commits span a few milliseconds, so this is the
//! oldest-first order to within a commit; a collector's batch of backfilled events is
//! kept until its newest event expires.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod codec;

pub use codec::{OutcomeKind, StoredLabel, StoredPrediction};
use modelwatch::Decision;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PREDICTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("predictions");
const LABELS: TableDefinition<&str, &[u8]> = TableDefinition::new("labels");
/// (newest unix milliseconds, commit sequence) -> what that commit wrote
/// ([`retention`]): the retention order, one row per commit.
const RETENTION: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("retention");
/// The retention order of logs written before [`RETENTION`]: one row per prediction,
/// (unix milliseconds, prediction id). Moved into [`RETENTION`] on open.
const LEGACY_BY_TIME: TableDefinition<(u64, &str), ()> = TableDefinition::new("by_time");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const STORED_BYTES: &str = "stored_bytes";
/// The next commit sequence of [`RETENTION`]'s keys.
const NEXT_COMMIT: &str = "next_commit";

/// Most commands in one write transaction.
pub const MAX_BATCH: usize = 1024;

/// A lingering writer is woken after this many predictions, so a burst does not fill
/// the queue while it waits.
pub const WAKE_EVERY: usize = MAX_BATCH / 4;

/// Longest prediction id the log stores, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Errors of the prediction log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The database file could not be opened or created.
    #[error("cannot open the prediction log {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: redb::DatabaseError,
    },
    /// A read or write failed.
    #[error("prediction log: {0}")]
    Storage(String),
    /// The writer's queue is full: nothing was written, retry later.
    #[error("the prediction log's queue is full")]
    Full,
    /// The writer has stopped (shutdown, or a failed write).
    #[error("the prediction log is closed")]
    Closed,
}

impl<E: Into<redb::Error>> From<E> for LogError {
    fn from(e: E) -> Self {
        LogError::Storage(e.into().to_string())
    }
}

/// Where the log lives and how much it keeps.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The redb file.
    pub path: PathBuf,
    /// Predictions (and their labels) older than this are deleted.
    pub retention: Duration,
    /// Stored bytes (keys and values) past which the oldest predictions go.
    pub max_bytes: u64,
    /// Commands the writer's channel holds; past it, predictions are dropped and
    /// labels refused ([`LogError::Full`]).
    pub queue_capacity: usize,
    /// Longest time a prediction-only commit stays without an fsync.
    pub flush_interval: Duration,
    /// Longest time a batch of predictions only waits for more before its commit
    /// (a commit costs the writer far more than an insert). A label or a close ends
    /// the wait.
    pub linger: Duration,
    /// A label arriving more than this after its prediction is late: stored, and
    /// counted apart from the confusion counts.
    pub late_after: Duration,
}

impl LogConfig {
    /// Defaults for a file: 30 days, 1 GiB, 65,536 queued commands, 1 s flush, 5 ms
    /// linger, late after 30 days.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            retention: Duration::from_secs(30 * 86_400),
            max_bytes: 1 << 30,
            queue_capacity: 65_536,
            flush_interval: Duration::from_secs(1),
            linger: Duration::from_millis(5),
            late_after: Duration::from_secs(30 * 86_400),
        }
    }
}

/// One prediction to log.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    /// The id returned to the caller.
    pub prediction_id: String,
    /// The `model` label value (shared with the server's model: logging a
    /// prediction copies no name).
    pub model: std::sync::Arc<str>,
    /// The `version` label value.
    pub version: std::sync::Arc<str>,
    /// The score (a classifier's) or value (a regressor's).
    pub score: f64,
    /// What was decided.
    pub decision: Decision,
    /// When, in unix seconds.
    pub unix_time: f64,
    /// The model's input row, when the caller keeps it.
    pub features: Option<Vec<f32>>,
}

/// The ground truth of one prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Truth {
    /// A classifier's label: true for the positive class (the fraud model: fraud).
    Class(bool),
    /// A regressor's observed value.
    Value(f64),
}

/// One label to join.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRecord {
    /// The prediction it belongs to.
    pub prediction_id: String,
    /// The ground truth.
    pub truth: Truth,
    /// When the label was observed, in unix seconds.
    pub unix_time: f64,
}

/// The prediction a label was joined to.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The prediction as logged.
    pub prediction: StoredPrediction,
    /// Seconds from the prediction to the label (0 when the label's time is earlier).
    pub delay_seconds: f64,
}

/// What became of one label.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelOutcome {
    /// Joined to its prediction for the first time: count it.
    Matched(Joined),
    /// Joined, but more than [`LogConfig::late_after`] after its prediction: stored,
    /// counted apart.
    Late(Joined),
    /// The prediction already has a label: the first one stands.
    Duplicate(StoredPrediction),
    /// No prediction with that id (never logged, dropped, or past retention). The
    /// label is stored, so it is kept like any acknowledged label.
    Unmatched,
}

impl LabelOutcome {
    /// The outcome's name, as the API reports it.
    pub fn as_str(&self) -> &'static str {
        match self {
            LabelOutcome::Matched(_) => "matched",
            LabelOutcome::Late(_) => "late",
            LabelOutcome::Duplicate(_) => "duplicate",
            LabelOutcome::Unmatched => "unmatched",
        }
    }
}

/// Called by the writer thread once a batch of labels is durable (or failed).
pub type LabelsDone = Box<dyn FnOnce(Result<Vec<LabelOutcome>, LogError>) + Send>;

enum Command {
    Prediction(PredictionRecord),
    Labels(Vec<LabelRecord>, LabelsDone),
    Stop,
}

/// The prediction log: a redb file and the writer thread that owns its writes.
pub struct PredictionLog {
    db: Arc<Database>,
    sender: SyncSender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The writer thread, to unpark it from its linger.
    waker: std::thread::Thread,
    /// Predictions queued so far (every `WAKE_EVERY`th unparks the writer).
    queued: AtomicU64,
    dropped: AtomicU64,
    path: PathBuf,
}

impl std::fmt::Debug for PredictionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictionLog")
            .field("path", &self.path)
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PredictionLog {
    /// Opens (or creates) the log and starts its writer thread. A file left by a
    /// crash is repaired by redb on open.
    ///
    /// # Errors
    /// [`LogError::Open`] when the file cannot be opened (another process holds it,
    /// no permission, not a redb file).
    pub fn open(config: LogConfig) -> Result<Self, LogError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| LogError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::create(&config.path).map_err(|source| LogError::Open {
            path: config.path.clone(),
            source,
        })?;
        let db = Arc::new(db);
        {
            let txn = db.begin_write()?;
            txn.open_table(PREDICTIONS)?;
            txn.open_table(LABELS)?;
            txn.open_table(RETENTION)?;
            txn.open_table(META)?;
            retention::migrate_legacy(&txn)?;
            txn.commit()?;
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel(config.queue_capacity.max(1));
        let writer = Writer {
            db: db.clone(),
            config: config.clone(),
            last_durable: Instant::now(),
            last_sweep: Instant::now(),
            dirty: false,
        };
        let thread = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| LogError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            db,
            sender,
            waker: thread.thread().clone(),
            writer: Mutex::new(Some(thread)),
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            path: config.path,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one prediction without blocking. False when it was dropped: the queue
    /// is full, the id is empty or longer than [`MAX_ID_LEN`], or the log is closed.
    pub fn record(&self, prediction: PredictionRecord) -> bool {
        if prediction.prediction_id.is_empty() || prediction.prediction_id.len() > MAX_ID_LEN {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        match self.sender.try_send(Command::Prediction(prediction)) {
            Ok(()) => {
                if self.queued.fetch_add(1, Ordering::Relaxed) % WAKE_EVERY as u64
                    == WAKE_EVERY as u64 - 1
                {
                    self.waker.unpark();
                }
                true
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Predictions dropped so far by [`PredictionLog::record`].
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues labels without blocking; `done` is called from the writer thread with
    /// one outcome per label, in order, once they are durable.
    ///
    /// # Errors
    /// [`LogError::Full`] or [`LogError::Closed`]: nothing was queued, and `done` is
    /// not called.
    pub fn submit_labels(
        &self,
        labels: Vec<LabelRecord>,
        done: LabelsDone,
    ) -> Result<(), LogError> {
        match self.sender.try_send(Command::Labels(labels, done)) {
            Ok(()) => {
                self.waker.unpark();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(LogError::Full),
            Err(TrySendError::Disconnected(_)) => Err(LogError::Closed),
        }
    }

    /// Labels and waits for their outcomes (for tools and tests; a server uses
    /// [`PredictionLog::submit_labels`]).
    ///
    /// # Errors
    /// As [`PredictionLog::submit_labels`], or a failed write.
    pub fn label_blocking(&self, labels: Vec<LabelRecord>) -> Result<Vec<LabelOutcome>, LogError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit_labels(
            labels,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.recv().map_err(|_| LogError::Closed)?
    }

    /// The logged prediction with this id.
    ///
    /// # Errors
    /// A failed read.
    pub fn prediction(&self, id: &str) -> Result<Option<StoredPrediction>, LogError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PREDICTIONS)?;
        let value = table.get(id)?;
        value
            .map(|v| codec::decode_prediction(v.value()))
            .transpose()
    }

    /// The label stored for this id.
    ///
    /// # Errors
    /// A failed read.
    pub fn label(&self, id: &str) -> Result<Option<StoredLabel>, LogError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LABELS)?;
        let value = table.get(id)?;
        value.map(|v| codec::decode_label(v.value())).transpose()
    }

    /// Every stored label with its prediction id, in id order.
    ///
    /// # Errors
    /// A failed read.
    pub fn labels(&self) -> Result<Vec<(String, StoredLabel)>, LogError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LABELS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_string(), codec::decode_label(v.value())?));
        }
        Ok(out)
    }

    /// (predictions, labels, stored bytes) in the log now.
    ///
    /// # Errors
    /// A failed read.
    pub fn stats(&self) -> Result<(u64, u64, u64), LogError> {
        use redb::ReadableTableMetadata as _;
        let txn = self.db.begin_read()?;
        let predictions = txn.open_table(PREDICTIONS)?.len()?;
        let labels = txn.open_table(LABELS)?.len()?;
        let bytes = txn
            .open_table(META)?
            .get(STORED_BYTES)?
            .map_or(0, |v| v.value());
        Ok((predictions, labels, bytes))
    }

    /// Writes what is queued, makes it durable and stops the writer. Later records
    /// are dropped and later labels refused. Idempotent.
    pub fn close(&self) {
        let thread = self.writer.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            // A blocking send: shutdown waits for the queue to drain.
            let _ = self.sender.send(Command::Stop);
            self.waker.unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for PredictionLog {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer {
    db: Arc<Database>,
    config: LogConfig,
    last_durable: Instant,
    last_sweep: Instant,
    /// A commit since the last durable one.
    dirty: bool,
}

/// How often the writer deletes what retention no longer keeps.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

fn bytes_of(id: &str, value: &[u8]) -> u64 {
    // The key twice (the record and its retention entry) and the entry's time stamp.
    (2 * id.len() + value.len() + 8) as u64
}

impl Writer {
    fn run(mut self, receiver: Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = match receiver.recv_timeout(self.config.flush_interval) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Command::Stop),
            };
            let mut stop = false;
            if let Some(first) = first {
                // A batch of predictions only lingers (LogConfig::linger) for more;
                // labels and Stop commit at once.
                let mut urgent = !matches!(first, Command::Prediction(_));
                batch.push(first);
                let linger_until = Instant::now() + self.config.linger;
                let mut disconnected = false;
                loop {
                    while batch.len() < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(command) => {
                                urgent |= !matches!(command, Command::Prediction(_));
                                batch.push(command);
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                disconnected = true;
                                break;
                            }
                        }
                    }
                    let left = linger_until.saturating_duration_since(Instant::now());
                    if urgent || disconnected || batch.len() >= MAX_BATCH || left.is_zero() {
                        break;
                    }
                    // Parked, not on the channel: queued predictions wake nobody. A
                    // label, Stop or every WAKE_EVERYth prediction unparks (an unpark
                    // before the park makes it return at once, so none is missed).
                    std::thread::park_timeout(left);
                }
            }
            let mut writes = Vec::with_capacity(batch.len());
            for command in batch.drain(..) {
                match command {
                    Command::Stop => stop = true,
                    other => writes.push(other),
                }
            }
            if let Err(e) = self.write(writes, stop) {
                tracing::error!(error = %e, "prediction log write failed");
            }
            if stop {
                return;
            }
        }
    }

    /// One write transaction for the batch; labels' callbacks after its commit.
    fn write(&mut self, commands: Vec<Command>, stop: bool) -> Result<(), LogError> {
        let has_labels = commands.iter().any(|c| matches!(c, Command::Labels(..)));
        let flush_due = self.dirty && self.last_durable.elapsed() >= self.config.flush_interval;
        let sweep_due = self.last_sweep.elapsed() >= SWEEP_INTERVAL;
        if commands.is_empty() && !flush_due && !sweep_due && (!stop || !self.dirty) {
            return Ok(());
        }
        let mut pending: Vec<(Vec<LabelOutcome>, LabelsDone)> = Vec::new();
        let result = (|| -> Result<(), LogError> {
            let mut txn = self.db.begin_write()?;
            let durable = has_labels || flush_due || stop;
            txn.set_durability(if durable {
                Durability::Immediate
            } else {
                Durability::None
            })
            .map_err(|e| LogError::Storage(e.to_string()))?;
            {
                let mut predictions = txn.open_table(PREDICTIONS)?;
                let mut labels = txn.open_table(LABELS)?;
                let mut retention_table = txn.open_table(RETENTION)?;
                let mut meta = txn.open_table(META)?;
                let mut bytes = meta.get(STORED_BYTES)?.map_or(0, |v| v.value());
                let mut buf = Vec::with_capacity(256);
                let mut written = retention::Batch::default();
                for command in commands {
                    match command {
                        Command::Prediction(p) => {
                            buf.clear();
                            codec::encode_prediction(&p, &mut buf);
                            let ms = to_millis(p.unix_time);
                            let old = predictions
                                .insert(p.prediction_id.as_str(), buf.as_slice())?
                                .map(|old| old.value().len());
                            if let Some(old_len) = old {
                                // The same id again (a collector's retry): replaced. Its
                                // earlier retention entry no longer matches its time,
                                // so the sweep passes over it.
                                bytes = bytes.saturating_sub(
                                    bytes_of(&p.prediction_id, &[]) + old_len as u64,
                                );
                            }
                            written.push(retention::Kind::Prediction, ms, &p.prediction_id);
                            bytes += bytes_of(&p.prediction_id, &buf);
                        }
                        Command::Labels(batch, done) => {
                            let mut outcomes = Vec::with_capacity(batch.len());
                            for label in batch {
                                let outcome = join(
                                    &label,
                                    &mut predictions,
                                    &mut labels,
                                    &mut written,
                                    &mut bytes,
                                    self.config.late_after,
                                )?;
                                outcomes.push(outcome);
                            }
                            pending.push((outcomes, done));
                        }
                        Command::Stop => {}
                    }
                }
                if !written.is_empty() {
                    let commit = meta.get(NEXT_COMMIT)?.map_or(0, |v| v.value());
                    retention_table.insert((written.newest_ms(), commit), written.bytes())?;
                    meta.insert(NEXT_COMMIT, commit + 1)?;
                }
                if sweep_due {
                    bytes = sweep(
                        &mut predictions,
                        &mut labels,
                        &mut retention_table,
                        bytes,
                        &self.config,
                    )?;
                }
                meta.insert(STORED_BYTES, bytes)?;
            }
            txn.commit()?;
            if durable {
                self.last_durable = Instant::now();
                self.dirty = false;
            } else {
                self.dirty = true;
            }
            if sweep_due {
                self.last_sweep = Instant::now();
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                for (outcomes, done) in pending {
                    done(Ok(outcomes));
                }
                Ok(())
            }
            Err(e) => {
                for (_, done) in pending {
                    done(Err(LogError::Storage(e.to_string())));
                }
                Err(e)
            }
        }
    }
}

fn to_millis(unix_seconds: f64) -> u64 {
    if unix_seconds.is_finite() && unix_seconds > 0.0 {
        (unix_seconds * 1000.0) as u64
    } else {
        0
    }
}

fn join(
    label: &LabelRecord,
    predictions: &mut redb::Table<&str, &[u8]>,
    labels: &mut redb::Table<&str, &[u8]>,
    written: &mut retention::Batch,
    bytes: &mut u64,
    late_after: Duration,
) -> Result<LabelOutcome, LogError> {
    let id = label.prediction_id.as_str();
    let prediction = predictions
        .get(id)?
        .map(|v| codec::decode_prediction(v.value()))
        .transpose()?;
    if labels.get(id)?.is_some() {
        return Ok(match prediction {
            Some(p) => LabelOutcome::Duplicate(p),
            // A second label for an id that matched nothing is still a repeat.
            None => LabelOutcome::Unmatched,
        });
    }
    let outcome = match prediction {
        Some(prediction) => {
            let delay_seconds = (label.unix_time - prediction.unix_time).max(0.0);
            let joined = Joined {
                prediction,
                delay_seconds,
            };
            if delay_seconds > late_after.as_secs_f64() {
                LabelOutcome::Late(joined)
            } else {
                LabelOutcome::Matched(joined)
            }
        }
        None => LabelOutcome::Unmatched,
    };
    let stored = StoredLabel {
        truth: label.truth,
        unix_time: label.unix_time,
        outcome: codec::OutcomeKind::of(&outcome),
    };
    let mut buf = Vec::with_capacity(32);
    codec::encode_label(&stored, &mut buf);
    labels.insert(id, buf.as_slice())?;
    *bytes += bytes_of(id, &buf);
    if matches!(outcome, LabelOutcome::Unmatched) {
        // Kept by the label's own time, since there is no prediction to age with.
        written.push(retention::Kind::Label, to_millis(label.unix_time), id);
    }
    Ok(outcome)
}

/// Deletes past retention, then the oldest while over the byte budget; returns the
/// stored bytes.
fn sweep(
    predictions: &mut redb::Table<&str, &[u8]>,
    labels: &mut redb::Table<&str, &[u8]>,
    retention_table: &mut redb::Table<(u64, u64), &[u8]>,
    mut bytes: u64,
    config: &LogConfig,
) -> Result<u64, LogError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let cutoff = to_millis(now - config.retention.as_secs_f64());
    // Bounded per sweep, so one sweep never holds the writer for long.
    const MAX_DELETES: usize = 100_000;
    let mut deleted = 0;
    while deleted < MAX_DELETES {
        let Some(first) = retention_table.first()? else {
            break;
        };
        let key = first.0.value();
        let (newest_ms, _) = key;
        if !(newest_ms < cutoff || bytes > config.max_bytes) {
            // The usual case, every SWEEP_INTERVAL: nothing is due, nothing decoded.
            break;
        }
        // Oldest first within the commit, and only as far as needed: what is left of
        // it is written back under the same key.
        let mut entries = retention::entries(first.1.value())?;
        drop(first);
        entries.sort_by_key(|e| e.ms);
        let mut kept = entries.len();
        for (i, entry) in entries.iter().enumerate() {
            if !(entry.ms < cutoff || bytes > config.max_bytes) || deleted >= MAX_DELETES {
                kept = i;
                break;
            }
            bytes = retention::delete(entry, predictions, labels, bytes)?;
            deleted += 1;
        }
        retention_table.remove(key)?;
        if kept < entries.len() {
            let mut rest = retention::Batch::default();
            for entry in &entries[kept..] {
                rest.push(entry.kind, entry.ms, &entry.id);
            }
            retention_table.insert(key, rest.bytes())?;
            break;
        }
    }
    Ok(bytes)
}

mod retention;

#[cfg(test)]
mod tests;
