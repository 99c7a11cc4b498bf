//! Normalization: every lenient and legacy payload shape SDKs have sent over the years becomes
//! one [`Event`]. Integer and aliased levels, string or object `message`/`logentry`,
//! `exception` as a list, a single object or `{values}`, `sentry.interfaces.*` keys, tags as an
//! object or as pairs, float or ISO timestamps, dashed or plain event ids, and Python's bare
//! `NaN`/`Infinity` tokens all end up in the same typed shape. Pure: bytes in, event out.

use std::collections::BTreeMap;

use crate::ids::EventId;
use serde_json::{Map, Value};

use super::limits::keep_ends;
use super::model::{
    Breadcrumb, Event, Exception, Frame, Json, Level, LogEntry, Stacktrace, Thread, User,
};
use super::wire::{Scalar, Scalars, Typed};

/// How far ahead of the receive time a client clock may be before picket distrusts it.
const FUTURE_SLACK_SECS: f64 = 60.0;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NormalizeError {
    #[error("invalid JSON data: {0}")]
    InvalidJson(String),
    #[error("invalid event: the payload is JSON but not an object")]
    NotAnObject,
    #[error("the event nests JSON deeper than the limit max_json_depth ({max})")]
    TooDeep { max: usize },
    #[error("invalid feedback: {0}")]
    Feedback(&'static str),
}

/// What the transport knows about an event that its payload may not say.
#[derive(Debug, Default, Clone)]
pub struct Context<'a> {
    /// Receive time (Unix seconds).
    pub received: f64,
    /// The envelope header's `event_id`, which wins over the payload's.
    pub event_id: Option<EventId>,
    /// The client address, for `user.ip_address = "{{auto}}"`.
    pub client_ip: Option<&'a str>,
    /// What one event may hold.
    pub limits: super::EventLimits,
}

/// Parses an event payload and normalizes it: by the typed parse when the payload is in the
/// shape current SDKs send, else through a `Value` tree.
pub fn normalize(json: &[u8], ctx: &Context<'_>) -> Result<Event, NormalizeError> {
    super::limits::check_depth(json, ctx.limits.max_json_depth)?;
    // Checked once as a whole, the payload's strings are not checked again one by one.
    if let Ok(text) = std::str::from_utf8(json)
        && let Some(payload) = super::wire::parse(text)
    {
        return Ok(build(payload.fields, Some(payload.typed), ctx));
    }
    let value = match serde_json::from_slice::<Value>(json) {
        Ok(v) => v,
        Err(first) => {
            // Old Python clients write bare NaN/Infinity; retry once with those tokens replaced.
            let cleaned = replace_non_finite_tokens(json).ok_or_else(|| invalid_json(&first))?;
            serde_json::from_slice::<Value>(&cleaned).map_err(|_| invalid_json(&first))?
        }
    };
    normalize_value(value, ctx)
}

fn invalid_json(e: &serde_json::Error) -> NormalizeError {
    NormalizeError::InvalidJson(e.to_string())
}

/// A payload normalized at a fixed receive time, for the tests of what works on events.
#[cfg(test)]
pub(crate) fn from_json(v: Value) -> Event {
    let ctx = Context {
        received: 1_700_000_000.0,
        ..Default::default()
    };
    normalize_value(v, &ctx).expect("a test event")
}

/// Normalizes an already parsed payload.
pub fn normalize_value(value: Value, ctx: &Context<'_>) -> Result<Event, NormalizeError> {
    let Value::Object(obj) = value else {
        return Err(NormalizeError::NotAnObject);
    };
    Ok(build(obj, None, ctx))
}

