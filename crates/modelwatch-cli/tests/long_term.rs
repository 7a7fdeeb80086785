//! Long retention on the real engines, all on loopback: a synthesized year (and a
//! week) of history imported into Debian's VictoriaMetrics, Prometheus scraping a live
//! `modelwatch serve` and remote-writing to it, and vmalert evaluating the committed
//! mixin against it.
//!
//! Checks: the week-over-week and year-over-year comparisons (the mixin's own rules,
//! generated with a 364-day offset) return what the synthesized counters imply; every
//! recording rule and alert is evaluated by vmalert without error; every dashboard
//! panel query returns data through VictoriaMetrics' Prometheus API. The figures of
//! docs/long-retention.md (import time, series, bytes on disk) are printed.

use modelwatch::schema;
use modelwatch_demo::{Lab, LabOptions};
use modelwatch_history::{History, HistoryConfig};
use modelwatch_loadgen::{LoadConfig, Scenario};
use modelwatch_mixin::names::record;
use modelwatch_mixin::recording::recording_rules;
use modelwatch_mixin::rules::Rule;
use modelwatch_mixin::{MixinConfig, PromDuration};
use modelwatch_stack::{
    PrometheusConfig, ScrapeJob, VictoriaMetricsConfig, VmalertConfig, query_at,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

const DAY: i64 = 86_400;
/// The history's step: half the rules' shortest window (1h), so that a 1h rate has
/// two samples at any evaluation time, as the live rules need (see
/// docs/long-retention.md).
const STEP: i64 = 1800;
const HOUR: i64 = 3600;
/// Scored transactions a day: fewer than the CLI's default keeps the synthesis of a
/// year short in a debug build; each stands for more real ones, the totals are the
/// same.
const SAMPLES_PER_DAY: u32 = 500;
/// A year and a week: the same week a year ago (364 days, whole weeks) must exist.
const DAYS: u32 = 372;
const YEAR_OFFSET: i64 = 364 * DAY;
const WEEK: i64 = 7 * DAY;

/// Every recording rule of `config`, by recorded name (the first of a name wins:
/// quantile rules share one).
fn rules_of(config: &MixinConfig) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    for group in recording_rules(config) {
        for rule in group.rules {
            if let Rule::Record(r) = rule {
                out.entry(r.record).or_insert(r.expr);
            }
        }
    }
    out
}

/// `expr` with every recorded series it reads replaced by the rule's own expression,
/// so that it can be evaluated at a past time, before any rule ran.
fn inline(expr: &str, rules: &BTreeMap<&'static str, String>) -> String {
    let mut names: Vec<&&str> = rules.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = expr.to_string();
    for _ in 0..5 {
        let mut changed = false;
        for name in &names {
            let mut result = String::new();
            let mut rest = out.as_str();
            while let Some(at) = rest.find(**name) {
                let after = rest[at + name.len()..].chars().next();
                let before = rest[..at].chars().last();
                let word = |c: Option<char>| {
                    c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                };
                result.push_str(&rest[..at]);
                if word(after) || word(before) {
                    result.push_str(name);
                } else {
                    result.push('(');
                    result.push_str(&rules[**name]);
                    result.push(')');
                    changed = true;
                }
                rest = &rest[at + name.len()..];
            }
            result.push_str(rest);
            out = result;
        }
        if !changed {
            break;
        }
    }
    out
}

/// The approval ratio over the step ending at sample `i`, from the counters.
fn approval_ratio(history: &History, i: usize, window: usize) -> f64 {
    let name = schema::REQUESTS_TOTAL.name;
    let approved = history.increase(
        name,
        &[("status", "success"), ("decision", "approved")],
        i - window,
        i,
    );
    let declined = history.increase(
        name,
        &[("status", "success"), ("decision", "declined")],
        i - window,
        i,
    );
    approved / (approved + declined)
}

