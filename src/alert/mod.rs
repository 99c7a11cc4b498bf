//! Alerts: the rules the writer evaluates ([`rules`]), and the supervised alerter worker that
//! delivers the alert outbox by mail ([`mail`]) and to webhooks.
//!
//! The alerter reads the outbox, mails each alert to the project's members and the admins
//! (minus those who opted out, plus the project's extra addresses) and posts it to each of the
//! project's webhooks, then records what went out in one write. A target that fails is
//! retried with backoff (1 s doubling to 5 min) for `alerts.retry_for`; past it the alert is
//! given up and logged. Past `alerts.max_mails_per_hour`, alerts are held and go out as one
//! digest mail once the hour is over.

pub mod mail;
pub mod rules;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redb::{Database, ReadableDatabase};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Config;
use crate::event::Event;
use crate::ids::EventId;
use crate::outbound::Client;
use crate::pipeline::Queue;
use crate::store::alerts::{self, Alert, AlertOutbox, WebhookFormat};
use crate::store::issues::Issue;
use crate::store::projects::{self, Project};
use crate::store::users::User;
use crate::store::{ALERT_OUTBOX, EVENTS, ISSUES, PROJECTS, StoreError, USERS, events};
use mail::{Mail, Mailer};

/// How often an idle alerter looks at the outbox.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Alerts handled per round.
const PER_ROUND: usize = 200;
/// Longest wait between tries of a failing target.
const MAX_BACKOFF: f64 = 300.0;
/// In-app frames shown in a mail.
const TOP_FRAMES: usize = 5;

/// The alerter's counters and backoffs, shared with `picket status`.
#[derive(Default)]
pub struct State {
    pub mails_sent: AtomicU64,
    pub webhooks_sent: AtomicU64,
    /// Alerts given up (past `retry_for`, or refused for good).
    pub failed: AtomicU64,
    pub digests_sent: AtomicU64,
    inner: Mutex<Backoffs>,
}

#[derive(Default)]
struct Backoffs {
    /// Per target ("mail" or a webhook URL): failures in a row and when to try again.
    targets: HashMap<String, (u32, f64)>,
    last_error: Option<String>,
    /// (hour, mails sent in it), for the hourly cap.
    hour: (u64, u64),
}

impl State {
    fn backoffs(&self) -> std::sync::MutexGuard<'_, Backoffs> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ready(&self, target: &str, now: f64) -> bool {
        self.backoffs()
            .targets
            .get(target)
            .is_none_or(|(_, at)| *at <= now)
    }

    fn failed(&self, target: &str, now: f64, error: String) {
        tracing::warn!("alert delivery to {target} failed: {error}");
        let mut b = self.backoffs();
        let entry = b.targets.entry(target.to_string()).or_insert((0, 0.0));
        entry.0 = entry.0.saturating_add(1);
        let wait = (2f64.powi(entry.0.min(10) as i32 - 1)).min(MAX_BACKOFF);
        entry.1 = now + wait;
        b.last_error = Some(format!("{target}: {error}"));
    }

    fn succeeded(&self, target: &str) {
        self.backoffs().targets.remove(target);
    }

    /// `picket status`'s `alerts` object.
    pub fn report(&self, db: &Database, mail: &str) -> AlertReport {
        let pending = (|| -> Result<u64, StoreError> {
            use redb::ReadableTableMetadata;
            let txn = db.begin_read()?;
            Ok(txn.open_table(ALERT_OUTBOX)?.len()?)
        })()
        .unwrap_or(0);
        AlertReport {
            mail: mail.to_string(),
            pending,
            mails_sent: self.mails_sent.load(Ordering::Relaxed),
            digests_sent: self.digests_sent.load(Ordering::Relaxed),
            webhooks_sent: self.webhooks_sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_error: self.backoffs().last_error.clone(),
        }
    }
}

/// The alerter's figures in `picket status`: whether mail is on, alerts waiting, what was
/// sent and given up since start, and the last failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertReport {
    pub mail: String,
    pub pending: u64,
    pub mails_sent: u64,
    pub digests_sent: u64,
    pub webhooks_sent: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

