//! Releases and deploys: list, show, make, update (finalize), delete a release, record and list
//! its deploys. A release belongs to the organization and names its projects; an actor sees a
//! release through the projects of it they may see, and its figures (first and last event,
//! events, new issues) are summed over those projects only.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::store::backup::Progress;
use crate::store::projects::Project;
use crate::store::releases::{self, Deploy, MAX_DEPLOYS, Release, ReleaseStats};
use crate::store::{RELEASE_STATS, RELEASES};

/// Longest version, as Sentry allows.
const MAX_VERSION: usize = 200;
/// Longest environment name, as Sentry allows.
const MAX_ENVIRONMENT: usize = 64;

/// A release as the CLI, the UI and the API see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseView {
    pub version: String,
    /// The projects of it the actor may see, by slug.
    pub projects: Vec<ProjectRef>,
    pub date_created: String,
    pub date_started: Option<String>,
    pub date_released: Option<String>,
    pub url: Option<String>,
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    pub new_issues: u64,
    pub events: u64,
    pub deploys: Vec<DeployView>,
    /// Release health from the SDKs' sessions.
    #[serde(flatten)]
    pub health: crate::store::health::Health,
}

/// A project named in a release.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRef {
    pub id: u64,
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployView {
    pub id: String,
    pub environment: String,
    pub name: Option<String>,
    pub url: Option<String>,
    pub date_started: Option<String>,
    pub date_finished: String,
}

impl From<&Deploy> for DeployView {
    fn from(d: &Deploy) -> DeployView {
        DeployView {
            id: d.id.to_string(),
            environment: d.environment.clone(),
            name: d.name.clone(),
            url: d.url.clone(),
            date_started: d.date_started.map(crate::time::rfc3339),
            date_finished: crate::time::rfc3339(d.date_finished),
        }
    }
}

/// A release as seen through `visible` (the projects of it the actor may see).
fn view(h: &Handle, release: &Release, visible: &[Project]) -> Result<ReleaseView, ManageError> {
    let txn = h.db.begin_read()?;
    let table = txn.open_table(RELEASE_STATS)?;
    let mut total = ReleaseStats::default();
    let mut projects = Vec::new();
    for p in visible.iter().filter(|p| release.projects.contains(&p.id)) {
        total.merge(&releases::stats(&table, p.id, &release.version)?);
        projects.push(ProjectRef {
            id: p.id,
            slug: p.slug.clone(),
            name: p.name.clone(),
        });
    }
    let ids: Vec<u64> = projects.iter().map(|p| p.id).collect();
    let health =
        crate::store::health::of_release(&txn, &ids, &release.version, crate::time::now())?;
    let seen = |t: f64| (total.events > 0).then(|| crate::time::rfc3339(t));
    Ok(ReleaseView {
        version: release.version.clone(),
        projects,
        date_created: crate::time::rfc3339(release.date_created),
        date_started: release.date_started.map(crate::time::rfc3339),
        date_released: release.date_released.map(crate::time::rfc3339),
        url: release.url.clone(),
        reference: release.reference.clone(),
        first_event: seen(total.first_event),
        last_event: seen(total.last_event),
        new_issues: total.new_issues,
        events: total.events,
        deploys: release.deploys.iter().rev().map(DeployView::from).collect(),
        health,
    })
}

/// Refuses an actor that may neither read projects nor handle releases.
fn may_read(actor: &Actor) -> Result<(), ManageError> {
    actor
        .require_scope("project:read")
        .or_else(|_| actor.require_scope("project:releases"))
}

/// A release by version, if the actor may see one of its projects; with those projects.
fn visible_release(
    h: &Handle,
    actor: &Actor,
    version: &str,
) -> Result<(Release, Vec<Project>), ManageError> {
    let missing = || ManageError::NotFound(format!("no release '{version}'"));
    let txn = h.db.begin_read()?;
    let release = releases::get(&txn.open_table(RELEASES)?, version)?.ok_or_else(missing)?;
    let visible: Vec<Project> = h
        .visible_projects(actor)?
        .into_iter()
        .filter(|p| release.projects.contains(&p.id))
        .collect();
    if visible.is_empty() {
        return Err(missing());
    }
    Ok((release, visible))
}

