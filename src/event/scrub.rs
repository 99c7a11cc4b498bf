//! Server-side data scrubbing: what picket removes from an event before it is grouped, stored,
//! alerted on or forwarded, so that secrets an SDK sent never reach the disk.
//!
//! By default (per project, [`Privacy::default`]) every value whose key looks sensitive
//! (`password`, `secret`, `token`, `auth`, `cookie`, `session`…, matched as Sentry does: any
//! key containing one of the names, any case, `-` read as `_`) is replaced by `[Filtered]`
//! wherever it is: request data, headers, cookies, query strings, frame variables, extra,
//! contexts, breadcrumb data, user fields. In every other string, credit-card numbers (Luhn
//! checked), bearer tokens, private keys and URL passwords are replaced. A project adds its own
//! sensitive names, names that are never scrubbed, the dropping of IP addresses, and rules in
//! the spirit of Relay's PII config (a selector and a method: remove, mask, or hash with the
//! project's salt). Each change is recorded in the event's `_meta` as Sentry records it: the
//! rule, the kind of change and the original length. Pure: an event in, the same event
//! scrubbed, with the count of values changed.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::model::{Event, Frame, Json};

/// What replaces a scrubbed value.
pub const FILTERED: &str = "[Filtered]";

/// Key names whose values are always scrubbed (substrings of the key, any case).
pub const SENSITIVE: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "access_token",
    "auth",
    "credentials",
    "mysql_pwd",
    "privatekey",
    "private_key",
    "token",
    "session",
    "csrftoken",
    "sessionid",
    "cookie",
    "bearer",
    "signature",
    "jwt",
];

/// A project's privacy settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Privacy {
    /// The default rules (sensitive keys and value patterns). On unless turned off.
    pub scrub: bool,
    /// More key names to scrub (substrings, any case).
    pub sensitive_fields: Vec<String>,
    /// Key names never scrubbed (whole names, any case), even when they look sensitive.
    pub safe_fields: Vec<String>,
    /// Drop `user.ip_address` and `REMOTE_ADDR`.
    pub scrub_ip: bool,
    /// Advanced rules, applied after the defaults.
    pub rules: Vec<Rule>,
    /// The key of `hash` rules (hex), made with the project.
    pub salt: String,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            scrub: true,
            sensitive_fields: Vec::new(),
            safe_fields: Vec::new(),
            scrub_ip: false,
            rules: Vec::new(),
            salt: String::new(),
        }
    }
}

/// An advanced rule: what it selects and what it does there.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Rule {
    /// `$http.headers.x-custom`, `$frame.vars.**`, `$user.email`, `$extra.card`, …: a root
    /// (`$http` the request, `$user`, `$extra`, `$contexts`, `$frame` every frame,
    /// `$breadcrumb` every breadcrumb's data, `$tags`, `$event` the whole event) then keys,
    /// where `*` is any one key and `**` any number.
    pub selector: String,
    pub method: Method,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The value becomes null.
    Remove,
    /// Every character becomes `*` (the length stays, so it still says how long it was).
    Mask,
    /// An HMAC-SHA256 of the value with the project's salt: equal values stay equal.
    Hash,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "remove" => Some(Method::Remove),
            "mask" => Some(Method::Mask),
            "hash" => Some(Method::Hash),
            _ => None,
        }
    }
}

/// Why a selector cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("selector '{selector}': {why}")]
pub struct SelectorError {
    pub selector: String,
    pub why: String,
}

/// The roots a selector may start with.
const ROOTS: [&str; 8] = [
    "$http",
    "$user",
    "$extra",
    "$contexts",
    "$frame",
    "$breadcrumb",
    "$tags",
    "$event",
];

/// Checks a selector: a known root, then non-empty keys.
pub fn check_selector(selector: &str) -> Result<(), SelectorError> {
    let err = |why: &str| SelectorError {
        selector: selector.to_string(),
        why: why.to_string(),
    };
    let mut parts = selector.split('.');
    let root = parts.next().unwrap_or("");
    if !ROOTS.contains(&root) {
        return Err(err(&format!(
            "it must start with one of {}",
            ROOTS.join(", ")
        )));
    }
    if selector.len() > 200 {
        return Err(err("it is longer than 200 characters"));
    }
    if parts.any(str::is_empty) {
        return Err(err("a key between dots is empty"));
    }
    Ok(())
}

