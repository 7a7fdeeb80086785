//! Module implementing the page itself: pure functions from the dashboard, the
//! query results and the status report to HTML. See [`render`] and
//! [`render_listener`] for details.
//!
//! Every panel of the dashboard appears on the page with its `data-panel-id`:
//! drawn when its type is in [`crate::dashboard::DRAWN_TYPES`], otherwise listed by
//! name and type in the "not drawn here" box. Nothing is dropped silently.

use crate::Series;
use crate::dashboard::{Dashboard, Panel, Row};
use crate::format::{self, PALETTE, escape, url_value};
use crate::svg;
use modelwatch_status::Report;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The time ranges the range control offers.
pub const RANGES: &[&str] = &[
    "5m", "15m", "30m", "1h", "3h", "6h", "12h", "24h", "2d", "7d",
];

/// The dashboard's controls as set by the query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Controls {
    /// Models Prometheus knows (the dashboard's `model` variable).
    pub models: Vec<String>,
    /// The model shown.
    pub model: Option<String>,
    /// Versions of that model (the `version` variable).
    pub versions: Vec<String>,
    /// The version shown; `None` is All.
    pub version: Option<String>,
    /// The time range, one of [`RANGES`].
    pub range: String,
    /// Seconds between reloads; 0 turns the refresh off.
    pub refresh_seconds: u32,
}

impl Controls {
    /// The query string that reproduces these controls, with `range` replaced.
    fn query(&self, range: &str) -> String {
        let mut q = format!("range={}", url_value(range));
        if let Some(m) = &self.model {
            let _ = write!(q, "&model={}", url_value(m));
        }
        if let Some(v) = &self.version {
            let _ = write!(q, "&version={}", url_value(v));
        }
        let _ = write!(q, "&refresh={}", self.refresh_seconds);
        q
    }
}

/// A firing alert as the page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// `alertname`.
    pub name: String,
    /// `severity`.
    pub severity: String,
    /// The other labels.
    pub labels: Vec<(String, String)>,
    /// The `summary` annotation.
    pub summary: String,
    /// The `description` annotation.
    pub description: String,
    /// The `runbook_url` annotation, as shipped with the alert.
    pub runbook_url: String,
}

/// One query's outcome.
pub type QueryResult = Result<Vec<Series>, String>;

/// Everything one drawing of the page needs.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    /// The dashboard drawn.
    pub dashboard: &'a Dashboard,
    /// Where the data comes from, as shown under the verdict.
    pub source: String,
    /// The controls.
    pub controls: Controls,
    /// The `modelwatch status` report (an error if it could not be read).
    pub report: Result<Report, String>,
    /// The firing alerts (an error if they could not be read).
    pub alerts: Result<Vec<AlertRow>, String>,
    /// Results by panel id, one per target in the panel's order.
    pub results: BTreeMap<u64, Vec<QueryResult>>,
    /// The time window drawn, Unix seconds.
    pub window: (f64, f64),
    /// Seconds between points.
    pub step: f64,
    /// When the page was drawn, Unix seconds.
    pub now: f64,
}

impl<'a> Page<'a> {
    /// A page with no data yet: every panel shows "no data".
    pub fn empty(dashboard: &'a Dashboard, source: &str) -> Self {
        Self {
            dashboard,
            source: source.to_string(),
            controls: Controls {
                range: dashboard.default_range.clone(),
                refresh_seconds: 0,
                ..Controls::default()
            },
            report: Err("not read yet".into()),
            alerts: Ok(Vec::new()),
            results: BTreeMap::new(),
            window: (0.0, 3600.0),
            step: 60.0,
            now: 3600.0,
        }
    }
}

