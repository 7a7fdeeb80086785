//! Module implementing the micro-batcher: a bounded queue in front of one inference
//! thread, and the direct call that skips it for a cheap model. See [`Batcher`] for
//! details.
//!
//! Requests are queued; the inference thread takes the first waiting row, then keeps
//! collecting until it has `max_batch` rows or the first row has waited `max_delay`,
//! and scores the batch in one model call. Under load, batches form by themselves
//! while the previous batch runs. A full queue refuses at once (429, `overloaded`)
//! instead of growing latency without bound.
//!
//! # Direct calls
//!
//! Batching pays when one call of many rows costs much less than many calls of one
//! row. For a model that answers a row in a few microseconds (a tree ensemble), it
//! never does: the hand-off to the inference thread and back (two thread wake-ups)
//! and the wait for company cost more than the model. So while the model's recent
//! calls took less than [`BatcherConfig::direct_below`], a row is scored on the
//! caller's own thread, at once, with no queue: one call of one row, its own input
//! and its own output, so no other row's score can reach it. Every call, direct or
//! batched, updates the estimate (a moving average of call durations; a batch's
//! duration bounds a one-row call's from above). Until the first batch has been
//! timed, and whenever the estimate reaches the limit, rows go through the queue. A
//! direct call's queue time is zero and its batch size one.
//!
//! # Row alignment
//!
//! Each job's fate is decided once per batch, just before the model call: a job whose
//! deadline has passed is answered `Expired`, a job whose caller has gone is dropped,
//! and every other job is *placed*: it is given the index of its row in the model's
//! input, and that index is the only thing used to pick its score from the output.
//! A caller that goes away during the model call therefore changes nothing for the
//! others: its answer is sent to nobody, and every other row keeps its own score.
//!
//! # Panics in the model
//!
//! The model call runs under `catch_unwind`. A panic answers every row of that batch
//! with [`BatchError::Panicked`] (a 500), is logged with its message, and the loop
//! starts again with fresh buffers: that is the restart. While it restarts,
//! [`InferenceHealth::ready`] is false, so `/readyz` answers 503. After
//! [`MAX_CONSECUTIVE_PANICS`] panicking batches with no successful batch between
//! them, the thread gives up: every waiting and later row gets
//! [`BatchError::Stopped`] (a 503), `/readyz` stays 503 with the reason, and
//! [`InferenceHealth::stopped`] resolves so the server can stop with a clear message
//! instead of staying up as a replica that answers nothing. A direct call that panics
//! counts the same way (its row gets `Panicked`; it counts as a restart and towards
//! the panics in a row), so the model's health does not depend on the path a row took.

use crate::features::MAX_FEATURES;
use modelwatch::ModelHandle;
use modelwatch_runtime::Model;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Panicking batches in a row after which the inference thread gives up.
pub const MAX_CONSECUTIVE_PANICS: u32 = 3;

/// Batcher settings.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    /// Most rows per model call.
    pub max_batch: usize,
    /// Longest the first row of a batch waits for company.
    pub max_delay: Duration,
    /// Rows that may wait; beyond this, requests are refused as overloaded.
    pub queue_capacity: usize,
    /// Rows are scored directly on the caller's thread, skipping the queue, while
    /// the model's recent calls took less than this; zero: always through the queue.
    pub direct_below: Duration,
}

/// What the inference thread answers for one row.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    /// The model's score.
    pub score: f32,
    /// Seconds the row waited in the queue.
    pub queue_seconds: f64,
    /// Seconds the batch took in the model.
    pub inference_seconds: f64,
    /// Rows in the batch.
    pub batch_size: usize,
    /// When the model call ended (the caller's next stage starts there, without
    /// another clock read).
    pub finished: Instant,
}

/// Why a row got no score.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BatchError {
    /// The queue is full.
    #[error("queue full")]
    Overloaded,
    /// The inference thread is gone (shutdown, or it gave up after repeated panics).
    #[error("inference thread stopped")]
    Stopped,
    /// The row's deadline passed before its batch ran.
    #[error("deadline passed in the queue")]
    Expired,
    /// The model failed.
    #[error("model failed: {0}")]
    Model(String),
    /// The model panicked while scoring this row's batch.
    #[error("model panicked: {0}")]
    Panicked(String),
}

