//! When a polling feed polls: an interval in minutes or a cron expression, validated before
//! anything is created, and turned into the `/whisk.system/alarms` feed that drives it.
//!
//! Cron expressions are checked with `alarms-cron`, a port of the node `cron` 1.8.2 parser the
//! alarms provider runs (Sunday = 0, January = 0, 7 rejected), and sent to the alarms feed as
//! the user wrote them. This module only validates and describes; creating the alarm is
//! `polling`'s job.

use alarms_cron::{has_seconds_granularity, Pattern};
use serde_json::{json, Value};

use crate::params::{ParamError, Params};

/// Parameters of Apache's feeds that a polling feed does not honour, each with why and what
/// to do instead: the alarms feeds' (`/whisk.system/alarms/alarm|interval|once`, action/
/// alarmWebAction.js) and `maxTriggers`, which the Cloudant changes feed shares. CREATE and
/// UPDATE refuse them by name ([`refuse_unsupported`]): accepted and ignored, they would look
/// in effect to a user coming from those feeds.
const UNSUPPORTED_PARAMS: [(&str, &str); 10] = [
    (
        "maxTriggers",
        "nothing: the Apache alarms and Cloudant feeds stop firing after that many fires and disable the trigger; this feed fires every change until you PAUSE or DELETE the trigger",
    ),
    ("timezone", "nothing: cron is read in UTC (write the expression in UTC)"),
    ("startDate", "nothing: polling starts at CREATE (create the trigger when it should start)"),
    ("stopDate", "nothing: polling runs until you PAUSE or DELETE the trigger"),
    ("minutes", "nothing: the polling interval is 'interval' (minutes)"),
    ("trigger_payload", "nothing: each fire's payload is the event itself"),
    ("strict", "nothing: the helper alarm fires as the alarms provider's default"),
    ("date", "nothing: a feed polls on a schedule ('interval' or 'cron'), not once"),
    ("deleteAfterFire", "nothing: a feed polls on a schedule ('interval' or 'cron'), not once"),
    ("fireOnce", "nothing: a feed polls on a schedule ('interval' or 'cron'), not once"),
];

/// Refuses any of [`UNSUPPORTED_PARAMS`], naming it (CREATE and UPDATE only: a stored config
/// of an older feed that has one still polls; its next UPDATE asks to remove it).
pub fn refuse_unsupported(params: &Params) -> Result<(), ParamError> {
    match UNSUPPORTED_PARAMS.iter().find(|(name, _)| params.raw(name).is_some_and(|v| !v.is_null())) {
        Some((name, why)) => Err(ParamError {
            name: name.to_string(),
            expected: format!("{why} (remove it; on UPDATE: -p {name} null)"),
            got: None,
        }),
        None => Ok(()),
    }
}

/// Longest accepted interval: one week (the alarms feed itself has no upper bound).
const MAX_INTERVAL_MINUTES: u64 = 7 * 24 * 60;

/// How often the feed polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Every N minutes (`/whisk.system/alarms/interval`).
    Interval(u64),
    /// On a cron expression (`/whisk.system/alarms/alarm`), 5 fields or 6 with seconds `0`,
    /// exactly as the user wrote it.
    Cron(String),
}

impl Schedule {
    /// Reads `interval` (minutes, default `default_minutes`) or `cron`; both at once is an error.
    pub fn from_params(params: &Params, default_minutes: u64) -> Result<Schedule, ParamError> {
        let interval = params.u64_in("interval", 1, MAX_INTERVAL_MINUTES)?;
        let cron = params.str("cron")?;
        match (interval, cron) {
            (Some(_), Some(_)) => Err(ParamError {
                name: "cron".to_string(),
                expected: "either 'interval' or 'cron', not both".to_string(),
                got: None,
            }),
            (Some(minutes), None) => Ok(Schedule::Interval(minutes)),
            (None, Some(expr)) => Ok(Schedule::Cron(validate_cron(&expr)?)),
            (None, None) => Ok(Schedule::Interval(default_minutes)),
        }
    }

