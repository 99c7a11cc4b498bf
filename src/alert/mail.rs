//! Mail over SMTP with mail-send to the server `smtp_url` names: one conversation per batch of mails,
//! and errors that say which step failed (DNS, connect, TLS, auth, a refused sender or
//! recipient), which `picket sendtestemail` prints as they are.

use std::time::Duration;

use crate::config::{ConfigError, Security, SmtpUrl};

use mail_send::SmtpClient;
use mail_send::SmtpClientBuilder;
use tokio::io::{AsyncRead, AsyncWrite};

/// An SMTP reply as "code message" (the reply's type is not exported by mail-send).
macro_rules! reply_text {
    ($reply:expr) => {
        format!("{} {}", $reply.code(), $reply.message())
            .trim()
            .to_string()
    };
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailError {
    #[error("{0}")]
    BadUrl(#[from] ConfigError),
    #[error("DNS: cannot resolve {host}: {cause}")]
    Dns { host: String, cause: String },
    #[error("connect: cannot connect to {addr}: {cause}")]
    Connect { addr: String, cause: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("auth: {0}")]
    Auth(String),
    #[error("the server refused the sender {from}: {reply}")]
    Sender { from: String, reply: String },
    #[error("the server refused every recipient: {0}")]
    Recipients(String),
    #[error("the server refused the message: {0}")]
    Message(String),
    #[error("SMTP: {0}")]
    Protocol(String),
    #[error("SMTP: no answer within {0:?}")]
    Timeout(Duration),
}

/// Sends mail through the configured server.
#[derive(Clone)]
pub struct Mailer {
    url: SmtpUrl,
    pub from: String,
    timeout: Duration,
    tls: tokio_rustls::TlsConnector,
}

/// A message ready to go: its recipients and its RFC 5322 bytes.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub bytes: Vec<u8>,
}

/// What one message's delivery did: recipients the server refused (with its reply).
#[derive(Debug, Default)]
pub struct Sent {
    pub refused: Vec<(String, String)>,
}

impl Mailer {
    pub fn new(smtp_url: &str, from: &str, timeout: Duration) -> Result<Mailer, MailError> {
        let url = SmtpUrl::parse(smtp_url)?;
        let tls = crate::outbound::tls_config(None).map_err(|e| MailError::Tls(e.to_string()))?;
        Ok(Mailer {
            url,
            from: from.to_string(),
            timeout,
            tls: tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls)),
        })
    }

    /// The server, as `host:port`.
    pub fn server(&self) -> String {
        format!("{}:{}", self.url.host, self.url.port)
    }

    /// Sends every mail in one SMTP conversation. Fails as a whole only when the conversation
    /// does (connect, TLS, auth, sender); a mail whose recipients were all refused comes back
    /// as its own error.
    pub async fn send(&self, mails: &[Mail]) -> Result<Vec<Result<Sent, MailError>>, MailError> {
        let addr = self.server();
        // Resolve first, so a DNS failure is told apart from a refused connection.
        match tokio::time::timeout(
            self.timeout,
            tokio::net::lookup_host((self.url.host.as_str(), self.url.port)),
        )
        .await
        {
            Err(_) => return Err(MailError::Timeout(self.timeout)),
            Ok(Err(e)) => {
                return Err(MailError::Dns {
                    host: self.url.host.clone(),
                    cause: e.to_string(),
                });
            }
            Ok(Ok(_)) => {}
        }
        let mut builder = SmtpClientBuilder::new_with_tls_connector(
            self.url.host.as_str(),
            self.url.port,
            self.tls.clone(),
        )
        .implicit_tls(self.url.security == Security::Implicit)
        .timeout(self.timeout)
        .helo_host("picket");
        if let Some(user) = &self.url.user {
            builder =
                builder.credentials((user.as_str(), self.url.password.as_deref().unwrap_or("")));
        }
        let connected = |e: mail_send::Error| classify(e, &addr, self.timeout);
        match self.url.security {
            Security::Plain => {
                let client = builder.connect_plain().await.map_err(connected)?;
                self.conversation(client, mails).await
            }
            Security::StartTls | Security::Implicit => {
                let client = builder.connect().await.map_err(connected)?;
                self.conversation(client, mails).await
            }
        }
    }

    async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut client: SmtpClient<S>,
        mails: &[Mail],
    ) -> Result<Vec<Result<Sent, MailError>>, MailError> {
        let mut out = Vec::with_capacity(mails.len());
        let params = mail_send::smtp::message::Parameters::default();
        for mail in mails {
            if let Err(e) = client.mail_from(&self.from, &params).await {
                return Err(match e {
                    mail_send::Error::UnexpectedReply(reply) => MailError::Sender {
                        from: self.from.clone(),
                        reply: reply_text!(reply),
                    },
                    other => classify(other, &self.server(), self.timeout),
                });
            }
            let mut sent = Sent::default();
            for to in &mail.to {
                match client.rcpt_to(to, &params).await {
                    Ok(()) => {}
                    Err(mail_send::Error::UnexpectedReply(reply)) => {
                        sent.refused.push((to.clone(), reply_text!(reply)));
                    }
                    Err(other) => return Err(classify(other, &self.server(), self.timeout)),
                }
            }
            if sent.refused.len() == mail.to.len() {
                let why = sent
                    .refused
                    .iter()
                    .map(|(to, reply)| format!("{to}: {reply}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                client
                    .rset()
                    .await
                    .map_err(|e| classify(e, &self.server(), self.timeout))?;
                out.push(Err(MailError::Recipients(why)));
                continue;
            }
            match client.data(&mail.bytes).await {
                Ok(_) => out.push(Ok(sent)),
                Err(mail_send::Error::UnexpectedReply(reply)) => {
                    out.push(Err(MailError::Message(reply_text!(reply))));
                }
                Err(other) => return Err(classify(other, &self.server(), self.timeout)),
            }
        }
        let _ = client.quit().await;
        Ok(out)
    }

    /// Sends one plain test message to `to`; the error says exactly what failed.
    pub async fn send_test(&self, to: &str) -> Result<(), MailError> {
        let body = format!(
            "This is a test email from picket, sent through {} with mail_from {}.\n\
             If you can read it, alert mail works.\n",
            self.server(),
            self.from
        );
        self.send_one(to, "picket test email", body).await
    }

    /// Sends one plain-text message to `to`; the error says exactly what failed.
    pub async fn send_one(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let bytes = mail_send::mail_builder::MessageBuilder::new()
            .from(("picket", self.from.as_str()))
            .to(to)
            .subject(subject)
            .text_body(body)
            .write_to_vec()
            .map_err(|e| MailError::Message(e.to_string()))?;
        let mail = Mail {
            to: vec![to.to_string()],
            bytes,
        };
        let mut results = self.send(&[mail]).await?;
        match results.pop() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e),
            None => Err(MailError::Protocol("nothing was sent".into())),
        }
    }
}

/// Names the step a mail-send error belongs to.
fn classify(e: mail_send::Error, addr: &str, timeout: Duration) -> MailError {
    use mail_send::Error as E;
    match e {
        E::Io(io) => {
            let cause = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                _ => io.to_string(),
            };
            MailError::Connect {
                addr: addr.to_string(),
                cause,
            }
        }
        E::Tls(e) => MailError::Tls(e.to_string()),
        E::InvalidTLSName => MailError::Tls("invalid server name for TLS".into()),
        E::MissingStartTls => MailError::Tls("the server does not offer STARTTLS".into()),
        E::Auth(e) => MailError::Auth(e.to_string()),
        E::AuthenticationFailed(reply) => MailError::Auth(format!(
            "the server refused the credentials: {}",
            reply_text!(reply)
        )),
        E::MissingCredentials => MailError::Auth("the server requires credentials".into()),
        E::UnsupportedAuthMechanism => {
            MailError::Auth("no authentication mechanism in common with the server".into())
        }
        E::Timeout => MailError::Timeout(timeout),
        E::UnexpectedReply(reply) => MailError::Protocol(reply_text!(reply)),
        other => MailError::Protocol(other.to_string()),
    }
}
