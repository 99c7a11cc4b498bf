//! A project's privacy settings (what is scrubbed from its events) and inbound filters (which
//! events it does not want): shown to its members, changed by its owners. A change applies to
//! events that arrive after it; stored events stay as they are.

use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::event::filters::{self, InboundFilters};
use crate::event::scrub::{self, Method, Privacy, Rule};
use crate::store::backup::Progress;
use crate::store::projects::Project;

/// Longest list of names, rules or patterns a project keeps.
const MAX_ENTRIES: usize = 100;

/// Shows or changes what is scrubbed from a project's events.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct ProjectScrub {
    pub project: String,
    /// The default rules on or off.
    pub scrub: Option<bool>,
    pub scrub_ip: Option<bool>,
    pub add_sensitive: Vec<String>,
    pub remove_sensitive: Vec<String>,
    pub add_safe: Vec<String>,
    pub remove_safe: Vec<String>,
    pub add_rules: Vec<Rule>,
    /// Selectors of rules to remove.
    pub remove_rules: Vec<String>,
}

/// Shows or changes a project's inbound filters.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct ProjectFilters {
    pub project: String,
    pub browser_extensions: Option<bool>,
    pub localhost: Option<bool>,
    pub web_crawlers: Option<bool>,
    pub legacy_browsers: Option<bool>,
    pub add_error_messages: Vec<String>,
    pub remove_error_messages: Vec<String>,
    pub add_releases: Vec<String>,
    pub remove_releases: Vec<String>,
    /// `Some(None)` keeps every event again.
    pub sample_rate: Option<Option<f64>>,
}

/// A project's privacy settings and filters as they stand (the salt is not shown).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivacyView {
    pub project: String,
    pub scrub: bool,
    pub scrub_ip: bool,
    pub sensitive_fields: Vec<String>,
    pub safe_fields: Vec<String>,
    pub rules: Vec<Rule>,
    /// The names always scrubbed while `scrub` is on.
    pub default_sensitive_fields: Vec<String>,
    pub filters: InboundFilters,
}

impl PrivacyView {
    pub fn of(project: &Project) -> PrivacyView {
        let p = &project.privacy;
        PrivacyView {
            project: project.slug.clone(),
            scrub: p.scrub,
            scrub_ip: p.scrub_ip,
            sensitive_fields: p.sensitive_fields.clone(),
            safe_fields: p.safe_fields.clone(),
            rules: p.rules.clone(),
            default_sensitive_fields: scrub::SENSITIVE.iter().map(|s| s.to_string()).collect(),
            filters: project.filters.clone(),
        }
    }
}

/// Adds and removes names in a list, keeping it free of duplicates (any case).
fn edit(list: &mut Vec<String>, add: &[String], remove: &[String]) {
    list.retain(|v| !remove.iter().any(|r| r.eq_ignore_ascii_case(v)));
    for a in add {
        if !list.iter().any(|v| v.eq_ignore_ascii_case(a)) {
            list.push(a.clone());
        }
    }
}

fn names(what: &str, list: &[String]) -> Result<Vec<String>, ManageError> {
    list.iter()
        .map(|n| {
            let n = n.trim();
            if n.is_empty() || n.len() > 100 {
                Err(ManageError::Invalid(format!(
                    "{what}: '{n}' must have 1 to 100 characters"
                )))
            } else {
                Ok(n.to_string())
            }
        })
        .collect()
}

fn too_many(what: &str, n: usize) -> Result<(), ManageError> {
    if n > MAX_ENTRIES {
        Err(ManageError::Invalid(format!(
            "{what}: at most {MAX_ENTRIES} entries"
        )))
    } else {
        Ok(())
    }
}

/// A rule given as `SELECTOR=METHOD` on the command line or in a form.
pub fn parse_rule(text: &str) -> Result<Rule, ManageError> {
    let (selector, method) = text.rsplit_once('=').ok_or_else(|| {
        ManageError::Invalid(format!(
            "rule '{text}': write SELECTOR=METHOD (for example $http.headers.x-custom=remove)"
        ))
    })?;
    let method = Method::parse(method.trim()).ok_or_else(|| {
        ManageError::Invalid(format!("rule '{text}': the method is remove, mask or hash"))
    })?;
    Ok(Rule {
        selector: selector.trim().to_string(),
        method,
    })
}

