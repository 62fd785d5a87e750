//! The service-level monitor: hands open incidents over when a new boundary set takes effect
//! (see [`ioc_wards::reform`]), escalates every missed target and closes resolutions nobody
//! disputed, as revisions written like any other change (see [`crate::actions`]). All three
//! records are pure functions of the incident revision (and the sets), so a second monitor or a
//! replay writes the same bytes.

use chrono::{DateTime, Utc};
use ioc_config::supervise::CancellationToken;
use ioc_schema::lifecycle;
use ioc_schema::sla;
use ioc_schema::{Incident, Status, Step};

use crate::actions::write;
use crate::view::Filtered;
use crate::{ApiError, AppState};

/// What one pass of the monitor wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    pub handed_over: usize,
    pub to_triage: usize,
    pub escalated: usize,
    pub closed: usize,
}

/// One pass of the monitor at `now`: hands over every open incident still held under a boundary
/// set that another has followed, escalates every missed target not escalated yet and closes
/// resolutions left undisputed for `dashboard.close_after`.
pub async fn sweep(s: &AppState, now: DateTime<Utc>) -> Result<Sweep, ApiError> {
    let _one_at_a_time = s.acting.lock().await;
    if !s.is_caught_up() {
        return Ok(Sweep::default());
    }
    let close_after = s.settings.config.dashboard.close_after.to_chrono();
    let sets = s.sets.read().expect("sets lock").clone();
    let current_set = sets.select(now).map(|set| set.version.clone());
    let due: Vec<Incident> = {
        let view = s.view.read().expect("view lock");
        // Only for incidents whose commands this instance applies: one writer for each; and
        // only those decoded that one of the three could apply to, judged from their rows.
        view.rows()
            .filter(|r| s.commands.owns(r.id()))
            .filter(|r| {
                let open = r.status().is_open();
                let handed_over = open
                    && r.ward_id().is_some()
                    && current_set
                        .as_deref()
                        .is_some_and(|v| r.boundary_version() != Some(v));
                let closes = r.status() == Status::Resolved
                    && r.resolved_at().is_some_and(|at| {
                        at.checked_add_signed(close_after)
                            .is_some_and(|due| due <= now)
                    });
                handed_over || closes || r.escalation_due(now)
            })
            .map(|r| r.incident())
            .filter_map(|i| {
                ioc_wards::reform::hand_over(&i, &sets, now, &s.settings)
                    .or_else(|| sla::next_escalation(&i, now).map(|e| sla::escalate(&i, e)))
                    .or_else(|| lifecycle::auto_close(&i, close_after, now))
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
            let step = next.history.last().map(|t| t.action);
            s.metrics
                .lifecycle_actions
                .with_label_values(&[step.unwrap_or(Step::AutoClose).as_str()])
                .inc();
            match step {
                Some(Step::HandOver) => {
                    let outcome = if next.ward.is_some() {
                        done.handed_over += 1;
                        "handed_over"
                    } else {
                        done.to_triage += 1;
                        "triage"
                    };
                    let set = next.assignment.boundary_version.as_deref().unwrap_or("");
                    s.metrics.handovers.with_label_values(&[set, outcome]).inc();
                }
                Some(Step::Escalate) => {
                    let e = next.escalations.last().expect("escalation recorded");
                    s.metrics
                        .escalations
                        .with_label_values(&[e.target.as_str(), &next.category])
                        .inc();
                    done.escalated += 1;
                }
                _ => done.closed += 1,
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
                    Ok(done) if done == Sweep::default() => {}
                    Ok(done) => tracing::info!(
                        handed_over = done.handed_over,
                        to_triage = done.to_triage,
                        escalated = done.escalated,
                        closed = done.closed,
                        "monitor pass"
                    ),
                    Err(ApiError(_, _, message)) => tracing::warn!("service-level monitor: {message}"),
                }
            }
        }
    }
}
