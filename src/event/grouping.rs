//! Grouping: the fingerprint that decides which issue an event belongs to.
//!
//! In order: the client's custom `fingerprint` (with `{{ default }}` expanding to the default
//! parts), then the in-app stack frames (module or file basename, function, and the
//! whitespace-collapsed context line; never line numbers), then the exception type, then the
//! parameterized message, in which numbers, hex, UUIDs, IPs, emails and quoted strings are
//! replaced so that "user 17 not found" and "user 42 not found" are one issue.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::model::{Event, Frame};

/// Which part of the event produced the fingerprint; shown on the issue.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The client's own `fingerprint`.
    Fingerprint,
    /// Stack frames (of the exceptions, or of the single thread).
    Stacktrace,
    /// Exception types and, without frames, the parameterized value.
    Exception,
    /// The parameterized message.
    Message,
    /// Nothing to group on: every such event lands in one issue.
    #[default]
    Fallback,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Fingerprint => "fingerprint",
            Strategy::Stacktrace => "stacktrace",
            Strategy::Exception => "exception",
            Strategy::Message => "message",
            Strategy::Fallback => "fallback",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grouping {
    pub hash: [u8; 16],
    pub strategy: Strategy,
}

/// Frames beyond this many (innermost kept) add nothing to grouping.
const MAX_GROUPING_FRAMES: usize = 50;
/// Context lines longer than this are minified code and say nothing stable.
const MAX_CONTEXT_LINE: usize = 120;
const CONTEXT_LINE_PLATFORMS: [&str; 5] = ["javascript", "node", "python", "php", "ruby"];

pub fn group(ev: &Event) -> Grouping {
    let custom = !ev.fingerprint.is_empty() && !ev.fingerprint.iter().all(|f| is_default(f));
    if custom {
        let (default_parts, _) = default_parts(ev);
        let mut parts = Vec::new();
        for entry in &ev.fingerprint {
            if is_default(entry) {
                parts.extend(default_parts.iter().cloned());
            } else {
                parts.push(expand_variable(ev, entry));
            }
        }
        return Grouping {
            hash: digest(&parts),
            strategy: Strategy::Fingerprint,
        };
    }
    let (parts, strategy) = default_parts(ev);
    Grouping {
        hash: digest(&parts),
        strategy,
    }
}

fn digest(parts: &[String]) -> [u8; 16] {
    let mut md5 = Md5::new();
    for p in parts {
        md5.update(p.as_bytes());
        md5.update([0]);
    }
    md5.finalize().into()
}

fn variable(entry: &str) -> Option<&str> {
    let inner = entry.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    (!inner.is_empty() && !inner.contains(char::is_whitespace)).then_some(inner)
}

fn is_default(entry: &str) -> bool {
    variable(entry) == Some("default")
}

/// Resolves the server-side fingerprint variables; unknown ones stay literal.
fn expand_variable(ev: &Event, entry: &str) -> String {
    let Some(name) = variable(entry) else {
        return entry.to_string();
    };
    let crashing = ev.main_exception().and_then(|ex| ex.frames().last());
    let value = match name {
        "transaction" => Some(
            ev.transaction
                .clone()
                .unwrap_or_else(|| "<no-transaction>".into()),
        ),
        "type" | "error.type" => ev.main_exception().and_then(|ex| ex.ty.clone()),
        "error.value" => ev.main_exception().and_then(|ex| ex.value.clone()),
        "message" => ev
            .logentry
            .as_ref()
            .and_then(|l| l.text())
            .map(str::to_string),
        "function" | "stack.function" => crashing.and_then(|f| f.function.clone()),
        "module" | "stack.module" => crashing.and_then(|f| f.module.clone()),
        "package" | "stack.package" => crashing
            .and_then(|f| f.package.as_deref())
            .map(|p| basename(p).to_string()),
        "level" => Some(ev.level.as_str().to_string()),
        "logger" => ev.logger.clone(),
        _ => match name.strip_prefix("tags.") {
            Some(tag) => Some(
                ev.tag(tag)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("<no-value-for-tag-{tag}>")),
            ),
            None => return entry.to_string(),
        },
    };
    value.unwrap_or_else(|| format!("<no-{name}>"))
}

