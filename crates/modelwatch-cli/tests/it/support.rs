//! The `modelwatch serve` of this crate's binary, through the test kit's handle.

use modelwatch_testkit::Serve;
pub use modelwatch_testkit::store::{CUSTOMER, TERMINAL};

/// A running `modelwatch serve` (see [`Serve`]: loopback ephemeral ports, a
/// temporary data directory with a small seeded store, stopped by its own pid).
#[derive(Debug)]
pub struct Server(Serve);

impl Server {
    /// Starts this crate's `modelwatch serve` with `args` and waits until it is ready.
    pub fn start(args: &[&str]) -> Self {
        Self(Serve::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_modelwatch")),
            args,
        ))
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(self) -> Option<i32> {
        self.0.terminate()
    }

    /// Waits for the server to exit on its own and returns the exit code, with the
    /// last lines of its stderr.
    pub fn wait_exit(self, timeout: std::time::Duration) -> (Option<i32>, String) {
        self.0.wait_exit(timeout)
    }
}

impl std::ops::Deref for Server {
    type Target = Serve;

    fn deref(&self) -> &Serve {
        &self.0
    }
}

/// Scrapes the server's `/metrics` and parses it with the test kit's parser.
pub async fn scrape(
    client: &reqwest::Client,
    server: &Server,
) -> modelwatch_testkit::exposition::Exposition {
    modelwatch_testkit::exposition::scrape(client, &server.metrics).await
}
