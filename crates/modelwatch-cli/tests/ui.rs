//! The page in a real browser: a lab (the real `serve` binary under bounded load,
//! Debian's Prometheus with the mixin's rules at a 60x time scale), the real
//! `modelwatch ui` binary, and Debian's headless Chromium. The page must show the
//! verdict, every panel title and charts with data; during an error burst the
//! verdict turns UNHEALTHY and the error-budget alert shows, linked to its runbook
//! section. Screenshots go to `target/ui-screenshots/` (or `$MODELWATCH_UI_SCREENSHOTS`).

use modelwatch_demo::{Lab, LabOptions};
use modelwatch_loadgen::{LoadConfig, Scenario};
use modelwatch_ui::dashboard::Dashboard;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SPEEDUP: f64 = 60.0;
const RPS: f64 = 40.0;
const RUN: Duration = Duration::from_secs(110);

/// Headless Chromium with the flags that keep it off the network, in a fresh
/// profile; `extra` says what to produce.
fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs (hint: apt-get install -y chromium; scripts/test.sh does)");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn dom(url: &str) -> String {
    chromium(url, &["--dump-dom".to_string()])
}

fn screenshot(url: &str, file: &Path) {
    let _ = std::fs::remove_file(file);
    chromium(
        url,
        &[
            format!("--screenshot={}", file.display()),
            "--window-size=1400,2400".to_string(),
        ],
    );
    let bytes = std::fs::read(file).expect("a screenshot was written");
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        file.display()
    );
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("MODELWATCH_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"));
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn get(client: &reqwest::Client, url: &str) -> Option<String> {
    client.get(url).send().await.ok()?.text().await.ok()
}