struct Job {
    row: [f32; MAX_FEATURES],
    enqueued: Instant,
    deadline: Instant,
    reply: oneshot::Sender<Result<Scored, BatchError>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("enqueued", &self.enqueued)
            .finish()
    }
}

/// A job given its row in the batch input: `row` is its index there, fixed once.
struct Placed {
    row: usize,
    job: Job,
}

const RUNNING: u8 = 0;
const RESTARTING: u8 = 1;
const STOPPED: u8 = 2;

/// The inference thread's health, read by `/readyz`.
#[derive(Debug)]
pub struct InferenceHealth {
    state: AtomicU8,
    restarts: AtomicU64,
    /// Panicking calls since the last call that did not panic.
    consecutive_panics: AtomicU32,
    last_panic: Mutex<Option<String>>,
    stopped: watch::Sender<bool>,
}

impl InferenceHealth {
    fn new() -> Self {
        Self {
            state: AtomicU8::new(RUNNING),
            restarts: AtomicU64::new(0),
            consecutive_panics: AtomicU32::new(0),
            last_panic: Mutex::new(None),
            stopped: watch::Sender::new(false),
        }
    }

    /// True while the thread is scoring (not restarting, not stopped).
    pub fn ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    /// True once the thread has given up (or exited).
    pub fn is_stopped(&self) -> bool {
        self.state.load(Ordering::Acquire) == STOPPED
    }

    /// Times the loop restarted after a panic.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The message of the latest panic, if any.
    pub fn last_panic(&self) -> Option<String> {
        self.last_panic
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Why the thread is not ready, in words for `/readyz`; `None` when ready.
    pub fn reason(&self) -> Option<String> {
        let panic = self.last_panic().unwrap_or_default();
        match self.state.load(Ordering::Acquire) {
            RUNNING => None,
            RESTARTING => Some(format!(
                "inference thread restarting after a panic: {panic}"
            )),
            _ if panic.is_empty() => Some("inference thread stopped".into()),
            _ => Some(format!(
                "inference thread stopped after {MAX_CONSECUTIVE_PANICS} panicking batches in a row: {panic}"
            )),
        }
    }

    /// Resolves once the thread has given up; never resolves while it runs.
    pub async fn stopped(&self) {
        let mut rx = self.stopped.subscribe();
        // The sender lives in `self`, so `wait_for` only ends when the value is true.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    fn set(&self, state: u8) {
        // Once stopped, stopped for good: a restart that races a direct call's last
        // panic must not make the model look ready again.
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now != STOPPED).then_some(state)
            });
        if state == STOPPED {
            self.stopped.send_replace(true);
        }
    }

    fn record_panic(&self, message: String) {
        match self.last_panic.lock() {
            Ok(mut p) => *p = Some(message),
            Err(p) => *p.into_inner() = Some(message),
        }
    }

    /// Notes a panicking call; true when it makes [`MAX_CONSECUTIVE_PANICS`] in a row.
    fn panicked(&self, message: String) -> bool {
        self.record_panic(message);
        self.consecutive_panics.fetch_add(1, Ordering::AcqRel) + 1 >= MAX_CONSECUTIVE_PANICS
    }

    /// Notes a call that did not panic (written only when it changes something, so
    /// the hot path only reads the shared line).
    fn survived(&self) {
        if self.consecutive_panics.load(Ordering::Relaxed) != 0 {
            self.consecutive_panics.store(0, Ordering::Release);
        }
    }

    fn gave_up(&self) -> bool {
        self.consecutive_panics.load(Ordering::Acquire) >= MAX_CONSECUTIVE_PANICS
    }

    /// Stops for good: logged once, whichever path saw the last panic.
    fn give_up(&self) {
        if self.state.swap(STOPPED, Ordering::AcqRel) != STOPPED {
            tracing::error!(
                panics = self.consecutive_panics.load(Ordering::Relaxed),
                last = self.last_panic().unwrap_or_default(),
                "the model panicked in every recent batch; the inference thread stops"
            );
        }
        self.stopped.send_replace(true);
    }
}

/// What a direct call needs: the model, its metrics, and the estimate of a call's
/// duration that decides whether rows skip the queue.
#[derive(Debug)]
struct Direct {
    model: Arc<dyn Model>,
    metrics: ModelHandle,
    /// `BatcherConfig::direct_below` in nanoseconds; 0: never.
    limit_ns: u64,
    /// Moving average of recent calls' durations in nanoseconds; `u64::MAX` until
    /// the first call.
    call_ns: AtomicU64,
}

