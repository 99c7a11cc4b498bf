//! A project's releases page: each version with when it was made and finalized, its first and
//! last event, its events and the issues it opened, its health (sessions, crash-free sessions
//! and users, adoption) and where it was deployed.

use askama::Template;

use super::{Nav, Page, Visitor, Web, ago, manage_error, not_found, render};
use crate::manage::releases::{ReleaseList, ReleaseView};

#[derive(Template)]
#[template(path = "releases.html")]
struct ReleasesPage {
    nav: Nav,
    slug: String,
    project_name: String,
    releases: Vec<ReleaseRow>,
}

struct ReleaseRow {
    version: String,
    created: String,
    released: String,
    first_event: String,
    last_event: String,
    events: u64,
    new_issues: u64,
    sessions: u64,
    crash_free_sessions: String,
    crash_free_users: String,
    adoption: String,
    /// (environment, name, when) of each deploy, newest first.
    deploys: Vec<(String, String, String)>,
}

/// An RFC 3339 time as "5 minutes ago", or a dash.
pub(super) fn when(t: Option<&str>) -> String {
    t.and_then(crate::time::parse_iso)
        .map(ago)
        .unwrap_or_else(|| "–".into())
}

/// A percentage as "99.5 %", or a dash when there is nothing to count.
pub(super) fn percent(p: Option<f64>) -> String {
    match p {
        Some(p) => format!("{} %", (p * 100.0).round() / 100.0),
        None => "–".into(),
    }
}

impl From<ReleaseView> for ReleaseRow {
    fn from(r: ReleaseView) -> ReleaseRow {
        ReleaseRow {
            created: when(Some(&r.date_created)),
            released: when(r.date_released.as_deref()),
            first_event: when(r.first_event.as_deref()),
            last_event: when(r.last_event.as_deref()),
            events: r.events,
            new_issues: r.new_issues,
            sessions: r.health.sessions,
            crash_free_sessions: percent(r.health.crash_free_sessions),
            crash_free_users: percent(r.health.crash_free_users),
            adoption: percent(r.health.adoption),
            deploys: r
                .deploys
                .iter()
                .map(|d| {
                    (
                        d.environment.clone(),
                        d.name.clone().unwrap_or_default(),
                        when(Some(&d.date_finished)),
                    )
                })
                .collect(),
            version: r.version,
        }
    }
}

pub async fn releases(web: &Web, visitor: &Visitor, slug: &str) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let op = ReleaseList {
        project: Some(project.slug.clone()),
    };
    match web.handle.run_async(visitor.actor(), op).await {
        Ok(list) => render(ReleasesPage {
            nav: Nav::of(visitor),
            slug: project.slug,
            project_name: project.name,
            releases: list.into_iter().map(ReleaseRow::from).collect(),
        }),
        Err(e) => manage_error(Nav::of(visitor), &e),
    }
}
