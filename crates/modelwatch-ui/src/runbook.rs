//! Module implementing `/runbook`: the mixin's `runbook.md`, embedded at build time
//! and shown as HTML with one anchor per alert, so the page's alert links work
//! without the internet. See [`render`] for details.

use crate::format::escape;
use std::fmt::Write as _;

/// The runbook as generated under `mixin/`.
pub const RUNBOOK_MD: &str = include_str!("../../../mixin/runbook.md");

/// Inline Markdown the runbook uses: `code` spans and **bold**.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(text).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            let mut bold = false;
            for (j, piece) in part.split("**").enumerate() {
                if j > 0 {
                    out.push_str(if bold { "</b>" } else { "<b>" });
                    bold = !bold;
                }
                out.push_str(piece);
            }
            if bold {
                out.push_str("</b>");
            }
        }
    }
    out
}

/// The runbook as an HTML page; each `## Name` heading has the id that
/// `runbook_url` anchors use.
pub fn render() -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>modelwatch runbook</title><style>body{max-width:860px;margin:20px auto;padding:0 18px;background:#111217;color:#d8d9da;font:15px/1.5 system-ui,sans-serif}a{color:#6e9fff}code,pre{background:#22252b;border-radius:3px;padding:1px 4px}pre{padding:8px;overflow:auto}h2{border-top:1px solid #2c3038;padding-top:14px}:target{background:#2a2410}</style></head><body><p><a href=\"/\">← back to the page</a></p>",
    );
    let mut in_list = false;
    let mut in_code = false;
    for line in RUNBOOK_MD.lines() {
        if line.starts_with("```") {
            out.push_str(if in_code { "</pre>" } else { "<pre>" });
            in_code = !in_code;
            continue;
        }
        if in_code {
            let _ = writeln!(out, "{}", escape(line));
            continue;
        }
        let item = line.strip_prefix("- ").or_else(|| line.strip_prefix("* "));
        if in_list && item.is_none() {
            out.push_str("</ul>");
            in_list = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            let anchor = modelwatch_mixin::names::alert::anchor(h.trim());
            let _ = write!(out, r#"<h2 id="{}">{}</h2>"#, escape(&anchor), inline(h));
        } else if let Some(h) = line.strip_prefix("### ") {
            let _ = write!(out, "<h3>{}</h3>", inline(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = write!(out, "<h1>{}</h1>", inline(h));
        } else if let Some(item) = item {
            if !in_list {
                out.push_str("<ul>");
                in_list = true;
            }
            let _ = write!(out, "<li>{}</li>", inline(item));
        } else if !line.trim().is_empty() {
            let _ = write!(out, "<p>{}</p>", inline(line));
        }
    }
    if in_list {
        out.push_str("</ul>");
    }
    out.push_str("</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_of_the_mixin_has_its_anchor() {
        let html = render();
        let config = modelwatch_mixin::MixinConfig::default();
        for group in modelwatch_mixin::alerts::alerting_rules(&config) {
            for rule in &group.rules {
                if let modelwatch_mixin::rules::Rule::Alert(a) = rule {
                    let (name, anchor) = (a.alert, modelwatch_mixin::names::alert::anchor(a.alert));
                    assert!(
                        html.contains(&format!("id=\"{anchor}\"")),
                        "no section for {name}"
                    );
                }
            }
        }
    }
}
