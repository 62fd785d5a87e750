//! The service-level monitor: escalates every missed target and closes resolutions nobody
//! disputed, as revisions written like any other change (see [`crate::actions`]). Both records
//! are pure functions of the incident revision, so a second monitor or a replay writes the same
//! bytes.

use chrono::{DateTime, Utc};
use ioc_config::supervise::CancellationToken;
use ioc_schema::lifecycle;
use ioc_schema::sla;
use ioc_schema::{Incident, Step};

use crate::actions::write;
use crate::{ApiError, AppState};

/// What one pass of the monitor wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    pub escalated: usize,
    pub closed: usize,
}

/// One pass of the service-level monitor at `now`: escalates every missed target not escalated
/// yet and closes resolutions left undisputed for `dashboard.close_after`.
pub async fn sweep(s: &AppState, now: DateTime<Utc>) -> Result<Sweep, ApiError> {
    let _one_at_a_time = s.acting.lock().await;
    if !s.is_caught_up() {
        return Ok(Sweep::default());
    }
    let close_after = s.settings.config.dashboard.close_after.to_chrono();
    let due: Vec<Incident> = {
        let view = s.view.read().expect("view lock");
        view.iter()
            .filter_map(|i| {
                sla::next_escalation(i, now)
                    .map(|e| sla::escalate(i, e))
                    .or_else(|| lifecycle::auto_close(i, close_after, now))
            })
            .collect()
    };
    let mut done = Sweep::default();
    for mut next in due {
        // A pass can have thousands to write; at shutdown the rest waits for the next monitor.
        if s.stopping.is_cancelled() {
            break;
        }
        // Several targets may have passed since the last pass; record each in turn.
        loop {
            write(s, &next).await?;
            match next.history.last().map(|t| t.action) {
                Some(Step::Escalate) => {
                    let e = next.escalations.last().expect("escalation recorded");
                    s.metrics
                        .escalations
                        .with_label_values(&[e.target.as_str(), &next.category])
                        .inc();
                    s.metrics
                        .lifecycle_actions
                        .with_label_values(&[Step::Escalate.as_str()])
                        .inc();
                    done.escalated += 1;
                }
                _ => {
                    s.metrics
                        .lifecycle_actions
                        .with_label_values(&[Step::AutoClose.as_str()])
                        .inc();
                    done.closed += 1;
                }
            }
            match sla::next_escalation(&next, now) {
                Some(e) => next = sla::escalate(&next, e),
                None => break,
            }
        }
    }
    Ok(done)
}

/// Runs [`sweep`] every `dashboard.sla_check_interval` until `shutdown` is cancelled.
pub async fn monitor(s: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(s.settings.config.dashboard.sla_check_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {
                match sweep(&s, s.now()).await {
                    Ok(Sweep { escalated: 0, closed: 0 }) => {}
                    Ok(done) => tracing::info!(escalated = done.escalated, closed = done.closed, "service-level monitor pass"),
                    Err(ApiError(_, _, message)) => tracing::warn!("service-level monitor: {message}"),
                }
            }
        }
    }
}
