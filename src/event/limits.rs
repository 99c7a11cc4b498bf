//! Limits on what one event may hold. Nesting beyond the depth limit refuses the event before
//! it is parsed; everything else is cut to size (the innermost and outermost frames kept, the
//! latest breadcrumbs kept, long strings shortened) and the event records what was cut in
//! `truncated`, so nothing is silently different from what the SDK sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{Event, Frame, Json, truncate};
use super::normalize::NormalizeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventLimits {
    /// Deepest nesting of JSON arrays and objects accepted.
    pub max_json_depth: usize,
    /// Tags kept per event (the first ones sent).
    pub max_tags: usize,
    /// Frames kept per stack trace (half innermost, half outermost).
    pub max_frames: usize,
    /// Breadcrumbs kept per event (the latest).
    pub max_breadcrumbs: usize,
    /// Longest string kept anywhere in an event, in bytes.
    pub max_string_length: usize,
    /// Longest tag key or value, in bytes.
    pub max_tag_length: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            max_json_depth: 64,
            max_tags: 200,
            max_frames: 250,
            max_breadcrumbs: 100,
            max_string_length: 16_384,
            max_tag_length: 200,
        }
    }
}

/// Refuses JSON nested deeper than `max`, by a scan that costs no allocation and jumps through
/// strings (most of a payload's bytes) to their closing quote.
pub fn check_depth(json: &[u8], max: usize) -> Result<(), NormalizeError> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        i += 1;
        match b {
            b'"' => loop {
                // An unterminated string holds the rest: the parser reports it.
                let Some(rest) = json.get(i..) else {
                    return Ok(());
                };
                match quote_or_backslash(rest) {
                    Some(at) if rest[at] == b'\\' => i += at + 2,
                    Some(at) => {
                        i += at + 1;
                        break;
                    }
                    None => return Ok(()),
                }
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(NormalizeError::TooDeep { max });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Where the first `"` or `\\` in `bytes` is. Most strings in a payload are short, so the first
/// 32 bytes are looked at eight at a time in a word (a call to `memchr2` costs more than such a
/// string), the rest by `memchr2`.
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Each byte's high bit set where the byte is zero; the lowest one set is exact.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let head = bytes.len().min(32) / 8 * 8;
    for (n, c) in bytes[..head].chunks_exact(8).enumerate() {
        let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let found = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(n * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    memchr::memchr2(b'"', b'\\', &bytes[head..]).map(|at| head + at)
}

/// Cuts an event to the limits and notes in `truncated` what was cut.
pub fn enforce(ev: &mut Event, limits: &EventLimits) {
    let mut cut: Vec<&'static str> = Vec::new();
    if ev.tags.len() > limits.max_tags {
        ev.tags.truncate(limits.max_tags);
        cut.push("tags");
    }
    let mut long_tag = false;
    for (k, v) in &mut ev.tags {
        long_tag |= shorten(k, limits.max_tag_length) | shorten(v, limits.max_tag_length);
    }
    if long_tag {
        cut.push("tag_length");
    }
    if ev.breadcrumbs.len() > limits.max_breadcrumbs {
        let excess = ev.breadcrumbs.len() - limits.max_breadcrumbs;
        ev.breadcrumbs.drain(..excess);
        cut.push("breadcrumbs");
    }
    let stacks = ev
        .exception
        .iter_mut()
        .filter_map(|e| e.stacktrace.as_mut())
        .chain(ev.threads.iter_mut().filter_map(|t| t.stacktrace.as_mut()));
    let mut frames_cut = false;
    for st in stacks {
        frames_cut |= trim_frames(&mut st.frames, limits.max_frames);
    }
    if frames_cut {
        cut.push("frames");
    }
    if shorten_strings(ev, limits.max_string_length) {
        cut.push("strings");
    }
    for what in cut {
        if !ev.truncated.iter().any(|t| t == what) {
            ev.truncated.push(what.to_string());
        }
    }
}

/// Keeps the outermost and innermost halves of a stack (where it started, where it failed).
fn trim_frames(frames: &mut Vec<Frame>, max: usize) -> bool {
    let tail = max / 2;
    keep_ends(frames, max - tail, tail)
}

/// Keeps the first `head` and the last `tail` items of a list; true when it dropped any.
/// Normalization also uses it to drop what [`enforce`] would cut before it is ever turned
/// into typed values, so a payload of a million empty frames costs no more than its bytes.
pub fn keep_ends<T>(items: &mut Vec<T>, head: usize, tail: usize) -> bool {
    let len = items.len();
    if len <= head + tail {
        return false;
    }
    items.drain(head..len - tail);
    true
}

fn shorten(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    *s = truncate(std::mem::take(s), max);
    true
}

fn shorten_opt(s: &mut Option<String>, max: usize) -> bool {
    s.as_mut().is_some_and(|s| shorten(s, max))
}

fn shorten_value(v: &mut Value, max: usize) -> bool {
    match v {
        Value::String(s) => shorten(s, max),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |cut, item| shorten_value(item, max) | cut),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |cut, item| shorten_value(item, max) | cut),
        _ => false,
    }
}

/// A subtree kept as text holds no string longer than the text itself: it is parsed only when
/// that is longer than the limit.
fn shorten_json(json: &mut Json, max: usize) -> bool {
    if json.text().len() <= max {
        return false;
    }
    let mut v = json.value();
    let cut = shorten_value(&mut v, max);
    if cut {
        *json = Json::from_value(&v);
    }
    cut
}

fn shorten_strings(ev: &mut Event, max: usize) -> bool {
    let mut cut = false;
    for s in [
        &mut ev.logger,
        &mut ev.transaction,
        &mut ev.culprit,
        &mut ev.server_name,
        &mut ev.release,
        &mut ev.dist,
        &mut ev.environment,
    ] {
        cut |= shorten_opt(s, max);
    }
    if let Some(entry) = &mut ev.logentry {
        cut |= shorten_opt(&mut entry.message, max) | shorten_opt(&mut entry.formatted, max);
        if let Some(p) = &mut entry.params {
            cut |= shorten_value(p, max);
        }
    }
    for ex in &mut ev.exception {
        cut |= shorten_opt(&mut ex.ty, max)
            | shorten_opt(&mut ex.value, max)
            | shorten_opt(&mut ex.module, max);
        if let Some(m) = &mut ex.mechanism {
            cut |= shorten_value(m, max);
        }
    }
    let frames = ev
        .exception
        .iter_mut()
        .filter_map(|e| e.stacktrace.as_mut())
        .chain(ev.threads.iter_mut().filter_map(|t| t.stacktrace.as_mut()))
        .flat_map(|st| st.frames.iter_mut());
    for f in frames {
        for s in [
            &mut f.filename,
            &mut f.abs_path,
            &mut f.function,
            &mut f.module,
            &mut f.package,
            &mut f.context_line,
        ] {
            cut |= shorten_opt(s, max);
        }
        for line in f.pre_context.iter_mut().chain(f.post_context.iter_mut()) {
            cut |= shorten(line, max);
        }
        if let Some(vars) = &mut f.vars {
            cut |= shorten_json(vars, max);
        }
    }
    for b in &mut ev.breadcrumbs {
        cut |= shorten_opt(&mut b.message, max) | shorten_opt(&mut b.category, max);
        if let Some(d) = &mut b.data {
            cut |= shorten_json(d, max);
        }
    }
    for json in ev.contexts.values_mut().chain(ev.extra.values_mut()) {
        cut |= shorten_json(json, max);
    }
    for v in ev.other.values_mut() {
        cut |= shorten_value(v, max);
    }
    if let Some(v) = &mut ev.request {
        cut |= shorten_value(v, max);
    }
    for json in [&mut ev.sdk, &mut ev.modules].into_iter().flatten() {
        cut |= shorten_json(json, max);
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::model::{Breadcrumb, Exception, Json, Stacktrace};

    #[test]
    fn depth_is_checked_outside_strings() {
        assert!(check_depth(b"[[[]]]", 3).is_ok());
        assert_eq!(
            check_depth(b"[[[[]]]]", 3),
            Err(NormalizeError::TooDeep { max: 3 })
        );
        assert!(check_depth(br#"{"a": "[[[[[[[[\"[[[["}"#, 1).is_ok());
        // Escaped backslashes end before the quote; a backslash at the very end.
        assert!(check_depth(br#"{"a": "\\", "b": [[]]}"#, 3).is_ok());
        assert!(check_depth(br#"{"a": "\\", "b": [[]]}"#, 2).is_err());
        assert!(check_depth(br#"["\"#, 1).is_ok());
        assert!(check_depth(br#"["[[[[\\\"[[[", [[]]]"#, 3).is_ok());
        assert!(check_depth(br#"["[[[[\\\"[[[", [[]]]"#, 2).is_err());
        let deep = "[".repeat(100_000);
        assert!(check_depth(deep.as_bytes(), 64).is_err());
    }

    #[test]
    fn the_string_scan_finds_the_first_quote_or_backslash_anywhere() {
        for len in 0..80 {
            for at in 0..len {
                for stop in [b'"', b'\\'] {
                    // Bytes that differ from the stops by one bit, and high bytes.
                    let mut bytes: Vec<u8> =
                        (0..len).map(|i| [b'#', b']', 0xA2, b'a'][i % 4]).collect();
                    bytes[at] = stop;
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                    }
                    assert_eq!(quote_or_backslash(&bytes), Some(at), "{len} {at}");
                }
            }
            let plain: Vec<u8> = (0..len).map(|i| [b'#', b']', 0xA2, b'a'][i % 4]).collect();
            assert_eq!(quote_or_backslash(&plain), None);
        }
    }

    #[test]
    fn oversized_parts_are_cut_and_marked() {
        let limits = EventLimits {
            max_tags: 2,
            max_frames: 4,
            max_breadcrumbs: 3,
            max_string_length: 10,
            ..Default::default()
        };
        let mut ev = Event {
            tags: (0..5).map(|i| (format!("k{i}"), "v".into())).collect(),
            breadcrumbs: (0..6)
                .map(|i| Breadcrumb {
                    message: Some(format!("b{i}")),
                    ..Default::default()
                })
                .collect(),
            exception: vec![Exception {
                value: Some("x".repeat(50)),
                stacktrace: Some(Stacktrace {
                    frames: (0..10)
                        .map(|i| Frame {
                            lineno: Some(i),
                            ..Default::default()
                        })
                        .collect(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        enforce(&mut ev, &limits);
        assert_eq!(ev.tags.len(), 2);
        assert_eq!(
            ev.breadcrumbs.first().unwrap().message.as_deref(),
            Some("b3"),
            "the latest are kept"
        );
        let lines: Vec<u64> = ev.exception[0]
            .frames()
            .iter()
            .map(|f| f.lineno.unwrap())
            .collect();
        assert_eq!(
            lines,
            [0, 1, 8, 9],
            "outermost and innermost frames are kept"
        );
        assert!(ev.exception[0].value.as_ref().unwrap().len() <= 13);
        assert_eq!(ev.truncated, ["tags", "breadcrumbs", "frames", "strings"]);
    }

    #[test]
    fn long_strings_in_subtrees_kept_as_text_are_cut_too() {
        let limits = EventLimits {
            max_string_length: 10,
            ..Default::default()
        };
        let long = Json::from_value(&serde_json::json!({"k": "x".repeat(50), "n": 1}));
        let short = Json::from_value(&serde_json::json!({"k": "short"}));
        let mut ev = Event {
            exception: vec![Exception {
                stacktrace: Some(Stacktrace {
                    frames: vec![Frame {
                        vars: Some(long),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }],
            modules: Some(short.clone()),
            ..Default::default()
        };
        enforce(&mut ev, &limits);
        let vars = ev.exception[0].frames()[0].vars.as_ref().unwrap().value();
        assert!(vars["k"].as_str().unwrap().len() <= 13, "{vars}");
        assert_eq!(vars["n"], 1);
        assert_eq!(ev.modules, Some(short));
        assert_eq!(ev.truncated, ["strings"]);
    }
}