/// The problem with a version, if it is not one Sentry would take.
fn check_version(version: &str) -> Result<(), ManageError> {
    let bad = |why: &str| Err(ManageError::Invalid(format!("version: {why}")));
    if version.trim().is_empty() {
        return bad("must not be empty");
    }
    if version.chars().count() > MAX_VERSION {
        return bad(&format!("longer than {MAX_VERSION} characters"));
    }
    if version
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return bad("must not contain slashes, tabs or line breaks");
    }
    if matches!(version, "." | ".." | "latest") {
        return bad(&format!("'{version}' is reserved"));
    }
    Ok(())
}

/// Releases the actor may see, newest first: all of them, or one project's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseList {
    pub project: Option<String>,
}

impl Operation for ReleaseList {
    type Answer = Vec<ReleaseView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<ReleaseView>, ManageError> {
        may_read(actor)?;
        let visible = match &self.project {
            Some(p) => vec![h.project(actor, p)?],
            None => h.visible_projects(actor)?,
        };
        let all = releases::list(&h.db.begin_read()?.open_table(RELEASES)?)?;
        all.iter()
            .filter(|r| visible.iter().any(|p| r.projects.contains(&p.id)))
            .map(|r| view(h, r, &visible))
            .collect()
    }
}

/// One release.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseShow {
    pub version: String,
}

impl Operation for ReleaseShow {
    type Answer = ReleaseView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<ReleaseView, ManageError> {
        may_read(actor)?;
        let (release, visible) = visible_release(h, actor, &self.version)?;
        view(h, &release, &visible)
    }
}

/// What making or updating a release may set; what is not given stays as it was.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReleaseFields {
    pub url: Option<String>,
    pub reference: Option<String>,
    pub date_started: Option<f64>,
    /// Set: the release is finalized.
    pub date_released: Option<f64>,
}

impl ReleaseFields {
    /// Sets what is given on `release` and adds the projects it does not name yet.
    fn apply(self, release: &mut Release, projects: Vec<u64>) {
        for id in projects {
            if !release.projects.contains(&id) {
                release.projects.push(id);
            }
        }
        release.url = self.url.or(release.url.take());
        release.reference = self.reference.or(release.reference.take());
        release.date_started = self.date_started.or(release.date_started);
        release.date_released = self.date_released.or(release.date_released);
    }
}

/// Makes a release for projects, or adds the projects to the one that exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseCreate {
    pub version: String,
    /// Slugs or ids.
    pub projects: Vec<String>,
    #[serde(flatten)]
    pub fields: ReleaseFields,
}

/// A release made or found, and whether it was new.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseCreated {
    pub created: bool,
    pub release: ReleaseView,
}

impl Operation for ReleaseCreate {
    type Answer = ReleaseCreated;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<ReleaseCreated, ManageError> {
        actor.require_scope("project:releases")?;
        check_version(&self.version)?;
        if self.projects.is_empty() {
            return Err(ManageError::Invalid(
                "projects: name at least one project".into(),
            ));
        }
        let projects = self
            .projects
            .iter()
            .map(|p| h.project(actor, p))
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<u64> = projects.iter().map(|p| p.id).collect();
        let now = crate::time::now();
        let (release, created) = h.write(move |txn| {
            let existing = releases::get(&txn.open_table(RELEASES)?, &self.version)?;
            let created = existing.is_none();
            let mut release = existing.unwrap_or_else(|| Release {
                version: self.version.clone(),
                date_created: now,
                ..Default::default()
            });
            self.fields.apply(&mut release, ids);
            releases::put(txn, &release)?;
            Ok((release, created))
        })?;
        let visible = h.visible_projects(actor)?;
        Ok(ReleaseCreated {
            created,
            release: view(h, &release, &visible)?,
        })
    }
}

