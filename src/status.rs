//! What a running server reports about itself: the JSON of `picket status` and the same
//! figures in the Prometheus text exposition format for `GET /metrics`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{Value, json};

use crate::intake::http::Intake;
use crate::supervisor::Workers;

/// The running server's moving parts, as status needs them.
pub struct Live {
    pub db: Arc<redb::Database>,
    /// The alerter's counters, and whether mail is on.
    pub alerts: Arc<crate::alert::State>,
    pub mail: String,
    /// The forwarder's view of each upstream.
    pub forward: Arc<crate::forward::State>,
    pub started: Instant,
    pub pid: u32,
    pub workers: Arc<Workers>,
    pub intake: Arc<Intake>,
    /// Where the listeners are, as bound (useful when the config asked for port 0).
    pub http_addr: String,
    pub udp_addr: Option<String>,
}

impl Live {
    pub fn snapshot(&self) -> Value {
        let stats = self.intake.queue.stats();
        let counters = &self.intake.counters;
        json!({
            "pid": self.pid,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "http_addr": self.http_addr,
            "udp_addr": self.udp_addr,
            "workers": self.workers.snapshot().into_iter().map(|(name, w)| json!({
                "name": name,
                "state": w.state,
                "restarts": w.restarts,
                "last_error": w.last_error,
            })).collect::<Vec<_>>(),
            "queue_depth": stats.queued.load(Ordering::Relaxed),
            "events": {
                "accepted": counters.events_accepted.load(Ordering::Relaxed),
                "stored": stats.stored.load(Ordering::Relaxed),
                "duplicates": stats.duplicates.load(Ordering::Relaxed),
                "batches": stats.batches.load(Ordering::Relaxed),
                // The stored events the file has room for within retention.max_disk, or null
                // while it may still grow.
                "disk_cap": match stats.disk_cap.load(Ordering::Relaxed) {
                    0 => None,
                    n => Some(n),
                },
                // The dictionary new events are compressed with (hex id), null until the store
                // has enough events to train one.
                "dictionary": self.intake.codec.current().map(|d| format!("{:016x}", d.id)),
            },
            "rejected": counters.rejected(),
            "dropped": counters.udp_dropped(),
            "items_dropped": counters.dropped_items(),
            "forward": self.forward.report(),
            "alerts": self.alerts.report(&self.db, &self.mail),
        })
    }

    pub fn prometheus(&self) -> String {
        let stats = self.intake.queue.stats();
        let counters = &self.intake.counters;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v)];
        let labelled = |label: &str, map: Vec<(String, u64)>| {
            map.into_iter()
                .map(|(k, v)| (format!("{{{label}=\"{}\"}}", escape_label(&k)), v))
                .collect::<Vec<_>>()
        };
        metric(
            "picket_events_accepted_total",
            "counter",
            "Events acknowledged since start (HTTP once committed, UDP once queued).",
            one(counters.events_accepted.load(Ordering::Relaxed)),
        );
        metric(
            "picket_events_stored_total",
            "counter",
            "Events committed to the data file since start.",
            one(stats.stored.load(Ordering::Relaxed)),
        );
        metric(
            "picket_events_duplicate_total",
            "counter",
            "Events answered 200 but not stored again because their id was known.",
            one(stats.duplicates.load(Ordering::Relaxed)),
        );
        metric(
            "picket_write_batches_total",
            "counter",
            "Write transactions committed by the writer.",
            one(stats.batches.load(Ordering::Relaxed)),
        );
        metric(
            "picket_requests_rejected_total",
            "counter",
            "HTTP requests refused, by reason.",
            labelled(
                "reason",
                counters
                    .rejected()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
        );
        metric(
            "picket_udp_dropped_total",
            "counter",
            "UDP datagrams dropped, by reason.",
            labelled(
                "reason",
                counters
                    .udp_dropped()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
        );
        metric(
            "picket_envelope_items_dropped_total",
            "counter",
            "Envelope items accepted but not kept, by item type.",
            labelled("type", counters.dropped_items().into_iter().collect()),
        );
        metric(
            "picket_queue_depth",
            "gauge",
            "Events waiting for the writer.",
            one(stats.queued.load(Ordering::Relaxed)),
        );
        metric(
            "picket_worker_restarts_total",
            "counter",
            "Restarts of each supervised worker.",
            labelled(
                "worker",
                self.workers
                    .snapshot()
                    .into_iter()
                    .map(|(k, w)| (k.to_string(), w.restarts))
                    .collect(),
            ),
        );
        let forward = self.forward.report();
        let per_project = |field: &str| -> Vec<(String, u64)> {
            forward
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(slug, v)| (slug.clone(), v[field].as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default()
        };
        for (field, name, kind, help) in [
            (
                "pending",
                "picket_forward_pending",
                "gauge",
                "Events waiting to be forwarded upstream.",
            ),
            (
                "delivered",
                "picket_forward_delivered_total",
                "counter",
                "Events the upstream accepted.",
            ),
            (
                "dead_letter",
                "picket_forward_dead_letter",
                "gauge",
                "Events the upstream refused for good.",
            ),
            (
                "dropped",
                "picket_forward_dropped_total",
                "counter",
                "Events given up undelivered (too old, or deleted first).",
            ),
        ] {
            metric(name, kind, help, labelled("project", per_project(field)));
        }
        let alerts = self.alerts.report(&self.db, &self.mail);
        for (field, name, kind, help) in [
            (
                "pending",
                "picket_alerts_pending",
                "gauge",
                "Alerts waiting in the outbox.",
            ),
            (
                "mails_sent",
                "picket_alert_mails_sent_total",
                "counter",
                "Alert mails sent since start.",
            ),
            (
                "digests_sent",
                "picket_alert_digests_sent_total",
                "counter",
                "Digest mails of held-back alerts sent since start.",
            ),
            (
                "webhooks_sent",
                "picket_alert_webhooks_sent_total",
                "counter",
                "Webhook calls answered 2xx since start.",
            ),
            (
                "failed",
                "picket_alerts_failed_total",
                "counter",
                "Alerts given up since start.",
            ),
        ] {
            metric(name, kind, help, one(alerts[field].as_u64().unwrap_or(0)));
        }
        metric(
            "picket_uptime_seconds",
            "gauge",
            "Seconds since the server process started.",
            one(self.started.elapsed().as_secs()),
        );
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