impl Direct {
    fn open(&self) -> bool {
        self.call_ns.load(Ordering::Relaxed) < self.limit_ns
    }

    /// Folds one call's duration into the estimate (a weight of 1/8: a stray slow
    /// call, a preempted thread, is forgotten within a few dozen calls).
    fn note_call(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos())
            .unwrap_or(u64::MAX / 2)
            .min(u64::MAX / 2);
        let old = self.call_ns.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            ns
        } else {
            old - old / 8 + ns / 8
        };
        self.call_ns.store(new, Ordering::Relaxed);
    }
}

/// The sending side of the queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: SyncSender<Job>,
    n_features: usize,
    health: Arc<InferenceHealth>,
    direct: Arc<Direct>,
}

impl Batcher {
    /// Starts the inference thread. It stops when every `Batcher` clone is dropped.
    pub fn start(
        model: Arc<dyn Model>,
        metrics: ModelHandle,
        config: BatcherConfig,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(config.queue_capacity.max(1));
        let n_features = model.n_features();
        let health = Arc::new(InferenceHealth::new());
        let direct = Arc::new(Direct {
            model: model.clone(),
            metrics: metrics.clone(),
            limit_ns: u64::try_from(config.direct_below.as_nanos()).unwrap_or(u64::MAX),
            call_ns: AtomicU64::new(u64::MAX),
        });
        let (thread_health, thread_direct) = (health.clone(), direct.clone());
        std::thread::Builder::new()
            .name("modelwatch-inference".into())
            .spawn(move || supervise(rx, model, metrics, config, thread_health, thread_direct))?;
        Ok(Self {
            tx,
            n_features,
            health,
            direct,
        })
    }

    /// The inference thread's health.
    pub fn health(&self) -> &Arc<InferenceHealth> {
        &self.health
    }

    /// Queues one row and waits for its score. `row` must be the model's width.
    ///
    /// Dropping the returned future (the caller went away) is safe at any point: the
    /// row is skipped if its batch has not started, and its score goes nowhere if it
    /// has; no other row's answer changes.
    pub async fn score(&self, row: &[f32], deadline: Instant) -> Result<Scored, BatchError> {
        if self.health.is_stopped() {
            return Err(BatchError::Stopped);
        }
        if self.is_direct() {
            return self.score_directly(&row[..self.n_features], deadline);
        }
        let mut fixed = [0f32; MAX_FEATURES];
        fixed[..self.n_features].copy_from_slice(&row[..self.n_features]);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            row: fixed,
            enqueued: Instant::now(),
            deadline,
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(BatchError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(BatchError::Stopped),
        }
        answer.await.unwrap_or(Err(BatchError::Stopped))
    }
}

impl Batcher {
    /// Whether the next row would skip the queue (the model's recent calls are under
    /// `direct_below`, and the thread is running).
    pub fn is_direct(&self) -> bool {
        self.direct.open() && self.health.ready()
    }

    /// One call of one row on this thread (see "Direct calls" in the module doc).
    fn score_directly(&self, row: &[f32], deadline: Instant) -> Result<Scored, BatchError> {
        let started = Instant::now();
        if deadline <= started {
            return Err(BatchError::Expired);
        }
        let mut out = [0f32; 1];
        let called = catch_unwind(AssertUnwindSafe(|| {
            self.direct.model.predict(row, &mut out)
        }));
        let took = started.elapsed();
        self.direct.note_call(took);
        self.direct.metrics.observe_batch_size(1);
        match called {
            Ok(result) => {
                self.health.survived();
                result.map_err(|e| BatchError::Model(e.to_string()))?;
                Ok(Scored {
                    score: out[0],
                    queue_seconds: 0.0,
                    inference_seconds: took.as_secs_f64(),
                    batch_size: 1,
                    finished: started + took,
                })
            }
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(panic = %message, rows = 1, "the model panicked (direct call)");
                if self.health.panicked(message.clone()) {
                    self.health.give_up();
                } else {
                    // Nothing to rebuild on this path: the restart is counted and the
                    // next row runs as after a restart of the thread.
                    self.health.restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        restarts = self.health.restarts(),
                        "inference restarting after a panic"
                    );
                }
                Err(BatchError::Panicked(message))
            }
        }
    }
}

