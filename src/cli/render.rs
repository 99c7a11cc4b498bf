//! How the CLI shows answers: one function per command's text, written against the management
//! layer's typed answers, plus the plain-text table. With `--json` the answer is printed as it
//! is instead; its fields are the contract scripts rely on.

use serde::Serialize;
use serde_json::Value;

use crate::manage::activity::ActivityView;
use crate::manage::alerts::AlertsView;
use crate::manage::artifacts::BundleView;
use crate::manage::audit::AuditView;
use crate::manage::feedback::FeedbackView;
use crate::manage::forward::DeadLetterAnswer;
use crate::manage::issues::{EventSummary, IssueDeleted, IssueView};
use crate::manage::keys::KeyView;
use crate::manage::members::Members;
use crate::manage::privacy::PrivacyView;
use crate::manage::projects::{ProjectDeleted, ProjectView};
use crate::manage::releases::ReleaseView;
use crate::manage::tokens::{TokenCreated, TokenView};
use crate::manage::users::{SetPasswordLink, UserView};
use crate::status::StatusReport;
use crate::store::backup::{BackupSummary, CheckReport};

/// Prints an answer: pretty JSON with `--json`, else its text.
pub fn print<T: Serialize + ?Sized>(json: bool, answer: &T, text: impl Fn(&T) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(answer).unwrap_or_default()
        );
    } else {
        print!("{}", text(answer));
    }
}

/// A plain-text table: upper-case headings, columns padded to their widest cell, the last
/// one not padded; "(none)" for no rows.
pub fn table(columns: &[&str], rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return "(none)\n".to_string();
    }
    let mut widths: Vec<usize> = columns.iter().map(|c| c.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
    out
}

fn or_empty(v: &Option<impl ToString>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

pub fn project_created(p: &ProjectView) -> String {
    format!(
        "created project {} (id {})\nDSN: {}\n",
        p.slug,
        p.id,
        or_empty(&p.dsn)
    )
}

pub fn projects(list: &[ProjectView]) -> String {
    let rows = list
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.slug.clone(),
                or_empty(&p.unresolved_issues),
                or_empty(&p.dsn),
            ]
        })
        .collect();
    table(&["id", "slug", "unresolved_issues", "dsn"], rows)
}

pub fn project_retention(p: &ProjectView) -> String {
    match p.max_events {
        Some(n) => format!("project {} keeps at most {n} events\n", p.slug),
        None => format!("project {} uses the configured cap\n", p.slug),
    }
}

pub fn project_attachments(p: &ProjectView) -> String {
    if p.attachments {
        format!(
            "project {} stores the attachments sent with its events\n",
            p.slug
        )
    } else {
        format!(
            "project {} refuses attachments (they are counted as dropped)\n",
            p.slug
        )
    }
}

pub fn project_forward(p: &ProjectView) -> String {
    match &p.forward_to {
        Some(to) => format!(
            "project {} forwards every event it accepts from now on to {to}\n",
            p.slug
        ),
        None => format!("project {} does not forward\n", p.slug),
    }
}

pub fn project_deleted(d: &ProjectDeleted) -> String {
    format!(
        "deleted project {}: {} issues, {} events\n",
        d.project, d.issues_deleted, d.events_deleted
    )
}

pub fn members(m: &Members) -> String {
    let named: Vec<String> = m
        .members
        .iter()
        .map(|e| {
            if m.owners.contains(e) {
                format!("{e} (owner)")
            } else {
                e.clone()
            }
        })
        .collect();
    format!("members of {}: {}\n", m.project, named.join(", "))
}

pub fn keys(list: &[KeyView]) -> String {
    let rows = list
        .iter()
        .map(|k| {
            vec![
                k.public_key.clone(),
                k.active.to_string(),
                k.created.clone(),
                k.dsn.clone(),
            ]
        })
        .collect();
    table(&["public_key", "active", "created", "dsn"], rows)
}

pub fn key_created(k: &KeyView) -> String {
    format!("created key {}\nDSN: {}\n", k.public_key, k.dsn)
}

pub fn key_revoked(k: &KeyView) -> String {
    format!("revoked key {}\n", k.public_key)
}

pub fn key_rate_limit(k: &KeyView) -> String {
    match k.rate_limit {
        Some(l) => format!(
            "key {} is limited to {} events per minute (burst {})\n",
            k.public_key, l.per_minute, l.burst
        ),
        None => format!("key {} uses the default rate limit\n", k.public_key),
    }
}

pub fn issues(list: &[IssueView]) -> String {
    let rows = list
        .iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.status.clone(),
                i.level.clone(),
                i.count.to_string(),
                i.last_seen.clone(),
                i.title.clone(),
            ]
        })
        .collect();
    table(
        &["id", "status", "level", "count", "last_seen", "title"],
        rows,
    )
}

