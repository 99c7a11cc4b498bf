//! What a running server reports about itself: the JSON of `picket status` and the same
//! figures in the Prometheus text exposition format for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::alert::AlertReport;
use crate::forward::ForwardReport;

use crate::intake::http::Intake;
use crate::supervisor::Workers;

/// What `picket status --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub pid: u32,
    pub version: String,
    pub uptime_seconds: u64,
    pub http_addr: String,
    pub udp_addr: Option<String>,
    /// The data file and its size in bytes.
    #[serde(default)]
    pub data_file: String,
    #[serde(default)]
    pub data_file_bytes: u64,
    pub workers: Vec<WorkerReport>,
    pub queue_depth: u64,
    /// Since when the writer waits for disk space (the disk holding the data file is full),
    /// RFC 3339; absent while it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_full_since: Option<String>,
    pub events: EventFigures,
    /// Requests refused since start, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// UDP datagrams dropped since start, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Envelope items accepted but not kept, by item type.
    pub items_dropped: BTreeMap<String, u64>,
    /// Events the projects' inbound filters dropped since start, by reason.
    #[serde(default)]
    pub filtered: BTreeMap<String, u64>,
    /// Per project (by slug), what was not kept as the data file counts it (since the project
    /// was made): by the server (items not stored, attachments refused) and by the SDKs (their
    /// client reports).
    #[serde(default)]
    pub projects_dropped: BTreeMap<String, Vec<crate::store::outcomes::Outcome>>,
    /// Web API requests for paths picket does not serve, by method and path.
    #[serde(default)]
    pub api_unsupported: BTreeMap<String, u64>,
    /// Source maps parsed since start (cached ones are not parsed again).
    #[serde(default)]
    pub source_maps_parsed: u64,
    /// Per forwarding project, by slug.
    pub forward: BTreeMap<String, ForwardReport>,
    pub alerts: AlertReport,
}

/// A supervised worker: `running`, `restarting` or `stopped`, its restarts and why it last
/// failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerReport {
    pub name: String,
    pub state: String,
    pub restarts: u64,
    pub last_error: Option<String>,
}

/// Events since start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventFigures {
    pub accepted: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub batches: u64,
    /// The stored events the file has room for within `retention.max_disk`, or none while it
    /// may still grow.
    pub disk_cap: Option<u64>,
    /// The dictionary new events are compressed with (hex id), none until the store has
    /// enough events to train one.
    pub dictionary: Option<String>,
}

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
    /// Web API requests for paths picket does not serve.
    pub api_unsupported: Arc<crate::api::Unsupported>,
    /// Where the listeners are, as bound (useful when the config asked for port 0).
    pub http_addr: String,
    pub udp_addr: Option<String>,
    /// The data file, whose size the status shows.
    pub data_file: std::path::PathBuf,
}

impl Live {
    pub fn snapshot(&self) -> StatusReport {
        let stats = self.intake.queue.stats();
        let counters = &self.intake.counters;
        let names = |map: BTreeMap<&'static str, u64>| {
            map.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        StatusReport {
            pid: self.pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            http_addr: self.http_addr.clone(),
            udp_addr: self.udp_addr.clone(),
            data_file: self.data_file.display().to_string(),
            data_file_bytes: std::fs::metadata(&self.data_file).map_or(0, |m| m.len()),
            workers: self
                .workers
                .snapshot()
                .into_iter()
                .map(|(name, w)| WorkerReport {
                    name: name.to_string(),
                    state: w.state.to_string(),
                    restarts: w.restarts,
                    last_error: w.last_error,
                })
                .collect(),
            queue_depth: stats.queued.load(Ordering::Relaxed),
            disk_full_since: crate::store::backend::waiting_for_space()
                .map(|since| crate::time::rfc3339(since as f64)),
            events: EventFigures {
                accepted: counters.events_accepted.load(Ordering::Relaxed),
                stored: stats.stored.load(Ordering::Relaxed),
                duplicates: stats.duplicates.load(Ordering::Relaxed),
                batches: stats.batches.load(Ordering::Relaxed),
                disk_cap: match stats.disk_cap.load(Ordering::Relaxed) {
                    0 => None,
                    n => Some(n),
                },
                dictionary: self
                    .intake
                    .codec
                    .current()
                    .map(|d| format!("{:016x}", d.id)),
            },
            rejected: names(counters.rejected()),
            dropped: names(counters.udp_dropped()),
            items_dropped: counters.dropped_items(),
            filtered: names(counters.filtered_by_reason()),
            projects_dropped: self.projects_dropped(),
            api_unsupported: self.api_unsupported.counts(),
            source_maps_parsed: self.intake.symbolicator.maps_parsed(),
            forward: self.forward.report(),
            alerts: self.alerts.report(&self.db, &self.mail),
        }
    }

    fn projects_dropped(&self) -> BTreeMap<String, Vec<crate::store::outcomes::Outcome>> {
        let read = || -> Result<_, crate::store::StoreError> {
            let txn = redb::ReadableDatabase::begin_read(&*self.db)?;
            let projects = crate::store::projects::list(&txn.open_table(crate::store::PROJECTS)?)?;
            let mut out = BTreeMap::new();
            for p in projects {
                let counts = crate::store::outcomes::of_project(&txn, p.id)?;
                if !counts.is_empty() {
                    out.insert(p.slug, counts);
                }
            }
            Ok(out)
        };
        read().unwrap_or_else(|e| {
            tracing::warn!("status: drop counters not read: {e}");
            BTreeMap::new()
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
            "picket_events_filtered_total",
            "counter",
            "Events the projects' inbound filters dropped, by reason.",
            labelled(
                "reason",
                counters
                    .filtered_by_reason()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
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
        let per_project = |field: fn(&ForwardReport) -> u64| -> Vec<(String, u64)> {
            forward
                .iter()
                .map(|(slug, f)| (slug.clone(), field(f)))
                .collect()
        };
        for (samples, name, kind, help) in [
            (
                per_project(|f| f.pending),
                "picket_forward_pending",
                "gauge",
                "Events waiting to be forwarded upstream.",
            ),
            (
                per_project(|f| f.delivered),
                "picket_forward_delivered_total",
                "counter",
                "Events the upstream accepted.",
            ),
            (
                per_project(|f| f.dead_letter),
                "picket_forward_dead_letter",
                "gauge",
                "Events the upstream refused for good.",
            ),
            (
                per_project(|f| f.dropped),
                "picket_forward_dropped_total",
                "counter",
                "Events given up undelivered (too old, or deleted first).",
            ),
        ] {
            metric(name, kind, help, labelled("project", samples));
        }
        let alerts = self.alerts.report(&self.db, &self.mail);
        for (value, name, kind, help) in [
            (
                alerts.pending,
                "picket_alerts_pending",
                "gauge",
                "Alerts waiting in the outbox.",
            ),
            (
                alerts.mails_sent,
                "picket_alert_mails_sent_total",
                "counter",
                "Alert mails sent since start.",
            ),
            (
                alerts.digests_sent,
                "picket_alert_digests_sent_total",
                "counter",
                "Digest mails of held-back alerts sent since start.",
            ),
            (
                alerts.webhooks_sent,
                "picket_alert_webhooks_sent_total",
                "counter",
                "Webhook calls answered 2xx since start.",
            ),
            (
                alerts.failed,
                "picket_alerts_failed_total",
                "counter",
                "Alerts given up since start.",
            ),
        ] {
            metric(name, kind, help, one(value));
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
