//! Module implementing the micro-batcher: a bounded queue in front of one inference
//! thread. See [`Batcher`] for details.
//!
//! Requests are queued; the inference thread takes the first waiting row, then keeps
//! collecting until it has `max_batch` rows or the first row has waited `max_delay`,
//! and scores the batch in one model call. Under load, batches form by themselves
//! while the previous batch runs. A full queue refuses at once (429, `overloaded`)
//! instead of growing latency without bound.

use crate::features::MAX_FEATURES;
use modelwatch::ModelHandle;
use modelwatch_runtime::Model;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Batcher settings.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    /// Most rows per model call.
    pub max_batch: usize,
    /// Longest the first row of a batch waits for company.
    pub max_delay: Duration,
    /// Rows that may wait; beyond this, requests are refused as overloaded.
    pub queue_capacity: usize,
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
}

/// Why a row got no score.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BatchError {
    /// The queue is full.
    #[error("queue full")]
    Overloaded,
    /// The inference thread is gone (shutdown).
    #[error("inference thread stopped")]
    Stopped,
    /// The row's deadline passed before its batch ran.
    #[error("deadline passed in the queue")]
    Expired,
    /// The model failed.
    #[error("model failed: {0}")]
    Model(String),
}

struct Job {
    row: [f32; MAX_FEATURES],
    enqueued: Instant,
    deadline: Instant,
    reply: oneshot::Sender<Result<Scored, BatchError>>,
}

/// The sending side of the queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: SyncSender<Job>,
    n_features: usize,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("enqueued", &self.enqueued)
            .finish()
    }
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
        std::thread::Builder::new()
            .name("modelwatch-inference".into())
            .spawn(move || run(rx, model, metrics, config))?;
        Ok(Self { tx, n_features })
    }

    /// Queues one row and waits for its score. `row` must be the model's width.
    pub async fn score(&self, row: &[f32], deadline: Instant) -> Result<Scored, BatchError> {
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

fn run(rx: Receiver<Job>, model: Arc<dyn Model>, metrics: ModelHandle, config: BatcherConfig) {
    let width = model.n_features();
    let max_batch = config.max_batch.max(1);
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut input = vec![0f32; max_batch * width];
    let mut output = vec![0f32; max_batch];
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
        let started = Instant::now();
        // Rows whose caller has given up are answered without running the model.
        let mut live = 0;
        for job in &batch {
            if job.deadline > started && !job.reply.is_closed() {
                input[live * width..(live + 1) * width].copy_from_slice(&job.row[..width]);
                live += 1;
            }
        }
        let result = if live > 0 {
            model.predict(&input[..live * width], &mut output[..live])
        } else {
            Ok(())
        };
        let inference_seconds = started.elapsed().as_secs_f64();
        if live > 0 {
            metrics.observe_batch_size(live);
        }
        let mut i = 0;
        for job in batch.drain(..) {
            let answer = if job.deadline > started && !job.reply.is_closed() {
                let answer = match &result {
                    Ok(()) => Ok(Scored {
                        score: output[i],
                        queue_seconds: started.duration_since(job.enqueued).as_secs_f64(),
                        inference_seconds,
                        batch_size: live,
                    }),
                    Err(e) => Err(BatchError::Model(e.to_string())),
                };
                i += 1;
                answer
            } else {
                Err(BatchError::Expired)
            };
            let _ = job.reply.send(answer);
        }
    }
}