/// Polls `url` until `done` holds for its body, at most `bound`.
async fn wait_page(
    client: &reqwest::Client,
    url: &str,
    bound: Duration,
    done: impl Fn(&str) -> bool,
) -> Option<String> {
    let until = Instant::now() + bound;
    while Instant::now() < until {
        if let Some(body) = get(client, url).await.filter(|b| done(b)) {
            return Some(body);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    None
}

/// The ids of panels whose section has a drawn series path or heatmap cell.
fn panels_with_data(html: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    for part in html.split("data-panel-id=\"").skip(1) {
        let id: u64 = match part.split('"').next().and_then(|i| i.parse().ok()) {
            Some(id) => id,
            None => continue,
        };
        let section = &part[..part.find("</section>").unwrap_or(part.len())];
        let has_path = section
            .split("class=\"series\" data-points=\"")
            .skip(1)
            .any(|p| {
                p.split('"')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0)
                    > 1
            });
        if has_path || section.contains("class=\"cell\"") {
            ids.push(id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_shows_the_dashboard_and_an_incident_in_a_browser() {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_modelwatch"));
    let mut options = LabOptions::new(binary.clone(), 1.0 / SPEEDUP);
    options.with_prometheus = false;
    let opts = options.clone();
    let mut lab = tokio::task::spawn_blocking(move || Lab::start(&opts, |_| {}))
        .await
        .expect("lab task")
        .expect("lab");
    let scenario = Scenario::named("error_burst").expect("scenario");
    let config = LoadConfig {
        target: lab.api.clone(),
        admin_target: Some(lab.metrics.clone()),
        rps: RPS,
        duration: RUN,
        max_requests: Some((RPS * RUN.as_secs_f64() * 1.2) as u64),
        concurrency: 64,
        stream: 16,
        progress: false,
    };
    let traffic = modelwatch_loadgen::traffic_at(
        options.population.config(),
        config.stream,
        config.rps,
        modelwatch_demo::lab::LAB_SIM_SPEED,
    )
    .expect("traffic");
    let load = tokio::spawn(async move {
        modelwatch_loadgen::run(&config, &scenario, traffic, |_, _| {}).await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    lab.start_prometheus(false, &mut |_| {})
        .expect("prometheus");
    let prometheus = lab.prometheus_url().expect("prometheus url");

    let port = modelwatch_testkit::free_port();
    let ui = modelwatch_testkit::KillOnDrop(
        Command::new(&binary)
            .args(["ui", "--prometheus", &prometheus, "--scrape-interval", "1s"])
            .args(["--range", "5m", "--refresh", "0"])
            .arg(format!("--listen=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .spawn()
            .expect("modelwatch ui"),
    );
    let page = format!("http://127.0.0.1:{port}/?range=5m&refresh=0");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let dashboard = Dashboard::model_health().expect("dashboard");
    let shots = screenshot_dir();

    let titled = |id: u64| {
        dashboard
            .panels()
            .find(|p| p.id == id)
            .map_or(String::new(), |p| p.title.clone())
    };
    // One chart or stat per row that live traffic feeds: each must have data.
    let wanted = [
        "Requests per second",
        "p95 latency by stage",
        "Requests by status",
        "Score distribution",
        "Feature age by group",
    ];
    let all_drawn = |html: &str| {
        let with_data = panels_with_data(html);
        wanted
            .iter()
            .all(|w| with_data.iter().any(|id| titled(*id) == *w))
    };

    // Clean traffic: wait until those panels have data (recording rules need a few
    // evaluations over the scaled windows).
    let clean = wait_page(&client, &page, Duration::from_secs(60), |b| {
        b.contains("data-verdict=") && all_drawn(b)
    })
    .await;
    assert!(clean.is_some(), "the page never had data in {wanted:?}");
    let html = dom(&page);
    assert!(html.contains("id=\"verdict\""), "no verdict on the page");
    for panel in dashboard.panels() {
        let title = modelwatch_ui::format::escape(&panel.title);
        assert!(
            html.contains(&title),
            "panel title {:?} is not on the page",
            panel.title
        );
    }
    for row in &dashboard.rows {
        assert!(
            html.contains(&modelwatch_ui::format::escape(&row.title)),
            "row {:?} is not on the page",
            row.title
        );
    }
    let with_data = panels_with_data(&html);
    for wanted in wanted {
        assert!(
            with_data.iter().any(|id| titled(*id) == wanted),
            "{wanted:?} has no data in the browser; panels with data: {:?}",
            with_data.iter().map(|id| titled(*id)).collect::<Vec<_>>()
        );
    }
    screenshot(&page, &shots.join("ui-clean.png"));

    // The error burst starts at 30% of the run: the verdict and the alert follow.
    let incident = wait_page(&client, &page, RUN, |b| {
        b.contains("data-verdict=\"UNHEALTHY\"")
            && b.contains("data-alert=\"ModelWatchErrorBudgetBurn\"")
    })
    .await;
    assert!(
        incident.is_some(),
        "the page never showed UNHEALTHY with ModelWatchErrorBudgetBurn firing"
    );
    let html = dom(&page);
    assert!(
        html.contains("data-verdict=\"UNHEALTHY\""),
        "the browser saw no UNHEALTHY"
    );
    assert!(html.contains("data-alert=\"ModelWatchErrorBudgetBurn\""));
    assert!(html.contains("href=\"/runbook#modelwatcherrorbudgetburn\""));
    screenshot(&page, &shots.join("ui-incident.png"));
    let runbook = get(&client, &format!("http://127.0.0.1:{port}/runbook"))
        .await
        .expect("runbook");
    assert!(runbook.contains("id=\"modelwatcherrorbudgetburn\""));

    // Without Prometheus: the server's own page on its metrics listener. Read over
    // HTTP: the page reloads itself every few seconds, which keeps a virtual-time
    // browser from ever settling.
    let listener = get(&client, &format!("{}/", lab.metrics))
        .await
        .expect("the listener's page");
    assert!(
        listener.contains("id=\"verdict\""),
        "no verdict on the listener's page"
    );
    assert!(listener.contains("id=\"without-prometheus\""));
    assert!(listener.contains("Requests per second"));

    load.abort();
    drop(ui);
    drop(lab);
    eprintln!("screenshots in {}", shots.display());
}
