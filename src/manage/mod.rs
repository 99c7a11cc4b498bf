//! The management layer: every action on projects, keys, issues, alerts, users, retention,
//! forwarding and backups is one [`Operation`], a typed value with a typed answer, applied by
//! one function in the file of its concern. The CLI (through the control socket, or on the
//! file when no server runs), the web UI's forms and the Web API are its front ends; none of
//! them writes to the store itself.
//!
//! Who may act is decided here and nowhere else: every operation is applied on behalf of an
//! [`Actor`], and a project the actor may not see answers exactly like one that does not exist.

pub mod activity;
pub mod alerts;
pub mod artifacts;
pub mod attachments;
pub mod audit;
pub mod backup;
pub mod feedback;
pub mod forward;
pub mod issues;
pub mod keys;
pub mod members;
pub mod monitors;
pub mod privacy;
pub mod projects;
pub mod releases;
pub mod retention;
pub mod search;
pub mod sign_in;
pub mod socket;
pub mod status;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use redb::{Database, ReadableDatabase, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::pipeline::Queue;
use crate::status::Live;
use crate::store::activity::Who;
use crate::store::backup::Progress;
use crate::store::key_cache::KeyCache;
use crate::store::projects::Project;
use crate::store::tokens::ApiToken;
use crate::store::users::User;
use crate::store::{PROJECT_SLUGS, PROJECTS, StoreError};

/// Why an operation was not done. Every front end shows the message as it is; the kind
/// decides the status (404, 400, 409, 403, 500) where there is one.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum ManageError {
    /// No such thing, or one the actor may not see.
    #[error("{0}")]
    NotFound(String),
    /// The request's values are wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// It would clash with what exists.
    #[error("{0}")]
    Conflict(String),
    /// The actor may see the thing but not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// The file or the writer failed.
    #[error("{0}")]
    Storage(String),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> ManageError {
        match e {
            StoreError::NotFound(m) => ManageError::NotFound(m),
            StoreError::Conflict(m) => ManageError::Conflict(m),
            other => ManageError::Storage(other.to_string()),
        }
    }
}

impl From<redb::TransactionError> for ManageError {
    fn from(e: redb::TransactionError) -> ManageError {
        StoreError::from(e).into()
    }
}

impl From<redb::TableError> for ManageError {
    fn from(e: redb::TableError) -> ManageError {
        StoreError::from(e).into()
    }
}

impl From<redb::StorageError> for ManageError {
    fn from(e: redb::StorageError) -> ManageError {
        StoreError::from(e).into()
    }
}

/// On whose behalf an operation runs.
#[derive(Debug, Clone)]
pub enum Actor {
    /// Whoever runs the CLI on this machine: they can read the data directory (the control
    /// socket is mode 0600 inside it), so they may do everything.
    Operator,
    /// A signed-in user of the web UI.
    User(User),
    /// A caller of the Web API with a token: it acts as the user who made it (or as the
    /// operator, for a token made on the command line without a user), within its scopes and
    /// its one project, if it is limited to one.
    Token(Box<TokenActor>),
}

/// The token an API request carries, with the user it acts as.
#[derive(Debug, Clone)]
pub struct TokenActor {
    pub token: ApiToken,
    pub user: Option<User>,
}

/// Sentry's token scopes; the ones before `:` name a resource, after it a level. A higher
/// level grants the lower ones (`admin` ⊃ `write` ⊃ `read`); `project:releases` is its own.
pub const SCOPES: [&str; 12] = [
    "org:read",
    "org:write",
    "org:admin",
    "project:read",
    "project:write",
    "project:admin",
    "project:releases",
    "team:read",
    "member:read",
    "event:read",
    "event:write",
    "event:admin",
];

/// What a token gets when no scopes are asked for: everything sentry-cli and the read API
/// need, short of deleting.
pub const DEFAULT_SCOPES: [&str; 6] = [
    "org:read",
    "project:read",
    "project:write",
    "project:releases",
    "event:read",
    "event:write",
];

