//! The supervised worker that finds what did not happen: every second it reads which
//! monitors are overdue (a read transaction, so it never holds up the writer), and only when
//! some are, marks them missed or timed out in one write and stores the failure events.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::intake::http::Intake;
use crate::store::StoreError;

/// How often overdue monitors are looked for.
const TICK: Duration = Duration::from_secs(1);

pub async fn run(
    db: Arc<redb::Database>,
    intake: Arc<Intake>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = crate::supervisor::stopped(&mut stop) => return Ok(()),
        }
        let (db, queue) = (db.clone(), intake.queue.clone());
        let failures = tokio::task::spawn_blocking(move || {
            let now = crate::time::now();
            let due = super::due(&db, now)?;
            if due.is_empty() {
                return Ok(Vec::new());
            }
            queue.write(move |txn| super::apply_due(txn, &due, now))
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?;
        for (project, event) in failures {
            if let Err(e) = intake.submit(project, event).await {
                tracing::warn!("a cron monitor's failure event was not stored: {e}");
            }
        }
    }
}