fn default_parts(ev: &Event) -> (Vec<String>, Strategy) {
    let mut parts = Vec::new();
    if !ev.exception.is_empty() {
        let mut any_frames = false;
        for ex in &ev.exception {
            parts.push("exc".to_string());
            if let Some(ty) = ex.ty.as_deref().filter(|_| !ex.is_synthetic()) {
                parts.push(ty.to_string());
            }
            let before = parts.len();
            frame_parts(ev, ex.frames(), &mut parts);
            any_frames |= parts.len() > before;
        }
        // SDKs that attach the capturing thread's stack instead of the exception's (the
        // Rust SDK's `attach_stacktrace`) still say where the error was raised.
        if !any_frames && let [thread] = ev.threads.as_slice() {
            let before = parts.len();
            frame_parts(
                ev,
                thread.stacktrace.as_ref().map_or(&[], |s| &s.frames),
                &mut parts,
            );
            any_frames = parts.len() > before;
        }
        if any_frames {
            return (parts, Strategy::Stacktrace);
        }
        if let Some(value) = ev.main_exception().and_then(|ex| ex.value.as_deref()) {
            parts.push(parameterize(value));
        }
        return (parts, Strategy::Exception);
    }
    if let [thread] = ev.threads.as_slice()
        && let Some(st) = &thread.stacktrace
    {
        frame_parts(ev, &st.frames, &mut parts);
        if !parts.is_empty() {
            return (parts, Strategy::Stacktrace);
        }
    }
    if let Some(entry) = &ev.logentry {
        let text = entry
            .message
            .as_deref()
            .filter(|m| !m.is_empty())
            .or(entry.formatted.as_deref());
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            return (vec!["msg".into(), parameterize(text)], Strategy::Message);
        }
    }
    (vec!["fallback".into()], Strategy::Fallback)
}

/// Contributing values of the frames, oldest first: in-app frames when there are any.
fn frame_parts(ev: &Event, frames: &[Frame], out: &mut Vec<String>) {
    let any_flag = frames.iter().any(|f| f.in_app.is_some());
    let in_app = |f: &Frame| match f.in_app {
        Some(flag) => flag,
        None => !any_flag && !looks_like_dependency(f),
    };
    let chosen: Vec<&Frame> = if frames.iter().any(in_app) {
        frames.iter().filter(|f| in_app(f)).collect()
    } else {
        frames.iter().collect()
    };
    let start = chosen.len().saturating_sub(MAX_GROUPING_FRAMES);
    let mut previous: Option<&Frame> = None;
    for frame in &chosen[start..] {
        if previous == Some(*frame) {
            continue; // recursion adds nothing
        }
        previous = Some(frame);
        let platform = frame.platform.as_deref().unwrap_or(&ev.platform);
        let key = frame
            .module
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .or_else(|| {
                frame
                    .filename
                    .as_deref()
                    .or(frame.abs_path.as_deref())
                    .filter(|p| !is_url_or_anonymous(p))
                    .map(|p| basename(p).to_ascii_lowercase())
            });
        let function = frame.function.as_deref().and_then(normalize_function);
        let line = frame
            .context_line
            .as_deref()
            .filter(|l| l.len() <= MAX_CONTEXT_LINE && CONTEXT_LINE_PLATFORMS.contains(&platform))
            .map(collapse_whitespace)
            .filter(|l| !l.is_empty());
        if key.is_none() && function.is_none() && line.is_none() {
            continue;
        }
        out.push(key.unwrap_or_default());
        out.push(function.unwrap_or_default());
        out.push(line.unwrap_or_default());
    }
}

fn looks_like_dependency(f: &Frame) -> bool {
    const MARKERS: [&str; 7] = [
        "site-packages",
        "dist-packages",
        "node_modules",
        "/usr/lib/",
        "/vendor/",
        "node:internal",
        "<frozen ",
    ];
    let path = f
        .abs_path
        .as_deref()
        .or(f.filename.as_deref())
        .unwrap_or("");
    let module = f.module.as_deref().unwrap_or("");
    MARKERS.iter().any(|m| path.contains(m))
        || ["java.", "javax.", "sun.", "kotlin.", "jdk."]
            .iter()
            .any(|p| module.starts_with(p))
}

fn is_url_or_anonymous(path: &str) -> bool {
    path.starts_with("http://")
        || path.starts_with("https://")
        || path.starts_with("blob:")
        || path == "<anonymous>"
        || path == "[native code]"
}

