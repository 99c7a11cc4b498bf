//! Release-health items read from their bytes: `session` (one session's update, from SDKs in
//! application mode: browsers, mobile apps, CLI tools) and `sessions` (a server SDK's counts
//! of the requests it saw, aggregated per minute). Each becomes counts in the hour its session
//! started, per release and environment ([`crate::store::health`]). Pure functions.

use serde::Deserialize;
use serde_json::Value;

use crate::store::health::{BucketKey, HealthBucket, id_hash};

/// Longest release Sentry accepts, in characters.
const MAX_RELEASE: usize = 200;
/// Longest environment kept, in characters.
const MAX_ENVIRONMENT: usize = 64;
/// Sessions that started longer ago than this are counted in the hour they arrived.
const MAX_AGE: f64 = 5.0 * 86_400.0;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid session: {0}")]
pub struct SessionError(String);

fn invalid(why: impl Into<String>) -> SessionError {
    SessionError(why.into())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Attrs {
    release: Option<String>,
    environment: Option<String>,
}

#[derive(Deserialize)]
struct Update {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    did: Option<Value>,
    #[serde(default)]
    init: bool,
    #[serde(default)]
    started: Option<Value>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    errors: Option<u64>,
    #[serde(default)]
    attrs: Attrs,
}

#[derive(Deserialize)]
struct Group {
    #[serde(default)]
    started: Option<Value>,
    #[serde(default)]
    did: Option<Value>,
    #[serde(default)]
    exited: u64,
    #[serde(default)]
    errored: u64,
    #[serde(default)]
    abnormal: u64,
    #[serde(default)]
    crashed: u64,
    #[serde(default)]
    unhandled: u64,
}

#[derive(Deserialize)]
struct Aggregates {
    aggregates: Vec<Group>,
    #[serde(default)]
    attrs: Attrs,
}

/// Where counts go: the release (checked as Sentry checks versions) and environment. `None`
/// when there is no release: such sessions say nothing about one and are not kept.
fn bucket_of(attrs: &Attrs) -> Result<Option<(String, String)>, SessionError> {
    let Some(release) = attrs
        .release
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    else {
        return Ok(None);
    };
    if release.chars().count() > MAX_RELEASE {
        return Err(invalid(format!(
            "attrs.release is longer than {MAX_RELEASE} characters"
        )));
    }
    if release
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
        || matches!(release, "." | ".." | "latest")
    {
        return Err(invalid("attrs.release is not a valid release name"));
    }
    let environment: String = attrs
        .environment
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .unwrap_or("production")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ENVIRONMENT)
        .collect();
    Ok(Some((release.to_string(), environment)))
}

/// The hour a session started in; a missing, unreadable, future or too old start counts in
/// the hour it arrived.
fn hour_of(started: Option<&Value>, received: f64) -> u64 {
    let at = match started {
        Some(Value::String(s)) => crate::time::parse_iso(s),
        Some(Value::Number(n)) => n.as_f64(),
        _ => None,
    };
    let at = at
        .filter(|t| *t <= received + 60.0 && *t >= received - MAX_AGE)
        .unwrap_or(received);
    (at / 3600.0) as u64
}

/// A distinct id (`did`) as text: SDKs send strings, some send numbers.
fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Counts of a `session` item; `None` when it names no release.
pub fn session(
    payload: &[u8],
    received: f64,
) -> Result<Option<(BucketKey, HealthBucket)>, SessionError> {
    let update: Update = serde_json::from_slice(payload).map_err(|e| invalid(e.to_string()))?;
    let Some((release, environment)) = bucket_of(&update.attrs)? else {
        return Ok(None);
    };
    let status = update.status.as_deref().unwrap_or("ok");
    if !matches!(
        status,
        "ok" | "exited" | "crashed" | "abnormal" | "errored" | "unhandled"
    ) {
        return Err(invalid(format!(
            "unknown status '{}'",
            status.chars().take(32).collect::<String>()
        )));
    }
    let mut counts = HealthBucket::default();
    let did = id_text(update.did.as_ref());
    if update.init {
        counts.sessions = 1;
        if let Some(did) = &did {
            counts.users.add(id_hash(did));
        }
    }
    let errored = update.errors.unwrap_or(0) > 0 || status != "ok" && status != "exited";
    if errored {
        match &update.sid {
            Some(sid) => counts.errored_sessions.add(id_hash(sid)),
            None => counts.errored += 1,
        }
    }
    let sid = update.sid.as_deref().map(id_hash);
    match (status, sid) {
        ("crashed", Some(sid)) => counts.crashed_sessions.add(sid),
        ("crashed", None) => counts.crashed = 1,
        ("abnormal", Some(sid)) => counts.abnormal_sessions.add(sid),
        ("abnormal", None) => counts.abnormal = 1,
        _ => {}
    }
    if status == "crashed"
        && let Some(did) = &did
    {
        counts.crashed_users.add(id_hash(did));
    }
    let key = BucketKey {
        release,
        environment,
        hour: hour_of(update.started.as_ref(), received),
    };
    Ok(Some((key, counts)))
}