/// What `picket status` says about mail: "on (host:port)" or why it is off.
pub fn mail_state(config: &Config) -> String {
    if config.smtp_url.is_empty() {
        "off (no smtp_url)".to_string()
    } else {
        match crate::config::SmtpUrl::parse(&config.smtp_url) {
            Ok(url) => format!("on ({}:{})", url.host, url.port),
            Err(e) => format!("off ({e})"),
        }
    }
}

/// Everything an alert's text needs.
struct Context<'a> {
    project: &'a Project,
    issue: &'a Issue,
    event: Option<&'a Event>,
    link: String,
}

#[derive(Clone)]
pub struct Alerter {
    db: Arc<Database>,
    queue: Queue,
    mailer: Option<Mailer>,
    webhooks: Client,
    config: crate::config::Alerts,
    base_url: String,
    state: Arc<State>,
}

impl Alerter {
    pub fn new(
        db: Arc<Database>,
        queue: Queue,
        config: &Config,
        webhooks: Client,
        state: Arc<State>,
    ) -> Result<Alerter, mail::MailError> {
        let mailer = if config.smtp_url.is_empty() {
            None
        } else {
            Some(Mailer::new(
                &config.smtp_url,
                &config.mail_from,
                config.alerts.smtp_timeout.0,
            )?)
        };
        Ok(Alerter {
            db,
            queue,
            mailer,
            webhooks,
            config: config.alerts.clone(),
            base_url: config.base_url(),
            state,
        })
    }

    pub async fn run(self, stop: tokio::sync::watch::Receiver<bool>) {
        crate::supervisor::poll_until_stopped("alerts", stop, IDLE_POLL, || self.round()).await
    }

    /// One pass over the outbox. Returns whether any alert changed.
    async fn round(&self) -> Result<bool, StoreError> {
        let db = self.db.clone();
        let snapshot = tokio::task::spawn_blocking(move || Snapshot::read(&db))
            .await
            .map_err(|e| StoreError::Db(e.to_string()))??;
        if snapshot.alerts.is_empty() {
            return Ok(false);
        }
        let now = crate::time::now();
        let mut changed: HashMap<u64, Option<Alert>> = HashMap::new();
        let mut work: Vec<(u64, Alert)> = Vec::new();
        for (seq, alert) in &snapshot.alerts {
            if now - alert.created > self.config.retry_for.0.as_secs_f64() {
                tracing::error!(
                    "alert for issue {} of project {} given up after {:?}",
                    alert.issue,
                    alert.project,
                    self.config.retry_for.0
                );
                self.state.failed.fetch_add(1, Ordering::Relaxed);
                changed.insert(*seq, None);
                continue;
            }
            let mut alert = alert.clone();
            if alert.mail && self.mailer.is_none() {
                alert.mail = false; // mail was turned off since
            }
            work.push((*seq, alert));
        }
        self.mail_round(&snapshot, &mut work, now).await;
        self.webhook_round(&snapshot, &mut work, now).await;
        for (seq, alert) in work {
            if Some(&alert)
                != snapshot
                    .alerts
                    .iter()
                    .find(|(s, _)| *s == seq)
                    .map(|(_, a)| a)
            {
                changed.insert(seq, Some(alert));
            }
        }
        if changed.is_empty() {
            return Ok(false);
        }
        self.queue.write_aside(move |txn| {
            let mut outbox = AlertOutbox::open(txn)?;
            for (seq, alert) in &changed {
                match alert {
                    Some(alert) => outbox.update(*seq, alert)?,
                    None => outbox.remove(*seq)?,
                }
            }
            Ok(())
        })?;
        Ok(true)
    }

