//! Management requests (create a project, list issues, …), answered by the same code whether
//! a server is running or not. A running server holds the data file's lock and answers on a
//! Unix socket in the data directory (mode 0600), sending writes through its writer; with no
//! server, the command opens the file itself. One JSON request line, one JSON answer line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Config;
use crate::ids::RateLimit;
use crate::pipeline::Queue;
use crate::status::Live;
use crate::store::alerts;
use crate::store::backup::{self, Progress};
use crate::store::batch::Batch;
use crate::store::issues::{self, Issue, Status, StatusChange};
use crate::store::projects::{self, Project, ProjectKey};
use crate::store::{
    self, EVENTS, ISSUE_EVENTS, ISSUES, KEYS, PROJECT_SLUGS, PROJECTS, StoreError, events, users,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    ProjectCreate {
        name: String,
    },
    ProjectList,
    KeyList {
        project: String,
    },
    KeyCreate {
        project: String,
    },
    KeyRevoke {
        public_key: String,
    },
    /// Gives a key its own rate limit, or (with `None`) returns it to the default.
    KeyRateLimit {
        public_key: String,
        limit: Option<RateLimit>,
    },
    Issues {
        project: String,
        status: Option<String>,
    },
    Events {
        project: String,
        issue: u64,
    },
    Event {
        project: String,
        event_id: String,
    },
    CreateSuperuser {
        email: String,
        password_hash: String,
    },
    /// Resolves, ignores or unresolves an issue.
    IssueStatus {
        project: String,
        issue: u64,
        change: StatusChange,
    },
    /// Sets (or with `None` clears) a project's own cap on stored events.
    ProjectRetention {
        project: String,
        max_events: Option<u64>,
    },
    /// Renames a project (its slug stays, so URLs and DSNs keep working).
    ProjectRename {
        project: String,
        name: String,
    },
    /// Makes a project forward to an upstream DSN, or (with `None`) stops it.
    ProjectForward {
        project: String,
        dsn: Option<String>,
    },
    /// The forward dead letters; with `retry`, puts them back in the outbox.
    DeadLetters {
        retry: bool,
    },
    /// Shows or changes a project's alert rules and targets.
    Alerts {
        project: String,
        change: AlertChange,
    },
    /// Adds a user to a project's members, or removes one.
    ProjectMember {
        project: String,
        email: String,
        remove: bool,
    },
    /// Deletes an issue and its events.
    IssueDelete {
        project: String,
        issue: u64,
    },
    /// Deletes a project with everything in it; without `confirm`, only says what would go.
    ProjectDelete {
        project: String,
        confirm: bool,
    },
    /// Copies a consistent snapshot of the data file into a directory (an absolute path).
    Backup {
        dest: PathBuf,
    },
    /// The running server's workers and counters.
    Status,
    /// Makes a worker panic, to test supervision. Not in release builds.
    #[cfg(debug_assertions)]
    Crash {
        worker: String,
    },
}

impl Request {
    /// Whether answering changes keys or projects (the server then reloads its key cache).
    pub fn changes_keys(&self) -> bool {
        matches!(
            self,
            Request::ProjectCreate { .. }
                | Request::KeyCreate { .. }
                | Request::KeyRevoke { .. }
                | Request::KeyRateLimit { .. }
                | Request::ProjectDelete { .. }
        )
    }
}

/// A change to a project's alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum AlertChange {
    Show,
    Rules {
        new_issue: Option<bool>,
        regression: Option<bool>,
        reappeared: Option<bool>,
        /// `Some(None)` turns the frequency rule off.
        frequency: Option<Option<alerts::Frequency>>,
    },
    Email {
        address: String,
        remove: bool,
    },
    Webhook {
        url: String,
        format: alerts::WebhookFormat,
        remove: bool,
    },
    OptOut {
        email: String,
        undo: bool,
    },
}

/// How management writes reach the file.
#[derive(Clone)]
pub enum Writes {
    /// No server runs: this process holds the file and writes itself.
    Direct,
    /// Through a running server's writer thread.
    Writer(Queue),
}

/// The file and the way to write it; what a request is answered against.
#[derive(Clone)]
pub struct Handle {
    pub db: Arc<Database>,
    pub writes: Writes,
    /// Used to print DSNs.
    pub config: Arc<Config>,
    /// The running server's state, when this is a server answering on its socket.
    pub live: Option<Arc<Live>>,
}