pub fn issue_status(i: &IssueView) -> String {
    match (&i.resolved_in, i.resolved_in_next_release) {
        (Some(r), true) => format!("issue {} is resolved in the release after {r}\n", i.id),
        (Some(r), false) => format!("issue {} is resolved in release {r}\n", i.id),
        (None, _) => format!("issue {} is {}\n", i.id, i.status),
    }
}

pub fn privacy(v: &PrivacyView) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    let list = |l: &[String]| {
        if l.is_empty() {
            "-".to_string()
        } else {
            l.join(", ")
        }
    };
    let f = &v.filters;
    let mut out = format!(
        "scrubbing of {}: defaults {}, IP addresses {}\n  always scrubbed: {}\n  also scrubbed: {}\n  never scrubbed: {}\n",
        v.project,
        on(v.scrub),
        on(v.scrub_ip),
        v.default_sensitive_fields.join(", "),
        list(&v.sensitive_fields),
        list(&v.safe_fields),
    );
    for r in &v.rules {
        out += &format!("  rule: {} = {:?}\n", r.selector, r.method);
    }
    out += &format!(
        "inbound filters: browser extensions {}, localhost {}, web crawlers {}, legacy browsers {}\n  error messages: {}\n  releases: {}\n  sample rate: {}\n",
        on(f.browser_extensions),
        on(f.localhost),
        on(f.web_crawlers),
        on(f.legacy_browsers),
        list(&f.error_messages),
        list(&f.releases),
        f.sample_rate
            .map_or("keep all".to_string(), |r| r.to_string()),
    );
    out + "changes apply to events that arrive from now on\n"
}

pub fn issue_merged(i: &IssueView) -> String {
    format!(
        "merged into issue {}: {} events, {} stored\n",
        i.id, i.count, i.stored
    )
}

pub fn issue_assigned(i: &IssueView) -> String {
    match &i.assignee {
        Some(to) => format!("issue {} is assigned to {to}\n", i.id),
        None => format!("issue {} is unassigned\n", i.id),
    }
}

pub fn activity(list: &[ActivityView]) -> String {
    let rows = list
        .iter()
        .map(|a| {
            let who = if a.who.is_empty() {
                a.by.clone()
            } else {
                a.who.clone()
            };
            let text = match &a.comment {
                Some(c) => format!("{}: {}", a.text, c.replace('\n', " ")),
                None => a.text.clone(),
            };
            vec![a.at.clone(), who, text]
        })
        .collect();
    table(&["WHEN", "WHO", "WHAT"], rows)
}

pub fn issue_deleted(d: &IssueDeleted) -> String {
    format!(
        "deleted issue {} and its {} stored events\n",
        d.issue, d.events_deleted
    )
}

pub fn events(list: &[EventSummary]) -> String {
    let rows = list
        .iter()
        .map(|e| {
            vec![
                e.event_id.to_string(),
                e.received.clone(),
                e.timestamp.clone(),
                e.level.clone(),
                e.title.clone(),
            ]
        })
        .collect();
    // Newest first by arrival; `timestamp` is the SDK's clock, which may disagree.
    table(
        &["event_id", "received", "timestamp", "level", "title"],
        rows,
    )
}

pub fn pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

pub fn backup(b: &BackupSummary) -> String {
    format!(
        "backed up {} events ({} rows, {:.1} MB) to {}\n",
        b.events,
        b.rows,
        b.bytes as f64 / 1e6,
        b.path.display()
    )
}

pub fn check(r: &CheckReport) -> String {
    let mut out = format!(
        "{}: {} (schema {}, {} projects, {} issues, {} events, {:.1} MB)\n",
        r.path.display(),
        if r.ok { "ok" } else { "CORRUPT" },
        r.schema_version.map_or("null".into(), |v| v.to_string()),
        r.projects,
        r.issues,
        r.events,
        r.bytes as f64 / 1e6
    );
    if r.log_batches > 0 {
        out.push_str(&format!(
            "write-ahead log: {} acknowledged batches ({:.1} MB) not yet in the data file; \
             picket applies them when it next starts\n",
            r.log_batches,
            r.log_bytes as f64 / 1e6
        ));
    }
    if r.log_torn_bytes > 0 {
        out.push_str(&format!(
            "write-ahead log: ends in {} bytes of a record cut short by a crash (never \
             acknowledged; dropped at the next start)\n",
            r.log_torn_bytes
        ));
    }
    out
}

pub fn dead_letters(answer: &DeadLetterAnswer) -> String {
    let (list, retried) = match answer {
        DeadLetterAnswer::List(list) => (list, None),
        DeadLetterAnswer::Retried {
            retried,
            dead_letters,
        } => (dead_letters, Some(*retried)),
    };
    let mut out = String::new();
    for d in list {
        out.push_str(&format!(
            "{}  {}  HTTP {}  {}\n",
            d.project,
            d.event_id,
            d.status,
            d.reason.lines().next().unwrap_or("")
        ));
    }
    match retried {
        Some(n) => out.push_str(&format!("{n} dead letters put back in the outbox\n")),
        None if out.is_empty() => out.push_str("no dead letters\n"),
        None => {}
    }
    out
}

