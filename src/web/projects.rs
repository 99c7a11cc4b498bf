//! The projects page: every project the visitor may see, with its unresolved issues and a
//! sparkline of the last 24 hours.

use askama::Template;
use redb::ReadableDatabase;

use super::snapshot::project_issues;
use super::{Nav, Page, Visitor, Web, charts, manage_error, now_hour, render, store_error};
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