    fn context<'a>(&self, snapshot: &'a Snapshot, alert: &Alert) -> Option<Context<'a>> {
        let project = snapshot.projects.get(&alert.project)?;
        let issue = snapshot.issues.get(&(alert.project, alert.issue))?;
        Some(Context {
            project,
            issue,
            event: snapshot.events.get(&alert.event_id),
            link: format!(
                "{}/projects/{}/issues/{}/",
                self.base_url, project.slug, issue.id
            ),
        })
    }

    async fn mail_round(&self, snapshot: &Snapshot, work: &mut [(u64, Alert)], now: f64) {
        let Some(mailer) = &self.mailer else { return };
        if !self.state.ready("mail", now) {
            return;
        }
        let hour = (now / 3600.0) as u64;
        let cap = self.config.max_mails_per_hour;
        let mut sent_this_hour = {
            let mut b = self.state.backoffs();
            if b.hour.0 != hour {
                b.hour = (hour, 0);
            }
            b.hour.1
        };
        let mut mails = Vec::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        // Held alerts from an hour that is over go out as one digest.
        let held: Vec<usize> = (0..work.len())
            .filter(|&i| {
                work[i].1.mail && work[i].1.held && (work[i].1.created / 3600.0) as u64 != hour
            })
            .collect();
        if !held.is_empty() && (cap == 0 || sent_this_hour < cap) {
            let alerts: Vec<&Alert> = held.iter().map(|&i| &work[i].1).collect();
            let to: Vec<String> = {
                let mut all: Vec<String> = alerts
                    .iter()
                    .filter_map(|a| Some((a, snapshot.projects.get(&a.project)?)))
                    .filter_map(|(a, p)| {
                        let issue = snapshot.issues.get(&(a.project, a.issue))?;
                        Some(snapshot.recipients(p, issue, a))
                    })
                    .flatten()
                    .collect();
                all.sort();
                all.dedup();
                all
            };
            if let Some(bytes) = self.digest(snapshot, &alerts, &mailer.from) {
                if to.is_empty() {
                    for &i in &held {
                        work[i].1.mail = false;
                    }
                } else {
                    mails.push(Mail { to, bytes });
                    owners.push(held.clone());
                    sent_this_hour += 1;
                }
            }
        }
        for (i, (_, alert)) in work.iter_mut().enumerate() {
            if !alert.mail || alert.held {
                continue;
            }
            let Some(ctx) = self.context(snapshot, alert) else {
                alert.mail = false; // its project or issue is gone
                continue;
            };
            let to = snapshot.recipients(ctx.project, ctx.issue, alert);
            if to.is_empty() {
                alert.mail = false; // nobody to tell
                continue;
            }
            if cap > 0 && sent_this_hour >= cap {
                alert.held = true;
                continue;
            }
            let Some(bytes) = compose_mail(&ctx, alert, &mailer.from) else {
                alert.mail = false;
                continue;
            };
            mails.push(Mail { to, bytes });
            owners.push(vec![i]);
            sent_this_hour += 1;
        }
        if mails.is_empty() {
            return;
        }
        match mailer.send(&mails).await {
            Ok(results) => {
                self.state.succeeded("mail");
                for (result, owner) in results.into_iter().zip(owners) {
                    match result {
                        Ok(sent) => {
                            for (to, why) in sent.refused {
                                tracing::warn!("alert mail: the server refused {to}: {why}");
                            }
                            if owner.len() > 1 || work[owner[0]].1.held {
                                self.state.digests_sent.fetch_add(1, Ordering::Relaxed);
                            } else {
                                self.state.mails_sent.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            tracing::error!("alert mail refused for good: {e}");
                            self.state.failed.fetch_add(1, Ordering::Relaxed);
                            self.state.backoffs().last_error = Some(format!("mail: {e}"));
                        }
                    }
                    for i in owner {
                        work[i].1.mail = false;
                    }
                }
                let mut b = self.state.backoffs();
                if b.hour.0 == hour {
                    b.hour.1 = sent_this_hour;
                }
            }
            Err(e) => self.state.failed("mail", now, e.to_string()),
        }
    }

    /// One mail listing alerts held back by the hourly cap.
    fn digest(&self, snapshot: &Snapshot, alerts: &[&Alert], from: &str) -> Option<Vec<u8>> {
        let mut text = format!(
            "{} alerts were held back because more than {} mails went out in an hour:\n\n",
            alerts.len(),
            self.config.max_mails_per_hour
        );
        for alert in alerts {
            if let Some(ctx) = self.context(snapshot, alert) {
                let _ = writeln!(
                    text,
                    "- [{}] {}: {} ({} events)\n  {}",
                    ctx.project.slug,
                    alert.rule.as_str(),
                    ctx.issue.title,
                    ctx.issue.count,
                    ctx.link
                );
            }
        }
        mail_send::mail_builder::MessageBuilder::new()
            .from(("picket", from))
            .subject(format!("picket: {} alerts held back", alerts.len()))
            .text_body(text)
            .write_to_vec()
            .ok()
    }

    async fn webhook_round(&self, snapshot: &Snapshot, work: &mut [(u64, Alert)], now: f64) {
        let mut calls = tokio::task::JoinSet::new();
        for (i, (_, alert)) in work.iter().enumerate() {
            let Some(ctx) = self.context(snapshot, alert) else {
                continue;
            };
            for url in &alert.webhooks {
                let Some(hook) = ctx.project.alerts.webhooks.iter().find(|h| &h.url == url) else {
                    continue; // removed since; dropped below
                };
                if !self.state.ready(url, now) {
                    continue;
                }
                let body = webhook_body(&ctx, alert, hook.format);
                let (client, url) = (self.webhooks.clone(), url.clone());
                calls.spawn(async move {
                    let headers = [("content-type", "application/json".to_string())];
                    let answer = client.post(&url, &headers, body).await;
                    (i, url, answer)
                });
            }
        }
        // Webhooks no longer configured are dropped.
        for (_, alert) in work.iter_mut() {
            if let Some(project) = snapshot.projects.get(&alert.project) {
                alert
                    .webhooks
                    .retain(|u| project.alerts.webhooks.iter().any(|h| &h.url == u));
            } else {
                alert.webhooks.clear();
            }
        }
        while let Some(done) = calls.join_next().await {
            let Ok((i, url, answer)) = done else { continue };
            match answer {
                Ok(reply) if (200..300).contains(&reply.status) => {
                    self.state.succeeded(&url);
                    self.state.webhooks_sent.fetch_add(1, Ordering::Relaxed);
                    work[i].1.webhooks.retain(|u| u != &url);
                }
                Ok(reply) => self
                    .state
                    .failed(&url, now, format!("HTTP {}", reply.status)),
                Err(e) => self.state.failed(&url, now, e.to_string()),
            }
        }
    }
}

