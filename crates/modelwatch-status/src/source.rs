//! Module implementing the two sources of a reading: Prometheus and direct scrapes.
//! See [`from_prometheus`] and [`from_metrics`].

use crate::scrape::{Sample, histogram_quantile, parse};
use crate::{Figures, FiringAlert, Report, judge};
use modelwatch::schema;
use modelwatch_mixin::MixinConfig;
use modelwatch_mixin::names::record;
use std::time::Duration;

/// Runs an instant query and returns (labels, value) pairs.
async fn query(
    client: &reqwest::Client,
    base: &str,
    promql: &str,
) -> anyhow::Result<Vec<(serde_json::Map<String, serde_json::Value>, f64)>> {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let response = client
        .get(format!("{url}?query={}", modelwatch_stack::percent_encode(promql)))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Prometheus at {base}: {}\nhint: check --prometheus, or use --metrics URL to read a server directly", why(&e)))?;
    let http_status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| {
        anyhow::anyhow!("{base} answered {http_status} without Prometheus' JSON: {e}\nhint: --prometheus takes Prometheus' base URL, such as http://127.0.0.1:9090, without /api/v1")
    })?;
    if body["status"] != "success" {
        anyhow::bail!(
            "Prometheus refused {promql}: {}\nhint: check --model, and that {base} is Prometheus 2.x or later",
            body["error"]
        );
    }
    let result = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(result
        .into_iter()
        .filter_map(|r| {
            let value = r["value"][1].as_str()?.parse::<f64>().ok()?;
            Some((r["metric"].as_object()?.clone(), value))
        })
        .filter(|(_, v)| v.is_finite())
        .collect())
}

/// Why a request failed, in the words of its root cause ("Connection refused (os error
/// 111)"), which reqwest's own message leaves out.
fn why(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer within 5 s".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `text` as a PromQL string literal: a model name with a quote or a backslash
/// selects that model instead of breaking the query.
fn promql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn label(labels: &serde_json::Map<String, serde_json::Value>, name: &str) -> String {
    labels
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
}

async fn scalar(
    client: &reqwest::Client,
    base: &str,
    promql: String,
) -> anyhow::Result<Option<f64>> {
    Ok(query(client, base, &promql).await?.first().map(|(_, v)| *v))
}

async fn labelled(
    client: &reqwest::Client,
    base: &str,
    promql: String,
    by: &str,
) -> anyhow::Result<Option<(String, f64)>> {
    Ok(query(client, base, &promql)
        .await?
        .first()
        .map(|(l, v)| (label(l, by), *v)))
}

/// Reads the recording rules and firing alerts from Prometheus.
pub async fn from_prometheus(
    client: &reqwest::Client,
    base: &str,
    model: Option<&str>,
    config: &MixinConfig,
) -> anyhow::Result<Report> {
    // The model name as a PromQL string literal, quoted and escaped.
    let quoted = model.map(promql_string);
    let sel = quoted
        .as_deref()
        .map(|m| format!("{{model={m}}}"))
        .unwrap_or_default();
    let errors_5m = record::BURN_WINDOWS[0].errors;
    let figures = Figures {
        rps: scalar(
            client,
            base,
            format!("sum({}{sel})", record::REQUESTS_RATE5M),
        )
        .await?,
        error_ratio: scalar(client, base, format!("max({errors_5m}{sel})")).await?,
        p99_seconds: scalar(
            client,
            base,
            format!(
                "max({}{{quantile=\"0.99\"{}}})",
                record::REQUEST_DURATION_QUANTILE,
                quoted
                    .as_deref()
                    .map(|m| format!(",model={m}"))
                    .unwrap_or_default()
            ),
        )
        .await?,
        score_psi: scalar(client, base, format!("max({}{sel})", record::SCORE_PSI)).await?,
        worst_feature_psi: labelled(
            client,
            base,
            format!("topk(1, {}{sel})", record::FEATURE_PSI),
            "feature",
        )
        .await?,
        approval_delta: query(
            client,
            base,
            &format!("{}{sel}", record::APPROVAL_RATIO_DELTA),
        )
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .max_by(|a, b| a.abs().total_cmp(&b.abs())),
        worst_feature_age: labelled(
            client,
            base,
            format!("topk(1, {}{sel})", record::FEATURE_AGE_MAX),
            "feature_group",
        )
        .await?,
        cache_hit_ratio: scalar(
            client,
            base,
            format!("min({}{sel})", record::CACHE_HIT_RATIO),
        )
        .await?,
    };
    let alerts = query(
        client,
        base,
        "ALERTS{alertstate=\"firing\",alertname=~\"ModelWatch.*\"}",
    )
    .await?;
    let firing: Vec<FiringAlert> = alerts
        .into_iter()
        .filter(|(l, _)| {
            model.is_none_or(|m| label(l, "model").is_empty() || label(l, "model") == m)
        })
        .map(|(l, _)| FiringAlert {
            name: label(&l, "alertname"),
            severity: label(&l, "severity"),
            labels: l
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "alertname" | "alertstate" | "severity" | "__name__"
                    )
                })
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect(),
        })
        .collect();
    let (verdict, reasons) = judge(&figures, &firing, config);
    Ok(Report {
        source: format!("prometheus {base}"),
        verdict,
        figures,
        reasons,
        firing,
    })
}

