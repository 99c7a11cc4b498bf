//! The typed event: what every payload shape (modern envelope item, legacy `/store/` body,
//! raven UDP datagram, a shipped log line) becomes after normalization, and what is stored.
//!
//! Fields follow the Sentry event schema with the legacy aliases already folded in. Subtrees
//! that picket only displays stay JSON: as values where picket reads inside them on every event
//! (request, user fields beyond the known ones), as the text they arrived as ([`Json`]) where
//! it mostly does not (frame variables, breadcrumb data, each context and extra value, sdk,
//! modules). Every field has a default, so a stored event written by
//! an older picket still reads back.

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::EventId;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Severity, as Sentry spells it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warning,
    #[default]
    Error,
    Fatal,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Lenient: Sentry's names and aliases in any case, and Python logging levels.
    pub fn parse(v: &Value) -> Option<Level> {
        match v {
            Value::Number(n) => {
                let n = n.as_f64()?;
                Some(match n as i64 {
                    i64::MIN..=10 => Level::Debug,
                    11..=20 => Level::Info,
                    21..=30 => Level::Warning,
                    31..=40 => Level::Error,
                    _ => Level::Fatal,
                })
            }
            Value::String(s) => Level::parse_name(s),
            _ => None,
        }
    }

    /// A level written as a string: a name or alias in any case, or a number.
    pub fn parse_name(s: &str) -> Option<Level> {
        const NAMES: [(&str, Level); 11] = [
            ("debug", Level::Debug),
            ("trace", Level::Debug),
            ("info", Level::Info),
            ("log", Level::Info),
            ("notice", Level::Info),
            ("warning", Level::Warning),
            ("warn", Level::Warning),
            ("error", Level::Error),
            ("err", Level::Error),
            ("fatal", Level::Fatal),
            ("critical", Level::Fatal),
        ];
        let s = s.trim();
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, level)| *level)
            .or_else(|| s.parse::<i64>().ok().and_then(|n| Level::parse(&n.into())))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Event {
    /// 32 lowercase hex digits, the SDK's own id when it sent one.
    pub event_id: EventId,
    /// When the event happened, by the SDK's clock (Unix seconds).
    pub timestamp: f64,
    /// When picket received it (Unix seconds); retention and ordering use this.
    pub received: f64,
    pub platform: String,
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// The culprit the client sent (legacy raven field); the shown culprit is derived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub culprit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dist: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logentry: Option<LogEntry>,
    /// Innermost cause first, the exception actually raised last.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "values")]
    pub exception: Vec<Exception>,
    #[serde(skip_serializing_if = "Vec::is_empty", with = "values")]
    pub threads: Vec<Thread>,
    #[serde(skip_serializing_if = "Vec::is_empty", with = "values")]
    pub breadcrumbs: Vec<Breadcrumb>,
    /// In the order sent; duplicate keys are kept (the first one is shown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// By key, each value as text.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// By context name (`os`, `browser`, `trace`…), each context as text.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub contexts: BTreeMap<String, Json>,
    /// The client's custom fingerprint, as strings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fingerprint: Vec<String>,
    /// The SDK's description of itself (an object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdk: Option<Json>,
    /// Installed packages and their versions (a non-empty object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Json>,
    /// Why values were changed, as Sentry records it: the event's shape, each changed value
    /// with `{"": {"rem": [[rule, kind, …]], "len": original length}}`.
    #[serde(rename = "_meta", skip_serializing_if = "Map::is_empty")]
    pub meta: Map<String, Value>,
    /// What picket cut to fit its limits (`tags`, `frames`, `strings`…); empty when nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
    /// Top-level keys picket has no field for, kept as sent.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub other: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct LogEntry {
    /// The template (`"user %s not found"`), when the client sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// The rendered text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
}