pub fn alerts(v: &AlertsView) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    let rules = &v.rules;
    let mut out = format!(
        "alerts of {} (mail {})\nnew issue: {}, regression: {}, reappeared: {}, feedback: {}, frequency: {}\n",
        v.project,
        v.mail,
        on(rules.new_issue),
        on(rules.regression),
        on(rules.reappeared),
        on(rules.feedback),
        match &rules.frequency {
            Some(f) => format!("more than {} events in {} minutes", f.events, f.minutes),
            None => "off".into(),
        }
    );
    out += &format!("recipients: {}\n", v.recipients.join(", "));
    for hook in &rules.webhooks {
        let format = serde_json::to_value(hook.format).unwrap_or_default();
        out += &format!("webhook: {} ({})\n", hook.url, text(&format));
    }
    out
}

/// A JSON value as the status text shows it: strings without quotes, null as nothing.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `picket status`: the report's figures in a few lines, then the workers.
pub fn status(r: &StatusReport) -> String {
    let mut out = format!(
        "picket {} (pid {}), up {} s, queue depth {}\n",
        r.version, r.pid, r.uptime_seconds, r.queue_depth
    );
    out += &format!("listening: http://{}", r.http_addr);
    if let Some(udp) = &r.udp_addr {
        out += &format!(", udp {udp}");
    }
    out += "\n";
    out += &format!(
        "data file: {} ({:.1} MB)\n",
        r.data_file,
        r.data_file_bytes as f64 / 1e6
    );
    if let Some(since) = &r.disk_full_since {
        out += &format!(
            "writer: WAITING FOR DISK SPACE since {since} (the disk holding the data file is full; intake refuses events until space is freed)\n"
        );
    }
    let e = &r.events;
    out += &format!(
        "events: {} accepted, {} stored, {} duplicates\n",
        e.accepted, e.stored, e.duplicates
    );
    for (title, map) in [
        ("rejected", &r.rejected),
        ("UDP dropped", &r.dropped),
        ("items dropped", &r.items_dropped),
        ("filtered", &r.filtered),
        ("API paths not supported", &r.api_unsupported),
    ] {
        if !map.is_empty() {
            let parts: Vec<String> = map.iter().map(|(k, n)| format!("{k} {n}")).collect();
            out += &format!("{title}: {}\n", parts.join(", "));
        }
    }
    for (project, counts) in &r.projects_dropped {
        let parts: Vec<String> = counts.iter().map(|o| o.describe()).collect();
        out += &format!("project {project}: {}\n", parts.join("; "));
    }
    let last_error = |e: &Option<String>| {
        e.as_ref()
            .map(|e| format!(", last error: {e}"))
            .unwrap_or_default()
    };
    let a = &r.alerts;
    out += &format!(
        "alerts: mail {}, {} pending, {} mails and {} webhook calls sent, {} given up{}\n",
        a.mail,
        a.pending,
        a.mails_sent,
        a.webhooks_sent,
        a.failed,
        last_error(&a.last_error)
    );
    if let Some(cap) = e.disk_cap {
        out += &format!("disk budget: the file has room for {cap} events\n");
    }
    for (slug, f) in &r.forward {
        out += &format!(
            "forward {slug} → {}: {} pending, {} delivered, {} dead letters, {} dropped{}{}\n",
            f.upstream,
            f.pending,
            f.delivered,
            f.dead_letter,
            f.dropped,
            f.paused_until
                .as_ref()
                .map(|t| format!(", paused until {t}"))
                .unwrap_or_default(),
            last_error(&f.last_error),
        );
    }
    out += "\n";
    let workers = r
        .workers
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.state.clone(),
                w.restarts.to_string(),
                w.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out + &table(&["name", "state", "restarts", "last_error"], workers)
}

/// `picket token create`: the secret, said to be shown once.
pub fn token_created(t: &TokenCreated) -> String {
    format!(
        "token {} \"{}\" ({}){}\n{}\n(shown once: picket keeps only its hash)\n",
        t.id,
        t.name,
        t.scopes.join(" "),
        t.project
            .as_ref()
            .map(|p| format!(", limited to project {p}"))
            .unwrap_or_default(),
        t.token
    )
}

/// `picket token list`.
pub fn tokens(list: &[TokenView]) -> String {
    let rows = list
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.user.clone().unwrap_or_else(|| "(operator)".into()),
                t.project.clone().unwrap_or_else(|| "(all)".into()),
                t.hint.clone(),
                t.scopes.join(" "),
            ]
        })
        .collect();
    table(&["id", "name", "user", "project", "token", "scopes"], rows)
}

