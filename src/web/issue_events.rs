//! An issue's events as a table: when each happened and arrived, its id, release,
//! environment, user, message and the browser, system and URL it came from, searched with the
//! grammar of `manage::search` (tags, `user.id:`, `release:`, free text), a page at a time.

use std::collections::HashMap;

use askama::Template;

use super::{Nav, Page, Visitor, Web, ago, manage_error, not_found, render};
use crate::manage::ManageError;
use crate::manage::issues::{EventList, EventSummary, IssueShow};

/// Events on one page of the table.
const PAGE_SIZE: usize = 50;

struct EventRow {
    id: String,
    happened: String,
    happened_exact: String,
    received_exact: String,
    release: String,
    environment: String,
    user: String,
    message: String,
    tags: Vec<(String, String)>,
}

impl From<EventSummary> for EventRow {
    fn from(e: EventSummary) -> EventRow {
        let happened = crate::time::parse_iso(&e.timestamp)
            .map(ago)
            .unwrap_or_default();
        EventRow {
            id: e.event_id.to_string(),
            happened,
            happened_exact: e.timestamp,
            received_exact: e.received,
            release: e.release.unwrap_or_default(),
            environment: e.environment.unwrap_or_default(),
            user: e.user.unwrap_or_default(),
            message: if e.message.is_empty() {
                e.title
            } else {
                e.message
            },
            tags: e.tags,
        }
    }
}

#[derive(Template)]
#[template(path = "issue_events.html")]
struct EventsPage {
    nav: Nav,
    slug: String,
    issue: u64,
    title: String,
    q: String,
    events: Vec<EventRow>,
    first_shown: usize,
    /// Said when the search stopped before the oldest event.
    partial: Option<String>,
    prev_page: Option<String>,
    next_page: Option<String>,
}

pub fn events_page(
    web: &Web,
    visitor: &Visitor,
    slug: &str,
    id: &str,
    query: &HashMap<String, String>,
) -> Page {
    let Ok(issue) = id.parse::<u64>() else {
        return not_found(Nav::of(visitor));
    };
    let actor = visitor.actor();
    let shown = match web.handle.run(
        &actor,
        IssueShow {
            project: slug.to_string(),
            issue,
        },
    ) {
        Ok(shown) => shown,
        Err(e) => return manage_error(Nav::of(visitor), &e),
    };
    let q = query
        .get("q")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let url = |page: usize| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            ser.append_pair("q", &q);
        }
        if page > 0 {
            ser.append_pair("page", &page.to_string());
        }
        format!("/projects/{slug}/issues/{issue}/events/?{}", ser.finish())
    };
    let op = EventList {
        project: slug.to_string(),
        issue,
        query: Some(q.clone()),
        offset: page * PAGE_SIZE,
        limit: Some(PAGE_SIZE),
    };
    let mut nav = Nav::of(visitor);
    let found = match web.handle.run(&actor, op) {
        Ok(found) => Some(found),
        Err(ManageError::Invalid(why)) => {
            nav.error = Some(why);
            None
        }
        Err(e) => return manage_error(nav, &e),
    };
    let (events, more, partial) = match found {
        Some(p) => (
            p.events,
            p.more,
            (!p.complete).then(|| {
                format!(
                    "Searched the newest {} stored events of this issue; older ones were not read.",
                    p.examined
                )
            }),
        ),
        None => (Vec::new(), false, None),
    };
    render(EventsPage {
        nav,
        slug: slug.to_string(),
        issue,
        title: shown.title,
        q: q.clone(),
        first_shown: page * PAGE_SIZE + 1,
        events: events.into_iter().map(EventRow::from).collect(),
        partial,
        prev_page: (page > 0).then(|| url(page - 1)),
        next_page: more.then(|| url(page + 1)),
    })
}