/// What one round reads from the file.
struct Snapshot {
    alerts: Vec<(u64, Alert)>,
    projects: HashMap<u64, Project>,
    issues: HashMap<(u64, u64), Issue>,
    /// The triggering events, by id.
    events: HashMap<EventId, Event>,
    users: Vec<User>,
}

impl Snapshot {
    fn read(db: &Database) -> Result<Snapshot, StoreError> {
        let txn = db.begin_read()?;
        let alerts = alerts::pending(&txn.open_table(ALERT_OUTBOX)?, PER_ROUND)?;
        if alerts.is_empty() {
            return Ok(Snapshot {
                alerts,
                projects: HashMap::new(),
                issues: HashMap::new(),
                events: HashMap::new(),
                users: Vec::new(),
            });
        }
        let projects = projects::list(&txn.open_table(PROJECTS)?)?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let issues_table = txn.open_table(ISSUES)?;
        let events_table = txn.open_table(EVENTS)?;
        let mut issues = HashMap::new();
        let mut events = HashMap::new();
        for (_, alert) in &alerts {
            if let Some(issue) =
                crate::store::issues::get(&issues_table, alert.project, alert.issue)?
            {
                issues.insert((alert.project, alert.issue), issue);
            }
            if let Some(stored) = events::get(&events_table, alert.project, &alert.event_id)? {
                events.insert(alert.event_id, stored.event);
            }
        }
        let users = crate::store::users::list(&txn.open_table(USERS)?)?;
        Ok(Snapshot {
            alerts,
            projects,
            issues,
            events,
            users,
        })
    }