fn basename(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn normalize_function(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty()
        || matches!(
            name,
            "?" | "<anonymous>" | "Anonymous function" | "<unknown>" | "<redacted>"
        )
        || name.starts_with("{closure")
        || name.starts_with("lambda$")
    {
        return None;
    }
    // "Object.foo" and "new Foo" say the same as "foo" / "Foo" across JS engines.
    let name = name.strip_prefix("new ").unwrap_or(name);
    let name = name.strip_prefix("Object.").unwrap_or(name);
    Some(name.to_string())
}

fn collapse_whitespace(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Replaces the variable parts of a message with placeholders.
pub fn parameterize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let chars: Vec<char> = message.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let after_word = i > 0 && chars[i - 1].is_alphanumeric();
        if (c == '\'' || c == '"' || c == '`')
            && !after_word
            && let Some(len) = chars[i + 1..].iter().position(|&q| q == c)
        {
            out.push_str("<str>");
            i += len + 2;
            continue;
        }
        if is_word_char(c) {
            let start = i;
            while i < chars.len() && is_word_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let trimmed = word.trim_end_matches(['.', ':', '-']);
            out.push_str(&classify(trimmed).unwrap_or_else(|| trimmed.to_string()));
            out.push_str(&word[trimmed.len()..]);
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | ':' | '+')
}

fn classify(word: &str) -> Option<String> {
    let has_digit = word.bytes().any(|b| b.is_ascii_digit());
    if let Some((local, domain)) = word.split_once('@')
        && !local.is_empty()
        && domain.contains('.')
    {
        return Some("<email>".into());
    }
    if is_uuid(word) {
        return Some("<uuid>".into());
    }
    if is_ipv4(word)
        || (word.matches(':').count() >= 2 && is_hexish(&word.replace(':', "")) && has_digit)
    {
        return Some("<ip>".into());
    }
    if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X"))
        && !hex.is_empty()
        && is_hexish(hex)
    {
        return Some("<hex>".into());
    }
    if word.len() >= 8 && has_digit && is_hexish(word) {
        return Some("<hex>".into());
    }
    let numeric = word
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b':' | b'-' | b'+' | b'_'));
    if has_digit && numeric {
        return Some("<num>".into());
    }
    // A number with a short unit: "30s", "250ms", "10MB", "2nd".
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let unit = &word[digits..];
    if digits > 0 && (1..=3).contains(&unit.len()) && unit.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return Some(format!("<num>{unit}"));
    }
    None
}

fn is_hexish(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_ipv4(s: &str) -> bool {
    let s = s.split(':').next().unwrap_or(s);
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::normalize::{Context, normalize_value};
    use serde_json::json;

    fn grouping(v: serde_json::Value) -> Grouping {
        group(
            &normalize_value(
                v,
                &Context {
                    received: 1e9,
                    ..Default::default()
                },
            )
            .unwrap(),
        )
    }

    fn error_at(line_no: u64, value: &str, function: &str) -> serde_json::Value {
        json!({
            "platform": "python",
            "exception": {"values": [{"type": "ValueError", "value": value, "stacktrace": {"frames": [
                {"module": "django.core", "function": "handle", "in_app": false, "lineno": 3},
                {"module": "app.views", "function": function, "context_line": "   raise ValueError(x)", "lineno": line_no, "in_app": true}
            ]}}]}
        })
    }

    #[test]
    fn same_site_different_values_group_together() {
        let a = grouping(error_at(10, "bad 1", "index"));
        let b = grouping(error_at(11, "totally different", "index"));
        assert_eq!(a, b);
        assert_eq!(a.strategy, Strategy::Stacktrace);
        assert_ne!(a.hash, grouping(error_at(10, "bad 1", "detail")).hash);
    }

    #[test]
    fn messages_differing_in_numbers_group_together() {
        let a = grouping(json!({"message": "user 17 not found"}));
        let b = grouping(json!({"message": "user 42 not found"}));
        let c = grouping(json!({"message": "order 42 not found"}));
        assert_eq!(a, b);
        assert_eq!(a.strategy, Strategy::Message);
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn exception_without_frames_uses_type_and_parameterized_value() {
        let a =
            grouping(json!({"exception": {"type": "Timeout", "value": "after 30s to 10.0.0.1"}}));
        let b =
            grouping(json!({"exception": {"type": "Timeout", "value": "after 31s to 10.0.0.2"}}));
        assert_eq!(a, b);
        assert_eq!(a.strategy, Strategy::Exception);
    }

    #[test]
    fn custom_fingerprint_overrides_and_default_expands() {
        let mut a = error_at(1, "x", "index");
        a["fingerprint"] = json!(["my-group"]);
        let mut b = error_at(1, "x", "other");
        b["fingerprint"] = json!(["my-group"]);
        assert_eq!(grouping(a.clone()), grouping(b));
        assert_eq!(grouping(a).strategy, Strategy::Fingerprint);

        let mut plain = error_at(1, "x", "index");
        plain["fingerprint"] = json!(["{{ default }}"]);
        assert_eq!(grouping(plain).strategy, Strategy::Stacktrace);

        let mut salted = error_at(1, "x", "index");
        salted["fingerprint"] = json!(["{{default}}", "{{ tags.shard }}"]);
        salted["tags"] = json!({"shard": "1"});
        let mut other_shard = salted.clone();
        other_shard["tags"] = json!({"shard": "2"});
        assert_ne!(grouping(salted).hash, grouping(other_shard).hash);
    }

    #[test]
    fn parameterize_replaces_variable_parts() {
        assert_eq!(
            parameterize(
                "user 42 (bob@example.com) from 10.0.0.7 sent 'x y' at 0xdeadbeef id 550e8400-e29b-41d4-a716-446655440000."
            ),
            "user <num> (<email>) from <ip> sent <str> at <hex> id <uuid>."
        );
        assert_eq!(parameterize("can't open file"), "can't open file");
        assert_eq!(parameterize("/tmp/123/x"), "/tmp/<num>/x");
    }
}