/// Counts of a `sessions` item (aggregates); empty when it names no release.
pub fn aggregates(
    payload: &[u8],
    received: f64,
) -> Result<Vec<(BucketKey, HealthBucket)>, SessionError> {
    let agg: Aggregates = serde_json::from_slice(payload).map_err(|e| invalid(e.to_string()))?;
    let Some((release, environment)) = bucket_of(&agg.attrs)? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(BucketKey, HealthBucket)> = Vec::new();
    for g in agg.aggregates {
        let key = BucketKey {
            release: release.clone(),
            environment: environment.clone(),
            hour: hour_of(g.started.as_ref(), received),
        };
        let mut counts = HealthBucket {
            sessions: g
                .exited
                .saturating_add(g.errored)
                .saturating_add(g.abnormal)
                .saturating_add(g.crashed)
                .saturating_add(g.unhandled),
            crashed: g.crashed,
            abnormal: g.abnormal,
            errored: g
                .errored
                .saturating_add(g.abnormal)
                .saturating_add(g.crashed)
                .saturating_add(g.unhandled),
            ..Default::default()
        };
        if let Some(did) = id_text(g.did.as_ref()) {
            counts.users.add(id_hash(&did));
            if g.crashed > 0 {
                counts.crashed_users.add(id_hash(&did));
            }
        }
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, into)) => into.merge(&counts),
            None => out.push((key, counts)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_780_000_000.0;

    #[test]
    fn a_session_counts_once_and_its_crash_once() {
        let started = crate::time::rfc3339(NOW - 10.0);
        let init = format!(
            r#"{{"sid":"s1","did":"u1","init":true,"started":"{started}","status":"ok","errors":0,"attrs":{{"release":"app@1","environment":"prod"}}}}"#
        );
        let (key, counts) = session(init.as_bytes(), NOW).unwrap().unwrap();
        assert_eq!(
            (key.release.as_str(), key.environment.as_str()),
            ("app@1", "prod")
        );
        assert_eq!(key.hour, ((NOW - 10.0) / 3600.0) as u64);
        assert_eq!((counts.sessions, counts.users.count()), (1, 1));
        let crash = init
            .replace(r#""init":true"#, r#""init":false"#)
            .replace(r#""status":"ok""#, r#""status":"crashed""#);
        let (_, counts) = session(crash.as_bytes(), NOW).unwrap().unwrap();
        assert_eq!((counts.sessions, counts.crashed_sessions.count()), (0, 1));
        assert_eq!(
            (
                counts.crashed_users.count(),
                counts.errored_sessions.count()
            ),
            (1, 1)
        );
    }

    #[test]
    fn releases_are_checked_and_missing_ones_skipped() {
        let long = format!(
            r#"{{"init":true,"attrs":{{"release":"{}"}}}}"#,
            "r".repeat(10_000)
        );
        let err = session(long.as_bytes(), NOW).unwrap_err();
        assert!(err.to_string().contains("attrs.release"), "{err}");
        assert!(
            session(br#"{"init":true,"attrs":{}}"#, NOW)
                .unwrap()
                .is_none()
        );
        assert!(
            session(
                br#"{"init":true,"status":"weird","attrs":{"release":"a"}}"#,
                NOW
            )
            .is_err()
        );
        assert!(session(b"nope", NOW).is_err());
    }

    #[test]
    fn aggregates_sum_per_hour() {
        let got = aggregates(
            br#"{"aggregates":[{"started":"2026-06-01T10:01:00Z","exited":5,"errored":2,"crashed":1},{"started":"2026-06-01T10:30:00Z","did":"u","exited":1}],"attrs":{"release":"api@2"}}"#,
            crate::time::parse_iso("2026-06-01T12:00:00Z").unwrap(),
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        let (key, b) = &got[0];
        assert_eq!(key.environment, "production");
        assert_eq!(
            (b.sessions, b.crashed, b.errored, b.users.count()),
            (9, 1, 3, 1)
        );
    }
}
