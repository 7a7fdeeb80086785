//! Structural checks of the dashboard: what Grafana needs and what on-call relies on.

use crate::queries::committed_dashboard;
use serde_json::Value;

fn all_panels(panels: &[Value]) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in panels {
        out.push(p);
        out.extend(all_panels(
            p["panels"].as_array().map_or(&[], Vec::as_slice),
        ));
    }
    out
}

fn rect(panel: &Value) -> (u64, u64, u64, u64) {
    let g = &panel["gridPos"];
    let n = |k: &str| {
        g[k].as_u64()
            .unwrap_or_else(|| panic!("gridPos.{k} of {}", panel["title"]))
    };
    (n("x"), n("y"), n("w"), n("h"))
}

fn assert_no_overlap(panels: &[&Value]) {
    for (i, a) in panels.iter().enumerate() {
        let (ax, ay, aw, ah) = rect(a);
        assert!(ax + aw <= 24, "{} is wider than the grid", a["title"]);
        for b in &panels[i + 1..] {
            let (bx, by, bw, bh) = rect(b);
            let apart = ax + aw <= bx || bx + bw <= ax || ay + ah <= by || by + bh <= ay;
            assert!(apart, "{} overlaps {}", a["title"], b["title"]);
        }
    }
}

#[test]
fn identity_time_range_and_refresh_are_the_configured_ones() {
    let d = committed_dashboard();
    let config = modelwatch_mixin::MixinConfig::default();
    assert_eq!(d["uid"], "modelwatch-model-health");
    assert_eq!(d["uid"], config.dashboard.uid.as_str());
    assert_eq!(d["refresh"], "30s");
    assert_eq!(d["time"]["from"], "now-6h");
    assert_eq!(d["time"]["to"], "now");
}

#[test]
fn variables_select_datasource_model_and_version() {
    let d = committed_dashboard();
    let vars = d["templating"]["list"].as_array().expect("variables");
    let find = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(find("datasource")["type"], "datasource");
    assert_eq!(find("datasource")["query"], "prometheus");
    for name in ["model", "version"] {
        let v = find(name);
        assert_eq!(v["type"], "query");
        assert_eq!(v["datasource"]["uid"], "${datasource}");
        assert!(
            v["query"]["query"]
                .as_str()
                .expect("query")
                .starts_with("label_values(")
        );
    }
    // Versions follow the chosen model.
    assert!(
        find("version")["query"]["query"]
            .as_str()
            .unwrap_or_default()
            .contains("$model")
    );
}

#[test]
fn every_panel_and_query_uses_the_datasource_variable() {
    let d = committed_dashboard();
    for panel in all_panels(d["panels"].as_array().expect("panels")) {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {}",
            panel["title"]
        );
        assert_eq!(
            panel["datasource"]["type"], "prometheus",
            "panel {}",
            panel["title"]
        );
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "panel {}",
                panel["title"]
            );
            let expr = target["expr"].as_str().unwrap_or_default();
            // Our own series follow the model variable, other exporters' do not.
            let ours = expr.contains("model_");
            assert!(
                !ours || expr.contains("$model"),
                "panel {} ignores $model: {expr}",
                panel["title"]
            );
        }
    }
}

#[test]
fn panels_do_not_overlap_and_ids_are_unique() {
    let d = committed_dashboard();
    let top: Vec<&Value> = d["panels"].as_array().expect("panels").iter().collect();
    assert_no_overlap(&top);
    for row in &top {
        if let Some(children) = row["panels"].as_array().filter(|c| !c.is_empty()) {
            assert_eq!(row["collapsed"], true, "only a collapsed row holds panels");
            let children: Vec<&Value> = children.iter().collect();
            assert_no_overlap(&children);
        }
    }
    let mut ids: Vec<u64> = all_panels(d["panels"].as_array().expect("panels"))
        .iter()
        .map(|p| p["id"].as_u64().expect("an id"))
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "panel ids are unique");
}

#[test]
fn the_first_row_is_six_coloured_stats() {
    let d = committed_dashboard();
    let panels = d["panels"].as_array().expect("panels");
    assert_eq!(panels[0]["type"], "row");
    assert_eq!(panels[0]["title"], "Key health");
    let stats: Vec<&Value> = panels[1..]
        .iter()
        .take_while(|p| p["type"] != "row")
        .collect();
    let titles: Vec<&str> = stats
        .iter()
        .map(|p| p["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        titles,
        [
            "Requests per second",
            "Error ratio",
            "p99 latency",
            "Score PSI",
            "Approval change",
            "Worst feature age"
        ]
    );
    for stat in stats {
        assert_eq!(stat["type"], "stat");
        let steps = stat["fieldConfig"]["defaults"]["thresholds"]["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{} has no thresholds", stat["title"]));
        assert!(steps.len() >= 2, "{} needs colour steps", stat["title"]);
        assert!(
            steps[0]["value"].is_null(),
            "{}: the base step has no value",
            stat["title"]
        );
        assert_eq!(rect(stat).1, 1, "{} is in the first row", stat["title"]);
    }
}

#[test]
fn rows_answer_the_design_questions_with_realized_and_estimated_ground_truth() {
    let d = committed_dashboard();
    let rows: Vec<&Value> = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] == "row")
        .collect();
    let titles: Vec<&str> = rows
        .iter()
        .map(|r| r["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        titles,
        [
            "Key health",
            "Serving",
            "Model behaviour",
            "Features",
            "Infrastructure",
            "Ground truth (labels)"
        ]
    );
    let ground_truth = rows[5];
    assert_eq!(ground_truth["collapsed"], false);
    let precision = all_panels(d["panels"].as_array().expect("panels"))
        .into_iter()
        .find(|p| p["title"] == "Precision: realized vs estimated")
        .expect("a precision panel");
    let exprs: Vec<&str> = precision["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("model_feedback_precision:ratio1d"))
            && exprs
                .iter()
                .any(|e| e.contains("model_score_estimated_precision:ratio1d")),
        "{exprs:?}"
    );
    let heatmap = all_panels(d["panels"].as_array().expect("panels"))
        .into_iter()
        .find(|p| p["type"] == "heatmap")
        .expect("a score heatmap");
    let expr = heatmap["targets"][0]["expr"].as_str().unwrap_or_default();
    assert!(expr.contains("model_prediction_score_bucket"), "{expr}");
    assert_eq!(heatmap["targets"][0]["format"], "heatmap");
}
