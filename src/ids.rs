//! Low value types that every layer may use: an event's id, a DSN, a rate limit, and a URL
//! path's decoded segments. They hold no I/O and import nothing of picket, so `event`,
//! `store`, `intake`, `manage` and the front ends can all name them without importing each
//! other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An event's id: 16 bytes, written as 32 lowercase hex digits (a UUID without dashes), as
/// Sentry's protocol and API write it. Parsing accepts dashed or plain forms in any case; the
/// nil id (all zeros) is refused, since SDKs use it to mean "none".
/// `Default` is the nil id, which nothing stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EventId(pub [u8; 16]);

/// Why a string is not an event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an event id (32 hex digits)")]
pub struct EventIdError(pub String);

impl EventId {
    /// A fresh random id (UUID v4 layout).
    pub fn random() -> EventId {
        let mut bytes = random_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        EventId(bytes)
    }

    /// An id from stored bytes; `None` unless there are exactly 16.
    pub fn from_slice(bytes: &[u8]) -> Option<EventId> {
        bytes.try_into().ok().map(EventId)
    }

    /// 32 hex digits, dashed or plain, in any case; `None` for anything else or the nil id.
    pub fn parse(s: &str) -> Option<EventId> {
        let mut out = [0u8; 16];
        let mut digits = s.trim().bytes().filter(|b| *b != b'-');
        for slot in &mut out {
            let hi = hex_value(digits.next()?)?;
            let lo = hex_value(digits.next()?)?;
            *slot = (hi << 4) | lo;
        }
        (digits.next().is_none() && out != [0; 16]).then_some(EventId(out))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// 16 bytes from the OS's random source.
pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS RNG is never unavailable on Linux after boot; fall back to the clock anyway.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = nanos.to_le_bytes();
    }
    bytes
}

/// Bytes as lowercase hex digits.
/// Fills `out` with random bytes (from the OS, as [`random_bytes`]).
pub fn fill_random(out: &mut [u8]) {
    for chunk in out.chunks_mut(16) {
        let bytes = random_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

impl FromStr for EventId {
    type Err = EventIdError;
    fn from_str(s: &str) -> Result<EventId, EventIdError> {
        EventId::parse(s).ok_or_else(|| EventIdError(s.to_string()))
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EventId, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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

/// What is wrong with a DSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad sentry DSN: {0}")]
pub struct DsnError(pub &'static str);

impl Dsn {
    pub fn parse(dsn: &str) -> Result<Dsn, DsnError> {
        let dsn = dsn.trim();
        let (scheme, rest) = dsn.split_once("://").ok_or(DsnError("missing scheme"))?;
        // Transport prefixes (`threaded+http`) only choose the client's transport.
        let scheme = scheme
            .rsplit('+')
            .next()
            .unwrap_or(scheme)
            .to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "udp") {
            return Err(DsnError("unsupported scheme"));
        }
        let (userinfo, location) = rest.split_once('@').ok_or(DsnError("missing public key"))?;
        let (public, secret) = match userinfo.split_once(':') {
            Some((p, s)) => (p, Some(s.to_string()).filter(|s| !s.is_empty())),
            None => (userinfo, None),
        };
        if public.is_empty() {
            return Err(DsnError("missing public key"));
        }
        let location = location
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        let (host, path) = match location.find('/') {
            Some(i) => location.split_at(i),
            None => return Err(DsnError("missing project id")),
        };
        let (path, project_id) = path.rsplit_once('/').unwrap_or(("", path));
        if host.is_empty() || project_id.is_empty() {
            return Err(DsnError("missing host or project id"));
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

/// Events per minute with a burst; `per_minute = 0` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl RateLimit {
    pub fn unlimited(&self) -> bool {
        self.per_minute == 0
    }

    /// Events allowed at once: the burst, or the per-minute figure when no burst is set.
    pub fn capacity(&self) -> f64 {
        let burst = if self.burst == 0 {
            self.per_minute
        } else {
            self.burst
        };
        f64::from(burst.max(1))
    }

    pub fn per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }
}

/// A URL path's segments, each percent-decoded, empty ones dropped.
pub fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_parse_dashed_or_plain_and_print_plain() {
        let id: EventId = "9EC79C33-EC99-42AB-8353-589FCB2E04DC".parse().unwrap();
        assert_eq!(id.to_string(), "9ec79c33ec9942ab8353589fcb2e04dc");
        assert_eq!(EventId::parse("9ec79c33ec9942ab8353589fcb2e04dc"), Some(id));
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"9ec79c33ec9942ab8353589fcb2e04dc\""
        );
        let back: EventId = serde_json::from_str("\"9ec79c33ec9942ab8353589fcb2e04dc\"").unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn bad_event_ids_are_refused() {
        for bad in ["", "abc", &"0".repeat(32), &"g".repeat(32), &"a".repeat(34)] {
            assert_eq!(EventId::parse(bad), None, "{bad}");
        }
        assert!(serde_json::from_str::<EventId>("\"nope\"").is_err());
        let random = EventId::random();
        assert_eq!(random.to_string().len(), 32);
        assert_ne!(random, EventId::random());
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

/// An address or a network (`10.0.0.0/8`, `::1`), as `trusted_proxies` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpRange {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl TryFrom<String> for IpRange {
    type Error = String;
    fn try_from(text: String) -> Result<IpRange, String> {
        let bad = || format!("'{text}' is not an IP address or network (10.0.0.0/8, ::1)");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(IpRange { addr, prefix })
    }
}

impl From<IpRange> for String {
    fn from(r: IpRange) -> String {
        format!("{}/{}", r.addr, r.prefix)
    }
}

impl IpRange {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let bits = |a: std::net::IpAddr| -> (u128, u8) {
            match a {
                std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => (u128::from(u32::from(v4)) << 96, 32),
                    None => (u128::from(v6), 128),
                },
            }
        };
        let ((net, width), (ip, ip_width)) = (bits(self.addr), bits(ip));
        if width != ip_width {
            return false;
        }
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        net & mask == ip & mask
    }
}

#[cfg(test)]
mod ip_range_tests {
    use super::IpRange;

    #[test]
    fn ranges_contain_their_addresses() {
        let r = IpRange::try_from("10.0.0.0/8".to_string()).unwrap();
        assert!(r.contains("10.9.8.7".parse().unwrap()));
        assert!(!r.contains("11.0.0.1".parse().unwrap()));
        let one = IpRange::try_from("::1".to_string()).unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
        let mapped = IpRange::try_from("127.0.0.1".to_string()).unwrap();
        assert!(mapped.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(IpRange::try_from("10.0.0.0/33".to_string()).is_err());
        assert!(IpRange::try_from("proxy".to_string()).is_err());
    }
}