/// Makes the event from the payload's top-level keys, with what the typed parse reads (the
/// scalar keys, exceptions, threads, breadcrumbs, user, contexts, extra, sdk, modules) either
/// already read (`typed`) or still among the keys.
fn build(mut obj: Map<String, Value>, mut typed: Option<Typed>, ctx: &Context<'_>) -> Event {
    let mut ev = Event {
        received: ctx.received,
        ..Default::default()
    };

    let scalars = match &mut typed {
        Some(t) => std::mem::take(&mut t.scalars),
        None => Scalars::take_from(&mut obj),
    };
    ev.event_id = (ctx.event_id)
        .or_else(|| match scalars.event_id? {
            Scalar::Text(id) => EventId::parse(&id),
            other => EventId::parse(&other.into_string()?),
        })
        .unwrap_or_else(EventId::random);
    ev.timestamp = (scalars.timestamp.and_then(|t| t.timestamp()))
        .filter(|t| t.is_finite() && *t > 0.0 && *t <= ctx.received + FUTURE_SLACK_SECS)
        .unwrap_or(ctx.received);
    ev.level = scalars.level.and_then(|l| l.level()).unwrap_or_default();
    ev.platform = (scalars.platform.and_then(Scalar::into_string))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "other".to_string());
    for (slot, value) in [
        (&mut ev.logger, scalars.logger),
        (&mut ev.transaction, scalars.transaction),
        (&mut ev.culprit, scalars.culprit),
        (&mut ev.server_name, scalars.server_name),
        (&mut ev.release, scalars.release),
        (&mut ev.dist, scalars.dist),
        (&mut ev.environment, scalars.environment),
    ] {
        *slot = value
            .and_then(Scalar::into_string)
            .filter(|s| !s.is_empty());
    }

    ev.logentry = log_entry(&mut obj);

    let max_frames = ctx.limits.max_frames;
    let max_crumbs = 2 * ctx.limits.max_breadcrumbs;
    let (user, sdk, modules) = match &mut typed {
        Some(t) => {
            ev.contexts = t.contexts.take().unwrap_or_default();
            ev.extra = t.extra.take().unwrap_or_default();
            (t.user.take(), t.sdk.take(), t.modules.take())
        }
        None => {
            ev.contexts = as_text(object(take(
                &mut obj,
                "contexts",
                "sentry.interfaces.Contexts",
            )));
            ev.extra = as_text(object(obj.remove("extra")));
            let user = take(&mut obj, "user", "sentry.interfaces.User").and_then(user);
            let json = |v: Option<Value>| v.map(|v| Json::from_value(&v));
            (user, json(obj.remove("sdk")), json(obj.remove("modules")))
        }
    };
    ev.sdk = sdk.filter(Json::is_object);
    ev.modules = modules.filter(|m| m.is_object() && !m.is_empty_object());
    match typed {
        Some(typed) => {
            ev.exception = (typed.exception.into_iter())
                .filter_map(|e| e.typed(max_frames))
                .collect();
            ev.threads = (typed.threads.into_iter())
                .map(|t| t.typed(max_frames))
                .collect();
            let mut crumbs = typed.breadcrumbs;
            keep_ends(&mut crumbs, 0, max_crumbs);
            ev.breadcrumbs = crumbs.into_iter().map(|b| b.typed()).collect();
        }
        None => {
            let exceptions = take(&mut obj, "exception", "sentry.interfaces.Exception");
            ev.exception = exception_values(exceptions)
                .into_iter()
                .filter_map(|v| exception(v, max_frames))
                .collect();
            ev.threads = values(obj.remove("threads"))
                .into_iter()
                .filter_map(|v| thread(v, max_frames))
                .collect();
            let mut crumbs = values(take(
                &mut obj,
                "breadcrumbs",
                "sentry.interfaces.Breadcrumbs",
            ));
            // Only the latest are kept; the slack leaves room for entries that are not
            // breadcrumbs.
            keep_ends(&mut crumbs, 0, max_crumbs);
            ev.breadcrumbs = crumbs.into_iter().filter_map(breadcrumb).collect();
        }
    }
    if let Some(st) = take(&mut obj, "stacktrace", "sentry.interfaces.Stacktrace")
        .and_then(|v| stacktrace(v, max_frames))
    {
        match ev.exception.as_mut_slice() {
            [only] if only.stacktrace.is_none() => only.stacktrace = Some(st),
            _ => ev.threads.push(Thread {
                stacktrace: Some(st),
                crashed: Some(true),
                ..Default::default()
            }),
        }
    }
    ev.tags = tags(obj.remove("tags"));
    // Read only when the text may hold it (written out, or behind an escape).
    let infer_ip = (ev.sdk.as_ref())
        .filter(|s| s.text().contains("infer_ip") || s.text().contains('\\'))
        .and_then(|s| {
            s.value()
                .pointer("/settings/infer_ip")?
                .as_str()
                .map(str::to_owned)
        });
    let infer_ip = infer_ip.as_deref();
    let (infer_auto, infer_never) = (infer_ip == Some("auto"), infer_ip == Some("never"));
    let client_ip = ctx.client_ip.filter(|_| !infer_never);
    ev.user = user.and_then(|u| known_user(u, client_ip));
    // Current browser SDKs ask for the address with `sdk.settings.infer_ip: "auto"` instead
    // of `{{auto}}`.
    if infer_auto
        && let Some(ip) = client_ip
        && ev.user.as_ref().is_none_or(|u| u.ip_address.is_none())
    {
        ev.user.get_or_insert_with(User::default).ip_address = Some(ip.to_string());
    }
    ev.request = take(&mut obj, "request", "sentry.interfaces.Http").filter(Value::is_object);
    ev.fingerprint = match obj.remove("fingerprint") {
        Some(Value::Array(items)) => items.into_iter().filter_map(string).collect(),
        _ => Vec::new(),
    };
    if let Some(checksum) = obj.remove("checksum").and_then(string)
        && ev.fingerprint.is_empty()
        && !checksum.is_empty()
    {
        ev.fingerprint = vec![checksum];
    }
    obj.retain(|_, v| !v.is_null());
    ev.other = obj;
    super::limits::enforce(&mut ev, &ctx.limits);
    ev
}