/// A selector split into its root and keys.
struct Selector<'a> {
    root: &'a str,
    keys: Vec<&'a str>,
}

impl<'a> Selector<'a> {
    fn parse(s: &'a str) -> Option<Selector<'a>> {
        check_selector(s).ok()?;
        let mut parts = s.split('.');
        let root = parts.next()?;
        Some(Selector {
            root,
            keys: parts.collect(),
        })
    }

    /// Whether the keys select `path` (keys below the root).
    fn matches(&self, path: &[String]) -> bool {
        fn go(pattern: &[&str], path: &[String]) -> bool {
            match (pattern.first(), path.first()) {
                (None, None) => true,
                // One key or more.
                (Some(&"**"), Some(_)) => go(&pattern[1..], &path[1..]) || go(pattern, &path[1..]),
                (Some(&"*"), Some(_)) => go(&pattern[1..], &path[1..]),
                (Some(p), Some(k)) => p.eq_ignore_ascii_case(k) && go(&pattern[1..], &path[1..]),
                _ => false,
            }
        }
        go(&self.keys, path)
    }
}

/// What one scrubbing pass needs: the settings, compiled.
struct Scrubber<'a> {
    privacy: &'a Privacy,
    rules: Vec<(Selector<'a>, Method)>,
    /// `_meta` being built.
    meta: Map<String, Value>,
    changed: usize,
}

/// Scrubs an event in place as a project's settings say; the number of values changed. Every
/// change is recorded in the event's `_meta`.
pub fn scrub(event: &mut Event, privacy: &Privacy) -> usize {
    if !privacy.scrub && !privacy.scrub_ip && privacy.rules.is_empty() {
        return 0;
    }
    let mut s = Scrubber {
        privacy,
        rules: privacy
            .rules
            .iter()
            .filter_map(|r| Some((Selector::parse(&r.selector)?, r.method)))
            .collect(),
        meta: match event.other.remove("_meta") {
            Some(Value::Object(m)) if event.meta.is_empty() => m,
            _ => std::mem::take(&mut event.meta),
        },
        changed: 0,
    };
    let mut path: Vec<String> = Vec::new();
    if let Some(request) = &mut event.request {
        s.value(request, "$http", &mut path, &["request"]);
    }
    if let Some(user) = &mut event.user {
        if privacy.scrub_ip && user.ip_address.take().is_some() {
            s.record(&["user", "ip_address"], "@ip:remove", "x", None, 0);
        }
        for (key, slot) in [
            ("id", &mut user.id),
            ("email", &mut user.email),
            ("username", &mut user.username),
            ("ip_address", &mut user.ip_address),
            ("name", &mut user.name),
        ] {
            if let Some(text) = slot.take() {
                let mut v = Value::String(text);
                path.push(key.to_string());
                s.keyed(&mut v, Some(key), "$user", &mut path, &["user", key]);
                path.pop();
                *slot = match v {
                    Value::String(t) => Some(t),
                    _ => None,
                };
            }
        }
        s.map(&mut user.other, "$user", &mut path, &["user"]);
    }
    for (field, root, map) in [
        ("extra", "$extra", &mut event.extra),
        ("contexts", "$contexts", &mut event.contexts),
    ] {
        for (key, json) in map {
            path.push(key.clone());
            s.json(json, Some(key), root, &mut path, &[field, key]);
            path.pop();
        }
    }
    for (i, crumb) in event.breadcrumbs.iter_mut().enumerate() {
        let i = i.to_string();
        if let Some(data) = &mut crumb.data {
            s.json(
                data,
                None,
                "$breadcrumb",
                &mut path,
                &["breadcrumbs", "values", &i, "data"],
            );
        }
        if let Some(message) = &mut crumb.message {
            s.text(message, &["breadcrumbs", "values", &i, "message"]);
        }
    }
    for (i, ex) in event.exception.iter_mut().enumerate() {
        let prefix = ["exception", "values", &i.to_string()];
        if let Some(value) = &mut ex.value {
            s.text(value, &[prefix[0], prefix[1], prefix[2], "value"]);
        }
        if let Some(mechanism) = &mut ex.mechanism {
            s.value(
                mechanism,
                "$event",
                &mut path,
                &[prefix[0], prefix[1], prefix[2], "mechanism"],
            );
        }
        for (which, st) in [
            ("stacktrace", &mut ex.stacktrace),
            ("raw_stacktrace", &mut ex.raw_stacktrace),
        ] {
            if let Some(st) = st {
                s.frames(&mut st.frames, &[prefix[0], prefix[1], prefix[2], which]);
            }
        }
    }
    for (i, thread) in event.threads.iter_mut().enumerate() {
        if let Some(st) = &mut thread.stacktrace {
            s.frames(
                &mut st.frames,
                &["threads", "values", &i.to_string(), "stacktrace"],
            );
        }
    }
    if let Some(log) = &mut event.logentry {
        if let Some(m) = &mut log.formatted {
            s.text(m, &["logentry", "formatted"]);
        }
        if let Some(m) = &mut log.message {
            s.text(m, &["logentry", "message"]);
        }
        if let Some(params) = &mut log.params {
            s.value(params, "$event", &mut path, &["logentry", "params"]);
        }
    }
    for i in 0..event.tags.len() {
        let (key, value) = &mut event.tags[i];
        let key = key.clone();
        let mut v = Value::String(std::mem::take(value));
        path.push(key.clone());
        s.keyed(
            &mut v,
            Some(&key),
            "$tags",
            &mut path,
            &["tags", &i.to_string(), "1"],
        );
        path.pop();
        event.tags[i].1 = match v {
            Value::String(t) => t,
            Value::Null => String::new(),
            other => other.to_string(),
        };
    }
    let mut other = std::mem::take(&mut event.other);
    for (key, value) in other.iter_mut() {
        path.push(key.clone());
        let at = [key.as_str()];
        s.keyed(value, Some(key), "$event", &mut path, &at);
        path.pop();
    }
    event.other = other;
    event.meta = s.meta;
    s.changed
}

/// How many values `_meta` says were changed (counted where an entry has remarks).
pub fn filtered_count(event: &Event) -> usize {
    fn count(map: &Map<String, Value>) -> usize {
        map.iter()
            .map(|(k, v)| match v {
                _ if k.is_empty() => usize::from(v.get("rem").is_some()),
                Value::Object(m) => count(m),
                _ => 0,
            })
            .sum()
    }
    count(&event.meta)
}

/// Normalizes a key for matching: lowercase, `-` and spaces read as `_`.
fn key_form(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether the default rules scrub the value of `key` ([`SENSITIVE`], compiled into one
/// pattern so a key is matched without allocating).
pub fn sensitive_by_default(key: &str) -> bool {
    patterns().sensitive.is_match(key)
}

impl Scrubber<'_> {
    fn sensitive(&self, key: &str) -> bool {
        if !self.privacy.scrub {
            return false;
        }
        let own = !self.privacy.safe_fields.is_empty()
            || !self.privacy.sensitive_fields.is_empty()
            || self.privacy.scrub_ip;
        if !own {
            return sensitive_by_default(key);
        }
        let k = key_form(key);
        if self.privacy.safe_fields.iter().any(|s| key_form(s) == k) {
            return false;
        }
        sensitive_by_default(key)
            || self
                .privacy
                .sensitive_fields
                .iter()
                .any(|s| !s.is_empty() && k.contains(&key_form(s)))
            || (self.privacy.scrub_ip
                && (k == "remote_addr" || k == "x_forwarded_for" || k == "x_real_ip"))
    }

    fn frames(&mut self, frames: &mut [Frame], at: &[&str]) {
        let mut path = Vec::new();
        for (i, frame) in frames.iter_mut().enumerate() {
            if let Some(vars) = &mut frame.vars {
                let idx = i.to_string();
                let at: Vec<&str> = at.iter().copied().chain(["frames", &idx, "vars"]).collect();
                path.push("vars".to_string());
                self.json(vars, None, "$frame", &mut path, &at);
                path.pop();
            }
        }
    }

    /// A subtree: its members by key.
    fn map(
        &mut self,
        map: &mut Map<String, Value>,
        root: &str,
        path: &mut Vec<String>,
        at: &[&str],
    ) {
        for (key, value) in map.iter_mut() {
            path.push(key.clone());
            let at: Vec<&str> = at.iter().copied().chain([key.as_str()]).collect();
            self.keyed(value, Some(key), root, path, &at);
            path.pop();
        }
    }

    /// A subtree kept as text (under `key`, when it has one of its own): parsed and scrubbed
    /// only when its key or its text may call for it, and written again only when something
    /// was scrubbed.
    fn json(
        &mut self,
        json: &mut Json,
        key: Option<&str>,
        root: &str,
        path: &mut Vec<String>,
        at: &[&str],
    ) {
        let own = !self.rules.is_empty()
            || !self.privacy.sensitive_fields.is_empty()
            || self.privacy.scrub_ip;
        let by_key = key.is_some_and(|k| self.sensitive(k));
        if !(own || by_key || self.privacy.scrub && may_hold_secrets(json.text())) {
            return;
        }
        let mut v = json.value();
        let before = self.changed;
        self.keyed(&mut v, key, root, path, at);
        if self.changed != before {
            *json = Json::from_value(&v);
        }
    }

    /// A value reached without a key of its own (a subtree's top).
    fn value(&mut self, v: &mut Value, root: &str, path: &mut Vec<String>, at: &[&str]) {
        self.node(v, root, path, at);
    }

    /// A value under `key`: scrubbed whole when the key is sensitive.
    fn keyed(
        &mut self,
        v: &mut Value,
        key: Option<&str>,
        root: &str,
        path: &mut Vec<String>,
        at: &[&str],
    ) {
        if let Some(key) = key
            && self.sensitive(key)
            && !matches!(v, Value::Null)
            && v.as_str() != Some(FILTERED)
        {
            let len = match &*v {
                Value::String(s) => s.chars().count(),
                other => other.to_string().len(),
            };
            *v = Value::String(FILTERED.into());
            self.record(at, "@password:filter", "s", Some((0, FILTERED.len())), len);
            return;
        }
        self.node(v, root, path, at);
    }

    fn node(&mut self, v: &mut Value, root: &str, path: &mut Vec<String>, at: &[&str]) {
        if let Some(method) = self.rule_for(root, path) {
            self.apply(v, method, at);
            return;
        }
        match v {
            Value::Object(map) => self.map(map, root, path, at),
            Value::Array(items) => {
                // Header lists: [["Authorization", "Bearer …"], …].
                for (i, item) in items.iter_mut().enumerate() {
                    let idx = i.to_string();
                    let at: Vec<&str> = at.iter().copied().chain([idx.as_str()]).collect();
                    if let Value::Array(pair) = item
                        && pair.len() == 2
                        && let Some(key) = pair[0].as_str().map(str::to_string)
                    {
                        path.push(key.clone());
                        let at: Vec<&str> = at.iter().copied().chain(["1"]).collect();
                        self.keyed(&mut pair[1], Some(&key), root, path, &at);
                        path.pop();
                        continue;
                    }
                    path.push(idx.clone());
                    self.node(item, root, path, &at);
                    path.pop();
                }
            }
            Value::String(s) => self.text(s, at),
            _ => {}
        }
    }

    /// The first advanced rule that selects this node.
    fn rule_for(&self, root: &str, path: &[String]) -> Option<Method> {
        self.rules
            .iter()
            .find(|(sel, _)| sel.root == root && sel.matches(path))
            .map(|(_, m)| *m)
    }

    fn apply(&mut self, v: &mut Value, method: Method, at: &[&str]) {
        // Masking and hashing change the leaves of a selected object or list.
        match v {
            Value::Object(map) if method != Method::Remove => {
                for (key, child) in map.iter_mut() {
                    let at: Vec<&str> = at.iter().copied().chain([key.as_str()]).collect();
                    self.apply(child, method, &at);
                }
                return;
            }
            Value::Array(items) if method != Method::Remove => {
                for (i, child) in items.iter_mut().enumerate() {
                    let i = i.to_string();
                    let at: Vec<&str> = at.iter().copied().chain([i.as_str()]).collect();
                    self.apply(child, method, &at);
                }
                return;
            }
            _ => {}
        }
        let original = match &*v {
            Value::String(s) => s.clone(),
            Value::Null => return,
            other => other.to_string(),
        };
        let len = original.chars().count();
        match method {
            Method::Remove => {
                *v = Value::Null;
                self.record(at, "rule:remove", "x", None, len);
            }
            Method::Mask => {
                let masked = "*".repeat(len);
                *v = Value::String(masked);
                self.record(at, "rule:mask", "m", Some((0, len)), len);
            }
            Method::Hash => {
                let key =
                    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.privacy.salt.as_bytes());
                let tag = ring::hmac::sign(&key, original.as_bytes());
                let hex: String = tag.as_ref().iter().map(|b| format!("{b:02X}")).collect();
                let n = hex.len();
                *v = Value::String(hex);
                self.record(at, "rule:hash", "p", Some((0, n)), len);
            }
        }
    }

    /// Secrets inside free text: sensitive `key=value` pairs (query strings, form bodies,
    /// cookie headers, URLs inside reprs), card numbers, bearer tokens, private keys, URL
    /// passwords.
    fn text(&mut self, s: &mut String, at: &[&str]) {
        if !self.privacy.scrub || s.len() < 8 {
            return;
        }
        let len = s.chars().count();
        let mut rule = None;
        if s.contains('=') {
            let replaced = patterns().pair.replace_all(s, |c: &regex::Captures<'_>| {
                if &c[3] != FILTERED && self.sensitive(&c[2]) {
                    format!("{}{}={FILTERED}", &c[1], &c[2])
                } else {
                    c[0].to_string()
                }
            });
            if replaced != *s {
                *s = replaced.into_owned();
                rule = Some("@password:filter");
            }
        }
        if s.contains("PRIVATE KEY") {
            let replaced = patterns().private_key.replace_all(s, FILTERED);
            if replaced != *s {
                *s = replaced.into_owned();
                rule = Some("@privatekey:filter");
            }
        }
        if s.contains("://") && s.contains('@') {
            let replaced = patterns()
                .url_password
                .replace_all(s, format!("${{1}}:{FILTERED}@"));
            if replaced != *s {
                *s = replaced.into_owned();
                rule = Some("@urlauth:filter");
            }
        }
        if has_auth_word(s) {
            let replaced = patterns()
                .bearer
                .replace_all(s, format!("${{1}} {FILTERED}"));
            if replaced != *s {
                *s = replaced.into_owned();
                rule = Some("@bearer:filter");
            }
        }
        if s.bytes().filter(u8::is_ascii_digit).count() >= 13 {
            let replaced = patterns().card.replace_all(s, |c: &regex::Captures<'_>| {
                let found = &c[0];
                if luhn(found) {
                    FILTERED.to_string()
                } else {
                    found.to_string()
                }
            });
            if replaced != *s {
                *s = replaced.into_owned();
                rule = Some("@creditcard:filter");
            }
        }
        if let Some(rule) = rule {
            self.record(at, rule, "s", None, len);
        }
    }

    /// Records a change under `_meta` at `at`.
    fn record(
        &mut self,
        at: &[&str],
        rule: &str,
        kind: &str,
        range: Option<(usize, usize)>,
        len: usize,
    ) {
        self.changed += 1;
        let mut node = &mut self.meta;
        for key in at {
            let next = node
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            let Value::Object(m) = next else { return };
            node = m;
        }
        let remark = match range {
            Some((a, b)) => json!([rule, kind, a, b]),
            None => json!([rule, kind]),
        };
        let entry = node
            .entry(String::new())
            .or_insert_with(|| json!({"rem": [], "len": len}));
        if let Some(Value::Array(rem)) = entry.get_mut("rem") {
            rem.push(remark);
        }
    }
}

