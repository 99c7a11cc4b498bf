//! Triage on the issue page: its activity as a timeline with comments (links made clickable,
//! everything else escaped), assigning it, and the forms that change it. Every form is a
//! management operation applied as the signed-in user.

use hyper::StatusCode;

use super::{Form, Nav, Page, Visitor, Web, ago, message, not_found, redirect};
use crate::manage::activity::{
    ActivityView, CommentChange, IssueActivity, IssueAssign, IssueComment,
};
use crate::store::USERS;
use crate::store::projects::Project;

/// A piece of a comment: text, or a link (http or https only) shown as a link.
pub struct Piece {
    pub text: String,
    pub link: bool,
}

/// Splits plain text into text and the http(s) URLs in it. Nothing else becomes markup: the
/// template escapes both kinds.
pub fn linkify(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = ["https://", "http://"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        let url_len = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(rest.len() - at);
        // A sentence's closing punctuation is not part of the link.
        let url = rest[at..at + url_len].trim_end_matches(['.', ',', ')', ';', ':', '!', '?']);
        if url.len() <= "https://".len() {
            out.push(Piece {
                text: rest[..at + url_len].to_string(),
                link: false,
            });
            rest = &rest[at + url_len..];
            continue;
        }
        if at > 0 {
            out.push(Piece {
                text: rest[..at].to_string(),
                link: false,
            });
        }
        out.push(Piece {
            text: url.to_string(),
            link: true,
        });
        rest = &rest[at + url.len()..];
    }
    if !rest.is_empty() {
        out.push(Piece {
            text: rest.to_string(),
            link: false,
        });
    }
    out
}

/// One entry of the timeline.
pub struct Entry {
    pub id: u64,
    pub kind: String,
    pub who: String,
    pub text: String,
    pub at: String,
    pub at_exact: String,
    pub comment: Option<Vec<Piece>>,
    /// The comment's raw text, for its edit form.
    pub raw: String,
    pub edited: bool,
    /// The visitor wrote it (and may edit or delete it).
    pub mine: bool,
    pub event_id: Option<String>,
}

/// The issue's timeline as the visitor sees it, newest last.
pub fn timeline(web: &Web, visitor: &Visitor, project: &Project, issue: u64) -> Vec<Entry> {
    let op = IssueActivity {
        project: project.slug.clone(),
        issue,
    };
    let list = match web.handle.run(&visitor.actor(), op) {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!("activity of issue {issue} not shown: {e}");
            return Vec::new();
        }
    };
    list.into_iter()
        .map(|a: ActivityView| Entry {
            mine: a.by == "user" && a.who == visitor.user.email,
            who: if a.who.is_empty() {
                if a.by == "cli" {
                    "the command line".into()
                } else {
                    a.by.clone()
                }
            } else {
                a.who.clone()
            },
            at: ago(a.timestamp),
            at_exact: a.at.clone(),
            comment: a.comment.as_deref().map(linkify),
            raw: a.comment.clone().unwrap_or_default(),
            edited: a.edited.is_some(),
            id: a.id,
            kind: a.kind,
            text: a.text,
            event_id: a.event_id,
        })
        .collect()
}

/// Who an issue of the project can be assigned to: active users who see it.
pub fn assignable(web: &Web, project: &Project) -> Vec<String> {
    let read = || -> Result<Vec<String>, crate::store::StoreError> {
        use redb::ReadableDatabase;
        let txn = web.handle.db.begin_read()?;
        let all = crate::store::users::list(&txn.open_table(USERS)?)?;
        Ok(all
            .into_iter()
            .filter(|u| project.admits(u))
            .map(|u| u.email)
            .collect())
    };
    read().unwrap_or_default()
}

/// Initials for an assignee's badge: "ab" for alice.baker@…, "a" for alice@….
pub fn initials(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local
        .split(['.', '_', '-', '+'])
        .filter_map(|p| p.chars().next())
        .take(2)
        .collect::<String>()
        .to_uppercase()
}

fn issue_link(project: &Project, issue: u64) -> String {
    format!("/projects/{}/issues/{issue}/", project.slug)
}

