//! Routing: which page or form action answers a request, after the session and CSRF checks
//! every signed-in request passes. Paths are decoded segment by segment.

use std::net::IpAddr;
use std::sync::Arc;

use crate::conn::{BodyError, BodyRate, BodyReader};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};

use super::sessions::{self, LOGIN_CSRF_COOKIE};
use super::{
    Form, Nav, Page, Web, accounts, feedback, issue, issue_events, issues, live, message, monitors,
    not_found, page, projects, query, redirect, releases, settings, sourcemaps, sso, triage,
};

/// Largest form body accepted.
const MAX_FORM: usize = 64 * 1024;

/// Whether a path belongs to the web UI rather than to intake.
pub fn is_ui_path(path: &str) -> bool {
    !(path.starts_with("/api/") || path == "/api" || path == "/health" || path == "/metrics")
}

/// A form posted without a session (or by a proxy's newly named user): nothing is done.
fn signed_out() -> Page {
    message(
        StatusCode::FORBIDDEN,
        Nav::anonymous(),
        "Signed out",
        "Sign in again, then repeat what you were doing.",
    )
}

/// Serves one UI request.
pub async fn handle(web: Arc<Web>, req: Request<Incoming>, peer: IpAddr) -> Page {
    // Behind a reverse proxy, the client it names (sign-in throttling is per client).
    let remote = crate::conn::client_ip(req.headers(), peer, &web.handle.config.trusted_proxies);
    let path = req.uri().path().to_string();
    let segments = crate::ids::path_segments(&path);
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    if method == Method::GET && seg.as_slice() == ["static", "picket.css"] {
        let mut resp = page(
            StatusCode::OK,
            "text/css; charset=utf-8",
            include_str!("picket.css"),
        );
        resp.headers_mut()
            .insert("cache-control", HeaderValue::from_static("max-age=3600"));
        return resp;
    }
    if method == Method::GET && seg.as_slice() == ["static", "live.js"] {
        let mut resp = page(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            live::SCRIPT,
        );
        resp.headers_mut()
            .insert("cache-control", HeaderValue::from_static("max-age=3600"));
        return resp;
    }
    let (visitor, awaiting) = sessions::visitors(&web, &req);
    let query = query(&req);
    let login_cookie = sessions::cookie(&req, LOGIN_CSRF_COOKIE);
    let session_cookie = sessions::cookie(&req, sessions::SESSION_COOKIE);
    // Behind a proxy that signs people in, its header says who this is (from that proxy only).
    if let Some(email) = sessions::proxy_identity(&web, &req, peer)
        && visitor.as_ref().is_none_or(|v| v.user.email != email)
    {
        if method != Method::GET {
            return signed_out();
        }
        let here = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        return sessions::proxy_sign_in(&web, email, session_cookie, &here, peer).await;
    }
    // The pages that take the second step, and single sign-on's round trip, read the request.
    match (&method, seg.as_slice()) {
        (&Method::GET, ["login", "code"]) => return sessions::code_page(awaiting, &query),
        (&Method::GET, ["login", "sso"]) => return sso::start(&web, &query).await,
        (&Method::GET, ["login", "sso", "callback"]) => {
            return sso::callback(&web, &req, &query, remote).await;
        }
        _ => {}
    }
    let form = if method == Method::POST {
        let rate = BodyRate::of(&web.handle.config.limits);
        match BodyReader::new(req.into_body(), rate)
            .to_end(MAX_FORM as u64)
            .await
        {
            Ok(body) => Form::parse(&body),
            Err(e) => {
                let (status, title) = match e {
                    BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "Too large"),
                    BodyError::TooSlow { .. } => (StatusCode::REQUEST_TIMEOUT, "Too slow"),
                    BodyError::Broken(_) => (StatusCode::BAD_REQUEST, "Not received"),
                    BodyError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "Busy"),
                };
                return message(status, Nav::anonymous(), title, &e.to_string());
            }
        }
    } else {
        Form::empty()
    };
    // Forms without a session: signing in (double-submit cookie) and setting a password with a
    // one-time link (the link is the secret).
    match (&method, seg.as_slice()) {
        (&Method::GET, ["login"]) => {
            return sessions::login_page(&web, &query, visitor.is_some(), login_cookie);
        }
        (&Method::GET, ["favicon.ico"]) => {
            return page(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "");
        }
        (&Method::POST, ["login"]) => {
            return sessions::login(&web, session_cookie, &form, login_cookie.clone(), remote)
                .await;
        }
        (&Method::POST, ["login", "code"]) => {
            return sessions::code(&web, awaiting, &form, remote).await;
        }
        (&Method::GET, ["login", "forgot"]) => return accounts::forgot_page(&web, login_cookie),
        (&Method::POST, ["login", "forgot"]) => {
            return accounts::forgot(&web, &form, login_cookie, remote).await;
        }
        (&Method::GET, ["set-password", token]) => return accounts::set_password_page(&web, token),
        (&Method::POST, ["set-password", token]) => {
            return accounts::set_password(&web, token, &form).await;
        }
        _ => {}
    }
    let Some(visitor) = visitor else {
        if method == Method::GET {
            let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
            return redirect(&format!("/login?next={next}"), &[]);
        }
        return signed_out();
    };
    if method == Method::POST && form.get("csrf") != Some(visitor.session.csrf.as_str()) {
        return message(
            StatusCode::FORBIDDEN,
            Nav::of(&visitor),
            "Refused",
            "The form's CSRF token is missing or wrong. Reload the page and try again.",
        );
    }
    // Where admins require two-factor codes, a password account without them sets them up
    // before anything else.
    let setting_up = matches!(seg.as_slice(), ["account", "two-factor", ..] | ["logout"]);
    if web.two_factor_required(&visitor) && !visitor.user.has_two_factor() && !setting_up {
        return redirect("/account/two-factor", &[]);
    }
    match (&method, seg.as_slice()) {
        (&Method::POST, ["logout"]) => sessions::logout(&web, &visitor).await,
        (&Method::GET, ["account", "two-factor"]) => {
            accounts::two_factor(&web, &visitor, Nav::of(&visitor), None, None)
        }
        (&Method::POST, ["account", "two-factor", action]) => {
            accounts::two_factor_action(&web, &visitor, action, &form).await
        }
        (&Method::GET, ["admin", "audit"]) => accounts::audit(&web, &visitor, &query).await,
        (&Method::GET, []) => projects::projects(
            &web,
            &visitor,
            query.get("range").map_or("", String::as_str),
        ),
        (&Method::GET, ["account"]) => {
            accounts::account(&web, &visitor, Nav::of(&visitor), None).await
        }
        (&Method::POST, ["account", "tokens", action]) => {
            accounts::token_action(&web, &visitor, action, &form).await
        }
        (&Method::POST, ["account"]) => accounts::change_password(&web, &visitor, &form).await,
        (&Method::GET, ["admin", "users"]) => accounts::users(&web, &visitor, None).await,
        (&Method::POST, ["admin", "users", action]) => {
            accounts::user_action(&web, &visitor, action, &form).await
        }
        (&Method::GET, ["projects", slug]) => issues::issue_list(&web, &visitor, slug, &query),
        (&Method::POST, ["projects", "new"]) => projects::create(&web, &visitor, &form).await,
        (&Method::GET, ["projects", slug, "delete"]) => projects::delete_page(&web, &visitor, slug),
        (&Method::POST, ["projects", slug, "delete"]) => {
            projects::delete(&web, &visitor, slug, &form).await
        }
        (&Method::GET, ["projects", slug, "live"]) => live::live(&web, &visitor, slug, &query),
        (&Method::POST, ["projects", slug, "issues", "bulk"]) => {
            issues::bulk(&web, &visitor, slug, &form).await
        }
        (&Method::GET, ["projects", slug, "issues", id]) => {
            issue::issue_page(&web, &visitor, slug, id, &query)
        }
        (&Method::GET, ["projects", slug, "issues", id, "events"]) => {
            issue_events::events_page(&web, &visitor, slug, id, &query)
        }
        (&Method::POST, ["projects", slug, "issues", id, "status"]) => {
            issues::issue_status(&web, &visitor, slug, id, &form).await
        }
        (&Method::POST, ["projects", slug, "issues", id, "assign"]) => {
            triage::assign(&web, &visitor, slug, id, &form).await
        }
        (&Method::POST, ["projects", slug, "issues", id, "comments", rest @ ..]) => {
            triage::comment(&web, &visitor, slug, id, rest, &form).await
        }
        (&Method::GET, ["projects", slug, "issues", id, "delete"]) => {
            triage::delete_issue_page(&web, &visitor, slug, id)
        }
        (&Method::POST, ["projects", slug, "issues", id, "delete"]) => {
            triage::delete_issue(&web, &visitor, slug, id).await
        }
        (&Method::GET, ["projects", slug, "events", file]) => {
            issue::raw_event(&web, &visitor, slug, file)
        }
        (&Method::GET, ["projects", slug, "events", event, "attachments", id]) => {
            issue::attachment(&web, &visitor, slug, event, id)
        }
        (&Method::GET, ["projects", slug, "sourcemaps"]) => {
            sourcemaps::sourcemaps(&web, &visitor, slug, Nav::of(&visitor)).await
        }
        (&Method::POST, ["projects", slug, "sourcemaps", "delete"]) => {
            sourcemaps::delete(&web, &visitor, slug, &form).await
        }
        (&Method::GET, ["projects", slug, "feedback"]) => {
            feedback::feedback(&web, &visitor, slug).await
        }
        (&Method::GET, ["projects", slug, "monitors"]) => {
            monitors::monitors(&web, &visitor, slug).await
        }
        (&Method::POST, ["projects", slug, "monitors", action]) => {
            monitors::action(&web, &visitor, slug, action, &form).await
        }
        (&Method::GET, ["projects", slug, "releases"]) => {
            releases::releases(&web, &visitor, slug).await
        }
        (&Method::GET, ["projects", slug, "settings"]) => settings::settings(&web, &visitor, slug),
        (&Method::POST, ["projects", slug, "settings", action]) => {
            settings::settings_action(&web, &visitor, slug, action, &form).await
        }
        _ => not_found(Nav::of(&visitor)),
    }
}
