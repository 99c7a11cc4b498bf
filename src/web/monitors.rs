//! A project's cron monitors page: each monitor's status, schedule and time zone, when the
//! next check-in is expected, and a timeline of its latest check-ins with their durations;
//! mute and delete buttons act through the management layer.

use askama::Template;

use super::releases::when;
use super::{Form, Nav, Page, Visitor, Web, manage_error, not_found, redirect, render};
use crate::manage::monitors::{MonitorDelete, MonitorList, MonitorMute, MonitorView};

#[derive(Template)]
#[template(path = "monitors.html")]
struct MonitorsPage {
    nav: Nav,
    slug: String,
    project_name: String,
    monitors: Vec<MonitorRow>,
}

struct MonitorRow {
    slug: String,
    status: String,
    muted: bool,
    schedule: String,
    last_checkin: String,
    next_expected: String,
    /// (status, when, duration) newest first.
    checkins: Vec<(String, String, String)>,
}

/// A duration in seconds as "1.2 s" or "3 min 4 s".
fn duration(d: Option<f64>) -> String {
    match d {
        None => "–".into(),
        Some(s) if s < 60.0 => format!("{:.1} s", s),
        Some(s) => format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64),
    }
}

impl From<MonitorView> for MonitorRow {
    fn from(m: MonitorView) -> MonitorRow {
        let next = match &m.next_expected {
            Some(t) => format!("{} ({t})", when(Some(t))),
            None => "–".into(),
        };
        MonitorRow {
            status: m.status.clone(),
            muted: m.muted,
            schedule: format!(
                "{} ({}, margin {} min, max runtime {} min)",
                m.schedule, m.timezone, m.checkin_margin, m.max_runtime
            ),
            last_checkin: when(m.last_checkin.as_deref()),
            next_expected: next,
            checkins: m
                .checkins
                .iter()
                .map(|c| (c.status.clone(), c.started.clone(), duration(c.duration)))
                .collect(),
            slug: m.slug,
        }
    }
}

pub async fn monitors(web: &Web, visitor: &Visitor, slug: &str) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let op = MonitorList {
        project: project.slug.clone(),
    };
    match web.handle.run_async(visitor.actor(), op).await {
        Ok(list) => render(MonitorsPage {
            nav: Nav::of(visitor),
            slug: project.slug.clone(),
            project_name: project.name.clone(),
            monitors: list.into_iter().map(MonitorRow::from).collect(),
        }),
        Err(e) => manage_error(Nav::of(visitor), &e),
    }
}

/// `mute`, `unmute` or `delete` a monitor named by the form's `monitor`.
pub async fn action(web: &Web, visitor: &Visitor, slug: &str, action: &str, form: &Form) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let monitor = form.field("monitor");
    let id = project.id.to_string();
    let done = match action {
        "mute" | "unmute" => {
            let op = MonitorMute {
                project: id,
                slug: monitor,
                muted: action == "mute",
            };
            web.act(visitor, op).await.map(drop)
        }
        "delete" => {
            let op = MonitorDelete {
                project: id,
                slug: monitor,
            };
            web.act(visitor, op).await.map(drop)
        }
        _ => return not_found(Nav::of(visitor)),
    };
    match done {
        Ok(()) => redirect(&format!("/projects/{}/monitors", project.slug), &[]),
        Err(page) => page,
    }
}
