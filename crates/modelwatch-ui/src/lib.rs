//! The modelwatch page: the Grafana dashboard (`mixin/grafana/model-health.json`)
//! drawn live as server-rendered HTML with inline SVG, so that whoever runs
//! `modelwatch demo`, `modelwatch stack up` or one `serve` sees what Grafana would
//! show, without Grafana.
//!
//! Rendering is pure: [`page::render`] turns the dashboard, the query results and
//! the `modelwatch status` report into HTML, and [`page::render_listener`] does the
//! same for a server's own metrics listener. [`prometheus`] runs the dashboard's
//! queries, [`server`] is the axum router of `modelwatch ui`, and [`listener`] the
//! page that `serve` answers on its metrics listener at `/`.
//!
//! ```
//! use modelwatch_ui::dashboard::Dashboard;
//! use modelwatch_ui::page::{Page, render};
//!
//! let dashboard = Dashboard::model_health()?;
//! let html = render(&Page::empty(&dashboard, "prometheus http://127.0.0.1:9090"));
//! // Every panel of the dashboard is on the page, drawn or listed by name.
//! for panel in dashboard.panels() {
//!     assert!(html.contains(&format!("data-panel-id=\"{}\"", panel.id)));
//! }
//! # Ok::<(), modelwatch_ui::dashboard::DashboardError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod dashboard;
pub mod format;
pub mod listener;
pub mod page;
pub mod prometheus;
pub mod runbook;
pub mod server;
pub mod svg;

use std::collections::BTreeMap;

/// One series of a query result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// Its name on the page: the panel's legend format filled in.
    pub name: String,
    /// `(unix seconds, value)`, ascending, finite values only.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// The last value, which a stat tile shows (Grafana's `lastNotNull`).
    pub fn last(&self) -> Option<f64> {
        self.points.last().map(|p| p.1)
    }
}

/// `legend` (Grafana's `legendFormat`, such as `{{version}} {{stage}}`) filled in
/// from `labels`; an empty legend names the series by its labels.
pub fn legend(legend: &str, labels: &BTreeMap<String, String>) -> String {
    if legend.trim().is_empty() || legend == "__auto" {
        let parts: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k.as_str() != "__name__")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        return if parts.is_empty() {
            "value".into()
        } else {
            parts.join(", ")
        };
    }
    let mut out = String::new();
    let mut rest = legend;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                out.push_str(labels.get(name).map_or("", String::as_str));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legends_are_filled_from_labels() {
        let labels: BTreeMap<String, String> = [("version", "3"), ("stage", "queue")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(legend("{{version}} {{ stage }}", &labels), "3 queue");
        assert_eq!(legend("", &labels), "stage=queue, version=3");
        assert_eq!(legend("p99 {{missing}}", &labels), "p99");
    }
}
