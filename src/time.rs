//! Wall-clock helpers shared by every layer: "now" as Unix seconds, and the RFC 3339 form
//! picket prints in listings and parses from event payloads.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Seconds since the Unix epoch, with sub-second precision.
pub fn now() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs_f64()
}

/// `2026-11-25T12:00:00.123Z` for a Unix timestamp (millisecond precision, always UTC).
pub fn rfc3339(ts: f64) -> String {
    let millis = (ts * 1000.0).round() as i64;
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses the timestamp strings SDKs send: RFC 3339 with `Z` or an offset, and the
/// timezone-less ISO 8601 forms (taken as UTC), with or without a fraction.
pub fn parse_iso(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(to_secs(dt.with_timezone(&Utc)));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(to_secs(naive.and_utc()));
        }
    }
    None
}

fn to_secs(dt: DateTime<Utc>) -> f64 {
    dt.timestamp() as f64 + f64::from(dt.timestamp_subsec_nanos()) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_forms_are_equivalent() {
        let want = 1_304_358_096.0;
        for s in [
            "2011-05-02T17:41:36Z",
            "2011-05-02T17:41:36",
            "2011-05-02T17:41:36.000",
            "2011-05-02T19:41:36+02:00",
        ] {
            assert_eq!(parse_iso(s), Some(want), "{s}");
        }
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(rfc3339(want), "2011-05-02T17:41:36.000Z");
    }
}
