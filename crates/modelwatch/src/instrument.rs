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
/// A guard dropped without `finish` counts as `status="cancelled"`: in an async
/// server that is a future dropped because its client went away, so a lost request
/// is never invisible and a hang-up spends no error budget. Latency is observed for
/// every outcome inside the SLOs ([`Status::in_slo`]): invalid input is answered in
/// microseconds and would flatter the latency SLO, and a hang-up's duration is the
/// client's choice.
#[derive(Debug)]
#[must_use = "a request guard measures until it is finished or dropped"]
pub struct RequestGuard<'a> {
    handle: &'a ModelHandle,
    start: Instant,
    last_mark: Instant,
    finished: bool,
}

impl<'a> RequestGuard<'a> {
    pub(crate) fn new(handle: &'a ModelHandle) -> Self {
        if handle.inner.enabled {
            handle.inner.active.inc();
        }
        let start = Instant::now();
        Self {
            handle,
            start,
            last_mark: start,
            finished: false,
        }
    }

    /// Records `stage` as the time since the previous mark (or the request start) and
    /// returns it in seconds.
    ///
    /// For stages that run back to back this reads the clock once per stage instead of
    /// twice, the cheapest way to time a pipeline.
    pub fn mark_stage(&mut self, stage: Stage) -> f64 {
        let now = Instant::now();
        let seconds = now.duration_since(self.last_mark).as_secs_f64();
        self.last_mark = now;
        self.handle.observe_stage(stage, seconds);
        seconds
    }

    /// When the request started.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// Restarts the stage clock without recording anything: the next
    /// [`RequestGuard::mark_stage`] measures from now. Use it after recording stages
    /// timed elsewhere (for example by a batching thread).
    pub fn restart_mark(&mut self) {
        self.last_mark = Instant::now();
    }

    /// As [`RequestGuard::restart_mark`], from `at` (a time the caller already read,
    /// such as the end of a batch): the next stage measures from there.
    pub fn restart_mark_at(&mut self, at: Instant) {
        self.last_mark = at;
    }

    /// Ends the request with its outcome.
    pub fn finish(mut self, status: Status, decision: Decision) {
        self.record(status, decision, None);
    }

    /// Ends the request with its outcome at its last stage mark, reading no clock:
    /// for a caller that has just marked its last stage
    /// ([`RequestGuard::mark_stage`]), so the request's duration is the sum of its
    /// stages.
    pub fn finish_at_mark(mut self, status: Status, decision: Decision) {
        let end = self.last_mark;
        self.record(status, decision, Some(end));
    }

    fn record(&mut self, status: Status, decision: Decision, end: Option<Instant>) {
        self.finished = true;
        let inner = &self.handle.inner;
        if !inner.enabled {
            return;
        }
        inner.active.dec();
        inner.requests[crate::metrics::outcome_index(status, decision)].inc();
        if status.in_slo() {
            inner.request_duration.observe(
                end.unwrap_or_else(Instant::now)
                    .duration_since(self.start)
                    .as_secs_f64(),
            );
        }
    }
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.record(Status::Cancelled, Decision::None, None);
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

#[cfg(test)]
mod tests {
    use crate::prometheus_client::registry::Registry;
    use crate::{Decision, Format, Metrics, MetricsConfig, ModelSpec, Stage, Status};

    fn model() -> (Registry, crate::ModelHandle) {
        let mut registry = Registry::default();
        let config = MetricsConfig {
            process_metrics: false,
            ..MetricsConfig::default()
        };
        let metrics = Metrics::register(&mut registry, &config).unwrap();
        let spec = ModelSpec {
            name: "m".into(),
            version: "1".into(),
            ..ModelSpec::default()
        };
        (registry, metrics.model(&spec))
    }

    fn scrape(registry: &Registry) -> String {
        let mut out = String::new();
        Format::PrometheusText.encode(registry, &mut out).unwrap();
        out
    }

