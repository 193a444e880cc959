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
/// How often embeddings no chunk uses any more are swept away.
pub const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// Returns jobs whose lease expired (their worker died or hung) to `retrying`, so no job stays
/// `running` longer than its lease plus one rescue interval; every [`ORPHAN_SWEEP_INTERVAL`] it
/// also removes embeddings no chunk uses any more.
pub async fn run_rescuer(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    wake_workers: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut last_sweep: Option<std::time::Instant> = None;
    loop {
        if last_sweep.is_none_or(|at| at.elapsed() >= ORPHAN_SWEEP_INTERVAL) {
            match store.prune_orphan_embeddings().await {
                Ok(0) => {}
                Ok(n) => info!(removed = n, "removed embeddings no chunk uses"),
                Err(e) => warn!(error = %e, "orphan embedding sweep failed"),
            }
            last_sweep = Some(std::time::Instant::now());
        }
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
