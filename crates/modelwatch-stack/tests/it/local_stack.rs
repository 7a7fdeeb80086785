//! `modelwatch stack up|status|down` (through the library functions the command
//! calls): the stack scrapes a modelwatch endpoint, evaluates the mixin's rules,
//! and `down` leaves no process behind.

use crate::fixture;
use crate::support::{process_exists, repo, require_binaries};
use modelwatch_stack::local::{self, STATE_FILE, Stopped, UpOptions};
use modelwatch_stack::{http_client, wait_for, wait_for_samples};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(90);

/// Stops whatever a failed test left running, by the recorded process ids.
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = local::down(&self.0, true);
    }
}

fn options(state_dir: &Path, target: String) -> UpOptions {
    UpOptions {
        state_dir: state_dir.to_path_buf(),
        mixin_dir: repo("mixin"),
        job: "modelwatch".into(),
        targets: vec![target],
        prometheus_listen: "127.0.0.1:0".parse().expect("address"),
        alertmanager_listen: "127.0.0.1:0".parse().expect("address"),
        scrape_interval: Duration::from_secs(1),
        evaluation_interval: Duration::from_secs(1),
        retention: None,
        webhook: None,
        scrape_tls: None,
        scrape_auth: None,
        long_term: None,
    }
}

#[tokio::test]
async fn stack_up_evaluates_the_mixin_on_a_local_server_and_down_stops_everything() {
    require_binaries();
    let replica = fixture::replica();
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    let _guard = DownOnDrop(state_dir.clone());

    let state = local::up(&options(&state_dir, replica.target())).expect("stack up");
    assert!(state_dir.join(STATE_FILE).is_file());
    assert!(state.prometheus.is_running() && state.alertmanager.is_running());
    let status = local::status(&state_dir).expect("status").expect("a stack");
    assert!(status.healthy(), "{status:?}");

    let again =
        local::up(&options(&state_dir, replica.target())).expect_err("one stack per state dir");
    assert!(
        format!("{again:#}").contains("already running"),
        "{again:#}"
    );

    let client = http_client().expect("client");
    let prometheus = state.prometheus.url.clone();
    let log = || std::fs::read_to_string(&state.prometheus.log).unwrap_or_default();
    // A recording rule of the generated mixin, from the scraped endpoint.
    let rate = wait_for_samples(
        &client,
        &prometheus,
        "model_version:model_requests:rate5m > 0",
        PATIENCE,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(rate[0].labels["model"], "fraud");
    // Alerts have somewhere to go.
    let alertmanagers = wait_for(
        "prometheus discovers the alertmanager",
        PATIENCE,
        || async {
            let body: serde_json::Value = client
                .get(format!("{prometheus}/api/v1/alertmanagers"))
                .send()
                .await?
                .json()
                .await?;
            let active = body["data"]["activeAlertmanagers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            Ok((!active.is_empty()).then_some(active))
        },
    )
    .await
    .expect("an active alertmanager");
    let am_address = state.alertmanager.url.trim_start_matches("http://");
    assert!(
        alertmanagers[0]["url"]
            .as_str()
            .is_some_and(|u| u.contains(am_address))
    );

    let pids = [state.prometheus.pid, state.alertmanager.pid];
    let (_, outcome) = local::down(&state_dir, false)
        .expect("stack down")
        .expect("a stack to stop");
    assert_eq!(outcome, [Stopped::Stopped, Stopped::Stopped]);
    for pid in pids {
        assert!(!process_exists(pid), "process {pid} survived stack down");
    }
    assert!(
        !state_dir.join(STATE_FILE).exists(),
        "the state file is removed"
    );
    assert!(local::status(&state_dir).expect("status").is_none());
    assert!(
        local::down(&state_dir, false)
            .expect("a second down")
            .is_none()
    );
}

#[test]
fn down_leaves_a_reused_process_id_alone() {
    // A state file whose recorded process id now belongs to another program (this
    // test process): down must not signal it.
    let dir = tempfile::tempdir().expect("tempdir");
    let me = std::process::id();
    let recorded = |name: &str| local::RecordedProcess {
        pid: me,
        url: "http://127.0.0.1:1".into(),
        binary: PathBuf::from(format!("/usr/bin/{name}")),
        config: dir.path().join(format!("{name}.yml")),
        log: dir.path().join(format!("{name}.log")),
    };
    let state = local::StackState {
        prometheus: recorded("prometheus"),
        alertmanager: recorded("prometheus-alertmanager"),
        job: "modelwatch".into(),
        targets: vec!["127.0.0.1:9464".into()],
        mixin_dir: PathBuf::from("mixin"),
        victoria_metrics: None,
        vmalert: None,
    };
    std::fs::write(
        dir.path().join(STATE_FILE),
        serde_json::to_string(&state).expect("json"),
    )
    .expect("write a state file");
    let status = local::status(dir.path()).expect("status").expect("a state");
    assert!(!status.prometheus_running && !status.alertmanager_running);
    let (_, outcome) = local::down(dir.path(), false)
        .expect("down")
        .expect("a state");
    assert_eq!(outcome, [Stopped::NotRunning, Stopped::NotRunning]);
    // Still alive to run this line; the state file is gone.
    assert!(!dir.path().join(STATE_FILE).exists());
}

/// `modelwatch stack up --long-term`: Prometheus remote-writes to VictoriaMetrics,
/// vmalert evaluates the mixin there, and `down` stops all four servers.
#[tokio::test]
async fn stack_up_long_term_remote_writes_to_victoria_metrics_and_down_stops_it() {
    require_binaries();
    assert!(
        modelwatch_stack::victoriametrics::victoria_metrics_available(),
        "hint: apt-get install -y victoria-metrics"
    );
    let replica = fixture::replica();
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    let _guard = DownOnDrop(state_dir.clone());
    let mut opts = options(&state_dir, replica.target());
    opts.long_term = Some(local::LongTermOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        vmalert_listen: "127.0.0.1:0".parse().expect("address"),
        retention: "2y".into(),
    });
    let state = local::up(&opts).expect("stack up --long-term");
    let vm = state
        .victoria_metrics
        .clone()
        .expect("victoria-metrics recorded");
    let vmalert = state.vmalert.clone().expect("vmalert recorded");
    assert!(vm.is_running() && vmalert.is_running());

    let client = http_client().expect("client");
    // The scraped series arrive by remote write, and vmalert's recorded series too.
    wait_for_samples(
        &client,
        &vm.url,
        "model_requests_total{job=\"modelwatch\"}",
        PATIENCE,
    )
    .await
    .expect("remote-written series in VictoriaMetrics");
    wait_for_samples(
        &client,
        &vm.url,
        "model_version:model_requests:rate5m",
        PATIENCE,
    )
    .await
    .expect("a rule recorded by vmalert");

    let pids = [
        state.prometheus.pid,
        state.alertmanager.pid,
        vm.pid,
        vmalert.pid,
    ];
    local::down(&state_dir, true)
        .expect("stack down")
        .expect("a stack to stop");
    for pid in pids {
        assert!(!process_exists(pid), "process {pid} survived stack down");
    }
}