/// Takes a modern key, falling back to its `sentry.interfaces.*` alias (modern wins).
fn take(obj: &mut Map<String, Value>, key: &str, legacy: &str) -> Option<Value> {
    let modern = obj.remove(key).filter(|v| !v.is_null());
    let old = obj.remove(legacy).filter(|v| !v.is_null());
    modern.or(old)
}

/// A string from a lenient value: numbers and booleans are written out, null is nothing.
pub(super) fn string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

fn opt_string(obj: &mut Map<String, Value>, key: &str) -> Option<String> {
    obj.remove(key).and_then(string)
}

/// An object's values as text.
fn as_text(map: Map<String, Value>) -> BTreeMap<String, Json> {
    (map.into_iter())
        .map(|(key, v)| (key, Json::from_value(&v)))
        .collect()
}

fn object(v: Option<Value>) -> Map<String, Value> {
    match v {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// `{values: [...]}`, a bare array, or a single object: Sentry's `Values<T>` leniency.
fn values(v: Option<Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(items)) => items,
        Some(Value::Object(mut m)) => match m.remove("values") {
            Some(Value::Array(items)) => items,
            Some(_) => Vec::new(),
            None if m.is_empty() => Vec::new(),
            None => vec![Value::Object(m)],
        },
        _ => Vec::new(),
    }
}

/// An exception interface's values. raven-js 3 puts the mechanism (`{"type": "onerror",
/// "handled": false}` for uncaught errors) beside `values` instead of in them; it belongs to
/// the values that have none.
fn exception_values(v: Option<Value>) -> Vec<Value> {
    let mechanism = match &v {
        Some(Value::Object(m)) if m.contains_key("values") => m.get("mechanism").cloned(),
        _ => None,
    };
    let mut list = values(v);
    if let Some(mechanism) = mechanism.filter(Value::is_object) {
        for value in &mut list {
            if let Value::Object(m) = value
                && !m.contains_key("mechanism")
            {
                m.insert("mechanism".into(), mechanism.clone());
            }
        }
    }
    list
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn timestamp(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => timestamp_text(s),
        _ => None,
    }
}

/// A timestamp written as a string: Unix seconds or ISO 8601.
pub(super) fn timestamp_text(s: &str) -> Option<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .or_else(|| crate::time::parse_iso(s))
}

fn log_entry(obj: &mut Map<String, Value>) -> Option<LogEntry> {
    let structured = take(obj, "logentry", "sentry.interfaces.Message");
    let bare = obj.remove("message").filter(|v| !v.is_null());
    let mut entry = match structured {
        Some(Value::Object(mut m)) => LogEntry {
            message: opt_string(&mut m, "message"),
            params: m.remove("params").filter(|p| !p.is_null()),
            formatted: opt_string(&mut m, "formatted"),
        },
        Some(other) => LogEntry {
            formatted: string(other),
            ..Default::default()
        },
        None => LogEntry::default(),
    };
    match bare {
        Some(Value::Object(mut m)) if entry == LogEntry::default() => {
            entry.message = opt_string(&mut m, "message");
            entry.params = m.remove("params").filter(|p| !p.is_null());
            entry.formatted = opt_string(&mut m, "formatted");
        }
        Some(v) => {
            let text = string(v);
            if entry.formatted.as_deref().is_none_or(str::is_empty) {
                if entry.message.is_none() || text != entry.message {
                    entry.formatted = text;
                } else {
                    entry.formatted = None;
                }
            }
        }
        None => {}
    }
    if entry.formatted.as_deref().is_none_or(str::is_empty)
        && let (Some(template), Some(params)) = (&entry.message, &entry.params)
    {
        entry.formatted = format_params(template, params);
    }
    (entry != LogEntry::default()).then_some(entry)
}

