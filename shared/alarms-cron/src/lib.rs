//! The cron dialect of Apache OpenWhisk's `/whisk.system/alarms` provider, ported from the
//! node `cron` package it runs, so that what we accept and when we expect a fire is what the
//! platform does.
//!
//! apache/openwhisk-package-alarms (5e0edc3) validates `cron` in its web action with node
//! `cron` 1.7.0 (`action/alarmWeb_package.json`, `action/alarmWebAction.js:99`) and schedules
//! it in the provider with node `cron` 1.8.2 (`package.json`, `provider/lib/cronAlarm.js:47`).
//! An expression 1.7.0 accepts but 1.8.2 rejects is stored, then disabled by the provider at
//! once (`provider/lib/utils.js:376-397`: "Automatically disabled after receiving error on
//! trigger initialization"), so the accepted language is 1.8.2's (which is stricter than
//! 1.7.0's on every point: field count, wildcards, steps, ranges). Its quirks, all kept:
//!
//! * 5 fields, or 6 with seconds first (kelektiv/node-cron v1.8.2 `lib/cron.js:416-422`).
//! * Months are numbered 0-11 (January = 0) and days of week 0-6 (Sunday = 0); 7 is out of
//!   range (`lib/cron.js:51`, `:469-477`). Names (`jan`-`dec`, `sun`-`sat`, any case) are
//!   replaced anywhere in the string, three letters at a time (`lib/cron.js:400-410`).
//! * `a-b`, `a-b/n`, `a/n` (= `a`-max every `n`), lists; `*` only at the start of a list
//!   item; a step of `0` or `a > b` is rejected (`lib/cron.js:438-494`).
//! * A day matches when day-of-month or day-of-week matches if both are restricted
//!   (`lib/cron.js:258-280`).
//!
//! This crate does no I/O and knows nothing about feeds or triggers. Time is UTC.

use std::fmt;

use chrono::{DateTime, Datelike, Timelike};

/// One cron field: its name for messages and its range in node cron's numbering.
struct Unit {
    name: &'static str,
    low: u32,
    high: u32,
}

/// The six fields in node cron's order (`lib/cron.js:13-20`, `:51`).
const UNITS: [Unit; 6] = [
    Unit { name: "second", low: 0, high: 59 },
    Unit { name: "minute", low: 0, high: 59 },
    Unit { name: "hour", low: 0, high: 23 },
    Unit { name: "day-of-month", low: 1, high: 31 },
    Unit { name: "month", low: 0, high: 11 },
    Unit { name: "day-of-week", low: 0, high: 6 },
];

/// Days per month (0-based) that node cron checks day-of-month against (`lib/cron.js:52-65`).
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Names node cron replaces by numbers (`lib/cron.js:67-87`).
const ALIASES: [(&str, u32); 19] = [
    ("jan", 0),
    ("feb", 1),
    ("mar", 2),
    ("apr", 3),
    ("may", 4),
    ("jun", 5),
    ("jul", 6),
    ("aug", 7),
    ("sep", 8),
    ("oct", 9),
    ("nov", 10),
    ("dec", 11),
    ("sun", 0),
    ("mon", 1),
    ("tue", 2),
    ("wed", 3),
    ("thu", 4),
    ("fri", 5),
    ("sat", 6),
];

