//! The typed parse of the payload current SDKs send. The parts that make up most of an event's
//! bytes (exceptions with their frames, threads, breadcrumbs) are read by serde straight into
//! typed structs, without first building a `serde_json::Value` tree for them (no map node and
//! no key string per field), and the event's outer object is read key by key; what picket keeps
//! as JSON anyway (request, tags…) is read as such, and what it keeps as text (frame variables,
//! breadcrumb data, contexts, extra, sdk, modules) is only checked and copied. It is strict:
//! any older or unusual shape (a `sentry.interfaces.*` key, a number where a string goes, a
//! single exception object instead of a list, a duplicated key in a frame) makes it give up,
//! and normalization takes the lenient `Value` path for the whole payload. Whatever it accepts,
//! it reads exactly as that path would (the tests and the fuzz target compare the two).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::model::{Breadcrumb, Exception, Frame, Json, Level, Stacktrace, Thread, User};

/// A payload as read by the typed parse: what it typed, and every other top-level key as JSON
/// for the shared rest of normalization.
pub(super) struct Payload<'a> {
    pub fields: Map<String, Value>,
    pub typed: Typed<'a>,
}

/// The top-level keys whose values picket reads as one string, number or flag.
#[derive(Default)]
pub(super) struct Scalars<'a> {
    pub event_id: Option<Scalar<'a>>,
    pub timestamp: Option<Scalar<'a>>,
    pub level: Option<Scalar<'a>>,
    pub platform: Option<Scalar<'a>>,
    pub logger: Option<Scalar<'a>>,
    pub transaction: Option<Scalar<'a>>,
    pub culprit: Option<Scalar<'a>>,
    pub server_name: Option<Scalar<'a>>,
    pub release: Option<Scalar<'a>>,
    pub dist: Option<Scalar<'a>>,
    pub environment: Option<Scalar<'a>>,
}

impl<'a> Scalars<'a> {
    /// Where the value of a top-level key goes, if it is one of these.
    fn slot(&mut self, key: &str) -> Option<&mut Option<Scalar<'a>>> {
        Some(match key {
            "event_id" => &mut self.event_id,
            "timestamp" => &mut self.timestamp,
            "level" => &mut self.level,
            "platform" => &mut self.platform,
            "logger" => &mut self.logger,
            "transaction" => &mut self.transaction,
            "culprit" => &mut self.culprit,
            "server_name" => &mut self.server_name,
            "release" => &mut self.release,
            "dist" => &mut self.dist,
            "environment" => &mut self.environment,
            _ => return None,
        })
    }

    /// Takes these keys out of a lenient payload.
    pub fn take_from(obj: &mut Map<String, Value>) -> Scalars<'static> {
        let mut scalars = Scalars::default();
        let mut rest = Map::new();
        for (key, v) in std::mem::take(obj) {
            match scalars.slot(&key) {
                Some(slot) => *slot = Scalar::from_value(v),
                None => {
                    rest.insert(key, v);
                }
            }
        }
        *obj = rest;
        scalars
    }
}

/// What the typed parse read: the lists (each empty when the payload has none), the scalar
/// keys, and the subtrees kept as text (`None` when absent or null).
#[derive(Default)]
pub(super) struct Typed<'a> {
    pub exception: Vec<WireException>,
    pub threads: Vec<WireThread>,
    pub breadcrumbs: Vec<WireBreadcrumb<'a>>,
    pub scalars: Scalars<'a>,
    pub user: Option<User>,
    pub contexts: Option<BTreeMap<String, Json>>,
    pub extra: Option<BTreeMap<String, Json>>,
    pub sdk: Option<Json>,
    pub modules: Option<Json>,
}

/// Reads a payload in the common shape; `None` when the lenient path must decide.
pub(super) fn parse(json: &str) -> Option<Payload<'_>> {
    serde_json::from_str(json).ok()
}

