//! Inbound filters: which parsed events a project does not want at all (they are answered 200,
//! so the SDK does not retry, never stored, and counted by reason). Browser-extension errors
//! (the patterns Relay uses), events from `localhost`, web crawlers (by user agent), legacy
//! browsers (by version, parsed with woothee), error messages and releases matching globs, and
//! a sample rate. Pure: an event and the settings in, the reason out.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::model::Event;

/// A project's inbound filters; all off by default.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct InboundFilters {
    pub browser_extensions: bool,
    pub localhost: bool,
    pub web_crawlers: bool,
    pub legacy_browsers: bool,
    /// Globs (`*`, `?`, `[…]`, any case) matched against the event's messages and
    /// `Type: value` of its exceptions.
    pub error_messages: Vec<String>,
    /// Globs matched against the event's release.
    pub releases: Vec<String>,
    /// Keep this fraction of events (0 to 1), chosen by event id so a retried event gets the
    /// same answer. `None` keeps them all.
    pub sample_rate: Option<f64>,
}

/// Why an event was filtered, as the outcome reason names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterReason {
    BrowserExtensions,
    Localhost,
    WebCrawlers,
    LegacyBrowsers,
    ErrorMessage,
    ReleaseVersion,
    Sampled,
}

impl FilterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FilterReason::BrowserExtensions => "browser-extensions",
            FilterReason::Localhost => "localhost",
            FilterReason::WebCrawlers => "web-crawlers",
            FilterReason::LegacyBrowsers => "legacy-browsers",
            FilterReason::ErrorMessage => "error-message",
            FilterReason::ReleaseVersion => "release-version",
            FilterReason::Sampled => "sampled",
        }
    }
}

/// The oldest version of each browser family that is not legacy (woothee's names).
pub const LEGACY_BELOW: [(&str, u32); 6] = [
    ("Internet Explorer", u32::MAX),
    ("Edge", 79),
    ("Safari", 12),
    ("Firefox", 70),
    ("Chrome", 70),
    ("Opera", 57),
];

/// Why a glob cannot be used.
pub fn check_glob(glob: &str) -> Result<(), String> {
    if glob.trim().is_empty() {
        return Err("a pattern is empty".into());
    }
    glob::Pattern::new(glob)
        .map(drop)
        .map_err(|e| format!("'{glob}' is not a pattern: {e}"))
}

/// Whether a project's filters drop this event, and why.
pub fn check(event: &Event, filters: &InboundFilters) -> Option<FilterReason> {
    if filters.browser_extensions && from_extension(event) {
        return Some(FilterReason::BrowserExtensions);
    }
    if filters.localhost && from_localhost(event) {
        return Some(FilterReason::Localhost);
    }
    let agent = event.user_agent();
    if filters.web_crawlers && agent.is_some_and(is_crawler) {
        return Some(FilterReason::WebCrawlers);
    }
    if filters.legacy_browsers && agent.is_some_and(is_legacy) {
        return Some(FilterReason::LegacyBrowsers);
    }
    if !filters.error_messages.is_empty()
        && messages(event).any(|m| any_glob(&filters.error_messages, &m))
    {
        return Some(FilterReason::ErrorMessage);
    }
    if let Some(release) = &event.release
        && any_glob(&filters.releases, release)
    {
        return Some(FilterReason::ReleaseVersion);
    }
    if let Some(rate) = filters.sample_rate
        && !sampled_in(event, rate)
    {
        return Some(FilterReason::Sampled);
    }
    None
}

fn any_glob(globs: &[String], text: &str) -> bool {
    let options = glob::MatchOptions {
        case_sensitive: false,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    globs
        .iter()
        .filter_map(|g| glob::Pattern::new(g).ok())
        .any(|p| p.matches_with(text, options))
}

/// The texts a message filter looks at.
fn messages(event: &Event) -> impl Iterator<Item = String> + '_ {
    let log = event
        .logentry
        .iter()
        .flat_map(|l| [l.formatted.clone(), l.message.clone()])
        .flatten();
    let exceptions = event
        .exception
        .iter()
        .map(|e| match (e.ty.as_deref(), e.value.as_deref()) {
            (Some(t), Some(v)) => format!("{t}: {v}"),
            (Some(t), None) => t.to_string(),
            (None, v) => v.unwrap_or("").to_string(),
        });
    log.chain(exceptions)
}

/// Keeps `rate` of events, by their id.
fn sampled_in(event: &Event, rate: f64) -> bool {
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&event.event_id.0[..8]);
    let x = u64::from_be_bytes(eight) as f64 / u64::MAX as f64;
    x < rate.clamp(0.0, 1.0)
}

