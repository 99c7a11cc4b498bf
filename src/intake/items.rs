//! Envelope items besides events and feedback, read from their bytes: attachments (their
//! header says what they are), the SDKs' client reports (what they discarded before sending),
//! and the labels under which whatever picket does not keep is counted. Pure functions.

use serde::Deserialize;
use serde_json::Value;

use super::envelope::Item;

/// Longest attachment file name kept, in characters.
const MAX_NAME: usize = 512;
/// Longest label (item type, category, reason, attachment type) kept, in bytes.
const MAX_LABEL: usize = 64;

/// An `attachment` item as its header describes it.
#[derive(Debug, PartialEq)]
pub struct AttachmentItem<'a> {
    pub name: String,
    pub content_type: Option<String>,
    pub attachment_type: String,
    pub payload: &'a [u8],
}

impl<'a> AttachmentItem<'a> {
    /// Reads an attachment item's header (`filename`, `content_type`, `attachment_type`).
    pub fn of(item: &Item<'a>) -> AttachmentItem<'a> {
        fn text(field: &Option<String>) -> Option<&str> {
            field.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let header = &item.header;
        let name = text(&header.filename).unwrap_or("attachment");
        AttachmentItem {
            name: name
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_NAME)
                .collect(),
            content_type: text(&header.content_type).map(label),
            attachment_type: text(&header.attachment_type).map_or("event.attachment".into(), label),
            payload: item.payload,
        }
    }

    /// Whether it is a crash report that stands for an event of its own when none came with it
    /// (a minidump or an Apple crash report).
    pub fn is_crash_report(&self) -> bool {
        matches!(
            self.attachment_type.as_str(),
            "event.minidump" | "event.applecrashreport"
        )
    }
}

/// A client-chosen name made safe to count under: at most 64 bytes of letters, digits and
/// `_ . : / + -`, anything else replaced by `_`; empty becomes `unknown`.
pub fn label(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().chars() {
        if out.len() >= MAX_LABEL {
            break;
        }
        out.push(if c.is_ascii_alphanumeric() || "_.:/+-".contains(c) {
            c
        } else {
            '_'
        });
    }
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid client report: {0}")]
pub struct ClientReportError(String);

#[derive(Deserialize)]
struct Discarded {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    quantity: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ClientReport {
    discarded_events: Vec<Discarded>,
    // Older SDKs split the same counts by outcome.
    rate_limited_events: Vec<Discarded>,
    filtered_events: Vec<Discarded>,
    filtered_sampling_events: Vec<Discarded>,
}

/// What a `client_report` item says the SDK discarded: (category, reason, quantity), labels
/// made safe; entries without a positive whole quantity are skipped.
pub fn client_report(payload: &[u8]) -> Result<Vec<(String, String, u64)>, ClientReportError> {
    let report: ClientReport =
        serde_json::from_slice(payload).map_err(|e| ClientReportError(e.to_string()))?;
    let lists = [
        (report.discarded_events, None),
        (report.rate_limited_events, Some("ratelimited")),
        (report.filtered_events, Some("filtered")),
        (report.filtered_sampling_events, Some("sample_rate")),
    ];
    let mut out = Vec::new();
    for (list, fallback) in lists {
        for d in list {
            let quantity = match &d.quantity {
                Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
                _ => 0,
            };
            if quantity == 0 {
                continue;
            }
            let reason = d.reason.as_deref().or(fallback).unwrap_or("unknown");
            let category = d.category.as_deref().unwrap_or("unknown");
            out.push((label(category), label(reason), quantity));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::envelope;

    #[test]
    fn attachment_headers_are_read_and_bounded() {
        let env = envelope::parse(
            b"{}\n{\"type\":\"attachment\",\"length\":2,\"filename\":\"a\\u0000b.log\",\"attachment_type\":\"event.minidump\",\"content_type\":\"text/plain\"}\nhi\n{\"type\":\"attachment\",\"length\":0}\n",
        )
        .unwrap();
        let a = AttachmentItem::of(&env.items[0]);
        assert_eq!(a.name, "ab.log");
        assert_eq!(a.content_type.as_deref(), Some("text/plain"));
        assert!(a.is_crash_report());
        assert_eq!(a.payload, b"hi");
        let b = AttachmentItem::of(&env.items[1]);
        assert_eq!(
            (b.name.as_str(), b.attachment_type.as_str()),
            ("attachment", "event.attachment")
        );
        assert!(!b.is_crash_report());
    }

    #[test]
    fn client_reports_in_both_formats() {
        let got = client_report(
            br#"{"timestamp":"2026-01-01T00:00:00","discarded_events":[{"reason":"ratelimit_backoff","category":"error","quantity":120},{"reason":"x","category":"error","quantity":-1}],"rate_limited_events":[{"category":"transaction","quantity":3}]}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("error".into(), "ratelimit_backoff".into(), 120),
                ("transaction".into(), "ratelimited".into(), 3)
            ]
        );
        assert!(client_report(b"[1]").is_err());
        assert_eq!(label("a b<script>"), "a_b_script_");
        assert_eq!(label(&"x".repeat(500)).len(), 64);
    }
}