impl<'de> Deserialize<'de> for Payload<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload<'de>, A::Error> {
        let mut payload = Payload {
            fields: Map::new(),
            typed: Typed::default(),
        };
        let typed = &mut payload.typed;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "exception" => typed.exception = map.next_value::<List<_>>()?.0,
                "threads" => typed.threads = map.next_value::<List<_>>()?.0,
                "breadcrumbs" => typed.breadcrumbs = map.next_value::<List<_>>()?.0,
                "user" => typed.user = map.next_value::<Option<WireUser>>()?.map(|u| u.0),
                "contexts" => typed.contexts = map.next_value::<Option<TextMap>>()?.map(|m| m.0),
                "extra" => typed.extra = map.next_value::<Option<TextMap>>()?.map(|m| m.0),
                "sdk" => typed.sdk = map.next_value::<Option<Text>>()?.map(|t| t.0),
                "modules" => typed.modules = map.next_value::<Option<Text>>()?.map(|t| t.0),
                legacy if legacy.starts_with("sentry.interfaces.") => {
                    return Err(de::Error::custom("a legacy interface key"));
                }
                other => match typed.scalars.slot(other) {
                    Some(slot) => *slot = map.next_value()?,
                    None => {
                        let value: Value = map.next_value()?;
                        payload.fields.insert(other.to_string(), value);
                    }
                },
            }
        }
        Ok(payload)
    }
}

/// A string, number or flag: the string borrowed from the payload when it holds no escapes.
/// The typed parse reads no object or array as one (the lenient path decides those).
pub(super) enum Scalar<'a> {
    Text(Cow<'a, str>),
    Other(Value),
}

impl Scalar<'_> {
    /// A lenient value as a scalar; null is none.
    pub fn from_value(v: Value) -> Option<Scalar<'static>> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(Scalar::Text(s.into())),
            other => Some(Scalar::Other(other)),
        }
    }

    /// As [`normalize::string`](super::normalize::string) reads it.
    pub fn into_string(self) -> Option<String> {
        match self {
            Scalar::Text(s) => Some(s.into_owned()),
            Scalar::Other(v) => super::normalize::string(v),
        }
    }

    pub fn timestamp(&self) -> Option<f64> {
        match self {
            Scalar::Text(s) => super::normalize::timestamp_text(s),
            Scalar::Other(v) => super::normalize::timestamp(v),
        }
    }

    pub fn level(&self) -> Option<Level> {
        match self {
            Scalar::Text(s) => Level::parse_name(s),
            Scalar::Other(v) => Level::parse(v),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or flag")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(v.to_string().into()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(v.into()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// The user object: its fields as strings (numbers written out), other keys as JSON.
struct WireUser(User);

impl<'de> Deserialize<'de> for WireUser {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct UserVisitor;
        impl<'de> Visitor<'de> for UserVisitor {
            type Value = WireUser;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a user object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireUser, A::Error> {
                let mut user = User::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let field = match key.0.as_ref() {
                        "id" => &mut user.id,
                        "email" => &mut user.email,
                        "username" => &mut user.username,
                        "ip_address" => &mut user.ip_address,
                        "name" => &mut user.name,
                        other => {
                            let value: Value = map.next_value()?;
                            user.other.insert(other.to_string(), value);
                            continue;
                        }
                    };
                    *field = map
                        .next_value::<Option<Scalar>>()?
                        .and_then(Scalar::into_string);
                }
                Ok(WireUser(user))
            }
        }
        d.deserialize_map(UserVisitor)
    }
}

/// A subtree kept as text. The parser checks its syntax but not the size of its numbers, which
/// the lenient path refuses when a double cannot hold them (`1e999`): text that may hold such
/// a number is parsed to find out, and refused like that.
struct Text(Json);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if may_overflow(raw.get()) {
            serde_json::from_str::<Value>(raw.get()).map_err(de::Error::custom)?;
        }
        Ok(Text(Json::from_raw(raw)))
    }
}

/// Whether JSON text may hold a number too large for a double: 300 digits in a row, or
/// digits (a fraction's included) followed by an exponent that with them reaches 300. Errs on
/// the side of yes (it also looks inside strings).
fn may_overflow(text: &str) -> bool {
    let bytes = text.as_bytes();
    // An exponent: with the digits of the run of digits and points just before it.
    for at in memchr::memchr2_iter(b'e', b'E', bytes) {
        let digits = (bytes[..at].iter().rev())
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .filter(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            continue;
        }
        let rest = bytes.get(at + 1..).unwrap_or_default();
        let rest = rest.strip_prefix(b"+").unwrap_or(rest);
        let exponent = rest
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .take(6)
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        if digits + exponent >= 300 {
            return true;
        }
    }
    // 300 digits in a row (points do not break a run).
    let mut run = 0usize;
    bytes.len() >= 300
        && bytes.iter().any(|&b| {
            run = match b {
                b'0'..=b'9' => run + 1,
                b'.' => run,
                _ => 0,
            };
            run >= 300
        })
}