    /// Who is mailed an alert about an issue: the people it names, if it names any (an
    /// assignment, a comment: those of them who still may see the project); otherwise the
    /// project's members and the admins, minus those who opted out and those who want mail
    /// only about issues assigned to them (unless it is), plus its extra addresses.
    fn recipients(&self, project: &Project, issue: &Issue, alert: &Alert) -> Vec<String> {
        if !alert.to.is_empty() {
            return self
                .users
                .iter()
                .filter(|u| project.admits(u) && alert.to.contains(&u.email))
                .map(|u| u.email.clone())
                .collect();
        }
        let opted_out: HashSet<&str> = project.alerts.opt_out.iter().map(String::as_str).collect();
        let mut out: Vec<String> = self
            .users
            .iter()
            .filter(|u| project.admits(u))
            .filter(|u| !u.mail_assigned_only || issue.assignee.as_ref() == Some(&u.email))
            .map(|u| u.email.clone())
            .filter(|e| !opted_out.contains(e.as_str()))
            .chain(project.alerts.emails.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The exception lines and top in-app frames of an event, for mail and webhooks.
fn exception_summary(event: &Event) -> (Vec<String>, Vec<String>) {
    let exceptions = event
        .exception
        .iter()
        .rev()
        .map(|e| {
            format!(
                "{}: {}",
                e.ty.as_deref().unwrap_or("Error"),
                e.value.as_deref().unwrap_or("")
            )
        })
        .collect();
    let frames = event
        .exception
        .last()
        .and_then(|e| e.stacktrace.as_ref())
        .map(|st| {
            let in_app: Vec<_> = st
                .frames
                .iter()
                .filter(|f| f.in_app == Some(true))
                .collect();
            let chosen = if in_app.is_empty() {
                st.frames.iter().collect()
            } else {
                in_app
            };
            chosen
                .iter()
                .rev()
                .take(TOP_FRAMES)
                .map(|f| {
                    format!(
                        "{} in {}{}",
                        f.function.as_deref().unwrap_or("?"),
                        f.filename
                            .as_deref()
                            .or(f.abs_path.as_deref())
                            .or(f.module.as_deref())
                            .unwrap_or("?"),
                        f.lineno.map(|l| format!(":{l}")).unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (exceptions, frames)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An alert's mail: subject with project, level and title; text and HTML parts.
fn compose_mail(ctx: &Context<'_>, alert: &Alert, from: &str) -> Option<Vec<u8>> {
    let issue = ctx.issue;
    let subject = format!(
        "[{}] {}: {}",
        ctx.project.slug,
        issue.level.as_str().to_uppercase(),
        issue.title.chars().take(150).collect::<String>()
    );
    let (exceptions, frames) = ctx.event.map(exception_summary).unwrap_or_default();
    let environment = ctx
        .event
        .and_then(|e| e.environment.clone())
        .unwrap_or_else(|| "-".into());
    let release = ctx
        .event
        .and_then(|e| e.release.clone())
        .unwrap_or_else(|| "-".into());
    let facts = [
        ("Project", ctx.project.name.clone()),
        ("Why", alert.detail.clone()),
        ("Events", issue.count.to_string()),
        ("First seen", crate::time::rfc3339(issue.first_seen)),
        ("Last seen", crate::time::rfc3339(issue.last_seen)),
        ("Environment", environment),
        ("Release", release),
        ("Culprit", issue.culprit.clone()),
    ];
    let mut text = format!("{}\n\n", issue.title);
    for e in &exceptions {
        let _ = writeln!(text, "{e}");
    }
    if !frames.is_empty() {
        text.push_str("\nTop frames:\n");
        for f in &frames {
            let _ = writeln!(text, "  {f}");
        }
    }
    text.push('\n');
    for (k, v) in &facts {
        let _ = writeln!(text, "{k}: {v}");
    }
    let _ = writeln!(text, "\n{}", ctx.link);

    let mut html = format!(
        "<h2 style=\"font-family:sans-serif\">{}</h2>",
        html_escape(&issue.title)
    );
    for e in &exceptions {
        let _ = write!(html, "<pre>{}</pre>", html_escape(e));
    }
    if !frames.is_empty() {
        html.push_str("<p><b>Top frames</b></p><ul>");
        for f in &frames {
            let _ = write!(html, "<li><code>{}</code></li>", html_escape(f));
        }
        html.push_str("</ul>");
    }
    html.push_str("<table>");
    for (k, v) in &facts {
        let _ = write!(
            html,
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            k,
            html_escape(v)
        );
    }
    let _ = write!(
        html,
        "</table><p><a href=\"{0}\">{0}</a></p>",
        html_escape(&ctx.link)
    );
    mail_send::mail_builder::MessageBuilder::new()
        .from(("picket", from))
        .subject(subject)
        .text_body(text)
        .html_body(html)
        .write_to_vec()
        .ok()
}

/// The body of a sample alert about a made-up issue of `project`, for testing a webhook.
pub fn sample_webhook_body(project: &Project, base_url: &str, format: WebhookFormat) -> Bytes {
    let now = crate::time::now();
    let issue = Issue {
        project: project.id,
        id: 0,
        title: "TestAlert: a sample alert from picket".into(),
        culprit: "picket webhook test".into(),
        first_seen: now,
        last_seen: now,
        count: 1,
        ..Default::default()
    };
    let alert = Alert {
        project: project.id,
        rule: alerts::Rule::NewIssue,
        created: now,
        detail: "a test of this webhook (no issue is involved)".into(),
        ..Default::default()
    };
    let ctx = Context {
        project,
        issue: &issue,
        event: None,
        link: format!("{base_url}/projects/{}/settings", project.slug),
    };
    webhook_body(&ctx, &alert, format)
}

/// A webhook's body: generic JSON (issue, event summary, link) or Slack's `text` + `blocks`.
fn webhook_body(ctx: &Context<'_>, alert: &Alert, format: WebhookFormat) -> Bytes {
    let issue = ctx.issue;
    let (exceptions, frames) = ctx.event.map(exception_summary).unwrap_or_default();
    let body = match format {
        WebhookFormat::Json => json!({
            "rule": alert.rule,
            "detail": alert.detail,
            "project": { "id": ctx.project.id, "slug": ctx.project.slug, "name": ctx.project.name },
            "issue": {
                "id": issue.id,
                "title": issue.title,
                "culprit": issue.culprit,
                "level": issue.level.as_str(),
                "status": issue.status.as_str(),
                "count": issue.count,
                "first_seen": crate::time::rfc3339(issue.first_seen),
                "last_seen": crate::time::rfc3339(issue.last_seen),
            },
            "event": {
                "event_id": alert.event_id,
                "environment": ctx.event.and_then(|e| e.environment.clone()),
                "release": ctx.event.and_then(|e| e.release.clone()),
                "exception": exceptions,
                "frames": frames,
            },
            "url": ctx.link,
        }),
        WebhookFormat::Slack => {
            let text = format!(
                "[{}] {}: {} ({})",
                ctx.project.slug,
                issue.level.as_str(),
                issue.title,
                alert.detail
            );
            let mut detail = format!("*<{}|{}>*\n{}", ctx.link, issue.title, alert.detail);
            if let Some(e) = exceptions.first() {
                let _ = write!(detail, "\n`{e}`");
            }
            json!({
                "text": text,
                "blocks": [
                    { "type": "section", "text": { "type": "mrkdwn", "text": detail } },
                    { "type": "context", "elements": [{
                        "type": "mrkdwn",
                        "text": format!("{} events · first seen {} · {}", issue.count,
                            crate::time::rfc3339(issue.first_seen), ctx.project.name),
                    }]},
                ],
            })
        }
    };
    Bytes::from(body.to_string())
}
