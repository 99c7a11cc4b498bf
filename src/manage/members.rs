//! Project members: the users who see a project (admins see every project anyway) and get
//! its alert mail.

use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::store::backup::Progress;
use crate::store::users;

/// Adds a user to a project's members, or removes one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectMember {
    pub project: String,
    pub email: String,
    pub remove: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Members {
    pub project: String,
    pub members: Vec<String>,
}

impl Operation for ProjectMember {
    type Answer = Members;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<Members, ManageError> {
        actor.require_admin("change who is a member")?;
        let email = self.email.trim().to_ascii_lowercase();
        let remove = self.remove;
        if !remove && users::find(&h.db, &email)?.is_none() {
            return Err(ManageError::NotFound(format!(
                "no user {email} (create one first)"
            )));
        }
        let project = h.update_project(actor, &self.project, move |p| {
            p.members.retain(|m| m != &email);
            if !remove {
                p.members.push(email);
            }
        })?;
        Ok(Members {
            project: project.slug,
            members: project.members,
        })
    }
}