/// The score's bin fractions over `window` samples ending at sample `i`.
fn score_fractions(history: &History, i: usize, window: usize) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for s in history.select(schema::SCORE_BIN_TOTAL.name, &[]) {
        let bin = s.label(schema::label::BIN).expect("bin").to_string();
        counts.insert(bin, s.values[i] - s.values[i - window]);
    }
    let total: f64 = counts.values().sum();
    counts.values_mut().for_each(|c| *c /= total);
    counts
}

fn psi(p: &BTreeMap<String, f64>, q: &BTreeMap<String, f64>) -> f64 {
    let (a, b): (Vec<f64>, Vec<f64>) = p.iter().map(|(bin, v)| (*v, q[bin])).unzip();
    modelwatch::drift::psi(&a, &b)
}

fn close(what: &str, got: f64, expected: f64) {
    assert!(
        (got - expected).abs() <= 1e-9_f64.max(1e-6 * expected.abs()),
        "{what}: VictoriaMetrics says {got}, the synthesized counters imply {expected}"
    );
    eprintln!("{what}: {got:.6} (expected {expected:.6})");
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_year_in_victoria_metrics_answers_year_over_year_and_every_rule_and_panel() {
    let client = modelwatch_stack::http_client().expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;

    // The history ends two steps before now, so the live server's series (which
    // start now) never overlap the window the expected values are computed over.
    let config = HistoryConfig {
        days: DAYS,
        step_seconds: STEP,
        samples_per_day: SAMPLES_PER_DAY,
        end: now - 2 * HOUR,
        ..HistoryConfig::default()
    };
    let started = Instant::now();
    let history =
        tokio::task::spawn_blocking(move || modelwatch_history::synthesize(&config, |_| {}))
            .await
            .expect("join")
            .expect("the history synthesizes");
    let synth_seconds = started.elapsed().as_secs_f64();
    let file = dir.path().join("history.jsonl");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("file"));
        modelwatch_history::format::write(&history, modelwatch_history::Format::VmJsonl, &mut out)
            .expect("write");
        std::io::Write::flush(&mut out).expect("flush");
    }
    let file_bytes = std::fs::metadata(&file).expect("size").len();

    // VictoriaMetrics, with the year imported.
    let vm_dir = dir.path().join("vm");
    std::fs::create_dir_all(&vm_dir).expect("dir");
    let vm = modelwatch_stack::start_victoria_metrics(&VictoriaMetricsConfig {
        dir: vm_dir.clone(),
        ..VictoriaMetricsConfig::default()
    })
    .expect("victoria-metrics starts (hint: apt-get install -y victoria-metrics)");
    let vm_url = vm.url();
    let started = Instant::now();
    let body = std::fs::read(&file).expect("read");
    let response = client
        .post(format!("{vm_url}/api/v1/import"))
        .timeout(Duration::from_secs(300))
        .body(body)
        .send()
        .await
        .expect("import");
    assert!(
        response.status().is_success(),
        "import refused: {}",
        response.text().await.unwrap_or_default()
    );
    let _ = client
        .get(format!("{vm_url}/internal/force_flush"))
        .send()
        .await;
    let import_seconds = started.elapsed().as_secs_f64();
    let samples = history.series_count() * history.timestamps.len();
    eprintln!(
        "history: {} series x {} samples = {samples} samples, {DAYS} days at {STEP} s; synthesized in {synth_seconds:.1} s, {file_bytes} bytes of JSON lines, imported in {import_seconds:.1} s ({:.0} samples/s)",
        history.series_count(),
        history.timestamps.len(),
        samples as f64 / import_seconds
    );

    // Week over week and year over year, at one sample's own time: a rule's 1h rate
    // then spans exactly the two steps before it, so it equals the counters'
    // increase over that hour (between samples it would be an estimate). The sample
    // is the busiest hour of the history's last day: the simulator's traffic sleeps
    // at night, and a night hour would give 0/0.
    let step = |seconds: i64| (seconds / STEP) as usize;
    let end = history.timestamps.len() - 1;
    let requests = |i: usize| {
        history.increase(
            schema::REQUESTS_TOTAL.name,
            &[("status", "success")],
            i - step(HOUR),
            i,
        )
    };
    let last = (end + 1 - step(DAY)..=end)
        .max_by(|a, b| requests(*a).total_cmp(&requests(*b)))
        .expect("a day of samples");
    for i in [last, last - step(WEEK), last - step(YEAR_OFFSET)] {
        assert!(
            requests(i) > 0.0,
            "no traffic in the hour before {}",
            history.timestamps[i]
        );
    }
    let at = UNIX_EPOCH + Duration::from_secs(history.timestamps[last] as u64);
    let weekly = rules_of(&MixinConfig::default());
    let mut yearly_config = MixinConfig::default();
    yearly_config.drift.comparison_offset = PromDuration::from_secs(YEAR_OFFSET as u64);
    let yearly = rules_of(&yearly_config);
    let mut same_week_config = yearly_config.clone();
    same_week_config.drift.window = PromDuration::from_secs(WEEK as u64);
    let same_week = rules_of(&same_week_config);
    let one = |q: &str, samples: Vec<modelwatch_stack::QuerySample>| {
        assert_eq!(samples.len(), 1, "{q}: one model, one version: {samples:?}");
        samples[0].value
    };
    let cases = [
        (
            "approval ratio delta, week over week",
            &weekly,
            record::APPROVAL_RATIO_DELTA,
            approval_ratio(&history, last, step(HOUR))
                - approval_ratio(&history, last - step(WEEK), step(HOUR)),
        ),
        (
            "approval ratio a year ago (offset 364d)",
            &yearly,
            record::APPROVAL_RATIO_OFFSET,
            approval_ratio(&history, last - step(YEAR_OFFSET), step(HOUR)),
        ),
        (
            "approval ratio delta, year over year",
            &yearly,
            record::APPROVAL_RATIO_DELTA,
            approval_ratio(&history, last, step(HOUR))
                - approval_ratio(&history, last - step(YEAR_OFFSET), step(HOUR)),
        ),
        (
            "score PSI, last hour against the same hour last week",
            &weekly,
            record::SCORE_PSI_OFFSET,
            psi(
                &score_fractions(&history, last, step(HOUR)),
                &score_fractions(&history, last - step(WEEK), step(HOUR)),
            ),
        ),
        (
            "score PSI, last week against the same week last year",
            &same_week,
            record::SCORE_PSI_OFFSET,
            psi(
                &score_fractions(&history, last, step(WEEK)),
                &score_fractions(&history, last - step(YEAR_OFFSET), step(WEEK)),
            ),
        ),
    ];
    for (what, rules, name, expected) in cases {
        let q = inline(name, rules);
        let got = one(&q, query_at(&client, &vm_url, &q, at).await.expect(what));
        close(what, got, expected);
    }
    let year_psi = psi(
        &score_fractions(&history, last, step(WEEK)),
        &score_fractions(&history, last - step(YEAR_OFFSET), step(WEEK)),
    );
    assert!(year_psi > 0.0, "the two weeks differ: the check can fail");

    // The live path: a real server, scraped by Prometheus, remote-written to the store.
    let options = {
        let mut o = LabOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_modelwatch")), 1.0);
        o.with_prometheus = false;
        o.with_alertmanager = false;
        o
    };
    let lab = {
        let o = options.clone();
        tokio::task::spawn_blocking(move || Lab::start(&o, |_| {}))
            .await
            .expect("join")
            .expect("modelwatch serve starts")
    };
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).expect("dir");
    let prometheus = modelwatch_stack::start_prometheus(&PrometheusConfig {
        dir: prom_dir,
        scrape_jobs: vec![ScrapeJob::new(
            "modelwatch",
            [lab.metrics.trim_start_matches("http://").to_string()],
        )],
        remote_write: vec![format!("{vm_url}/api/v1/write")],
        ..PrometheusConfig::default()
    })
    .expect("prometheus starts (hint: bash scripts/test.sh installs it)");

    // vmalert with the committed mixin, reading and writing the store.
    let alert_dir = dir.path().join("vmalert");
    std::fs::create_dir_all(&alert_dir).expect("dir");
    let mixin = modelwatch_testkit::workspace_root().join("mixin");
    let vmalert = modelwatch_stack::start_vmalert(&VmalertConfig {
        dir: alert_dir,
        datasource: vm_url.clone(),
        remote_write: vm_url.clone(),
        rule_files: vec![
            mixin.join(modelwatch_mixin::RULES_PATH),
            mixin.join(modelwatch_mixin::ALERTS_PATH),
        ],
        evaluation_interval: Duration::from_secs(2),
        ..VmalertConfig::default()
    })
    .expect("vmalert starts and parses every rule as MetricsQL");
    let vmalert_url = vmalert.url();

    // The load runs for `run`; the queries may wait longer on a busy machine (an
    // upper bound, left as soon as every query has data).
    let run = Duration::from_secs(30);
    let load = {
        let config = LoadConfig {
            target: lab.api.clone(),
            admin_target: None,
            rps: 20.0,
            duration: run,
            max_requests: None,
            concurrency: 16,
            stream: 71,
            progress: false,
        };
        let traffic =
            modelwatch_loadgen::traffic(options.population.config(), config.stream, config.rps)
                .expect("traffic");
        // Each answer's label 2 s later: the ground-truth row's data.
        tokio::spawn(async move {
            modelwatch_loadgen::run_with_labels(
                &config,
                &Scenario::named("clean").expect("clean"),
                traffic,
                Some(modelwatch_loadgen::LabelConfig {
                    delay: Duration::from_secs(2),
                }),
                |_, _| {},
            )
            .await
        })
    };

    // Every dashboard panel query returns data through VictoriaMetrics.
    let version =
        modelwatch_runtime::ModelCard::from_json_str(modelwatch_server::load::bundled::CARD)
            .expect("card")
            .version;
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(mixin.join(modelwatch_mixin::DASHBOARD_PATH)).expect("dashboard"),
    )
    .expect("json");
    let queries = modelwatch_testkit::dashboard::live_queries(&dashboard);
    // Grafana's variables at the live server's scale (time scale 1): the rules'
    // real windows.
    let variables = [
        ("datasource", ""),
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__range", "1h"),
        ("model", "fraud"),
        ("version", version.as_str()),
    ];
    let mut pending: Vec<(String, String)> = queries
        .into_iter()
        .map(|(t, e)| (t, modelwatch_testkit::dashboard::substitute(&e, &variables)))
        .collect();
    let total = pending.len();
    let deadline = Instant::now() + 3 * run;
    let mut errors = BTreeMap::new();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (title, expr) in pending {
            match modelwatch_stack::query(&client, &vm_url, &expr).await {
                Ok(data) if !data.is_empty() => {
                    errors.remove(&title);
                }
                Ok(_) => still.push((title, expr)),
                Err(e) => {
                    errors.insert(title.clone(), format!("{e:#}"));
                    still.push((title, expr));
                }
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        pending.is_empty(),
        "{} of {total} panel queries never returned data from VictoriaMetrics: {pending:#?}\nerrors: {errors:#?}",
        pending.len()
    );

    // Every recording rule and alert evaluated by vmalert, without error.
    let rules = modelwatch_stack::wait_for(
        "every rule evaluated by vmalert",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let url = vmalert_url.clone();
            async move {
                let rules = modelwatch_stack::vmalert_rules(&client, &url).await?;
                Ok((!rules.is_empty() && rules.iter().all(|r| r.evaluated)).then_some(rules))
            }
        },
    )
    .await
    .expect("vmalert evaluates every rule");
    let failing: Vec<_> = rules
        .iter()
        .filter(|r| r.health != "ok" || !r.last_error.is_empty())
        .collect();
    assert!(
        failing.is_empty(),
        "rules failing on VictoriaMetrics: {failing:#?}"
    );
    let expected_rules: usize = [modelwatch_mixin::RULES_PATH, modelwatch_mixin::ALERTS_PATH]
        .iter()
        .map(|p| {
            std::fs::read_to_string(mixin.join(p))
                .expect("rules")
                .lines()
                .filter(|l| {
                    l.trim_start().starts_with("- record:")
                        || l.trim_start().starts_with("- alert:")
                })
                .count()
        })
        .sum();
    assert_eq!(
        rules.len(),
        expected_rules,
        "vmalert loaded every rule of mixin/"
    );

    // The live series arrived by remote write.
    let live = modelwatch_stack::query(
        &client,
        &vm_url,
        &format!(
            "sum({}{{job=\"modelwatch\", instance!=\"{}\"}})",
            schema::REQUESTS_TOTAL.name,
            history.config.instance
        ),
    )
    .await
    .expect("live query");
    assert!(
        live.first().is_some_and(|s| s.value > 0.0),
        "no live request reached VictoriaMetrics: {live:?}"
    );
    let report = load.await.expect("join").expect("load runs");
    assert!(report.ok() > 0);

    // Figures for the cardinality budget: one live replica's series, and the bytes
    // on disk once VictoriaMetrics has stopped (it flushes its buffers on SIGTERM).
    let replica_series = modelwatch_testkit::exposition::scrape(&client, &lab.metrics)
        .await
        .samples()
        .count();
    let tsdb: serde_json::Value = client
        .get(format!("{vm_url}/api/v1/status/tsdb?topN=50"))
        .send()
        .await
        .expect("tsdb status")
        .json()
        .await
        .expect("json");
    drop(vmalert);
    drop(prometheus);
    drop(lab);
    drop(vm);
    let history_series = history.series_count();
    let data_bytes = dir_size(&vm_dir.join(modelwatch_stack::victoriametrics::STORAGE_DIR));
    eprintln!(
        "victoria-metrics: {data_bytes} bytes on disk ({:.2} bytes per sample, {:.0} bytes per series per day at this step); tsdb status: totalSeries {}; a live replica exposes {replica_series} series",
        data_bytes as f64 / samples as f64,
        data_bytes as f64 / history_series as f64 / f64::from(DAYS),
        tsdb["data"]["totalSeries"]
    );
    for entry in tsdb["data"]["seriesCountByMetricName"]
        .as_array()
        .into_iter()
        .flatten()
    {
        eprintln!(
            "  {} {}",
            entry["name"].as_str().unwrap_or_default(),
            entry["value"]
        );
    }
}

/// `modelwatch history --format openmetrics` writes what promtool turns into TSDB
/// blocks, and bad flags get a hint.
#[test]
fn openmetrics_history_becomes_prometheus_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("history.om");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args([
            "history",
            "--days",
            "3",
            "--step",
            "1h",
            "--end",
            "2026-11-30T00:00:00Z",
        ])
        .args([
            "--samples-per-day",
            "500",
            "--format",
            "openmetrics",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("runs");
    assert!(status.success());
    let text = std::fs::read_to_string(&out).expect("written");
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains(&format!(
        "# TYPE {} counter",
        schema::REQUESTS_TOTAL.registration_name()
    )));
    let blocks = dir.path().join("blocks");
    let promtool = std::process::Command::new(modelwatch_stack::env::promtool_bin())
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&out)
        .arg(&blocks)
        .output()
        .expect("promtool runs (hint: apt-get install -y prometheus)");
    assert!(
        promtool.status.success(),
        "promtool refused the history: {}",
        String::from_utf8_lossy(&promtool.stderr)
    );
    let made = std::fs::read_dir(&blocks).expect("blocks").count();
    assert!(made > 0, "promtool wrote no block");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["history", "--step", "7s", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("hint:"), "{stderr}");
}
