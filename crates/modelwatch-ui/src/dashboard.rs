//! Module implementing the dashboard as the page reads it. See [`Dashboard`] for
//! details.
//!
//! The JSON is `mixin/grafana/model-health.json`, embedded at build time
//! ([`MODEL_HEALTH_JSON`]): the file that ships to Grafana is the file the page
//! draws, so the two cannot drift.

use serde_json::Value;

/// The generated model-health dashboard, as committed under `mixin/grafana/`.
pub const MODEL_HEALTH_JSON: &str = include_str!("../../../mixin/grafana/model-health.json");

/// Panel types the page draws. Any other type is listed on the page by name.
pub const DRAWN_TYPES: &[&str] = &["row", "stat", "timeseries", "heatmap", "text"];

/// A dashboard that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// Not JSON.
    #[error("the dashboard is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON without a `panels` list.
    #[error("the dashboard has no \"panels\" list")]
    NoPanels,
}

/// One threshold step: from `value` up (`None`: from minus infinity), `color`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Grafana's colour name (`green`, `orange`, `red`, `transparent`).
    pub color: String,
    /// Where the step starts.
    pub value: Option<f64>,
}

/// One query of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `refId` (A, B...).
    pub ref_id: String,
    /// The PromQL, with Grafana's variables still in it.
    pub expr: String,
    /// `legendFormat`, such as `{{version}} {{stage}}`.
    pub legend: String,
}

/// One panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Grafana's panel id, unique in the dashboard.
    pub id: u64,
    /// The title.
    pub title: String,
    /// The type (`stat`, `timeseries`, `heatmap`, `text`, ...).
    pub kind: String,
    /// The description Grafana shows on hover.
    pub description: String,
    /// `fieldConfig.defaults.unit` (`s`, `percentunit`, `reqps`, `none`, ...).
    pub unit: String,
    /// `fieldConfig.defaults.thresholds.steps`, ascending.
    pub thresholds: Vec<Step>,
    /// The queries.
    pub targets: Vec<Target>,
    /// A text panel's content.
    pub content: String,
    /// Width in Grafana's 24-column grid.
    pub width: u64,
}

impl Panel {
    /// Whether the page draws this panel's type.
    pub fn is_drawn(&self) -> bool {
        DRAWN_TYPES.contains(&self.kind.as_str())
    }

    /// The threshold colour of `value`: the last step at or below it.
    pub fn color_for(&self, value: f64) -> &str {
        let mut color = "transparent";
        for step in &self.thresholds {
            match step.value {
                None => color = &step.color,
                Some(from) if value >= from => color = &step.color,
                Some(_) => break,
            }
        }
        color
    }
}

/// A row of the dashboard and the panels under it (a collapsed row's own panels
/// included).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The row panel's id (0 for panels above the first row).
    pub id: u64,
    /// The row's title ("" above the first row).
    pub title: String,
    /// Collapsed in Grafana (its panels are drawn here all the same).
    pub collapsed: bool,
    /// The panels, in the dashboard's order.
    pub panels: Vec<Panel>,
}

/// A template variable (`model`, `version`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// The name used in queries as `$name`.
    pub name: String,
    /// The label shown beside the control.
    pub label: String,
    /// `query`, `datasource`, ...
    pub kind: String,
    /// Whether "All" is offered.
    pub include_all: bool,
    /// The query, such as `label_values(model_info{job="modelwatch"}, model)`.
    pub definition: String,
}

/// The dashboard, read for drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// The title.
    pub title: String,
    /// The description.
    pub description: String,
    /// The default time range as a duration (`6h` from `now-6h`).
    pub default_range: String,
    /// The rows, in order.
    pub rows: Vec<Row>,
    /// The template variables.
    pub variables: Vec<Variable>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn panel(v: &Value) -> Panel {
    let defaults = &v["fieldConfig"]["defaults"];
    Panel {
        id: v["id"].as_u64().unwrap_or_default(),
        title: text(&v["title"]),
        kind: text(&v["type"]),
        description: text(&v["description"]),
        unit: text(&defaults["unit"]),
        thresholds: defaults["thresholds"]["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Step {
                color: text(&s["color"]),
                value: s["value"].as_f64(),
            })
            .collect(),
        targets: v["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| Target {
                ref_id: text(&t["refId"]),
                expr: text(&t["expr"]),
                legend: text(&t["legendFormat"]),
            })
            .collect(),
        content: text(&v["options"]["content"]),
        width: v["gridPos"]["w"].as_u64().unwrap_or(12),
    }
}