impl Handle {
    /// Runs a write transaction: through the server's writer, or on the file directly.
    pub fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.writes {
            Writes::Writer(queue) => queue.write(work),
            Writes::Direct => {
                let txn = self.db.begin_write()?;
                let out = work(&txn)?;
                txn.commit()?;
                Ok(out)
            }
        }
    }

    fn project(&self, slug_or_id: &str) -> Result<Project, StoreError> {
        let txn = self.db.begin_read()?;
        projects::find(
            &txn.open_table(PROJECTS)?,
            &txn.open_table(PROJECT_SLUGS)?,
            slug_or_id,
        )
    }

    fn key_json(&self, key: &ProjectKey) -> Value {
        json!({
            "public_key": key.public_key,
            "secret_key": key.secret_key,
            "project": key.project,
            "active": key.active,
            "created": crate::time::rfc3339(key.created),
            "dsn": self.config.dsn(&key.public_key, key.project),
            "rate_limit": key.rate_limit,
        })
    }

    fn project_json(&self, p: &Project, key: Option<&ProjectKey>) -> Value {
        let mut v = json!({
            "id": p.id,
            "slug": p.slug,
            "name": p.name,
            "created": crate::time::rfc3339(p.created),
            "stored_events": p.stored,
            "max_events": p.max_events,
            "forward_to": p.forward_to.as_deref()
                .and_then(|dsn| crate::ids::Dsn::parse(dsn).ok())
                .map(|dsn| dsn.public()),
        });
        if let Some(key) = key {
            v["dsn"] = json!(self.config.dsn(&key.public_key, p.id));
            v["public_key"] = json!(key.public_key);
            v["secret_key"] = json!(key.secret_key);
        }
        v
    }

    /// Changes a project's row inside a write (the writer may have changed it since it was
    /// read), and returns it as written.
    fn update_project(
        &self,
        slug_or_id: &str,
        change: impl FnOnce(&mut Project) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Project, StoreError> {
        let id = self.project(slug_or_id)?.id;
        self.write(move |txn| {
            let mut rows = Batch::open(txn)?;
            let mut project = rows
                .project(id)?
                .ok_or_else(|| StoreError::NotFound(format!("no project {id}")))?;
            change(&mut project)?;
            rows.put_project(&project)?;
            Ok(project)
        })
    }

    /// A webhook URL must be http(s), and under the default policy must not lead to a loopback,
    /// private or link-local address (checked again on every call).
    fn check_webhook(&self, url: &str) -> Result<(), StoreError> {
        use crate::outbound::Policy;
        let policy = Policy::for_webhooks(self.config.alerts.allow_private_webhooks);
        crate::outbound::check_url_now(url, policy).map_err(|e| {
            let hint = if policy == Policy::PublicOnly {
                " (alerts.allow_private_webhooks = true allows it)"
            } else {
                ""
            };
            StoreError::Invalid(format!("webhook {url} refused: {e}{hint}"))
        })
    }

    fn alerts_json(&self, project: &Project) -> Result<Value, StoreError> {
        let txn = self.db.begin_read()?;
        let all = users::list(&txn.open_table(store::USERS)?)?;
        let mut recipients: Vec<String> = all
            .iter()
            .filter(|u| u.active && (u.is_admin || project.members.contains(&u.email)))
            .map(|u| u.email.clone())
            .filter(|e| !project.alerts.opt_out.contains(e))
            .chain(project.alerts.emails.iter().cloned())
            .collect();
        recipients.sort();
        recipients.dedup();
        Ok(json!({
            "project": project.slug,
            "mail": crate::alert::mail_state(&self.config),
            "rules": project.alerts,
            "members": project.members,
            "recipients": recipients,
        }))
    }

    /// Answers one management request.
    pub fn answer(&self, req: Request) -> Result<Value, StoreError> {
        self.answer_with_progress(req, &|_, _| {})
    }

    /// Answers a request, reporting the progress of long ones (backups).
    pub fn answer_with_progress(
        &self,
        req: Request,
        progress: Progress<'_>,
    ) -> Result<Value, StoreError> {
        match req {
            Request::ProjectRetention {
                project,
                max_events,
            } => {
                let project = self.update_project(&project, move |project| {
                    project.max_events = max_events;
                    Ok(())
                })?;
                Ok(self.project_json(&project, None))
            }
            Request::ProjectRename { project, name } => {
                let name = name.trim().to_string();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(StoreError::Invalid(
                        "a project name has 1 to 100 characters".into(),
                    ));
                }
                let project = self.update_project(&project, move |project| {
                    project.name = name;
                    Ok(())
                })?;
                Ok(self.project_json(&project, None))
            }
            Request::ProjectForward { project, dsn } => {
                if let Some(dsn) = &dsn {
                    let parsed = crate::ids::Dsn::parse(dsn)
                        .map_err(|e| StoreError::Invalid(format!("bad upstream DSN: {e}")))?;
                    if parsed.scheme == "udp" {
                        return Err(StoreError::Invalid(
                            "bad upstream DSN: forwarding needs an http or https DSN".into(),
                        ));
                    }
                }
                let project = self.update_project(&project, move |project| {
                    project.forward_to = dsn;
                    Ok(())
                })?;
                Ok(self.project_json(&project, None))
            }
            Request::DeadLetters { retry } => {
                let txn = self.db.begin_read()?;
                let all = projects::list(&txn.open_table(PROJECTS)?)?;
                let letters = store::outbox::dead_letters(&txn.open_table(store::FORWARD_DEAD)?)?;
                drop(txn);
                let slug = |id: u64| {
                    all.iter()
                        .find(|p| p.id == id)
                        .map_or_else(|| id.to_string(), |p| p.slug.clone())
                };
                let list: Vec<Value> = letters
                    .iter()
                    .map(|(project, d)| {
                        json!({
                            "project": slug(*project),
                            "event_id": d.event_id,
                            "status": d.status,
                            "reason": d.reason,
                            "refused_at": crate::time::rfc3339(d.at),
                            "received": crate::time::rfc3339(d.queued),
                        })
                    })
                    .collect();
                if !retry {
                    return Ok(Value::Array(list));
                }
                let retried =
                    self.write(|txn| store::outbox::Outbox::open(txn)?.retry_dead(None))?;
                Ok(json!({ "retried": retried, "dead_letters": list }))
            }
            Request::Alerts { project, change } => {
                if let AlertChange::Webhook {
                    url, remove: false, ..
                } = &change
                {
                    self.check_webhook(url)?;
                }
                if let AlertChange::Email { address, .. }
                | AlertChange::OptOut { email: address, .. } = &change
                    && !users::valid_email(address.trim())
                {
                    return Err(StoreError::Invalid(format!(
                        "'{address}' is not an email address"
                    )));
                }
                let project = match change {
                    AlertChange::Show => self.project(&project)?,
                    change => self.update_project(&project, move |project| {
                        apply_alert_change(&mut project.alerts, change)
                    })?,
                };
                Ok(self.alerts_json(&project)?)
            }
            Request::ProjectMember {
                project,
                email,
                remove,
            } => {
                let email = email.trim().to_ascii_lowercase();
                if !remove && users::find(&self.db, &email)?.is_none() {
                    return Err(StoreError::NotFound(format!(
                        "no user {email} (create one first)"
                    )));
                }
                let project = self.update_project(&project, move |project| {
                    project.members.retain(|m| m != &email);
                    if !remove {
                        project.members.push(email);
                    }
                    Ok(())
                })?;
                Ok(json!({ "project": project.slug, "members": project.members }))
            }
            Request::IssueDelete { project, issue } => {
                let project = self.project(&project)?;
                let events =
                    self.write(move |txn| Batch::open(txn)?.delete_issue(project.id, issue))?;
                Ok(json!({ "project": project.slug, "issue": issue, "events_deleted": events }))
            }
            Request::ProjectDelete { project, confirm } => {
                let project = self.project(&project)?;
                if !confirm {
                    let txn = self.db.begin_read()?;
                    let issues = issues::list(&txn.open_table(ISSUES)?, project.id, None)?.len();
                    return Err(StoreError::Invalid(format!(
                        "deleting project '{}' removes its {issues} issues, {} stored events and its keys; add --yes to do it",
                        project.slug, project.stored
                    )));
                }
                let slug = project.slug.clone();
                let (issues, events) = self.write(move |txn| {
                    let mut rows = Batch::open(txn)?;
                    rows.delete_project(txn, &project)
                })?;
                Ok(json!({ "project": slug, "issues_deleted": issues, "events_deleted": events }))
            }
            Request::Backup { dest } => {
                let summary = backup::backup(&self.db, &dest, progress)?;
                serde_json::to_value(summary).map_err(|e| StoreError::Invalid(e.to_string()))
            }
            Request::ProjectCreate { name } => {
                let now = crate::time::now();
                let (project, key) = self.write(move |txn| projects::create(txn, &name, now))?;
                Ok(self.project_json(&project, Some(&key)))
            }
            Request::ProjectList => {
                let txn = self.db.begin_read()?;
                let all = projects::list(&txn.open_table(PROJECTS)?)?;
                let keys = projects::keys(&txn.open_table(KEYS)?)?;
                let issues_table = txn.open_table(ISSUES)?;
                let mut out = Vec::new();
                for p in &all {
                    let key = keys.iter().find(|k| k.project == p.id && k.active);
                    let mut v = self.project_json(p, key);
                    let unresolved =
                        issues::list(&issues_table, p.id, Some(Status::Unresolved))?.len();
                    v["unresolved_issues"] = json!(unresolved);
                    out.push(v);
                }
                Ok(Value::Array(out))
            }
            Request::KeyList { project } => {
                let project = self.project(&project)?;
                let txn = self.db.begin_read()?;
                let keys = projects::keys(&txn.open_table(KEYS)?)?;
                Ok(Value::Array(
                    keys.iter()
                        .filter(|k| k.project == project.id)
                        .map(|k| self.key_json(k))
                        .collect(),
                ))
            }
            Request::KeyCreate { project } => {
                let project = self.project(&project)?;
                let now = crate::time::now();
                let key = self.write(move |txn| projects::create_key(txn, project.id, now))?;
                Ok(self.key_json(&key))
            }
            Request::KeyRateLimit { public_key, limit } => {
                let key =
                    self.write(move |txn| projects::set_rate_limit(txn, &public_key, limit))?;
                Ok(self.key_json(&key))
            }
            Request::KeyRevoke { public_key } => {
                let key = self.write(move |txn| projects::revoke_key(txn, &public_key))?;
                Ok(self.key_json(&key))
            }
            Request::Issues { project, status } => {
                let project = self.project(&project)?;
                let status = match status.as_deref() {
                    None | Some("unresolved") => Some(Status::Unresolved),
                    Some("resolved") => Some(Status::Resolved),
                    Some("ignored") => Some(Status::Ignored),
                    Some("all") => None,
                    Some(other) => {
                        return Err(StoreError::Invalid(format!(
                            "unknown status '{other}' (unresolved, resolved, ignored or all)"
                        )));
                    }
                };
                let txn = self.db.begin_read()?;
                let list = issues::list(&txn.open_table(ISSUES)?, project.id, status)?;
                Ok(Value::Array(list.iter().map(issue_json).collect()))
            }
            Request::Events { project, issue } => {
                let project = self.project(&project)?;
                let txn = self.db.begin_read()?;
                issues::get(&txn.open_table(ISSUES)?, project.id, issue)?.ok_or_else(|| {
                    StoreError::NotFound(format!("no issue {issue} in project '{}'", project.slug))
                })?;
                let ids = events::of_issue(&txn.open_table(ISSUE_EVENTS)?, project.id, issue)?;
                let table = txn.open_table(EVENTS)?;
                let mut out = Vec::new();
                for id in ids.iter().rev() {
                    if let Some(stored) = events::get(&table, project.id, id)? {
                        let ev = &stored.event;
                        out.push(json!({
                            "event_id": ev.event_id,
                            "timestamp": crate::time::rfc3339(ev.timestamp),
                            "received": crate::time::rfc3339(ev.received),
                            "title": ev.title(),
                            "level": ev.level.as_str(),
                            "issue": stored.issue,
                        }));
                    }
                }
                Ok(Value::Array(out))
            }
            Request::Event { project, event_id } => {
                let project = self.project(&project)?;
                let id = crate::ids::EventId::parse(&event_id).ok_or_else(|| {
                    StoreError::Invalid(format!("'{event_id}' is not an event id (32 hex digits)"))
                })?;
                let txn = self.db.begin_read()?;
                let stored =
                    events::get(&txn.open_table(EVENTS)?, project.id, &id)?.ok_or_else(|| {
                        StoreError::NotFound(format!(
                            "no event {event_id} in project '{}'",
                            project.slug
                        ))
                    })?;
                let mut v = serde_json::to_value(&stored.event)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                v["issue"] = json!(stored.issue);
                v["project"] = json!(project.id);
                v["datetime"] = json!(crate::time::rfc3339(stored.event.timestamp));
                v["title"] = json!(stored.event.title());
                v["culprit"] = json!(stored.event.culprit());
                Ok(v)
            }
            Request::IssueStatus {
                project,
                issue,
                change,
            } => {
                let project = self.project(&project)?;
                let updated =
                    self.write(move |txn| issues::set_status(txn, project.id, issue, change))?;
                Ok(issue_json(&updated))
            }
            Request::Status => match &self.live {
                Some(live) => Ok(live.snapshot()),
                None => Err(StoreError::NotFound(format!(
                    "no picket server is running on {}",
                    self.config.data_dir.display()
                ))),
            },
            #[cfg(debug_assertions)]
            Request::Crash { worker } => match (worker.as_str(), &self.writes) {
                ("writer", Writes::Writer(queue)) => {
                    queue.crash_writer().map_err(|_| StoreError::WriterGone)?;
                    Ok(json!({ "crashed": worker }))
                }
                _ => Err(StoreError::Invalid(format!(
                    "cannot crash worker '{worker}' here"
                ))),
            },
            Request::CreateSuperuser {
                email,
                password_hash,
            } => {
                let now = crate::time::now();
                let user = self
                    .write(move |txn| users::create_superuser(txn, &email, &password_hash, now))?;
                Ok(json!({ "email": user.email, "is_admin": user.is_admin }))
            }
        }
    }
}

