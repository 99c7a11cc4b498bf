//! The legacy raven UDP intake (`sentry start udp`): one event per datagram, the
//! `X-Sentry-Auth` value, a blank line, then JSON, base64(JSON) or base64(zlib(JSON)). The key
//! names the project. There is no answer, so every refused datagram is counted by reason.

use std::sync::Arc;

use super::auth::{self, Credentials};
use super::http::Intake;
use super::{IntakeError, decode};
use crate::event::normalize::{self, Context};

/// The largest datagram IPv4 can carry.
const MAX_DATAGRAM: usize = 65_536;

/// Splits a datagram into its credentials and its body (still encoded).
pub fn parse_datagram(datagram: &[u8]) -> Result<(Credentials, &[u8]), IntakeError> {
    let split = datagram
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or(IntakeError::Auth(auth::AuthError::Missing))?;
    let header = std::str::from_utf8(&datagram[..split])
        .map_err(|_| IntakeError::Auth(auth::AuthError::Malformed("auth header is not UTF-8")))?;
    let creds = auth::parse_datagram_header(header)?;
    let body = &datagram[split + 2..];
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace() && *b != 0)
        .map_or(0, |i| i + 1);
    if end == 0 {
        return Err(IntakeError::EmptyBody);
    }
    Ok((creds, &body[..end]))
}

/// Receives datagrams until the socket fails. Each accepted one is queued like an HTTP event;
/// nobody waits for its commit.
pub async fn serve(
    socket: Arc<tokio::net::UdpSocket>,
    intake: Arc<Intake>,
) -> Result<(), IntakeError> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, peer) = socket
            .recv_from(&mut buf)
            .await
            .map_err(IntakeError::Receive)?;
        match accept(&intake, &buf[..len], &peer.ip().to_string()) {
            Ok(()) => intake.counters.accept_event(),
            Err(e) => {
                intake.counters.drop_udp(e.reason());
                tracing::debug!("dropped a UDP datagram from {peer}: {e}");
            }
        }
    }
}

fn accept(intake: &Intake, datagram: &[u8], client_ip: &str) -> Result<(), IntakeError> {
    let (creds, body) = parse_datagram(datagram)?;
    let project = intake.admit(&creds, None)?;
    let limit = intake.limits.max_event_size.0;
    let json =
        decode::decode_store_body(body.to_vec(), usize::try_from(limit).unwrap_or(usize::MAX))?;
    let ctx = Context {
        received: crate::time::now(),
        event_id: None,
        client_ip: Some(client_ip),
        limits: intake.limits.event(),
    };
    let event = normalize::normalize(&json, &ctx)?;
    // Nobody waits for the acknowledgement: the receiver is dropped.
    intake.enqueue(project, event).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_split_at_the_first_blank_line() {
        let (creds, body) =
            parse_datagram(b"Sentry sentry_key=k, sentry_secret=s\n\n{\"message\":\"a\\n\\nb\"}\n")
                .unwrap();
        assert_eq!(creds.public_key, "k");
        assert_eq!(body, b"{\"message\":\"a\\n\\nb\"}");
        let (creds, _) = parse_datagram(b"sentry_key=k2\n\neJw=").unwrap();
        assert_eq!(creds.public_key, "k2");
        assert!(matches!(
            parse_datagram(b"no separator"),
            Err(IntakeError::Auth(_))
        ));
        assert!(matches!(
            parse_datagram(b"sentry_key=k\n\n  \0"),
            Err(IntakeError::EmptyBody)
        ));
        assert!(matches!(
            parse_datagram(b"\xff\xfe\n\n{}"),
            Err(IntakeError::Auth(_))
        ));
    }
}
