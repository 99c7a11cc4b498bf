//! The query parameters of the Web API, parsed: time windows (`statsPeriod`, `start`/`end`),
//! sort names, cursors and page sizes (the issue search syntax is `manage::search`'s). Pure
//! functions over the request's text, so they can be fuzzed.

use crate::manage::issues::IssueSort;

/// Why a parameter was refused; the message names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadParameter(pub String);

/// `24h`, `14d`, `90m`, `2w`, `30s` as seconds.
pub fn period(text: &str) -> Result<f64, BadParameter> {
    crate::manage::search::duration(text).ok_or_else(|| {
        BadParameter(format!(
            "statsPeriod: '{text}' is not a period (try 24h, 14d, 90d)"
        ))
    })
}

/// Sentry's sort names, and the ones GitLab sends.
pub fn sort(text: &str) -> Result<IssueSort, BadParameter> {
    Ok(match text {
        "" | "date" | "last_seen" | "lastSeen" => IssueSort::LastSeen,
        "new" | "first_seen" | "firstSeen" => IssueSort::FirstSeen,
        "freq" | "frequency" | "priority" | "trends" => IssueSort::Frequency,
        "user" | "users" => IssueSort::Users,
        other => {
            return Err(BadParameter(format!(
                "sort: '{other}' is not a sort (date, new, freq or user)"
            )));
        }
    })
}

/// The offset a cursor (`value:offset:is_prev`, as Sentry writes them) stands for.
pub fn cursor(text: &str) -> Result<usize, BadParameter> {
    let bad = || BadParameter(format!("cursor: '{text}' is not a cursor"));
    let mut parts = text.split(':');
    let (_, offset, _) = (parts.next(), parts.next(), parts.next());
    if parts.next().is_some() {
        return Err(bad());
    }
    match offset {
        Some(o) => o.parse().map_err(|_| bad()),
        None => Ok(0),
    }
}

/// A page size between 1 and `max`, `default` when not given.
pub fn limit(text: Option<&str>, default: usize, max: usize) -> Result<usize, BadParameter> {
    match text {
        None | Some("") => Ok(default),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(BadParameter(format!(
                "limit: '{t}' is not a number from 1 to {max}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_sorts_cursors_limits() {
        assert_eq!(period("24h").unwrap(), 86_400.0);
        assert_eq!(period("14d").unwrap(), 14.0 * 86_400.0);
        assert!(period("forever").is_err() && period("5y").is_err() && period("h").is_err());
        assert_eq!(sort("freq").unwrap(), IssueSort::Frequency);
        assert!(sort("random").is_err());
        assert_eq!(cursor("0:100:0").unwrap(), 100);
        assert!(cursor("x:y:z").is_err());
        assert_eq!(limit(None, 25, 100).unwrap(), 25);
        assert_eq!(limit(Some("500"), 25, 100).unwrap(), 100);
        assert!(limit(Some("0"), 25, 100).is_err());
    }
}
