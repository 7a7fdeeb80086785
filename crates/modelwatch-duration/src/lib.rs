//! The one duration grammar of every modelwatch command: flags, their `MODELWATCH_*`
//! environment variables and config files all read durations through [`parse`] (or
//! [`HumanDuration`], its serde form).
//!
//! The grammar is the `humantime` crate's: one or more numbers, each with a unit, such
//! as `250us`, `50ms`, `1.5s`, `1m30s` or `2h 15m`. Units: `ns`, `us` (or `µs`), `ms`,
//! `s`, `m` (or `min`), `h`, `d`, `w`, and their longer spellings. A bare number is
//! seconds (`10`, `0.5`), so `--every 10` still means ten seconds.
//!
//! ```
//! use modelwatch_duration::{HumanDuration, parse};
//! use std::time::Duration;
//!
//! assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
//! assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
//! assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
//! assert!(parse("10 parsecs").unwrap_err().contains("hint:"));
//! assert_eq!(HumanDuration(Duration::from_millis(50)).to_string(), "50ms");
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The closing line of the `--help` of every command with a duration flag.
pub const HELP: &str =
    "Durations are a number and a unit (250us, 50ms, 2s, 1m30s, 1h); a bare number is seconds.";

/// The `hint:` line of every grammar error.
pub const GRAMMAR_HINT: &str = "hint: write a number and a unit, such as 250us, 50ms, 2s, 1m30s or 1h (a bare number is seconds)";

/// Parses a duration in the grammar above. The error says what is wrong and ends in a
/// `hint:` line.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let fail = |reason: String| format!("{text:?} is not a duration: {reason}\n{GRAMMAR_HINT}");
    if text.is_empty() {
        return Err(fail("it is empty".into()));
    }
    if text.starts_with('-') {
        return Err(fail("a duration cannot be negative".into()));
    }
    let bare_seconds = text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_digit() || c == '.');
    let parsed = if bare_seconds {
        // Through humantime too, so `0.1` is exact and `1.2.3` fails like `1.2.3s`.
        humantime::parse_duration(&format!("{text}s"))
    } else {
        humantime::parse_duration(text)
    };
    parsed.map_err(|e| fail(reason(text, &e)))
}

/// Our wording of humantime's errors (its own gives byte offsets and no example).
fn reason(text: &str, error: &humantime::DurationError) -> String {
    use humantime::DurationError as E;
    let at = |offset: usize| {
        text.get(offset..)
            .and_then(|rest| rest.chars().next())
            .map(|c| format!("{c:?}"))
            .unwrap_or_else(|| "the end".into())
    };
    match error {
        E::InvalidCharacter(offset) => format!("unexpected {} in it", at(*offset)),
        E::NumberExpected(offset) => format!("expected a number at {}", at(*offset)),
        // Only in a compound one: a bare number is seconds.
        E::UnknownUnit { unit, .. } if unit.is_empty() => "a number in it has no unit".into(),
        E::UnknownUnit { unit, .. } => format!("unknown unit {unit:?}"),
        E::NumberOverflow => "too large, or finer than a nanosecond".into(),
        E::Empty => "it is empty".into(),
    }
}

/// Parses a duration that must be at least `min`. `hint` says why, as a user can act
/// on it (without the `hint: ` prefix).
pub fn parse_at_least(text: &str, min: Duration, hint: &str) -> Result<Duration, String> {
    let value = parse(text)?;
    if value < min {
        return Err(format!(
            "must be at least {}, got {}\nhint: {hint}",
            HumanDuration(min),
            HumanDuration(value)
        ));
    }
    Ok(value)
}

/// Parses a duration that must lie in `min..=max`. `hint` says why (without the
/// `hint: ` prefix).
pub fn parse_between(
    text: &str,
    min: Duration,
    max: Duration,
    hint: &str,
) -> Result<Duration, String> {
    let value = parse(text)?;
    if value < min || value > max {
        return Err(format!(
            "must be from {} to {}, got {}\nhint: {hint}",
            HumanDuration(min),
            HumanDuration(max),
            HumanDuration(value)
        ));
    }
    Ok(value)
}

/// A duration as flags and config files write it: a clap value (through [`FromStr`])
/// and a serde value. It reads a string in the grammar above, or a bare number of
/// seconds (`drain_timeout = 10` in TOML, as `--drain-timeout 10`), and writes the
/// shortest string that reads back the same (`250us`, `1m 30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text).map(HumanDuration)
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Visitor)
    }
}

struct Visitor;

