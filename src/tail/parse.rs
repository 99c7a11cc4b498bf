//! PHP and php-fpm error logs, parsed: splitting bytes into entries (a timestamped line plus
//! the unprefixed lines after it), and turning an entry into a Sentry event that groups well
//! (the PHP kind or exception class as the type, frames from the native or xdebug trace, a
//! fingerprint of kind, site and the message with its variable parts masked). Pure functions
//! over bytes and text, so they can be fuzzed.

use chrono::{NaiveDateTime, TimeZone};
use serde_json::{Value, json};

use crate::config::LogFormat;

/// The `[…]` prefix of a line: its length including the `] `, and its time text.
fn prefix(line: &str) -> Option<(usize, &str)> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    let inside = &rest[..close];
    // dd-Mon-yyyy hh:mm:ss…: a date with dashes, then a time.
    let bytes = inside.as_bytes();
    let dated = bytes.len() >= 20
        && bytes[2] == b'-'
        && bytes[6] == b'-'
        && bytes[11] == b' '
        && bytes[14] == b':'
        && bytes[..2].iter().all(u8::is_ascii_digit);
    if !dated {
        return None;
    }
    let after = &rest[close + 1..];
    let skip = 2 + close + usize::from(after.starts_with(' '));
    Some((skip, inside))
}

/// An xdebug stack line (`PHP Stack trace:`, `PHP   1. {main}() …`), which PHP logs with its
/// own prefix but which belongs to the error before it.
fn xdebug_line(message: &str) -> bool {
    if message.starts_with("PHP Stack trace:") {
        return true;
    }
    let Some(rest) = message.strip_prefix("PHP ") else {
        return false;
    };
    let rest = rest.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with(". ")
}

/// The text a php-fpm worker wrote: `WARNING: [pool www] child 12 said into stderr: "…"`.
/// Returns (pool and child, inner text).
fn fpm_worker(message: &str) -> Option<(&str, &str)> {
    let at = message.find("] child ")?;
    let start = message.find("[pool ")?;
    let said = message.find(" said into std")?;
    let quote = message[said..].find(": \"")? + said + 3;
    let mut inner = &message[quote..];
    inner = inner.strip_suffix(", pipe is closed").unwrap_or(inner);
    inner = inner.strip_suffix('"').unwrap_or(inner);
    (start < at && at < said).then(|| (&message[start..said], inner))
}

/// Whether a worker line continues the one before it (a trace written line by line).
fn fpm_continuation(inner: &str) -> bool {
    inner.is_empty()
        || inner.starts_with("Stack trace:")
        || inner.starts_with('#')
        || inner.starts_with("  thrown in ")
        || inner.starts_with("Next ")
}

/// Splits bytes read from a log into complete entries, as (start, end) byte ranges. An entry is
/// complete once another entry starts after it, or (when `eof_complete`) once its last line
/// has its newline: PHP writes a message with one `write()`. A last line without its newline is
/// never part of an entry; it waits. Returns the entries and how many bytes they cover.
pub fn split(buf: &[u8], eof_complete: bool) -> (Vec<(usize, usize)>, usize) {
    let mut entries = Vec::new();
    let mut start: Option<usize> = None;
    let mut worker: Option<String> = None;
    let mut pos = 0;
    while pos < buf.len() {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            break; // a half-written line: it waits
        };
        let line_end = pos + nl + 1;
        let line = String::from_utf8_lossy(&buf[pos..line_end - 1]);
        let mut begins = true;
        let mut this_worker = None;
        if let Some((skip, _)) = prefix(&line) {
            let message = &line[skip.min(line.len())..];
            if xdebug_line(message) {
                begins = false;
            } else if let Some((who, inner)) = fpm_worker(message) {
                if fpm_continuation(inner) && worker.as_deref() == Some(who) {
                    begins = false;
                }
                this_worker = Some(who.to_string());
            }
        } else {
            begins = false;
        }
        if begins || start.is_none() {
            if let Some(s) = start {
                entries.push((s, pos));
            }
            start = Some(pos);
            worker = this_worker;
        } else if this_worker.is_some() {
            worker = this_worker;
        }
        pos = line_end;
    }
    match start {
        Some(s) if eof_complete && pos > s => {
            entries.push((s, pos));
            (entries, pos)
        }
        Some(s) => (entries, s),
        None => (entries, pos),
    }
}