const STYLE: &str = r#"
:root{color-scheme:dark}
body{margin:0;background:#111217;color:#d8d9da;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
a{color:#6e9fff}
.top{display:flex;flex-wrap:wrap;align-items:center;gap:12px;padding:10px 18px;background:#181b1f;border-bottom:1px solid #2c3038}
.top h1{font-size:17px;margin:0 12px 0 0;font-weight:600}
.top form{display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.top label{color:#9fa1a8;font-size:12px}
select,button{background:#22252b;color:#d8d9da;border:1px solid #3a3e46;border-radius:3px;padding:3px 6px;font:inherit}
main{padding:12px 18px 30px}
.verdict{border-radius:6px;padding:14px 20px;margin:4px 0 14px;color:#fff;display:flex;flex-wrap:wrap;gap:6px 28px;align-items:center}
.verdict .big{font-size:40px;font-weight:800;letter-spacing:.04em}
.verdict .meta{font-size:13px;opacity:.9}
.verdict ul{margin:4px 0 0;padding-left:20px;flex-basis:100%;font-size:15px}
.v-HEALTHY{background:#2f8f46}.v-DEGRADED{background:#c7620a}.v-UNHEALTHY{background:#c62f3b}.v-UNKNOWN{background:#4a4d55}
h2.row{font-size:15px;font-weight:600;margin:18px 0 8px;color:#e8e9ea;border-bottom:1px solid #2c3038;padding-bottom:4px}
h2.row small{color:#8e9099;font-weight:400}
.grid{display:grid;grid-template-columns:repeat(24,minmax(0,1fr));gap:8px}
.panel{background:#181b1f;border:1px solid #2c3038;border-radius:4px;padding:8px 10px;min-width:0}
.panel h3{font-size:13px;font-weight:600;margin:0 0 6px;color:#ccccdc}
.stat{color:#fff;position:relative;min-height:96px}
.stat h3{color:#fff}
.stat .value{font-size:30px;font-weight:700;position:relative;z-index:1}
.stat .spark{position:absolute;left:0;right:0;bottom:0;width:100%;height:40px;opacity:.9}
.chart{width:100%;height:auto;display:block}
.axis{fill:#8e9099;font-size:10px}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px;color:#b8b9bf;margin-top:4px}
.legend i{display:inline-block;width:12px;height:3px;margin-right:5px;vertical-align:middle}
.nodata{color:#8e9099;padding:38px 0;text-align:center}
.error{color:#ff8a8a;font-size:12px;white-space:pre-wrap}
.text{white-space:pre-wrap;color:#b8b9bf}
table.alerts{border-collapse:collapse;width:100%;background:#181b1f;border:1px solid #2c3038}
table.alerts td,table.alerts th{padding:6px 10px;border-bottom:1px solid #2c3038;text-align:left;vertical-align:top}
.sev{border-radius:3px;padding:1px 7px;color:#fff;font-size:12px;font-weight:600}
.sev-critical{background:#c62f3b}.sev-warning{background:#c7620a}.sev-info{background:#3274d9}
.none{color:#8e9099}
.undrawn{background:#181b1f;border:1px dashed #5a5e66;border-radius:4px;padding:8px 14px;margin-top:14px}
.figures{background:#181b1f;border:1px solid #2c3038;border-radius:4px;padding:10px 14px;white-space:pre;overflow:auto}
.note{background:#1c2330;border-left:4px solid #3274d9;padding:8px 14px;margin:14px 0;border-radius:3px}
footer{color:#6e7079;font-size:12px;margin-top:18px}
"#;

fn head(out: &mut String, title: &str, refresh_seconds: u32) {
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
    if refresh_seconds > 0 {
        // The only script: reload every few seconds (?refresh=0 turns it off).
        let _ = write!(
            out,
            "<script>setTimeout(function(){{location.reload()}},{});</script>",
            u64::from(refresh_seconds) * 1000
        );
    }
}

fn verdict_banner(out: &mut String, report: &Result<Report, String>, what: &str, now: f64) {
    match report {
        Ok(r) => {
            let v = r.verdict.as_str();
            let _ = write!(
                out,
                r#"<header class="verdict v-{v}" id="verdict" data-verdict="{v}"><div class="big">{v}</div><div class="meta">{}<br>{} · drawn {} UTC</div><ul class="reasons">"#,
                escape(what),
                escape(&r.source),
                format::clock_seconds(now)
            );
            if r.reasons.is_empty() {
                out.push_str("<li>no alert firing, every key number within its threshold</li>");
            }
            for reason in &r.reasons {
                let _ = write!(out, "<li>{}</li>", escape(reason));
            }
            out.push_str("</ul></header>");
        }
        Err(e) => {
            let _ = write!(
                out,
                r#"<header class="verdict v-UNKNOWN" id="verdict" data-verdict="UNKNOWN"><div class="big">NO VERDICT</div><div class="meta">{}</div><ul class="reasons"><li>{}</li></ul></header>"#,
                escape(what),
                escape(e)
            );
        }
    }
}

fn controls(out: &mut String, page: &Page<'_>) {
    let c = &page.controls;
    out.push_str(r#"<form method="get" action="/" id="controls">"#);
    for var in &page.dashboard.variables {
        let (name, options, selected): (&str, &[String], Option<&String>) = match var.name.as_str()
        {
            "model" => ("model", &c.models, c.model.as_ref()),
            "version" => ("version", &c.versions, c.version.as_ref()),
            // The data source is this page's Prometheus.
            _ => continue,
        };
        let _ = write!(
            out,
            r#"<label for="{name}">{}</label><select id="{name}" name="{name}" onchange="this.form.submit()">"#,
            escape(if var.label.is_empty() {
                &var.name
            } else {
                &var.label
            })
        );
        if var.include_all {
            let _ = write!(
                out,
                r#"<option value=""{}>All</option>"#,
                if selected.is_none() { " selected" } else { "" }
            );
        }
        for o in options {
            let _ = write!(
                out,
                r#"<option value="{0}"{1}>{0}</option>"#,
                escape(o),
                if Some(o) == selected { " selected" } else { "" }
            );
        }
        out.push_str("</select>");
    }
    out.push_str(r#"<label for="range">Last</label><select id="range" name="range" onchange="this.form.submit()">"#);
    for r in RANGES {
        let _ = write!(
            out,
            r#"<option value="{r}"{}>{r}</option>"#,
            if *r == c.range { " selected" } else { "" }
        );
    }
    let _ = write!(
        out,
        r#"</select><label for="refresh">Refresh</label><select id="refresh" name="refresh" onchange="this.form.submit()">"#
    );
    for s in [0, 5, 10, 30] {
        let _ = write!(
            out,
            r#"<option value="{s}"{}>{}</option>"#,
            if s == c.refresh_seconds {
                " selected"
            } else {
                ""
            },
            if s == 0 {
                "off".to_string()
            } else {
                format!("{s} s")
            }
        );
    }
    out.push_str(r#"</select><noscript><button type="submit">Apply</button></noscript></form>"#);
}

fn alerts(out: &mut String, alerts: &Result<Vec<AlertRow>, String>) {
    out.push_str(r#"<section id="alerts"><h2 class="row">Firing alerts"#);
    match alerts {
        Err(e) => {
            let _ = write!(
                out,
                r#"</h2><p class="error">cannot read the alerts: {}</p>"#,
                escape(e)
            );
        }
        Ok(list) if list.is_empty() => {
            out.push_str(r#" <small>(0)</small></h2><p class="none">No alert is firing.</p>"#);
        }
        Ok(list) => {
            let _ = write!(
                out,
                r#" <small>({})</small></h2><table class="alerts"><tr><th>alert</th><th>severity</th><th>labels</th><th>summary</th><th>runbook</th></tr>"#,
                list.len()
            );
            for a in list {
                let anchor = modelwatch_mixin::names::alert::anchor(&a.name);
                let labels: Vec<String> = a
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
                    .collect();
                let _ = write!(
                    out,
                    r#"<tr class="alert" data-alert="{name}"><td><a href="/runbook#{anchor}"><b>{name}</b></a></td><td><span class="sev sev-{sev}">{sev}</span></td><td>{labels}</td><td>{summary}<br><span class="none">{description}</span></td><td><a href="/runbook#{anchor}">runbook section</a>{shipped}</td></tr>"#,
                    name = escape(&a.name),
                    anchor = escape(&anchor),
                    sev = escape(&a.severity),
                    labels = labels.join(" "),
                    summary = escape(&a.summary),
                    description = escape(&a.description),
                    shipped = if a.runbook_url.is_empty() {
                        String::new()
                    } else {
                        format!(r#" · <a href="{}">as shipped</a>"#, escape(&a.runbook_url))
                    }
                );
            }
            out.push_str("</table>");
        }
    }
    out.push_str("</section>");
}

fn panel_open(out: &mut String, panel: &Panel, class: &str, style: &str) {
    let _ = write!(
        out,
        r#"<section class="panel {class}" data-panel-id="{}" data-type="{}" style="grid-column:span {};{style}"><h3 title="{}">{}</h3>"#,
        panel.id,
        escape(&panel.kind),
        panel.width.clamp(1, 24),
        escape(&panel.description),
        escape(&panel.title)
    );
}

/// The first error of a panel's results, and the series of the others.
fn collect(results: Option<&Vec<QueryResult>>) -> (Vec<&Series>, Option<&str>) {
    let mut series = Vec::new();
    let mut error = None;
    for r in results.into_iter().flatten() {
        match r {
            Ok(s) => series.extend(s.iter()),
            Err(e) => error = error.or(Some(e.as_str())),
        }
    }
    (series, error)
}

fn stat(
    out: &mut String,
    panel: &Panel,
    value: Option<f64>,
    spark: Option<String>,
    error: Option<&str>,
) {
    let (bg, name) = match value {
        Some(v) => {
            let name = panel.color_for(v);
            let css = format::color(name);
            (
                if css == "transparent" { "#22252b" } else { css },
                name.to_string(),
            )
        }
        None => ("#22252b", "none".to_string()),
    };
    panel_open(out, panel, "stat", &format!("background:{bg}"));
    let _ = write!(
        out,
        r#"<div class="value" data-color="{}">{}</div>"#,
        escape(&name),
        value.map_or_else(
            || "No data".to_string(),
            |v| escape(&format::value(&panel.unit, v))
        )
    );
    if let Some(e) = error {
        let _ = write!(out, r#"<div class="error">{}</div>"#, escape(e));
    }
    if let Some(s) = spark {
        out.push_str(&s);
    }
    out.push_str("</section>");
}

fn draw_panel(out: &mut String, panel: &Panel, page: &Page<'_>) {
    let (series, error) = collect(page.results.get(&panel.id));
    match panel.kind.as_str() {
        "stat" => {
            let first = series.first();
            stat(
                out,
                panel,
                first.and_then(|s| s.last()),
                first
                    .filter(|s| s.points.len() > 1)
                    .map(|s| svg::sparkline(s, page.window, page.step)),
                error,
            );
        }
        "timeseries" | "heatmap" => {
            panel_open(out, panel, "graph", "");
            let owned: Vec<Series> = series.iter().map(|s| (*s).clone()).collect();
            if owned.iter().all(|s| s.points.is_empty()) {
                out.push_str(r#"<div class="nodata">No data in this range</div>"#);
            } else if panel.kind == "heatmap" {
                out.push_str(&svg::heatmap(panel, &owned, page.window, page.step));
            } else {
                out.push_str(&svg::time_series(panel, &owned, page.window, page.step));
                out.push_str(r#"<div class="legend">"#);
                for (i, s) in owned
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !s.points.is_empty())
                {
                    let _ = write!(
                        out,
                        r#"<span><i style="background:{}"></i>{} <b>{}</b></span>"#,
                        PALETTE[i % PALETTE.len()],
                        escape(&s.name),
                        s.last()
                            .map_or_else(String::new, |v| escape(&format::value(&panel.unit, v)))
                    );
                }
                out.push_str("</div>");
            }
            if let Some(e) = error {
                let _ = write!(
                    out,
                    r#"<div class="error">query failed: {}</div>"#,
                    escape(e)
                );
            }
            out.push_str("</section>");
        }
        "text" => {
            panel_open(out, panel, "textpanel", "");
            let _ = write!(
                out,
                r#"<div class="text">{}</div></section>"#,
                escape(&panel.content)
            );
        }
        _ => {}
    }
}

fn rows(out: &mut String, rows: &[Row], page: &Page<'_>) {
    for row in rows {
        if !row.title.is_empty() {
            let _ = write!(
                out,
                r#"<h2 class="row" data-panel-id="{}" data-type="row">{}{}</h2>"#,
                row.id,
                escape(&row.title),
                if row.collapsed {
                    " <small>(collapsed in Grafana)</small>"
                } else {
                    ""
                }
            );
        }
        let drawn: Vec<&Panel> = row.panels.iter().filter(|p| p.is_drawn()).collect();
        if drawn.is_empty() {
            continue;
        }
        out.push_str(r#"<div class="grid">"#);
        for panel in drawn {
            draw_panel(out, panel, page);
        }
        out.push_str("</div>");
    }
}

fn undrawn(out: &mut String, dashboard: &Dashboard) {
    let list = dashboard.undrawn();
    if list.is_empty() {
        return;
    }
    out.push_str(r#"<section class="undrawn" id="undrawn"><b>Not drawn on this page</b> (open the dashboard in Grafana for these):<ul>"#);
    for p in list {
        let _ = write!(
            out,
            r#"<li data-panel-id="{}" data-type="{}">{} <span class="none">(panel type {})</span></li>"#,
            p.id,
            escape(&p.kind),
            escape(&p.title),
            escape(&p.kind)
        );
    }
    out.push_str("</ul></section>");
}

/// The page of `modelwatch ui`: verdict, controls, firing alerts, then the
/// dashboard's rows in order, then the panels it does not draw.
pub fn render(page: &Page<'_>) -> String {
    let mut out = String::with_capacity(256 * 1024);
    head(
        &mut out,
        &page.dashboard.title,
        page.controls.refresh_seconds,
    );
    let _ = write!(
        out,
        r#"<div class="top"><h1>{}</h1>"#,
        escape(&page.dashboard.title)
    );
    controls(&mut out, page);
    out.push_str("</div><main>");
    let what = match (&page.controls.model, &page.controls.version) {
        (Some(m), Some(v)) => format!("model {m}, version {v}, last {}", page.controls.range),
        (Some(m), None) => format!("model {m}, all versions, last {}", page.controls.range),
        _ => "no model in Prometheus yet".to_string(),
    };
    verdict_banner(&mut out, &page.report, &what, page.now);
    alerts(&mut out, &page.alerts);
    rows(&mut out, &page.dashboard.rows, page);
    undrawn(&mut out, page.dashboard);
    let _ = write!(
        out,
        r#"<footer>Drawn from mixin/grafana/model-health.json, the dashboard that ships to Grafana · data from {} · {} to {} UTC, a point every {} · <a href="/?{}">last 15m</a> · <a href="/runbook">runbook</a></footer></main></body></html>"#,
        escape(&page.source),
        format::clock_seconds(page.window.0),
        format::clock_seconds(page.window.1),
        escape(&format::value("s", page.step)),
        escape(&page.controls.query("15m"))
    );
    out
}

/// The stat a [`modelwatch_status::Figures`] field fills, found by the recording
/// rule the stat panel queries, so that a renamed rule shows "needs Prometheus"
/// instead of a wrong number.
pub fn figure_for(panel: &Panel, figures: &modelwatch_status::Figures) -> Option<Option<f64>> {
    use modelwatch_mixin::names::record;
    let expr = panel.targets.first().map_or("", |t| t.expr.as_str());
    let uses = |name: &str| {
        expr.match_indices(name).any(|(i, _)| {
            !expr[i + name.len()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        })
    };
    if uses(record::REQUESTS_RATE5M) {
        Some(figures.rps)
    } else if uses(record::BURN_WINDOWS[0].errors) {
        Some(figures.error_ratio)
    } else if uses(record::REQUEST_DURATION_QUANTILE) {
        Some(figures.p99_seconds)
    } else if uses(record::SCORE_PSI) {
        Some(figures.score_psi)
    } else if uses(record::APPROVAL_RATIO_DELTA) {
        Some(figures.approval_delta)
    } else if uses(record::FEATURE_AGE_MAX) {
        Some(figures.worst_feature_age.as_ref().map(|(_, v)| *v))
    } else {
        None
    }
}

/// What a page on a server's own metrics listener cannot show, and Prometheus
/// would.
pub const WITHOUT_PROMETHEUS: &str = "This page reads this server's /metrics twice, a few seconds apart, exactly as `modelwatch status --metrics` does. Prometheus would add: history (every chart of the dashboard over hours or weeks), the fleet's numbers summed over replicas, drift computed from the bin counters against the reference and against last week, the approval ratio against 7 days earlier, and the alerts with their for: durations and runbooks. Run `modelwatch stack up` and `modelwatch ui --prometheus URL` for the full page.";

/// The page on `serve`'s metrics listener at `/`: the status verdict and figures
/// from two scrapes, the key-health stats of the dashboard coloured by their
/// thresholds, and a note on what Prometheus would add.
pub fn render_listener(
    dashboard: &Dashboard,
    report: &Result<Report, String>,
    model: &str,
    now: f64,
    refresh_seconds: u32,
) -> String {
    let mut out = String::with_capacity(32 * 1024);
    head(
        &mut out,
        &format!("{model}: {}", dashboard.title),
        refresh_seconds,
    );
    let _ = write!(
        out,
        r#"<div class="top"><h1>{}</h1><span class="none">model {} · this server only, without Prometheus</span></div><main>"#,
        escape(&dashboard.title),
        escape(model)
    );
    verdict_banner(&mut out, report, &format!("model {model}"), now);
    if let (Some(row), Ok(r)) = (
        dashboard
            .rows
            .iter()
            .find(|r| r.panels.iter().any(|p| p.kind == "stat")),
        report,
    ) {
        let _ = write!(
            out,
            r#"<h2 class="row">{}</h2><div class="grid">"#,
            escape(&row.title)
        );
        for panel in row.panels.iter().filter(|p| p.kind == "stat") {
            match figure_for(panel, &r.figures) {
                Some(v) => stat(&mut out, panel, v, None, None),
                None => stat(&mut out, panel, None, None, Some("needs Prometheus")),
            }
        }
        out.push_str("</div>");
    }
    if let Ok(r) = report {
        let _ = write!(
            out,
            r#"<h2 class="row">modelwatch status --metrics</h2><div class="figures" id="figures">{}</div>"#,
            escape(&r.render())
        );
    }
    let _ = write!(
        out,
        r#"<div class="note" id="without-prometheus">{}</div>"#,
        escape(WITHOUT_PROMETHEUS)
    );
    out.push_str(r#"<footer>Computed on this request only: the metrics listener does no work for this page while nobody looks at it · <a href="/metrics">/metrics</a></footer></main></body></html>"#);
    out
}