    #[test]
    fn guard_tracks_in_flight_and_outcome() {
        let (registry, model) = model();
        let request = model.start_request();
        assert_eq!(model.active_requests(), 1);
        request.finish(Status::Success, Decision::AtOrAbove);
        assert_eq!(model.active_requests(), 0);
        assert_eq!(model.requests(Status::Success, Decision::AtOrAbove), 1);
        assert!(
            scrape(&registry)
                .contains(r#"model_request_duration_seconds_count{model="m",version="1"} 1"#)
        );
    }

    #[test]
    fn decision_series_come_from_the_spec_and_a_regressor_has_none() {
        let mut registry = Registry::default();
        let config = MetricsConfig {
            process_metrics: false,
            ..MetricsConfig::default()
        };
        let metrics = Metrics::register(&mut registry, &config).unwrap();
        let churn = metrics.model(&ModelSpec {
            name: "churn".into(),
            version: "1".into(),
            decisions: Some(crate::DecisionNames::new("stays", "leaves").unwrap()),
            ..ModelSpec::default()
        });
        let price = metrics.model(&ModelSpec {
            name: "price".into(),
            version: "1".into(),
            decisions: None,
            ..ModelSpec::default()
        });
        churn.count_request(Status::Success, Decision::AtOrAbove);
        price.count_request(Status::Success, Decision::AtOrAbove);
        assert_eq!(churn.decision_name(Decision::AtOrAbove), "leaves");
        assert_eq!(price.decision_name(Decision::AtOrAbove), "none");
        assert_eq!(price.requests(Status::Success, Decision::None), 1);
        let text = scrape(&registry);
        // Created at zero from the spec, before any request.
        assert!(text.contains(
            r#"model_requests_total{model="churn",version="1",status="success",decision="stays"} 0"#
        ));
        assert!(text.contains(
            r#"model_requests_total{model="churn",version="1",status="success",decision="leaves"} 1"#
        ));
        assert!(text.contains(
            r#"model_requests_total{model="price",version="1",status="success",decision="none"} 1"#
        ));
        let price_decisions: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(r#"model_requests_total{model="price""#))
            .filter(|l| !l.contains(r#"decision="none""#))
            .collect();
        assert!(price_decisions.is_empty(), "{price_decisions:?}");
    }

    #[test]
    fn disabled_handle_records_nothing() {
        let spec = ModelSpec {
            name: "m".into(),
            ..ModelSpec::default()
        };
        let model = crate::ModelHandle::disabled(&spec);
        let mut request = model.start_request();
        request.mark_stage(Stage::Queue);
        assert_eq!(model.active_requests(), 0);
        request.finish(Status::Success, Decision::Below);
        model.observe_score(0.5);
        assert_eq!(model.requests(Status::Success, Decision::Below), 0);
        assert!(!model.enabled());
    }

    /// Regression test for issue 11: a client hang-up (the handler's future dropped)
    /// was counted as `error` and burned the error budget.
    #[test]
    fn dropped_guard_counts_as_cancelled_outside_the_latency_slo() {
        let (registry, model) = model();
        drop(model.start_request());
        assert_eq!(model.requests(Status::Cancelled, Decision::None), 1);
        assert_eq!(model.requests(Status::Error, Decision::None), 0);
        assert_eq!(model.active_requests(), 0);
        assert!(
            scrape(&registry)
                .contains(r#"model_request_duration_seconds_count{model="m",version="1"} 0"#)
        );
    }

    #[tokio::test]
    async fn a_future_dropped_mid_request_counts_as_cancelled() {
        let (_registry, model) = model();
        let pending = async {
            let _request = model.start_request();
            std::future::pending::<()>().await;
        };
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(1), pending).await;
        assert!(timed_out.is_err());
        assert_eq!(model.requests(Status::Cancelled, Decision::None), 1);
    }

    #[test]
    fn rejected_requests_do_not_count_toward_latency() {
        let (registry, model) = model();
        model
            .start_request()
            .finish(Status::Rejected, Decision::Below);
        assert_eq!(model.requests(Status::Rejected, Decision::None), 1);
        assert!(
            scrape(&registry)
                .contains(r#"model_request_duration_seconds_count{model="m",version="1"} 0"#)
        );
    }

    #[test]
    fn marked_stages_partition_the_request() {
        let (registry, model) = model();
        let mut request = model.start_request();
        let mut total = 0.0;
        for stage in Stage::ALL {
            std::thread::sleep(std::time::Duration::from_millis(1));
            total += request.mark_stage(*stage);
        }
        let elapsed = request.started_at().elapsed().as_secs_f64();
        request.finish(Status::Success, Decision::Below);
        assert!(total <= elapsed && total > 0.004, "{total} vs {elapsed}");
        let text = scrape(&registry);
        for stage in Stage::ALL {
            let line = format!(
                r#"model_stage_duration_seconds_count{{model="m",version="1",stage="{stage}"}} 1"#
            );
            assert!(text.contains(&line), "{line}");
        }
    }

    /// The `_sum` of `model_request_duration_seconds` in a scrape.
    fn request_seconds(registry: &Registry) -> f64 {
        let text = scrape(registry);
        let line = text
            .lines()
            .find(|l| l.starts_with("model_request_duration_seconds_sum{"))
            .expect("the request duration's sum");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn finish_at_mark_ends_the_request_at_its_last_stage() {
        let (registry, model) = model();
        let mut request = model.start_request();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let stages =
            request.mark_stage(Stage::FeatureFetch) + request.mark_stage(Stage::Postprocess);
        // Time after the last mark is not the request's: a `finish` would count it.
        std::thread::sleep(std::time::Duration::from_millis(50));
        request.finish_at_mark(Status::Success, Decision::Below);
        let recorded = request_seconds(&registry);
        assert!(
            (recorded - stages).abs() < 1e-6,
            "{recorded} vs stages {stages}"
        );
        assert_eq!(model.requests(Status::Success, Decision::Below), 1);
    }

    #[test]
    fn async_stage_timer_records_on_completion() {
        let (registry, model) = model();
        let value = futures_lite_block_on(model.time_stage_async(Stage::FeatureFetch, async { 7 }));
        assert_eq!(value, 7);
        assert!(scrape(&registry).contains(r#"stage="feature_fetch"} 1"#));
    }

    /// Polls a future that is ready without waking (enough for this test).
    fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("future was not ready"),
        }
    }
}
