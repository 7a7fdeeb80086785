//! Module implementing the load report: counts and client-side latency. See
//! [`LoadReport`] for details.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a load run did, from the client's side.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Target rate.
    pub rps: f64,
    /// Requests planned (rate × duration, capped by the count limit).
    pub planned: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests not sent because the in-flight cap was reached.
    pub skipped: u64,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (connection refused, reset, client timeout).
    pub transport_errors: u64,
    /// Wall time of the run.
    #[serde(with = "secs")]
    pub elapsed: Duration,
    /// Latencies in microseconds of the answered requests, sorted by [`Self::finish`].
    #[serde(skip)]
    pub latencies_us: Vec<u32>,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl LoadReport {
    pub(crate) fn new(rps: f64, planned: u64) -> Self {
        Self {
            rps,
            planned,
            sent: 0,
            skipped: 0,
            statuses: BTreeMap::new(),
            transport_errors: 0,
            elapsed: Duration::ZERO,
            latencies_us: Vec::with_capacity(planned.min(10_000_000) as usize),
        }
    }

    pub(crate) fn record(&mut self, status: Option<u16>, micros: u32) {
        self.sent += 1;
        match status {
            Some(code) => {
                *self.statuses.entry(code).or_default() += 1;
                self.latencies_us.push(micros);
            }
            None => self.transport_errors += 1,
        }
    }

    /// Sorts the latencies so quantiles can be read.
    pub fn finish(&mut self) {
        self.latencies_us.sort_unstable();
    }

    /// The `q` quantile of answered-request latency in seconds (nearest rank), or
    /// `None` when nothing was answered.
    pub fn quantile_seconds(&self, q: f64) -> Option<f64> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let rank = ((q * self.latencies_us.len() as f64).ceil() as usize)
            .clamp(1, self.latencies_us.len());
        Some(f64::from(self.latencies_us[rank - 1]) / 1e6)
    }

    /// Answers with a 2xx status.
    pub fn ok(&self) -> u64 {
        self.statuses.range(200..300).map(|(_, n)| n).sum()
    }

    /// The achieved rate of sent requests.
    pub fn achieved_rps(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A table for the terminal.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let ms = |q: f64| {
            self.quantile_seconds(q)
                .map(|s| format!("{:.3} ms", s * 1e3))
                .unwrap_or_else(|| "-".into())
        };
        let mut out = String::new();
        let _ = writeln!(out, "{:<18} {:>12}", "sent", self.sent);
        let _ = writeln!(out, "{:<18} {:>12.1}", "rate (req/s)", self.achieved_rps());
        for (status, n) in &self.statuses {
            let _ = writeln!(out, "{:<18} {:>12}", format!("HTTP {status}"), n);
        }
        if self.transport_errors > 0 {
            let _ = writeln!(
                out,
                "{:<18} {:>12}",
                "transport errors", self.transport_errors
            );
        }
        if self.skipped > 0 {
            let _ = writeln!(out, "{:<18} {:>12}", "skipped (cap)", self.skipped);
        }
        let _ = writeln!(out, "{:<18} {:>12}", "latency p50", ms(0.50));
        let _ = writeln!(out, "{:<18} {:>12}", "latency p99", ms(0.99));
        let _ = writeln!(out, "{:<18} {:>12}", "latency max", ms(1.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let mut r = LoadReport::new(10.0, 100);
        for us in (1..=100).rev() {
            r.record(Some(200), us * 1000);
        }
        r.record(None, 0);
        r.finish();
        assert_eq!(r.quantile_seconds(0.5), Some(0.050));
        assert_eq!(r.quantile_seconds(0.99), Some(0.099));
        assert_eq!(r.quantile_seconds(1.0), Some(0.100));
        assert_eq!((r.sent, r.ok(), r.transport_errors), (101, 100, 1));
        assert!(r.table().contains("HTTP 200"));
    }
}
