//! Alerts: each project's rules and recipients, and the alert outbox. An alert row is written
//! by the writer in the transaction that stores the event which triggered it, so an alert is
//! never lost to a crash and never sent for an event that was not stored; the alerter removes
//! it once every target (mail, each webhook) has it.

use crate::ids::EventId;
use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{ALERT_OUTBOX, META, StoreError, decode, encode};

/// What makes an alert.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The first event of a new issue.
    #[default]
    NewIssue,
    /// An event on a resolved issue (which reopens it).
    Regression,
    /// An ignored issue whose ignore condition ran out.
    Reappeared,
    /// More than N events in M minutes, once per window.
    Frequency,
    /// An end user sent feedback about one of the issue's events.
    Feedback,
    /// The issue was assigned to someone (who is mailed).
    Assigned,
    /// Someone commented on the issue (its assignee and earlier commenters are mailed).
    Comment,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::NewIssue => "new issue",
            Rule::Regression => "regression",
            Rule::Reappeared => "reappeared",
            Rule::Frequency => "frequency",
            Rule::Feedback => "user feedback",
            Rule::Assigned => "assigned",
            Rule::Comment => "comment",
        }
    }
}

/// A webhook's body: generic JSON, or Slack's `text` + `blocks` (also Mattermost, Discord's
/// Slack endpoint).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct Webhook {
    pub url: String,
    pub format: WebhookFormat,
}

/// More than `events` events in `minutes` minutes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(default)]
pub struct Frequency {
    pub events: u64,
    pub minutes: u64,
}

/// A project's alert rules and where alerts go.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct AlertRules {
    pub new_issue: bool,
    pub regression: bool,
    pub reappeared: bool,
    pub frequency: Option<Frequency>,
    /// New user feedback on an issue.
    pub feedback: bool,
    /// Addresses mailed beside the members and admins.
    pub emails: Vec<String>,
    pub webhooks: Vec<Webhook>,
    /// Members and admins who asked not to be mailed about this project.
    pub opt_out: Vec<String>,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            new_issue: true,
            regression: true,
            reappeared: true,
            frequency: None,
            feedback: true,
            emails: Vec::new(),
            webhooks: Vec::new(),
            opt_out: Vec::new(),
        }
    }
}

impl AlertRules {
    pub fn fires(&self, rule: Rule) -> bool {
        match rule {
            Rule::NewIssue => self.new_issue,
            Rule::Regression => self.regression,
            Rule::Reappeared => self.reappeared,
            Rule::Frequency => self.frequency.is_some(),
            Rule::Feedback => self.feedback,
            Rule::Assigned | Rule::Comment => true,
        }
    }
}

/// One alert waiting in the outbox.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct Alert {
    pub project: u64,
    pub issue: u64,
    pub rule: Rule,
    /// The event that triggered it.
    pub event_id: EventId,
    pub created: f64,
    /// What happened, in words ("more than 5 events in 1 minute").
    pub detail: String,
    /// A mail is still to be sent.
    pub mail: bool,
    /// Webhook URLs still to be called.
    pub webhooks: Vec<String>,
    /// Held back by the hourly mail cap; goes out in the next digest.
    pub held: bool,
    /// Mailed to these people only (an assignment, a comment) instead of the project's
    /// recipients.
    pub to: Vec<String>,
}

/// The alert outbox inside a write transaction.
pub struct AlertOutbox<'t> {
    rows: Table<'t, u64, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
}

impl<'t> AlertOutbox<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<AlertOutbox<'t>, StoreError> {
        Ok(AlertOutbox {
            rows: txn.open_table(ALERT_OUTBOX)?,
            meta: txn.open_table(META)?,
        })
    }

    pub fn push(&mut self, alert: &Alert) -> Result<u64, StoreError> {
        let seq = self.meta.get("alert_seq")?.map_or(0, |v| v.value()) + 1;
        self.meta.insert("alert_seq", seq)?;
        self.rows.insert(seq, encode(alert).as_slice())?;
        Ok(seq)
    }

    /// Saves what is left of an alert, or removes it when nothing is.
    pub fn update(&mut self, seq: u64, alert: &Alert) -> Result<(), StoreError> {
        if self.rows.get(seq)?.is_none() {
            return Ok(());
        }
        if !alert.mail && alert.webhooks.is_empty() {
            self.rows.remove(seq)?;
        } else {
            self.rows.insert(seq, encode(alert).as_slice())?;
        }
        Ok(())
    }

    pub fn remove(&mut self, seq: u64) -> Result<(), StoreError> {
        self.rows.remove(seq)?;
        Ok(())
    }
}

/// Up to `limit` alerts in the order they were raised.
pub fn pending(
    table: &impl ReadableTable<u64, &'static [u8]>,
    limit: usize,
) -> Result<Vec<(u64, Alert)>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter()?.take(limit) {
        let (key, value) = row?;
        out.push((key.value(), decode("alert_outbox", value.value())?));
    }
    Ok(out)
}