/// An object whose values are kept as text (contexts, extra).
struct TextMap(BTreeMap<String, Json>);

impl<'de> Deserialize<'de> for TextMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextMapVisitor;
        impl<'de> Visitor<'de> for TextMapVisitor {
            type Value = TextMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextMap, A::Error> {
                let mut entries = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let Text(json) = map.next_value()?;
                    entries.insert(key, json);
                }
                Ok(TextMap(entries))
            }
        }
        d.deserialize_map(TextMapVisitor)
    }
}

/// An object key, borrowed from the payload unless it holds escapes.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Sentry's `Values<T>` in its two current shapes, a bare array or `{"values": [...]}`, of
/// objects; null is an empty list. Other keys beside `values` are ignored, as the lenient path
/// does, except a non-null `mechanism`, which the lenient path hands down to the exceptions.
struct List<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list or {\"values\": [...]}")
            }
            fn visit_unit<E: de::Error>(self) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<List<T>, A::Error> {
                objects(seq).map(List)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<List<T>, A::Error> {
                let mut values = None;
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.0.as_ref() {
                        // Anything but an array (or null) there is an empty list to the lenient
                        // path: left to it.
                        "values" => {
                            let items = map.next_value::<Option<Array<T>>>()?;
                            values = Some(List(items.map_or_else(Vec::new, |a| a.0)));
                        }
                        "mechanism" => {
                            if map.next_value::<Value>()? != Value::Null {
                                return Err(de::Error::custom("a mechanism beside values"));
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                values.ok_or_else(|| de::Error::custom("an object without values"))
            }
        }
        d.deserialize_any(ListVisitor(std::marker::PhantomData))
    }
}

/// A JSON array of objects.
struct Array<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ArrayVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ArrayVisitor<T> {
            type Value = Array<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Array<T>, A::Error> {
                objects(seq).map(Array)
            }
        }
        d.deserialize_seq(ArrayVisitor(std::marker::PhantomData))
    }
}

fn objects<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<T>, A::Error> {
    let mut items = Vec::new();
    while let Some(Object(item)) = seq.next_element()? {
        items.push(item);
    }
    Ok(items)
}

/// A struct read only from a JSON object (serde's derive would also take an array of its
/// fields in order, which the lenient path drops).
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
pub(super) struct WireException {
    #[serde(rename = "type")]
    ty: Option<String>,
    value: Option<String>,
    module: Option<String>,
    mechanism: Option<Value>,
    stacktrace: Option<Object<WireStacktrace>>,
    raw_stacktrace: Option<Object<WireStacktrace>>,
}

impl WireException {
    /// The exception as [`normalize`](super::normalize) makes it; `None` when it says nothing.
    pub(super) fn typed(self, max_frames: usize) -> Option<Exception> {
        let ex = Exception {
            ty: self.ty.filter(|s| !s.is_empty()),
            value: self.value,
            module: self.module.filter(|s| !s.is_empty()),
            mechanism: self.mechanism.filter(Value::is_object),
            stacktrace: self
                .stacktrace
                .and_then(|s| s.0.typed(max_frames))
                .or_else(|| self.raw_stacktrace.and_then(|s| s.0.typed(max_frames))),
            raw_stacktrace: None,
        };
        (ex.ty.is_some() || ex.value.is_some() || ex.stacktrace.is_some()).then_some(ex)
    }
}

#[derive(Deserialize)]
pub(super) struct WireStacktrace {
    frames: Option<Vec<Object<WireFrame>>>,
}

impl WireStacktrace {
    fn typed(self, max_frames: usize) -> Option<Stacktrace> {
        let mut frames = self.frames.unwrap_or_default();
        super::limits::keep_ends(&mut frames, max_frames, max_frames);
        let frames: Vec<Frame> = frames.into_iter().map(|f| f.0.typed()).collect();
        (!frames.is_empty()).then_some(Stacktrace { frames })
    }
}

