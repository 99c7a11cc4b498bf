//! Attachments of stored events: list them with an event, read one back byte for byte, and
//! turn a project's attachments off (they are then refused and counted as dropped).

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::projects::ProjectView;
use super::{Actor, Handle, ManageError, Operation};
use crate::ids::EventId;
use crate::store::attachments::{self, AttachmentMeta};
use crate::store::backup::Progress;
use crate::store::projects::Project;

/// One attachment as every front end lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttachmentView {
    /// Its place among the event's attachments (how URLs name it).
    pub id: u32,
    pub name: String,
    pub content_type: Option<String>,
    pub attachment_type: String,
    /// Bytes as sent.
    pub size: u64,
}

impl AttachmentView {
    fn of(id: u32, meta: AttachmentMeta) -> AttachmentView {
        AttachmentView {
            id,
            name: meta.name,
            content_type: meta.content_type,
            attachment_type: meta.attachment_type,
            size: meta.size,
        }
    }

    /// The `Content-Disposition` every front end serves it with: a download, never inline,
    /// with the file name twice (plain ASCII for old clients, RFC 5987's UTF-8 form for the
    /// rest).
    pub fn content_disposition(&self) -> String {
        let name = &self.name;
        let plain: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let encoded =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
    }
}

/// An event id from outside, or an error naming it.
pub(crate) fn event_id(text: &str) -> Result<EventId, ManageError> {
    EventId::parse(text)
        .ok_or_else(|| ManageError::Invalid(format!("'{text}' is not an event id (32 hex digits)")))
}

/// The attachments of an event of a project the caller may see.
pub(crate) fn of_event(
    h: &Handle,
    project: &Project,
    event: &EventId,
) -> Result<Vec<AttachmentView>, ManageError> {
    let txn = h.db.begin_read()?;
    Ok(attachments::list(&txn, project.id, event)?
        .into_iter()
        .map(|(id, meta)| AttachmentView::of(id, meta))
        .collect())
}

/// The attachments of one stored event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentList {
    pub project: String,
    pub event_id: String,
}

impl Operation for AttachmentList {
    type Answer = Vec<AttachmentView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<AttachmentView>, ManageError> {
        actor.require_scope("event:read")?;
        let project = h.project(actor, &self.project)?;
        of_event(h, &project, &event_id(&self.event_id)?)
    }
}

/// Which attachment of an event: by its id or by its file name (the first of that name).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    Id(u32),
    Name(String),
}

/// One attachment's bytes, as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentFetch {
    pub project: String,
    pub event_id: String,
    pub which: Which,
}

/// An attachment and its bytes (base64 on the control socket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentBytes {
    #[serde(flatten)]
    pub view: AttachmentView,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

impl Operation for AttachmentFetch {
    type Answer = AttachmentBytes;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<AttachmentBytes, ManageError> {
        actor.require_scope("event:read")?;
        let project = h.project(actor, &self.project)?;
        let event = event_id(&self.event_id)?;
        let listed = of_event(h, &project, &event)?;
        let found = match &self.which {
            Which::Id(id) => listed.into_iter().find(|a| a.id == *id),
            Which::Name(name) => listed.into_iter().find(|a| a.name == *name),
        };
        let missing = || {
            let what = match &self.which {
                Which::Id(id) => format!("attachment {id}"),
                Which::Name(name) => format!("attachment named '{name}'"),
            };
            ManageError::NotFound(format!(
                "no {what} on event {} in project '{}'",
                self.event_id, project.slug
            ))
        };
        let view = found.ok_or_else(missing)?;
        let txn = h.db.begin_read()?;
        let (_, data) =
            attachments::read(&txn, project.id, &event, view.id)?.ok_or_else(missing)?;
        Ok(AttachmentBytes { view, data })
    }
}

/// Turns a project's attachments on or off.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectAttachments {
    pub project: String,
    pub enabled: bool,
}

impl Operation for ProjectAttachments {
    type Answer = ProjectView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<ProjectView, ManageError> {
        actor.require_scope("project:write")?;
        let off = !self.enabled;
        let project = h.update_project(actor, &self.project, move |p| p.attachments_off = off)?;
        Ok(ProjectView::of(h, &project, None))
    }
}

/// Bytes as a base64 string in JSON.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
