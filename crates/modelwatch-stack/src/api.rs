//! Module implementing the few Prometheus and Alertmanager HTTP API calls that
//! tests and `modelwatch stack` need. See [`query`], [`firing_alerts`] and
//! [`wait_for`] for details.

use anyhow::Context as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often [`wait_for`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// One sample of an instant query. A scalar result is one sample without labels.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    /// The series labels, `__name__` included when the series has one.
    pub labels: BTreeMap<String, String>,
    /// The value (`NaN` and infinities included).
    pub value: f64,
}

/// One alert, as Prometheus (`/api/v1/alerts`) or Alertmanager (`/api/v2/alerts`)
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The alert's labels, `alertname` included.
    pub labels: BTreeMap<String, String>,
    /// Summary, description, runbook_url and so on.
    pub annotations: BTreeMap<String, String>,
    /// `pending` or `firing` from Prometheus; `active`, `suppressed` or
    /// `unprocessed` from Alertmanager.
    pub state: String,
}

impl Alert {
    /// The `alertname` label (empty if absent).
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// An HTTP client with a 10 s request timeout, for the functions of this module.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// Runs the instant query `promql` at the server's current time against the
/// Prometheus at `base_url` (such as `http://127.0.0.1:9090`).
pub async fn query(
    client: &reqwest::Client,
    base_url: &str,
    promql: &str,
) -> anyhow::Result<Vec<QuerySample>> {
    instant_query(client, base_url, promql, None).await
}

/// Runs the instant query `promql` evaluated at `time`, so that two servers can be
/// compared at the same evaluation timestamp.
pub async fn query_at(
    client: &reqwest::Client,
    base_url: &str,
    promql: &str,
    time: SystemTime,
) -> anyhow::Result<Vec<QuerySample>> {
    instant_query(client, base_url, promql, Some(time)).await
}

async fn instant_query(
    client: &reqwest::Client,
    base_url: &str,
    promql: &str,
    time: Option<SystemTime>,
) -> anyhow::Result<Vec<QuerySample>> {
    let mut url = format!(
        "{}/api/v1/query?query={}",
        base_url.trim_end_matches('/'),
        percent_encode(promql)
    );
    if let Some(time) = time {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .context("query time before 1970")?
            .as_secs_f64();
        let _ = write!(url, "&time={seconds:.3}");
    }
    let data: QueryData = get_api(client, &url)
        .await
        .with_context(|| format!("query {promql}"))?;
    match data {
        QueryData::Vector(series) => series
            .into_iter()
            .map(|s| {
                Ok(QuerySample {
                    labels: s.metric,
                    value: parse_value(&s.value.1)?,
                })
            })
            .collect(),
        QueryData::Scalar((_, value)) => Ok(vec![QuerySample {
            labels: BTreeMap::new(),
            value: parse_value(&value)?,
        }]),
        QueryData::Other => {
            anyhow::bail!("query {promql}: the result is neither an instant vector nor a scalar")
        }
    }
}

/// One active scrape target, as Prometheus' `/api/v1/targets` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeTarget {
    /// The target's labels after relabelling (`job`, `instance`...).
    pub labels: BTreeMap<String, String>,
    /// The URL scraped, such as `https://127.0.0.1:9464/metrics`.
    pub scrape_url: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    /// Why the last scrape failed; empty after a successful one.
    #[serde(default)]
    pub last_error: String,
}

/// The active scrape targets of Prometheus at `base_url`.
pub async fn targets(
    client: &reqwest::Client,
    base_url: &str,
) -> anyhow::Result<Vec<ScrapeTarget>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Targets {
        active_targets: Vec<ScrapeTarget>,
    }
    let url = format!(
        "{}/api/v1/targets?state=active",
        base_url.trim_end_matches('/')
    );
    let data: Targets = get_api(client, &url).await.context("list targets")?;
    Ok(data.active_targets)
}