#[derive(Deserialize)]
struct WireFrame {
    filename: Option<String>,
    abs_path: Option<String>,
    function: Option<String>,
    module: Option<String>,
    package: Option<String>,
    platform: Option<String>,
    lineno: Option<f64>,
    colno: Option<f64>,
    context_line: Option<String>,
    pre_context: Option<Lines>,
    post_context: Option<Lines>,
    in_app: Option<bool>,
    vars: Option<Text>,
    instruction_addr: Option<String>,
}

impl WireFrame {
    fn typed(self) -> Frame {
        let int = |n: Option<f64>| n.filter(|n| *n >= 0.0).map(|n| n as u64);
        let lines = |l: Option<Lines>| l.map_or_else(Vec::new, |l| l.0);
        Frame {
            filename: self.filename,
            abs_path: self.abs_path,
            function: self.function,
            module: self.module,
            package: self.package,
            platform: self.platform,
            lineno: int(self.lineno),
            colno: int(self.colno),
            context_line: self.context_line,
            pre_context: lines(self.pre_context),
            post_context: lines(self.post_context),
            in_app: self.in_app,
            vars: self.vars.map(|t| t.0),
            instruction_addr: self.instruction_addr,
            map_error: None,
        }
    }
}

/// Source lines around a frame's line (null lines read as empty): room for eight is made at
/// the first, as SDKs send five or seven on each side.
struct Lines(Vec<String>);

impl<'de> Deserialize<'de> for Lines {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LinesVisitor;
        impl<'de> Visitor<'de> for LinesVisitor {
            type Value = Lines;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of lines")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lines, A::Error> {
                let mut lines = Vec::new();
                while let Some(line) = seq.next_element::<Option<String>>()? {
                    if lines.is_empty() {
                        lines.reserve(8);
                    }
                    lines.push(line.unwrap_or_default());
                }
                Ok(Lines(lines))
            }
        }
        d.deserialize_seq(LinesVisitor)
    }
}

#[derive(Deserialize)]
pub(super) struct WireThread {
    id: Option<Value>,
    name: Option<String>,
    crashed: Option<bool>,
    current: Option<bool>,
    stacktrace: Option<Object<WireStacktrace>>,
}

impl WireThread {
    pub(super) fn typed(self, max_frames: usize) -> Thread {
        Thread {
            id: self.id,
            name: self.name,
            crashed: self.crashed,
            current: self.current,
            stacktrace: self.stacktrace.and_then(|s| s.0.typed(max_frames)),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WireBreadcrumb<'a> {
    #[serde(borrow)]
    timestamp: Option<Scalar<'a>>,
    #[serde(rename = "type")]
    ty: Option<String>,
    category: Option<String>,
    #[serde(borrow)]
    level: Option<Scalar<'a>>,
    message: Option<String>,
    data: Option<Text>,
    event_id: Option<String>,
}

impl WireBreadcrumb<'_> {
    pub(super) fn typed(self) -> Breadcrumb {
        Breadcrumb {
            timestamp: self.timestamp.as_ref().and_then(Scalar::timestamp),
            ty: self.ty,
            category: self.category,
            level: (self.level.as_ref())
                .and_then(Scalar::level)
                .map(|l| l.as_str().to_string()),
            message: self.message,
            data: self.data.map(|t| t.0),
            event_id: self.event_id.filter(|s| !s.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_overflow;

    #[test]
    fn numbers_a_double_cannot_hold_are_suspected() {
        for text in [
            "1e999",
            "[1.5E+299]",
            "{\"a\":\"x 12.34e297\"}",
            "1e5e299",
            &"7".repeat(300),
            &format!("[{}.{}]", "1".repeat(150), "2".repeat(150)),
        ] {
            assert!(may_overflow(text), "{text}");
        }
        for text in [
            "1e298",
            "[\"e999\", \"+e999\", \".e999\"]",
            "1e-999",
            &"7".repeat(299),
            &format!("{} {}", "1".repeat(200), "2".repeat(200)),
            "{\"message\":\"here we see the exception\"}",
        ] {
            assert!(!may_overflow(text), "{text}");
        }
    }
}
