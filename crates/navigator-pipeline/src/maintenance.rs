//! Maintenance services. Each runs on an interval until shutdown, in the one process of the
//! cluster that holds maintenance leadership ([`Store::try_lead`]: a PostgreSQL advisory lock;
//! on SQLite every process leads, which is harmless since every effect is a compare-and-set).

use navigator_domain::Clock;
use navigator_store::{Leadership, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const DEFAULT_RESCUE_INTERVAL: Duration = Duration::from_secs(10);
/// How often embeddings no chunk uses any more are swept away.
pub const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(300);
/// How long a parser callback's delivery id is remembered: twice the ±300 s timestamp window,
/// so a replay is refused by its id or by its timestamp, whatever the clock skew between
/// processes (up to 5 minutes).
pub const WEBHOOK_DELIVERY_RETENTION: Duration = Duration::from_secs(600);

/// Returns jobs whose lease expired (their worker died or hung) to `retrying`, so no job stays
/// `running` longer than its lease plus one rescue interval; re-queues `waiting` jobs whose
/// `wake_at` has passed; every [`ORPHAN_SWEEP_INTERVAL`] it also removes embeddings no chunk
/// uses any more.
pub async fn run_rescuer(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    wake_workers: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut last_sweep: Option<std::time::Instant> = None;
    let mut leadership: Option<Box<dyn Leadership>> = None;
    loop {
        // Only the cluster's leader runs maintenance; the others keep asking.
        if let Some(lead) = leadership.as_mut()
            && !lead.still_leading().await
        {
            warn!("lost maintenance leadership");
            leadership = None;
        }
        if leadership.is_none() {
            match store.try_lead().await {
                Ok(Some(lead)) => {
                    info!("leading maintenance");
                    leadership = Some(lead);
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "could not ask for maintenance leadership"),
            }
        }
        metrics::gauge!("navigator_maintenance_leader").set(if leadership.is_some() {
            1.0
        } else {
            0.0
        });
        if leadership.is_none() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            continue;
        }
        if last_sweep.is_none_or(|at| at.elapsed() >= ORPHAN_SWEEP_INTERVAL) {
            match store.prune_orphan_embeddings().await {
                Ok(0) => {}
                Ok(n) => info!(removed = n, "removed embeddings no chunk uses"),
                Err(e) => warn!(error = %e, "orphan embedding sweep failed"),
            }
            // Delivery ids only matter while a callback's timestamp is acceptable.
            let cutoff = clock.now() - WEBHOOK_DELIVERY_RETENTION;
            if let Err(e) = store.prune_webhook_deliveries(cutoff).await {
                warn!(error = %e, "webhook delivery sweep failed");
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
        wake_due_jobs(store.as_ref(), clock.as_ref(), &wake_workers).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Re-queues waiting jobs whose `wake_at` passed (a remote parse to poll, a budget to re-check),
/// a batch at a time until none is left.
async fn wake_due_jobs(store: &dyn Store, clock: &dyn Clock, wake_workers: &Notify) {
    loop {
        match store.wake_due(clock.now()).await {
            Ok(woken) => {
                if !woken.is_empty() {
                    metrics::counter!("navigator_jobs_woken_total").increment(woken.len() as u64);
                    wake_workers.notify_waiters();
                }
                if woken.len() < navigator_store::WAKE_BATCH {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, "waking due jobs failed");
                return;
            }
        }
    }
}
