//! Project settings: the DSN with copy-paste SDK setup, keys and their rate limits, members,
//! retention and forwarding, each change a management operation.

use askama::Template;
use redb::ReadableDatabase;

use super::{Form, Nav, Page, Visitor, Web, not_found, redirect, render, store_error};
use crate::ids::{Dsn, RateLimit};
use crate::manage::alerts::{AlertChange, Alerts, WebhookTest};
use crate::manage::forward::ProjectForward;
use crate::manage::keys::{KeyCreate, KeyRateLimit, KeyRevoke};
use crate::manage::members::{ProjectMember, Role};
use crate::manage::privacy::{ProjectFilters, ProjectScrub};
use crate::manage::projects::ProjectRename;
use crate::manage::retention::ProjectRetention;
use crate::manage::users::MailChoice;
use crate::store::alerts::{Frequency, WebhookFormat};
use crate::store::projects;
use crate::store::users::{self, User};
use crate::store::{KEYS, StoreError, USERS};

struct KeyRow {
    public_key: String,
    active: bool,
    per_minute: String,
    burst: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    nav: Nav,
    slug: String,
    project_name: String,
    dsn: String,
    legacy_dsn: String,
    /// `SENTRY_URL=…`, `SENTRY_ORG=…`, `SENTRY_PROJECT=…` for sentry-cli and other tools.
    cli_env: String,
    organization: String,
    keys: Vec<KeyRow>,
    snippets: Vec<(&'static str, String)>,
    members: Vec<String>,
    candidates: Vec<String>,
    max_events: String,
    default_max_events: u64,
    stored: u64,
    forward_to: String,
    attachments: bool,
    /// What was not kept, one line each ("the SDK dropped 120 error: ratelimit_backoff").
    dropped: Vec<String>,
    /// The visitor owns the project: the forms that change it are theirs.
    owner: bool,
    admin: bool,
    owners: Vec<String>,
    alerts: crate::store::alerts::AlertRules,
    /// Whether alert mail can go out, and through which server.
    mail: String,
    /// The visitor is not mailed about this project.
    opted_out: bool,
    /// The visitor wants mail only about issues assigned to them.
    assigned_only: bool,
    /// What a webhook answered to the test just made.
    webhook_answer: Option<String>,
    privacy: crate::manage::privacy::PrivacyView,
    /// A stored event scrubbed by the current rules, when asked for.
    scrub_preview: Option<String>,
    /// Each on/off inbound filter: form name, label, state.
    filter_toggles: Vec<(&'static str, &'static str, bool)>,
}

/// Copy-paste setup for the official SDKs with the project's real DSN.
fn snippets(dsn: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Python",
            format!("pip install sentry-sdk\n\nimport sentry_sdk\nsentry_sdk.init(dsn=\"{dsn}\")"),
        ),
        (
            "JavaScript (browser)",
            format!(
                "npm install @sentry/browser\n\nimport * as Sentry from \"@sentry/browser\";\nSentry.init({{ dsn: \"{dsn}\" }});"
            ),
        ),
        (
            "JavaScript (Node)",
            format!(
                "npm install @sentry/node\n\nconst Sentry = require(\"@sentry/node\");\nSentry.init({{ dsn: \"{dsn}\" }});"
            ),
        ),
        (
            "PHP",
            format!("composer require sentry/sentry\n\n\\Sentry\\init(['dsn' => '{dsn}']);"),
        ),
        (
            "Rust",
            format!(
                "# Cargo.toml: sentry = \"0.49\"\n\nlet _guard = sentry::init((\"{dsn}\", sentry::ClientOptions {{\n    release: sentry::release_name!(),\n    ..Default::default()\n}}));"
            ),
        ),
    ]
}

pub fn settings(web: &Web, visitor: &Visitor, slug: &str) -> Page {
    settings_with(web, visitor, slug, None, None)
}

