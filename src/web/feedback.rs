//! A project's user feedback page: what end users wrote, newest first, with who sent it, from
//! which page, and the issue of the event it is about. The issue page shows its own feedback
//! through [`FeedbackRow`] too.

use askama::Template;

use super::{Nav, Page, Visitor, Web, ago, manage_error, not_found, render};
use crate::manage::feedback::{FeedbackList, FeedbackView};

/// Feedback shown on one page.
const PAGE: usize = 200;

#[derive(Template)]
#[template(path = "feedback.html")]
struct FeedbackPage {
    nav: Nav,
    slug: String,
    project_name: String,
    feedback: Vec<FeedbackRow>,
}

/// One feedback as the pages show it.
pub struct FeedbackRow {
    pub received: String,
    pub message: String,
    /// Name and address as one line ("Ann <ann@example.com>"), or "anonymous".
    pub from: String,
    pub url: Option<String>,
    pub issue: Option<u64>,
    pub event_id: Option<String>,
}

impl From<FeedbackView> for FeedbackRow {
    fn from(f: FeedbackView) -> FeedbackRow {
        let from = match (f.name, f.email) {
            (Some(name), Some(email)) => format!("{name} <{email}>"),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => "anonymous".into(),
        };
        FeedbackRow {
            received: crate::time::parse_iso(&f.received)
                .map(ago)
                .unwrap_or(f.received),
            message: f.message,
            from,
            // Only web addresses become links.
            url: f
                .url
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
            issue: f.issue_id,
            event_id: f.event_id.map(|id| id.to_string()),
        }
    }
}

/// The feedback of a project, or of one of its issues, for a page.
pub async fn rows(
    web: &Web,
    visitor: &Visitor,
    slug: &str,
    issue: Option<u64>,
) -> Result<Vec<FeedbackRow>, crate::manage::ManageError> {
    let op = FeedbackList {
        project: slug.to_string(),
        issue,
        limit: Some(PAGE),
    };
    let list = web.handle.run_async(visitor.actor(), op).await?;
    Ok(list.into_iter().map(FeedbackRow::from).collect())
}

pub async fn feedback(web: &Web, visitor: &Visitor, slug: &str) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    match rows(web, visitor, &project.slug, None).await {
        Ok(feedback) => render(FeedbackPage {
            nav: Nav::of(visitor),
            slug: project.slug,
            project_name: project.name,
            feedback,
        }),
        Err(e) => manage_error(Nav::of(visitor), &e),
    }
}