/// Renders `%s`-style (and `{}`/`{name}`) templates with their params, as the SDKs would have.
fn format_params(template: &str, params: &Value) -> Option<String> {
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match params {
        Value::Array(list) => {
            let mut it = list.iter();
            let mut out = String::with_capacity(template.len());
            let mut rest = template;
            while let Some(pos) = rest.find(['%', '{']) {
                out.push_str(&rest[..pos]);
                let tail = &rest[pos..];
                let spec_len = if let Some(after) = tail.strip_prefix("%%") {
                    out.push('%');
                    rest = after;
                    continue;
                } else if let Some(spec) = tail.strip_prefix('%') {
                    spec.find(|c: char| c.is_ascii_alphabetic())
                        .map(|i| i + 2)
                        .filter(|n| *n <= 8)
                } else {
                    tail.starts_with("{}").then_some(2)
                };
                match spec_len.and_then(|n| it.next().map(|v| (n, v))) {
                    Some((n, v)) => {
                        out.push_str(&show(v));
                        rest = &tail[n..];
                    }
                    None => {
                        out.push_str(&tail[..1]);
                        rest = &tail[1..];
                    }
                }
            }
            out.push_str(rest);
            Some(out)
        }
        Value::Object(map) => {
            let mut out = template.to_string();
            for (k, v) in map {
                out = out
                    .replace(&format!("%({k})s"), &show(v))
                    .replace(&format!("{{{k}}}"), &show(v));
            }
            Some(out)
        }
        _ => None,
    }
}

fn exception(v: Value, max_frames: usize) -> Option<Exception> {
    let Value::Object(mut m) = v else {
        return None;
    };
    let ex = Exception {
        ty: opt_string(&mut m, "type").filter(|s| !s.is_empty()),
        value: opt_string(&mut m, "value"),
        module: opt_string(&mut m, "module").filter(|s| !s.is_empty()),
        mechanism: m.remove("mechanism").filter(Value::is_object),
        stacktrace: m
            .remove("stacktrace")
            .and_then(|v| stacktrace(v, max_frames))
            .or_else(|| {
                m.remove("raw_stacktrace")
                    .and_then(|v| stacktrace(v, max_frames))
            }),
        raw_stacktrace: None,
    };
    (ex.ty.is_some() || ex.value.is_some() || ex.stacktrace.is_some()).then_some(ex)
}

/// A stack trace; frames beyond what the limits keep are dropped before they are typed (the
/// slack of `max_frames` at each end leaves room for entries that are not frames, and the
/// exact cut, recorded in `truncated`, is made by the limits).
fn stacktrace(v: Value, max_frames: usize) -> Option<Stacktrace> {
    let Value::Object(mut m) = v else {
        return None;
    };
    let frames: Vec<Frame> = match m.remove("frames") {
        Some(Value::Array(mut items)) => {
            keep_ends(&mut items, max_frames, max_frames);
            items.into_iter().filter_map(frame).collect()
        }
        _ => Vec::new(),
    };
    (!frames.is_empty()).then_some(Stacktrace { frames })
}

fn lines(v: Option<Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|l| string(l).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    }
}

fn frame(v: Value) -> Option<Frame> {
    let Value::Object(mut m) = v else {
        return None;
    };
    let int = |v: Option<Value>| {
        v.as_ref()
            .and_then(number)
            .filter(|n| *n >= 0.0)
            .map(|n| n as u64)
    };
    Some(Frame {
        filename: opt_string(&mut m, "filename"),
        abs_path: opt_string(&mut m, "abs_path"),
        function: opt_string(&mut m, "function"),
        module: opt_string(&mut m, "module"),
        package: opt_string(&mut m, "package"),
        platform: opt_string(&mut m, "platform"),
        lineno: int(m.remove("lineno")),
        colno: int(m.remove("colno")),
        context_line: opt_string(&mut m, "context_line"),
        pre_context: lines(m.remove("pre_context")),
        post_context: lines(m.remove("post_context")),
        in_app: m.remove("in_app").and_then(|v| v.as_bool()),
        vars: (m.remove("vars").filter(|v| !v.is_null())).map(|v| Json::from_value(&v)),
        instruction_addr: opt_string(&mut m, "instruction_addr"),
        map_error: None,
    })
}

fn thread(v: Value, max_frames: usize) -> Option<Thread> {
    let Value::Object(mut m) = v else {
        return None;
    };
    Some(Thread {
        id: m.remove("id").filter(|v| !v.is_null()),
        name: opt_string(&mut m, "name"),
        crashed: m.remove("crashed").and_then(|v| v.as_bool()),
        current: m.remove("current").and_then(|v| v.as_bool()),
        stacktrace: m
            .remove("stacktrace")
            .and_then(|v| stacktrace(v, max_frames)),
    })
}