/// A PHP error kind, and how it maps to a Sentry level.
const KINDS: [(&str, &str); 8] = [
    ("Fatal error", "fatal"),
    ("Recoverable fatal error", "error"),
    ("Parse error", "fatal"),
    ("Warning", "warning"),
    ("Notice", "info"),
    ("Strict Standards", "info"),
    ("Deprecated", "warning"),
    ("Unknown error", "error"),
];

/// One exception of a parsed entry, innermost cause first in a chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    pub ty: String,
    pub value: String,
    /// Frames oldest first: (file, line, function).
    pub frames: Vec<(String, u64, Option<String>)>,
}

/// What an entry says.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Unix seconds from the prefix, if it had one.
    pub timestamp: Option<f64>,
    pub level: &'static str,
    /// Exceptions (a PHP error is one), or none for a plain message.
    pub exceptions: Vec<Exception>,
    /// The whole text, for a message or as the raw entry.
    pub message: String,
    pub fingerprint: Vec<String>,
}

/// Parses one entry (the bytes of [`split`]'s ranges, as text).
pub fn parse(entry: &str, format: LogFormat) -> Parsed {
    let entry = entry.trim_end_matches(['\n', '\r']);
    let first_end = entry.find('\n').unwrap_or(entry.len());
    let first = &entry[..first_end];
    let (timestamp, body) = match prefix(first) {
        Some((skip, time)) => (parse_time(time), &entry[skip.min(entry.len())..]),
        None => (None, entry),
    };
    // xdebug's trace lines carry prefixes of their own.
    let mut body = body
        .split('\n')
        .map(|line| match prefix(line) {
            Some((skip, _)) if xdebug_line(&line[skip.min(line.len())..]) => &line[skip..],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut level_hint = None;
    if format != LogFormat::Php {
        // Worker output: join the inner texts of every line of the entry.
        if let Some((_, inner)) = fpm_worker(body.lines().next().unwrap_or("")) {
            let inners: Vec<String> = entry
                .lines()
                .map(|l| {
                    let msg = prefix(l).map_or(l, |(skip, _)| &l[skip.min(l.len())..]);
                    fpm_worker(msg).map_or(msg, |(_, i)| i).to_string()
                })
                .collect();
            let _ = inner;
            body = inners.join("\n");
            level_hint = Some("warning");
        }
        for (tag, level) in [
            ("NOTICE: ", "info"),
            ("WARNING: ", "warning"),
            ("ERROR: ", "error"),
            ("ALERT: ", "error"),
            ("DEBUG: ", "debug"),
        ] {
            if let Some(rest) = body.strip_prefix(tag) {
                body = rest.to_string();
                level_hint = Some(level);
                break;
            }
        }
        if let Some(rest) = body.strip_prefix("PHP message: ") {
            body = rest.to_string();
        }
    }
    let body = body.replace('\r', "");
    if let Some(parsed) = php_error(&body, timestamp) {
        return parsed;
    }
    let level = level_hint.unwrap_or("error");
    Parsed {
        timestamp,
        level,
        exceptions: Vec::new(),
        fingerprint: vec!["php-log-message".into(), mask(&body)],
        message: body,
    }
}

/// `PHP <Kind>:  <message> in <file> on line <n>`, with a native or xdebug trace after it.
fn php_error(body: &str, timestamp: Option<f64>) -> Option<Parsed> {
    let rest = body.strip_prefix("PHP ")?;
    let (kind, level, text) = KINDS.iter().find_map(|(kind, level)| {
        let text = rest.strip_prefix(kind)?.strip_prefix(':')?;
        Some((*kind, *level, text.trim_start()))
    })?;
    if let Some(uncaught) = text.strip_prefix("Uncaught ") {
        return Some(uncaught_exception(uncaught, timestamp, body));
    }
    // xdebug's trace follows on lines of its own.
    let (head, xdebug) = match text.find("\nPHP Stack trace:") {
        Some(at) => (&text[..at], Some(&text[at..])),
        None => (text, None),
    };
    let head = head.trim_end();
    let (message, site) = split_site(head);
    let mut frames: Vec<(String, u64, Option<String>)> = Vec::new();
    if let Some(trace) = xdebug {
        let calls: Vec<(String, String, u64)> = trace.lines().filter_map(xdebug_frame).collect();
        // Each call ran at the place the next one was made; the last one at the error's site.
        for (i, (function, _, _)) in calls.iter().enumerate() {
            let at = match calls.get(i + 1) {
                Some((_, file, line)) => Some((file.clone(), *line)),
                None => site.clone(),
            };
            if let Some((file, line)) = at {
                frames.push((file, line, Some(function.clone())));
            }
        }
    }
    if frames.is_empty()
        && let Some((file, line)) = &site
    {
        frames.push((file.clone(), *line, None));
    }
    let fingerprint = vec![
        "php".into(),
        kind.into(),
        site.as_ref()
            .map_or(String::new(), |(f, l)| format!("{f}:{l}")),
        mask(message),
    ];
    Some(Parsed {
        timestamp,
        level,
        exceptions: vec![Exception {
            ty: kind.into(),
            value: message.into(),
            frames,
        }],
        message: body.into(),
        fingerprint,
    })
}

/// `… in FILE on line N`, taken from the end: (message, site).
fn split_site(text: &str) -> (&str, Option<(String, u64)>) {
    let Some(on_line) = text.rfind(" on line ") else {
        return (text, None);
    };
    let Ok(line) = text[on_line + 9..].trim().parse::<u64>() else {
        return (text, None);
    };
    let Some(in_at) = text[..on_line].rfind(" in ") else {
        return (text, None);
    };
    let file = &text[in_at + 4..on_line];
    (&text[..in_at], Some((file.to_string(), line)))
}

/// `PHP   2. foo($a) /path/x.php:10` → (function, file, line).
fn xdebug_frame(line: &str) -> Option<(String, String, u64)> {
    let line = prefix(line).map_or(line, |(skip, _)| &line[skip.min(line.len())..]);
    let rest = line.strip_prefix("PHP ")?.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let rest = rest.get(digits..)?.strip_prefix(". ")?;
    let (call, location) = rest.rsplit_once(' ')?;
    let (file, line) = location.rsplit_once(':')?;
    let function = call.split('(').next().unwrap_or(call).to_string();
    Some((function, file.to_string(), line.parse().ok()?))
}

/// `<Class>: <msg> in <file>:<line>\nStack trace:\n#0 …` segments joined by `\n\nNext `, the
/// innermost first, ending with `  thrown in <file> on line <n>`.
fn uncaught_exception(text: &str, timestamp: Option<f64>, raw: &str) -> Parsed {
    let text = match text.rfind("\n  thrown in ") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut exceptions = Vec::new();
    for segment in text.split("\n\nNext ") {
        let (header, trace) = match segment.find("\nStack trace:") {
            Some(at) => (&segment[..at], &segment[at + 13..]),
            None => (segment, ""),
        };
        let (ty, value, site) = exception_header(header.trim());
        // The trace lists calls newest first; each frame ran where the next-older call was made.
        let calls: Vec<(Option<(String, u64)>, String)> =
            trace.lines().filter_map(native_frame).collect();
        let mut frames = Vec::new();
        let mut at = site.clone();
        for (location, function) in &calls {
            if let Some((file, line)) = at.take() {
                frames.push((file, line, Some(function.clone())));
            }
            at = location.clone();
        }
        if let Some((file, line)) = at {
            frames.push((file, line, Some("{main}".to_string())));
        }
        frames.reverse();
        if frames.is_empty()
            && let Some((file, line)) = site
        {
            frames.push((file, line, None));
        }
        exceptions.push(Exception { ty, value, frames });
    }
    let thrown = exceptions.last().cloned();
    let site = thrown
        .as_ref()
        .and_then(|e| e.frames.last())
        .map(|(f, l, _)| format!("{f}:{l}"))
        .unwrap_or_default();
    let fingerprint = vec![
        "php".into(),
        thrown.as_ref().map_or(String::new(), |e| e.ty.clone()),
        site,
        thrown.as_ref().map_or(String::new(), |e| mask(&e.value)),
    ];
    Parsed {
        timestamp,
        level: "fatal",
        exceptions,
        message: raw.into(),
        fingerprint,
    }
}

/// `Class: msg in file:line` (PHP 7+) or `exception 'Class' with message 'msg' in file:line`
/// (PHP 5).
fn exception_header(header: &str) -> (String, String, Option<(String, u64)>) {
    let (rest, site) = match header.rfind(" in ") {
        Some(at) => {
            let location = &header[at + 4..];
            match location.rsplit_once(':') {
                Some((file, line)) if line.parse::<u64>().is_ok() => (
                    &header[..at],
                    Some((file.to_string(), line.parse().unwrap_or(0))),
                ),
                _ => (header, None),
            }
        }
        None => (header, None),
    };
    if let Some(old) = rest.strip_prefix("exception '")
        && let Some((class, message)) = old.split_once("' with message '")
    {
        return (
            class.to_string(),
            message.strip_suffix('\'').unwrap_or(message).to_string(),
            site,
        );
    }
    match rest.split_once(": ") {
        Some((class, message)) if !class.contains(' ') => {
            (class.to_string(), message.to_string(), site)
        }
        _ => ("Exception".to_string(), rest.to_string(), site),
    }
}

/// `#0 /path/x.php(12): Foo->bar('a')` or `#1 [internal function]: baz()` or `#2 {main}` →
/// (location, function).
fn native_frame(line: &str) -> Option<(Option<(String, u64)>, String)> {
    let rest = line.trim().strip_prefix('#')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let rest = rest.get(digits..)?.trim_start();
    if rest == "{main}" {
        return None;
    }
    let (location, call) = rest.split_once("): ").or_else(|| rest.split_once(": "))?;
    let function = call.split('(').next().unwrap_or(call).to_string();
    let location = location.rsplit_once('(').and_then(|(file, line)| {
        Some((file.to_string(), line.trim_end_matches(')').parse().ok()?))
    });
    Some((location, function))
}

/// `25-Nov-2026 14:55:56 UTC`, `06-May-2021 21:17:27 America/Los_Angeles`, or php-fpm's zoneless
/// `14-Oct-2021 10:54:57` (local time, maybe with `.123456`) → Unix seconds.
pub fn parse_time(text: &str) -> Option<f64> {
    let (datetime, zone) = match text.get(20..) {
        Some(zone) if text.as_bytes().get(20) == Some(&b' ') => (&text[..20], Some(zone.trim())),
        _ => (text, None),
    };
    let datetime = datetime.trim();
    let naive = NaiveDateTime::parse_from_str(datetime, "%d-%b-%Y %H:%M:%S%.f").ok()?;
    let utc = match zone {
        Some("UTC" | "GMT" | "Z") => naive.and_utc(),
        Some(name) => {
            let tz: chrono_tz::Tz = name.parse().ok()?;
            tz.from_local_datetime(&naive)
                .earliest()?
                .with_timezone(&chrono::Utc)
        }
        None => chrono::Local
            .from_local_datetime(&naive)
            .earliest()?
            .with_timezone(&chrono::Utc),
    };
    Some(utc.timestamp_micros() as f64 / 1e6)
}

/// A message with its variable parts masked, so that one error site makes one issue: quoted
/// values become `<s>`, numbers (and hex) `<n>`.
pub fn mask(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut closed = false;
                let mut inner = String::new();
                for d in chars.by_ref() {
                    if d == c {
                        closed = true;
                        break;
                    }
                    inner.push(d);
                }
                if closed {
                    out.push_str("<s>");
                } else {
                    out.push(c);
                    out.push_str(&mask(&inner));
                }
            }
            c if c.is_ascii_digit() => {
                loop {
                    let mut ahead = chars.clone();
                    match ahead.next() {
                        Some(d) if d.is_ascii_hexdigit() || d == 'x' => {
                            chars.next();
                        }
                        // A decimal point only between digits ("1.5", not "1.txt").
                        Some('.') if ahead.next().is_some_and(|d| d.is_ascii_digit()) => {
                            chars.next();
                        }
                        _ => break,
                    }
                }
                out.push_str("<n>");
            }
            c => out.push(c),
        }
    }
    out
}

