//! Project members: the users who see a project (admins see every project anyway) and get
//! its alert mail.

use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::store::audit::{AuditAction, AuditEntry};
use crate::store::backup::Progress;
use crate::store::users;

/// Adds a user to a project's members (as a member, or as an owner), changes their role, or
/// removes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectMember {
    pub project: String,
    pub email: String,
    pub remove: bool,
    /// `None` keeps a member's role (a new one is a member).
    #[serde(default)]
    pub role: Option<Role>,
}

/// What a member may do in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Triage: resolve, ignore, assign, comment.
    Member,
    /// Also the project's settings, keys, forwarding, retention, members and alert rules.
    Owner,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Members {
    pub project: String,
    pub members: Vec<String>,
    #[serde(default)]
    pub owners: Vec<String>,
}

impl Operation for ProjectMember {
    type Answer = Members;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<Members, ManageError> {
        let email = self.email.trim().to_ascii_lowercase();
        let (remove, role) = (self.remove, self.role);
        let detail = match (remove, role) {
            (true, _) => format!("removed from {}", self.project),
            (false, Some(Role::Owner)) => format!("owner of {}", self.project),
            (false, _) => format!("member of {}", self.project),
        };
        let entry = AuditEntry::new(Some(actor.who()), AuditAction::ProjectRoleChanged, &email)
            .detail(detail);
        if !remove && users::find(&h.db, &email)?.is_none() {
            return Err(ManageError::NotFound(format!(
                "no user {email} (create one first)"
            )));
        }
        let project = h.update_project(actor, &self.project, move |p| {
            if remove {
                p.members.retain(|m| m != &email);
                p.owners.retain(|m| m != &email);
                return;
            }
            if !p.members.contains(&email) {
                p.members.push(email.clone());
            }
            match role {
                Some(Role::Owner) if !p.owners.contains(&email) => p.owners.push(email),
                Some(Role::Member) => p.owners.retain(|m| m != &email),
                _ => {}
            }
        })?;
        h.write(move |txn| crate::store::audit::record(txn, &entry))?;
        Ok(Members {
            project: project.slug,
            members: project.members,
            owners: project.owners,
        })
    }
}
