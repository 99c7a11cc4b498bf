//! A project's alerts: which rules fire (new issue, regression, reappeared, frequency), who
//! gets the mail besides members and admins, who opted out, and the webhooks.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::outbound::Policy;
use crate::store::alerts::{AlertRules, Frequency, Webhook, WebhookFormat};
use crate::store::backup::Progress;
use crate::store::projects::Project;
use crate::store::{USERS, users};

/// Shows a project's alerts, or changes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alerts {
    pub project: String,
    pub change: AlertChange,
}

/// A change to a project's alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum AlertChange {
    Show,
    Rules {
        new_issue: Option<bool>,
        regression: Option<bool>,
        reappeared: Option<bool>,
        /// User feedback on an issue.
        #[serde(default)]
        feedback: Option<bool>,
        /// `Some(None)` turns the frequency rule off.
        frequency: Option<Option<Frequency>>,
    },
    Email {
        address: String,
        remove: bool,
    },
    Webhook {
        url: String,
        format: WebhookFormat,
        remove: bool,
    },
    OptOut {
        email: String,
        undo: bool,
    },
}

/// A project's alerts as they stand, with everyone who gets its mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertsView {
    pub project: String,
    /// Whether mail is on, and through which server ("off (no smtp_url)" otherwise).
    pub mail: String,
    pub rules: AlertRules,
    pub members: Vec<String>,
    pub recipients: Vec<String>,
}

impl Operation for Alerts {
    type Answer = AlertsView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<AlertsView, ManageError> {
        let change = self.change;
        check(h, &change)?;
        let own_choice = matches!(&change, AlertChange::OptOut { email, .. }
            if actor.user().is_some_and(|u| u.email.eq_ignore_ascii_case(email.trim())));
        let project = match change {
            AlertChange::Show => h.project(actor, &self.project)?,
            // A member's own choice not to be mailed is theirs to make.
            change if own_choice => {
                let id = h.project(actor, &self.project)?.id;
                h.change_project(id, move |p| apply_change(&mut p.alerts, change))?
            }
            change => h.update_project(actor, &self.project, move |p| {
                apply_change(&mut p.alerts, change)
            })?,
        };
        view(h, &project)
    }
}

/// Refuses what a change may not set: a webhook the address policy forbids, something that
/// is not an email address, a frequency rule of nothing.
fn check(h: &Handle, change: &AlertChange) -> Result<(), ManageError> {
    match change {
        AlertChange::Webhook {
            url, remove: false, ..
        } => {
            let policy = Policy::for_webhooks(h.config.alerts.allow_private_webhooks);
            crate::outbound::check_url_now(url, policy).map_err(|e| {
                let hint = if policy == Policy::PublicOnly {
                    " (alerts.allow_private_webhooks = true allows it)"
                } else {
                    ""
                };
                ManageError::Invalid(format!("webhook {url} refused: {e}{hint}"))
            })
        }
        AlertChange::Email { address, .. } | AlertChange::OptOut { email: address, .. }
            if !super::users::valid_email(address.trim()) =>
        {
            Err(ManageError::Invalid(format!(
                "'{address}' is not an email address"
            )))
        }
        AlertChange::Rules {
            frequency: Some(Some(f)),
            ..
        } if f.events == 0 || f.minutes == 0 => Err(ManageError::Invalid(
            "a frequency rule needs at least 1 event and 1 minute".into(),
        )),
        _ => Ok(()),
    }
}

fn apply_change(rules: &mut AlertRules, change: AlertChange) {
    match change {
        AlertChange::Show => {}
        AlertChange::Rules {
            new_issue,
            regression,
            reappeared,
            feedback,
            frequency,
        } => {
            rules.feedback = feedback.unwrap_or(rules.feedback);
            rules.new_issue = new_issue.unwrap_or(rules.new_issue);
            rules.regression = regression.unwrap_or(rules.regression);
            rules.reappeared = reappeared.unwrap_or(rules.reappeared);
            if let Some(f) = frequency {
                rules.frequency = f;
            }
        }
        AlertChange::Email { address, remove } => {
            let address = address.trim().to_string();
            rules.emails.retain(|e| e != &address);
            if !remove {
                rules.emails.push(address);
            }
        }
        AlertChange::Webhook {
            url,
            format,
            remove,
        } => {
            rules.webhooks.retain(|h| h.url != url);
            if !remove {
                rules.webhooks.push(Webhook { url, format });
            }
        }
        AlertChange::OptOut { email, undo } => {
            let email = email.trim().to_ascii_lowercase();
            rules.opt_out.retain(|e| e != &email);
            if !undo {
                rules.opt_out.push(email);
            }
        }
    }
}

fn view(h: &Handle, project: &Project) -> Result<AlertsView, ManageError> {
    let txn = h.db.begin_read()?;
    let all = users::list(&txn.open_table(USERS)?)?;
    let mut recipients: Vec<String> = all
        .iter()
        .filter(|u| project.admits(u))
        .map(|u| u.email.clone())
        .filter(|e| !project.alerts.opt_out.contains(e))
        .chain(project.alerts.emails.iter().cloned())
        .collect();
    recipients.sort();
    recipients.dedup();
    Ok(AlertsView {
        project: project.slug.clone(),
        mail: crate::alert::mail_state(&h.config),
        rules: project.alerts.clone(),
        members: project.members.clone(),
        recipients,
    })
}

/// Posts a sample alert to one of a project's webhooks now and reports the answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookTest {
    pub project: String,
    pub url: String,
}

/// What a webhook answered to the sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookAnswer {
    pub url: String,
    /// The HTTP status, if it answered.
    pub status: Option<u16>,
    /// The start of its body, or why there was no answer.
    pub detail: String,
}

impl Operation for WebhookTest {
    type Answer = WebhookAnswer;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<WebhookAnswer, ManageError> {
        let project = h.owned_project(actor, &self.project, "test its webhooks")?;
        let Some(hook) = project.alerts.webhooks.iter().find(|w| w.url == self.url) else {
            return Err(ManageError::NotFound(format!(
                "{} has no webhook {}",
                project.slug, self.url
            )));
        };
        let policy = Policy::for_webhooks(h.config.alerts.allow_private_webhooks);
        let client = crate::outbound::Client::new(None, h.config.alerts.webhook_timeout.0, policy)
            .map_err(|e| ManageError::Storage(e.to_string()))?;
        let body = crate::alert::sample_webhook_body(&project, &h.config.base_url(), hook.format);
        let url = hook.url.clone();
        let call = async move {
            let headers = [("content-type", "application/json".to_string())];
            client.post(&url, &headers, body).await
        };
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime.block_on(call),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ManageError::Storage(e.to_string()))?
                .block_on(call),
        };
        Ok(match answer {
            Ok(reply) => WebhookAnswer {
                url: self.url,
                status: Some(reply.status),
                detail: String::from_utf8_lossy(&reply.body[..reply.body.len().min(500)])
                    .into_owned(),
            },
            Err(e) => WebhookAnswer {
                url: self.url,
                status: None,
                detail: e.to_string(),
            },
        })
    }
}
