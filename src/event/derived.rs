//! Tags picket derives from what an event says elsewhere, as Sentry shows them: `browser`,
//! `browser.name`, `os`, `os.name`, `device`, `runtime` from the contexts (the browser and
//! the system read from the request's `User-Agent` when the SDK sent no context), `url` from
//! the request, `transaction`, and `user` (the id, else the email, username or address).
//! They are counted and searched like the SDK's own tags, which win where both exist; and
//! the terms search finds an event by (its messages' words, each tag, each user field). Pure.

use serde::Deserialize;
use serde_json::Value;

use super::model::{Event, Json};

/// What a context says of the thing it describes, read from its text without the rest of it.
#[derive(Deserialize)]
struct Described {
    name: Option<Value>,
    version: Option<Value>,
    model: Option<Value>,
    family: Option<Value>,
}

impl Described {
    /// `None` for a context that is not an object. One with a key twice is read as a tree
    /// (where the last one counts).
    fn of(context: &Json) -> Option<Described> {
        if !context.is_object() {
            return None;
        }
        serde_json::from_str(context.text()).ok().or_else(|| {
            let Value::Object(mut m) = context.value() else {
                return None;
            };
            Some(Described {
                name: m.remove("name"),
                version: m.remove("version"),
                model: m.remove("model"),
                family: m.remove("family"),
            })
        })
    }
}

/// The derived tags of an event, in a fixed order, only those it has a value for.
pub fn tags(ev: &Event) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let agent = ev
        .user_agent()
        .and_then(|ua| woothee::parser::Parser::new().parse(ua))
        .filter(|ua| ua.name != woothee::woothee::VALUE_UNKNOWN);
    let context = |name: &str| ev.contexts.get(name).and_then(Described::of);
    let field = |ctx: Option<&Described>, key: &str| {
        let ctx = ctx?;
        let v = match key {
            "name" => &ctx.name,
            "version" => &ctx.version,
            "model" => &ctx.model,
            "family" => &ctx.family,
            _ => return None,
        };
        match v.as_ref()? {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
        .filter(|s| !s.is_empty())
    };
    let named = |name: Option<String>, version: Option<String>| match (name, version) {
        (Some(n), Some(v)) => Some((format!("{n} {v}"), n)),
        (Some(n), None) => Some((n.clone(), n)),
        _ => None,
    };

    let browser_context = context("browser");
    let browser = named(
        field(browser_context.as_ref(), "name"),
        field(browser_context.as_ref(), "version"),
    )
    .or_else(|| {
        let ua = agent.as_ref()?;
        let version = Some(ua.version.to_string())
            .filter(|v| !v.is_empty() && v != woothee::woothee::VALUE_UNKNOWN);
        named(Some(ua.name.to_string()), version)
    });
    if let Some((full, name)) = browser {
        out.push(("browser", full));
        out.push(("browser.name", name));
    }

    let os_context = context("os").or_else(|| context("client_os"));
    let os_context = os_context.as_ref();
    let os = named(field(os_context, "name"), field(os_context, "version")).or_else(|| {
        let ua = agent.as_ref()?;
        let known = |s: &str| !s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN;
        let name = Some(ua.os.to_string()).filter(|s| known(s));
        let version = Some(ua.os_version.to_string()).filter(|s| known(s));
        named(name, version)
    });
    if let Some((full, name)) = os {
        out.push(("os", full));
        out.push(("os.name", name));
    }

    let device_context = context("device");
    let device = field(device_context.as_ref(), "model")
        .or_else(|| field(device_context.as_ref(), "family"))
        .or_else(|| {
            let ua = agent.as_ref()?;
            matches!(ua.category, "smartphone" | "mobilephone")
                .then(|| ua.os.to_string())
                .filter(|s| s != woothee::woothee::VALUE_UNKNOWN)
        });
    if let Some(device) = device {
        out.push(("device", device));
    }

    let runtime_context = context("runtime");
    if let Some((full, _)) = named(
        field(runtime_context.as_ref(), "name"),
        field(runtime_context.as_ref(), "version"),
    ) {
        out.push(("runtime", full));
    }

    if let Some(url) = ev.request_field("url") {
        let bare = url.split(['?', '#']).next().unwrap_or(url).trim();
        if !bare.is_empty() {
            out.push(("url", bare.to_string()));
        }
    }
    if let Some(t) = ev.transaction.as_deref().filter(|t| !t.is_empty()) {
        out.push(("transaction", t.to_string()));
    }
    if let Some(user) = ev.user.as_ref().and_then(|u| u.identity()) {
        out.push(("user", user.to_string()));
    }
    out
}

/// Terms longer than this (in bytes) are not indexed.
pub const MAX_TERM_LEN: usize = 200;
/// Longer words (hashes, tokens, encoded blobs) are not indexed: nobody types them, and each
/// would be a new term.
pub const MAX_WORD_CHARS: usize = 32;
/// Words of one event's messages indexed.
pub const MAX_WORDS_PER_EVENT: usize = 32;
/// The separator of a field term's key and value.
pub const SEP: char = '\u{1f}';