/// Why the alarms provider would not run an expression; `Display` says it in the user's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CronError {
    /// Fewer than 5 or more than 6 fields.
    FieldCount(usize),
    /// A word that is not a month or day name (node cron reads letters three at a time).
    UnknownName(String),
    /// A field that is not a list of `*`, `n`, `a-b`, with an optional `/step`.
    Syntax {
        /// Which field.
        field: &'static str,
        /// The field as written (names already replaced by numbers).
        text: String,
    },
    /// A value outside the field's range.
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// The item as written.
        text: String,
    },
    /// `a-b` with `a > b`.
    BackwardsRange {
        /// Which field.
        field: &'static str,
        /// The item as written.
        text: String,
    },
    /// `/0`.
    ZeroStep {
        /// Which field.
        field: &'static str,
    },
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CronError::FieldCount(n) => {
                write!(f, "5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, not {n}")
            }
            CronError::UnknownName(word) => {
                write!(f, "numbers or the names jan-dec and sun-sat, not '{word}'")
            }
            CronError::Syntax { field, text } => {
                write!(f, "a {field} field made of *, n, a-b and /step items, not '{text}'")
            }
            CronError::OutOfRange { field, text } => {
                let unit = UNITS.iter().find(|u| u.name == *field).unwrap_or(&UNITS[0]);
                let note = match *field {
                    "month" => {
                        " (the alarms provider numbers months from 0: January is 0; names jan-dec avoid the trap)"
                    }
                    "day-of-week" => " (Sunday is 0; the alarms provider does not accept 7)",
                    _ => "",
                };
                write!(f, "{field} values from {} to {}{note}, not '{text}'", unit.low, unit.high)
            }
            CronError::BackwardsRange { field, text } => {
                write!(f, "a {field} range a-b with a <= b, not '{text}'")
            }
            CronError::ZeroStep { field } => write!(f, "a {field} step of at least 1, not 0"),
        }
    }
}

impl std::error::Error for CronError {}

/// A parsed expression: the set of values each field matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
}

/// Whether a 6-field expression has a seconds field other than `0`: installs that set
/// `limitCronFields` reject it (apache/openwhisk-package-alarms `action/alarmWebAction.js:101`,
/// `:398-402`).
pub fn has_seconds_granularity(expr: &str) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    fields.len() > 5 && fields[fields.len() - 6] != "0"
}

impl Pattern {
    /// Parses `expr` exactly as the alarms provider's node cron 1.8.2 does.
    pub fn parse(expr: &str) -> Result<Pattern, CronError> {
        let source = replace_names(expr)?;
        let fields: Vec<&str> = source.split_whitespace().collect();
        if fields.len() < 5 || fields.len() > 6 {
            return Err(CronError::FieldCount(fields.len()));
        }
        // A missing seconds field defaults to "0" (`lib/cron.js:66`, `:424-429`).
        let offset = 6 - fields.len();
        let mut sets = [0u64; 6];
        for (i, unit) in UNITS.iter().enumerate() {
            let text = if i < offset { "0" } else { fields[i - offset] };
            sets[i] = parse_field(text, unit)?;
        }
        let mut days_of_month = sets[3];
        fix_impossible_days(&mut days_of_month, sets[4]);
        Ok(Pattern {
            seconds: sets[0],
            minutes: sets[1],
            hours: sets[2] as u32,
            days_of_month: days_of_month as u32,
            months: sets[4] as u16,
            days_of_week: sets[5] as u8,
        })
    }

    /// The first fire strictly after `after_ms` (Unix ms, UTC), as the provider computes it
    /// (`lib/cron.js:206-360`); `None` if none within 30 years.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = DateTime::from_timestamp(after_ms.div_euclid(1000) + 1, 0)?;
        let first_day = start.date_naive();
        let first_second = start.num_seconds_from_midnight();
        // Restricted means "not every value" (`lib/cron.js:258-280` compares key counts).
        let dom_restricted = self.days_of_month.count_ones() != 31;
        let dow_restricted = self.days_of_week.count_ones() != 7;
        let mut day = first_day;
        for _ in 0..(30 * 366) {
            let dom = self.days_of_month & (1 << day.day()) != 0;
            let dow = self.days_of_week & (1 << day.weekday().num_days_from_sunday()) != 0;
            let day_matches = match (dom_restricted, dow_restricted) {
                (true, true) => dom || dow,
                (true, false) => dom,
                (false, true) => dow,
                (false, false) => true,
            };
            if self.months & (1 << day.month0()) != 0 && day_matches {
                let from = if day == first_day { first_second } else { 0 };
                if let Some(second) = self.first_time_from(from) {
                    let midnight = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
                    return Some((midnight + i64::from(second)) * 1000);
                }
            }
            day = day.succ_opt()?;
        }
        None
    }

    /// The first matching second of a day at or after `from` (seconds since midnight).
    fn first_time_from(&self, from: u32) -> Option<u32> {
        for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
            if (h + 1) * 3600 <= from {
                continue;
            }
            for m in (0..60).filter(|m| self.minutes & (1 << m) != 0) {
                for s in (0..60).filter(|s| self.seconds & (1 << s) != 0) {
                    let t = h * 3600 + m * 60 + s;
                    if t >= from {
                        return Some(t);
                    }
                }
            }
        }
        None
    }
}