/// Why [`run`] returned.
enum Exit {
    /// Every sender is gone: shutdown.
    Disconnected,
    /// The model panicked; the loop restarts.
    Panicked,
}

fn supervise(
    rx: Receiver<Job>,
    model: Arc<dyn Model>,
    metrics: ModelHandle,
    config: BatcherConfig,
    health: Arc<InferenceHealth>,
    direct: Arc<Direct>,
) {
    loop {
        // A panic in the loop's own code (not the model) is caught here too; the rows
        // of that batch then see their reply dropped and get `Stopped`.
        let exit = catch_unwind(AssertUnwindSafe(|| {
            run(&rx, &*model, &metrics, config, &health, &direct)
        }));
        match exit {
            Ok(Exit::Disconnected) => break,
            Ok(Exit::Panicked) => {}
            Err(payload) => {
                health.panicked(panic_message(payload.as_ref()));
            }
        }
        if health.gave_up() || health.is_stopped() {
            health.give_up();
            // Answer what is queued, and whatever arrives until the senders are gone.
            while let Ok(job) = rx.recv() {
                let _ = job.reply.send(Err(BatchError::Stopped));
            }
            return;
        }
        health.set(RESTARTING);
        health.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            restarts = health.restarts(),
            "inference loop restarting after a panic"
        );
    }
    health.set(STOPPED);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

