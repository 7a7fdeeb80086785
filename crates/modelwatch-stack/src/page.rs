//! Module implementing the model-health page beside the local stack: `stack up`
//! starts `modelwatch ui` on the stack's Prometheus, `stack down` stops it by the
//! pid recorded in the state directory. See [`start_page`] for details.

use crate::process::{http_ok, probe_address};
use anyhow::Context as _;
use rustix::process::{Pid, Signal};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The file in the state directory that holds the page's pid.
pub const PID_FILE: &str = "ui.pid";
/// The page's log in the state directory.
pub const LOG_FILE: &str = "ui.log";

/// Starts `modelwatch ui` (this same executable) for `prometheus` on `listen`,
/// detached, records its pid, waits until it answers and returns its URL.
pub fn start_page(
    state_dir: &Path,
    prometheus: &str,
    listen: SocketAddr,
    scrape_interval: Duration,
) -> anyhow::Result<String> {
    stop_page(state_dir);
    let log = std::fs::File::create(state_dir.join(LOG_FILE))
        .with_context(|| format!("cannot write {}", state_dir.join(LOG_FILE).display()))?;
    let child = Command::new(std::env::current_exe()?)
        .args(["ui", "--prometheus", prometheus])
        .arg(format!("--listen={listen}"))
        .arg(format!(
            "--scrape-interval={}s",
            scrape_interval.as_secs().max(1)
        ))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start modelwatch ui")?;
    std::fs::write(state_dir.join(PID_FILE), child.id().to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_ok(probe_address(listen), "/runbook") {
        if Instant::now() >= deadline {
            stop_page(state_dir);
            anyhow::bail!(
                "the page did not answer on {listen}; see {}\nhint: pick another address with --page-listen, or pass --no-page",
                state_dir.join(LOG_FILE).display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(format!("http://{listen}/"))
}

/// Stops the page recorded in `state_dir`, if it still runs; returns its pid.
pub fn stop_page(state_dir: &Path) -> Option<u32> {
    let file = state_dir.join(PID_FILE);
    let pid: u32 = std::fs::read_to_string(&file).ok()?.trim().parse().ok()?;
    let _ = std::fs::remove_file(&file);
    // Only our own page: a pid reused by another process is left alone.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if !cmdline.windows(4).any(|w| w == b"\0ui\0") {
        return None;
    }
    let target = Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::kill_process(target, Signal::TERM).ok()?;
    Some(pid)
}
