//! The typed parse of the payload current SDKs send. The parts that make up most of an event's
//! bytes (exceptions with their frames, threads, breadcrumbs) are read by serde straight into
//! typed structs, without first building a `serde_json::Value` tree for them (no map node and
//! no key string per field), and the event's outer object is read key by key; what picket keeps
//! as JSON anyway (contexts, extra, request, sdk, user, tags…) is read as such. It is strict:
//! any older or unusual shape (a `sentry.interfaces.*` key, a number where a string goes, a
//! single exception object instead of a list, a duplicated key in a frame) makes it give up,
//! and normalization takes the lenient `Value` path for the whole payload. Whatever it accepts,
//! it reads exactly as that path would (the tests and the fuzz target compare the two).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::model::{Breadcrumb, Exception, Frame, Level, Stacktrace, Thread};

/// A payload as read by the typed parse: the lists it typed, and every other top-level key as
/// JSON for the shared rest of normalization.
pub(super) struct Payload {
    pub fields: Map<String, Value>,
    pub lists: Lists,
}

/// The lists the typed parse read (each empty when the payload has none).
#[derive(Default)]
pub(super) struct Lists {
    pub exception: Vec<WireException>,
    pub threads: Vec<WireThread>,
    pub breadcrumbs: Vec<WireBreadcrumb>,
}

/// Reads a payload in the common shape; `None` when the lenient path must decide.
pub(super) fn parse(json: &[u8]) -> Option<Payload> {
    serde_json::from_slice(json).ok()
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let mut payload = Payload {
            fields: Map::new(),
            lists: Lists::default(),
        };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "exception" => payload.lists.exception = map.next_value::<List<_>>()?.0,
                "threads" => payload.lists.threads = map.next_value::<List<_>>()?.0,
                "breadcrumbs" => payload.lists.breadcrumbs = map.next_value::<List<_>>()?.0,
                legacy if legacy.starts_with("sentry.interfaces.") => {
                    return Err(de::Error::custom("a legacy interface key"));
                }
                other => {
                    let value: Value = map.next_value()?;
                    payload.fields.insert(other.to_string(), value);
                }
            }
        }
        Ok(payload)
    }
}

/// An object key, borrowed from the payload unless it holds escapes.
struct Key<'a>(std::borrow::Cow<'a, str>);

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
    pre_context: Option<Vec<Option<String>>>,
    post_context: Option<Vec<Option<String>>>,
    in_app: Option<bool>,
    vars: Option<Value>,
    instruction_addr: Option<String>,
}

impl WireFrame {
    fn typed(self) -> Frame {
        let int = |n: Option<f64>| n.filter(|n| *n >= 0.0).map(|n| n as u64);
        let lines = |l: Option<Vec<Option<String>>>| {
            l.unwrap_or_default()
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect()
        };
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
            vars: self.vars,
            instruction_addr: self.instruction_addr,
            map_error: None,
        }
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
pub(super) struct WireBreadcrumb {
    timestamp: Option<Value>,
    #[serde(rename = "type")]
    ty: Option<String>,
    category: Option<String>,
    level: Option<Value>,
    message: Option<String>,
    data: Option<Value>,
    event_id: Option<String>,
}

impl WireBreadcrumb {
    pub(super) fn typed(self) -> Breadcrumb {
        Breadcrumb {
            timestamp: self
                .timestamp
                .as_ref()
                .and_then(super::normalize::timestamp),
            ty: self.ty,
            category: self.category,
            level: self
                .level
                .and_then(|v| Level::parse(&v))
                .map(|l| l.as_str().to_string()),
            message: self.message,
            data: self.data,
            event_id: self.event_id.filter(|s| !s.is_empty()),
        }
    }
}