fn run(
    rx: &Receiver<Job>,
    model: &dyn Model,
    metrics: &ModelHandle,
    config: BatcherConfig,
    health: &InferenceHealth,
    direct: &Direct,
) -> Exit {
    let width = model.n_features();
    let max_batch = config.max_batch.max(1);
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut placed: Vec<Placed> = Vec::with_capacity(max_batch);
    let mut input = vec![0f32; max_batch * width];
    let mut output = vec![0f32; max_batch];
    health.set(RUNNING);
    while let Ok(first) = rx.recv() {
        let flush_at = first.enqueued + config.max_delay;
        batch.push(first);
        while batch.len() < max_batch {
            let wait = flush_at.saturating_duration_since(Instant::now());
            let next = if wait.is_zero() {
                rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                rx.recv_timeout(wait)
            };
            match next {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }

        // A direct call's last panic stopped the model: nothing more is scored.
        if health.is_stopped() {
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(BatchError::Stopped));
            }
            return Exit::Panicked;
        }
        // Each job's fate is decided here, once: expired, gone, or placed at a row.
        let started = Instant::now();
        for job in batch.drain(..) {
            if job.deadline <= started {
                let _ = job.reply.send(Err(BatchError::Expired));
            } else if job.reply.is_closed() {
                // The caller went away: nobody to answer, no row to spend.
            } else {
                let row = placed.len();
                input[row * width..(row + 1) * width].copy_from_slice(&job.row[..width]);
                placed.push(Placed { row, job });
            }
        }
        let rows = placed.len();
        if rows == 0 {
            continue;
        }

        let called = catch_unwind(AssertUnwindSafe(|| {
            model.predict(&input[..rows * width], &mut output[..rows])
        }));
        let took = started.elapsed();
        direct.note_call(took);
        let inference_seconds = took.as_secs_f64();
        metrics.observe_batch_size(rows);
        match called {
            Ok(result) => {
                health.survived();
                for Placed { row, job } in placed.drain(..) {
                    let answer = match &result {
                        Ok(()) => Ok(Scored {
                            score: output[row],
                            queue_seconds: started.duration_since(job.enqueued).as_secs_f64(),
                            inference_seconds,
                            batch_size: rows,
                            finished: started + took,
                        }),
                        Err(e) => Err(BatchError::Model(e.to_string())),
                    };
                    // A caller that left during the model call is simply not there.
                    let _ = job.reply.send(answer);
                }
            }
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(panic = %message, rows, "the model panicked");
                health.panicked(message.clone());
                for Placed { job, .. } in placed.drain(..) {
                    let _ = job.reply.send(Err(BatchError::Panicked(message.clone())));
                }
                return Exit::Panicked;
            }
        }
    }
    Exit::Disconnected
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch::ModelSpec;
    use modelwatch_runtime::{Backend, RuntimeError};
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

    /// Scores each row as `row[0] * 10 + row[1]`, so every answer says which row it
    /// was. It can be held inside the model call, fail, or panic, on demand.
    #[derive(Debug, Default)]
    struct TestModel {
        /// When set, each call reports its row count here and waits for a token.
        gate: Option<(UnboundedSender<usize>, Mutex<mpsc::Receiver<()>>)>,
        /// Calls that fail (counted down) before calls succeed again.
        fail: AtomicUsize,
        /// Calls that panic (counted down).
        panic: AtomicUsize,
        /// Rows seen per call.
        calls: Mutex<Vec<usize>>,
    }

    impl Model for TestModel {
        fn n_features(&self) -> usize {
            2
        }
        fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), RuntimeError> {
            self.calls.lock().unwrap().push(out.len());
            if let Some((entered, release)) = &self.gate {
                entered.send(out.len()).unwrap();
                release.lock().unwrap().recv().unwrap();
            }
            if self
                .panic
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                panic!("injected panic in the test model");
            }
            if self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(RuntimeError::BatchShape {
                    len: input.len(),
                    rows: out.len(),
                    n_features: 2,
                });
            }
            for (i, o) in out.iter_mut().enumerate() {
                *o = input[i * 2] * 10.0 + input[i * 2 + 1];
            }
            Ok(())
        }
        fn backend(&self) -> Backend {
            Backend::Tract
        }
    }

    fn handle() -> ModelHandle {
        ModelHandle::disabled(&ModelSpec {
            name: "test".into(),
            version: "1".into(),
            ..ModelSpec::default()
        })
    }

    fn config(max_batch: usize, max_delay: Duration) -> BatcherConfig {
        BatcherConfig {
            max_batch,
            max_delay,
            queue_capacity: 64,
            direct_below: Duration::ZERO,
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    type Gate = (UnboundedReceiver<usize>, mpsc::Sender<()>);

    /// A model held inside each call: the test learns each call's row count from the
    /// first channel and lets it finish through the second.
    fn gated() -> (TestModel, Gate) {
        let (entered_tx, entered_rx) = unbounded_channel();
        let (release_tx, release_rx) = mpsc::channel();
        let model = TestModel {
            gate: Some((entered_tx, Mutex::new(release_rx))),
            ..TestModel::default()
        };
        (model, (entered_rx, release_tx))
    }

    fn row(i: usize) -> [f32; 2] {
        [(i / 10) as f32, (i % 10) as f32]
    }

    /// Spawns `n` scoring tasks (row i scores exactly i) and returns their handles.
    fn spawn_rows(
        batcher: &Batcher,
        rows: std::ops::Range<usize>,
    ) -> Vec<(usize, tokio::task::JoinHandle<Result<Scored, BatchError>>)> {
        rows.map(|i| {
            let b = batcher.clone();
            (
                i,
                tokio::spawn(async move { b.score(&row(i), far()).await }),
            )
        })
        .collect()
    }

    type Tasks = Vec<(usize, tokio::task::JoinHandle<Result<Scored, BatchError>>)>;

    /// Hangs up the callers whose row `leaves` picks: each task is aborted and
    /// awaited, so its future (and its reply slot) is gone when this returns.
    /// Returns the other callers, still waiting, and how many of the leavers were
    /// still waiting when they left (rather than already answered).
    async fn hang_up(tasks: Tasks, leaves: impl Fn(usize) -> bool) -> (Tasks, usize) {
        let mut kept = Vec::new();
        let mut cancelled = 0;
        for (i, task) in tasks {
            if leaves(i) {
                task.abort();
                cancelled += usize::from(task.await.is_err_and(|e| e.is_cancelled()));
            } else {
                kept.push((i, task));
            }
        }
        (kept, cancelled)
    }

    /// Lets every spawned task run up to its first wait. The test runtime has one
    /// thread, so after this each spawned `score` call has queued its row.
    async fn settle() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn every_row_gets_its_own_score() {
        let model: Arc<dyn Model> = Arc::new(TestModel::default());
        let b = Batcher::start(model, handle(), config(8, Duration::from_millis(5))).unwrap();
        for (i, task) in spawn_rows(&b, 0..50) {
            let scored = task.await.unwrap().unwrap();
            assert_eq!(scored.score, i as f32, "row {i}");
        }
    }

    /// The defect of issue 11: a caller that left between the two liveness checks
    /// shifted every later row of the batch by one.
    #[tokio::test]
    async fn a_caller_leaving_during_the_model_call_shifts_no_other_row() {
        let (model, (mut entered, release)) = gated();
        let model = Arc::new(model);
        let b =
            Batcher::start(model.clone(), handle(), config(16, Duration::from_secs(5))).unwrap();
        // Hold the first batch (one row) in the model while 16 more queue up.
        let first = spawn_rows(&b, 99..100);
        assert_eq!(entered.recv().await.unwrap(), 1);
        let tasks = spawn_rows(&b, 0..16);
        settle().await;
        release.send(()).unwrap();
        // The second batch now holds the 16 rows, inside the model.
        assert_eq!(entered.recv().await.unwrap(), 16);
        // Half the callers hang up while the model runs, every other row; awaiting
        // the aborted task makes sure its future (and its reply slot) is gone.
        let (kept, cancelled) = hang_up(tasks, |i| i % 2 == 0).await;
        assert_eq!(
            cancelled, 8,
            "every leaver left while its row was in the model"
        );
        release.send(()).unwrap();
        for (i, task) in kept {
            let scored = task.await.unwrap().unwrap();
            assert_eq!(scored.score, i as f32, "row {i} got another row's score");
            assert_eq!(scored.batch_size, 16);
        }
        assert_eq!(
            first
                .into_iter()
                .next()
                .unwrap()
                .1
                .await
                .unwrap()
                .unwrap()
                .score,
            99.0
        );
    }

    #[tokio::test]
    async fn a_caller_gone_before_the_batch_runs_is_skipped() {
        let (model, (mut entered, release)) = gated();
        let model = Arc::new(model);
        let b =
            Batcher::start(model.clone(), handle(), config(16, Duration::from_secs(5))).unwrap();
        let first = spawn_rows(&b, 99..100);
        assert_eq!(entered.recv().await.unwrap(), 1);
        let tasks = spawn_rows(&b, 0..10);
        settle().await;
        // Rows 0..5 leave while still queued.
        let (kept, cancelled) = hang_up(tasks, |i| i < 5).await;
        assert_eq!(cancelled, 5);
        release.send(()).unwrap();
        // The next batch holds only the five callers still waiting.
        assert_eq!(entered.recv().await.unwrap(), 5);
        release.send(()).unwrap();
        for (i, task) in kept {
            assert_eq!(task.await.unwrap().unwrap().score, i as f32);
        }
        let _ = first.into_iter().next().unwrap().1.await;
        assert_eq!(*model.calls.lock().unwrap(), vec![1, 5]);
    }

    #[tokio::test]
    async fn a_caller_leaving_after_its_answer_was_sent_disturbs_nothing() {
        let (model, (mut entered, release)) = gated();
        let b =
            Batcher::start(Arc::new(model), handle(), config(8, Duration::from_secs(5))).unwrap();
        let first = spawn_rows(&b, 99..100);
        assert_eq!(entered.recv().await.unwrap(), 1);
        let tasks = spawn_rows(&b, 0..8);
        settle().await;
        release.send(()).unwrap();
        assert_eq!(entered.recv().await.unwrap(), 8);
        release.send(()).unwrap();
        // The thread answers a batch before it takes the next one: once the probe is
        // inside the model, all eight answers have been sent, and none read yet.
        let probe = spawn_rows(&b, 50..51);
        assert_eq!(entered.recv().await.unwrap(), 1);
        let (kept, _) = hang_up(tasks, |i| i % 2 == 1).await;
        release.send(()).unwrap();
        for (i, task) in kept.into_iter().chain(probe).chain(first) {
            assert_eq!(task.await.unwrap().unwrap().score, i as f32);
        }
    }

    #[tokio::test]
    async fn an_expired_row_is_answered_without_the_model() {
        let model = Arc::new(TestModel::default());
        let b =
            Batcher::start(model.clone(), handle(), config(4, Duration::from_millis(1))).unwrap();
        let past = Instant::now();
        assert_eq!(
            b.score(&row(1), past).await.unwrap_err(),
            BatchError::Expired
        );
        assert!(model.calls.lock().unwrap().is_empty());
        assert_eq!(b.score(&row(7), far()).await.unwrap().score, 7.0);
    }

    #[tokio::test]
    async fn a_lone_row_is_not_held_for_company_and_a_full_batch_goes_at_once() {
        let model = Arc::new(TestModel::default());
        // A small max_delay: a lone row is answered with a batch of one.
        let b = Batcher::start(
            model.clone(),
            handle(),
            config(32, Duration::from_millis(2)),
        )
        .unwrap();
        assert_eq!(b.score(&row(3), far()).await.unwrap().batch_size, 1);
        // A max_delay of an hour: the batch still goes as soon as it is full.
        let model = Arc::new(TestModel::default());
        let b = Batcher::start(
            model.clone(),
            handle(),
            config(4, Duration::from_secs(3600)),
        )
        .unwrap();
        for (i, task) in spawn_rows(&b, 0..4) {
            let scored = task.await.unwrap().unwrap();
            assert_eq!((scored.score, scored.batch_size), (i as f32, 4));
        }
    }

    #[tokio::test]
    async fn a_model_error_fails_its_batch_only() {
        let model = TestModel::default();
        model.fail.store(1, Ordering::SeqCst);
        let b = Batcher::start(
            Arc::new(model),
            handle(),
            config(4, Duration::from_millis(1)),
        )
        .unwrap();
        assert!(matches!(
            b.score(&row(1), far()).await,
            Err(BatchError::Model(_))
        ));
        assert_eq!(b.score(&row(2), far()).await.unwrap().score, 2.0);
        assert!(b.health().ready());
    }

    #[tokio::test]
    async fn a_panic_in_the_model_fails_its_batch_and_the_thread_restarts() {
        let model = TestModel::default();
        model.panic.store(1, Ordering::SeqCst);
        let b = Batcher::start(
            Arc::new(model),
            handle(),
            config(4, Duration::from_millis(1)),
        )
        .unwrap();
        match b.score(&row(1), far()).await {
            Err(BatchError::Panicked(m)) => assert!(m.contains("injected panic"), "{m}"),
            other => panic!("expected a panic error, got {other:?}"),
        }
        assert_eq!(b.score(&row(2), far()).await.unwrap().score, 2.0);
        assert_eq!(b.health().restarts(), 1);
        assert!(b.health().ready());
        assert!(!b.health().is_stopped());
    }

    #[tokio::test]
    async fn repeated_panics_stop_the_thread_and_say_why() {
        let model = TestModel::default();
        model.panic.store(usize::MAX, Ordering::SeqCst);
        let b = Batcher::start(
            Arc::new(model),
            handle(),
            config(4, Duration::from_millis(1)),
        )
        .unwrap();
        let reason = panics_in_a_row_stop(&b).await;
        assert!(reason.contains("injected panic"), "{reason}");
    }

    /// Scores a row MAX_CONSECUTIVE_PANICS times against a model that panics on
    /// every call, checks that the model then stops and refuses rows, and returns
    /// the reason `/readyz` would give.
    async fn panics_in_a_row_stop(b: &Batcher) -> String {
        for _ in 0..MAX_CONSECUTIVE_PANICS {
            assert!(matches!(
                b.score(&row(1), far()).await,
                Err(BatchError::Panicked(_))
            ));
        }
        // `stopped()` resolves; it must, or this test hangs and the harness reports it.
        b.health().stopped().await;
        assert!(!b.health().ready());
        assert_eq!(
            b.score(&row(1), far()).await.unwrap_err(),
            BatchError::Stopped
        );
        b.health().reason().unwrap()
    }

    fn direct(max_batch: usize, direct_below: Duration) -> BatcherConfig {
        BatcherConfig {
            direct_below,
            ..config(max_batch, Duration::from_millis(1))
        }
    }

    /// Scores one row through the queue (the estimate is unknown until a call is
    /// timed), so the next rows may go direct.
    async fn first_call(b: &Batcher) {
        assert!(!b.is_direct(), "direct before any call was timed");
        assert_eq!(b.score(&row(7), far()).await.unwrap().score, 7.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cheap_model_is_called_directly_and_every_row_keeps_its_score() {
        let model = Arc::new(TestModel::default());
        let b = Batcher::start(model.clone(), handle(), direct(8, Duration::from_secs(1))).unwrap();
        first_call(&b).await;
        assert!(b.is_direct());
        // Concurrent callers on two threads, each with its own row: every score is its own.
        for (i, task) in spawn_rows(&b, 0..400) {
            let scored = task.await.unwrap().unwrap();
            assert_eq!(scored.score, i as f32, "row {i}");
            assert_eq!(scored.batch_size, 1);
            assert_eq!(scored.queue_seconds, 0.0);
        }
        // The first call went through the thread; every later one was a call of one row.
        let calls = model.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 401, "{calls:?}");
        assert!(calls.iter().all(|&rows| rows == 1), "{calls:?}");
    }

    #[tokio::test]
    async fn a_model_slower_than_the_limit_goes_back_to_the_queue() {
        /// Scores like TestModel, sleeping `slow_ms` in each call.
        #[derive(Debug, Default)]
        struct Sleepy {
            slow_ms: AtomicU64,
        }
        impl Model for Sleepy {
            fn n_features(&self) -> usize {
                2
            }
            fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), RuntimeError> {
                std::thread::sleep(Duration::from_millis(self.slow_ms.load(Ordering::SeqCst)));
                for (i, o) in out.iter_mut().enumerate() {
                    *o = input[i * 2] * 10.0 + input[i * 2 + 1];
                }
                Ok(())
            }
            fn backend(&self) -> Backend {
                Backend::Tract
            }
        }
        let model = Arc::new(Sleepy::default());
        // 2 ms: far above a call that does not sleep, far below three that sleep 20 ms
        // averaged in with a weight of 1/8 each (at least 7.3 ms).
        let b =
            Batcher::start(model.clone(), handle(), direct(8, Duration::from_millis(2))).unwrap();
        first_call(&b).await;
        assert!(b.is_direct());
        model.slow_ms.store(20, Ordering::SeqCst);
        for i in 0..3 {
            assert_eq!(b.score(&row(i), far()).await.unwrap().score, i as f32);
        }
        assert!(
            !b.is_direct(),
            "still direct after three calls of 20 ms under a 2 ms limit"
        );
        // Through the queue again; fast calls bring the estimate back under the limit.
        model.slow_ms.store(0, Ordering::SeqCst);
        let mut calls = 0;
        while !b.is_direct() {
            calls += 1;
            assert!(calls <= 200, "the estimate never came back under the limit");
            assert_eq!(b.score(&row(12), far()).await.unwrap().score, 12.0);
        }
    }

    #[tokio::test]
    async fn a_direct_call_past_its_deadline_is_expired_without_the_model() {
        let model = Arc::new(TestModel::default());
        let b = Batcher::start(model.clone(), handle(), direct(8, Duration::from_secs(1))).unwrap();
        first_call(&b).await;
        let past = Instant::now() - Duration::from_millis(1);
        assert_eq!(
            b.score(&row(3), past).await.unwrap_err(),
            BatchError::Expired
        );
        assert_eq!(
            model.calls.lock().unwrap().len(),
            1,
            "the model ran for an expired row"
        );
    }

    #[tokio::test]
    async fn a_direct_model_error_fails_its_row_only() {
        let model = Arc::new(TestModel::default());
        let b = Batcher::start(model.clone(), handle(), direct(8, Duration::from_secs(1))).unwrap();
        first_call(&b).await;
        model.fail.store(1, Ordering::SeqCst);
        assert!(matches!(
            b.score(&row(4), far()).await,
            Err(BatchError::Model(_))
        ));
        // An error is not a panic: no restart, still direct, the next row scores.
        assert_eq!(b.health().restarts(), 0);
        assert!(b.is_direct());
        assert_eq!(b.score(&row(5), far()).await.unwrap().score, 5.0);
    }

    #[tokio::test]
    async fn direct_panics_count_as_restarts_and_three_in_a_row_stop_the_model() {
        let model = Arc::new(TestModel::default());
        let b = Batcher::start(model.clone(), handle(), direct(8, Duration::from_secs(1))).unwrap();
        first_call(&b).await;
        model.panic.store(1, Ordering::SeqCst);
        assert!(matches!(
            b.score(&row(1), far()).await,
            Err(BatchError::Panicked(_))
        ));
        assert_eq!(b.health().restarts(), 1);
        assert!(b.health().ready());
        // A call that does not panic ends the run of panics.
        assert_eq!(b.score(&row(2), far()).await.unwrap().score, 2.0);
        model.panic.store(usize::MAX, Ordering::SeqCst);
        let reason = panics_in_a_row_stop(&b).await;
        assert!(reason.contains("panicking batches in a row"), "{reason}");
        // Three panics: one before the successful call, two after it restarted.
        assert_eq!(b.health().restarts(), 3);
    }
}