impl LogEntry {
    /// What a person reads: the rendered text, else the template.
    pub fn text(&self) -> Option<&str> {
        self.formatted
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.message.as_deref())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Exception {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<Stacktrace>,
    /// The frames as the SDK sent them, kept when source maps changed `stacktrace`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_stacktrace: Option<Stacktrace>,
}

impl Exception {
    /// A synthetic exception's type is made up by the SDK and says nothing for grouping.
    pub fn is_synthetic(&self) -> bool {
        self.mechanism
            .as_ref()
            .and_then(|m| m.get("synthetic"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn frames(&self) -> &[Frame] {
        self.stacktrace.as_ref().map_or(&[], |s| &s.frames)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Stacktrace {
    /// Oldest call first, the crashing frame last.
    pub frames: Vec<Frame>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Frame {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colno: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_line: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_context: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_context: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_app: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vars: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction_addr: Option<String>,
    /// Why source maps could not map this frame, when they were tried and failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Thread {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crashed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<Stacktrace>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Breadcrumb {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Json>,
    /// The event a "sentry.event" breadcrumb stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct User {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub other: Map<String, Value>,
}

impl User {
    /// The identity that counts a distinct user: id, else email, username, IP.
    pub fn identity(&self) -> Option<&str> {
        self.id
            .as_deref()
            .or(self.email.as_deref())
            .or(self.username.as_deref())
            .or(self.ip_address.as_deref())
    }
}

/// A JSON subtree kept as the text it arrived as: read from a payload without building a tree
/// (one string instead of a node and a key per member), stored as one byte string, written to
/// JSON verbatim. What looks inside parses it ([`Json::value`]). Stored events from before it
/// held these subtrees as trees; those read back too.
#[derive(Clone, Debug)]
pub struct Json(Box<str>);

impl Json {
    /// The text of a value.
    pub fn from_value(v: &Value) -> Json {
        Json(v.to_string().into())
    }

    /// Takes JSON text the parser has already checked.
    pub fn from_raw(raw: Box<RawValue>) -> Json {
        Json(raw.into())
    }

    /// The subtree as a value (null if the text is not JSON, which only a damaged row holds).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    pub fn is_object(&self) -> bool {
        self.0.starts_with('{')
    }

    /// An object with no members (`{}`, with or without blanks inside).
    pub fn is_empty_object(&self) -> bool {
        self.is_object() && self.0[1..].trim_start().starts_with('}')
    }
}

/// Equal when they hold the same value, however it is written (the order of keys, blanks).
impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.0 == other.0 || self.value() == other.value()
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let raw: &RawValue =
                serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
            raw.serialize(s)
        } else {
            s.serialize_bytes(self.0.as_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        if d.is_human_readable() {
            Ok(Json::from_value(&Value::deserialize(d)?))
        } else {
            d.deserialize_any(StoredJson)
        }
    }
}

/// A stored subtree: the text as bytes, or the tree older rows hold.
struct StoredJson;

impl<'de> Visitor<'de> for StoredJson {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON text or a tree")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Json, E> {
        let text = std::str::from_utf8(v).map_err(E::custom)?;
        Ok(Json(text.into()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Json, E> {
        let text = String::from_utf8(v).map_err(E::custom)?;
        Ok(Json(text.into()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Json, A::Error> {
        let v = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Json::from_value(&v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Json, A::Error> {
        let v = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Json::from_value(&v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::from_value(&Value::from(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::from_value(&Value::from(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::from_value(&Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from_value(&Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::from_value(&Value::from(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::from_value(&Value::Null))
    }
}

/// Lists that Sentry's event schema wraps as `{"values": [...]}`; stored and printed the same
/// way so that a stored event is a valid Sentry event again.
mod values {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Values<T> {
        values: Vec<T>,
    }

    pub fn serialize<T: Serialize, S: Serializer>(list: &[T], s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Borrowed<'a, T> {
            values: &'a [T],
        }
        Borrowed { values: list }.serialize(s)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        Ok(Values::deserialize(d)?.values)
    }
}

/// Longest title picket keeps; longer ones are cut at a character boundary.
/// How far before its arrival an event's own time is believed; older clocks count as its
/// arrival.
pub const MAX_PAST_SECS: f64 = 30.0 * 86_400.0;
const TITLE_MAX: usize = 200;

impl Event {
    /// The exception actually raised (the outermost one).
    pub fn main_exception(&self) -> Option<&Exception> {
        self.exception.last()
    }

    /// The issue title: `Type: value` for an error, the message otherwise.
    pub fn title(&self) -> String {
        let title = if let Some(ex) = self.main_exception() {
            let value = ex.value.as_deref().map(first_line).unwrap_or("");
            match (ex.ty.as_deref(), value) {
                (Some(ty), "") => ty.to_string(),
                (Some(ty), v) => format!("{ty}: {v}"),
                (None, "") => "<unlabeled exception>".to_string(),
                (None, v) => v.to_string(),
            }
        } else if let Some(text) = self.logentry.as_ref().and_then(LogEntry::text) {
            first_line(text).to_string()
        } else {
            "<unlabeled event>".to_string()
        };
        truncate(title, TITLE_MAX)
    }

    /// When it happened by its own clock, believed up to [`MAX_PAST_SECS`] before it arrived
    /// (an older clock counts as the arrival; a later one was already clamped to it).
    pub fn happened(&self) -> f64 {
        if self.timestamp >= self.received - MAX_PAST_SECS {
            self.timestamp.min(self.received)
        } else {
            self.received
        }
    }

    /// A text field of the request (`url`, `method`).
    pub fn request_field(&self, key: &str) -> Option<&str> {
        self.request.as_ref()?.get(key)?.as_str()
    }

    /// The `User-Agent` request header, sent as an object or as a list of pairs.
    pub fn user_agent(&self) -> Option<&str> {
        self.request_header("user-agent")
    }

    /// A request header by name, in any case.
    pub fn request_header(&self, name: &str) -> Option<&str> {
        let headers = self.request.as_ref()?.get("headers")?;
        match headers {
            Value::Object(map) => map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str()),
            Value::Array(pairs) => pairs.iter().find_map(|p| {
                let pair = p.as_array()?;
                (pair.first()?.as_str()?.eq_ignore_ascii_case(name))
                    .then(|| pair.get(1)?.as_str())
                    .flatten()
            }),
            _ => None,
        }
    }

    /// Where it happened: the transaction, else the client's culprit, else the innermost
    /// in-app frame as `module in function`.
    pub fn culprit(&self) -> String {
        if let Some(t) = self.transaction.as_deref().filter(|t| !t.is_empty()) {
            return truncate(t.to_string(), TITLE_MAX);
        }
        if let Some(c) = self.culprit.as_deref().filter(|c| !c.is_empty()) {
            return truncate(c.to_string(), TITLE_MAX);
        }
        let frames = self
            .main_exception()
            .map(Exception::frames)
            .or_else(|| {
                self.threads
                    .iter()
                    .find_map(|t| t.stacktrace.as_ref().map(|s| s.frames.as_slice()))
            })
            .unwrap_or(&[]);
        let frame = frames
            .iter()
            .rev()
            .find(|f| f.in_app == Some(true))
            .or(frames.last());
        let Some(frame) = frame else {
            return String::new();
        };
        let place = frame
            .module
            .as_deref()
            .or(frame.filename.as_deref())
            .or(frame.abs_path.as_deref())
            .unwrap_or("?");
        let culprit = match frame.function.as_deref() {
            Some(f) => format!("{place} in {f}"),
            None => place.to_string(),
        };
        truncate(culprit, TITLE_MAX)
    }

    /// First value of a tag, if the event has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// Cuts `s` to at most `max` bytes at a character boundary, marking the cut with `…`.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_through_messagepack() {
        let ev = Event {
            event_id: "0123456789abcdef0123456789abcdef".parse().unwrap(),
            timestamp: 1.5,
            tags: vec![("a".into(), "b".into())],
            extra: [("n".into(), Json(r#"[1,2.5,null,"x"]"#.into()))].into(),
            exception: vec![Exception {
                ty: Some("ValueError".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = rmp_serde::to_vec_named(&ev).unwrap();
        let back: Event = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn subtrees_kept_as_text_are_stored_as_text_and_older_trees_still_read() {
        let text = r#"{"b":"2","a":{"x":[1,null]}}"#;
        let frame = Frame {
            vars: Some(Json(text.into())),
            ..Default::default()
        };
        let back: Frame = rmp_serde::from_slice(&rmp_serde::to_vec_named(&frame).unwrap()).unwrap();
        assert_eq!(back.vars.as_ref().unwrap().text(), text, "the text as sent");
        assert_eq!(
            serde_json::to_string(&frame).unwrap(),
            format!(r#"{{"vars":{text}}}"#),
            "written to JSON as the subtree itself, not as a string"
        );
        // A row written when frame variables were a tree.
        #[derive(Serialize)]
        struct OlderFrame {
            vars: Value,
        }
        let older = OlderFrame {
            vars: serde_json::from_str(text).unwrap(),
        };
        let back: Frame = rmp_serde::from_slice(&rmp_serde::to_vec_named(&older).unwrap()).unwrap();
        assert_eq!(back.vars, frame.vars);
        assert_eq!(back.vars.unwrap().value(), older.vars);
        let from_json: Frame = serde_json::from_str(&format!(r#"{{"vars":{text}}}"#)).unwrap();
        assert_eq!(from_json.vars, frame.vars);
    }

    #[test]
    fn title_and_culprit() {
        let mut ev = Event::default();
        ev.exception.push(Exception {
            ty: Some("KeyError".into()),
            value: Some("'x'\nmore".into()),
            stacktrace: Some(Stacktrace {
                frames: vec![
                    Frame {
                        module: Some("app.views".into()),
                        function: Some("index".into()),
                        in_app: Some(true),
                        ..Default::default()
                    },
                    Frame {
                        module: Some("lib".into()),
                        function: Some("get".into()),
                        in_app: Some(false),
                        ..Default::default()
                    },
                ],
            }),
            ..Default::default()
        });
        assert_eq!(ev.title(), "KeyError: 'x'");
        assert_eq!(ev.culprit(), "app.views in index");
    }
}