/// Whether JSON text may hold what the default rules scrub: a sensitive key anywhere, or in
/// some string what [`Scrubber::text`] looks for. It errs on the side of yes: the text of every
/// key and string is in it verbatim unless escaped, and an escape that may stand for one of the
/// characters looked for is a yes.
fn may_hold_secrets(text: &str) -> bool {
    may_hide_characters(text)
        || patterns().sensitive.is_match(text)
        || text.contains('=')
        || text.contains("PRIVATE KEY")
        || (text.contains("://") && text.contains('@'))
        || has_auth_word(text)
        || longest_digit_run(text) >= 13
}

/// Whether JSON text holds an escape that may stand for a character the checks look for:
/// `\u` (any character) or `\/` (a URL's slash). The others (`\n`, `\t`, `\"`, `\\`…)
/// stand for quotes, backslashes and control characters, which nothing scrubbed is made of
/// (an authorization word counts only before a space), so a string such as `"12.11\n"` does
/// not make its subtree parsed.
fn may_hide_characters(text: &str) -> bool {
    let bytes = text.as_bytes();
    memchr::memchr_iter(b'\\', bytes).any(|at| matches!(bytes.get(at + 1), Some(b'u' | b'/')))
}

/// `bearer `, `token ` or `basic `, in any case: what may start an authorization value. One
/// pass over the string: at each space, the words it may end.
fn has_auth_word(s: &str) -> bool {
    let bytes = s.as_bytes();
    memchr::memchr_iter(b' ', bytes).any(|space| {
        let before = &bytes[..space];
        AUTH_WORDS.iter().any(|word| {
            before.len() >= word.len()
                && before[before.len() - word.len()..].eq_ignore_ascii_case(word.as_bytes())
        })
    })
}

