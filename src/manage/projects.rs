//! Projects: create, list, rename and delete them. A project is what a DSN sends to; its
//! slug never changes, so URLs and DSNs keep working after a rename.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::ids::Dsn;
use crate::store::backup::Progress;
use crate::store::issues::{self, Status};
use crate::store::projects::{self, Project, ProjectKey};
use crate::store::tables::Tables;
use crate::store::{ISSUES, KEYS, StoreError};

/// A project as every front end shows it. With a key, the DSN to give SDKs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectView {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub created: String,
    pub stored_events: u64,
    /// Its own cap on stored events; `null` uses the configured one.
    pub max_events: Option<u64>,
    /// The upstream DSN it forwards to, without the secret.
    pub forward_to: Option<String>,
    /// Whether attachments sent with its events are stored.
    pub attachments: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// In lists only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unresolved_issues: Option<usize>,
}

impl ProjectView {
    pub fn of(handle: &Handle, p: &Project, key: Option<&ProjectKey>) -> ProjectView {
        ProjectView {
            id: p.id,
            slug: p.slug.clone(),
            name: p.name.clone(),
            created: crate::time::rfc3339(p.created),
            stored_events: p.stored,
            max_events: p.max_events,
            attachments: !p.attachments_off,
            forward_to: p
                .forward_to
                .as_deref()
                .and_then(|dsn| Dsn::parse(dsn).ok())
                .map(|dsn| dsn.public()),
            dsn: key.map(|k| handle.config.dsn(&k.public_key, p.id)),
            public_key: key.map(|k| k.public_key.clone()),
            secret_key: key.map(|k| k.secret_key.clone()),
            unresolved_issues: None,
        }
    }
}

impl Handle {
    /// Changes the settings of a project the actor owns inside a write (the writer may have
    /// changed the row since it was read), and returns it as written.
    pub(crate) fn update_project(
        &self,
        actor: &Actor,
        slug_or_id: &str,
        change: impl FnOnce(&mut Project) + Send + 'static,
    ) -> Result<Project, ManageError> {
        let id = self
            .owned_project(actor, slug_or_id, "change its settings")?
            .id;
        self.change_project(id, change)
    }

    /// Changes a project's row inside a write, whoever asked (the caller has decided that
    /// they may).
    pub(crate) fn change_project(
        &self,
        id: u64,
        change: impl FnOnce(&mut Project) + Send + 'static,
    ) -> Result<Project, ManageError> {
        Ok(self.write(move |txn| {
            let mut tables = Tables::open(txn)?;
            let mut project = tables
                .project(id)?
                .ok_or_else(|| StoreError::NotFound(format!("no project {id}")))?;
            change(&mut project);
            tables.put_project(&project)?;
            Ok(project)
        })?)
    }
}

/// Creates a project with its first key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectCreate {
    pub name: String,
}

impl Operation for ProjectCreate {
    type Answer = ProjectView;
    const CHANGES_KEYS: bool = true;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<ProjectView, ManageError> {
        actor.require_admin("create projects")?;
        let name = self.name.trim().to_string();
        if name.is_empty() {
            return Err(ManageError::Invalid(
                "a project needs a non-empty name".into(),
            ));
        }
        let now = crate::time::now();
        let (project, key) = h.write(move |txn| projects::create(txn, &name, now))?;
        Ok(ProjectView::of(h, &project, Some(&key)))
    }
}

/// A project name: 1 to 100 characters once trimmed.
fn project_name(name: &str) -> Result<String, ManageError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ManageError::Invalid(
            "a project name has 1 to 100 characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// The projects the actor may see, each with its DSN and unresolved issue count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectList;

impl Operation for ProjectList {
    type Answer = Vec<ProjectView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<ProjectView>, ManageError> {
        actor.require_scope("project:read")?;
        let visible = h.visible_projects(actor)?;
        let txn = h.db.begin_read()?;
        let keys = projects::keys(&txn.open_table(KEYS)?)?;
        let issues_table = txn.open_table(ISSUES)?;
        let mut out = Vec::with_capacity(visible.len());
        for p in &visible {
            let key = keys.iter().find(|k| k.project == p.id && k.active);
            let mut view = ProjectView::of(h, p, key);
            view.unresolved_issues =
                Some(issues::list(&issues_table, p.id, Some(Status::Unresolved))?.len());
            out.push(view);
        }
        Ok(out)
    }
}

/// Renames a project (its slug stays).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRename {
    pub project: String,
    pub name: String,
}

impl Operation for ProjectRename {
    type Answer = ProjectView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<ProjectView, ManageError> {
        let name = project_name(&self.name)?;
        let project = h.update_project(actor, &self.project, move |p| p.name = name)?;
        Ok(ProjectView::of(h, &project, None))
    }
}

/// Deletes a project with its issues, events and keys; without `confirm`, only says what
/// would go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectDelete {
    pub project: String,
    pub confirm: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectDeleted {
    pub project: String,
    pub issues_deleted: u64,
    pub events_deleted: u64,
}

impl Operation for ProjectDelete {
    type Answer = ProjectDeleted;
    const CHANGES_KEYS: bool = true;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<ProjectDeleted, ManageError> {
        let project = h.project(actor, &self.project)?;
        actor.require_admin("delete projects")?;
        if !self.confirm {
            let txn = h.db.begin_read()?;
            let issues = issues::list(&txn.open_table(ISSUES)?, project.id, None)?.len();
            return Err(ManageError::Invalid(format!(
                "deleting project '{}' removes its {issues} issues, {} stored events and its keys; add --yes to do it",
                project.slug, project.stored
            )));
        }
        let slug = project.slug.clone();
        let (issues, events) =
            h.write(move |txn| Tables::open(txn)?.delete_project(txn, &project))?;
        Ok(ProjectDeleted {
            project: slug,
            issues_deleted: issues,
            events_deleted: events,
        })
    }
}
