//! Module implementing the Grafana dashboard (`grafana/model-health.json`). See
//! [`dashboard_json`] for details.
//!
//! Built for the 10-second answer: the first row is colour-coded stats, then one row
//! per question (serving, model behaviour, features, infrastructure, ground truth). Panels query the recording rules where
//! one exists, and every panel uses the `${datasource}` variable.

use crate::alerts::BURN_RATES;
use crate::config::MixinConfig;
use crate::names::{external, record};
use crate::promql::Promql;
use modelwatch::schema::{self, label};
use serde_json::{Value, json};

/// Grafana's dashboard grid width.
pub const GRID_WIDTH: u64 = 24;

/// The datasource reference every panel and query carries.
pub fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// One query of a panel.
struct Target {
    expr: String,
    legend: String,
}

fn target(expr: impl Into<String>, legend: &str) -> Target {
    Target {
        expr: expr.into(),
        legend: legend.into(),
    }
}

/// A threshold step: a colour from `value` up (`None` for the base).
type Step = (&'static str, Option<f64>);

enum Kind {
    Stat { steps: Vec<Step> },
    TimeSeries { steps: Vec<Step> },
    Heatmap,
}

struct Panel {
    title: String,
    description: String,
    kind: Kind,
    unit: &'static str,
    targets: Vec<Target>,
    width: u64,
    height: u64,
}

struct Row {
    title: &'static str,
    collapsed: bool,
    panels: Vec<Panel>,
}

fn stat(
    title: &str,
    description: &str,
    expr: String,
    unit: &'static str,
    steps: Vec<Step>,
) -> Panel {
    Panel {
        title: title.into(),
        description: description.into(),
        kind: Kind::Stat { steps },
        unit,
        targets: vec![target(expr, "")],
        width: 4,
        height: 4,
    }
}

fn series(title: &str, description: &str, unit: &'static str, targets: Vec<Target>) -> Panel {
    Panel {
        title: title.into(),
        description: description.into(),
        kind: Kind::TimeSeries { steps: Vec::new() },
        unit,
        targets,
        width: 12,
        height: 8,
    }
}

fn with_lines(mut panel: Panel, steps: Vec<Step>) -> Panel {
    panel.kind = Kind::TimeSeries { steps };
    panel
}

fn narrow(mut panel: Panel, width: u64) -> Panel {
    panel.width = width;
    panel
}

/// Matchers for the dashboard variables.
fn model() -> String {
    format!("{}=~\"$model\"", label::MODEL)
}

fn model_version() -> String {
    format!(
        "{}=~\"$model\", {}=~\"$version\"",
        label::MODEL,
        label::VERSION
    )
}

fn rows(config: &MixinConfig) -> Vec<Row> {
    let q = Promql::new(config);
    let mv = model_version();
    let m = model();
    let budget = 1.0 - config.slo.availability_target;
    let page = BURN_RATES[0].factor;
    let errors5m = record::burn_window(300).errors;
    let slow5m = record::burn_window(300).slow;
    let threshold = config.slo.latency_threshold_seconds;
    let delta = config.serving.approval_delta_max;
    let offset = config.scaled(config.drift.comparison_offset);
    let drift_steps = vec![
        ("green", None),
        ("orange", Some(config.drift.psi_warning)),
        ("red", Some(config.drift.psi_critical)),
    ];
    let infra = config.dashboard.infrastructure_selector.trim();
    let infra_sel = |name: &str| format!("{name}{{{infra}}}");

    let key_health = Row {
        title: "Key health",
        collapsed: false,
        panels: vec![
            stat(
                "Requests per second",
                "Prediction requests per second over 5m, all statuses. Red means no traffic.",
                format!("sum({}{{{mv}}})", record::REQUESTS_RATE5M),
                "reqps",
                vec![("red", None), ("green", Some(0.001))],
            ),
            stat(
                "Error ratio",
                "Failed (error, timeout, overloaded) over valid requests over 5m, worst version. Orange past the error budget, red past the page burn rate.",
                format!("max({errors5m}{{{mv}}})"),
                "percentunit",
                vec![
                    ("green", None),
                    ("orange", Some(budget)),
                    ("red", Some(page * budget)),
                ],
            ),
            stat(
                "p99 latency",
                "End-to-end p99 over 5m, worst version. Red past the latency SLO threshold.",
                format!(
                    "max({}{{quantile=\"0.99\", {mv}}})",
                    record::REQUEST_DURATION_QUANTILE
                ),
                "s",
                vec![("green", None), ("red", Some(threshold))],
            ),
            stat(
                "Score PSI",
                "Fleet PSI of the score distribution against the reference, worst version.",
                format!("max({}{{{mv}}})", record::SCORE_PSI),
                "none",
                drift_steps.clone(),
            ),
            stat(
                "Approval change",
                "Approval ratio now minus the same window at the comparison offset. Red outside the allowed change.",
                format!("max({}{{{m}}})", record::APPROVAL_RATIO_DELTA),
                "percentunit",
                vec![("red", None), ("green", Some(-delta)), ("red", Some(delta))],
            ),
            stat(
                "Worst feature age",
                "Oldest feature value used by recent predictions, across groups and replicas. Red past the default maximum age.",
                format!("max({}{{{m}}})", record::FEATURE_AGE_MAX),
                "s",
                vec![
                    ("green", None),
                    (
                        "red",
                        Some(config.features.max_age_default.as_secs() as f64),
                    ),
                ],
            ),
        ],
    };

    let serving = Row {
        title: "Serving",
        collapsed: false,
        panels: vec![
            series(
                "p95 latency by stage",
                "Where the time goes: queue, feature fetch, inference, postprocess.",
                "s",
                vec![target(
                    format!(
                        "{}{{quantile=\"0.95\", {mv}}}",
                        record::STAGE_DURATION_QUANTILE
                    ),
                    "{{version}} {{stage}}",
                )],
            ),
            with_lines(
                series(
                    "End-to-end latency",
                    "p50, p95 and p99 of valid requests; the line is the latency SLO threshold.",
                    "s",
                    vec![target(
                        format!("{}{{{mv}}}", record::REQUEST_DURATION_QUANTILE),
                        "{{version}} p{{quantile}}",
                    )],
                ),
                vec![("transparent", None), ("red", Some(threshold))],
            ),
            series(
                "Requests by status",
                "Requests per second by outcome. Rejected (bad input) and cancelled (the client hung up) do not count against the SLO.",
                "reqps",
                vec![target(
                    format!(
                        "sum by (status) ({}{{{mv}}})",
                        record::REQUESTS_BY_STATUS_RATE5M
                    ),
                    "{{status}}",
                )],
            ),
            with_lines(
                series(
                    "SLO bad-event ratios",
                    "Failed and too-slow shares of valid requests over 5m; the line is the availability error budget.",
                    "percentunit",
                    vec![
                        target(format!("{errors5m}{{{mv}}}"), "{{version}} failed"),
                        target(format!("{slow5m}{{{mv}}}"), "{{version}} too slow"),
                    ],
                ),
                vec![("transparent", None), ("red", Some(budget))],
            ),
        ],
    };

    let behaviour = Row {
        title: "Model behaviour",
        collapsed: false,
        panels: vec![
            Panel {
                title: "Score distribution".into(),
                description: "Predictions per score bucket: a shifting band is a shifting model."
                    .into(),
                kind: Kind::Heatmap,
                unit: "none",
                targets: vec![target(
                    format!(
                        "sum by (le) (increase({}[$__rate_interval]))",
                        q.histogram_series(
                            &schema::PREDICTION_SCORE,
                            "_bucket",
                            std::slice::from_ref(&mv)
                        )
                    ),
                    "{{le}}",
                )],
                width: 12,
                height: 8,
            },
            series(
                &format!("Approval ratio against {offset} earlier"),
                "Approved over decided predictions over the drift window, now and at the comparison offset.",
                "percentunit",
                vec![
                    target(
                        format!("{}{{{m}}}", record::APPROVAL_RATIO),
                        "{{model}} now",
                    ),
                    target(
                        format!("{}{{{m}}}", record::APPROVAL_RATIO_OFFSET),
                        &format!("{{{{model}}}} {offset} earlier"),
                    ),
                ],
            ),
            with_lines(
                series(
                    "Score PSI over time",
                    "Fleet PSI against the reference, and week over week; lines at the warning and critical thresholds.",
                    "none",
                    vec![
                        target(
                            format!("{}{{{mv}}}", record::SCORE_PSI),
                            "{{version}} vs reference",
                        ),
                        target(
                            format!("{}{{{mv}}}", record::SCORE_PSI_OFFSET),
                            "{{version}} vs offset",
                        ),
                    ],
                ),
                drift_steps.clone(),
            ),
            series(
                "Score Jensen-Shannon and total variation",
                "Two more views of the same drift: Jensen-Shannon in nats (at most ln 2), total variation (an upper bound of binned KS).",
                "none",
                vec![
                    target(
                        format!("{}{{{mv}}}", record::SCORE_JENSEN_SHANNON),
                        "{{version}} Jensen-Shannon",
                    ),
                    target(
                        format!("{}{{{mv}}}", record::SCORE_TOTAL_VARIATION),
                        "{{version}} total variation",
                    ),
                ],
            ),
        ],
    };

    let features = Row {
        title: "Features",
        collapsed: false,
        panels: vec![
            series(
                "Feature age by group",
                "Oldest value of each feature group used by recent predictions.",
                "s",
                vec![target(
                    format!("{}{{{m}}}", record::FEATURE_AGE_MAX),
                    "{{feature_group}}",
                )],
            ),
            with_lines(
                series(
                    "Missing values by feature",
                    "Share of predictions with the feature null or missing.",
                    "percentunit",
                    vec![target(
                        format!("{}{{{m}}}", record::MISSING_RATIO),
                        "{{feature}}",
                    )],
                ),
                vec![
                    ("transparent", None),
                    ("red", Some(config.features.missing_ratio_max)),
                ],
            ),
            with_lines(
                series(
                    "Feature drift (PSI)",
                    "Fleet PSI of each feature against its reference.",
                    "none",
                    vec![target(
                        format!("{}{{{m}}}", record::FEATURE_PSI),
                        "{{feature}}",
                    )],
                ),
                drift_steps,
            ),
            series(
                "Out-of-range values by feature",
                "Share of predictions with the feature outside its reference range.",
                "percentunit",
                vec![target(
                    format!("{}{{{m}}}", record::OUT_OF_RANGE_RATIO),
                    "{{feature}}",
                )],
            ),
            with_lines(
                series(
                    "Feature cache hit ratio",
                    "Lookups served by the in-process cache; the line is the floor.",
                    "percentunit",
                    vec![target(
                        format!("{}{{{m}}}", record::CACHE_HIT_RATIO),
                        "{{model}}",
                    )],
                ),
                vec![
                    ("red", None),
                    ("transparent", Some(config.serving.cache_hit_ratio_min)),
                ],
            ),
            series(
                "Feature store errors",
                "Feature store failures per second by kind.",
                "reqps",
                vec![target(
                    format!("{}{{{m}}}", record::STORE_ERRORS_RATE5M),
                    "{{kind}}",
                )],
            ),
        ],
    };

    let infrastructure = Row {
        title: "Infrastructure",
        collapsed: false,
        panels: vec![
            narrow(
                series(
                    "GPU utilisation",
                    "DCGM exporter, for the containers of the infrastructure selector.",
                    "percent",
                    vec![target(
                        format!(
                            "avg by (Hostname, gpu) ({})",
                            infra_sel(external::DCGM_GPU_UTIL)
                        ),
                        "{{Hostname}} GPU {{gpu}}",
                    )],
                ),
                8,
            ),
            narrow(
                series(
                    "GPU memory used",
                    "DCGM exporter framebuffer memory in use.",
                    "decmbytes",
                    vec![target(
                        format!(
                            "sum by (Hostname, gpu) ({})",
                            infra_sel(external::DCGM_FB_USED)
                        ),
                        "{{Hostname}} GPU {{gpu}}",
                    )],
                ),
                8,
            ),
            narrow(
                series(
                    "CPU per pod",
                    "cAdvisor CPU usage in cores.",
                    "short",
                    vec![target(
                        format!(
                            "sum by (pod) (rate({}[$__rate_interval]))",
                            infra_sel(external::CONTAINER_CPU)
                        ),
                        "{{pod}}",
                    )],
                ),
                8,
            ),
            narrow(
                series(
                    "Memory per pod",
                    "cAdvisor working-set memory.",
                    "bytes",
                    vec![target(
                        format!("sum by (pod) ({})", infra_sel(external::CONTAINER_MEMORY)),
                        "{{pod}}",
                    )],
                ),
                8,
            ),
            narrow(
                series(
                    "Process CPU",
                    "CPU seconds per second of each modelwatch process, from its own metrics.",
                    "short",
                    vec![target(
                        format!(
                            "rate({}[$__rate_interval])",
                            q.metric(&schema::PROCESS_CPU_SECONDS_TOTAL, &[])
                        ),
                        "{{instance}}",
                    )],
                ),
                8,
            ),
            narrow(
                series(
                    "Process resident memory",
                    "Resident memory of each modelwatch process.",
                    "bytes",
                    vec![target(
                        q.metric(&schema::PROCESS_RESIDENT_MEMORY_BYTES, &[]),
                        "{{instance}}",
                    )],
                ),
                8,
            ),
        ],
    };

    let day = record::TRUTH_WINDOWS[0];
    let week = record::TRUTH_WINDOWS[1];
    let mv = model_version();
    let ground_truth = Row {
        title: "Ground truth (labels)",
        collapsed: false,
        panels: vec![
            narrow(
                series(
                    "Precision: realized vs estimated",
                    "Realized from the labels joined over 1d and 7d; estimated over 1d from the scores and the holdout calibration (CBPE-style), before the labels arrive. The floor is a fraction of the holdout's precision.",
                    "percentunit",
                    vec![
                        target(
                            format!("{}{{{mv}}}", day.precision),
                            "realized 1d {{model}} {{version}}",
                        ),
                        target(
                            format!("{}{{{mv}}}", week.precision),
                            "realized 7d {{model}} {{version}}",
                        ),
                        target(
                            format!("{}{{{mv}}}", day.estimated_precision),
                            "estimated 1d {{model}} {{version}}",
                        ),
                        target(
                            format!("{}{{{mv}}}", record::PRECISION_FLOOR),
                            "floor {{model}} {{version}}",
                        ),
                    ],
                ),
                8,
            ),
            narrow(
                series(
                    "Recall: realized vs estimated",
                    "Realized from the labels over 1d and 7d; estimated over 1d from the scores and the holdout calibration.",
                    "percentunit",
                    vec![
                        target(
                            format!("{}{{{mv}}}", day.recall),
                            "realized 1d {{model}} {{version}}",
                        ),
                        target(
                            format!("{}{{{mv}}}", week.recall),
                            "realized 7d {{model}} {{version}}",
                        ),
                        target(
                            format!("{}{{{mv}}}", day.estimated_recall),
                            "estimated 1d {{model}} {{version}}",
                        ),
                        target(
                            format!("{}{{{mv}}}", record::RECALL_FLOOR),
                            "floor {{model}} {{version}}",
                        ),
                    ],
                ),
                8,
            ),
            narrow(
                series(
                    "False positive rate and accuracy",
                    "From the labels joined over 1d.",
                    "percentunit",
                    vec![
                        target(
                            format!("{}{{{mv}}}", day.false_positive_rate),
                            "FPR {{model}} {{version}}",
                        ),
                        target(
                            format!("{}{{{mv}}}", day.accuracy),
                            "accuracy {{model}} {{version}}",
                        ),
                    ],
                ),
                8,
            ),
            narrow(
                series(
                    "Positive rate: labelled vs estimated",
                    "The share of positives among the labels over 1d, and the share the calibration expects from the scores.",
                    "percentunit",
                    vec![
                        target(
                            format!("{}{{{mv}}}", day.positive_rate),
                            "labelled {{model}} {{version}}",
                        ),
                        target(
                            format!("{}{{{mv}}}", day.estimated_positive_rate),
                            "estimated {{model}} {{version}}",
                        ),
                    ],
                ),
                8,
            ),
            narrow(
                with_lines(
                    series(
                        "Label coverage",
                        "Labelled over predicted, over 1d and 7d.",
                        "percentunit",
                        vec![
                            target(
                                format!("{}{{{mv}}}", day.coverage),
                                "1d {{model}} {{version}}",
                            ),
                            target(
                                format!("{}{{{mv}}}", week.coverage),
                                "7d {{model}} {{version}}",
                            ),
                        ],
                    ),
                    vec![
                        ("red", None),
                        ("transparent", Some(config.ground_truth.coverage_min)),
                    ],
                ),
                8,
            ),
            narrow(
                series(
                    "Label delay",
                    "Time from prediction to label, median and 90th percentile over 1d.",
                    "s",
                    vec![target(
                        format!("{}{{{m}}}", day.delay),
                        "p{{quantile}} {{model}}",
                    )],
                ),
                8,
            ),
        ],
    };

    vec![
        key_health,
        serving,
        behaviour,
        features,
        infrastructure,
        ground_truth,
    ]
}

fn steps_json(steps: &[Step]) -> Value {
    Value::Array(
        steps
            .iter()
            .map(|(color, value)| json!({"color": color, "value": value}))
            .collect(),
    )
}

fn panel_json(panel: &Panel, id: u64, x: u64, y: u64) -> Value {
    let targets: Vec<Value> = panel
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut target = json!({
                "datasource": datasource(),
                "expr": t.expr,
                "legendFormat": t.legend,
                "refId": char::from(b'A' + i as u8).to_string(),
            });
            if matches!(panel.kind, Kind::Heatmap) {
                target["format"] = json!("heatmap");
            }
            target
        })
        .collect();
    let grid = json!({"h": panel.height, "w": panel.width, "x": x, "y": y});
    let mut out = json!({
        "id": id,
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource(),
        "gridPos": grid,
    });
    match &panel.kind {
        Kind::Stat { steps } => {
            out["type"] = json!("stat");
            out["targets"] = Value::Array(targets);
            out["fieldConfig"] = json!({
                "defaults": {
                    "unit": panel.unit,
                    "decimals": if panel.unit == "none" { Some(3) } else { None },
                    "color": {"mode": "thresholds"},
                    "thresholds": {"mode": "absolute", "steps": steps_json(steps)},
                },
                "overrides": [],
            });
            out["options"] = json!({
                "colorMode": "background",
                "graphMode": "area",
                "justifyMode": "auto",
                "orientation": "auto",
                "textMode": "auto",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
            });
        }
        Kind::TimeSeries { steps } => {
            out["type"] = json!("timeseries");
            out["targets"] = Value::Array(targets);
            let mut defaults = json!({
                "unit": panel.unit,
                "color": {"mode": "palette-classic"},
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "spanNulls": false,
                    "thresholdsStyle": {"mode": if steps.is_empty() { "off" } else { "line" }},
                },
            });
            if !steps.is_empty() {
                defaults["thresholds"] = json!({"mode": "absolute", "steps": steps_json(steps)});
            }
            out["fieldConfig"] = json!({"defaults": defaults, "overrides": []});
            out["options"] = json!({
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
                "tooltip": {"mode": "multi", "sort": "desc"},
            });
        }
        Kind::Heatmap => {
            out["type"] = json!("heatmap");
            out["targets"] = Value::Array(targets);
            out["fieldConfig"] = json!({"defaults": {"unit": panel.unit}, "overrides": []});
            out["options"] = json!({
                "calculate": false,
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64},
                "rowsFrame": {"layout": "le"},
                "yAxis": {"axisPlacement": "left", "unit": "none"},
                "tooltip": {"show": true, "yHistogram": true},
                "legend": {"show": true},
            });
        }
    }
    out
}