    /// The alarms feed action (relative to the alarms package) that implements this schedule.
    pub fn alarm_feed(&self) -> &'static str {
        match self {
            Schedule::Interval(_) => "interval",
            Schedule::Cron(_) => "alarm",
        }
    }

    /// The alarms feed parameters for this schedule (`minutes` or `cron`).
    pub fn alarm_params(&self) -> Value {
        match self {
            Schedule::Interval(minutes) => json!({ "minutes": minutes }),
            Schedule::Cron(expr) => json!({ "cron": expr }),
        }
    }

    /// The schedule as stored config (`{"interval": 5}` or `{"cron": "*/5 * * * *"}`).
    pub fn to_params(&self) -> Value {
        match self {
            Schedule::Interval(minutes) => json!({ "interval": minutes }),
            Schedule::Cron(expr) => json!({ "cron": expr }),
        }
    }

    /// Which minute of its interval a trigger keyed `key` polls in (`0..interval`): spreads the
    /// triggers of one interval over its minutes. Cron schedules have none.
    pub fn phase(&self, key: &str) -> u64 {
        match self {
            Schedule::Interval(minutes) if *minutes > 1 => stable_hash(key) % minutes,
            _ => 0,
        }
    }

    /// True when the scheduler polls in any minute of `first..=last`.
    pub fn due_between(&self, first: u64, last: u64, phase: u64) -> bool {
        match self {
            Schedule::Interval(n) => {
                // The first due minute at or after `first`.
                let next = first + (phase % n + n - first % n) % n;
                next <= last
            }
            Schedule::Cron(expr) => {
                let Ok(pattern) = Pattern::parse(expr) else { return false };
                let start = (first * 60_000) as i64;
                pattern.next_after(start - 1_000).is_some_and(|t| t < ((last + 1) * 60_000) as i64)
            }
        }
    }

    /// When the scheduler next polls after `now_ms`: the start of the next due minute (the
    /// scheduler's alarm fires at the start of every minute).
    pub fn next_due(&self, now_ms: u64, phase: u64) -> Option<u64> {
        match self {
            Schedule::Interval(n) => {
                let first = now_ms / 60_000 + 1;
                Some((first + (phase % n + n - first % n) % n) * 60_000)
            }
            Schedule::Cron(expr) => {
                let after = i64::try_from(now_ms).ok()?;
                Pattern::parse(expr).ok()?.next_after(after).and_then(|t| u64::try_from(t).ok())
            }
        }
    }

    /// When the alarm next fires after a poll that started at `last_ms`, as the alarms provider
    /// computes it (UTC); a cron schedule counts from `now_ms` if that is later.
    pub fn next_poll(&self, last_ms: u64, now_ms: u64) -> Option<u64> {
        match self {
            Schedule::Interval(minutes) => Some(last_ms + minutes * 60_000),
            Schedule::Cron(expr) => {
                let after = i64::try_from(last_ms.max(now_ms)).ok()?;
                Pattern::parse(expr).ok()?.next_after(after).and_then(|t| u64::try_from(t).ok())
            }
        }
    }
}