/// The alerts Prometheus at `base_url` is firing now (`pending` ones left out).
pub async fn firing_alerts(client: &reqwest::Client, base_url: &str) -> anyhow::Result<Vec<Alert>> {
    #[derive(Deserialize)]
    struct Alerts {
        alerts: Vec<PromAlert>,
    }
    #[derive(Deserialize)]
    struct PromAlert {
        labels: BTreeMap<String, String>,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
        state: String,
    }
    let url = format!("{}/api/v1/alerts", base_url.trim_end_matches('/'));
    let data: Alerts = get_api(client, &url).await.context("list alerts")?;
    Ok(data
        .alerts
        .into_iter()
        .filter(|a| a.state == "firing")
        .map(|a| Alert {
            labels: a.labels,
            annotations: a.annotations,
            state: a.state,
        })
        .collect())
}

/// The alerts the Alertmanager at `base_url` holds (active, silenced and
/// inhibited ones alike), from `/api/v2/alerts`.
pub async fn alertmanager_alerts(
    client: &reqwest::Client,
    base_url: &str,
) -> anyhow::Result<Vec<Alert>> {
    #[derive(Deserialize)]
    struct AmAlert {
        labels: BTreeMap<String, String>,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
        status: AmStatus,
    }
    #[derive(Deserialize)]
    struct AmStatus {
        state: String,
    }
    let url = format!("{}/api/v2/alerts", base_url.trim_end_matches('/'));
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.text().await?;
    anyhow::ensure!(status.is_success(), "GET {url}: {status}: {body}");
    let alerts: Vec<AmAlert> =
        serde_json::from_str(&body).with_context(|| format!("GET {url}: {body}"))?;
    Ok(alerts
        .into_iter()
        .map(|a| Alert {
            labels: a.labels,
            annotations: a.annotations,
            state: a.status.state,
        })
        .collect())
}

/// Calls `poll` every [`POLL_INTERVAL`] until it returns `Some`, and returns that
/// value. Fails with `what` in the message when `timeout` passes first, or at once
/// when `poll` returns an error (so a bad query fails fast: map errors to `None`
/// in `poll` to retry them).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut poll: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = poll().await? {
            return Ok(value);
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls the query `promql` until it returns at least one sample.
pub async fn wait_for_samples(
    client: &reqwest::Client,
    base_url: &str,
    promql: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<QuerySample>> {
    wait_for(&format!("{promql} returns data"), timeout, || async {
        let samples = query(client, base_url, promql).await?;
        Ok((!samples.is_empty()).then_some(samples))
    })
    .await
}

/// Percent-encodes `text` for a URL query string: every byte except the
/// unreserved characters `A-Z a-z 0-9 - . _ ~`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The envelope of every Prometheus `/api/v1` answer.
#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum QueryData {
    Vector(Vec<Series>),
    Scalar((f64, String)),
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

async fn get_api<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<T> {
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.text().await?;
    let envelope: Envelope<T> = serde_json::from_str(&body)
        .with_context(|| format!("{status}, not a Prometheus API answer: {body}"))?;
    match envelope.data {
        Some(data) if envelope.status == "success" => Ok(data),
        _ => anyhow::bail!("{status}: {}", envelope.error),
    }
}

fn parse_value(text: &str) -> anyhow::Result<f64> {
    text.parse()
        .with_context(|| format!("{text:?} is not a sample value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            percent_encode("sum by (le) (rate(x{a=\"b c\"}[5m])) > 0.5"),
            "sum%20by%20%28le%29%20%28rate%28x%7Ba%3D%22b%20c%22%7D%5B5m%5D%29%29%20%3E%200.5"
        );
        assert_eq!(percent_encode("a+b&c=é"), "a%2Bb%26c%3D%C3%A9");
    }

    #[test]
    fn special_values_parse() {
        assert!(parse_value("NaN").is_ok_and(f64::is_nan));
        assert_eq!(parse_value("+Inf").ok(), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf").ok(), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("1e+00").ok(), Some(1.0));
    }
}
