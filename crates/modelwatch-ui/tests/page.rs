//! The page against the dashboard JSON it draws: every panel is on it, drawn or
//! listed by name, and stats take their thresholds' colours.

use modelwatch_ui::Series;
use modelwatch_ui::dashboard::{Dashboard, MODEL_HEALTH_JSON};
use modelwatch_ui::page::{Page, render};
use serde_json::Value;

/// Every panel of the JSON with its id, title and type, read without the ui crate's
/// own parser so that a panel the parser loses is still looked for.
fn panels_of(json: &str) -> Vec<(u64, String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(u64, String, String)>) {
        for p in panels {
            out.push((
                p["id"].as_u64().expect("every panel has an id"),
                p["title"].as_str().unwrap_or_default().to_string(),
                p["type"].as_str().unwrap_or_default().to_string(),
            ));
            walk(p["panels"].as_array().map_or(&[], Vec::as_slice), out);
        }
    }
    let v: Value = serde_json::from_str(json).expect("json");
    let mut out = Vec::new();
    walk(v["panels"].as_array().expect("panels"), &mut out);
    out
}

fn escaped(text: &str) -> String {
    modelwatch_ui::format::escape(text)
}

/// Fails when the page skips a panel of `json` without saying so: each panel must
/// be drawn (with its title) or listed in the "not drawn" box with its title and type.
fn assert_every_panel_is_accounted_for(json: &str, html: &str) {
    let undrawn = html.find(r#"id="undrawn""#).map_or("", |at| &html[at..]);
    for (id, title, kind) in panels_of(json) {
        let marker = format!(r#"data-panel-id="{id}" data-type="{}""#, escaped(&kind));
        let at = html
            .find(&marker)
            .unwrap_or_else(|| panic!("panel {id} {title:?} ({kind}) is not on the page"));
        let after = &html[at..(at + 600 + title.len() * 6).min(html.len())];
        assert!(
            after.contains(&escaped(&title)),
            "panel {id} is on the page without its title {title:?}"
        );
        let listed = undrawn.contains(&marker);
        let drawn = modelwatch_ui::dashboard::DRAWN_TYPES.contains(&kind.as_str());
        assert!(
            drawn || listed,
            "panel {id} {title:?} of type {kind} is neither drawn nor listed as not drawn"
        );
    }
}

#[test]
fn every_panel_of_the_shipped_dashboard_is_on_the_page() {
    let dashboard = Dashboard::model_health().expect("dashboard");
    let html = render(&Page::empty(&dashboard, "test"));
    assert_every_panel_is_accounted_for(MODEL_HEALTH_JSON, &html);
}

#[test]
fn a_panel_type_the_page_cannot_draw_is_listed_by_name() {
    let mut v: Value = serde_json::from_str(MODEL_HEALTH_JSON).expect("json");
    let panels = v["panels"].as_array_mut().expect("panels");
    panels.push(serde_json::json!({
        "id": 900, "type": "piechart", "title": "Decisions <by> share",
        "gridPos": {"w": 8}, "targets": [{"expr": "up", "refId": "A"}]
    }));
    panels.push(serde_json::json!({
        "id": 901, "type": "row", "title": "Later", "collapsed": true,
        "panels": [{"id": 902, "type": "bargauge", "title": "Label delay"}]
    }));
    let json = v.to_string();
    let dashboard = Dashboard::parse(&json).expect("dashboard");
    let html = render(&Page::empty(&dashboard, "test"));
    assert_every_panel_is_accounted_for(&json, &html);
    let undrawn = &html[html.find(r#"id="undrawn""#).expect("an undrawn box")..];
    assert!(undrawn.contains("Decisions &lt;by&gt; share"));
    assert!(undrawn.contains("panel type piechart"));
    assert!(undrawn.contains("Label delay"));
}

#[test]
fn a_page_that_drops_a_panel_fails_the_check() {
    let dashboard = Dashboard::model_health().expect("dashboard");
    let html = render(&Page::empty(&dashboard, "test"));
    let (id, _, kind) = panels_of(MODEL_HEALTH_JSON)
        .into_iter()
        .find(|p| p.2 == "timeseries")
        .expect("a time series");
    let dropped = html.replace(
        &format!(r#"data-panel-id="{id}" data-type="{kind}""#),
        "data-gone",
    );
    let outcome = std::panic::catch_unwind(|| {
        assert_every_panel_is_accounted_for(MODEL_HEALTH_JSON, &dropped)
    });
    assert!(outcome.is_err(), "the check missed a dropped panel");
}

fn series(points: &[(f64, f64)]) -> Series {
    Series {
        name: "value".into(),
        points: points.to_vec(),
        ..Series::default()
    }
}

#[test]
fn stats_take_their_threshold_colours_and_charts_their_data() {
    let dashboard = Dashboard::model_health().expect("dashboard");
    let psi = dashboard
        .panels()
        .find(|p| p.kind == "stat" && p.title == "Score PSI")
        .expect("Score PSI stat");
    let latency = dashboard
        .panels()
        .find(|p| p.kind == "timeseries")
        .expect("a time series");
    let mut page = Page::empty(&dashboard, "test");
    page.window = (1000.0, 1600.0);
    page.step = 60.0;
    page.results.insert(
        psi.id,
        vec![Ok(vec![series(&[(1000.0, 0.05), (1060.0, 0.31)])])],
    );
    page.results.insert(
        latency.id,
        vec![Ok(vec![series(&[
            (1000.0, 0.002),
            (1060.0, 0.004),
            (1120.0, 0.003),
        ])])],
    );
    let html = render(&page);
    let tile = &html[html
        .find(&format!(r#"data-panel-id="{}""#, psi.id))
        .expect("tile")..];
    let tile = &tile[..tile.find("</section>").expect("end")];
    assert!(tile.contains(r#"data-color="red""#), "{tile}");
    assert!(tile.contains(modelwatch_ui::format::color("red")), "{tile}");
    assert!(tile.contains("0.31"), "{tile}");
    let chart = &html[html
        .find(&format!(r#"data-panel-id="{}""#, latency.id))
        .expect("chart")..];
    let chart = &chart[..chart.find("</section>").expect("end")];
    assert!(
        chart.contains(r#"class="series" data-points="3""#),
        "{chart}"
    );
}
