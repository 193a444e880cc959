//! Maintenance services. Each runs on an interval until shutdown. With SQLite every process runs
//! them (their effects are compare-and-set updates, so running twice is harmless); issue 3 adds
//! leader election so a cluster runs them once.

use navigator_domain::Clock;
use navigator_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const DEFAULT_RESCUE_INTERVAL: Duration = Duration::from_secs(10);

/// Returns jobs whose lease expired (their worker died or hung) to `retrying`, so no job stays
/// `running` longer than its lease plus one rescue interval.
pub async fn run_rescuer(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    wake_workers: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        match store.rescue_expired(clock.now()).await {
            Ok(rescued) if !rescued.is_empty() => {
                metrics::counter!("navigator_jobs_rescued_total").increment(rescued.len() as u64);
                for id in &rescued {
                    info!(job_id = %id, "rescued job with an expired lease");
                }
                wake_workers.notify_waiters();
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "rescuer pass failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
