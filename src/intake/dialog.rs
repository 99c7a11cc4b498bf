//! The crash-report dialog of the browser SDKs (`Sentry.showReportDialog()`): `GET
//! /api/embed/error-page/?dsn=…&eventId=…` answers the script that shows the form (its texts
//! from the query, as Sentry names them), and the form posts `name`, `email` and `comments`
//! back to the same address, where they are stored as user feedback about `eventId`. The DSN
//! in the query is the credential, as with every browser SDK request.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::IntakeError;
use super::auth::Credentials;
use super::http::{Intake, cors};
use crate::conn::{BodyRate, BodyReader};
use crate::event::feedback;
use crate::ids::{Dsn, EventId};

/// Largest form the dialog posts.
const MAX_FORM: usize = 64 * 1024;

const SCRIPT: &str = include_str!("report_dialog.js");

/// The dialog's texts, by query parameter, with Sentry's defaults.
const TEXTS: [(&str, &str); 11] = [
    ("title", "It looks like we're having issues."),
    ("subtitle", "Our team has been notified."),
    (
        "subtitle2",
        "If you'd like to help, tell us what happened below.",
    ),
    ("labelName", "Name"),
    ("labelEmail", "Email"),
    ("labelComments", "What happened?"),
    ("labelClose", "Close"),
    ("labelSubmit", "Submit Crash Report"),
    ("successMessage", "Your feedback has been sent. Thank you!"),
    (
        "errorGeneric",
        "An unknown error occurred while submitting your report. Please try again.",
    ),
    (
        "errorFormEntry",
        "Some fields were invalid. Please correct the errors and try again.",
    ),
];

/// Longest text taken from the query.
const MAX_TEXT: usize = 1024;

type Body = Full<Bytes>;

pub async fn handle(state: &Intake, req: Request<Incoming>) -> Result<Response<Body>, IntakeError> {
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let dsn = param("dsn")
        .ok_or(IntakeError::Dialog("missing parameter: dsn"))
        .and_then(|d| Dsn::parse(d).map_err(|_| IntakeError::Dialog("invalid parameter: dsn")))?;
    let event_id = param("eventId")
        .and_then(EventId::parse)
        .ok_or(IntakeError::Dialog("missing or invalid parameter: eventId"))?;
    let project = dsn
        .project_id
        .parse::<u64>()
        .map_err(|_| IntakeError::Dialog("invalid parameter: dsn"))?;
    let creds = Credentials {
        public_key: dsn.public_key.clone(),
        ..Default::default()
    };
    let project = state.admit(&creds, Some(project))?;
    match *req.method() {
        Method::GET => Ok(script(&param)),
        Method::POST => submit(state, req, project, event_id).await,
        _ => Err(IntakeError::MethodNotAllowed),
    }
}

/// The dialog's script with its texts filled in.
fn script<'a>(param: &impl Fn(&str) -> Option<&'a str>) -> Response<Body> {
    let mut options = Map::new();
    for (name, default) in TEXTS {
        let text = param(name).unwrap_or(default);
        options.insert(name.into(), Value::from(cut(text)));
    }
    for name in ["name", "email"] {
        options.insert(name.into(), Value::from(cut(param(name).unwrap_or(""))));
    }
    // JSON inside a script: nothing in it may end the script or start markup.
    let options = Value::Object(options)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let body = SCRIPT.replace("__OPTIONS__", &options);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    cors(h);
    resp
}

fn cut(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// Stores what the form posted; 400 with `errors` by field when it is not usable.
async fn submit(
    state: &Intake,
    req: Request<Incoming>,
    project: u64,
    event_id: EventId,
) -> Result<Response<Body>, IntakeError> {
    let body = BodyReader::new(req.into_body(), BodyRate::of(&state.limits))
        .to_end(MAX_FORM as u64)
        .await?;
    let form = match Form::read(&body) {
        Ok(form) => form,
        Err(errors) => {
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                json!({ "detail": "the report is incomplete", "errors": errors }),
            ));
        }
    };
    let report = feedback::from_dialog(
        event_id,
        form.name.as_deref(),
        form.email.as_deref(),
        Some(&form.comments),
        crate::time::now(),
    )?;
    let id = state.submit_feedback(project, report).await?;
    Ok(answer(StatusCode::OK, json!({ "id": id })))
}

/// What the dialog's form posts (`application/x-www-form-urlencoded`).
#[derive(Debug, PartialEq)]
pub struct Form {
    pub name: Option<String>,
    pub email: Option<String>,
    pub comments: String,
}

impl Form {
    /// Reads the posted form; when it is not usable, the problems by field as the SDK's
    /// dialog shows them (`comments` missing, `email` not an address).
    pub fn read(body: &[u8]) -> Result<Form, Map<String, Value>> {
        let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut errors = Map::new();
        let comments = field("comments").filter(|c| !c.trim().is_empty());
        if comments.is_none() {
            errors.insert("comments".into(), "This field is required.".into());
        }
        let email = field("email");
        if let Some(e) = email.as_deref().map(str::trim).filter(|e| !e.is_empty())
            && !plausible_email(e)
        {
            errors.insert("email".into(), "Enter a valid email address.".into());
        }
        match comments {
            Some(comments) if errors.is_empty() => Ok(Form {
                name: field("name"),
                email,
                comments,
            }),
            _ => Err(errors),
        }
    }
}

fn plausible_email(email: &str) -> bool {
    email
        .split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace)
}

fn answer(status: StatusCode, body: Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    cors(resp.headers_mut());
    resp
}

/// `/api/embed/error-page/`, with or without the trailing slash.
pub fn is_dialog_path(path: &str) -> bool {
    path.trim_end_matches('/') == "/api/embed/error-page"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_needs_comments_and_a_plausible_email() {
        let form =
            Form::read(b"name=Jane+Doe&email=jane%40example.com&comments=It+broke%21").unwrap();
        assert_eq!(form.name.as_deref(), Some("Jane Doe"));
        assert_eq!(form.email.as_deref(), Some("jane@example.com"));
        assert_eq!(form.comments, "It broke!");
        let errors = Form::read(b"name=x&email=not-an-address&comments=+").unwrap_err();
        assert!(
            errors.contains_key("comments") && errors.contains_key("email"),
            "{errors:?}"
        );
        assert!(
            Form::read(b"comments=fine&email=").is_ok(),
            "an empty email is no email"
        );
    }
}