/// `POST …/issues/{id}/assign`: `to` is an email, `me`, or empty (unassign).
pub async fn assign(web: &Web, visitor: &Visitor, slug: &str, id: &str, form: &Form) -> Page {
    let (Some(project), Ok(issue)) = (web.visible_project(visitor, slug), id.parse::<u64>()) else {
        return not_found(Nav::of(visitor));
    };
    let to = match form.field("to").as_str() {
        "" => None,
        "me" => Some(visitor.user.email.clone()),
        email => Some(email.to_string()),
    };
    let op = IssueAssign {
        project: project.slug.clone(),
        issue,
        to,
    };
    match web.act(visitor, op).await {
        Ok(_) => redirect(&format!("{}#activity", issue_link(&project, issue)), &[]),
        Err(page) => page,
    }
}

/// `POST …/issues/{id}/comments[/{comment}/edit|delete]`.
pub async fn comment(
    web: &Web,
    visitor: &Visitor,
    slug: &str,
    id: &str,
    action: &[&str],
    form: &Form,
) -> Page {
    let (Some(project), Ok(issue)) = (web.visible_project(visitor, slug), id.parse::<u64>()) else {
        return not_found(Nav::of(visitor));
    };
    let text = form.get("text").unwrap_or("").to_string();
    let change = match action {
        [] => CommentChange::Add { text },
        [entry, "edit"] => match entry.parse() {
            Ok(id) => CommentChange::Edit { id, text },
            Err(_) => return not_found(Nav::of(visitor)),
        },
        [entry, "delete"] => match entry.parse() {
            Ok(id) => CommentChange::Delete { id },
            Err(_) => return not_found(Nav::of(visitor)),
        },
        _ => return not_found(Nav::of(visitor)),
    };
    let op = IssueComment {
        project: project.slug.clone(),
        issue,
        change,
    };
    match web.act(visitor, op).await {
        Ok(_) => redirect(&format!("{}#activity", issue_link(&project, issue)), &[]),
        Err(page) => page,
    }
}

/// A page that asks before something that cannot be undone, with the form that does it.
pub struct Ask<'a> {
    pub heading: &'a str,
    pub text: &'a str,
    /// Where the form posts.
    pub action: &'a str,
    /// The button's label ("Yes, delete").
    pub button: &'a str,
    /// Where Cancel leads.
    pub back: &'a str,
    /// Fields the form carries (what to act on).
    pub hidden: &'a [(&'a str, &'a str)],
}

pub fn confirm(visitor: &Visitor, ask: Ask<'_>) -> Page {
    #[derive(askama::Template)]
    #[template(path = "confirm.html")]
    struct Confirm<'a> {
        nav: Nav,
        heading: &'a str,
        text: &'a str,
        action: &'a str,
        button: &'a str,
        back: &'a str,
        hidden: &'a [(&'a str, &'a str)],
    }
    super::render(Confirm {
        hidden: ask.hidden,
        nav: Nav::of(visitor),
        heading: ask.heading,
        text: ask.text,
        action: ask.action,
        button: ask.button,
        back: ask.back,
    })
}

/// `GET …/issues/{id}/delete`: asks first.
pub fn delete_issue_page(web: &Web, visitor: &Visitor, slug: &str, id: &str) -> Page {
    let (Some(project), Ok(issue)) = (web.visible_project(visitor, slug), id.parse::<u64>()) else {
        return not_found(Nav::of(visitor));
    };
    let op = crate::manage::issues::IssueShow {
        project: project.slug.clone(),
        issue,
    };
    let found = match web.handle.run(&visitor.actor(), op) {
        Ok(found) => found,
        Err(e) => return super::manage_error(Nav::of(visitor), &e),
    };
    if !visitor.actor().may_own(&project) {
        return message(
            StatusCode::FORBIDDEN,
            Nav::of(visitor),
            "Not yours to delete",
            &format!(
                "Only an owner of {} or an admin may delete its issues.",
                project.slug
            ),
        );
    }
    confirm(
        visitor,
        Ask {
            heading: &format!("Delete issue {}?", found.id),
            text: &format!(
                "\"{}\" and its {} stored events will be deleted for good. A new event with the same fingerprint opens a new issue.",
                found.title, found.stored
            ),
            action: &format!("/projects/{}/issues/{issue}/delete", project.slug),
            button: "Yes, delete it",
            back: &issue_link(&project, issue),
            hidden: &[],
        },
    )
}