/// Whether holding `held` grants `wanted`.
fn grants(held: &str, wanted: &str) -> bool {
    if held == wanted {
        return true;
    }
    let level = |s: &str| match s {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    };
    match (held.split_once(':'), wanted.split_once(':')) {
        (Some((hr, hl)), Some((wr, wl))) => {
            hr == wr && level(wl) > 0 && level(hl) >= level(wl)
                || wanted == "project:releases"
                    && (held == "project:write" || held == "project:admin")
        }
        _ => false,
    }
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        match self {
            Actor::Operator => true,
            Actor::User(u) => u.is_admin,
            Actor::Token(t) => t.user.as_ref().is_none_or(|u| u.is_admin),
        }
    }

    /// Admins (and the operator) see every project; a member sees the projects they belong to;
    /// a token sees what its user sees, and only its project if it is limited to one.
    pub fn may_see(&self, project: &Project) -> bool {
        let member = |u: &User| project.admits(u);
        match self {
            Actor::Operator => true,
            Actor::User(u) => member(u),
            Actor::Token(t) => {
                t.token.project.is_none_or(|p| p == project.id)
                    && t.user.as_ref().is_none_or(member)
            }
        }
    }

    /// Admins (and the operator) own every project; a user owns those whose owners name
    /// them; a token owns what its user owns.
    pub fn may_own(&self, project: &Project) -> bool {
        let owner = |u: &User| project.owned_by(u);
        self.may_see(project)
            && match self {
                Actor::Operator => true,
                Actor::User(u) => owner(u),
                Actor::Token(t) => t.user.as_ref().is_none_or(owner),
            }
    }

    /// Refuses anyone who does not own the project (an admin, the operator or one of its
    /// owners) to do `what`.
    pub fn require_owner(&self, project: &Project, what: &str) -> Result<(), ManageError> {
        if self.may_own(project) {
            Ok(())
        } else {
            Err(ManageError::Forbidden(format!(
                "only an owner of {} or an admin may {what}",
                project.slug
            )))
        }
    }

    /// The email of the person acting (a user, or a token's user), for `assigned:me`.
    pub fn email(&self) -> Option<&str> {
        match self {
            Actor::Operator => None,
            Actor::User(u) => Some(&u.email),
            Actor::Token(t) => t.user.as_ref().map(|u| u.email.as_str()),
        }
    }

    /// Who the activity of an issue names for what this actor does.
    pub fn who(&self) -> Who {
        match self {
            Actor::Operator => Who::Cli,
            Actor::User(u) => Who::User(u.email.clone()),
            Actor::Token(t) => Who::Token {
                name: t.token.name.clone(),
                user: t.user.as_ref().map(|u| u.email.clone()),
            },
        }
    }

    /// Refuses a token without `scope`; people (the operator, signed-in users) are not
    /// limited by scopes.
    pub fn require_scope(&self, scope: &str) -> Result<(), ManageError> {
        match self {
            Actor::Token(t) if !t.token.scopes.iter().any(|held| grants(held, scope)) => Err(
                ManageError::Forbidden(format!("this token does not have the scope {scope}")),
            ),
            _ => Ok(()),
        }
    }

    /// The user behind the actor, if any (the operator and operator-made tokens have none).
    pub fn user(&self) -> Option<&User> {
        match self {
            Actor::Operator => None,
            Actor::User(u) => Some(u),
            Actor::Token(t) => t.user.as_ref(),
        }
    }

    /// Refuses anyone but an admin or the operator.
    pub fn require_admin(&self, what: &str) -> Result<(), ManageError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ManageError::Forbidden(format!("only an admin may {what}")))
        }
    }
}

/// How management writes reach the file.
#[derive(Clone)]
pub enum Writes {
    /// No server runs: this process holds the file and writes itself.
    Direct,
    /// Through a running server's writer thread.
    Writer(Queue),
}

/// The file and the way to write it; what every operation is applied against.
#[derive(Clone)]
pub struct Handle {
    pub db: Arc<Database>,
    pub writes: Writes,
    /// Used to print DSNs and to check values against the configuration.
    pub config: Arc<Config>,
    /// The running server's state, when this is a server answering on its socket.
    pub live: Option<Arc<Live>>,
    /// The running server's key cache, reloaded after operations that change keys.
    pub keys: Option<Arc<KeyCache>>,
    /// The running server's symbolicator, told when source-map uploads change.
    pub symbolicator: Option<Arc<crate::artifacts::Symbolicator>>,
}

impl Handle {
    /// A handle on the file opened by this process, for a command run while no server runs;
    /// the file must exist (a command never makes a new store).
    pub fn open_direct(config: Arc<Config>) -> Result<Handle, StoreError> {
        let db = Arc::new(crate::store::open_existing(&config.data_dir)?);
        // What a crash left in the write-ahead log is applied first.
        crate::pipeline::recover(&db, &config)?;
        Ok(Handle {
            db,
            writes: Writes::Direct,
            config,
            live: None,
            keys: None,
            symbolicator: None,
        })
    }

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

