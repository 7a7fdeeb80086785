//! Module implementing a real `redis-server` (Debian's `redis-server` package) for
//! tests. See [`Redis`] for details.

use modelwatch_stack::process::{Signal, signal};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start waits for "Ready to accept connections" in the log.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// TLS and auth for [`Redis::start_secure`]: the CA that signed the server's
/// certificate, and the password the server requires.
#[derive(Debug, Clone)]
pub struct Secure {
    /// PEM of the certificate authority.
    pub ca: PathBuf,
    /// The password (`requirepass`).
    pub password: String,
}

/// A `redis-server` started by this test on 127.0.0.1 with a temporary directory
/// (its data, append-only file and log), on a port free when it started. Every write
/// is appended and fsynced, so [`Redis::kill`] then [`Redis::restart`] finds the data
/// again, on the same port.
///
/// Dropping it sends SIGKILL to its own process id.
#[derive(Debug)]
pub struct Redis {
    /// The port (TLS-only in secure mode).
    pub port: u16,
    child: Option<Child>,
    args: Vec<String>,
    secure: Option<Secure>,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let path = PathBuf::from("/usr/bin/redis-server");
    assert!(
        path.is_file(),
        "redis-server not found at {}\nhint: apt-get install -y redis-server",
        path.display()
    );
    path
}

impl Redis {
    /// Starts a plain `redis-server` (no TLS, no password).
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("modelwatch-redis-")
            .tempdir()
            .expect("a temporary directory");
        let port = crate::free_port();
        let args = Self::base_args(dir.path(), &["--port".into(), port.to_string()]);
        let mut redis = Self {
            port,
            child: None,
            args,
            secure: None,
            dir,
        };
        redis.spawn();
        redis
    }

    /// Starts `redis-server` that accepts only TLS (a CA and server certificate made
    /// for 127.0.0.1) and requires a password.
    pub fn start_secure() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("modelwatch-redis-tls-")
            .tempdir()
            .expect("a temporary directory");
        let pki = crate::tls::pki(dir.path(), "modelwatch redis test CA");
        let (cert, key, ca) = (pki.server_cert, pki.server_key, pki.ca);
        let password = format!("pw-{}", std::process::id());
        let port = crate::free_port();
        let args = Self::base_args(
            dir.path(),
            &[
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                cert.display().to_string(),
                "--tls-key-file".into(),
                key.display().to_string(),
                "--tls-ca-cert-file".into(),
                ca.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
                "--requirepass".into(),
                password.clone(),
            ],
        );
        let mut redis = Self {
            port,
            child: None,
            args,
            secure: Some(Secure { ca, password }),
            dir,
        };
        redis.spawn();
        redis
    }

    fn base_args(dir: &Path, extra: &[String]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir.display().to_string(),
            "--logfile",
            &dir.join("redis.log").display().to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--protected-mode",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend_from_slice(extra);
        args
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn ready_lines(&self) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .matches("Ready to accept connections")
            .count()
    }

    fn spawn(&mut self) {
        let before = self.ready_lines();
        let child = Command::new(binary())
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.ready_lines() == before {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "redis-server exited during start-up ({status}):\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server not ready within {READY_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `redis://127.0.0.1:<port>/0` (`rediss://` in secure mode).
    pub fn url(&self) -> String {
        let scheme = if self.secure.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The CA and password of a secure server.
    pub fn secure(&self) -> Option<&Secure> {
        self.secure.as_ref()
    }

    /// The temporary directory (for files a test writes beside the server).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server with SIGKILL (no shutdown, as a crash) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal(child.id(), Signal::KILL);
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `redis-cli` against the server with `args`, returning its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(secure) = &self.secure {
            command
                .args(["--tls", "--cacert"])
                .arg(&secure.ca)
                .env("REDISCLI_AUTH", &secure.password);
        }
        let out = command
            .args(args)
            .output()
            .expect("redis-cli runs (Debian's redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