pub fn issue_json(i: &Issue) -> Value {
    json!({
        "id": i.id,
        "title": i.title,
        "culprit": i.culprit,
        "level": i.level.as_str(),
        "status": i.status.as_str(),
        "count": i.count,
        "stored": i.stored,
        "users": i.user_count(),
        "first_seen": crate::time::rfc3339(i.first_seen),
        "last_seen": crate::time::rfc3339(i.last_seen),
        "platform": i.platform,
        "grouping": i.strategy.as_str(),
        "fingerprint": crate::ids::hex(&i.hash),
        "releases": i.releases,
        "environments": i.environments,
        "regressions": i.regressions,
        "ignore_until": i.ignore_until.map(crate::time::rfc3339),
        "ignore_until_count": i.ignore_until_count,
        "first_event": i.first_event,
        "last_event": i.last_event,
    })
}

/// The control socket of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

#[derive(Serialize, Deserialize)]
struct Answer {
    /// Rows done and total, sent before the answer by long requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<(u64, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Sends a request to a running server. `None` when no server listens on the socket.
pub fn ask_server(data_dir: &Path, req: &Request) -> Option<Result<Value, String>> {
    ask_server_with_progress(data_dir, req, &|_, _| {})
}

/// Like [`ask_server`], calling `progress` for the progress lines a long request sends.
pub fn ask_server_with_progress(
    data_dir: &Path,
    req: &Request,
    progress: Progress<'_>,
) -> Option<Result<Value, String>> {
    let mut stream = UnixStream::connect(socket_path(data_dir)).ok()?;
    let line = serde_json::to_string(req).ok()?;
    let sent = stream
        .write_all(line.as_bytes())
        .and_then(|()| stream.write_all(b"\n"));
    if let Err(e) = sent {
        return Some(Err(format!("control socket: {e}")));
    }
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if let Err(e) = reader.read_line(&mut line) {
            return Some(Err(format!("control socket: {e}")));
        }
        match serde_json::from_str::<Answer>(&line) {
            Ok(Answer {
                progress: Some((done, total)),
                ..
            }) => progress(done, total),
            Ok(Answer { ok: Some(v), .. }) => return Some(Ok(v)),
            Ok(Answer { error: Some(e), .. }) => return Some(Err(e)),
            _ => {
                return Some(Err(
                    "the server closed the control socket without an answer".into(),
                ));
            }
        }
    }
}

