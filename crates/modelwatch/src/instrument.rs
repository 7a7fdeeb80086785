//! Module implementing request guards and stage timers. See [`RequestGuard`] and
//! [`StageTimer`] for details.

use crate::labels::{Decision, Stage, Status};
use crate::metrics::ModelHandle;
use std::future::Future;
use std::time::Instant;

/// Tracks one request from start to finish: it raises `model_active_requests` while
/// alive, and on [`RequestGuard::finish`] counts the outcome and observes the
/// end-to-end latency.
///
/// A guard dropped without `finish` (a panic, a cancelled future) counts as
/// `status="error"`, so a lost request is never invisible. Latency is observed for
/// every outcome except `rejected`: invalid input is answered in microseconds and
/// would flatter the latency SLO.
#[derive(Debug)]
#[must_use = "a request guard measures until it is finished or dropped"]
pub struct RequestGuard<'a> {
    handle: &'a ModelHandle,
    start: Instant,
    finished: bool,
}

impl<'a> RequestGuard<'a> {
    pub(crate) fn new(handle: &'a ModelHandle) -> Self {
        handle.inner.active.inc();
        Self {
            handle,
            start: Instant::now(),
            finished: false,
        }
    }

    /// When the request started.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// Ends the request with its outcome.
    pub fn finish(mut self, status: Status, decision: Decision) {
        self.record(status, decision);
    }

    fn record(&mut self, status: Status, decision: Decision) {
        self.finished = true;
        let inner = &self.handle.inner;
        inner.active.dec();
        inner.requests[status.index()][decision.index()].inc();
        if status != Status::Rejected {
            inner.request_duration.observe(self.start.elapsed().as_secs_f64());
        }
    }
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.record(Status::Error, Decision::None);
        }
    }
}

/// Times one stage until it is dropped or stopped.
#[derive(Debug)]
#[must_use = "a stage timer measures until it is dropped"]
pub struct StageTimer<'a> {
    handle: &'a ModelHandle,
    stage: Stage,
    start: Instant,
    stopped: bool,
}

impl StageTimer<'_> {
    /// Stops the timer, records the stage duration and returns it in seconds.
    pub fn stop(mut self) -> f64 {
        self.observe()
    }

    fn observe(&mut self) -> f64 {
        self.stopped = true;
        let seconds = self.start.elapsed().as_secs_f64();
        self.handle.observe_stage(self.stage, seconds);
        seconds
    }
}

impl Drop for StageTimer<'_> {
    fn drop(&mut self) {
        if !self.stopped {
            self.observe();
        }
    }
}

impl ModelHandle {
    /// Starts tracking one request. Finish it with [`RequestGuard::finish`].
    pub fn start_request(&self) -> RequestGuard<'_> {
        RequestGuard::new(self)
    }

    /// Starts timing `stage`; the duration is recorded when the timer drops.
    pub fn stage_timer(&self, stage: Stage) -> StageTimer<'_> {
        StageTimer {
            handle: self,
            stage,
            start: Instant::now(),
            stopped: false,
        }
    }

    /// Runs `f` and records its duration as `stage`.
    pub fn time_stage<T>(&self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let _timer = self.stage_timer(stage);
        f()
    }

    /// Awaits `future` and records the time until it completes as `stage`.
    pub async fn time_stage_async<F: Future>(&self, stage: Stage, future: F) -> F::Output {
        let _timer = self.stage_timer(stage);
        future.await
    }
}
