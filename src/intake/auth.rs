//! Credentials of an ingest request: the `X-Sentry-Auth` / `Authorization: Sentry …` header
//! grammar, `Authorization: Basic` and query-string auth. Pure functions over strings;
//! looking the key up is the caller's business.

use base64::Engine;

/// The newest protocol version picket speaks; newer ones are refused (as Relay does).
pub const PROTOCOL_VERSION: u32 = 7;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub public_key: String,
    pub secret_key: Option<String>,
    pub version: Option<u32>,
    pub client: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing authorization information")]
    Missing,
    #[error("multiple authorization payloads detected")]
    Multiple,
    #[error("bad x-sentry-auth header: {0}")]
    Malformed(&'static str),
    #[error("unsupported protocol version ({0})")]
    UnsupportedVersion(u32),
}

/// Parses `Sentry sentry_key=…, sentry_version=7, …` (scheme word required, any case).
pub fn parse_header(value: &str) -> Result<Credentials, AuthError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("sentry") {
        return Err(AuthError::Malformed("non sentry auth"));
    }
    parse_pairs(rest.split(',').filter_map(|item| {
        let (k, v) = item.split_once('=')?;
        Some((k.trim().to_string(), v.trim().to_string()))
    }))
}

/// The auth part of a raven UDP datagram: the header value, with or without `Sentry `.
pub fn parse_datagram_header(value: &str) -> Result<Credentials, AuthError> {
    let trimmed = value.trim();
    let has_scheme = trimmed
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("sentry "));
    if has_scheme {
        parse_header(trimmed)
    } else {
        parse_header(&format!("Sentry {trimmed}"))
    }
}

/// Query-string auth (`?sentry_key=…&sentry_version=7`), if the query carries any.
pub fn parse_query(query: &str) -> Option<Result<Credentials, AuthError>> {
    if !query.contains("sentry_") {
        return None;
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !pairs.iter().any(|(k, _)| k.starts_with("sentry_")) {
        return None;
    }
    Some(parse_pairs(pairs.into_iter()))
}

/// `Authorization: Basic base64(public_key:anything)`.
pub fn parse_basic(value: &str) -> Result<Credentials, AuthError> {
    let encoded = value.trim().get(6..).unwrap_or("").trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| AuthError::Malformed("invalid basic credentials"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| AuthError::Malformed("invalid basic credentials"))?;
    let key = text.split(':').next().unwrap_or("").trim();
    if key.is_empty() {
        return Err(AuthError::Malformed("missing public key in auth header"));
    }
    Ok(Credentials {
        public_key: key.to_string(),
        ..Default::default()
    })
}

fn parse_pairs(pairs: impl Iterator<Item = (String, String)>) -> Result<Credentials, AuthError> {
    let mut creds = Credentials::default();
    for (k, v) in pairs {
        match k.as_str() {
            "sentry_key" => creds.public_key = v,
            "sentry_secret" => creds.secret_key = Some(v).filter(|s| !s.is_empty()),
            "sentry_client" => creds.client = Some(v).filter(|s| !s.is_empty()),
            "sentry_version" => {
                let major = v.split('.').next().unwrap_or("");
                let version: u32 = major
                    .trim()
                    .parse()
                    .map_err(|_| AuthError::Malformed("invalid value for version"))?;
                if version > PROTOCOL_VERSION {
                    return Err(AuthError::UnsupportedVersion(version));
                }
                creds.version = Some(version);
            }
            _ => {}
        }
    }
    // Relay splits `<key>.<flag>` suffixes off the key.
    if let Some((key, _flags)) = creds.public_key.split_once('.') {
        creds.public_key = key.to_string();
    }
    if creds.public_key.is_empty() {
        return Err(AuthError::Malformed("missing public key in auth header"));
    }
    Ok(creds)
}

/// The places a request can carry credentials, as raw header values and the query string.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sources<'a> {
    pub x_sentry_auth: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub query: Option<&'a str>,
}

/// Credentials from exactly one source; `Ok(None)` when there are none (an envelope may still
/// carry a `dsn`). More than one source is refused, as Relay does.
pub fn from_sources(src: Sources<'_>) -> Result<Option<Credentials>, AuthError> {
    let mut found: Vec<Result<Credentials, AuthError>> = Vec::new();
    if let Some(h) = src.x_sentry_auth {
        found.push(parse_header(h));
    }
    if let Some(h) = src.authorization {
        let lower = h.trim_start().get(..7).map(str::to_ascii_lowercase);
        match lower.as_deref() {
            Some("sentry ") => found.push(parse_header(h)),
            Some(p) if p.starts_with("basic ") => found.push(parse_basic(h)),
            _ => {}
        }
    }
    if let Some(q) = src.query.and_then(parse_query) {
        found.push(q);
    }
    match found.len() {
        0 => Ok(None),
        1 => found.pop().transpose(),
        _ => Err(AuthError::Multiple),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_variants() {
        let c = parse_header("Sentry sentry_key=abc, sentry_version=7, sentry_client=x/1").unwrap();
        assert_eq!(c.public_key, "abc");
        assert_eq!(c.version, Some(7));
        assert_eq!(c.client.as_deref(), Some("x/1"));
        let c =
            parse_header("sentry   sentry_version=2.0 ,sentry_key = k ,sentry_secret=").unwrap();
        assert_eq!(
            (c.public_key.as_str(), c.version, c.secret_key),
            ("k", Some(2), None)
        );
        let c =
            parse_header("SENTRY sentry_key=k.no-cache,sentry_timestamp=bad,other=1=2").unwrap();
        assert_eq!(c.public_key, "k");
        assert_eq!(
            parse_header("Basic xyz"),
            Err(AuthError::Malformed("non sentry auth"))
        );
        assert_eq!(
            parse_header("Sentry sentry_version=7"),
            Err(AuthError::Malformed("missing public key in auth header"))
        );
        assert_eq!(
            parse_header("Sentry sentry_key=k, sentry_version=x"),
            Err(AuthError::Malformed("invalid value for version"))
        );
        assert_eq!(
            parse_header("Sentry sentry_key=k, sentry_version=8"),
            Err(AuthError::UnsupportedVersion(8))
        );
    }

    #[test]
    fn sources_query_basic_and_conflicts() {
        let q = Sources {
            query: Some("sentry_key=abc&sentry_version=7"),
            ..Default::default()
        };
        assert_eq!(from_sources(q).unwrap().unwrap().public_key, "abc");
        let b = Sources {
            authorization: Some("Basic YWJjOnNlY3JldA=="),
            ..Default::default()
        };
        assert_eq!(from_sources(b).unwrap().unwrap().public_key, "abc");
        assert_eq!(
            from_sources(Sources {
                query: Some("page=2"),
                ..Default::default()
            }),
            Ok(None)
        );
        let both = Sources {
            x_sentry_auth: Some("Sentry sentry_key=abc"),
            query: Some("sentry_key=abc"),
            ..Default::default()
        };
        assert_eq!(from_sources(both), Err(AuthError::Multiple));
    }

    #[test]
    fn datagram_header_with_or_without_scheme() {
        let a = parse_datagram_header("Sentry sentry_timestamp=1.5, sentry_key=k, sentry_secret=s")
            .unwrap();
        let b = parse_datagram_header("sentry_key=k, sentry_secret=s").unwrap();
        assert_eq!((a.public_key, a.secret_key), (b.public_key, b.secret_key));
    }
}