/// Replaces month and day names by numbers, three letters at a time (`lib/cron.js:400-410`).
fn replace_names(expr: &str) -> Result<String, CronError> {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if !c.is_ascii_alphabetic() {
            out.push(c);
            continue;
        }
        let mut word = c.to_ascii_lowercase().to_string();
        while word.len() < 3 {
            match chars.peek() {
                Some(n) if n.is_ascii_alphabetic() => {
                    word.push(n.to_ascii_lowercase());
                    chars.next();
                }
                _ => break,
            }
        }
        match ALIASES.iter().find(|(name, _)| *name == word) {
            Some((_, n)) => out.push_str(&n.to_string()),
            None => return Err(CronError::UnknownName(word)),
        }
    }
    Ok(out)
}

/// Parses one field into a bit set (`lib/cron.js:434-501`).
fn parse_field(field: &str, unit: &Unit) -> Result<u64, CronError> {
    let syntax = || CronError::Syntax { field: unit.name, text: field.to_string() };
    let mut set = 0u64;
    for item in field.split(',') {
        // `*` may only start a list item (`lib/cron.js:440-446`).
        if item.find('*').is_some_and(|i| i != 0) {
            return Err(syntax());
        }
        let expanded = item.replace('*', &format!("{}-{}", unit.low, unit.high));
        let (range, step) = match expanded.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (expanded.as_str(), None),
        };
        let (lower, upper) = match range.split_once('-') {
            Some((l, u)) => (l, Some(u)),
            None => (range, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(lower) || !upper.is_none_or(digits) || !step.is_none_or(digits) {
            return Err(syntax());
        }
        let number = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
        let lower = number(lower);
        // `parseInt(upper) || undefined`: an upper bound of 0 counts as absent (`lib/cron.js:456`).
        let upper = upper.map(number).filter(|u| *u != 0);
        if step == Some("0") {
            return Err(CronError::ZeroStep { field: unit.name });
        }
        let step_given = step.is_some();
        let step = step.map(number).filter(|s| *s != 0).unwrap_or(1);
        if upper.is_some_and(|u| lower > u) {
            return Err(CronError::BackwardsRange { field: unit.name, text: item.to_string() });
        }
        let (low, high) = (u64::from(unit.low), u64::from(unit.high));
        if lower < low || upper.is_some_and(|u| u > high) || (upper.is_none() && lower > high) {
            return Err(CronError::OutOfRange { field: unit.name, text: item.to_string() });
        }
        let upper = upper.unwrap_or(if step_given { high } else { lower });
        let mut value = lower;
        while value <= upper {
            set |= 1 << value;
            value = value.saturating_add(step);
        }
    }
    Ok(set)
}

/// When no chosen month has any chosen day, node cron folds the days of the last such month
/// (`day % days_in_month`) so that it fires at all (`lib/cron.js:90-131`).
fn fix_impossible_days(days: &mut u64, months: u64) {
    let possible = |month: usize| (1..=31).any(|d| *days & (1 << d) != 0 && d <= MONTH_DAYS[month]);
    let chosen: Vec<usize> = (0..12).filter(|m| months & (1 << m) != 0).collect();
    if chosen.iter().any(|m| possible(*m)) {
        return;
    }
    if let Some(&last) = chosen.last() {
        let con = MONTH_DAYS[last];
        for d in (con + 1)..=31 {
            if *days & (1 << d) != 0 {
                *days &= !(1 << d);
                *days |= 1 << (d % con);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        chrono::Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap().timestamp_millis()
    }

    /// Friday 2026-11-27 12:00:00 UTC.
    fn friday_noon() -> i64 {
        ms(2026, 11, 27, 12, 0, 0)
    }

    #[track_caller]
    fn check_next(expr: &str, after: i64, expected: &[i64]) {
        let p = Pattern::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let mut t = after;
        for (i, want) in expected.iter().enumerate() {
            t = p.next_after(t).unwrap();
            assert_eq!(
                DateTime::from_timestamp_millis(t).unwrap(),
                DateTime::from_timestamp_millis(*want).unwrap(),
                "{expr}: fire {i}"
            );
        }
    }

    #[track_caller]
    fn check_err(expr: &str, expected: CronError) {
        assert_eq!(Pattern::parse(expr), Err(expected), "{expr}");
    }

    #[test]
    fn days_of_week_number_sunday_zero() {
        // 2026-11-29 is a Sunday.
        check_next("0 9 * * 0", friday_noon(), &[ms(2026, 11, 29, 9, 0, 0), ms(2026, 12, 6, 9, 0, 0)]);
        check_next("0 9 * * sun", friday_noon(), &[ms(2026, 11, 29, 9, 0, 0)]);
        check_next("0 9 * * SUN", friday_noon(), &[ms(2026, 11, 29, 9, 0, 0)]);
        // 1-5 is Monday to Friday: after Friday noon, Monday 30th, then Tuesday.
        check_next("0 9 * * 1-5", friday_noon(), &[ms(2026, 11, 30, 9, 0, 0), ms(2026, 12, 1, 9, 0, 0)]);
        check_next("0 9 * * MON-FRI", friday_noon(), &[ms(2026, 11, 30, 9, 0, 0)]);
        check_next("0 13 * * 1-5", friday_noon(), &[ms(2026, 11, 27, 13, 0, 0), ms(2026, 11, 30, 13, 0, 0)]);
        check_next("* * * * 0-6", friday_noon(), &[ms(2026, 11, 27, 12, 1, 0), ms(2026, 11, 27, 12, 2, 0)]);
        check_next("0 0 * * 6", friday_noon(), &[ms(2026, 11, 28, 0, 0, 0)]);
        check_next("0 0 * * sat,sun", friday_noon(), &[ms(2026, 11, 28, 0, 0, 0), ms(2026, 11, 29, 0, 0, 0)]);
    }

    #[test]
    fn months_number_january_zero() {
        // node cron 1.x: month 0 is January, 1 is February (lib/cron.js:51, moment's month()).
        check_next("0 0 1 0 *", friday_noon(), &[ms(2027, 1, 1, 0, 0, 0)]);
        check_next("0 0 1 1 *", friday_noon(), &[ms(2027, 2, 1, 0, 0, 0)]);
        check_next("0 0 1 jan *", friday_noon(), &[ms(2027, 1, 1, 0, 0, 0)]);
        check_next("0 0 25 DEC *", friday_noon(), &[ms(2026, 12, 25, 0, 0, 0)]);
        check_next("0 0 25 11 *", friday_noon(), &[ms(2026, 12, 25, 0, 0, 0)]);
        // February 30th never exists: node cron folds it to the 1st.
        check_next("0 0 30 feb *", friday_noon(), &[ms(2027, 2, 1, 0, 0, 0)]);
        check_next("0 0 29 feb *", friday_noon(), &[ms(2028, 2, 29, 0, 0, 0)]);
    }

    #[test]
    fn steps_ranges_lists_and_seconds() {
        check_next("*/5 * * * *", friday_noon(), &[ms(2026, 11, 27, 12, 5, 0), ms(2026, 11, 27, 12, 10, 0)]);
        check_next("7/20 * * * *", friday_noon(), &[ms(2026, 11, 27, 12, 7, 0), ms(2026, 11, 27, 12, 27, 0)]);
        check_next("0 8-10/2 * * *", friday_noon(), &[ms(2026, 11, 28, 8, 0, 0), ms(2026, 11, 28, 10, 0, 0)]);
        check_next("0 1,2,23 * * *", friday_noon(), &[ms(2026, 11, 27, 23, 0, 0), ms(2026, 11, 28, 1, 0, 0)]);
        check_next("30 */5 * * * *", friday_noon(), &[ms(2026, 11, 27, 12, 0, 30), ms(2026, 11, 27, 12, 5, 30)]);
        check_next("0 0 12 * * *", friday_noon(), &[ms(2026, 11, 28, 12, 0, 0)]);
        // Strictly after: a start on a fire time gives the next one.
        check_next("0 12 * * *", friday_noon() - 1, &[friday_noon()]);
        check_next("0 12 * * *", friday_noon(), &[ms(2026, 11, 28, 12, 0, 0)]);
        // Both day fields restricted: either matches (lib/cron.js:258-280).
        check_next("0 0 1 * mon", friday_noon(), &[ms(2026, 11, 30, 0, 0, 0), ms(2026, 12, 1, 0, 0, 0)]);
        // An upper bound of 0 reads as absent in node cron 1.8.2 (lib/cron.js:456).
        check_next("5-0 * * * *", friday_noon(), &[ms(2026, 11, 27, 12, 5, 0), ms(2026, 11, 27, 13, 5, 0)]);
    }

    #[test]
    fn rejections() {
        check_err("0 9 * * 7", CronError::OutOfRange { field: "day-of-week", text: "7".into() });
        check_err("0 9 * * 1-7", CronError::OutOfRange { field: "day-of-week", text: "1-7".into() });
        check_err("0 0 1 12 *", CronError::OutOfRange { field: "month", text: "12".into() });
        check_err("61 * * * *", CronError::OutOfRange { field: "minute", text: "61".into() });
        check_err("0 0 0 * *", CronError::OutOfRange { field: "day-of-month", text: "0".into() });
        check_err("* * *", CronError::FieldCount(3));
        check_err("0 0 0 * * * *", CronError::FieldCount(7));
        check_err("", CronError::FieldCount(0));
        check_err("every day", CronError::UnknownName("eve".into()));
        check_err("0 9 * * monday", CronError::UnknownName("day".into()));
        check_err("*/0 * * * *", CronError::ZeroStep { field: "minute" });
        check_err("5-1 * * * *", CronError::BackwardsRange { field: "minute", text: "5-1".into() });
        check_err("5* * * * *", CronError::Syntax { field: "minute", text: "5*".into() });
        check_err("0 9 ? * *", CronError::Syntax { field: "day-of-month", text: "?".into() });
        check_err("0 9 L * *", CronError::UnknownName("l".into()));
        check_err("-1 * * * *", CronError::Syntax { field: "minute", text: "-1".into() });
        check_err("1,,2 * * * *", CronError::Syntax { field: "minute", text: "1,,2".into() });
    }

    #[test]
    fn messages_are_one_line_in_the_users_terms() {
        let e = Pattern::parse("0 9 * * 7").unwrap_err().to_string();
        assert_eq!(e, "day-of-week values from 0 to 6 (Sunday is 0; the alarms provider does not accept 7), not '7'");
        for bad in ["* * *", "every day", "*/0 * * * *", "5-1 * * * *", "0 0 1 12 *", "5* * * * *"] {
            let e = Pattern::parse(bad).unwrap_err().to_string();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
        }
    }

    /// Any input: an error or a pattern whose next fire is later, never a panic.
    #[test]
    fn no_input_panics() {
        let alphabet: Vec<char> = "0123456789*/-, \tsunJANmonLW?#x99".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let len = next(24);
            let expr: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            if let Ok(p) = Pattern::parse(&expr) {
                let t = friday_noon();
                assert!(p.next_after(t).is_none_or(|n| n > t), "{expr}");
            }
        }
        let huge = "99999999999999999999";
        check_err(&format!("{huge} * * * *"), CronError::OutOfRange { field: "minute", text: huge.into() });
        check_err(&format!("0-{huge} * * * *"), CronError::OutOfRange { field: "minute", text: format!("0-{huge}") });
        // a step past the range leaves the start only
        check_next(&format!("*/{huge} * * * *"), friday_noon(), &[ms(2026, 11, 27, 13, 0, 0)]);
    }

    #[test]
    fn seconds_granularity_as_limit_cron_fields_sees_it() {
        assert!(!has_seconds_granularity("*/5 * * * *"));
        assert!(!has_seconds_granularity("0 */5 * * * *"));
        assert!(has_seconds_granularity("30 */5 * * * *"));
        assert!(has_seconds_granularity("*/10 * * * * *"));
    }
}
