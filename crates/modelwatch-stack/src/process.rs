//! Module implementing a supervised server process (Prometheus, Alertmanager). See
//! [`Process`] for details.

use anyhow::Context as _;
use rustix::process::Pid;
/// The signals [`signal`] sends (`Signal::TERM`, `Signal::KILL`).
pub use rustix::process::Signal;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`Process::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a start waits for the server's `/-/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A server started by this crate, listening on loopback.
///
/// Dropping it sends SIGTERM to its own process id, waits up to [`STOP_TIMEOUT`],
/// then sends SIGKILL. [`Process::detach`] leaves it running instead.
#[derive(Debug)]
pub struct Process {
    name: &'static str,
    child: Option<Child>,
    pid: u32,
    address: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args`, its stdout and stderr appended to `log`, then
    /// waits until `GET http://{address}/-/ready` answers 200. On failure the error
    /// carries the log's tail, and the process is stopped.
    pub(crate) fn spawn(
        name: &'static str,
        binary: &Path,
        args: &[String],
        address: SocketAddr,
        dir: &Path,
        log: PathBuf,
        install_hint: &str,
    ) -> anyhow::Result<Self> {
        if !binary.is_file() {
            anyhow::bail!(
                "{name} not found at {}\nhint: {install_hint}",
                binary.display()
            );
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open the log file {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(binary)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut process = Self {
            name,
            pid: child.id(),
            child: Some(child),
            address,
            dir: dir.to_path_buf(),
            log,
        };
        process.wait_ready(READY_TIMEOUT)?;
        Ok(process)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                anyhow::bail!(
                    "{} exited during start-up ({status}); the end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            if http_ok(probe_address(self.address), "/-/ready") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let tail = self.log_tail(20);
                self.terminate();
                anyhow::bail!(
                    "{} was not ready on {} within {timeout:?}; the end of {}:\n{tail}",
                    self.name,
                    self.address,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The operating-system process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The listen address, such as `127.0.0.1:40123`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL of the web API, such as `http://127.0.0.1:40123` (loopback
    /// when it listens on a wildcard address).
    pub fn url(&self) -> String {
        format!("http://{}", probe_address(self.address))
    }

    /// The directory holding its config, data and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file (stdout and stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the process (SIGTERM, bounded wait, then SIGKILL) and reaps it.
    pub fn stop(mut self) {
        self.terminate();
    }

    /// Leaves the process running after this handle is gone and returns its id
    /// (`modelwatch stack up` records it and exits).
    pub fn detach(mut self) -> u32 {
        // Dropping a `Child` neither kills nor waits for it.
        self.child = None;
        self.pid
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = signal(self.pid, Signal::TERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            // SIGKILL through the Child API: still our own process id.
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Sends `sig` to the process `pid` through the `kill(2)` system call (no `kill`
/// command is run). Pass only the id of a process you started.
pub fn signal(pid: u32, sig: Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("invalid process id {pid}")))?;
    rustix::process::kill_process(pid, sig).map_err(std::io::Error::from)
}

/// The last `lines` lines of the file at `path` (empty when unreadable).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether `GET path` on `address` answers with a 2xx status. A minimal HTTP/1.0
/// probe, so that starting a server needs no async runtime.
pub(crate) fn http_ok(address: SocketAddr, path: &str) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        // "HTTP/1.1 200"
        Ok(head.starts_with(b"HTTP/1.") && head[9] == b'2')
    };
    probe().unwrap_or(false)
}

/// The address to connect to for a server listening on `listen`: a wildcard
/// listen address is probed on loopback.
pub(crate) fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    SocketAddr::new(ip, listen.port())
}

/// Resolves a listen address: port 0 becomes a port that is free right now on the
/// same IP.
pub fn resolve_listen(listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    if listen.port() != 0 {
        return Ok(listen);
    }
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("cannot find a free port on {}", listen.ip()))?;
    Ok(listener.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_install_it() {
        let dir = std::env::temp_dir();
        let error = Process::spawn(
            "prometheus",
            Path::new("/nonexistent/prometheus"),
            &[],
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 1)),
            &dir,
            dir.join("never-written.log"),
            "apt-get install -y prometheus",
        )
        .expect_err("no binary, no process");
        assert_eq!(
            error.to_string(),
            "prometheus not found at /nonexistent/prometheus\nhint: apt-get install -y prometheus"
        );
    }

    #[test]
    fn wildcard_listen_addresses_are_probed_on_loopback() {
        let probe = probe_address("0.0.0.0:9090".parse().expect("address"));
        assert_eq!(probe.to_string(), "127.0.0.1:9090");
        let kept = probe_address("127.0.0.2:9090".parse().expect("address"));
        assert_eq!(kept.to_string(), "127.0.0.2:9090");
    }
}
