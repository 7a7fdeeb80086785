//! Module implementing the process collector. See [`ProcessCollector`] for details.
//!
//! `prometheus-client` has no process metrics; these follow the names and meanings of
//! the other official clients, so standard dashboards work unchanged.

use crate::schema::{self, MetricDef};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads `/proc/self` at scrape time and exposes the standard `process_*` metrics.
/// On systems without `/proc` it exposes nothing.
#[derive(Debug, Default)]
pub struct ProcessCollector {
    _private: (),
}

/// One reading of the process' resources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_memory_bytes: f64,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: f64,
    /// Start time, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// Soft limit on open file descriptors.
    pub max_fds: Option<f64>,
}

impl ProcessCollector {
    /// A collector for the current process.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Reads the current process' statistics from `/proc`, or `None` where there is none.
pub fn read_process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    let mut stats = parse_stat(&stat, boot_time)?;
    stats.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    stats.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| parse_max_fds(&l));
    Some(stats)
}

/// Parses `/proc/self/stat`; the command name may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_stat(stat: &str, boot_time: f64) -> Option<ProcessStats> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); field N is at index N - 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as f64;
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        start_time_seconds: boot_time + field(22)? / ticks,
        virtual_memory_bytes: field(23)?,
        resident_memory_bytes: field(24)? * page,
        open_fds: 0.0,
        max_fds: None,
    })
}

fn parse_max_fds(limits: &str) -> Option<f64> {
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    def: &MetricDef,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    let e = encoder.encode_descriptor(
        def.registration_name(),
        def.registration_help(),
        None,
        metric.metric_type(),
    )?;
    metric.encode(e)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = read_process_stats() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(stats.cpu_seconds);
        let def = &schema::PROCESS_CPU_SECONDS_TOTAL;
        let e = encoder.encode_descriptor(
            def.registration_name(),
            def.registration_help(),
            None,
            cpu.metric_type(),
        )?;
        cpu.encode(e)?;
        gauge(
            &mut encoder,
            &schema::PROCESS_RESIDENT_MEMORY_BYTES,
            stats.resident_memory_bytes,
        )?;
        gauge(
            &mut encoder,
            &schema::PROCESS_VIRTUAL_MEMORY_BYTES,
            stats.virtual_memory_bytes,
        )?;
        gauge(&mut encoder, &schema::PROCESS_OPEN_FDS, stats.open_fds)?;
        if let Some(max) = stats.max_fds {
            gauge(&mut encoder, &schema::PROCESS_MAX_FDS, max)?;
        }
        gauge(
            &mut encoder,
            &schema::PROCESS_START_TIME_SECONDS,
            stats.start_time_seconds,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name_parses() {
        let stat = "4242 (my (odd) cmd) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 1000 4096000 300 18446744073709551615";
        let s = parse_stat(stat, 1_700_000_000.0).unwrap();
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        assert_eq!(s.cpu_seconds, 300.0 / ticks);
        assert_eq!(s.start_time_seconds, 1_700_000_000.0 + 1000.0 / ticks);
        assert_eq!(s.virtual_memory_bytes, 4_096_000.0);
        assert_eq!(
            s.resident_memory_bytes,
            300.0 * rustix::param::page_size() as f64
        );
    }

    #[test]
    fn max_fds_from_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_process_reads_plausible_values() {
        let s = read_process_stats().unwrap();
        assert!(s.resident_memory_bytes > 1_000_000.0);
        assert!(s.open_fds >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