impl Operation for ProjectScrub {
    type Answer = PrivacyView;
    const CHANGES_KEYS: bool = true;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<PrivacyView, ManageError> {
        actor.require_scope("project:read")?;
        // Nothing asked but the project: show it.
        let asked = ProjectScrub {
            project: String::new(),
            ..self.clone()
        };
        if asked == ProjectScrub::default() {
            return Ok(PrivacyView::of(&h.project(actor, &self.project)?));
        }
        actor.require_scope("project:write")?;
        for rule in &self.add_rules {
            scrub::check_selector(&rule.selector)
                .map_err(|e| ManageError::Invalid(e.to_string()))?;
        }
        let add_sensitive = names("sensitive field", &self.add_sensitive)?;
        let add_safe = names("safe field", &self.add_safe)?;
        let change = self.clone();
        let mut privacy: Privacy = h.project(actor, &self.project)?.privacy;
        {
            let privacy = &mut privacy;
            if let Some(on) = change.scrub {
                privacy.scrub = on;
            }
            if let Some(on) = change.scrub_ip {
                privacy.scrub_ip = on;
            }
            edit(
                &mut privacy.sensitive_fields,
                &add_sensitive,
                &change.remove_sensitive,
            );
            edit(&mut privacy.safe_fields, &add_safe, &change.remove_safe);
            privacy
                .rules
                .retain(|r| !change.remove_rules.contains(&r.selector));
            for rule in change.add_rules {
                privacy.rules.retain(|r| r.selector != rule.selector);
                privacy.rules.push(rule);
            }
            if privacy.salt.is_empty() {
                privacy.salt = crate::ids::hex(&crate::ids::random_bytes());
            }
        }
        too_many("sensitive fields", privacy.sensitive_fields.len())?;
        too_many("safe fields", privacy.safe_fields.len())?;
        too_many("rules", privacy.rules.len())?;
        let project = h.update_project(actor, &self.project, move |p| p.privacy = privacy)?;
        Ok(PrivacyView::of(&project))
    }
}

impl Operation for ProjectFilters {
    type Answer = PrivacyView;
    const CHANGES_KEYS: bool = true;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<PrivacyView, ManageError> {
        actor.require_scope("project:read")?;
        // Nothing asked but the project: show it.
        let asked = ProjectFilters {
            project: String::new(),
            ..self.clone()
        };
        if asked == ProjectFilters::default() {
            return Ok(PrivacyView::of(&h.project(actor, &self.project)?));
        }
        actor.require_scope("project:write")?;
        for glob in self.add_error_messages.iter().chain(&self.add_releases) {
            filters::check_glob(glob).map_err(ManageError::Invalid)?;
        }
        if let Some(Some(rate)) = self.sample_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err(ManageError::Invalid(format!(
                "sample rate {rate}: give a fraction from 0 to 1 (0.25 keeps a quarter)"
            )));
        }
        let change = self.clone();
        let mut filters = h.project(actor, &self.project)?.filters;
        {
            let f = &mut filters;
            for (slot, value) in [
                (&mut f.browser_extensions, change.browser_extensions),
                (&mut f.localhost, change.localhost),
                (&mut f.web_crawlers, change.web_crawlers),
                (&mut f.legacy_browsers, change.legacy_browsers),
            ] {
                if let Some(v) = value {
                    *slot = v;
                }
            }
            edit(
                &mut f.error_messages,
                &change.add_error_messages,
                &change.remove_error_messages,
            );
            edit(
                &mut f.releases,
                &change.add_releases,
                &change.remove_releases,
            );
            if let Some(rate) = change.sample_rate {
                f.sample_rate = rate;
            }
        }
        too_many("error message patterns", filters.error_messages.len())?;
        too_many("release patterns", filters.releases.len())?;
        let project = h.update_project(actor, &self.project, move |p| p.filters = filters)?;
        Ok(PrivacyView::of(&project))
    }
}