/// Changes a release: finalizes it (`date_released`), sets its URL, reference or projects.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReleaseUpdate {
    pub version: String,
    /// Projects to add (slugs or ids).
    pub projects: Option<Vec<String>>,
    #[serde(flatten)]
    pub fields: ReleaseFields,
}

impl Operation for ReleaseUpdate {
    type Answer = ReleaseView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<ReleaseView, ManageError> {
        actor.require_scope("project:releases")?;
        let (release, _) = visible_release(h, actor, &self.version)?;
        let added = self
            .projects
            .iter()
            .flatten()
            .map(|p| h.project(actor, p).map(|p| p.id))
            .collect::<Result<Vec<_>, _>>()?;
        let version = release.version.clone();
        let release = h.write(move |txn| {
            let mut release =
                releases::get(&txn.open_table(RELEASES)?, &version)?.ok_or_else(|| {
                    crate::store::StoreError::NotFound(format!("no release '{version}'"))
                })?;
            self.fields.apply(&mut release, added);
            releases::put(txn, &release)?;
            Ok(release)
        })?;
        view(h, &release, &h.visible_projects(actor)?)
    }
}

/// Deletes a release no event refers to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseDelete {
    pub version: String,
}

impl Operation for ReleaseDelete {
    type Answer = ReleaseView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<ReleaseView, ManageError> {
        actor.require_scope("project:releases")?;
        let (release, visible) = visible_release(h, actor, &self.version)?;
        if visible.len() < release.projects.len() {
            return Err(ManageError::Forbidden(
                "this release also belongs to projects you may not change".into(),
            ));
        }
        let shown = view(h, &release, &visible)?;
        if shown.events > 0 {
            return Err(ManageError::Invalid(format!(
                "version: release '{}' has events and cannot be removed",
                release.version
            )));
        }
        h.write(move |txn| releases::delete(txn, &release))?;
        Ok(shown)
    }
}

/// Records a deploy of a release to an environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployCreate {
    pub version: String,
    pub environment: String,
    pub name: Option<String>,
    pub url: Option<String>,
    pub date_started: Option<f64>,
    pub date_finished: Option<f64>,
}

impl Operation for DeployCreate {
    type Answer = DeployView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<DeployView, ManageError> {
        actor.require_scope("project:releases")?;
        let environment = self.environment.trim().to_string();
        if environment.is_empty()
            || environment.chars().count() > MAX_ENVIRONMENT
            || environment.chars().any(|c| c.is_control() || c == '/')
        {
            return Err(ManageError::Invalid(format!(
                "environment: give a name of at most {MAX_ENVIRONMENT} characters without slashes"
            )));
        }
        let (release, _) = visible_release(h, actor, &self.version)?;
        let version = release.version;
        let deploy = h.write(move |txn| {
            let mut release =
                releases::get(&txn.open_table(RELEASES)?, &version)?.ok_or_else(|| {
                    crate::store::StoreError::NotFound(format!("no release '{version}'"))
                })?;
            release.last_deploy += 1;
            let deploy = Deploy {
                id: release.last_deploy,
                environment,
                name: self.name.filter(|n| !n.is_empty()),
                url: self.url.filter(|u| !u.is_empty()),
                date_started: self.date_started,
                date_finished: self.date_finished.unwrap_or_else(crate::time::now),
            };
            release.deploys.push(deploy.clone());
            if release.deploys.len() > MAX_DEPLOYS {
                release.deploys.remove(0);
            }
            releases::put(txn, &release)?;
            Ok(deploy)
        })?;
        Ok(DeployView::from(&deploy))
    }
}

/// A release's deploys, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployList {
    pub version: String,
}

impl Operation for DeployList {
    type Answer = Vec<DeployView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<DeployView>, ManageError> {
        may_read(actor)?;
        let (release, _) = visible_release(h, actor, &self.version)?;
        Ok(release.deploys.iter().rev().map(DeployView::from).collect())
    }
}
