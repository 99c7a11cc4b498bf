//! Single sign-on pages: "Sign in with …" sends the browser to the provider with a fresh
//! state, nonce and PKCE verifier (kept here, bounded, for ten minutes, and bound to the
//! browser by a cookie); the callback takes them back once, has the code exchanged and the ID
//! token checked (`identity::oidc`), and lets the management layer say which account that is.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use hyper::Request;
use hyper::StatusCode;
use hyper::body::Incoming;

use super::sessions::{cookie, refused_sign_in, safe_next, set_cookie, start_session};
use super::{Nav, Page, Web, message, redirect};
use crate::manage::ManageError;
use crate::manage::sign_in::Proof;

/// The cookie that ties a provider's answer to the browser that asked.
const STATE_COOKIE: &str = "picket_sso";
/// How long a sign-in at the provider may take.
const PENDING_FOR: f64 = 600.0;
/// Sign-ins waiting for the provider, at most.
const PENDING_MAX: usize = 10_000;

/// A sign-in sent to the provider and not back yet.
struct Pending {
    nonce: String,
    verifier: String,
    next: String,
    at: f64,
}

/// Sign-ins waiting for the provider, by state.
pub struct PendingSignIns(Mutex<lru::LruCache<String, Pending>>);

impl Default for PendingSignIns {
    fn default() -> PendingSignIns {
        PendingSignIns(Mutex::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(PENDING_MAX).unwrap_or(std::num::NonZeroUsize::MIN),
        )))
    }
}

impl PendingSignIns {
    fn put(&self, state: String, pending: Pending) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(state, pending);
    }

    /// Takes a pending sign-in back, once.
    fn take(&self, state: &str, now: f64) -> Option<Pending> {
        let p = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop(state)?;
        (now - p.at < PENDING_FOR).then_some(p)
    }
}

fn unavailable(why: &str) -> Page {
    message(
        StatusCode::BAD_GATEWAY,
        Nav::anonymous(),
        "Single sign-on is not available",
        why,
    )
}

/// Sends the browser to the provider.
pub async fn start(web: &Arc<Web>, query: &HashMap<String, String>) -> Page {
    let Some(provider) = web.sso.as_ref() else {
        return message(
            StatusCode::NOT_FOUND,
            Nav::anonymous(),
            "Not found",
            "Single sign-on is not configured.",
        );
    };
    let auth = match provider.authorize().await {
        Ok(a) => a,
        Err(e) => return unavailable(&e.to_string()),
    };
    let next = safe_next(query.get("next").map_or("/", String::as_str)).to_string();
    web.sso_pending.put(
        auth.state.clone(),
        Pending {
            nonce: auth.nonce,
            verifier: auth.verifier,
            next,
            at: crate::time::now(),
        },
    );
    let bind = set_cookie(
        STATE_COOKIE,
        &auth.state,
        "/login/sso",
        PENDING_FOR as i64,
        web.secure_cookies(),
    );
    redirect(&auth.url, &[bind])
}

/// The provider's answer: a code to exchange, or an error.
pub async fn callback(
    web: &Arc<Web>,
    req: &Request<Incoming>,
    query: &HashMap<String, String>,
    remote: IpAddr,
) -> Page {
    let Some(provider) = web.sso.as_ref() else {
        return unavailable("Single sign-on is not configured.");
    };
    let refuse = |why: &str| {
        message(
            StatusCode::FORBIDDEN,
            Nav::anonymous(),
            "Sign-in refused",
            why,
        )
    };
    if let Some(error) = query.get("error") {
        let detail = query.get("error_description").map_or("", String::as_str);
        return refuse(&format!("The provider answered {error}. {detail}"));
    }
    let (Some(code), Some(state)) = (query.get("code"), query.get("state")) else {
        return refuse("The provider's answer has no code or state.");
    };
    if cookie(req, STATE_COOKIE).as_deref() != Some(state.as_str()) {
        return refuse(
            "This sign-in was not started in this browser (or took too long); start again.",
        );
    }
    let Some(pending) = web.sso_pending.take(state, crate::time::now()) else {
        return refuse("This sign-in is used up or took too long; start again.");
    };
    let identity = match provider
        .exchange(code, &pending.nonce, &pending.verifier)
        .await
    {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!("single sign-on refused: {e}");
            return refuse(&e.to_string());
        }
    };
    let handle = web.handle.clone();
    let account = tokio::task::spawn_blocking(move || {
        crate::manage::sign_in::account_for(&handle, &identity, Proof::SingleSignOn, remote)
    })
    .await
    .unwrap_or_else(|e| Err(ManageError::Storage(format!("internal error: {e}"))));
    match account {
        Ok(user) => {
            let old = cookie(req, super::sessions::SESSION_COOKIE);
            start_session(
                web,
                &user.email,
                Proof::SingleSignOn.method(),
                old,
                &pending.next,
            )
        }
        Err(e) => refused_sign_in(&e),
    }
}