fn breadcrumb(v: Value) -> Option<Breadcrumb> {
    let Value::Object(mut m) = v else {
        return None;
    };
    Some(Breadcrumb {
        timestamp: m.remove("timestamp").as_ref().and_then(timestamp),
        ty: opt_string(&mut m, "type"),
        category: opt_string(&mut m, "category"),
        level: m
            .remove("level")
            .and_then(|v| Level::parse(&v))
            .map(|l| l.as_str().to_string()),
        message: opt_string(&mut m, "message"),
        data: (m.remove("data").filter(|v| !v.is_null())).map(|v| Json::from_value(&v)),
        event_id: opt_string(&mut m, "event_id").filter(|s| !s.is_empty()),
    })
}

/// Tags as an object or as `[key, value]` pairs; values stringified, empty keys dropped.
fn tags(v: Option<Value>) -> Vec<(String, String)> {
    let tag = |k: String, v: Value| {
        let k = match k.trim() {
            trimmed if trimmed.len() == k.len() => k,
            trimmed => trimmed.to_string(),
        };
        let v = string(v)?;
        (!k.is_empty() && !k.contains('\n')).then_some((k, v))
    };
    match v {
        Some(Value::Object(m)) => m.into_iter().filter_map(|(k, v)| tag(k, v)).collect(),
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let v = kv.pop()?;
                    let k = string(kv.pop()?)?;
                    tag(k, v)
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn user(v: Value) -> Option<User> {
    let Value::Object(mut m) = v else {
        return None;
    };
    Some(User {
        id: opt_string(&mut m, "id"),
        email: opt_string(&mut m, "email"),
        username: opt_string(&mut m, "username"),
        ip_address: opt_string(&mut m, "ip_address"),
        name: opt_string(&mut m, "name"),
        other: m,
    })
}

/// The user as kept: empty fields dropped, `{{auto}}` resolved to the client's address;
/// `None` when nothing is left.
fn known_user(mut user: User, client_ip: Option<&str>) -> Option<User> {
    for field in [
        &mut user.id,
        &mut user.email,
        &mut user.username,
        &mut user.ip_address,
        &mut user.name,
    ] {
        if field.as_deref() == Some("") {
            *field = None;
        }
    }
    if user.ip_address.as_deref() == Some("{{auto}}") {
        user.ip_address = client_ip.map(str::to_string);
    }
    (user != User::default()).then_some(user)
}

/// Follows JSON string boundaries through a byte stream, so that scanners can skip what is
/// inside strings.
#[derive(Default)]
pub(crate) struct StringTracker {
    in_string: bool,
    escaped: bool,
}

impl StringTracker {
    /// Feeds the next byte; true when it belongs to a string (its quotes included).
    pub(crate) fn inside(&mut self, b: u8) -> bool {
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return true;
        }
        if b == b'"' {
            self.in_string = true;
            return true;
        }
        false
    }
}

/// Replaces bare `NaN`, `Infinity` and `-Infinity` tokens outside strings with `null`
/// (padded so nothing else moves). `None` when there were none, so the caller's error stands.
pub fn replace_non_finite_tokens(json: &[u8]) -> Option<Vec<u8>> {
    let mut out = json.to_vec();
    let mut changed = false;
    let mut strings = StringTracker::default();
    let mut i = 0;
    while i < out.len() {
        let b = out[i];
        if strings.inside(b) {
            i += 1;
            continue;
        }
        let token: &[u8] = match b {
            b'N' => b"NaN",
            b'I' => b"Infinity",
            b'-' if out.get(i + 1) == Some(&b'I') => b"-Infinity",
            _ => {
                i += 1;
                continue;
            }
        };
        if out[i..].starts_with(token) {
            // "NaN" is shorter than "null" and widens the buffer; the others pad with spaces.
            let width = token.len().max(4);
            let mut replacement = b"null".to_vec();
            replacement.resize(width, b' ');
            out.splice(i..i + token.len(), replacement);
            i += width;
            changed = true;
        } else {
            i += 1;
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Normalizes through the `Value` path, and checks that the typed parse (when it takes the
    /// payload) makes the same event.
    fn norm(v: Value) -> Event {
        let ctx = Context {
            received: 2_000_000_000.0,
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&v).unwrap();
        let lenient = normalize_value(v, &ctx).unwrap();
        let mut typed = normalize(&bytes, &ctx).unwrap();
        typed.event_id = lenient.event_id;
        assert_eq!(typed, lenient, "{}", String::from_utf8_lossy(&bytes));
        lenient
    }

    /// Both paths on raw bytes, with a fixed event id.
    fn both_ways(json: &str) -> (Option<Event>, Event) {
        both_ways_within(json, Default::default())
    }

    fn both_ways_within(json: &str, limits: super::super::EventLimits) -> (Option<Event>, Event) {
        let ctx = Context {
            received: 2_000_000_000.0,
            event_id: EventId::parse("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            limits,
            ..Default::default()
        };
        let typed = super::super::wire::parse(json)
            .is_some()
            .then(|| normalize(json.as_bytes(), &ctx).unwrap());
        let lenient = normalize_value(serde_json::from_str(json).unwrap(), &ctx).unwrap();
        (typed, lenient)
    }

    #[test]
    fn the_typed_parse_reads_what_current_sdks_send_as_the_value_path_does() {
        let python = std::str::from_utf8(include_bytes!("../../benches/data/python_event.json"));
        let (typed, lenient) = both_ways(python.unwrap());
        assert_eq!(
            typed.expect("a sentry-sdk event takes the typed parse"),
            lenient
        );
        let node = r#"{"exception":{"values":[{"type":"Error","value":"boom","stacktrace":{"frames":[
            {"filename":"node:internal/main","module":"run_main","function":"executeUserEntryPoint","lineno":135,"colno":12,"in_app":false},
            {"filename":"/app/index.js","function":"handler","lineno":7,"colno":9,"in_app":true,
             "pre_context":["a",null],"context_line":"throw new Error('boom')","post_context":[]}]},
            "mechanism":{"type":"onuncaughtexception","handled":false}}]},
            "breadcrumbs":[{"timestamp":1700000000.5,"category":"console","level":"log","message":"hi","data":{"arguments":["hi"]}},
                           {"timestamp":"2023-11-14T22:13:20Z","type":"http","level":20}],
            "threads":{"values":[{"id":1,"name":"main","crashed":true,"stacktrace":{"frames":[{"function":"f"}]}}]},
            "level":"error","platform":"node","tags":{"b":"2","a":1,"c":null},"contexts":{"os":{"name":"Linux"},"odd":"x"},
            "user":{"id":7,"ip_address":"{{auto}}","email":"","segment":"paid"},"modules":{ },
            "unknown":{"kept":true},"gone":null,"release":"r@1","server_name":12,
            "sdk":{"name":"sentry.javascript.node","version":"8.0.0"}}"#;
        let (typed, lenient) = both_ways(node);
        assert_eq!(typed.expect("a Node event takes the typed parse"), lenient);
        assert_eq!(lenient.exception[0].frames()[1].pre_context, ["a", ""]);
    }

    #[test]
    fn numbers_too_large_for_a_double_are_refused_in_subtrees_kept_as_text_too() {
        let ctx = Context {
            received: 2_000_000_000.0,
            ..Default::default()
        };
        for huge in ["1e999999", "12345678901234567890.5e290", &"9".repeat(400)] {
            for json in [
                format!(r#"{{"extra":{{"n":{huge}}}}}"#),
                format!(r#"{{"contexts":{{"app":{{"n":[{huge}]}}}}}}"#),
                format!(r#"{{"sdk":{{"n":{huge}}}}}"#),
                format!(r#"{{"breadcrumbs":[{{"data":{{"n":{huge}}}}}]}}"#),
                format!(
                    r#"{{"exception":[{{"type":"E","stacktrace":{{"frames":[{{"vars":{{"n":{huge}}}}}]}}}}]}}"#
                ),
            ] {
                assert!(
                    matches!(
                        normalize(json.as_bytes(), &ctx),
                        Err(NormalizeError::InvalidJson(_))
                    ),
                    "{json}"
                );
            }
        }
        let fine = r#"{"extra":{"addr":"0x7fdf1e132b90","n":1e300,"m":1e-999,"k":123456789012345678901234567890}}"#;
        let (typed, lenient) = both_ways(fine);
        assert_eq!(typed.expect("the typed parse takes it"), lenient);
    }

    #[test]
    fn both_paths_cut_frames_and_breadcrumbs_alike() {
        let frames: Vec<Value> = (0..7)
            .map(|i| json!({"function": format!("f{i}")}))
            .collect();
        let crumbs: Vec<Value> = (0..9)
            .map(|i| json!({"message": format!("c{i}")}))
            .collect();
        let json = json!({
            "exception": [{"type": "E", "stacktrace": {"frames": frames}}],
            "threads": [{"stacktrace": {"frames": frames}}],
            "breadcrumbs": crumbs,
        })
        .to_string();
        let limits = super::super::EventLimits {
            max_frames: 2,
            max_breadcrumbs: 2,
            ..Default::default()
        };
        let (typed, lenient) = both_ways_within(&json, limits);
        assert_eq!(typed.expect("the typed parse takes it"), lenient);
        assert_eq!(lenient.exception[0].frames().len(), 2);
        assert_eq!(lenient.breadcrumbs.len(), 2);
        assert!(lenient.truncated.contains(&"frames".to_string()));
    }

    #[test]
    fn older_and_unusual_shapes_are_left_to_the_value_path() {
        for json in [
            r#"{"exception":{"type":"E","value":"single object"}}"#,
            r#"{"exception":{"values":[{"type":"E"}],"mechanism":{"type":"onerror"}}}"#,
            r#"{"exception":{"values":{"values":[{"type":"E"}]}}}"#,
            r#"{"exception":[["E","an array, not an object"]]}"#,
            r#"{"exception":[{"type":"E","stacktrace":{"frames":[{"function":"f","lineno":"12"}]}}]}"#,
            r#"{"exception":[{"type":"E","stacktrace":{"frames":[{"function":"f","function":"g"}]}}]}"#,
            r#"{"exception":[{"type":3}]}"#,
            r#"{"breadcrumbs":[1,{"message":"m"}]}"#,
            r#"{"breadcrumbs":{"values":"nope"}}"#,
            r#"{"sentry.interfaces.Message":{"message":"m"}}"#,
            r#"{"threads":[{"crashed":"yes"}]}"#,
        ] {
            let (typed, lenient) = both_ways(json);
            assert!(typed.is_none(), "{json} should take the Value path");
            assert_eq!(
                normalize(
                    json.as_bytes(),
                    &Context {
                        received: 2_000_000_000.0,
                        event_id: Some(lenient.event_id),
                        ..Default::default()
                    }
                )
                .unwrap(),
                lenient
            );
        }
        // Shapes both read the same way.
        for json in [
            r#"{"exception":null,"threads":null,"breadcrumbs":null}"#,
            r#"{"exception":{"values":null,"other":1},"breadcrumbs":{"values":[]}}"#,
            r#"{"exception":{"values":[{"type":"","value":null,"stacktrace":{"frames":[]},"raw_stacktrace":{"frames":[{"lineno":-1,"colno":1e300}]}}]}}"#,
            r#"{"exception":[{}],"breadcrumbs":[{}],"threads":[{}]}"#,
            r#"{"exception":[{"type":"A"}],"exception":[{"type":"B"}],"tags":{"k":"1","k":"2"}}"#,
        ] {
            let (typed, lenient) = both_ways(json);
            assert_eq!(typed.expect(json), lenient, "{json}");
        }
    }

    #[test]
    fn levels_ids_and_timestamps_are_lenient() {
        let ev = norm(json!({
            "event_id": "9EC79C33-EC99-42AB-8353-589FCB2E04DC",
            "level": 40,
            "timestamp": "2011-05-02T17:41:36",
        }));
        assert_eq!(ev.event_id.to_string(), "9ec79c33ec9942ab8353589fcb2e04dc");
        assert_eq!(ev.level, Level::Error);
        assert_eq!(ev.timestamp, 1_304_358_096.0);
        assert_eq!(norm(json!({"level": "WARN"})).level, Level::Warning);
        assert_eq!(norm(json!({"level": "critical"})).level, Level::Fatal);
        assert_eq!(
            norm(json!({"timestamp": 1_304_358_096.5})).timestamp,
            1_304_358_096.5
        );
        // A clock far in the future is not believed.
        assert_eq!(norm(json!({"timestamp": 4e9})).timestamp, 2e9);
        assert_ne!(norm(json!({})).event_id, EventId::default());
    }

    #[test]
    fn envelope_header_id_wins() {
        let ctx = Context {
            received: 1.0,
            event_id: EventId::parse("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ..Default::default()
        };
        let ev = normalize(br#"{"event_id":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}"#, &ctx).unwrap();
        assert_eq!(ev.event_id.to_string(), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    }

    #[test]
    fn exception_shapes() {
        let single = norm(json!({"exception": {"type": "E", "value": "v"}}));
        let list = norm(json!({"exception": [{"type": "E", "value": "v"}]}));
        let values = norm(json!({"exception": {"values": [{"type": "E", "value": "v"}]}}));
        let legacy = norm(json!({"sentry.interfaces.Exception": {"type": "E", "value": "v"}}));
        for ev in [&single, &list, &values, &legacy] {
            assert_eq!(ev.exception.len(), 1);
            assert_eq!(ev.title(), "E: v");
        }
        assert!(norm(json!({"exception": {}})).exception.is_empty());
    }

    #[test]
    fn legacy_stacktrace_moves_into_the_exception() {
        let ev = norm(json!({
            "exception": {"type": "E"},
            "sentry.interfaces.Stacktrace": {"frames": [{"function": "f", "lineno": "12"}]},
        }));
        let frames = ev.exception[0].frames();
        assert_eq!(frames[0].function.as_deref(), Some("f"));
        assert_eq!(frames[0].lineno, Some(12));
    }

    #[test]
    fn messages_in_every_shape() {
        assert_eq!(norm(json!({"message": "plain"})).title(), "plain");
        let ev = norm(json!({"logentry": {"message": "user %s of %d", "params": ["bob", 3]}}));
        assert_eq!(ev.title(), "user bob of 3");
        let raven = norm(json!({
            "sentry.interfaces.Message": {"message": "fmt %s", "params": ["x"]},
            "message": "fmt x",
        }));
        let entry = raven.logentry.unwrap();
        assert_eq!(entry.message.as_deref(), Some("fmt %s"));
        assert_eq!(entry.formatted.as_deref(), Some("fmt x"));
        assert_eq!(norm(json!({"message": {"message": "obj"}})).title(), "obj");
    }

    #[test]
    fn tags_as_object_or_pairs() {
        let a = norm(json!({"tags": {"k": "v", "n": 1}}));
        let b = norm(json!({"tags": [["k", "v"], ["n", 1], ["", "dropped"]]}));
        assert_eq!(a.tags, b.tags);
        assert_eq!(a.tag("n"), Some("1"));
    }

    #[test]
    fn nan_tokens_from_old_python_clients() {
        let ev = normalize(
            br#"{"extra": {"a": NaN, "b": -Infinity, "s": "NaN stays"}, "message": "m"}"#,
            &Context::default(),
        )
        .unwrap();
        assert_eq!(ev.extra["a"].value(), Value::Null);
        assert_eq!(ev.extra["b"].value(), Value::Null);
        assert_eq!(ev.extra["s"].value(), "NaN stays");
        assert!(matches!(
            normalize(b"{nope", &Context::default()),
            Err(NormalizeError::InvalidJson(_))
        ));
        assert_eq!(
            normalize(b"[1]", &Context::default()),
            Err(NormalizeError::NotAnObject)
        );
    }

    #[test]
    fn raven_js_unhandled_marker_and_breadcrumb_event_ids_are_kept() {
        let ev = normalize(
            br#"{"exception": {"values": [{"type": "TypeError", "value": "x"}], "mechanism": {"type": "onerror", "handled": false}},
                "breadcrumbs": {"values": [{"category": "sentry.event", "event_id": "abc123", "message": "Error: y"}]}}"#,
            &Context::default(),
        )
        .unwrap();
        let mechanism = ev.exception[0].mechanism.as_ref().unwrap();
        assert_eq!(mechanism["handled"], false);
        assert_eq!(mechanism["type"], "onerror");
        assert_eq!(ev.breadcrumbs[0].event_id.as_deref(), Some("abc123"));
    }

    #[test]
    fn auto_ip_is_the_client_address() {
        let ctx = Context {
            client_ip: Some("10.1.2.3"),
            received: 1.0,
            ..Default::default()
        };
        let ev = normalize(br#"{"user": {"ip_address": "{{auto}}"}}"#, &ctx).unwrap();
        assert_eq!(ev.user.unwrap().ip_address.as_deref(), Some("10.1.2.3"));
        let auto =
            br#"{"sdk": {"name": "sentry.javascript.browser", "settings": {"infer_ip": "auto"}}}"#;
        let ev = normalize(auto, &ctx).unwrap();
        assert_eq!(ev.user.unwrap().ip_address.as_deref(), Some("10.1.2.3"));
        let kept =
            br#"{"user": {"ip_address": "1.1.1.1"}, "sdk": {"settings": {"infer_ip": "auto"}}}"#;
        let ev = normalize(kept, &ctx).unwrap();
        assert_eq!(ev.user.unwrap().ip_address.as_deref(), Some("1.1.1.1"));
        let never =
            br#"{"user": {"ip_address": "{{auto}}"}, "sdk": {"settings": {"infer_ip": "never"}}}"#;
        assert!(normalize(never, &ctx).unwrap().user.is_none());
        assert!(
            normalize(br#"{"message": "m"}"#, &ctx)
                .unwrap()
                .user
                .is_none()
        );
    }
}
