//! Module implementing how values, colours and times are written on the page. See
//! [`value`] and [`color`] for details.

/// `v` in the panel's Grafana `unit`, short enough for a stat tile or an axis.
pub fn value(unit: &str, v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else {
            format!("{v}")
        };
    }
    match unit {
        "s" => seconds(v),
        "percentunit" => format!("{}%", number(v * 100.0)),
        "percent" => format!("{}%", number(v)),
        "reqps" => format!("{} req/s", number(v)),
        "bytes" => scaled(v, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"]),
        "decmbytes" => scaled(v, 1000.0, &["MB", "GB", "TB"]),
        _ => number(v),
    }
}

fn seconds(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0 s".into()
    } else if a < 1e-3 {
        format!("{} µs", number(v * 1e6))
    } else if a < 1.0 {
        format!("{} ms", number(v * 1e3))
    } else if a < 120.0 {
        format!("{} s", number(v))
    } else if a < 7200.0 {
        format!("{} min", number(v / 60.0))
    } else {
        format!("{} h", number(v / 3600.0))
    }
}

fn scaled(mut v: f64, base: f64, names: &[&str]) -> String {
    let mut i = 0;
    while v.abs() >= base && i + 1 < names.len() {
        v /= base;
        i += 1;
    }
    format!("{} {}", number(v), names[i])
}

/// Three significant digits, with k and M for large numbers.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        return format!("{}M", number(v / 1e6));
    }
    if a >= 1e4 {
        return format!("{}k", number(v / 1e3));
    }
    let decimals = if a == 0.0 || a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // Three significant digits below 1, at most 6 decimals.
        ((-a.log10()).floor() as usize + 3).min(6)
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The CSS colour for one of Grafana's colour names.
pub fn color(name: &str) -> &'static str {
    match name {
        "green" | "semi-dark-green" | "dark-green" => "#2f8f46",
        "orange" | "semi-dark-orange" | "dark-orange" => "#e0710b",
        "red" | "semi-dark-red" | "dark-red" => "#d0343f",
        "yellow" | "semi-dark-yellow" | "dark-yellow" => "#c9a200",
        "blue" | "semi-dark-blue" | "dark-blue" => "#3274d9",
        "purple" => "#8f3bb8",
        "transparent" | "" => "transparent",
        _ => "#6e7079",
    }
}

/// Series colours, in Grafana's classic palette order.
pub const PALETTE: &[&str] = &[
    "#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
    "#508642", "#cca300", "#447ebc", "#c15c17",
];

/// `HH:MM` (UTC) of a Unix time.
pub fn clock(unix_seconds: f64) -> String {
    let s = unix_seconds.rem_euclid(86_400.0) as u64;
    format!("{:02}:{:02}", s / 3600, (s / 60) % 60)
}

/// `HH:MM:SS` (UTC) of a Unix time.
pub fn clock_seconds(unix_seconds: f64) -> String {
    let s = unix_seconds.rem_euclid(86_400.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// `text` escaped for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded for a query-string value.
pub fn url_value(text: &str) -> String {
    modelwatch_stack::percent_encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_like_grafanas() {
        assert_eq!(value("s", 0.0042), "4.2 ms");
        assert_eq!(value("s", 0.000_35), "350 µs");
        assert_eq!(value("s", 3600.0), "60 min");
        assert_eq!(value("percentunit", 0.0123), "1.23%");
        assert_eq!(value("reqps", 199.6), "200 req/s");
        assert_eq!(value("none", 0.01234), "0.0123");
        assert_eq!(value("bytes", 3.0 * 1024.0 * 1024.0), "3 MiB");
        assert_eq!(value("none", 0.0), "0");
        assert_eq!(number(25_000.0), "25k");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn clocks_are_utc() {
        assert_eq!(clock(3661.0), "01:01");
        assert_eq!(clock_seconds(86_400.0 + 59.0), "00:00:59");
    }
}
