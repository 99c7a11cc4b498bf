//! Where shipped entries go: the [`Sink`] trait, its HTTP implementation (an envelope to a
//! DSN's project, the server's answer read as a [`Delivery`]), and delivering a window of
//! entries at once with the outcomes kept in order.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::ids::Dsn;
use crate::outbound::{Client, OutboundError};

/// What one delivery of an event came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Accepted,
    /// The server refused this event for good (400, 413); it is skipped.
    Refused(String),
    /// The server asked to wait (429, 503) this long, then send again.
    Wait(Duration, String),
    /// The key is refused (401, 403): nothing can be delivered.
    KeyRefused(String),
    /// A network error or a server error: try again later.
    Retry(String),
}

/// Where entries go: a Sentry-compatible server, or the local pipeline.
pub trait Sink {
    fn deliver(&self, event: Value) -> impl std::future::Future<Output = Delivery> + Send;
    /// For messages: where this sink delivers.
    fn describe(&self) -> String;
}

/// Sends events as envelopes to a DSN's project.
pub struct HttpSink {
    client: Client,
    dsn: Dsn,
}

impl HttpSink {
    pub fn new(dsn: Dsn, client: Client) -> HttpSink {
        HttpSink { client, dsn }
    }
}

impl Sink for HttpSink {
    async fn deliver(&self, event: Value) -> Delivery {
        let payload = event.to_string();
        let header = json!({
            "event_id": event["event_id"],
            "dsn": self.dsn.public(),
            "sent_at": crate::time::rfc3339(crate::time::now()),
        });
        let item = json!({ "type": "event", "length": payload.len() });
        let body = format!("{header}\n{item}\n{payload}\n");
        let headers = [
            ("content-type", "application/x-sentry-envelope".to_string()),
            (
                "x-sentry-auth",
                self.dsn
                    .auth_header(concat!("picket-tail/", env!("CARGO_PKG_VERSION"))),
            ),
        ];
        let url = self.dsn.envelope_url();
        match self.client.post(&url, &headers, Bytes::from(body)).await {
            Err(e @ (OutboundError::Network(_) | OutboundError::Timeout(_))) => {
                Delivery::Retry(e.to_string())
            }
            Err(e) => Delivery::KeyRefused(e.to_string()),
            Ok(reply) => {
                let text = String::from_utf8_lossy(&reply.body)
                    .chars()
                    .take(300)
                    .collect::<String>();
                let said = format!("HTTP {}: {text}", reply.status);
                match reply.status {
                    200..=299 => Delivery::Accepted,
                    429 | 503 => {
                        let wait = crate::outbound::rate_limit(429, &reply.headers, "error")
                            .unwrap_or(Duration::from_secs(1));
                        Delivery::Wait(wait, said)
                    }
                    401 | 403 => Delivery::KeyRefused(said),
                    400..=499 => Delivery::Refused(said),
                    _ => Delivery::Retry(said),
                }
            }
        }
    }

    fn describe(&self) -> String {
        self.dsn.envelope_url()
    }
}

/// Delivers events at once and returns the outcomes in their order.
pub(super) async fn deliver_all<S: Sink>(sink: &S, events: &[Value]) -> Vec<Delivery> {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    let mut pending: Vec<Pin<Box<dyn Future<Output = Delivery> + Send + '_>>> = events
        .iter()
        .map(|e| {
            Box::pin(sink.deliver(e.clone())) as Pin<Box<dyn Future<Output = Delivery> + Send>>
        })
        .collect();
    let mut out: Vec<Option<Delivery>> = vec![None; events.len()];
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (slot, future) in out.iter_mut().zip(pending.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(d) => *slot = Some(d),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|d| d.unwrap_or_else(|| Delivery::Retry("no outcome".into())))
        .collect()
}