/// FNV-1a: a hash that is the same in every build and process (phases, tick order).
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Checks a cron expression as the alarms provider would run it, and keeps it as written.
fn validate_cron(expr: &str) -> Result<String, ParamError> {
    let invalid = |expected: String| ParamError::invalid("cron", &expected, &Value::String(expr.to_string()));
    Pattern::parse(expr).map_err(|e| invalid(e.to_string()))?;
    // Installs with `limitCronFields` reject a seconds field other than 0; polling more than
    // once a minute would also spend the namespace's fire quota (60 a minute by default).
    if has_seconds_granularity(expr) {
        return Err(invalid("a seconds field of 0 (one minute is the finest schedule)".to_string()));
    }
    Ok(expr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Apache feeds' parameters this feed does not honour are refused by name, never
    /// accepted and ignored. maxTriggers: the Cloudant provider counts fires down and disables
    /// the trigger at 0 (apache/openwhisk-package-cloudant provider/lib/utils.js:120-133,
    /// 85, 231-236), as the alarms provider does (apache/openwhisk-package-alarms
    /// action/alarmWebAction.js:51, provider/lib/utils.js:107); timezone, startDate, stopDate,
    /// strict, minutes, trigger_payload, date, deleteAfterFire, fireOnce: alarmWebAction.js
    /// 45-124.
    #[test]
    fn the_apache_feeds_parameters_this_feed_does_not_honour_are_refused_by_name() {
        for (name, _) in UNSUPPORTED_PARAMS {
            let params = Params::from_value(json!({ name: 2, "interval": 5 })).unwrap();
            let err = refuse_unsupported(&params).unwrap_err();
            assert_eq!(err.name, name);
            assert!(err.to_string().contains(&format!("-p {name} null")), "{err}");
        }
        let err = refuse_unsupported(&Params::from_value(json!({"maxTriggers": 2})).unwrap()).unwrap_err();
        assert!(err.to_string().contains("fires every change"), "{err}");
        // Removed on UPDATE (null), or absent: accepted.
        assert!(
            refuse_unsupported(&Params::from_value(json!({"maxTriggers": null, "cron": "0 * * * *"})).unwrap()).is_ok()
        );
    }

    #[track_caller]
    fn check(params: Value, expected: Result<Schedule, &str>) {
        let got = Schedule::from_params(&Params::from_value(params).unwrap(), 1);
        match (got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e),
            (Err(g), Err(e)) => assert!(g.to_string().contains(e), "error {g:?} does not contain {e:?}"),
            (g, e) => panic!("got {g:?}, expected {e:?}"),
        }
    }

    #[test]
    fn schedules() {
        check(json!({}), Ok(Schedule::Interval(1)));
        check(json!({"interval": 5}), Ok(Schedule::Interval(5)));
        check(json!({"interval": "15"}), Ok(Schedule::Interval(15)));
        check(json!({"interval": 0}), Err("parameter 'interval': expected an integer from 1 to 10080, got 0"));
        check(json!({"interval": "soon"}), Err("parameter 'interval'"));
        check(json!({"interval": 99999}), Err("parameter 'interval'"));
        check(json!({"cron": "*/5 * * * *"}), Ok(Schedule::Cron("*/5 * * * *".into())));
        // Sent unchanged: the alarms provider trims and splits it itself.
        check(json!({"cron": " 0  12 * * MON-FRI "}), Ok(Schedule::Cron(" 0  12 * * MON-FRI ".into())));
        check(json!({"cron": "0 */5 * * * *"}), Ok(Schedule::Cron("0 */5 * * * *".into())));
        check(json!({"cron": "30 */5 * * * *"}), Err("parameter 'cron': expected a seconds field of 0"));
        check(json!({"cron": "61 * * * *"}), Err("parameter 'cron': expected minute values from 0 to 59, not '61'"));
        check(json!({"cron": "* * *"}), Err("parameter 'cron': expected 5 fields"));
        check(json!({"cron": "every day"}), Err("parameter 'cron': expected numbers or the names"));
        check(json!({"cron": "* * * * *", "interval": 2}), Err("not both"));
    }

    /// What apache/openwhisk-package-alarms accepts: its web action validates with node cron
    /// 1.7.0 (`action/alarmWebAction.js:99`) and its provider schedules with 1.8.2
    /// (`provider/lib/cronAlarm.js:47`), which rejects a day-of-week of 7 and a month of 12
    /// (kelektiv/node-cron v1.8.2 `lib/cron.js:51`, `:469-477`).
    #[test]
    fn cron_accepts_what_the_alarms_provider_runs() {
        for ok in ["0 9 * * 0", "* * * * 0-6", "0 9 * * 1-5", "0 9 * * sun", "0 0 1 jan *", "*/15 8-18 * * mon-fri"] {
            check(json!({ "cron": ok }), Ok(Schedule::Cron(ok.into())));
        }
        check(
            json!({"cron": "0 9 * * 7"}),
            Err("parameter 'cron': expected day-of-week values from 0 to 6 (Sunday is 0"),
        );
        check(json!({"cron": "0 0 1 12 *"}), Err("January is 0; names jan-dec avoid the trap), not '12', got"));
        check(json!({"cron": "*/0 * * * *"}), Err("parameter 'cron': expected a minute step of at least 1"));
        let e = Schedule::from_params(&Params::from_value(json!({"cron": "0 9 * * 7"})).unwrap(), 1).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    /// nextPoll with the provider's numbering: Sunday = 0, 1-5 = Monday to Friday.
    #[test]
    fn next_poll_follows_the_provider() {
        // Friday 2026-11-27 12:00 UTC.
        let friday = 1_795_780_800_000;
        let hour = 3_600_000;
        let next = |expr: &str| Schedule::Cron(expr.into()).next_poll(friday - hour, friday);
        assert_eq!(next("0 9 * * 0"), Some(friday + 2 * 24 * hour - 3 * hour));
        assert_eq!(next("0 9 * * 1-5"), Some(friday + 3 * 24 * hour - 3 * hour));
        assert_eq!(next("0 13 * * 1-5"), Some(friday + hour));
        assert_eq!(Schedule::Interval(5).next_poll(friday, friday + 1), Some(friday + 300_000));
    }

    #[test]
    fn the_scheduler_polls_an_interval_on_its_phase_and_a_cron_when_it_matches() {
        let five = Schedule::Interval(5);
        let phase = five.phase("/guest/t");
        assert!(phase < 5);
        assert_eq!(phase, five.phase("/guest/t"), "stable");
        let due: Vec<u64> = (100..120).filter(|m| five.due_between(*m, *m, phase)).collect();
        assert_eq!(due.len(), 4, "{due:?}");
        assert!(due.iter().all(|m| m % 5 == phase), "{due:?}");
        // Phases spread triggers over the interval's minutes.
        let phases: std::collections::BTreeSet<u64> = (0..200).map(|i| five.phase(&format!("/ns/t{i}"))).collect();
        assert_eq!(phases.len(), 5);
        assert!(Schedule::Interval(1).due_between(12345, 12345, Schedule::Interval(1).phase("x")));
        // A late tick covers the minutes it missed.
        assert!(five.due_between(101, 105, phase));
        assert!(!five.due_between(100, 103, 4));
        assert!(five.due_between(100, 104, 4));
        // nextPoll: the start of the next due minute.
        let now = 104 * 60_000 + 30_000;
        assert_eq!(five.next_due(now, 4), Some(109 * 60_000));
        assert_eq!(five.next_due(now, 0), Some(105 * 60_000));
        assert_eq!(Schedule::Interval(1).next_due(now, 0), Some(105 * 60_000));
        // Cron: 09:00 UTC on Sundays (2026-11-29 is a Sunday).
        let sunday_nine = 1_795_942_800_000u64;
        let cron = Schedule::Cron("0 9 * * 0".into());
        assert!(cron.due_between(sunday_nine / 60_000, sunday_nine / 60_000, 0));
        assert!(!cron.due_between(sunday_nine / 60_000 + 1, sunday_nine / 60_000 + 1, 0));
        assert!(!cron.due_between(sunday_nine / 60_000 - 1, sunday_nine / 60_000 - 1, 0));
        assert!(cron.due_between(sunday_nine / 60_000 - 10, sunday_nine / 60_000, 0));
        assert!(!cron.due_between(sunday_nine / 60_000 + 1, sunday_nine / 60_000 + 600, 0));
        assert_eq!(cron.next_due(sunday_nine - 5_000, 0), Some(sunday_nine));
    }
}