/// `POST …/issues/{id}/delete`.
pub async fn delete_issue(web: &Web, visitor: &Visitor, slug: &str, id: &str) -> Page {
    let (Some(project), Ok(issue)) = (web.visible_project(visitor, slug), id.parse::<u64>()) else {
        return not_found(Nav::of(visitor));
    };
    let op = crate::manage::issues::IssueDelete {
        project: project.slug.clone(),
        issue,
    };
    match web.act(visitor, op).await {
        Ok(_) => redirect(&format!("/projects/{}/", project.slug), &[]),
        Err(page) => page,
    }
}

/// The list's "Merge selected": asks first (naming the issue they merge into: the one with
/// the most events), then merges.
pub async fn merge(web: &Web, visitor: &Visitor, project: &Project, form: &Form) -> Page {
    let ids: Vec<u64> = form
        .all("issue")
        .filter_map(|i| i.parse::<u64>().ok())
        .collect();
    let mut found = Vec::new();
    for &issue in &ids {
        let op = crate::manage::issues::IssueShow {
            project: project.slug.clone(),
            issue,
        };
        match web.handle.run(&visitor.actor(), op) {
            Ok(view) => found.push(view),
            Err(e) => return super::manage_error(Nav::of(visitor), &e),
        }
    }
    found.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
    let Some(into) = found.first() else {
        return not_found(Nav::of(visitor));
    };
    if found.len() < 2 {
        return message(
            StatusCode::BAD_REQUEST,
            Nav::of(visitor),
            "Nothing to merge",
            "Tick two or more issues to merge them.",
        );
    }
    let from: Vec<u64> = found[1..].iter().map(|i| i.id).collect();
    if form.get("confirm") != Some("yes") {
        let named: Vec<String> = found[1..]
            .iter()
            .map(|i| format!("#{} \"{}\" ({} events)", i.id, i.title, i.count))
            .collect();
        let ids: Vec<String> = found.iter().map(|i| i.id.to_string()).collect();
        let hidden: Vec<(&str, &str)> = std::iter::once(("action", "merge"))
            .chain(ids.iter().map(|i| ("issue", i.as_str())))
            .collect();
        return confirm(
            visitor,
            Ask {
                heading: &format!("Merge into issue {}?", into.id),
                text: &format!(
                    "{} will be merged into #{} \"{}\" ({} events): their events, counts and activity move to it, and new events with their fingerprints join it. This cannot be undone.",
                    named.join(", "),
                    into.id,
                    into.title,
                    into.count
                ),
                action: &format!("/projects/{}/issues/bulk", project.slug),
                button: "Yes, merge them",
                back: &format!("/projects/{}/", project.slug),
                hidden: &hidden,
            },
        );
    }
    let op = crate::manage::activity::IssueMerge {
        project: project.slug.clone(),
        into: into.id,
        from,
    };
    match web.act(visitor, op).await {
        Ok(_) => redirect(&issue_link(project, into.id), &[]),
        Err(page) => page,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(pieces: &[Piece]) -> Vec<(bool, &str)> {
        pieces.iter().map(|p| (p.link, p.text.as_str())).collect()
    }

    #[test]
    fn links_in_comments_are_found_and_nothing_else_is() {
        assert_eq!(
            render(&linkify("see https://example.com/a?b=1. Then <b>x</b>")),
            [
                (false, "see "),
                (true, "https://example.com/a?b=1"),
                (false, ". Then <b>x</b>")
            ]
        );
        assert_eq!(
            render(&linkify("javascript:alert(1) http:// done")),
            [(false, "javascript:alert(1) http://"), (false, " done")]
        );
        assert_eq!(
            render(&linkify("(http://a.example/x)")),
            [(false, "("), (true, "http://a.example/x"), (false, ")")]
        );
        assert_eq!(initials("alice.baker@example.com"), "AB");
        assert_eq!(initials("bob@example.com"), "B");
    }
}
