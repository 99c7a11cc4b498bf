//! A small HTTP/1.1 server on loopback for the tests that watch what picket sends out
//! (forwarding upstream, webhooks): keep-alive, Content-Length bodies, optionally TLS. It
//! records every request and answers with what the test's function says.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One request as received, with the status it was answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    /// The request line and headers, as sent.
    pub head: String,
    pub body: String,
    pub status: u16,
}

impl Request {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Decides an answer: (index of the request, its head, its body) → (status, extra headers).
pub type Answer = dyn Fn(usize, &str, &str) -> (u16, Vec<(String, String)>) + Send + Sync;

pub struct Sink {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Sink {
    pub fn start(answer: Box<Answer>) -> Sink {
        Sink::start_with_tls(answer, None)
    }

    /// With `tls`, the sink speaks HTTPS with that server configuration.
    pub fn start_with_tls(answer: Box<Answer>, tls: Option<Arc<rustls::ServerConfig>>) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::from(answer);
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (log, answer, tls) = (log.clone(), answer.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(conn, stream), &log, &*answer)
                    }
                    None => serve(stream, &log, &*answer),
                });
            }
        });
        Sink { port, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: impl Read + Write, log: &Mutex<Vec<Request>>, answer: &Answer) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).to_string();
        let n = log.lock().unwrap().len();
        let (status, headers) = answer(n, &head, &body);
        log.lock().unwrap().push(Request {
            at: Instant::now(),
            head,
            body,
            status,
        });
        let mut response = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n");
        for (k, v) in headers {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n{}");
        let out = reader.get_mut();
        if out.write_all(response.as_bytes()).is_err() || out.flush().is_err() {
            return;
        }
    }
}