/// The term of a tag or user field.
pub fn field_term(key: &str, value: &str) -> String {
    let mut term = String::with_capacity(key.len() + SEP.len_utf8() + value.len());
    term.push_str(key);
    term.push(SEP);
    term.push_str(value);
    term
}

/// The words of a text as search keeps them: lowercase runs of letters and digits, of 2 to
/// [`MAX_WORD_CHARS`] characters.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| (2..=MAX_WORD_CHARS).contains(&w.chars().count()))
        .map(str::to_lowercase)
}

/// The tags an issue counts of an event: the built-in ones Sentry also shows (level,
/// environment, release, server name), the event's own (the first value of each key), then the
/// derived ones.
pub fn counted(ev: &Event) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(ev.tags.len() + 4);
    let builtin = [
        ("level", Some(ev.level.as_str())),
        ("environment", ev.environment.as_deref()),
        ("release", ev.release.as_deref()),
        ("server_name", ev.server_name.as_deref()),
    ];
    for (k, v) in builtin {
        if let Some(v) = v {
            out.push((k.to_string(), v.to_string()));
        }
    }
    for (k, v) in &ev.tags {
        if !out.iter().any(|(ok, _)| ok == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    for (k, v) in tags(ev) {
        if !out.iter().any(|(ok, _)| ok == k) {
            out.push((k.to_string(), v));
        }
    }
    out
}

/// The terms an event is found by: the words of its message and exceptions, each tag, and
/// each user field, deduplicated and bounded.
pub fn terms(ev: &Event, tags: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len() + MAX_WORDS_PER_EVENT);
    let message = ev.logentry.as_ref().and_then(|l| l.text());
    let exceptions = ev
        .exception
        .iter()
        .flat_map(|e| [e.ty.as_deref(), e.value.as_deref()]);
    let texts = std::iter::once(message).chain(exceptions).flatten();
    let mut n = 0;
    for word in texts.flat_map(words) {
        if n == MAX_WORDS_PER_EVENT {
            break;
        }
        if !out.contains(&word) {
            out.push(word);
            n += 1;
        }
    }
    let user = ev.user.as_ref();
    let user_fields = [
        ("user.id", user.and_then(|u| u.id.as_deref())),
        ("user.email", user.and_then(|u| u.email.as_deref())),
        ("user.username", user.and_then(|u| u.username.as_deref())),
        ("user.ip", user.and_then(|u| u.ip_address.as_deref())),
    ];
    let fields = tags
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .chain(user_fields);
    for (key, value) in fields {
        if let Some(value) = value.filter(|v| key.len() + v.len() < MAX_TERM_LEN) {
            out.push(field_term(key, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::normalize::from_json;
    use serde_json::json;

    fn derived(v: Value) -> Vec<(&'static str, String)> {
        tags(&from_json(v))
    }

    fn get<'a>(tags: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
        tags.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_browser_and_its_system_come_from_the_user_agent() {
        let t = derived(json!({
            "message": "x",
            "request": {"url": "https://shop.example.com/cart?id=3#top", "headers": {
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36"
            }},
            "user": {"email": "ann@example.com", "ip_address": "10.0.0.1"},
        }));
        assert_eq!(get(&t, "browser.name"), Some("Chrome"));
        assert_eq!(get(&t, "browser"), Some("Chrome 120.0.6099.71"));
        assert_eq!(get(&t, "os.name"), Some("Linux"));
        assert_eq!(get(&t, "url"), Some("https://shop.example.com/cart"));
        assert_eq!(get(&t, "user"), Some("ann@example.com"));
    }

    #[test]
    fn contexts_win_over_the_user_agent() {
        let t = derived(json!({
            "message": "x",
            "contexts": {
                "browser": {"name": "Firefox", "version": "121.0"},
                "os": {"name": "Windows", "version": "10"},
                "device": {"family": "Desktop", "model": "ThinkPad"},
                "runtime": {"name": "CPython", "version": "3.11.2"},
            },
            "request": {"headers": [["user-agent", "curl/8.0"]]},
            "transaction": "/checkout",
            "user": {"id": 12, "email": "x@example.com"},
        }));
        assert_eq!(get(&t, "browser"), Some("Firefox 121.0"));
        assert_eq!(get(&t, "os"), Some("Windows 10"));
        assert_eq!(get(&t, "device"), Some("ThinkPad"));
        assert_eq!(get(&t, "runtime"), Some("CPython 3.11.2"));
        assert_eq!(get(&t, "transaction"), Some("/checkout"));
        assert_eq!(get(&t, "user"), Some("12"));
    }

    #[test]
    fn words_are_lowercase_runs_of_letters_and_digits() {
        let w: Vec<String> =
            words("Order 1234 failed: KeyError('x') in é-shop 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08").collect();
        assert_eq!(w, ["order", "1234", "failed", "keyerror", "in", "shop"]);
    }

    #[test]
    fn nothing_is_made_up() {
        let t = derived(json!({"message": "x", "request": {"headers": {"User-Agent": "???"}}}));
        assert!(t.is_empty(), "{t:?}");
    }
}
