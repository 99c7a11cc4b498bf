//! The query parameters of the Web API, parsed: Sentry's issue search syntax (`is:unresolved
//! level:error release:"1.0 beta" free text`), time windows (`statsPeriod`, `start`/`end`),
//! sort names and cursors. Pure functions over the request's text, so they can be fuzzed.

use crate::manage::issues::IssueSort;
use crate::store::issues::Status;

/// What an issue search asks for, before projects are resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    pub status: Option<Status>,
    pub level: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub text: Option<String>,
}

/// Why a parameter was refused; the message names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadParameter(pub String);

/// Splits a search into tokens: words, `key:value` pairs, values in double quotes (an
/// unclosed quote runs to the end). Blank tokens are dropped.
fn tokens(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut end = |current: &mut String| {
        let token = std::mem::take(current);
        if !token.trim().is_empty() {
            out.push(token);
        }
    };
    for c in query.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => end(&mut current),
            c => current.push(c),
        }
    }
    end(&mut current);
    out
}

/// Parses Sentry's issue search. Keys picket does not know (`assigned:`, `has:`, …) are left
/// out rather than refused, so that tools sending them still get an answer.
pub fn search(query: &str) -> Result<Search, BadParameter> {
    let mut s = Search::default();
    let mut words = Vec::new();
    for token in tokens(query) {
        let Some((key, value)) = token.split_once(':').filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '!')
        }) else {
            words.push(token);
            continue;
        };
        match key {
            "is" => {
                s.status = Some(match value {
                    "unresolved" => Status::Unresolved,
                    "resolved" => Status::Resolved,
                    "ignored" | "archived" | "muted" => Status::Ignored,
                    other => {
                        return Err(BadParameter(format!(
                            "query: is:{other} is not supported (is:unresolved, is:resolved or is:ignored)"
                        )));
                    }
                })
            }
            "level" => s.level = Some(value.to_ascii_lowercase()),
            "release" => s.release = Some(value.to_string()),
            "environment" => s.environment = Some(value.to_string()),
            _ => {}
        }
    }
    if !words.is_empty() {
        s.text = Some(words.join(" "));
    }
    Ok(s)
}

/// `24h`, `14d`, `90m`, `2w`, `30s` as seconds.
pub fn period(text: &str) -> Result<f64, BadParameter> {
    let bad = || {
        BadParameter(format!(
            "statsPeriod: '{text}' is not a period (try 24h, 14d, 90d)"
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse::<u32>().map_err(|_| bad())?.into();
    let unit = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return Err(bad()),
    };
    Ok(n * unit)
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
    fn searches_as_tools_send_them() {
        let s =
            search(r#"is:unresolved level:Error release:"shop 1.0" environment:prod  disk full"#)
                .unwrap();
        assert_eq!(s.status, Some(Status::Unresolved));
        assert_eq!(s.level.as_deref(), Some("error"));
        assert_eq!(s.release.as_deref(), Some("shop 1.0"));
        assert_eq!(s.environment.as_deref(), Some("prod"));
        assert_eq!(s.text.as_deref(), Some("disk full"));
        let s = search("assigned:me has:user is:ignored").unwrap();
        assert_eq!((s.status, s.text), (Some(Status::Ignored), None));
        assert!(search("is:bookmarked").is_err());
        assert_eq!(search("").unwrap(), Search::default());
        assert_eq!(search(r#"" " "#).unwrap(), Search::default());
        let quoted = search(r#""disk is:full"#).unwrap();
        assert_eq!(quoted.text.as_deref(), Some("disk is:full"));
    }

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