struct Patterns {
    extension_values: Regex,
    extension_sources: Regex,
    crawlers: Regex,
    allowed_crawlers: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| Patterns {
        // Errors that browser extensions and injected scripts raise (Relay's list).
        extension_values: Regex::new(
            r"(?i)top\.GLOBALS|originalCreateNotification|canvas\.contentDocument|MyApp_RemoveAllHighlights|http://tt\.epicplay\.com|Can't find variable: ZiteReader|jigsaw is not defined|ComboSearch is not defined|http://loading\.retry\.widdit\.com/|atomicFindClose|fb_xd_fragment|bmi_SafeAddOnload|EBCallBackMessageReceived|_gCrWeb|conduitPage|null is not an object \(evaluating 'elt\.parentNode'\)|plugin\.setSuspendState is not a function|Extension context invalidated|webkit-masked-url:|can't access dead object",
        )
        .expect("extension values"),
        // Where extension code lives.
        extension_sources: Regex::new(
            r"(?i)graph\.facebook\.com|connect\.facebook\.net|eatdifferent\.com\.woopra-ns\.com|static\.woopra\.com/js/woopra\.js|^chrome(-extension)?://|^moz-extension://|^safari(-web)?-extension://|webkit-masked-url|127\.0\.0\.1:4001/isrunning|webappstoolbarba\.texthelp\.com/|metrics\.itunes\.apple\.com\.edgesuite\.net/|kaspersky-labs\.com",
        )
        .expect("extension sources"),
        crawlers: Regex::new(
            r"(?i)Mediapartners-Google|AdsBot-Google|Googlebot|FeedFetcher-Google|BingBot|BingPreview|Baiduspider|Slurp|Sogou|facebook|ia_archiver|bots?[/\s\);]|spider[/\s\);]|Slack|Calypso AppCrawler|pingdom|lyticsbot|AWS Security Scanner|HubSpot Crawler|Bytespider|Better Uptime|YandexBot|DuckDuckBot|AhrefsBot|SemrushBot|PetalBot|GPTBot|ClaudeBot",
        )
        .expect("crawlers"),
        allowed_crawlers: Regex::new(r"(?i)Slackbot\s1\.\d+").expect("allowed crawlers"),
    })
}

/// The first exception's value, or the innermost frame of its stack that has a path, matches
/// what extensions raise.
fn from_extension(event: &Event) -> bool {
    let Some(first) = event.exception.first() else {
        return false;
    };
    if first
        .value
        .as_deref()
        .is_some_and(|v| patterns().extension_values.is_match(v))
    {
        return true;
    }
    first
        .frames()
        .iter()
        .rev()
        .filter_map(|f| f.abs_path.as_deref().or(f.filename.as_deref()))
        .find(|p| *p != "<anonymous>" && *p != "[native code]")
        .is_some_and(|p| patterns().extension_sources.is_match(p))
}

fn from_localhost(event: &Event) -> bool {
    let local_ip = |ip: &str| matches!(ip, "127.0.0.1" | "::1");
    if event
        .user
        .as_ref()
        .and_then(|u| u.ip_address.as_deref())
        .is_some_and(local_ip)
    {
        return true;
    }
    event
        .request_field("url")
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            let host = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or(""),
                None => host.split(':').next().unwrap_or(""),
            };
            host.eq_ignore_ascii_case("localhost")
                || host.to_ascii_lowercase().ends_with(".localhost")
                || local_ip(host)
        })
        .unwrap_or(false)
}

/// A known crawler's user agent.
pub fn is_crawler(agent: &str) -> bool {
    patterns().crawlers.is_match(agent) && !patterns().allowed_crawlers.is_match(agent)
}

/// A browser older than [`LEGACY_BELOW`] says.
pub fn is_legacy(agent: &str) -> bool {
    let Some(ua) = woothee::parser::Parser::new().parse(agent) else {
        return false;
    };
    let major: u32 = ua
        .version
        .split('.')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX);
    LEGACY_BELOW
        .iter()
        .any(|(name, below)| ua.name == *name && major < *below)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use super::super::normalize::from_json as event;

    fn all() -> InboundFilters {
        InboundFilters {
            browser_extensions: true,
            localhost: true,
            web_crawlers: true,
            legacy_browsers: true,
            error_messages: vec!["*ResizeObserver loop*".into()],
            releases: vec!["*-dev".into()],
            sample_rate: None,
        }
    }

    #[test]
    fn each_filter_drops_what_it_names_and_nothing_else() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        let cases = [
            (
                json!({"exception": {"values": [{"type": "TypeError", "value": "x", "stacktrace": {"frames": [{"abs_path": "chrome-extension://abc/content.js"}]}}]}}),
                Some(FilterReason::BrowserExtensions),
            ),
            (
                json!({"exception": {"values": [{"type": "Error", "value": "Extension context invalidated."}]}}),
                Some(FilterReason::BrowserExtensions),
            ),
            (
                json!({"message": "x", "request": {"url": "http://localhost:3000/cart"}}),
                Some(FilterReason::Localhost),
            ),
            (
                json!({"message": "x", "user": {"ip_address": "127.0.0.1"}}),
                Some(FilterReason::Localhost),
            ),
            (
                json!({"message": "x", "request": {"headers": {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}}}),
                Some(FilterReason::WebCrawlers),
            ),
            (
                json!({"message": "x", "request": {"headers": [["user-agent", "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko"]]}}),
                Some(FilterReason::LegacyBrowsers),
            ),
            (
                json!({"message": "ResizeObserver loop limit exceeded"}),
                Some(FilterReason::ErrorMessage),
            ),
            (
                json!({"message": "x", "release": "shop@1.2-dev"}),
                Some(FilterReason::ReleaseVersion),
            ),
            (
                json!({"message": "real problem", "release": "shop@1.2", "request": {"url": "https://shop.example.com/", "headers": {"User-Agent": chrome}}}),
                None,
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(check(&event(payload.clone()), &all()), want, "{payload}");
            assert_eq!(check(&event(payload), &InboundFilters::default()), None);
        }
    }

    #[test]
    fn sampling_keeps_about_its_rate_and_decides_by_event_id() {
        let f = InboundFilters {
            sample_rate: Some(0.25),
            ..Default::default()
        };
        let kept = (0..4000)
            .filter(|_| check(&event(json!({"message": "x"})), &f).is_none())
            .count();
        assert!((800..1200).contains(&kept), "{kept} of 4000 kept");
        let one = event(json!({"message": "x"}));
        let first = check(&one, &f);
        assert!((0..10).all(|_| check(&one, &f) == first));
        assert!(check_glob("[").is_err() && check_glob("*x*").is_ok());
    }
}