/// A stored event as the project's current scrubbing would store it now: how many values it
/// would change and the result, or why it cannot be shown.
fn preview(
    web: &Web,
    visitor: &Visitor,
    project: &crate::store::projects::Project,
    event_id: &str,
) -> String {
    let op = crate::manage::issues::EventDetail {
        project: project.slug.clone(),
        event_id: event_id.trim().to_string(),
    };
    match web.handle.run(&visitor.actor(), op) {
        Ok(found) => {
            let mut event = found.event;
            let changed = crate::event::scrub::scrub(&mut event, &project.privacy);
            format!(
                "With the rules as they are now, {changed} more value{} of event {} would be changed:\n\n{}",
                if changed == 1 { "" } else { "s" },
                event.event_id,
                serde_json::to_string_pretty(&event).unwrap_or_default()
            )
        }
        Err(e) => e.to_string(),
    }
}

fn settings_with(
    web: &Web,
    visitor: &Visitor,
    slug: &str,
    webhook_answer: Option<String>,
    scrub_preview: Option<String>,
) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let build = || -> Result<SettingsPage, StoreError> {
        let txn = web.handle.db.begin_read()?;
        let keys: Vec<_> = projects::keys(&txn.open_table(KEYS)?)?
            .into_iter()
            .filter(|k| k.project == project.id)
            .collect();
        let config = &web.handle.config;
        let active = keys.iter().find(|k| k.active);
        let dsn = active
            .map(|k| config.dsn(&k.public_key, project.id))
            .unwrap_or_else(|| "(no active key: create one)".into());
        let legacy_dsn = active
            .map(|k| {
                let d = config.dsn(&k.public_key, project.id);
                d.replacen(
                    &format!("{}@", k.public_key),
                    &format!("{}:{}@", k.public_key, k.secret_key),
                    1,
                )
            })
            .unwrap_or_default();
        let all_users: Vec<User> = users::list(&txn.open_table(USERS)?)?;
        Ok(SettingsPage {
            nav: Nav::of(visitor),
            slug: project.slug.clone(),
            project_name: project.name.clone(),
            snippets: snippets(&dsn),
            dsn,
            legacy_dsn,
            cli_env: format!(
                "SENTRY_URL={}\nSENTRY_ORG={}\nSENTRY_PROJECT={}\nSENTRY_AUTH_TOKEN=<a token from your account page>",
                config.base_url(),
                config.organization,
                project.slug
            ),
            organization: config.organization.clone(),
            keys: keys
                .iter()
                .map(|k| KeyRow {
                    public_key: k.public_key.clone(),
                    active: k.active,
                    per_minute: k
                        .rate_limit
                        .map(|r| r.per_minute.to_string())
                        .unwrap_or_default(),
                    burst: k
                        .rate_limit
                        .map(|r| r.burst.to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            members: project.members.clone(),
            candidates: all_users
                .iter()
                .filter(|u| u.active && !project.members.contains(&u.email))
                .map(|u| u.email.clone())
                .collect(),
            max_events: project
                .max_events
                .map(|n| n.to_string())
                .unwrap_or_default(),
            default_max_events: config.retention.max_events_per_project,
            stored: project.stored,
            attachments: !project.attachments_off,
            dropped: crate::store::outcomes::of_project(&txn, project.id)?
                .iter()
                .map(|o| o.describe())
                .collect(),
            forward_to: project
                .forward_to
                .as_deref()
                .and_then(|d| Dsn::parse(d).ok())
                .map(|d| d.public())
                .unwrap_or_default(),
            owner: visitor.actor().may_own(&project),
            admin: visitor.user.is_admin,
            owners: project.owners.clone(),
            mail: crate::alert::mail_state(config),
            opted_out: project.alerts.opt_out.contains(&visitor.user.email),
            assigned_only: visitor.user.mail_assigned_only,
            alerts: project.alerts.clone(),
            webhook_answer,
            filter_toggles: vec![
                (
                    "browser_extensions",
                    "Errors from browser extensions",
                    project.filters.browser_extensions,
                ),
                (
                    "localhost",
                    "Events from localhost",
                    project.filters.localhost,
                ),
                ("web_crawlers", "Web crawlers", project.filters.web_crawlers),
                (
                    "legacy_browsers",
                    "Legacy browsers (IE, Edge before 79, Safari before 12, Firefox and Chrome before 70, Opera before 57)",
                    project.filters.legacy_browsers,
                ),
            ],
            privacy: crate::manage::privacy::PrivacyView::of(&project),
            scrub_preview,
        })
    };
    match build() {
        Ok(page) => render(page),
        Err(e) => store_error(Nav::of(visitor), e),
    }
}

pub async fn settings_action(
    web: &Web,
    visitor: &Visitor,
    slug: &str,
    action: &str,
    form: &Form,
) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let id = project.id.to_string();
    let field = |k: &str| form.field(k);
    let done = match action {
        "name" => web
            .act(
                visitor,
                ProjectRename {
                    project: id,
                    name: field("name"),
                },
            )
            .await
            .map(drop),
        "key-create" => web.act(visitor, KeyCreate { project: id }).await.map(drop),
        "key-revoke" => {
            if form.get("confirm") != Some("yes") && last_active_key(web, &project, &field("key")) {
                return super::triage::confirm(
                    visitor,
                    super::triage::Ask {
                        heading: "Revoke the last key?",
                        text: &format!(
                            "{} is the only active key of {}: once it is revoked, every SDK using its DSN is refused until you create a new key and give them its DSN.",
                            field("key"),
                            project.slug
                        ),
                        action: &format!("/projects/{}/settings/key-revoke", project.slug),
                        button: "Yes, revoke it",
                        back: &format!("/projects/{}/settings", project.slug),
                        hidden: &[("key", &field("key"))],
                    },
                );
            }
            web.act(
                visitor,
                KeyRevoke {
                    public_key: field("key"),
                },
            )
            .await
            .map(drop)
        }
        "key-limit" => {
            let per_minute = field("per_minute").parse::<u32>().unwrap_or(0);
            let burst = field("burst").parse::<u32>().unwrap_or(0);
            let op = KeyRateLimit {
                public_key: field("key"),
                limit: (per_minute > 0).then_some(RateLimit { per_minute, burst }),
            };
            web.act(visitor, op).await.map(drop)
        }
        "member-add" | "member-remove" | "member-role" => {
            let role = match field("role").as_str() {
                "owner" => Some(Role::Owner),
                "member" => Some(Role::Member),
                _ => None,
            };
            let op = ProjectMember {
                role,
                project: id,
                email: field("email"),
                remove: action == "member-remove",
            };
            web.act(visitor, op).await.map(drop)
        }
        "alert-rules" => {
            let on = |k: &str| Some(form.get(k) == Some("on"));
            let frequency = match (
                field("freq_events").parse::<u64>(),
                field("freq_minutes").parse::<u64>(),
            ) {
                (Ok(events), Ok(minutes)) if form.get("frequency") == Some("on") => {
                    Some(Some(Frequency { events, minutes }))
                }
                _ if form.get("frequency") == Some("on") => {
                    return super::message(
                        hyper::StatusCode::BAD_REQUEST,
                        Nav::of(visitor),
                        "That did not work",
                        "a frequency rule needs a number of events and of minutes",
                    );
                }
                _ => Some(None),
            };
            let change = AlertChange::Rules {
                new_issue: on("new_issue"),
                regression: on("regression"),
                reappeared: on("reappeared"),
                feedback: on("feedback"),
                frequency,
            };
            alerts(web, visitor, id, change).await
        }
        "alert-email-add" | "alert-email-remove" => {
            let change = AlertChange::Email {
                address: field("address"),
                remove: action == "alert-email-remove",
            };
            alerts(web, visitor, id, change).await
        }
        "webhook-add" | "webhook-remove" => {
            let change = AlertChange::Webhook {
                url: field("url"),
                format: if field("format") == "slack" {
                    WebhookFormat::Slack
                } else {
                    WebhookFormat::Json
                },
                remove: action == "webhook-remove",
            };
            alerts(web, visitor, id, change).await
        }
        "webhook-test" => {
            let op = WebhookTest {
                project: id,
                url: field("url"),
            };
            return match web.act(visitor, op).await {
                Ok(a) => {
                    let said = match a.status {
                        Some(status) => format!("{} answered HTTP {status}: {}", a.url, a.detail),
                        None => format!("{} did not answer: {}", a.url, a.detail),
                    };
                    settings_with(web, visitor, &project.slug, Some(said), None)
                }
                Err(page) => page,
            };
        }
        "mail" => {
            let op = Alerts {
                project: id,
                change: AlertChange::OptOut {
                    email: visitor.user.email.clone(),
                    undo: form.get("project_mail") == Some("on"),
                },
            };
            if let Err(page) = web.act(visitor, op).await {
                return page;
            }
            let op = MailChoice {
                assigned_only: form.get("assigned_only") == Some("on"),
            };
            web.act(visitor, op).await.map(drop)
        }
        "retention" => {
            let op = ProjectRetention {
                project: id,
                max_events: field("max_events").parse::<u64>().ok(),
            };
            web.act(visitor, op).await.map(drop)
        }
        "attachments" => {
            let op = crate::manage::attachments::ProjectAttachments {
                project: id,
                enabled: field("enabled") == "on",
            };
            web.act(visitor, op).await.map(drop)
        }
        "forward" => {
            let op = ProjectForward {
                project: id,
                dsn: Some(field("dsn")).filter(|d| !d.is_empty()),
            };
            web.act(visitor, op).await.map(drop)
        }
        "scrub" => {
            let list = |k: &str| -> Vec<String> {
                Some(field(k))
                    .filter(|v| !v.is_empty())
                    .into_iter()
                    .collect()
            };
            let rules = match Some(field("rule")).filter(|r| !r.is_empty()) {
                Some(r) => match crate::manage::privacy::parse_rule(&r) {
                    Ok(rule) => vec![rule],
                    Err(e) => return super::manage_error(Nav::of(visitor), &e),
                },
                None => Vec::new(),
            };
            let on = |k: &str| form.get(k).map(|v| v == "on");
            let op = ProjectScrub {
                project: id,
                scrub: on("defaults"),
                scrub_ip: on("scrub_ip"),
                add_sensitive: list("add_sensitive"),
                remove_sensitive: list("remove_sensitive"),
                add_safe: list("add_safe"),
                remove_safe: list("remove_safe"),
                add_rules: rules,
                remove_rules: list("remove_rule"),
            };
            web.act(visitor, op).await.map(drop)
        }
        "filters" => {
            let on = |k: &str| form.get(k).map(|v| v == "on");
            let list = |k: &str| -> Vec<String> {
                Some(field(k))
                    .filter(|v| !v.is_empty())
                    .into_iter()
                    .collect()
            };
            let sample_rate = match form.get("sample_rate").map(str::trim) {
                None => None,
                Some("") => Some(None),
                Some(r) => match r.parse::<f64>() {
                    Ok(r) => Some(Some(r)),
                    Err(_) => {
                        return super::message(
                            hyper::StatusCode::BAD_REQUEST,
                            Nav::of(visitor),
                            "That did not work",
                            &format!("sample rate '{r}' is not a number from 0 to 1"),
                        );
                    }
                },
            };
            let op = ProjectFilters {
                project: id,
                browser_extensions: on("browser_extensions"),
                localhost: on("localhost"),
                web_crawlers: on("web_crawlers"),
                legacy_browsers: on("legacy_browsers"),
                add_error_messages: list("add_error_message"),
                remove_error_messages: list("remove_error_message"),
                add_releases: list("add_release"),
                remove_releases: list("remove_release"),
                sample_rate,
            };
            web.act(visitor, op).await.map(drop)
        }
        "scrub-preview" => {
            return settings_with(
                web,
                visitor,
                &project.slug,
                None,
                Some(preview(web, visitor, &project, &field("event_id"))),
            );
        }
        _ => return not_found(Nav::of(visitor)),
    };
    match done {
        Ok(()) => redirect(&format!("/projects/{}/settings", project.slug), &[]),
        Err(page) => page,
    }
}

/// Applies a change to the project's alerts.
async fn alerts(
    web: &Web,
    visitor: &Visitor,
    project: String,
    change: AlertChange,
) -> Result<(), Page> {
    web.act(visitor, Alerts { project, change }).await.map(drop)
}

/// Whether `key` is the project's only active key.
fn last_active_key(web: &Web, project: &crate::store::projects::Project, key: &str) -> bool {
    let read = || -> Result<bool, StoreError> {
        let txn = web.handle.db.begin_read()?;
        let active: Vec<_> = projects::keys(&txn.open_table(KEYS)?)?
            .into_iter()
            .filter(|k| k.project == project.id && k.active)
            .collect();
        Ok(active.len() == 1 && active[0].public_key == key)
    };
    read().unwrap_or(false)
}
