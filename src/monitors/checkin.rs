//! Check-ins read from their bytes: the `check_in` envelope item the SDKs send
//! (`sentry_sdk.monitor`, `capture_checkin`, `Sentry.captureCheckIn`, `withMonitor`) and the
//! query of Sentry's HTTP check-in for shell scripts
//! (`/api/{project}/cron/{slug}/{key}/?status=…`). Everything is checked here, so a check-in
//! that reaches a monitor is valid; the error names the field. Pure functions.

use serde::Deserialize;
use serde_json::Value;

use super::schedule::{self, Schedule};

/// Longest monitor slug, in characters.
const MAX_SLUG: usize = 128;
/// Longest environment kept, in characters.
const MAX_ENVIRONMENT: usize = 64;
/// Longest check-in duration accepted, in seconds (a year).
const MAX_DURATION: f64 = 366.0 * 86_400.0;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid check-in: {0}")]
pub struct CheckInError(pub String);

fn invalid(why: impl Into<String>) -> CheckInError {
    CheckInError(why.into())
}

/// What a check-in says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    InProgress,
    Ok,
    Error,
}

/// How a monitor is set up, as `monitor_config` says (minutes for margins and runtimes).
#[derive(serde::Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct MonitorConfig {
    pub schedule: Schedule,
    /// Minutes a check-in may come after its expected time before it counts as missed.
    pub checkin_margin: u32,
    /// Minutes an in-progress check-in may run before it counts as timed out.
    pub max_runtime: u32,
    /// IANA time zone the crontab is read in.
    pub timezone: String,
    /// Failed check-ins in a row that open the monitor's issue.
    pub failure_issue_threshold: u32,
    /// Successful check-ins in a row that resolve it.
    pub recovery_threshold: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            schedule: Schedule::Interval {
                value: 1,
                unit: schedule::Unit::Day,
            },
            checkin_margin: 1,
            max_runtime: 30,
            timezone: "UTC".into(),
            failure_issue_threshold: 1,
            recovery_threshold: 1,
        }
    }
}

/// One check-in, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckIn {
    /// 32 hex digits; generated when the client sent none.
    pub id: String,
    pub slug: String,
    pub status: Reported,
    /// Seconds the job ran, when the client says.
    pub duration: Option<f64>,
    pub environment: Option<String>,
    /// The monitor's setup: creates the monitor, or updates it.
    pub config: Option<MonitorConfig>,
}

/// A monitor slug as Sentry makes them: lowercase letters, digits, `-` and `_`.
pub fn slug(text: &str) -> Result<String, CheckInError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("monitor_slug is missing"));
    }
    if text.chars().count() > MAX_SLUG {
        return Err(invalid(format!(
            "monitor_slug is longer than {MAX_SLUG} characters"
        )));
    }
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        return Err(invalid("monitor_slug has no letters or digits"));
    }
    Ok(out)
}