impl Dashboard {
    /// The embedded model-health dashboard.
    pub fn model_health() -> Result<Self, DashboardError> {
        Self::parse(MODEL_HEALTH_JSON)
    }

    /// Reads a Grafana dashboard's JSON. Every panel is kept, whatever its type.
    pub fn parse(json: &str) -> Result<Self, DashboardError> {
        let v: Value = serde_json::from_str(json)?;
        let panels = v["panels"].as_array().ok_or(DashboardError::NoPanels)?;
        let mut rows = vec![Row {
            id: 0,
            title: String::new(),
            collapsed: false,
            panels: Vec::new(),
        }];
        for p in panels {
            if p["type"] == "row" {
                rows.push(Row {
                    id: p["id"].as_u64().unwrap_or_default(),
                    title: text(&p["title"]),
                    collapsed: p["collapsed"].as_bool().unwrap_or(false),
                    panels: p["panels"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(panel)
                        .collect(),
                });
            } else if let Some(row) = rows.last_mut() {
                row.panels.push(panel(p));
            }
        }
        rows.retain(|r| r.id != 0 || !r.panels.is_empty());
        let range = text(&v["time"]["from"]);
        Ok(Self {
            title: text(&v["title"]),
            description: text(&v["description"]),
            default_range: range.strip_prefix("now-").unwrap_or("6h").to_string(),
            rows,
            variables: v["templating"]["list"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| Variable {
                    name: text(&t["name"]),
                    label: text(&t["label"]),
                    kind: text(&t["type"]),
                    include_all: t["includeAll"].as_bool().unwrap_or(false),
                    definition: t["query"]["query"]
                        .as_str()
                        .or(t["definition"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect(),
        })
    }

    /// Every panel that is not a row, in order.
    pub fn panels(&self) -> impl Iterator<Item = &Panel> {
        self.rows.iter().flat_map(|r| r.panels.iter())
    }

    /// Panels whose type the page does not draw, in order.
    pub fn undrawn(&self) -> Vec<&Panel> {
        self.panels().filter(|p| !p.is_drawn()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_dashboard_reads_with_every_panel() {
        let d = Dashboard::model_health().unwrap();
        let json: Value = serde_json::from_str(MODEL_HEALTH_JSON).unwrap();
        fn count(panels: &[Value]) -> usize {
            panels
                .iter()
                .map(|p| {
                    usize::from(p["type"] != "row")
                        + count(p["panels"].as_array().map_or(&[], Vec::as_slice))
                })
                .sum()
        }
        assert_eq!(
            d.panels().count(),
            count(json["panels"].as_array().unwrap())
        );
        assert!(d.rows.iter().any(|r| r.title == "Key health"));
        assert!(d.variables.iter().any(|v| v.name == "model"));
        assert_eq!(d.default_range, "6h");
    }

    #[test]
    fn threshold_colours_follow_the_steps() {
        let p = Panel {
            id: 1,
            title: "x".into(),
            kind: "stat".into(),
            description: String::new(),
            unit: String::new(),
            thresholds: vec![
                Step {
                    color: "green".into(),
                    value: None,
                },
                Step {
                    color: "orange".into(),
                    value: Some(0.1),
                },
                Step {
                    color: "red".into(),
                    value: Some(0.25),
                },
            ],
            targets: vec![],
            content: String::new(),
            width: 4,
        };
        assert_eq!(p.color_for(0.05), "green");
        assert_eq!(p.color_for(0.1), "orange");
        assert_eq!(p.color_for(0.3), "red");
    }
}