/// The Sentry event for a parsed entry (without `event_id`, context lines and the caller's
/// fields): exception values with frames, or a message; level, fingerprint, logger, platform.
pub fn to_event(parsed: &Parsed) -> Value {
    let mut event = json!({
        "platform": "php",
        "logger": "php",
        "level": parsed.level,
        "fingerprint": parsed.fingerprint,
    });
    if let Some(ts) = parsed.timestamp {
        event["timestamp"] = json!(ts);
    }
    if parsed.exceptions.is_empty() {
        event["message"] = json!(parsed.message);
    } else {
        let values: Vec<Value> = parsed
            .exceptions
            .iter()
            .map(|e| {
                let frames: Vec<Value> = e
                    .frames
                    .iter()
                    .map(|(file, line, function)| {
                        let mut frame = json!({
                            "filename": file,
                            "abs_path": file,
                            "lineno": line,
                            "in_app": !file.contains("/vendor/"),
                        });
                        if let Some(f) = function {
                            frame["function"] = json!(f);
                        }
                        frame
                    })
                    .collect();
                let mut value = json!({
                    "type": e.ty,
                    "value": e.value,
                    "mechanism": { "type": "php-log", "handled": false },
                });
                if !frames.is_empty() {
                    value["stacktrace"] = json!({ "frames": frames });
                }
                value
            })
            .collect();
        event["exception"] = json!({ "values": values });
        event["extra"] = json!({ "log_entry": parsed.message });
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[25-Nov-2026 14:55:56 UTC] PHP Warning:  Undefined array key \"key0\" in /tmp/t.php on line 3
[25-Nov-2026 14:55:56 UTC] Request URI: /index.php, IP address: 10.0.0.1
[25-Nov-2026 14:55:56 UTC] PHP Fatal error:  Uncaught InvalidArgumentException: bad id 1234 in /tmp/t.php:10
Stack trace:
#0 /tmp/t.php(11): inner()
#1 /tmp/t.php(12): outer()
#2 {main}

Next AppException: checkout failed for order 99 in /tmp/t.php:11
Stack trace:
#0 /tmp/t.php(12): outer()
#1 {main}
  thrown in /tmp/t.php on line 11
[25-Nov-2026 14:55:57 UTC] PHP Parse error:  syntax error, unexpected token \";\" in /tmp/p.php on line 1
[25-Nov-2026 14:55:5";

    #[test]
    fn entries_end_where_the_next_begins_and_half_lines_wait() {
        let (entries, used) = split(LOG.as_bytes(), true);
        assert_eq!(entries.len(), 4);
        let third = &LOG[entries[2].0..entries[2].1];
        assert!(third.contains("Next AppException") && third.ends_with("line 11\n"));
        assert_eq!(
            &LOG[used..],
            "[25-Nov-2026 14:55:5",
            "the half-written line waits"
        );
        // Without the end being complete, the last full entry waits too.
        let (entries, _) = split(LOG.as_bytes(), false);
        assert_eq!(entries.len(), 3);
    }

    #[test]
    fn a_warning_is_one_exception_at_its_site() {
        let p = parse(
            "[25-Nov-2026 14:55:56 UTC] PHP Warning:  Undefined array key \"key7\" in /tmp/t.php on line 3\n",
            LogFormat::Auto,
        );
        assert_eq!(p.level, "warning");
        assert_eq!(p.exceptions[0].ty, "Warning");
        assert_eq!(p.exceptions[0].value, "Undefined array key \"key7\"");
        assert_eq!(p.exceptions[0].frames, vec![("/tmp/t.php".into(), 3, None)]);
        assert_eq!(p.timestamp, Some(1_795_618_556.0));
        let other = parse(
            "[25-Nov-2026 14:55:59 UTC] PHP Warning:  Undefined array key \"key9\" in /tmp/t.php on line 3\n",
            LogFormat::Auto,
        );
        assert_eq!(
            p.fingerprint, other.fingerprint,
            "variable parts are masked"
        );
    }

    #[test]
    fn an_uncaught_chain_has_frames_oldest_first() {
        let (entries, _) = split(LOG.as_bytes(), true);
        let p = parse(&LOG[entries[2].0..entries[2].1], LogFormat::Auto);
        assert_eq!(p.level, "fatal");
        let types: Vec<_> = p.exceptions.iter().map(|e| e.ty.as_str()).collect();
        assert_eq!(types, ["InvalidArgumentException", "AppException"]);
        let inner = &p.exceptions[0];
        let functions: Vec<_> = inner.frames.iter().map(|f| f.2.clone().unwrap()).collect();
        assert_eq!(functions, ["{main}", "outer", "inner"]);
        assert_eq!(
            inner.frames[2],
            ("/tmp/t.php".into(), 10, Some("inner".into()))
        );
        assert_eq!(inner.frames[0].1, 12);
    }

    #[test]
    fn fpm_lines() {
        let p = parse(
            "[14-Oct-2021 10:54:57] WARNING: [pool www] child 32024 said into stderr: \"PHP Warning:  Division by zero in /srv/a.php on line 9\"\n",
            LogFormat::Auto,
        );
        assert_eq!(p.exceptions[0].ty, "Warning");
        assert_eq!(p.exceptions[0].frames[0].1, 9);
        let p = parse(
            "[14-Oct-2021 10:54:57] NOTICE: PHP message: PHP Notice:  Undefined offset: 1 in /srv/b.php on line 4\n",
            LogFormat::Auto,
        );
        assert_eq!((p.exceptions[0].ty.as_str(), p.level), ("Notice", "info"));
        let p = parse(
            "[14-Oct-2021 10:54:57] NOTICE: fpm is running, pid 1\n",
            LogFormat::Auto,
        );
        assert_eq!((p.level, p.exceptions.len()), ("info", 0));
        assert!(parse_time("14-Oct-2021 10:54:57.123456").is_some());
        assert!(
            parse_time("06-May-2021 21:17:27 America/Los_Angeles")
                .is_some_and(|t| t == 1_620_361_047.0)
        );
    }

    #[test]
    fn xdebug_traces_join_their_error() {
        let log = "[01-Jan-2024 10:00:00 UTC] PHP Warning:  Division by zero in /x.php on line 10
[01-Jan-2024 10:00:00 UTC] PHP Stack trace:
[01-Jan-2024 10:00:00 UTC] PHP   1. {main}() /x.php:0
[01-Jan-2024 10:00:00 UTC] PHP   2. divide($a = 1, $b = 0) /x.php:14
";
        let (entries, _) = split(log.as_bytes(), true);
        assert_eq!(entries.len(), 1);
        let p = parse(log, LogFormat::Auto);
        let frames = &p.exceptions[0].frames;
        assert_eq!(
            frames,
            &vec![
                ("/x.php".to_string(), 14, Some("{main}".to_string())),
                ("/x.php".to_string(), 10, Some("divide".to_string())),
            ]
        );
    }

    #[test]
    fn masking() {
        assert_eq!(
            mask("file_get_contents(/x/file-14.txt): Failed for 'abc' id 0x1f"),
            "file_get_contents(/x/file-<n>.txt): Failed for <s> id <n>"
        );
    }
}