/// `picket token revoke`.
pub fn token_revoked(t: &TokenView) -> String {
    format!("token {} \"{}\" is revoked\n", t.id, t.name)
}

/// `picket releases`: one row per release, newest first.
pub fn releases(list: &[ReleaseView]) -> String {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows = list
        .iter()
        .map(|r| {
            vec![
                r.version.clone(),
                r.date_created.clone(),
                or_dash(&r.date_released),
                or_dash(&r.last_event),
                r.events.to_string(),
                r.new_issues.to_string(),
                r.health.sessions.to_string(),
                r.health
                    .crash_free_sessions
                    .map_or("-".into(), |p| format!("{p}%")),
                r.deploys
                    .iter()
                    .map(|d| d.environment.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    table(
        &[
            "version",
            "created",
            "released",
            "last_event",
            "events",
            "new_issues",
            "sessions",
            "crash_free",
            "deploys",
        ],
        rows,
    )
}

/// `picket feedback`: one row per feedback, newest first, the message cut to one line.
pub fn feedback(list: &[FeedbackView]) -> String {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows = list
        .iter()
        .map(|f| {
            let line = f.message.lines().next().unwrap_or_default();
            let mut message: String = line.chars().take(60).collect();
            if message.len() < f.message.len() {
                message.push('…');
            }
            vec![
                f.received.clone(),
                f.issue_id.map_or_else(|| "-".into(), |i| i.to_string()),
                or_dash(&f.name),
                or_dash(&f.email),
                message,
            ]
        })
        .collect();
    table(&["received", "issue", "name", "email", "message"], rows)
}

/// `picket user create` and `picket user link`.
pub fn set_password_link(l: &SetPasswordLink) -> String {
    format!(
        "{} chooses a password at (one use, valid for 7 days):\n{}\n",
        l.email, l.url
    )
}

/// `picket user list`.
pub fn users(list: &[UserView]) -> String {
    let rows = list
        .iter()
        .map(|u| {
            vec![
                u.email.clone(),
                if u.is_admin { "admin" } else { "member" }.into(),
                if u.active { "active" } else { "deactivated" }.into(),
                match (u.single_sign_on, u.two_factor) {
                    (true, true) => "single sign-on, two-factor",
                    (true, false) => "single sign-on",
                    (false, true) => "two-factor",
                    (false, false) => "password",
                }
                .into(),
            ]
        })
        .collect();
    table(&["email", "role", "state", "sign-in"], rows)
}

/// `picket audit`: one row per entry, newest first.
pub fn audit(list: &[AuditView]) -> String {
    let or_dash = |v: &str| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    let rows = list
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.at.clone(),
                e.action.clone(),
                or_dash(&e.actor),
                or_dash(&e.subject),
                or_dash(e.address.as_deref().unwrap_or("")),
                or_dash(&e.detail),
            ]
        })
        .collect();
    table(
        &["id", "at", "action", "by", "subject", "address", "detail"],
        rows,
    )
}

/// `picket sourcemaps`: one row per upload, newest first.
pub fn bundles(list: &[BundleView]) -> String {
    let rows = list
        .iter()
        .map(|b| {
            vec![
                b.id.clone(),
                b.uploaded.clone(),
                b.size.to_string(),
                b.files.to_string(),
                b.release.clone().unwrap_or_else(|| "-".into()),
                b.debug_ids.join(" "),
            ]
        })
        .collect();
    table(
        &["id", "uploaded", "bytes", "files", "release", "debug_ids"],
        rows,
    )
}

/// `picket sourcemaps --delete`.
pub fn bundle_deleted(b: &BundleView) -> String {
    format!("upload {} ({} files) is deleted\n", b.id, b.files)
}

/// `picket monitors`: one row per monitor.
pub fn monitors(list: &[crate::manage::monitors::MonitorView]) -> String {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows = list
        .iter()
        .map(|m| {
            vec![
                m.slug.clone(),
                if m.muted {
                    format!("{} (muted)", m.status)
                } else {
                    m.status.clone()
                },
                format!("{} {}", m.schedule, m.timezone),
                or_dash(&m.last_checkin),
                or_dash(&m.next_expected),
                m.checkins
                    .iter()
                    .take(10)
                    .map(|c| c.status.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    table(
        &[
            "slug",
            "status",
            "schedule",
            "last_checkin",
            "next_expected",
            "latest",
        ],
        rows,
    )
}

pub fn monitor_muted(m: &crate::manage::monitors::MonitorView) -> String {
    if m.muted {
        format!("monitor {} is muted: its failures open no issue\n", m.slug)
    } else {
        format!("monitor {} is no longer muted\n", m.slug)
    }
}