fn status(text: &str) -> Result<Reported, CheckInError> {
    match text {
        "in_progress" => Ok(Reported::InProgress),
        "ok" => Ok(Reported::Ok),
        "error" => Ok(Reported::Error),
        other => Err(invalid(format!(
            "status '{}' is not in_progress, ok or error",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

fn check_in_id(text: Option<&str>) -> Result<String, CheckInError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(crate::ids::hex(&crate::ids::random_bytes())),
        Some(t) => {
            let hex: String = t.chars().filter(|c| *c != '-').collect();
            if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(hex.to_ascii_lowercase())
            } else {
                Err(invalid("check_in_id is not a UUID"))
            }
        }
    }
}

fn duration(v: Option<f64>) -> Result<Option<f64>, CheckInError> {
    match v {
        Some(d) if !(0.0..=MAX_DURATION).contains(&d) => {
            Err(invalid("duration is negative or longer than a year"))
        }
        other => Ok(other),
    }
}

fn environment(text: Option<&str>) -> Option<String> {
    text.map(str::trim).filter(|e| !e.is_empty()).map(|e| {
        e.chars()
            .filter(|c| !c.is_control())
            .take(MAX_ENVIRONMENT)
            .collect()
    })
}

/// Reads `monitor_config`; the error names the field.
pub fn config(v: &Value) -> Result<MonitorConfig, CheckInError> {
    let field = |name: &str| v.get(name).filter(|x| !x.is_null());
    let minutes = |name: &str, default: u32, min: u64| -> Result<u32, CheckInError> {
        match field(name) {
            None => Ok(default),
            Some(x) => x
                .as_u64()
                .filter(|n| (min..=525_600).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| {
                    invalid(format!(
                        "monitor_config.{name} must be a whole number from {min} to 525600"
                    ))
                }),
        }
    };
    let schedule = field("schedule")
        .ok_or_else(|| invalid("monitor_config.schedule is missing"))
        .and_then(|s| {
            Schedule::parse(s).map_err(|e| invalid(format!("monitor_config.schedule: {e}")))
        })?;
    let timezone = match field("timezone") {
        None => "UTC".to_string(),
        Some(Value::String(tz)) => {
            schedule::time_zone(tz)
                .map_err(|e| invalid(format!("monitor_config.timezone: {e}")))?;
            tz.trim().to_string()
        }
        Some(_) => return Err(invalid("monitor_config.timezone must be a string")),
    };
    let defaults = MonitorConfig::default();
    Ok(MonitorConfig {
        schedule,
        checkin_margin: minutes("checkin_margin", defaults.checkin_margin, 0)?,
        max_runtime: minutes("max_runtime", defaults.max_runtime, 1)?,
        timezone,
        failure_issue_threshold: minutes("failure_issue_threshold", 1, 1)?,
        recovery_threshold: minutes("recovery_threshold", 1, 1)?,
    })
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    check_in_id: Option<String>,
    #[serde(default)]
    monitor_slug: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    monitor_config: Option<Value>,
}

/// Reads a `check_in` envelope item.
pub fn from_item(payload: &[u8]) -> Result<CheckIn, CheckInError> {
    let item: Item = serde_json::from_slice(payload).map_err(|e| invalid(e.to_string()))?;
    Ok(CheckIn {
        id: check_in_id(item.check_in_id.as_deref())?,
        slug: slug(item.monitor_slug.as_deref().unwrap_or(""))?,
        status: status(item.status.as_deref().unwrap_or(""))?,
        duration: duration(item.duration)?,
        environment: environment(item.environment.as_deref()),
        config: match item.monitor_config.filter(|c| !c.is_null()) {
            Some(c) => Some(config(&c)?),
            None => None,
        },
    })
}

/// Reads the HTTP check-in: the slug from the path and `status` (required), `check_in_id`,
/// `duration` (seconds) and `environment` from the query.
pub fn from_query(slug_text: &str, query: &str) -> Result<CheckIn, CheckInError> {
    let mut fields = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        fields
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let get = |k: &str| fields.get(k).map(String::as_str);
    let duration_value = match get("duration") {
        None => None,
        Some(d) => Some(
            d.trim()
                .parse::<f64>()
                .map_err(|_| invalid("duration is not a number of seconds"))?,
        ),
    };
    Ok(CheckIn {
        id: check_in_id(get("check_in_id"))?,
        slug: slug(slug_text)?,
        status: status(get("status").ok_or_else(|| invalid("status is missing"))?)?,
        duration: duration(duration_value)?,
        environment: environment(get("environment")),
        config: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_sdk_check_in_is_read() {
        let c = from_item(br#"{"check_in_id":"7b2c1a0e-6f9e-4c9a-a1b2-0123456789ab","monitor_slug":"Nightly Backup","status":"in_progress","environment":"production","monitor_config":{"schedule":{"type":"crontab","value":"0 2 * * *"},"timezone":"Europe/Vienna","checkin_margin":5,"max_runtime":60,"failure_issue_threshold":2,"recovery_threshold":3}}"#).unwrap();
        assert_eq!(c.slug, "nightly-backup");
        assert_eq!(c.id, "7b2c1a0e6f9e4c9aa1b20123456789ab");
        assert_eq!(c.status, Reported::InProgress);
        let config = c.config.unwrap();
        assert_eq!((config.checkin_margin, config.max_runtime), (5, 60));
        assert_eq!(
            (config.failure_issue_threshold, config.recovery_threshold),
            (2, 3)
        );
        assert_eq!(config.timezone, "Europe/Vienna");
    }

    #[test]
    fn bad_check_ins_name_their_field() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"monitor_slug":"a","status":"done"}"#, "status"),
            (br#"{"status":"ok"}"#, "monitor_slug"),
            (br#"{"monitor_slug":"a","status":"ok","check_in_id":"x"}"#, "check_in_id"),
            (br#"{"monitor_slug":"a","status":"ok","duration":-1}"#, "duration"),
            (br#"{"monitor_slug":"a","status":"ok","monitor_config":{"schedule":{"type":"crontab","value":"99 * * * *"}}}"#, "monitor_config.schedule"),
            (br#"{"monitor_slug":"a","status":"ok","monitor_config":{"schedule":{"type":"crontab","value":"* * * * *"},"timezone":"Nowhere/Land"}}"#, "monitor_config.timezone"),
            (br#"{"monitor_slug":"a","status":"ok","monitor_config":{"schedule":{"type":"crontab","value":"* * * * *"},"max_runtime":0}}"#, "monitor_config.max_runtime"),
            (br#"{"monitor_slug":"a","status":"ok","monitor_config":{}}"#, "monitor_config.schedule"),
        ];
        for (body, field) in cases {
            let err = from_item(body).unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn http_check_ins() {
        let c = from_query("db-dump", "status=ok&duration=12.5&environment=prod").unwrap();
        assert_eq!((c.status, c.duration), (Reported::Ok, Some(12.5)));
        assert_eq!(c.id.len(), 32);
        assert!(from_query("db-dump", "").is_err());
        assert!(from_query("db-dump", "status=finished").is_err());
    }
}
