//! User feedback: what an end user wrote about an error, from the three ways SDKs send it.
//! The current `feedback` envelope item (an event whose `contexts.feedback` holds `message`,
//! `contact_email`, `name`, `associated_event_id`, `url`, `source`; `Sentry.captureFeedback`
//! and the feedback widget), the older `user_report` item (`event_id`, `name`, `email`,
//! `comments`) and the crash-report dialog's form (`name`, `email`, `comments`). Pure: bytes
//! in, a [`Feedback`] or a [`NormalizeError`] naming the problem out.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::NormalizeError;
use super::model::{Event, Json};
use crate::ids::EventId;

/// Longest message kept, in characters (the feedback widget allows 4096); longer ones are cut.
pub const MAX_MESSAGE_CHARS: usize = 8192;
/// Longest name, email, URL or source kept, in characters.
const MAX_FIELD_CHARS: usize = 512;

/// One end user's report, as stored.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Feedback {
    /// The feedback's own id (the id of the feedback event or report).
    pub id: EventId,
    pub message: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The error event it is about, when the SDK named one.
    pub event_id: Option<EventId>,
    /// The page it was sent from.
    pub url: Option<String>,
    /// What sent it: `widget`, `api`, `crash_report_dialog`, `user_report`…
    pub source: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    /// Receive time (Unix seconds).
    pub received: f64,
}

/// The feedback an already normalized `feedback` item carries in `contexts.feedback`.
pub fn from_event(event: &Event) -> Result<Feedback, NormalizeError> {
    let context = (event.contexts.get("feedback").map(Json::value))
        .and_then(|c| match c {
            Value::Object(c) => Some(c),
            _ => None,
        })
        .ok_or(NormalizeError::Feedback(
            "a feedback item needs contexts.feedback",
        ))?;
    let text = |key: &str| context.get(key).and_then(Value::as_str);
    let user = event.user.as_ref();
    let url = text("url")
        .or_else(|| event.request_field("url"))
        .map(str::to_string);
    let event_id = match text("associated_event_id") {
        Some(id) => Some(EventId::parse(id).ok_or(NormalizeError::Feedback(
            "contexts.feedback.associated_event_id is not an event id",
        ))?),
        None => None,
    };
    build(Feedback {
        id: event.event_id,
        message: message(text("message"))?,
        name: text("name")
            .map(str::to_string)
            .or_else(|| user.and_then(|u| u.name.clone().or(u.username.clone()))),
        email: text("contact_email")
            .map(str::to_string)
            .or_else(|| user.and_then(|u| u.email.clone())),
        event_id,
        url,
        source: text("source").map(str::to_string),
        release: event.release.clone(),
        environment: event.environment.clone(),
        received: event.received,
    })
}

/// A `user_report` item: `{"event_id", "name", "email", "comments"}`.
pub fn from_user_report(
    json: &[u8],
    received: f64,
    header_id: Option<EventId>,
) -> Result<Feedback, NormalizeError> {
    #[derive(Deserialize)]
    struct UserReport {
        event_id: Option<String>,
        name: Option<String>,
        email: Option<String>,
        comments: Option<String>,
    }
    let report: UserReport = serde_json::from_slice(json)
        .map_err(|e| NormalizeError::InvalidJson(format!("user_report: {e}")))?;
    let event_id = report
        .event_id
        .as_deref()
        .map(|id| {
            EventId::parse(id).ok_or(NormalizeError::Feedback(
                "user_report.event_id is not an event id",
            ))
        })
        .transpose()?
        .or(header_id);
    build(Feedback {
        id: EventId::random(),
        message: message(report.comments.as_deref())?,
        name: report.name,
        email: report.email,
        event_id: Some(event_id.ok_or(NormalizeError::Feedback(
            "a user_report needs the event_id it is about",
        ))?),
        source: Some("user_report".into()),
        received,
        ..Default::default()
    })
}

/// What the crash-report dialog's form posts about `event_id`.
pub fn from_dialog(
    event_id: EventId,
    name: Option<&str>,
    email: Option<&str>,
    comments: Option<&str>,
    received: f64,
) -> Result<Feedback, NormalizeError> {
    build(Feedback {
        id: EventId::random(),
        message: message(comments)?,
        name: name.map(str::to_string),
        email: email.map(str::to_string),
        event_id: Some(event_id),
        source: Some("crash_report_dialog".into()),
        received,
        ..Default::default()
    })
}

fn message(text: Option<&str>) -> Result<String, NormalizeError> {
    match text.map(str::trim) {
        Some(text) if !text.is_empty() => Ok(cut(text, MAX_MESSAGE_CHARS)),
        _ => Err(NormalizeError::Feedback("the feedback message is empty")),
    }
}

/// Trims and bounds every text field; empty ones become `None`.
fn build(mut feedback: Feedback) -> Result<Feedback, NormalizeError> {
    for field in [
        &mut feedback.name,
        &mut feedback.email,
        &mut feedback.url,
        &mut feedback.source,
    ] {
        *field = field
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| cut(s, MAX_FIELD_CHARS));
    }
    Ok(feedback)
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::normalize::{Context, normalize};

    fn feedback_event(json: &str) -> Result<Feedback, NormalizeError> {
        let ctx = Context {
            received: 1_700_000_000.0,
            ..Default::default()
        };
        from_event(&normalize(json.as_bytes(), &ctx)?)
    }

    #[test]
    fn the_current_feedback_item_is_read_from_its_context() {
        let f = feedback_event(
            r#"{"event_id":"0f0e0d0c0b0a09080706050403020100","type":"feedback","release":"shop@2",
                "contexts":{"feedback":{"message":"  The cart is empty  ","contact_email":"ann@example.com",
                "name":"Ann","associated_event_id":"00112233-4455-6677-8899-aabbccddeeff",
                "url":"https://shop.example/cart","source":"widget"}}}"#,
        )
        .unwrap();
        assert_eq!(f.message, "The cart is empty");
        assert_eq!(f.email.as_deref(), Some("ann@example.com"));
        assert_eq!(
            f.event_id.unwrap().to_string(),
            "00112233445566778899aabbccddeeff"
        );
        assert_eq!(f.id.to_string(), "0f0e0d0c0b0a09080706050403020100");
        assert_eq!(f.release.as_deref(), Some("shop@2"));
        assert_eq!(f.source.as_deref(), Some("widget"));
    }

    #[test]
    fn missing_or_bad_fields_are_named() {
        let err = feedback_event(r#"{"type":"feedback"}"#).unwrap_err();
        assert!(err.to_string().contains("contexts.feedback"), "{err}");
        let err = feedback_event(r#"{"contexts":{"feedback":{"message":"  "}}}"#).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = feedback_event(
            r#"{"contexts":{"feedback":{"message":"x","associated_event_id":"nope"}}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("associated_event_id"), "{err}");
    }

    #[test]
    fn user_reports_and_long_text() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let json = serde_json::json!({
            "event_id": "00112233445566778899aabbccddeeff",
            "name": "Bo", "email": "", "comments": long,
        });
        let f = from_user_report(json.to_string().as_bytes(), 1.0, None).unwrap();
        assert_eq!(f.message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(f.email, None);
        assert_eq!(f.name.as_deref(), Some("Bo"));
        assert!(from_user_report(br#"{"comments":"x"}"#, 1.0, None).is_err());
        let header = EventId::parse("00112233445566778899aabbccddeeff");
        assert!(from_user_report(br#"{"comments":"x"}"#, 1.0, header).is_ok());
        assert!(from_user_report(b"[1]", 1.0, header).is_err());
    }
}