    /// [`Handle::write`] for work that changes only these (project, issue) rows among the
    /// issues, so the server's caches of issues forget only those.
    pub fn write_issues<T: Send + 'static>(
        &self,
        issues: Vec<(u64, u64)>,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.writes {
            Writes::Writer(queue) => queue.write_issues(issues, work),
            Writes::Direct => self.write(work),
        }
    }

    /// A project by slug or numeric id, if the actor may see it. One the actor may not see
    /// answers exactly like one that does not exist.
    pub fn project(&self, actor: &Actor, slug_or_id: &str) -> Result<Project, ManageError> {
        let txn = self.db.begin_read()?;
        let found = crate::store::projects::find(
            &txn.open_table(PROJECTS)?,
            &txn.open_table(PROJECT_SLUGS)?,
            slug_or_id,
        );
        match found {
            Ok(project) if actor.may_see(&project) => Ok(project),
            Ok(_) | Err(StoreError::NotFound(_)) => {
                Err(ManageError::NotFound(format!("no project '{slug_or_id}'")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A project the actor owns (see [`Actor::may_own`]); one they may see but not own is
    /// refused with what they tried to do.
    pub fn owned_project(
        &self,
        actor: &Actor,
        slug_or_id: &str,
        what: &str,
    ) -> Result<Project, ManageError> {
        let project = self.project(actor, slug_or_id)?;
        actor.require_owner(&project, what)?;
        Ok(project)
    }

    /// Every project the actor may see, in id order.
    pub fn visible_projects(&self, actor: &Actor) -> Result<Vec<Project>, ManageError> {
        let txn = self.db.begin_read()?;
        let all = crate::store::projects::list(&txn.open_table(PROJECTS)?)?;
        Ok(all.into_iter().filter(|p| actor.may_see(p)).collect())
    }

    /// Applies an operation on behalf of `actor`.
    pub fn run<O: Operation>(&self, actor: &Actor, op: O) -> Result<O::Answer, ManageError> {
        self.run_with_progress(actor, op, &|_, _| {})
    }

    /// Applies an operation, reporting the progress of long ones (backups), and reloads the
    /// server's key cache when it changed keys or projects.
    pub fn run_with_progress<O: Operation>(
        &self,
        actor: &Actor,
        op: O,
        progress: Progress<'_>,
    ) -> Result<O::Answer, ManageError> {
        let answer = op.apply(self, actor, progress);
        if O::CHANGES_KEYS {
            self.reload_keys();
        }
        answer
    }

    /// Applies an operation on a blocking thread (writes wait for the writer's commit): what
    /// the web UI and the API call from the async server.
    pub async fn run_async<O: Operation + Send + 'static>(
        &self,
        actor: Actor,
        op: O,
    ) -> Result<O::Answer, ManageError>
    where
        O::Answer: Send + 'static,
    {
        let handle = self.clone();
        tokio::task::spawn_blocking(move || handle.run(&actor, op))
            .await
            .map_err(|e| ManageError::Storage(format!("internal error: {e}")))?
    }

    /// Tells the running server that source-map uploads were made or deleted.
    pub fn uploads_changed(&self) {
        if let Some(s) = &self.symbolicator {
            s.refresh();
        }
    }

    fn reload_keys(&self) {
        if let Some(keys) = &self.keys
            && let Err(e) = keys.reload(&self.db)
        {
            tracing::error!("reloading keys failed: {e}");
        }
    }
}

/// One management action: its arguments are the value, its answer a typed, serializable
/// value. The control socket carries operations as [`Request`]s and their answers as JSON
/// of `Answer`.
pub trait Operation: Clone + Serialize + DeserializeOwned + Into<Request> {
    type Answer: Serialize + DeserializeOwned;
    /// Whether doing it changes keys or projects (the server then reloads its key cache).
    const CHANGES_KEYS: bool = false;
    fn apply(
        self,
        handle: &Handle,
        actor: &Actor,
        progress: Progress<'_>,
    ) -> Result<Self::Answer, ManageError>;
}

/// Declares the operations the control socket carries: the [`Request`] enum, a conversion
/// from each operation, and the dispatch that applies one and encodes its answer.
macro_rules! operations {
    ($($(#[$attr:meta])* $name:ident => $path:path),* $(,)?) => {
        /// Any operation, as the control socket carries it.
        #[derive(Debug, Serialize, Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        pub enum Request {
            $($(#[$attr])* $name($path),)*
        }

        $($(#[$attr])* impl From<$path> for Request {
            fn from(op: $path) -> Request {
                Request::$name(op)
            }
        })*

        impl Request {
            /// Applies the operation and encodes its answer.
            pub fn apply(
                self,
                handle: &Handle,
                actor: &Actor,
                progress: Progress<'_>,
            ) -> Result<serde_json::Value, ManageError> {
                match self {
                    $($(#[$attr])* Request::$name(op) => encode(handle.run_with_progress(actor, op, progress)?),)*
                }
            }
        }
    };
}

fn encode<T: Serialize>(answer: T) -> Result<serde_json::Value, ManageError> {
    serde_json::to_value(answer).map_err(|e| ManageError::Storage(format!("encoding: {e}")))
}

operations! {
    ProjectCreate => projects::ProjectCreate,
    ProjectList => projects::ProjectList,
    ProjectRename => projects::ProjectRename,
    ProjectDelete => projects::ProjectDelete,
    ProjectForward => forward::ProjectForward,
    ProjectRetention => retention::ProjectRetention,
    ProjectMember => members::ProjectMember,
    ProjectScrub => privacy::ProjectScrub,
    ProjectFilters => privacy::ProjectFilters,
    KeyList => keys::KeyList,
    KeyCreate => keys::KeyCreate,
    KeyRevoke => keys::KeyRevoke,
    KeyRateLimit => keys::KeyRateLimit,
    IssueList => issues::IssueList,
    IssueStatus => issues::IssueStatus,
    IssueDelete => issues::IssueDelete,
    EventList => issues::EventList,
    EventShow => issues::EventShow,
    IssueShow => issues::IssueShow,
    EventDetail => issues::EventDetail,
    IssueSearch => issues::IssueSearch,
    IssueActivity => activity::IssueActivity,
    IssueAssign => activity::IssueAssign,
    IssueComment => activity::IssueComment,
    IssueMerge => activity::IssueMerge,
    Alerts => alerts::Alerts,
    WebhookTest => alerts::WebhookTest,
    MailChoice => users::MailChoice,
    DeadLetters => forward::DeadLetters,
    Backup => backup::Backup,
    CreateSuperuser => users::CreateSuperuser,
    UserList => users::UserList,
    UserCreate => users::UserCreate,
    UserResetLink => users::UserResetLink,
    UserSetActive => users::UserSetActive,
    UserSetAdmin => users::UserSetAdmin,
    PasswordChange => users::PasswordChange,
    Status => status::Status,
    TokenCreate => tokens::TokenCreate,
    TokenList => tokens::TokenList,
    TokenRevoke => tokens::TokenRevoke,
    ReleaseList => releases::ReleaseList,
    ChunkUpload => artifacts::ChunkUpload,
    BundleAssemble => artifacts::BundleAssemble,
    BundleList => artifacts::BundleList,
    BundleDelete => artifacts::BundleDelete,
    ReleaseFileUpload => artifacts::ReleaseFileUpload,
    ReleaseFileList => artifacts::ReleaseFileList,
    ReleaseShow => releases::ReleaseShow,
    ReleaseCreate => releases::ReleaseCreate,
    ReleaseUpdate => releases::ReleaseUpdate,
    ReleaseDelete => releases::ReleaseDelete,
    DeployCreate => releases::DeployCreate,
    DeployList => releases::DeployList,
    FeedbackList => feedback::FeedbackList,
    AttachmentList => attachments::AttachmentList,
    AttachmentFetch => attachments::AttachmentFetch,
    ProjectAttachments => attachments::ProjectAttachments,
    MonitorList => monitors::MonitorList,
    MonitorMute => monitors::MonitorMute,
    MonitorDelete => monitors::MonitorDelete,
    AuditList => audit::AuditList,
    TwoFactorStart => sign_in::TwoFactorStart,
    TwoFactorConfirm => sign_in::TwoFactorConfirm,
    TwoFactorDisable => sign_in::TwoFactorDisable,
    #[cfg(debug_assertions)]
    Crash => status::Crash,
}
