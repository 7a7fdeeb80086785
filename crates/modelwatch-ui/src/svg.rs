//! Module implementing the inline SVG charts: time series, stat sparklines and the
//! score heatmap. See [`time_series`] and [`heatmap`] for details.

use crate::Series;
use crate::dashboard::Panel;
use crate::format::{self, PALETTE, escape};
use std::fmt::Write as _;

const W: f64 = 600.0;
const H: f64 = 200.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;

/// Axis bounds that include zero and the data, with a little headroom.
fn y_bounds(series: &[Series]) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0_f64, f64::NEG_INFINITY);
    for s in series {
        for &(_, v) in &s.points {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !hi.is_finite() || hi <= lo {
        hi = lo + 1.0;
    }
    (lo, hi + (hi - lo) * 0.08)
}

/// The `d` of a path through `points`, starting a new stroke at each gap longer
/// than two steps.
fn path(
    points: &[(f64, f64)],
    step: f64,
    x: impl Fn(f64) -> f64,
    y: impl Fn(f64) -> f64,
) -> String {
    let mut d = String::new();
    let mut last: Option<f64> = None;
    for &(t, v) in points {
        let cmd = match last {
            Some(prev) if t - prev <= 2.0 * step + 1e-9 => 'L',
            _ => 'M',
        };
        let _ = write!(d, "{cmd}{:.1} {:.1} ", x(t), y(v));
        last = Some(t);
    }
    d.trim_end().to_string()
}

/// A time-series chart of `series` over `window` (Unix seconds), with the panel's
/// coloured thresholds as dashed lines. Each drawn series is a
/// `<path class="series" data-points="N">`.
pub fn time_series(panel: &Panel, series: &[Series], window: (f64, f64), step: f64) -> String {
    let (t0, t1) = window;
    let (lo, hi) = y_bounds(series);
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0).max(1.0) * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - (v - lo) / (hi - lo)) * (H - TOP - BOTTOM);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape(&panel.title)
    );
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#2c3038"/><text x="{}" y="{:.1}" class="axis" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y(v) + 3.5,
            escape(&format::value(&panel.unit, v)),
            y = y(v)
        );
    }
    for i in 0..=4 {
        let t = t0 + (t1 - t0) * f64::from(i) / 4.0;
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" class="axis" text-anchor="{anchor}">{}</text>"#,
            x(t),
            H - 6.0,
            format::clock(t)
        );
    }
    for s in panel.thresholds.iter().filter(|s| s.color != "transparent") {
        if let Some(v) = s.value.filter(|v| *v > lo && *v < hi) {
            let _ = write!(
                out,
                r#"<line class="threshold" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-dasharray="5 4"/>"#,
                W - RIGHT,
                format::color(&s.color),
                y = y(v)
            );
        }
    }
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        let _ = write!(
            out,
            r#"<path class="series" data-points="{}" d="{}" fill="none" stroke="{color}" stroke-width="1.6"><title>{}</title></path>"#,
            s.points.len(),
            path(&s.points, step, x, y),
            escape(&s.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// A small filled sparkline for a stat tile.
pub fn sparkline(series: &Series, window: (f64, f64), step: f64) -> String {
    let (t0, t1) = window;
    let (lo, hi) = y_bounds(std::slice::from_ref(series));
    let (w, h) = (200.0, 40.0);
    let x = |t: f64| (t - t0) / (t1 - t0).max(1.0) * w;
    let y = |v: f64| 2.0 + (1.0 - (v - lo) / (hi - lo)) * (h - 4.0);
    format!(
        r#"<svg class="spark" viewBox="0 0 {w} {h}" preserveAspectRatio="none"><path class="series" data-points="{}" d="{}" fill="none" stroke="rgba(255,255,255,0.65)" stroke-width="1.5" vector-effect="non-scaling-stroke"/></svg>"#,
        series.points.len(),
        path(&series.points, step, x, y)
    )
}

/// Bucket boundary of a series' `le` label (`+Inf` included).
fn le(series: &Series) -> Option<f64> {
    match series.labels.get("le").map(String::as_str) {
        Some("+Inf") => Some(f64::INFINITY),
        Some(v) => v.parse().ok(),
        None => None,
    }
}

/// A heatmap of a classic histogram's buckets over time: `series` carry one `le`
/// each, with cumulative counts per step. Each non-empty cell is a
/// `<rect class="cell">`, darker orange for more predictions.
pub fn heatmap(panel: &Panel, series: &[Series], window: (f64, f64), step: f64) -> String {
    let mut buckets: Vec<(f64, &Series)> =
        series.iter().filter_map(|s| Some((le(s)?, s))).collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (t0, t1) = window;
    let rows = buckets.len().max(1);
    let plot_h = H - TOP - BOTTOM;
    let cell_h = plot_h / rows as f64;
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0).max(1.0) * (W - LEFT - RIGHT);
    let cell_w = (step / (t1 - t0).max(1.0) * (W - LEFT - RIGHT)).max(1.0);
    // Per-bucket counts: the cumulative count minus the bucket below, per timestamp.
    let mut cells: Vec<(f64, usize, f64)> = Vec::new();
    for (i, (_, s)) in buckets.iter().enumerate() {
        for &(t, v) in &s.points {
            let below = i
                .checked_sub(1)
                .and_then(|j| buckets[j].1.points.iter().find(|p| p.0 == t))
                .map_or(0.0, |p| p.1);
            let count = (v - below).max(0.0);
            if count > 0.0 {
                cells.push((t, i, count));
            }
        }
    }
    let max = cells.iter().map(|c| c.2).fold(0.0, f64::max);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape(&panel.title)
    );
    for (t, i, count) in &cells {
        // Grafana's "Oranges" scheme with exponent 0.5: light for few, deep for many.
        let k = (count / max).sqrt();
        let (r, g, b) = (
            255.0 - k * (255.0 - 217.0),
            235.0 - k * (235.0 - 72.0),
            200.0 - k * (200.0 - 1.0),
        );
        let _ = write!(
            out,
            r#"<rect class="cell" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="rgb({r:.0},{g:.0},{b:.0})"><title>le {} · {} at {}</title></rect>"#,
            x(*t) - cell_w / 2.0,
            TOP + plot_h - (*i as f64 + 1.0) * cell_h,
            cell_w,
            (cell_h - 1.0).max(0.5),
            escape(&format::value(&panel.unit, buckets[*i].0)),
            format::number(*count),
            format::clock_seconds(*t)
        );
    }
    let label_every = rows.div_ceil(6).max(1);
    for (i, (le, _)) in buckets
        .iter()
        .enumerate()
        .filter(|(i, _)| i % label_every == 0)
    {
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" class="axis" text-anchor="end">≤ {}</text>"#,
            LEFT - 4.0,
            TOP + plot_h - (i as f64 + 0.5) * cell_h + 3.5,
            escape(&format::value(&panel.unit, *le))
        );
    }
    for i in 0..=4 {
        let t = t0 + (t1 - t0) * f64::from(i) / 4.0;
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" class="axis" text-anchor="{anchor}">{}</text>"#,
            x(t),
            H - 6.0,
            format::clock(t)
        );
    }
    out.push_str("</svg>");
    out
}