fn variables(config: &MixinConfig) -> Value {
    let q = Promql::new(config);
    let models = format!(
        "label_values({}, {})",
        q.metric(&schema::INFO, &[]),
        label::MODEL
    );
    let versions = format!(
        "label_values({}, {})",
        q.metric(&schema::INFO, &[format!("{}=~\"$model\"", label::MODEL)]),
        label::VERSION
    );
    let query_variable = |name: &str, label_text: &str, query: &str, all: bool| {
        json!({
            "name": name,
            "label": label_text,
            "type": "query",
            "datasource": datasource(),
            "definition": query,
            "query": {"query": query, "refId": format!("{name}-variable")},
            "refresh": 2,
            "sort": 1,
            "includeAll": all,
            "multi": all,
            "allValue": if all { Some(".*") } else { None },
            "current": {},
            "hide": 0,
        })
    };
    json!([
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
        },
        query_variable("model", "Model", &models, false),
        query_variable("version", "Version", &versions, true),
    ])
}

/// The dashboard as pretty-printed JSON, ending with a newline.
pub fn dashboard_json(config: &MixinConfig) -> String {
    let mut panels = Vec::new();
    let mut id = 0;
    let mut y = 0;
    for row in rows(config) {
        id += 1;
        let row_id = id;
        let header_y = y;
        y += 1;
        let (mut x, mut row_height) = (0, 0);
        let mut children = Vec::new();
        for panel in &row.panels {
            if x + panel.width > GRID_WIDTH {
                y += row_height;
                x = 0;
                row_height = 0;
            }
            id += 1;
            children.push(panel_json(panel, id, x, y));
            x += panel.width;
            row_height = row_height.max(panel.height);
        }
        let header = json!({
            "id": row_id,
            "type": "row",
            "title": row.title,
            "collapsed": row.collapsed,
            "datasource": datasource(),
            "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": header_y},
            "panels": if row.collapsed { Value::Array(children.clone()) } else { json!([]) },
        });
        panels.push(header);
        if row.collapsed {
            // A collapsed row keeps its panels inside it and takes one grid line.
            continue;
        }
        panels.extend(children);
        y += row_height;
    }
    let dashboard = json!({
        "uid": config.dashboard.uid,
        "title": config.dashboard.title,
        "description": "Is the model healthy? Serving SLOs, score and feature drift, feature freshness and infrastructure, generated by `modelwatch mixin`.",
        "tags": ["modelwatch", "ml"],
        "timezone": "utc",
        "editable": true,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": config.dashboard.refresh,
        "time": {"from": config.dashboard.time_from, "to": "now"},
        "timepicker": {},
        "annotations": {"list": []},
        "links": [{
            "title": "Runbook",
            "type": "link",
            "url": config.runbook.base_url,
            "targetBlank": true,
        }],
        "templating": {"list": variables(config)},
        "panels": panels,
    });
    let mut text = serde_json::to_string_pretty(&dashboard).unwrap_or_default();
    text.push('\n');
    text
}