/// The words before a space that may start an authorization value.
const AUTH_WORDS: [&str; 3] = ["bearer", "token", "basic"];

/// The most digits in a row, single spaces or dashes between them allowed (as in a card
/// number).
fn longest_digit_run(s: &str) -> usize {
    let (mut best, mut run, mut after_separator) = (0, 0, false);
    for b in s.bytes() {
        if b.is_ascii_digit() {
            run += 1;
            after_separator = false;
            best = best.max(run);
        } else if (b == b' ' || b == b'-') && run > 0 && !after_separator {
            after_separator = true;
        } else {
            run = 0;
            after_separator = false;
        }
    }
    best
}

/// Whether a run of digits (with spaces or dashes) passes the Luhn check.
fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 { d - 9 } else { d }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

struct Patterns {
    sensitive: Regex,
    pair: Regex,
    card: Regex,
    bearer: Regex,
    private_key: Regex,
    url_password: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| Patterns {
        // Any of the names, any case, `_` also written `-` or a space.
        sensitive: Regex::new(&format!(
            "(?i){}",
            SENSITIVE
                .iter()
                .map(|s| regex::escape(s).replace('_', "[-_ ]"))
                .collect::<Vec<_>>()
                .join("|")
        ))
        .expect("sensitive names"),
        // `name=value` after the start, `?`, `&` or `;`.
        pair: Regex::new(r##"(^|[?&;]\s*)([A-Za-z0-9_.\-\[\]]+)=([^&;\s'"#<>]*)"##)
            .expect("pair pattern"),
        // 13 to 19 digits, optionally grouped by spaces or dashes.
        card: Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("card pattern"),
        bearer: Regex::new(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
            .expect("bearer pattern"),
        private_key: Regex::new(
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z ]*PRIVATE KEY-----|\z)",
        )
        .expect("private key pattern"),
        url_password: Regex::new(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]+):[^@/?#\s]+@")
            .expect("url pattern"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::normalize::from_json as event;

    #[test]
    fn an_auth_word_is_found_wherever_it_stands_in_any_case() {
        // What the check means, written plainly: any window equal to a word and its space.
        let plainly = |s: &str| {
            ["bearer ", "token ", "basic "].iter().any(|needle| {
                (s.as_bytes().windows(needle.len()))
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
            })
        };
        let words = ["Bearer", "TOKEN", "basic", "bear", "tok en", "basicx", "é"];
        let glue = ["", " ", "  ", "x", "-", "é", "\t"];
        let mut checked = 0;
        for a in glue {
            for w in words {
                for b in glue {
                    for tail in ["", "abc", " abc", "er abc"] {
                        let s = format!("{a}{w}{b}{tail}");
                        assert_eq!(has_auth_word(&s), plainly(&s), "{s:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000);
        assert!(has_auth_word("Authorization: Bearer abc"));
        assert!(has_auth_word("token "));
        assert!(!has_auth_word("tokens and bearers"));
        assert!(!has_auth_word("basic"), "no space after it");
    }

    #[test]
    fn sensitive_keys_and_secrets_in_text_are_filtered_and_recorded() {
        let mut ev = event(json!({
            "message": "charge 4111 1111 1111 1111 failed, order 1234567890123",
            "request": {
                "url": "https://shop.example.com/pay?card=1&password=hunter2",
                "headers": {"Authorization": "Bearer abc.def.ghi", "X-Api-Key": "k-123", "Accept": "text/html"},
                "cookies": "sessionid=s3cr3t; theme=dark",
                "data": {"username": "ada", "password": "hunter2"},
                "env": {"REMOTE_ADDR": "10.0.0.7"},
            },
            "exception": {"values": [{"type": "ValueError", "value": "db at postgres://app:pa55w0rd@db:5432/shop",
                "stacktrace": {"frames": [{"function": "pay", "vars": {
                    "api_key": "sk_live_123", "headers": {"Authorization": "Basic dXNlcjpwYXNz"},
                    "note": "-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----",
                    "count": 3}}]}}]},
            "extra": {"db_password": "x", "visible": "ok"},
            "breadcrumbs": [{"message": "auth with token ABCDEFGH12345678", "data": {"csrftoken": "t"}}],
            "user": {"id": "42", "ip_address": "10.0.0.7"},
        }));
        let privacy = Privacy::default();
        let n = scrub(&mut ev, &privacy);
        let text = serde_json::to_string(&ev).unwrap();
        for secret in [
            "hunter2",
            "abc.def.ghi",
            "k-123",
            "s3cr3t",
            "sk_live_123",
            "dXNlcjpwYXNz",
            "MIIabc",
            "pa55w0rd",
            "4111 1111 1111 1111",
            "ABCDEFGH12345678",
        ] {
            assert!(!text.contains(secret), "{secret} is still in {text}");
        }
        for kept in [
            "text/html",
            "ada",
            "order 1234567890123",
            "visible",
            "10.0.0.7",
            "postgres://app:",
        ] {
            assert!(text.contains(kept), "{kept} was scrubbed: {text}");
        }
        assert!(n >= 10, "{n} changes");
        assert_eq!(filtered_count(&ev), n);
        let meta = Value::Object(ev.meta.clone());
        assert_eq!(
            meta["request"]["headers"]["Authorization"][""]["rem"][0][0],
            "@password:filter"
        );
        assert_eq!(meta["request"]["headers"]["Authorization"][""]["len"], 18);
        assert_eq!(meta["extra"]["db_password"][""]["len"], 1);
    }

    #[test]
    fn subtrees_read_as_text_are_scrubbed_as_trees_and_untouched_when_clean() {
        // Each variable holds what one of the default rules scrubs; the payload is in the
        // current shape, so the variables arrive as text.
        let secrets = [
            (r#""Passwd": "hunter2""#, "hunter2"),
            (r#""pass\u0077ord": "escaped-key""#, "escaped-key"),
            (r#""q": "page=2&secret=s3cr3t""#, "s3cr3t"),
            (
                r#""card": "paid with 4111-1111-1111-1111""#,
                "4111-1111-1111-1111",
            ),
            (r#""dsn": "postgres://app:pa55w0rd@db/shop""#, "pa55w0rd"),
            (r#""header": "Bearer abcdefghijkl""#, "abcdefghijkl"),
            (
                r#""pem": "-----BEGIN PRIVATE KEY-----MIIx-----END PRIVATE KEY-----""#,
                "MIIx",
            ),
        ];
        let clean = r#"{"user":{"order":"'b'"},"cart":[{"price":"3"}],"when":"2026-12-03 10:00"}"#;
        let frames: Vec<String> = secrets
            .iter()
            .map(|(var, _)| format!(r#"{{"function": "f", "vars": {{{var}, "n": "1"}}}}"#))
            .chain([format!(r#"{{"function": "g", "vars": {clean}}}"#)])
            .collect();
        let payload = format!(
            r#"{{"exception": [{{"type": "E", "stacktrace": {{"frames": [{}]}}}}],
                "contexts": {{"app": {{"api_token": "tok-1", "n": 1}}, "session": {{"id": "s-1"}},
                    "runtime": {{"name": "CPython"}}}}}}"#,
            frames.join(",")
        );
        let ctx = crate::event::normalize::Context {
            received: 1.8e9,
            ..Default::default()
        };
        let mut ev = crate::event::normalize::normalize(payload.as_bytes(), &ctx).unwrap();
        assert_eq!(scrub(&mut ev, &Privacy::default()), secrets.len() + 2);
        let contexts = serde_json::to_string(&ev.contexts).unwrap();
        assert!(
            !contexts.contains("tok-1") && !contexts.contains("s-1"),
            "{contexts}"
        );
        assert_eq!(ev.contexts["runtime"].text(), r#"{"name": "CPython"}"#);
        let frames = ev.exception[0].frames();
        for (frame, (_, secret)) in frames.iter().zip(secrets) {
            let vars = frame.vars.as_ref().unwrap().text();
            assert!(!vars.contains(secret), "{secret} is still in {vars}");
            assert!(
                vars.contains(FILTERED) && vars.contains(r#""n":"1""#),
                "{vars}"
            );
        }
        assert_eq!(
            frames.last().unwrap().vars.as_ref().unwrap().text(),
            clean,
            "variables with nothing to scrub keep the text they arrived as"
        );
        assert!(!may_hold_secrets(clean));
    }

    #[test]
    fn only_escapes_that_may_hide_what_is_scrubbed_make_a_subtree_parsed() {
        // What Node's SDK sends about Debian: no secret in it, only a newline.
        assert!(!may_hold_secrets(
            r#"{"name":"Debian","version":"12.11\n"}"#
        ));
        assert!(!may_hold_secrets(
            r#"{"path":"C:\\Users\\ann","q":"say \"hi\"\t"}"#
        ));
        for hidden in [
            r#"{"pass\u0077ord":"hunter2"}"#,
            r#"{"url":"https:\/\/ann:hunter2@db.example.com"}"#,
            r#"{"header":"Bearer\u0020abcdefgh12345"}"#,
        ] {
            assert!(may_hold_secrets(hidden), "{hidden}");
            let payload = format!(r#"{{"message":"m","extra":{{"x":{hidden}}}}}"#);
            let ctx = crate::event::normalize::Context::default();
            let mut ev = crate::event::normalize::normalize(payload.as_bytes(), &ctx).unwrap();
            assert_eq!(scrub(&mut ev, &Privacy::default()), 1, "{hidden}");
            assert!(
                !ev.extra["x"].text().contains("hunter2")
                    && !ev.extra["x"].text().contains("abcdefgh")
            );
        }
    }

    #[test]
    fn project_settings_add_remove_and_rewrite() {
        let mut ev = event(json!({
            "message": "x",
            "request": {"headers": [["X-Custom", "v1"], ["X-Other", "v2"]], "env": {"REMOTE_ADDR": "10.0.0.7"}},
            "user": {"email": "ada@example.com", "ip_address": "10.0.0.7"},
            "extra": {"order": "o-1", "password": "kept on purpose"},
            "exception": {"values": [{"type": "E", "stacktrace": {"frames": [{"vars": {"a": {"b": "deep"}}}]}}]},
        }));
        let privacy = Privacy {
            sensitive_fields: vec!["order".into()],
            safe_fields: vec!["password".into()],
            scrub_ip: true,
            rules: vec![
                Rule {
                    selector: "$http.headers.x-custom".into(),
                    method: Method::Remove,
                },
                Rule {
                    selector: "$user.email".into(),
                    method: Method::Hash,
                },
                Rule {
                    selector: "$frame.vars.**".into(),
                    method: Method::Mask,
                },
            ],
            salt: "salt".into(),
            ..Privacy::default()
        };
        scrub(&mut ev, &privacy);
        let text = serde_json::to_string(&ev).unwrap();
        assert!(
            !text.contains("ada@example.com")
                && !text.contains("10.0.0.7")
                && !text.contains("o-1"),
            "{text}"
        );
        assert!(
            text.contains("kept on purpose"),
            "a safe field stays: {text}"
        );
        assert!(text.contains("v2") && !text.contains("v1"), "{text}");
        assert!(text.contains("\"****\""), "masked: {text}");
        let hashed = ev.user.as_ref().unwrap().email.clone().unwrap();
        assert_eq!(hashed.len(), 64);
        assert!(check_selector("$nowhere.x").is_err());
        assert!(check_selector("$http..x").is_err());
    }

    #[test]
    fn luhn_tells_cards_from_other_numbers() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("1234567890123"));
    }
}
