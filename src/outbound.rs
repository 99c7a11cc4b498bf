//! What picket sends out over the network: one HTTP(S) client (keep-alive connections, rustls
//! with the system's root certificates plus an optional private CA, a timeout on every request,
//! redirects never followed, and optionally only public addresses), the TLS setup mail shares,
//! and the reading of an upstream's rate-limit answers. Used to forward events upstream, to
//! call webhooks and to talk to a single sign-on provider.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::HeaderMap;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("cannot read the CA file {path}: {cause}")]
    CaFile { path: String, cause: String },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("'{0}' is not an http(s) URL")]
    Url(String),
    #[error("{0}")]
    Network(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Forbidden(String),
}

/// Which addresses a client may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Any (upstream servers on a LAN are normal).
    AnyAddress,
    /// No loopback, private, link-local, multicast or unspecified addresses: what URLs that
    /// users type in (webhooks) may reach by default.
    PublicOnly,
}

/// Whether an address is one a `PublicOnly` client may connect to: none of IANA's
/// special-purpose ranges that are not globally reachable (RFC 6890 and its updates), and
/// for IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4), that address's verdict.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240 // reserved, and the broadcast address
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGN)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
                || (a == 198 && (b & 0xfe) == 18)) // benchmarking
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                is_public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
            };
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address inside.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return embedded(s[6], s[7]);
            }
            if s[0] == 0x2002 {
                return embedded(s[1], s[2]);
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || s[..6] == [0; 6] // IPv4-compatible (deprecated) and the rest of ::/96
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
                || s[..4] == [0x100, 0, 0, 0] // discard-only
                || (s[0] == 0x2001 && s[1] < 0x200) // IETF protocol assignments (Teredo…)
                || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
                || (s[0] & 0xfff0) == 0x3ff0 // documentation (3fff::/20)
                || s[0] == 0x5f00 // segment routing
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] & 0xffc0) == 0xfec0) // site local (deprecated)
        }
    }
}

impl Policy {
    /// The policy for webhooks: public addresses only, unless the config allows private ones.
    pub fn for_webhooks(allow_private: bool) -> Policy {
        if allow_private {
            Policy::AnyAddress
        } else {
            Policy::PublicOnly
        }
    }
}

/// The addresses a name resolved to that the policy lets a client connect to; an error when
/// it resolved only to forbidden ones.
fn permitted(
    host: &str,
    found: Vec<SocketAddr>,
    policy: Policy,
) -> Result<Vec<SocketAddr>, String> {
    let total = found.len();
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| policy == Policy::AnyAddress || is_public(a.ip()))
        .collect();
    if allowed.is_empty() && total > 0 {
        return Err(format!(
            "{host} resolves only to loopback, private or link-local addresses"
        ));
    }
    Ok(allowed)
}

/// Name resolution for the client: the system's, through tokio, with the addresses the policy
/// forbids removed, so that a name cannot lead a webhook to a private address.
#[derive(Clone)]
struct Resolver(Policy);

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            permitted(&host, found, policy)
                .map(Vec::into_iter)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))
        })
    }
}

/// The TLS client configuration picket uses everywhere: rustls with ring, the system's roots
/// and the PEM certificates in `ca_file`, if given.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, OutboundError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        use rustls_pki_types::pem::PemObject;
        let ca_error = |cause: String| OutboundError::CaFile {
            path: path.display().to_string(),
            cause,
        };
        let mut found = 0;
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(e.to_string()))?
        {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(ca_error("no PEM certificate in it".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OutboundError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An answer: status, headers and (the start of) the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Bytes of an answer's body read at most; an upstream's answers are small.
const MAX_REPLY: usize = 64 * 1024;

#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>,
    timeout: Duration,
    policy: Policy,
}

impl Client {
    /// A client trusting the system's roots and the PEM certificates in `ca_file`, if given,
    /// connecting only where `policy` allows.
    pub fn new(
        ca_file: Option<&Path>,
        timeout: Duration,
        policy: Policy,
    ) -> Result<Client, OutboundError> {
        let mut http = HttpConnector::new_with_resolver(Resolver(policy));
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca_file)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Client {
            inner,
            timeout,
            policy,
        })
    }

    /// POSTs `body` to `url` with these headers.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Reply, OutboundError> {
        self.send(hyper::Method::POST, url, headers, body).await
    }

    /// GETs `url` with these headers.
    pub async fn get(&self, url: &str, headers: &[(&str, String)]) -> Result<Reply, OutboundError> {
        self.send(hyper::Method::GET, url, headers, Bytes::new())
            .await
    }

    async fn send(
        &self,
        method: hyper::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Reply, OutboundError> {
        self.check_url(url)?;
        let mut request = hyper::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| OutboundError::Url(format!("{url} ({e})")))?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| OutboundError::Network(network_cause(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_REPLY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| OutboundError::Timeout(self.timeout))?
    }
}

