//! Cron monitor schedules as the SDKs send them in `monitor_config`: a crontab (five fields,
//! or an alias such as `@daily`) evaluated in the monitor's time zone, so `0 2 * * *` in
//! `Europe/Vienna` stays 02:00 local across daylight-saving changes, or an interval (`every 10
//! minutes`). Parsing checks everything once; the next expected time is then a pure function.

use std::str::FromStr;

use chrono::{DateTime, Months, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

/// An interval's unit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// When a monitored job is expected to run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Schedule {
    Crontab { value: String },
    Interval { value: u32, unit: Unit },
}

/// Longest crontab accepted.
const MAX_CRONTAB: usize = 256;

impl Schedule {
    /// Reads a schedule as `monitor_config.schedule` carries it; the error names what is wrong.
    pub fn parse(v: &serde_json::Value) -> Result<Schedule, String> {
        let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let value = v.get("value");
        match kind {
            "crontab" => {
                let text = value
                    .and_then(|v| v.as_str())
                    .ok_or("a crontab schedule needs a string value")?
                    .trim();
                if text.len() > MAX_CRONTAB {
                    return Err(format!("a crontab is at most {MAX_CRONTAB} characters"));
                }
                cron(text)?;
                Ok(Schedule::Crontab {
                    value: text.to_string(),
                })
            }
            "interval" => {
                let n = value
                    .and_then(|v| v.as_u64())
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or("an interval needs a whole value from 1 to 100000")?;
                let unit = v.get("unit").and_then(|u| u.as_str()).unwrap_or("");
                let unit = match unit {
                    "minute" => Unit::Minute,
                    "hour" => Unit::Hour,
                    "day" => Unit::Day,
                    "week" => Unit::Week,
                    "month" => Unit::Month,
                    "year" => Unit::Year,
                    _ => {
                        return Err(format!(
                            "unknown interval unit '{}' (minute, hour, day, week, month or year)",
                            unit.chars().take(20).collect::<String>()
                        ));
                    }
                };
                Ok(Schedule::Interval {
                    value: n as u32,
                    unit,
                })
            }
            _ => Err("type must be crontab or interval".into()),
        }
    }

    /// The first expected run strictly after `after` (Unix seconds), in `tz`.
    pub fn next_after(&self, after: f64, tz: Tz) -> Option<f64> {
        let at = tz.from_utc_datetime(
            &DateTime::<Utc>::from_timestamp(after.floor() as i64, 0)?.naive_utc(),
        );
        match self {
            Schedule::Crontab { value } => {
                let next = cron(value).ok()?.find_next_occurrence(&at, false).ok()?;
                Some(next.timestamp() as f64)
            }
            Schedule::Interval { value, unit } => {
                let n = u64::from(*value);
                let seconds = match unit {
                    Unit::Minute => 60 * n,
                    Unit::Hour => 3_600 * n,
                    Unit::Day => 86_400 * n,
                    Unit::Week => 7 * 86_400 * n,
                    Unit::Month => {
                        let next = at.checked_add_months(Months::new(*value))?;
                        return Some(next.timestamp() as f64);
                    }
                    Unit::Year => {
                        let next = at.checked_add_months(Months::new(value.checked_mul(12)?))?;
                        return Some(next.timestamp() as f64);
                    }
                };
                Some(after.floor() + seconds as f64)
            }
        }
    }

    /// How it reads: `0 2 * * *` or `every 10 minutes`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Crontab { value } => value.clone(),
            Schedule::Interval { value, unit } => {
                let unit = format!("{unit:?}").to_lowercase();
                if *value == 1 {
                    format!("every {unit}")
                } else {
                    format!("every {value} {unit}s")
                }
            }
        }
    }
}

/// A standard five-field crontab (no seconds or years), or an `@` alias.
fn cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| {
            format!(
                "invalid crontab '{}': {e}",
                text.chars().take(64).collect::<String>()
            )
        })
}

/// A time zone by its IANA name (`Europe/Vienna`, `UTC`).
pub fn time_zone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name.trim()).map_err(|_| {
        format!(
            "unknown time zone '{}' (an IANA name such as Europe/Vienna)",
            name.chars().take(64).collect::<String>()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> f64 {
        crate::time::parse_iso(text).unwrap()
    }

    #[test]
    fn crontabs_keep_local_time_across_daylight_saving() {
        let s = Schedule::parse(&json!({"type": "crontab", "value": "0 2 * * *"})).unwrap();
        let vienna = time_zone("Europe/Vienna").unwrap();
        // Winter: 02:00 CET is 01:00 UTC.
        assert_eq!(
            s.next_after(at("2026-03-27T12:00:00Z"), vienna),
            Some(at("2026-03-28T01:00:00Z"))
        );
        // 2026-03-29 has no 02:00 in Vienna (clocks jump 02:00 → 03:00); the next day's run
        // is 02:00 CEST, 00:00 UTC.
        let next = s.next_after(at("2026-03-28T12:00:00Z"), vienna).unwrap();
        assert!(
            next >= at("2026-03-29T00:00:00Z") && next <= at("2026-03-30T00:00:00Z"),
            "{}",
            crate::time::rfc3339(next)
        );
        assert_eq!(
            s.next_after(at("2026-03-29T12:00:00Z"), vienna),
            Some(at("2026-03-30T00:00:00Z"))
        );
        let utc = time_zone("UTC").unwrap();
        let every5 = Schedule::parse(&json!({"type": "crontab", "value": "*/5 * * * *"})).unwrap();
        assert_eq!(
            every5.next_after(at("2026-01-01T00:02:00Z"), utc),
            Some(at("2026-01-01T00:05:00Z"))
        );
        let daily = Schedule::parse(&json!({"type": "crontab", "value": "@daily"})).unwrap();
        assert_eq!(
            daily.next_after(at("2026-01-01T00:02:00Z"), utc),
            Some(at("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn intervals_and_bad_schedules() {
        let utc = time_zone("UTC").unwrap();
        let s =
            Schedule::parse(&json!({"type": "interval", "value": 10, "unit": "minute"})).unwrap();
        assert_eq!(s.next_after(100.0, utc), Some(700.0));
        assert_eq!(s.describe(), "every 10 minutes");
        let m = Schedule::parse(&json!({"type": "interval", "value": 1, "unit": "month"})).unwrap();
        assert_eq!(
            m.next_after(at("2026-01-31T00:00:00Z"), utc),
            Some(at("2026-02-28T00:00:00Z"))
        );
        for bad in [
            json!({"type": "crontab", "value": "61 * * * *"}),
            json!({"type": "crontab", "value": "* * *"}),
            json!({"type": "crontab", "value": "0 0 * * * *"}),
            json!({"type": "interval", "value": 0, "unit": "minute"}),
            json!({"type": "interval", "value": 5, "unit": "fortnight"}),
            json!({"type": "weekly"}),
        ] {
            assert!(Schedule::parse(&bad).is_err(), "{bad}");
        }
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(time_zone("America/New_York").is_ok());
    }
}