fn total(samples: &[Sample], name: &str, filter: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && filter(s))
        .map(|s| s.value)
        .sum()
}

const METRICS_HINT: &str = "hint: --metrics takes the server's metrics URL, such as http://127.0.0.1:9464/metrics (the metrics listener, not the API port)";

/// The text of one scrape of `url`.
async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let response = client
        .get(url)
        .header("accept", "text/plain")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot scrape {url}: {}\n{METRICS_HINT}", why(&e)))?;
    let http_status = response.status();
    if !http_status.is_success() {
        anyhow::bail!("{url} answered {http_status}\n{METRICS_HINT}");
    }
    response
        .text()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the page at {url}: {e}\n{METRICS_HINT}"))
}

/// One scrape's samples, restricted to `model` when given. A page without
/// modelwatch's request counter (another exporter, a model name that is not there)
/// cannot be judged; `source` names the page in the error.
fn samples(text: &str, source: &str, model: Option<&str>) -> anyhow::Result<Vec<Sample>> {
    let mut samples = parse(text);
    let requests = schema::REQUESTS_TOTAL.name;
    let models: std::collections::BTreeSet<String> = samples
        .iter()
        .filter(|s| s.name == requests)
        .map(|s| s.label("model").to_string())
        .collect();
    if models.is_empty() {
        anyhow::bail!("{source} has no modelwatch metrics (no {requests} series)\n{METRICS_HINT}");
    }
    if let Some(model) = model {
        if !models.contains(model) {
            let known: Vec<&str> = models.iter().map(String::as_str).collect();
            anyhow::bail!(
                "{source} has no model {model:?}\nhint: its models are {}; pass one to --model, or leave it out",
                known.join(", ")
            );
        }
        samples.retain(|s| s.labels.get("model").is_none_or(|m| m == model));
    }
    Ok(samples)
}

/// Reads a server directly: two scrapes `interval` apart give rates; the per-replica
/// gauges give drift and freshness. With `model`, only that model's series count.
pub async fn from_metrics(
    client: &reqwest::Client,
    url: &str,
    model: Option<&str>,
    interval: Duration,
    config: &MixinConfig,
) -> anyhow::Result<Report> {
    let first = fetch(client, url).await?;
    samples(&first, url, model)?;
    let started = std::time::Instant::now();
    tokio::time::sleep(interval).await;
    let second = fetch(client, url).await?;
    let elapsed = started.elapsed();
    let mut report = from_scrapes(&first, &second, elapsed, url, model, config)?;
    report.source = format!(
        "metrics {url}, {:.1} s between scrapes",
        elapsed.as_secs_f64()
    );
    Ok(report)
}