impl Client {
    fn check_url(&self, url: &str) -> Result<(), OutboundError> {
        check_url(url, self.policy)
    }
}

/// Refuses URLs a client with this policy may not call: not http(s), or (for `PublicOnly`) a
/// literal address that is not public. Names are checked when they are resolved.
pub fn check_url(url: &str, policy: Policy) -> Result<(), OutboundError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| OutboundError::Url(url.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(OutboundError::Url(url.to_string()));
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if policy == Policy::PublicOnly {
        let literal = host.parse::<IpAddr>().ok();
        if literal.is_some_and(|ip| !is_public(ip)) || host.eq_ignore_ascii_case("localhost") {
            return Err(OutboundError::Forbidden(format!(
                "{host} is a loopback, private or link-local address"
            )));
        }
    }
    Ok(())
}

/// [`check_url`], and (for `PublicOnly`) the name resolved now, as a client would on every
/// call: for refusing a URL up front, when it is configured. Blocking.
pub fn check_url_now(url: &str, policy: Policy) -> Result<(), OutboundError> {
    check_url(url, policy)?;
    if policy == Policy::PublicOnly {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| OutboundError::Url(url.to_string()))?;
        let host = uri.host().unwrap_or_default();
        use std::net::ToSocketAddrs;
        // A name that does not resolve now may later; the call checks again.
        if let Ok(found) = (host, uri.port_u16().unwrap_or(443)).to_socket_addrs() {
            permitted(host, found.collect(), policy).map_err(OutboundError::Forbidden)?;
        }
    }
    Ok(())
}

/// The innermost cause of a client error, which is the one that says what happened
/// ("Connection refused", "invalid peer certificate: UnknownIssuer").
fn network_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if cause.to_string() == e.to_string() {
        e.to_string()
    } else {
        format!("{e}: {cause}")
    }
}

/// How long an upstream asked us not to send events of `category` (`error` for events), from
/// its `X-Sentry-Rate-Limits` headers, else (on 429) `Retry-After`, else 60 s on a 429. `None`
/// when the answer sets no limit on the category.
pub fn rate_limit(status: u16, headers: &HeaderMap, category: &str) -> Option<Duration> {
    let limits = headers
        .get_all("x-sentry-rate-limits")
        .into_iter()
        .filter_map(|v| v.to_str().ok());
    let retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok());
    rate_limit_of(status, limits, retry_after, category)
}

/// [`rate_limit`] on the header values as text.
pub fn rate_limit_of<'a>(
    status: u16,
    limits: impl Iterator<Item = &'a str>,
    retry_after: Option<&str>,
    category: &str,
) -> Option<Duration> {
    let mut longest: Option<u64> = None;
    let mut any = false;
    for value in limits {
        for limit in value.split(',') {
            any = true;
            let mut fields = limit.trim().split(':');
            let Some(Ok(seconds)) = fields.next().map(|s| s.trim().parse::<f64>()) else {
                continue;
            };
            if !seconds.is_finite() {
                continue;
            }
            let categories = fields.next().unwrap_or("");
            let applies = categories.trim().is_empty()
                || categories
                    .split(';')
                    .any(|c| c.trim() == category || c.trim() == "default");
            if applies {
                let seconds = seconds.clamp(0.0, 1e9).ceil() as u64;
                longest = Some(longest.map_or(seconds, |l| l.max(seconds)));
            }
        }
    }
    if let Some(seconds) = longest {
        return Some(Duration::from_secs(seconds));
    }
    if status != 429 || any {
        return None;
    }
    let retry_after = retry_after
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite())
        .map_or(60, |s| s.clamp(0.0, 1e9).ceil() as u64);
    Some(Duration::from_secs(retry_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_globally_reachable_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.1.2.3",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "5f00::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private} passed as public");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "198.20.0.1",
            "2606:4700::1111",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
            "::ffff:93.184.216.34",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public} refused");
        }
    }

    #[test]
    fn rate_limit_headers() {
        let h = headers(&[("x-sentry-rate-limits", "5::project")]);
        assert_eq!(rate_limit(429, &h, "error"), Some(Duration::from_secs(5)));
        let h = headers(&[(
            "x-sentry-rate-limits",
            "60:transaction:key, 2700:default;error:organization",
        )]);
        assert_eq!(
            rate_limit(200, &h, "error"),
            Some(Duration::from_secs(2700))
        );
        let h = headers(&[("x-sentry-rate-limits", "60:transaction:key")]);
        assert_eq!(rate_limit(429, &h, "error"), None, "another category only");
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(rate_limit(429, &h, "error"), Some(Duration::from_secs(7)));
        assert_eq!(
            rate_limit(429, &HeaderMap::new(), "error"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(rate_limit(200, &HeaderMap::new(), "error"), None);
        let h = headers(&[("x-sentry-rate-limits", "garbage, :::, 1.5::")]);
        assert_eq!(rate_limit(429, &h, "error"), Some(Duration::from_secs(2)));
    }
}