impl Handle {
    /// Answers a request on a blocking thread (writes wait for the writer's commit) and
    /// reloads the server's keys when it changed them: what the web UI's buttons call.
    pub async fn ask(
        &self,
        req: Request,
        keys: &crate::store::key_cache::KeyCache,
    ) -> Result<Value, StoreError> {
        let reload = req.changes_keys();
        let handle = self.clone();
        let result = tokio::task::spawn_blocking(move || handle.answer(req))
            .await
            .map_err(|e| StoreError::Db(format!("internal error: {e}")))?;
        if reload && let Err(e) = keys.reload(&self.db) {
            tracing::error!("reloading keys failed: {e}");
        }
        result
    }
}

/// Serves the control socket until the listener is dropped. Each request is answered on a
/// blocking thread (writes wait for the writer's commit).
pub async fn serve(
    listener: tokio::net::UnixListener,
    handle: Handle,
    keys: Arc<crate::store::key_cache::KeyCache>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        let keys = keys.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read);
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match serde_json::from_str::<Request>(&line) {
                Err(e) => Answer {
                    progress: None,
                    ok: None,
                    error: Some(format!("bad control request: {e}")),
                },
                Ok(req) => {
                    let reload = req.changes_keys();
                    let db = handle.db.clone();
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                    let mut work = tokio::task::spawn_blocking(move || {
                        handle.answer_with_progress(req, &move |done, total| {
                            let _ = tx.send((done, total));
                        })
                    });
                    let result = loop {
                        tokio::select! {
                            Some(p) = rx.recv() => {
                                let line = serde_json::to_string(&Answer { progress: Some(p), ok: None, error: None })
                                    .unwrap_or_default();
                                if write.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                                    break (&mut work).await;
                                }
                            }
                            result = &mut work => break result,
                        }
                    };
                    if reload && let Err(e) = keys.reload(&db) {
                        tracing::error!("reloading keys failed: {e}");
                    }
                    match result {
                        Ok(Ok(v)) => Answer {
                            progress: None,
                            ok: Some(v),
                            error: None,
                        },
                        Ok(Err(e)) => Answer {
                            progress: None,
                            ok: None,
                            error: Some(e.to_string()),
                        },
                        Err(e) => Answer {
                            progress: None,
                            ok: None,
                            error: Some(format!("internal error: {e}")),
                        },
                    }
                }
            };
            let mut text = serde_json::to_string(&answer).unwrap_or_else(|_| "{}".into());
            text.push('\n');
            let _ = write.write_all(text.as_bytes()).await;
        });
    }
}

