//! Module implementing the year's shape: weekly and yearly seasonality and the two
//! past incidents. See [`volume`] and [`INCIDENTS`] for details.
//!
//! The time of day comes from the simulator (its traffic draws a time of day around
//! noon); this module adds what a simulator run of a few minutes cannot show:
//!
//! - **weekly**: Friday and Saturday are busier, Sunday is the quietest day;
//! - **yearly**: volume peaks in late December and bottoms out in late June, and the
//!   amounts spent rise with it (holiday shopping), which moves the amount features
//!   and the scores a little with the season; comparing a week with the same week a
//!   year earlier cancels that drift, comparing it with the previous week does not
//!   always.

use modelwatch_sim::{DAY_SECS, TrafficKnobs};

/// Volume factor per weekday, Monday first.
pub const WEEKLY: [f64; 7] = [0.96, 0.97, 0.98, 1.0, 1.08, 1.12, 0.89];

/// Relative amplitude of the yearly wave of volume.
pub const YEARLY_AMPLITUDE: f64 = 0.12;

/// Relative amplitude of the yearly wave of amounts.
pub const AMOUNT_AMPLITUDE: f64 = 0.08;

/// Day of the year (0-based, from 1 January) where the yearly waves peak.
pub const YEARLY_PEAK_DAY: f64 = 355.0;

/// The largest value [`volume`] takes.
pub const VOLUME_MAX: f64 = 1.12 * (1.0 + YEARLY_AMPLITUDE);

/// A past incident, placed relative to the end of the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Incident {
    /// Short name.
    pub name: &'static str,
    /// What happened, in a sentence.
    pub description: &'static str,
    /// Whole UTC days before the end of the history when it started.
    pub days_before_end: i64,
    /// How many whole days it lasted.
    pub days: i64,
    /// Simulator knobs while it lasted (on top of the season's).
    pub fraud_multiplier: f64,
    /// Amounts multiplied by this while it lasted.
    pub amount_scale: f64,
    /// Share of requests that failed with `status="error"` (feature store unavailable).
    pub error_rate: f64,
}

/// The two past incidents: a card-testing fraud wave (declines and score drift), and
/// an upstream currency bug that tripled amounts while the feature store flapped
/// (feature drift, errors).
pub const INCIDENTS: [Incident; 2] = [
    Incident {
        name: "card_testing_wave",
        description: "a wave of card testing: fraud six times its usual share for three days",
        days_before_end: 200,
        days: 3,
        fraud_multiplier: 6.0,
        amount_scale: 1.0,
        error_rate: 0.0,
    },
    Incident {
        name: "currency_bug",
        description: "an upstream service sent amounts in the wrong currency (three times too large) for a day, and the feature store failed 3% of lookups",
        days_before_end: 300,
        days: 1,
        fraud_multiplier: 1.0,
        amount_scale: 3.0,
        error_rate: 0.03,
    },
];

/// Days since 1 January of the year holding `unix` (0-based), and the weekday
/// (Monday = 0).
fn calendar(unix: i64) -> (f64, usize) {
    let days = unix.div_euclid(DAY_SECS);
    // 1970-01-01 was a Thursday.
    let weekday = (days + 3).rem_euclid(7) as usize;
    let date = time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| f64::from(t.ordinal()) - 1.0)
        .unwrap_or(0.0);
    (date, weekday)
}

/// The yearly wave at `unix`: 1 at the peak, -1 half a year later.
fn yearly_wave(unix: i64) -> f64 {
    let (day, _) = calendar(unix);
    (std::f64::consts::TAU * (day - YEARLY_PEAK_DAY) / 365.25).cos()
}

/// Relative volume at `unix` (about 1 on average over a year).
pub fn volume(unix: i64) -> f64 {
    let (_, weekday) = calendar(unix);
    WEEKLY[weekday] * (1.0 + YEARLY_AMPLITUDE * yearly_wave(unix))
}

/// The incident running on the day that starts at `day_start`, if any.
pub fn incident_on(day_start: i64, end: i64) -> Option<&'static Incident> {
    let days_before = (end - day_start).div_euclid(DAY_SECS);
    INCIDENTS
        .iter()
        .find(|i| days_before <= i.days_before_end && days_before > i.days_before_end - i.days)
}

/// Simulator knobs for the day that starts at `day_start` in a history ending at `end`.
pub fn knobs_for_day(day_start: i64, end: i64) -> TrafficKnobs {
    let noon = day_start + DAY_SECS / 2;
    let mut knobs = TrafficKnobs {
        amount_scale: 1.0 + AMOUNT_AMPLITUDE * yearly_wave(noon),
        ..TrafficKnobs::default()
    };
    if let Some(incident) = incident_on(day_start, end) {
        knobs.fraud_multiplier *= incident.fraud_multiplier;
        knobs.amount_scale *= incident.amount_scale;
    }
    knobs
}

/// Share of failed requests on the day that starts at `day_start`.
pub fn error_rate_for_day(day_start: i64, end: i64) -> f64 {
    incident_on(day_start, end).map_or(0.0, |i| i.error_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_start_on_monday() {
        // 2026-11-30 was a Monday, 2026-12-05 a Saturday.
        assert_eq!(calendar(1_795_996_800).1, 0);
        assert_eq!(calendar(1_796_428_800).1, 5);
    }

    #[test]
    fn volume_peaks_in_december_and_stays_below_its_maximum() {
        let december = volume(1_766_361_600); // 2025-12-22, a Monday
        let june = volume(1_750_636_800); // 2025-06-23, a Monday
        assert!(december > june * 1.2, "{december} against {june}");
        for day in 0..730 {
            assert!(volume(1_750_000_000 + day * DAY_SECS) <= VOLUME_MAX);
        }
    }

    #[test]
    fn incidents_cover_their_days_only() {
        let end = 1_800_000_000 - 1_800_000_000 % DAY_SECS;
        let wave = &INCIDENTS[0];
        let first = end - wave.days_before_end * DAY_SECS;
        assert_eq!(incident_on(first, end).map(|i| i.name), Some(wave.name));
        assert_eq!(
            incident_on(first + (wave.days - 1) * DAY_SECS, end).map(|i| i.name),
            Some(wave.name)
        );
        assert_eq!(incident_on(first + wave.days * DAY_SECS, end), None);
        assert_eq!(incident_on(first - DAY_SECS, end), None);
        assert_eq!(error_rate_for_day(end - 300 * DAY_SECS, end), 0.03);
    }
}
