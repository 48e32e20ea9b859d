//! When a polling feed polls: an interval in minutes or a cron expression, validated before
//! anything is created, and turned into the `/whisk.system/alarms` feed that drives it.
//!
//! This module only validates and describes; creating the alarm is `polling`'s job.

use std::str::FromStr;

use serde_json::{json, Value};

use crate::params::{ParamError, Params};

/// Longest accepted interval: one week (the alarms feed itself has no upper bound).
pub const MAX_INTERVAL_MINUTES: u64 = 7 * 24 * 60;

/// How often the feed polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Every N minutes (`/whisk.system/alarms/interval`).
    Interval(u64),
    /// On a cron expression (`/whisk.system/alarms/alarm`), 5 fields or 6 with seconds.
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

    /// A rough period in milliseconds, for READ's "next poll" estimate (`None` for cron).
    pub fn period_ms(&self) -> Option<u64> {
        match self {
            Schedule::Interval(minutes) => Some(minutes * 60_000),
            Schedule::Cron(_) => None,
        }
    }
}

/// Checks a 5-field (or 6-field, with seconds) cron expression and returns it trimmed.
fn validate_cron(expr: &str) -> Result<String, ParamError> {
    let expected = "a cron expression of 5 fields (minute hour day-of-month month day-of-week), \
                    or 6 with seconds first";
    let trimmed = expr.split_whitespace().collect::<Vec<_>>().join(" ");
    let fields = trimmed.split(' ').filter(|f| !f.is_empty()).count();
    // The cron crate wants seconds (and an optional year); the alarms feed takes 5 fields.
    let with_seconds = match fields {
        5 => format!("0 {trimmed}"),
        6 => trimmed.clone(),
        _ => return Err(ParamError::invalid("cron", expected, &Value::String(expr.to_string()))),
    };
    match cron::Schedule::from_str(&with_seconds) {
        Ok(_) => Ok(trimmed),
        Err(e) => Err(ParamError {
            name: "cron".to_string(),
            expected: format!("{expected} ({e})"),
            got: Some(Value::String(expr.to_string()).to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        check(json!({"cron": " 0  12 * * MON-FRI "}), Ok(Schedule::Cron("0 12 * * MON-FRI".into())));
        check(json!({"cron": "30 */5 * * * *"}), Ok(Schedule::Cron("30 */5 * * * *".into())));
        check(json!({"cron": "61 * * * *"}), Err("parameter 'cron'"));
        check(json!({"cron": "* * *"}), Err("parameter 'cron'"));
        check(json!({"cron": "every day"}), Err("parameter 'cron'"));
        check(json!({"cron": "* * * * *", "interval": 2}), Err("not both"));
    }
}
