//! Module implementing scrape encoding with content negotiation. See [`Format`] for
//! details.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// The text formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text: typed info metrics and `# EOF`. Prometheus asks for it.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, for `curl`, `promtool check metrics`
    /// and older scrapers.
    PrometheusText,
}

impl Format {
    /// Chooses the format from a scrape's `Accept` header.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    /// The `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_text::CONTENT_TYPE,
        }
    }

    /// Encodes `registry` into `out` (cleared first, so a buffer can be reused).
    pub fn encode(self, registry: &Registry, out: &mut String) -> Result<(), std::fmt::Error> {
        out.clear();
        match self {
            Format::OpenMetrics => text::encode(out, registry),
            Format::PrometheusText => prometheus_text::encode(out, registry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics() {
        let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(accept)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
    }

    #[test]
    fn openmetrics_ends_with_eof() {
        let registry = Registry::default();
        let mut out = String::from("stale");
        Format::OpenMetrics.encode(&registry, &mut out).unwrap();
        assert_eq!(out, "# EOF\n");
    }
}
