//! `modelwatch loadgen`: simulator transactions sent at a steady rate, in bounded count
//! and time, with incident scenarios that turn the simulator's knobs and the server's
//! fault endpoint on a timeline.
//!
//! The sender is open-loop: request `i` is due at `start + i / rps` whatever the
//! server does, so a slow server shows up as latency and errors, not as a lower
//! offered rate. In-flight requests are capped; a request that finds the cap reached
//! is not sent and is counted as `skipped`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod report;
pub mod scenario;

pub use report::LoadReport;
pub use scenario::{Phase, Scenario};

use modelwatch_sim::{SimConfig, Simulator, TrafficGenerator};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to send, where, and for how long.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URL of the API, such as `http://127.0.0.1:8080`.
    pub target: String,
    /// Base URL of the server's metrics listener, for fault injection.
    pub admin_target: Option<String>,
    /// Requests per second.
    pub rps: f64,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many requests, if sooner.
    pub max_requests: Option<u64>,
    /// Most requests in flight.
    pub concurrency: usize,
    /// Random stream of the traffic generator (use different streams for parallel
    /// generators).
    pub stream: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Simulated seconds per real second of load by default: a simulated week per real
/// minute, so any window of a minute or more sees every hour and weekday in their
/// reference proportions (a slower clock makes `hour` and `is_weekend` drift on short
/// windows, which is an artefact of the load, not of the model).
pub const DEFAULT_SIM_SPEED: f64 = 7.0 * 86_400.0 / 60.0;

#[derive(Serialize)]
struct Body {
    transaction_id: String,
    customer_id: String,
    terminal_id: String,
    amount: f64,
    timestamp: String,
}

/// Builds the traffic generator for a simulated population: give it the one
/// `modelwatch serve` seeded its feature store with, so its customers and terminals
/// are known to the server.
///
/// The generator's clock runs at `rps / sim_speed` transactions per simulated second,
/// so `sim_speed` simulated seconds pass per real second at that rate.
pub fn traffic_at(
    population: SimConfig,
    stream: u64,
    rps: f64,
    sim_speed: f64,
) -> anyhow::Result<TrafficGenerator> {
    anyhow::ensure!(
        sim_speed > 0.0 && sim_speed.is_finite(),
        "the simulation speed must be positive"
    );
    let simulator = Simulator::new(population)?;
    let history = simulator.generate();
    Ok(simulator
        .traffic(&history, history.end_timestamp())
        .with_stream(stream)
        .with_rate(rps / sim_speed))
}

/// [`traffic_at`] with [`DEFAULT_SIM_SPEED`].
pub fn traffic(population: SimConfig, stream: u64, rps: f64) -> anyhow::Result<TrafficGenerator> {
    traffic_at(population, stream, rps, DEFAULT_SIM_SPEED)
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Delayed labels: after each answered prediction, its ground truth from the
/// simulator goes to `POST /v1/feedback` once `delay` has passed (as
/// [`scenario::label_mode`] says for the phase).
#[derive(Debug, Clone, Copy)]
pub struct LabelConfig {
    /// Time from the answer to the label.
    pub delay: Duration,
}

/// Sends the load and returns what happened. `on_phase` is called when a scenario
/// phase starts (with its index), so a caller can log or display it.
pub async fn run(
    config: &LoadConfig,
    scenario: &Scenario,
    traffic: TrafficGenerator,
    on_phase: impl FnMut(usize, &Phase),
) -> anyhow::Result<LoadReport> {
    run_with_labels(config, scenario, traffic, None, on_phase).await
}

/// [`run`], sending delayed labels too when `labels` is set. The run waits for the
/// last label, so it lasts about `labels.delay` longer.
pub async fn run_with_labels(
    config: &LoadConfig,
    scenario: &Scenario,
    mut traffic: TrafficGenerator,
    labels: Option<LabelConfig>,
    mut on_phase: impl FnMut(usize, &Phase),
) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(
        config.rps > 0.0 && config.rps.is_finite(),
        "--rps must be a positive number"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(config.concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}/v1/predict", config.target.trim_end_matches('/'));
    let feedback_url = format!("{}/v1/feedback", config.target.trim_end_matches('/'));
    let planned = ((config.duration.as_secs_f64() * config.rps).floor() as u64)
        .min(config.max_requests.unwrap_or(u64::MAX));
    let progress = if config.progress {
        let bar = indicatif::ProgressBar::new(planned);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} sent  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let report = Arc::new(Mutex::new(LoadReport::new(config.rps, planned)));
    let permits = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
    let started = Instant::now();
    let mut phase_index = None;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..planned {
        let due = started + Duration::from_secs_f64(i as f64 / config.rps);
        let fraction = i as f64 / planned.max(1) as f64;
        if let Some((index, phase)) = scenario.phase_at_fraction(fraction) {
            if phase_index != Some(index) {
                phase_index = Some(index);
                traffic.set_knobs(phase.knobs);
                if let (Some(admin), Some(faults)) = (&config.admin_target, &phase.faults) {
                    scenario::apply_faults(&client, admin, faults).await?;
                }
                if let Some(command) = phase.command.clone() {
                    scenario::run_command(command).await?;
                }
                progress.set_message(format!("phase: {}", phase.name));
                on_phase(index, phase);
            }
        }
        tokio::time::sleep_until(due.into()).await;
        let tx = traffic
            .next()
            .ok_or_else(|| anyhow::anyhow!("the traffic generator ended"))?;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            report.lock().unwrap_or_else(|p| p.into_inner()).skipped += 1;
            progress.inc(1);
            continue;
        };
        let body = Body {
            transaction_id: format!("lg-{}-{i}", config.stream),
            customer_id: tx.customer_id.to_string(),
            terminal_id: tx.terminal_id.to_string(),
            amount: tx.amount,
            timestamp: rfc3339(tx.timestamp),
        };
        let request = client.post(&url).json(&body);
        let report = report.clone();
        // The ground truth this phase reports, if any.
        let truth = labels.and_then(|l| {
            scenario::label_mode(scenario.name, fraction)
                .truth(tx.is_fraud, i)
                .map(|t| (l.delay, t))
        });
        let (client, feedback_url) = (client.clone(), feedback_url.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let result = request.send().await;
            let micros = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            let mut prediction_id = None;
            let status = match result {
                Ok(response) => {
                    let code = response.status().as_u16();
                    // Read the body so the connection goes back to the pool.
                    let body = response.bytes().await.unwrap_or_default();
                    if truth.is_some() && code == 200 {
                        prediction_id = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["prediction_id"].as_str().map(str::to_string));
                    }
                    Some(code)
                }
                Err(_) => None,
            };
            if let (Some((delay, positive)), Some(id)) = (truth, prediction_id) {
                tokio::time::sleep(delay).await;
                let label = serde_json::json!({"prediction_id": id, "label": positive});
                let sent = client.post(&feedback_url).json(&label).send().await;
                if let Ok(r) = sent {
                    let _ = r.bytes().await;
                }
            }
            report
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(status, micros);
            drop(permit);
        });
        progress.inc(1);
        // Reap finished tasks so the set stays small on long runs.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    progress.finish_and_clear();
    if let (Some(admin), true) = (&config.admin_target, scenario.injects_faults()) {
        scenario::clear_faults(&client, admin).await?;
    }
    let mut report = Arc::try_unwrap(report)
        .map_err(|_| anyhow::anyhow!("load tasks still running"))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    report.elapsed = started.elapsed();
    report.finish();
    Ok(report)
}
