//! The server's own log tailers (`[[tail]]` in picket.toml): the same reading and parsing as
//! `picket tail`, feeding the local pipeline directly, with positions kept in the data file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase};
use serde_json::Value;

use super::{Delivery, Options, Positions, Record, Shipper, Sink, TailError};
use crate::config::TailSource;
use crate::event::normalize::{Context, normalize_value};
use crate::intake::IntakeError;
use crate::intake::http::Intake;
use crate::pipeline::Queue;
use crate::store::{PROJECT_SLUGS, PROJECTS, TAIL_POSITIONS, decode, encode, projects};

/// Events into the local pipeline, acknowledged once durable.
pub struct LocalSink {
    intake: Arc<Intake>,
    project: u64,
}

impl Sink for LocalSink {
    async fn deliver(&self, event: Value) -> Delivery {
        let ctx = Context {
            received: crate::time::now(),
            event_id: None,
            client_ip: None,
            limits: self.intake.limits.event(),
        };
        let event = match normalize_value(event, &ctx) {
            Ok(event) => event,
            Err(e) => return Delivery::Refused(e.to_string()),
        };
        match self.intake.submit(self.project, event).await {
            Ok(_) => Delivery::Accepted,
            Err(IntakeError::QueueFull) => {
                Delivery::Wait(Duration::from_secs(1), "queue full".into())
            }
            Err(e) => Delivery::Retry(e.to_string()),
        }
    }

    fn describe(&self) -> String {
        format!("project {}", self.project)
    }
}

/// Positions in the data file, written through the writer.
pub struct StorePositions {
    queue: Queue,
    known: HashMap<String, Record>,
}

impl Positions for StorePositions {
    fn get(&self, path: &str) -> Option<Record> {
        self.known.get(path).cloned()
    }

    fn set(&mut self, path: &str, record: Record) -> Result<(), TailError> {
        let (key, row) = (path.to_string(), encode(&record));
        tokio::task::block_in_place(|| {
            self.queue.write(move |txn| {
                txn.open_table(TAIL_POSITIONS)?
                    .insert(key.as_str(), row.as_slice())?;
                Ok(())
            })
        })?;
        self.known.insert(path.to_string(), record);
        Ok(())
    }
}

/// One shipper per `[[tail]]` entry.
pub fn shippers(
    db: &Database,
    intake: &Arc<Intake>,
    sources: &[TailSource],
) -> Result<Vec<Shipper<LocalSink, StorePositions>>, TailError> {
    let error = |e: crate::store::StoreError| TailError::Store(e);
    let txn = db.begin_read().map_err(|e| error(e.into()))?;
    let table = txn
        .open_table(TAIL_POSITIONS)
        .map_err(|e| error(e.into()))?;
    let mut known = HashMap::new();
    for source in sources {
        let key = source.path.display().to_string();
        if let Some(row) =
            redb::ReadableTable::get(&table, key.as_str()).map_err(|e| error(e.into()))?
        {
            known.insert(
                key,
                decode::<Record>("tail_positions", row.value()).map_err(error)?,
            );
        }
    }
    let projects = txn.open_table(PROJECTS).map_err(|e| error(e.into()))?;
    let slugs = txn.open_table(PROJECT_SLUGS).map_err(|e| error(e.into()))?;
    sources
        .iter()
        .map(|source| {
            let project = projects::find(&projects, &slugs, &source.project).map_err(|cause| {
                TailError::Source {
                    path: source.path.display().to_string(),
                    cause,
                }
            })?;
            let options = Options {
                format: source.format,
                environment: source.environment.clone(),
                release: source.release.clone(),
                server_name: None,
            };
            let positions = StorePositions {
                queue: intake.queue.clone(),
                known: known.clone(),
            };
            let sink = LocalSink {
                intake: intake.clone(),
                project: project.id,
            };
            Ok(Shipper::new(
                sink,
                positions,
                options,
                vec![source.path.clone()],
            ))
        })
        .collect()
}

/// How often the server's tailers look at their files.
const POLL: Duration = Duration::from_millis(250);

/// The `tail` worker: follows every `[[tail]]` file until stopped.
pub async fn run(
    db: Arc<Database>,
    intake: Arc<Intake>,
    sources: Vec<TailSource>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), TailError> {
    let mut shippers = shippers(&db, &intake, &sources)?;
    let mut reported = std::collections::HashSet::new();
    loop {
        for shipper in &mut shippers {
            let pass = shipper.pass(3, Duration::from_secs(5)).await?;
            for e in pass.unreadable {
                if reported.insert(e.to_string()) {
                    tracing::warn!("tail: {e}");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = crate::supervisor::stopped(&mut stop) => return Ok(()),
        }
    }
}