/// Opens the data file for a command run while no server is running.
pub fn open_direct(config: Arc<Config>) -> Result<Handle, StoreError> {
    let db = store::open(&config.data_dir)?;
    Ok(Handle {
        db: Arc::new(db),
        writes: Writes::Direct,
        config,
        live: None,
    })
}

/// Applies a change to a project's alert rules.
fn apply_alert_change(
    rules: &mut alerts::AlertRules,
    change: AlertChange,
) -> Result<(), StoreError> {
    match change {
        AlertChange::Show => {}
        AlertChange::Rules {
            new_issue,
            regression,
            reappeared,
            frequency,
        } => {
            rules.new_issue = new_issue.unwrap_or(rules.new_issue);
            rules.regression = regression.unwrap_or(rules.regression);
            rules.reappeared = reappeared.unwrap_or(rules.reappeared);
            if let Some(f) = frequency {
                if let Some(f) = f
                    && (f.events == 0 || f.minutes == 0)
                {
                    return Err(StoreError::Invalid(
                        "a frequency rule needs at least 1 event and 1 minute".into(),
                    ));
                }
                rules.frequency = f;
            }
        }
        AlertChange::Email { address, remove } => {
            let address = address.trim().to_string();
            rules.emails.retain(|e| e != &address);
            if !remove {
                rules.emails.push(address);
            }
        }
        AlertChange::Webhook {
            url,
            format,
            remove,
        } => {
            rules.webhooks.retain(|h| h.url != url);
            if !remove {
                rules.webhooks.push(alerts::Webhook { url, format });
            }
        }
        AlertChange::OptOut { email, undo } => {
            let email = email.trim().to_ascii_lowercase();
            rules.opt_out.retain(|e| e != &email);
            if !undo {
                rules.opt_out.push(email);
            }
        }
    }
    Ok(())
}
