//! The projects page: every project the visitor may see, with its unresolved issues and a
//! sparkline of the last 24 hours.

use askama::Template;
use redb::ReadableDatabase;

use super::snapshot::project_issues;
use hyper::StatusCode;

use super::{
    Form, Nav, Page, Visitor, Web, charts, manage_error, message, not_found, now_hour, redirect,
    render, store_error,
};
use crate::store::issues::Status;
use crate::store::{PROJECT_HOURS, StoreError};

struct ProjectRow {
    slug: String,
    name: String,
    unresolved: usize,
    spark: String,
    events_24h: u64,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    nav: Nav,
    projects: Vec<ProjectRow>,
}

/// `POST /projects/new`: an admin makes a project, then sees its settings (the DSN).
pub async fn create(web: &Web, visitor: &Visitor, form: &Form) -> Page {
    let op = crate::manage::projects::ProjectCreate {
        name: form.field("name"),
    };
    match web.act(visitor, op).await {
        Ok(p) => redirect(&format!("/projects/{}/settings", p.slug), &[]),
        Err(page) => page,
    }
}

/// `GET /projects/{slug}/delete`: asks first.
pub fn delete_page(web: &Web, visitor: &Visitor, slug: &str) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    if !visitor.user.is_admin {
        return message(
            StatusCode::FORBIDDEN,
            Nav::of(visitor),
            "Not yours to delete",
            "Only an admin may delete projects.",
        );
    }
    super::triage::confirm(
        visitor,
        super::triage::Ask {
            heading: &format!("Delete {}?", project.name),
            text: &format!(
                "The project {} is deleted for good with its issues, its {} stored events, its keys (SDKs using its DSN are refused from then on) and its settings.",
                project.slug, project.stored
            ),
            action: &format!("/projects/{}/delete", project.slug),
            button: "Yes, delete the project",
            back: &format!("/projects/{}/settings", project.slug),
            hidden: &[],
        },
    )
}

/// `POST /projects/{slug}/delete`, from the confirmation page.
pub async fn delete(web: &Web, visitor: &Visitor, slug: &str, form: &Form) -> Page {
    let op = crate::manage::projects::ProjectDelete {
        project: slug.to_string(),
        confirm: form.get("confirm") == Some("yes"),
    };
    match web.act(visitor, op).await {
        Ok(_) => redirect("/", &[]),
        Err(page) => page,
    }
}

pub fn projects(web: &Web, visitor: &Visitor) -> Page {
    let visible = match web.handle.visible_projects(&visitor.actor()) {
        Ok(visible) => visible,
        Err(e) => return manage_error(Nav::of(visitor), &e),
    };
    let build = || -> Result<Vec<ProjectRow>, StoreError> {
        let txn = web.handle.db.begin_read()?;
        let hours_table = txn.open_table(PROJECT_HOURS)?;
        let now = now_hour();
        let mut rows = Vec::new();
        for p in visible {
            let issues = project_issues(web, p.id)?;
            let mut points = Vec::new();
            for row in hours_table.range((p.id, now.saturating_sub(23))..=(p.id, now))? {
                let (k, v) = row?;
                points.push((k.value().1, v.value()));
            }
            let counts = charts::hourly(&points, now, 24);
            rows.push(ProjectRow {
                slug: p.slug.clone(),
                name: p.name.clone(),
                unresolved: issues
                    .issues
                    .iter()
                    .filter(|i| i.status == Status::Unresolved)
                    .count(),
                events_24h: counts.iter().sum(),
                spark: charts::bars(&counts, 120, 24, "spark"),
            });
        }
        Ok(rows)
    };
    match build() {
        Ok(projects) => render(ProjectsPage {
            nav: Nav::of(visitor),
            projects,
        }),
        Err(e) => store_error(Nav::of(visitor), e),
    }
}
