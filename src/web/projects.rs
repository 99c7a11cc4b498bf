//! The projects page: every project the visitor may see, with its unresolved issues and a
//! chart of its events over a chosen range (by the events' own time; the last hour by
//! arrival, from the newest stored events).

use askama::Template;
use redb::{ReadableDatabase, ReadableTable};

use super::snapshot::project_issues;
use hyper::StatusCode;

use super::charts::Range;
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
    chart: String,
    events: u64,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    nav: Nav,
    projects: Vec<ProjectRow>,
    range: Range,
    ranges: &'static [Range],
}

/// Arrivals read (newest first) for the last hour's charts.
const RECENT_ARRIVALS_READ: usize = 50_000;

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

pub fn projects(web: &Web, visitor: &Visitor, range: &str) -> Page {
    let range = Range::named(range);
    let visible = match web.handle.visible_projects(&visitor.actor()) {
        Ok(visible) => visible,
        Err(e) => return manage_error(Nav::of(visitor), &e),
    };
    let build = || -> Result<Vec<ProjectRow>, StoreError> {
        let txn = web.handle.db.begin_read()?;
        let hours_table = txn.open_table(PROJECT_HOURS)?;
        let now = now_hour();
        let at = crate::time::now();
        let mut recent: std::collections::HashMap<u64, Vec<f64>> = Default::default();
        if range.hours_per_bucket == 0 {
            let arrivals = txn.open_table(crate::store::ARRIVALS)?;
            for row in arrivals.iter()?.rev().take(RECENT_ARRIVALS_READ) {
                let (_, v) = row?;
                let Some(a) = crate::store::tables::ArrivalRecord::decode(v.value()) else {
                    continue;
                };
                if (a.received as f64) < at - 3600.0 {
                    break;
                }
                recent.entry(a.project).or_default().push(a.received as f64);
            }
        }
        let mut rows = Vec::new();
        for p in visible {
            let issues = project_issues(web, p.id)?;
            let from = range.first_hour(now).min(now.saturating_sub(23));
            let mut points = Vec::new();
            for row in hours_table.range((p.id, from)..=(p.id, now))? {
                let (k, v) = row?;
                points.push((k.value().1, v.value()));
            }
            let counts = charts::hourly(&points, now, 24);
            let ranged = match recent.get(&p.id) {
                _ if range.hours_per_bucket > 0 => range.bucket_hours(&points, now),
                Some(times) => range.bucket_times(times, at),
                None => vec![0; range.buckets as usize],
            };
            rows.push(ProjectRow {
                slug: p.slug.clone(),
                name: p.name.clone(),
                unresolved: issues
                    .issues
                    .iter()
                    .filter(|i| i.status == Status::Unresolved)
                    .count(),
                events: ranged.iter().sum(),
                chart: charts::timeline(&ranged, range.start(at), range.bucket_secs()),
                spark: charts::bars(&counts, 120, 24, "spark"),
            });
        }
        Ok(rows)
    };
    match build() {
        Ok(projects) => render(ProjectsPage {
            nav: Nav::of(visitor),
            projects,
            range,
            ranges: &charts::RANGES,
        }),
        Err(e) => store_error(Nav::of(visitor), e),
    }
}
