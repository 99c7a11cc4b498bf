//! Credentials of an ingest request: the `X-Sentry-Auth` / `Authorization: Sentry …` header
//! grammar, `Authorization: Basic`, query-string auth and DSNs. Pure functions over strings;
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
    #[error("bad sentry DSN: {0}")]
    BadDsn(&'static str),
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

/// A parsed DSN: `{scheme}://{public}[:{secret}]@{host}[:{port}]{path}/{project_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    pub scheme: String,
    pub public_key: String,
    pub secret_key: Option<String>,
    /// Host and optional port, as written.
    pub host: String,
    /// Path prefix before the project id, without a trailing slash (often empty).
    pub path: String,
    pub project_id: String,
}

impl Dsn {
    pub fn parse(dsn: &str) -> Result<Dsn, AuthError> {
        let dsn = dsn.trim();
        let (scheme, rest) = dsn
            .split_once("://")
            .ok_or(AuthError::BadDsn("missing scheme"))?;
        // Transport prefixes (`threaded+http`) only choose the client's transport.
        let scheme = scheme
            .rsplit('+')
            .next()
            .unwrap_or(scheme)
            .to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "udp") {
            return Err(AuthError::BadDsn("unsupported scheme"));
        }
        let (userinfo, location) = rest
            .split_once('@')
            .ok_or(AuthError::BadDsn("missing public key"))?;
        let (public, secret) = match userinfo.split_once(':') {
            Some((p, s)) => (p, Some(s.to_string()).filter(|s| !s.is_empty())),
            None => (userinfo, None),
        };
        if public.is_empty() {
            return Err(AuthError::BadDsn("missing public key"));
        }
        let location = location
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        let (host, path) = match location.find('/') {
            Some(i) => location.split_at(i),
            None => return Err(AuthError::BadDsn("missing project id")),
        };
        let (path, project_id) = path.rsplit_once('/').unwrap_or(("", path));
        if host.is_empty() || project_id.is_empty() {
            return Err(AuthError::BadDsn("missing host or project id"));
        }
        Ok(Dsn {
            scheme,
            public_key: public.to_string(),
            secret_key: secret,
            host: host.to_string(),
            path: path.to_string(),
            project_id: project_id.to_string(),
        })
    }

    /// Where this DSN's project takes envelopes.
    pub fn envelope_url(&self) -> String {
        format!(
            "{}://{}{}/api/{}/envelope/",
            self.scheme, self.host, self.path, self.project_id
        )
    }

    /// The `X-Sentry-Auth` header a client sends for this DSN.
    pub fn auth_header(&self, client: &str) -> String {
        let mut header = format!(
            "Sentry sentry_version=7, sentry_key={}, sentry_client={client}",
            self.public_key
        );
        if let Some(secret) = &self.secret_key {
            header.push_str(", sentry_secret=");
            header.push_str(secret);
        }
        header
    }

    /// The DSN as SDKs are given it, without the secret.
    pub fn public(&self) -> String {
        format!(
            "{}://{}@{}{}/{}",
            self.scheme, self.public_key, self.host, self.path, self.project_id
        )
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

    #[test]
    fn dsn_forms() {
        let d = Dsn::parse("https://e12d836b15bb49d7bbf99e64295d995b:@sentry.io/42").unwrap();
        assert_eq!(
            (
                d.public_key.as_str(),
                d.secret_key.as_deref(),
                d.project_id.as_str()
            ),
            ("e12d836b15bb49d7bbf99e64295d995b", None, "42")
        );
        let d = Dsn::parse("threaded+http://pub:sec@host:9000/sentry/7").unwrap();
        assert_eq!(
            (
                d.scheme.as_str(),
                d.host.as_str(),
                d.path.as_str(),
                d.project_id.as_str()
            ),
            ("http", "host:9000", "/sentry", "7")
        );
        assert_eq!(d.secret_key.as_deref(), Some("sec"));
        assert_eq!(d.public(), "http://pub@host:9000/sentry/7");
        assert_eq!(d.envelope_url(), "http://host:9000/sentry/api/7/envelope/");
        assert!(d.auth_header("picket/1").ends_with("sentry_secret=sec"));
        assert!(Dsn::parse("http://host/1").is_err());
        assert!(Dsn::parse("ftp://k@host/1").is_err());
        assert!(Dsn::parse("http://k@host").is_err());
    }
}
