//! The plain values a configuration is made of, each parsed from the text a user writes:
//! byte sizes (`"20MiB"`), durations (`"90d"`), the SMTP server's URL and a log file's format.
//! Every module that needs one imports it from here, so the configuration imports nothing.

use serde::{Deserialize, Deserializer, Serialize};

use super::ConfigError;

/// A config value written either as a bare number or as text with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Int(u64),
    Text(String),
}

/// `"20MiB"` → (20.0, "MiB"): a decimal number and the unit after it.
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// A byte count, written in the file as a number or as `"1MiB"`, `"20MB"`, `"512KiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Option<ByteSize> {
        let (num, unit) = number_and_unit(s)?;
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            _ => return None,
        };
        (num >= 0.0).then_some(ByteSize((num * mult as f64) as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Int(n) => Ok(ByteSize(n)),
            NumberOrText::Text(s) => ByteSize::parse(&s).ok_or_else(|| {
                serde::de::Error::custom(format!("'{s}' is not a size (try 1MiB, 20MB, 512KiB)"))
            }),
        }
    }
}

/// A duration, written as `"10s"`, `"500ms"`, `"5m"`, `"12h"`, `"90d"` (or seconds as a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn parse(s: &str) -> Option<Duration> {
        let (num, unit) = number_and_unit(s)?;
        let secs = match unit {
            "ms" => num / 1000.0,
            "" | "s" => num,
            "m" => num * 60.0,
            "h" => num * 3600.0,
            "d" => num * 86_400.0,
            "w" => num * 604_800.0,
            _ => return None,
        };
        (secs.is_finite() && secs >= 0.0)
            .then(|| Duration(std::time::Duration::from_secs_f64(secs)))
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        if d.subsec_millis() != 0 {
            s.serialize_str(&format!("{}ms", d.as_millis()))
        } else {
            s.serialize_str(&format!("{}s", d.as_secs()))
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Int(n) => Ok(Duration(std::time::Duration::from_secs(n))),
            NumberOrText::Text(s) => Duration::parse(&s).ok_or_else(|| {
                serde::de::Error::custom(format!("'{s}' is not a duration (try 10s, 5m, 12h, 90d)"))
            }),
        }
    }
}

/// Which formats a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// PHP's own lines and php-fpm's, told apart line by line.
    #[default]
    Auto,
    Php,
    PhpFpm,
}

impl std::str::FromStr for LogFormat {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<LogFormat, ConfigError> {
        match s {
            "auto" => Ok(LogFormat::Auto),
            "php" => Ok(LogFormat::Php),
            "php-fpm" => Ok(LogFormat::PhpFpm),
            _ => Err(ConfigError::Invalid {
                key: "format".into(),
                cause: format!("'{s}' is not a log format (auto, php or php-fpm)"),
            }),
        }
    }
}

/// How the SMTP server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: no TLS.
    Plain,
    /// `smtp+starttls://`: upgraded with STARTTLS, which must be offered.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// A parsed `smtp_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl SmtpUrl {
    pub fn parse(url: &str) -> Result<SmtpUrl, ConfigError> {
        let bad = |why: &str| ConfigError::Invalid {
            key: "smtp_url".into(),
            cause: format!(
                "{why} (try smtp://host:25, smtp+starttls://user:pass@host:587 or smtps://user:pass@host:465)"
            ),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (security, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => (Security::Plain, 25),
            "smtp+starttls" => (Security::StartTls, 587),
            "smtps" => (Security::Implicit, 465),
            _ => return Err(bad(&format!("unknown scheme '{scheme}'"))),
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, location) = match rest.rsplit_once('@') {
            Some((u, l)) => (Some(u), l),
            None => (None, rest),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| bad("the user or password is not UTF-8"))
        };
        let (user, password) = match userinfo {
            Some(info) => {
                let (u, p) = info.split_once(':').unwrap_or((info, ""));
                (Some(decode(u)?), Some(decode(p)?))
            }
            None => (None, None),
        };
        let (host, port) = match location.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad(&format!("'{p}' is not a port")))?,
            ),
            _ => (location, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(bad("no host"));
        }
        Ok(SmtpUrl {
            security,
            host: host.to_string(),
            port,
            user: user.filter(|u| !u.is_empty()),
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let u = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (u.security, u.host.as_str(), u.port, u.user),
            (Security::Plain, "127.0.0.1", 2525, None)
        );
        let u = SmtpUrl::parse("smtp+starttls://me%40example.com:p%3Ass@mail.example.com").unwrap();
        assert_eq!(u.security, Security::StartTls);
        assert_eq!(u.port, 587);
        assert_eq!(u.user.as_deref(), Some("me@example.com"));
        assert_eq!(u.password.as_deref(), Some("p:ss"));
        let u = SmtpUrl::parse("smtps://u:p@[::1]:465/").unwrap();
        assert_eq!(
            (u.security, u.host.as_str(), u.port),
            (Security::Implicit, "::1", 465)
        );
        for bad in ["mail.example.com", "http://x", "smtp://", "smtp://h:port"] {
            assert!(SmtpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
