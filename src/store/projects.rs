//! Projects and their client keys (the public part of a DSN).

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{KEYS, PROJECT_SLUGS, PROJECTS, StoreError, decode, encode};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Project {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub created: f64,
    /// The number the next new issue of this project gets.
    pub next_issue: u64,
    /// Events of this project still stored.
    pub stored: u64,
    /// This project's own cap on stored events; `None` uses `retention.max_events_per_project`.
    pub max_events: Option<u64>,
    /// The upstream DSN (with its secret, if any) every accepted event is forwarded to.
    pub forward_to: Option<String>,
    /// Emails of the users who are members (admins see every project without it).
    pub members: Vec<String>,
    /// Emails of the members who own the project: they change its settings, keys,
    /// forwarding, retention, members and alert rules (the other members triage).
    pub owners: Vec<String>,
    pub alerts: super::alerts::AlertRules,
    /// User feedback of this project still stored.
    pub feedback: u64,
    /// Attachments are refused (and counted as dropped) instead of stored.
    pub attachments_off: bool,
    /// What is scrubbed from its events before they are stored.
    pub privacy: crate::event::scrub::Privacy,
    /// Which events it does not want at all.
    pub filters: crate::event::filters::InboundFilters,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ProjectKey {
    pub public_key: String,
    pub secret_key: String,
    pub project: u64,
    pub active: bool,
    pub created: f64,
    /// This key's own rate limit; `None` uses the configured default.
    pub rate_limit: Option<crate::ids::RateLimit>,
}

impl Project {
    /// Whether a user sees the project: an active admin, or an active member.
    pub fn admits(&self, user: &super::users::User) -> bool {
        user.active && (user.is_admin || self.members.contains(&user.email))
    }

    /// Whether a user owns the project: an active admin, or an active owner.
    pub fn owned_by(&self, user: &super::users::User) -> bool {
        user.active && (user.is_admin || self.owners.contains(&user.email))
    }
}

/// 32 lowercase hex digits, the form official SDKs and Relay accept.
pub fn new_key() -> String {
    crate::ids::hex(&crate::ids::random_bytes())
}

/// Turns a project name into a URL-safe slug.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        "project".to_string()
    } else {
        slug
    }
}

/// Creates a project and its first key; a name whose slug is taken is a conflict (a script
/// that runs `project create shop` twice must not end up with `shop-2`).
pub fn create(
    txn: &WriteTransaction,
    name: &str,
    now: f64,
) -> Result<(Project, ProjectKey), StoreError> {
    let mut projects = txn.open_table(PROJECTS)?;
    let mut slugs = txn.open_table(PROJECT_SLUGS)?;
    let id = projects.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    let slug = slugify(name);
    if slugs.get(slug.as_str())?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a project with the slug '{slug}' exists already: choose another name, or use that one (picket project list)"
        )));
    }
    let project = Project {
        id,
        slug: slug.clone(),
        name: name.to_string(),
        created: now,
        next_issue: 1,
        stored: 0,
        max_events: None,
        forward_to: None,
        privacy: crate::event::scrub::Privacy {
            salt: crate::ids::hex(&crate::ids::random_bytes()),
            ..Default::default()
        },
        ..Default::default()
    };
    projects.insert(id, encode(&project).as_slice())?;
    slugs.insert(slug.as_str(), id)?;
    drop((projects, slugs));
    let key = create_key(txn, id, now)?;
    Ok((project, key))
}

pub fn create_key(
    txn: &WriteTransaction,
    project: u64,
    now: f64,
) -> Result<ProjectKey, StoreError> {
    let key = ProjectKey {
        public_key: new_key(),
        secret_key: new_key(),
        project,
        active: true,
        created: now,
        rate_limit: None,
    };
    txn.open_table(KEYS)?
        .insert(key.public_key.as_str(), encode(&key).as_slice())?;
    Ok(key)
}

/// Sets (or with `None` clears) a key's own rate limit.
pub fn set_rate_limit(
    txn: &WriteTransaction,
    public_key: &str,
    limit: Option<crate::ids::RateLimit>,
) -> Result<ProjectKey, StoreError> {
    update_key(txn, public_key, |key| key.rate_limit = limit)
}

fn update_key(
    txn: &WriteTransaction,
    public_key: &str,
    change: impl FnOnce(&mut ProjectKey),
) -> Result<ProjectKey, StoreError> {
    let mut keys = txn.open_table(KEYS)?;
    let mut key = key(&keys, public_key)?
        .ok_or_else(|| StoreError::NotFound(format!("no key {public_key}")))?;
    change(&mut key);
    keys.insert(public_key, encode(&key).as_slice())?;
    Ok(key)
}

/// Marks a key inactive; events sent with it are refused from then on.
pub fn revoke_key(txn: &WriteTransaction, public_key: &str) -> Result<ProjectKey, StoreError> {
    update_key(txn, public_key, |key| key.active = false)
}

pub fn get(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Option<Project>, StoreError> {
    table
        .get(id)?
        .map(|v| decode("projects", v.value()))
        .transpose()
}

/// Finds a project by its slug or numeric id.
pub fn find(
    projects: &impl ReadableTable<u64, &'static [u8]>,
    slugs: &impl ReadableTable<&'static str, u64>,
    slug_or_id: &str,
) -> Result<Project, StoreError> {
    let id = match slugs.get(slug_or_id)? {
        Some(id) => Some(id.value()),
        None => slug_or_id.parse::<u64>().ok(),
    };
    id.map(|id| get(projects, id))
        .transpose()?
        .flatten()
        .ok_or_else(|| StoreError::NotFound(format!("no project '{slug_or_id}'")))
}

pub fn list(projects: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<Project>, StoreError> {
    let mut out = Vec::new();
    for row in projects.iter()? {
        out.push(decode("projects", row?.1.value())?);
    }
    Ok(out)
}

/// A key by its public part.
pub fn key(
    keys: &impl ReadableTable<&'static str, &'static [u8]>,
    public_key: &str,
) -> Result<Option<ProjectKey>, StoreError> {
    keys.get(public_key)?
        .map(|v| decode("keys", v.value()))
        .transpose()
}

/// Every key, active or not.
pub fn keys(
    keys: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<ProjectKey>, StoreError> {
    let mut out = Vec::new();
    for row in keys.iter()? {
        out.push(decode("keys", row?.1.value())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("My Shop (EU)"), "my-shop-eu");
        assert_eq!(slugify("  ***  "), "project");
    }
}
