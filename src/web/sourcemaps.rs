//! A project's source-map uploads: each artifact bundle with its size, upload time, release,
//! debug ids and files, and a button that deletes it (its maps then no longer apply).

use askama::Template;

use super::{Form, Nav, Page, Visitor, Web, ago, manage_error, not_found, render};
use crate::manage::artifacts::{BundleDelete, BundleList, BundleView};

#[derive(Template)]
#[template(path = "sourcemaps.html")]
struct UploadsPage {
    nav: Nav,
    slug: String,
    project_name: String,
    uploads: Vec<(BundleView, String)>,
}

/// The uploads page, under `nav` (which may say what the last delete came to).
pub async fn sourcemaps(web: &Web, visitor: &Visitor, slug: &str, nav: Nav) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(nav);
    };
    let op = BundleList {
        project: project.slug.clone(),
    };
    match web.handle.run_async(visitor.actor(), op).await {
        Ok(list) => render(UploadsPage {
            nav,
            slug: project.slug,
            project_name: project.name,
            uploads: list
                .into_iter()
                .map(|b| {
                    let when = crate::time::parse_iso(&b.uploaded)
                        .map(ago)
                        .unwrap_or_default();
                    (b, when)
                })
                .collect(),
        }),
        Err(e) => manage_error(nav, &e),
    }
}

/// Deletes an upload, then shows the page again.
pub async fn delete(web: &Web, visitor: &Visitor, slug: &str, form: &Form) -> Page {
    let mut nav = Nav::of(visitor);
    let op = BundleDelete {
        project: slug.to_string(),
        id: form.get("id").unwrap_or("").to_string(),
    };
    match web.handle.run_async(visitor.actor(), op).await {
        Ok(b) => nav.flash = Some(format!("The upload of {} files is deleted.", b.files)),
        Err(e) => return manage_error(nav, &e),
    }
    sourcemaps(web, visitor, slug, nav).await
}