/// Judges two scrapes of one server (text exposition), `elapsed` apart, as
/// `status --metrics` does: their difference gives rates, the second one's gauges
/// drift and freshness. With `model`, only that model's series count. `source`
/// names the page in errors and in the report. A server that holds its own
/// registry (the page on `serve`'s metrics listener) calls this with two encodings
/// of it, without a socket.
pub fn from_scrapes(
    first: &str,
    second: &str,
    elapsed: Duration,
    source: &str,
    model: Option<&str>,
    config: &MixinConfig,
) -> anyhow::Result<Report> {
    let first = samples(first, source, model)?;
    let second = samples(second, source, model)?;
    let dt = elapsed.as_secs_f64();
    let delta = |name: &str, filter: &dyn Fn(&Sample) -> bool| {
        total(&second, name, filter) - total(&first, name, filter)
    };

    let requests = schema::REQUESTS_TOTAL.name;
    let all = delta(requests, &|_| true);
    // Outside the SLOs, as in the mixin's rules: bad input and client hang-ups.
    let outside = delta(requests, &|s| {
        s.label("status")
            .parse::<modelwatch::Status>()
            .is_ok_and(|st| !st.in_slo())
    });
    let failed = delta(requests, &|s| {
        matches!(s.label("status"), "error" | "timeout" | "overloaded")
    });
    let valid = all - outside;

    let bucket = format!("{}_bucket", schema::REQUEST_DURATION_SECONDS.name);
    let mut les: Vec<(f64, f64)> = Vec::new();
    for s in second.iter().filter(|s| s.name == bucket) {
        let le: f64 = match s.label("le") {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        let before = first
            .iter()
            .find(|f| f.name == bucket && f.labels == s.labels)
            .map(|f| f.value)
            .unwrap_or(0.0);
        match les.iter_mut().find(|(l, _)| *l == le) {
            Some((_, c)) => *c += s.value - before,
            None => les.push((le, s.value - before)),
        }
    }
    let hits = delta(schema::FEATURE_CACHE_OPERATIONS_TOTAL.name, &|s| {
        s.label("operation") == "hit"
    });
    let lookups = delta(schema::FEATURE_CACHE_OPERATIONS_TOTAL.name, &|_| true);
    let max_by = |name: &str, by: &str| {
        second
            .iter()
            .filter(|s| s.name == name && s.value.is_finite())
            .max_by(|a, b| a.value.total_cmp(&b.value))
            .map(|s| (s.label(by).to_string(), s.value))
    };
    let figures = Figures {
        rps: Some(all / dt),
        error_ratio: (valid > 0.0).then(|| failed / valid),
        p99_seconds: histogram_quantile(0.99, &les),
        score_psi: max_by(schema::SCORE_PSI.name, "window").map(|(_, v)| v),
        worst_feature_psi: max_by(schema::FEATURE_PSI.name, "feature"),
        approval_delta: None,
        worst_feature_age: max_by(schema::FEATURE_AGE_SECONDS.name, "feature_group"),
        cache_hit_ratio: (lookups > 0.0).then(|| hits / lookups),
    };
    let (verdict, mut reasons) = judge(&figures, &[], config);
    reasons.push("read from /metrics: per-replica drift windows; the 7-day approval comparison needs Prometheus".into());
    Ok(Report {
        source: format!("{source}, {dt:.1} s between scrapes"),
        verdict,
        figures,
        reasons,
        firing: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_quoted_as_promql_strings() {
        assert_eq!(promql_string("fraud"), r#""fraud""#);
        assert_eq!(promql_string(r#"a"b\c"#), r#""a\"b\\c""#);
        // Unescaped, this name would end the selector and add `or vector(1)`.
        let name = r#"x"} or vector(1) #"#;
        let selector = format!("up{{model={}}}", promql_string(name));
        match promql_parser::parser::parse(&selector) {
            Ok(promql_parser::parser::Expr::VectorSelector(v)) => {
                let model: Vec<&str> = v
                    .matchers
                    .matchers
                    .iter()
                    .filter(|m| m.name == "model")
                    .map(|m| m.value.as_str())
                    .collect();
                assert_eq!(model, [name]);
            }
            other => panic!("{selector} is not one selector: {other:?}"),
        }
    }
}
