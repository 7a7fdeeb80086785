//! Module implementing the Prometheus HTTP API calls the page makes: range
//! queries for the panels and label values for the variables. See [`query_range`]
//! and [`label_values`] for details.

use crate::format::url_value;
use std::collections::BTreeMap;

/// The error text of a failed call, as the page shows it under the panel.
fn why(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

async fn get(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let response = client.get(url).send().await.map_err(|e| why(&e))?;
    let status = response.status();
    let mut body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| format!("answered {status} without Prometheus' JSON: {}", why(&e)))?;
    if body["status"] != "success" {
        return Err(body["error"].as_str().unwrap_or("refused").to_string());
    }
    Ok(body["data"].take())
}

/// One series of a range query: its labels and its finite `(time, value)` points.
pub type RangeSeries = (BTreeMap<String, String>, Vec<(f64, f64)>);

/// `/api/v1/query_range` from `start` to `end` every `step` seconds.
pub async fn query_range(
    client: &reqwest::Client,
    base: &str,
    promql: &str,
    (start, end): (f64, f64),
    step: f64,
) -> Result<Vec<RangeSeries>, String> {
    let url = format!(
        "{}/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
        base.trim_end_matches('/'),
        url_value(promql)
    );
    let data = get(client, &url).await?;
    Ok(data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let points = r["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let t = p[0].as_f64()?;
                    let v: f64 = p[1].as_str()?.parse().ok()?;
                    v.is_finite().then_some((t, v))
                })
                .collect();
            (labels, points)
        })
        .collect())
}

/// The values of a Grafana `label_values(selector, label)` variable query,
/// sorted, from `/api/v1/series`.
pub async fn label_values(
    client: &reqwest::Client,
    base: &str,
    definition: &str,
) -> Result<Vec<String>, String> {
    let inner = definition
        .trim()
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("not a label_values(...) query: {definition}"))?;
    let (selector, label) = inner
        .rsplit_once(',')
        .ok_or_else(|| format!("label_values without a label: {definition}"))?;
    let url = format!(
        "{}/api/v1/series?match[]={}",
        base.trim_end_matches('/'),
        url_value(selector.trim())
    );
    let data = get(client, &url).await?;
    let label = label.trim();
    let mut values: Vec<String> = data
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s[label].as_str().map(str::to_string))
        .collect();
    values.sort();
    values.dedup();
    Ok(values)
}