impl serde::de::Visitor<'_> for Visitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"250us\", \"2s\" or \"1m30s\", or a number of seconds")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, seconds: u64) -> Result<Self::Value, E> {
        Ok(HumanDuration(Duration::from_secs(seconds)))
    }

    fn visit_i64<E: serde::de::Error>(self, seconds: i64) -> Result<Self::Value, E> {
        u64::try_from(seconds)
            .map(|s| HumanDuration(Duration::from_secs(s)))
            .map_err(|_| {
                E::custom(format!(
                    "{seconds} is not a duration: a duration cannot be negative\n{GRAMMAR_HINT}"
                ))
            })
    }

    fn visit_f64<E: serde::de::Error>(self, seconds: f64) -> Result<Self::Value, E> {
        Duration::try_from_secs_f64(seconds)
            .map(HumanDuration)
            .map_err(|_| E::custom(format!("{seconds} is not a duration: it must be a finite, non-negative number of seconds\n{GRAMMAR_HINT}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn units() {
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("250µs"), Duration::from_micros(250));
        assert_eq!(ok("50ms"), Duration::from_millis(50));
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("100ns"), Duration::from_nanos(100));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(" 30s "), Duration::from_secs(30));
    }

    #[test]
    fn compound_durations() {
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1m 30s"), Duration::from_secs(90));
        assert_eq!(ok("2h15m"), Duration::from_secs(2 * 3600 + 15 * 60));
        assert_eq!(ok("1s500ms"), Duration::from_millis(1500));
    }

    #[test]
    fn bare_numbers_are_seconds() {
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0.5"), Duration::from_millis(500));
        assert_eq!(ok("0.1"), Duration::from_millis(100));
        assert_eq!(ok("2.25"), Duration::from_millis(2250));
    }

    #[test]
    fn bad_input_says_what_is_wrong_and_hints() {
        for (text, says) in [
            ("", "empty"),
            ("   ", "empty"),
            ("10x", "unknown unit \"x\""),
            ("10 parsecs", "unknown unit \"parsecs\""),
            ("-5s", "negative"),
            ("-1", "negative"),
            ("s", "expected a number"),
            ("1.2.3", "unexpected"),
            ("10s!", "unexpected '!'"),
            ("1m 20", "a number in it has no unit"),
            ("99999999999999999999h", "too large"),
            ("0.5ns", "finer than a nanosecond"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text:?}: {err}");
            assert!(
                err.contains(&format!("{:?}", text.trim())),
                "{text:?}: {err}"
            );
            let last = err.lines().last().unwrap_or_default();
            assert!(last.starts_with("hint: ") && !last.ends_with('.'), "{err}");
        }
    }

    #[test]
    fn ranges_are_refused_not_clamped() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(8));
        assert_eq!(
            parse_between("3s", min, max, "why"),
            Ok(Duration::from_secs(3))
        );
        assert_eq!(parse_between("500ms", min, max, "why"), Ok(min));
        assert_eq!(parse_between("8", min, max, "why"), Ok(max));
        let err = parse_between("20s", min, max, "both scrapes fit").unwrap_err();
        assert_eq!(
            err,
            "must be from 500ms to 8s, got 20s\nhint: both scrapes fit"
        );
        let err = parse_between("100ms", min, max, "why").unwrap_err();
        assert!(
            err.starts_with("must be from 500ms to 8s, got 100ms"),
            "{err}"
        );
        let err = parse_at_least("1", Duration::from_secs(2), "boards take 2s").unwrap_err();
        assert_eq!(err, "must be at least 2s, got 1s\nhint: boards take 2s");
        assert_eq!(
            parse_at_least("1h", Duration::from_secs(2), "why"),
            Ok(Duration::from_secs(3600))
        );
        // A grammar error keeps its own hint.
        let err = parse_between("3x", min, max, "why").unwrap_err();
        assert!(
            err.contains("unknown unit") && err.ends_with(GRAMMAR_HINT),
            "{err}"
        );
    }

    #[test]
    fn display_reads_back() {
        for d in [
            Duration::from_micros(250),
            Duration::from_millis(50),
            Duration::from_secs(90),
            Duration::from_secs(3600),
            Duration::from_nanos(1_500_000_001),
            Duration::ZERO,
        ] {
            let text = HumanDuration(d).to_string();
            assert_eq!(ok(&text), d, "{text}");
        }
        assert_eq!(
            HumanDuration(Duration::from_micros(250)).to_string(),
            "250us"
        );
        assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "1m 30s");
    }

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    struct File {
        timeout: HumanDuration,
    }

    #[test]
    fn config_files_read_the_flag_grammar() {
        let read = |text: &str| toml::from_str::<File>(text).map(|f| f.timeout.0);
        assert_eq!(read("timeout = \"250us\""), Ok(Duration::from_micros(250)));
        assert_eq!(read("timeout = \"1m30s\""), Ok(Duration::from_secs(90)));
        assert_eq!(read("timeout = \"10\""), Ok(Duration::from_secs(10)));
        assert_eq!(read("timeout = 10"), Ok(Duration::from_secs(10)));
        assert_eq!(read("timeout = 0.25"), Ok(Duration::from_millis(250)));
        let err = read("timeout = \"10x\"").unwrap_err().to_string();
        assert!(
            err.contains("unknown unit") && err.contains("hint:"),
            "{err}"
        );
        let err = read("timeout = -3").unwrap_err().to_string();
        assert!(err.contains("negative"), "{err}");
        let written = toml::to_string(&File {
            timeout: HumanDuration(Duration::from_micros(250)),
        })
        .unwrap_or_default();
        assert_eq!(written.trim(), "timeout = \"250us\"");
    }
}
