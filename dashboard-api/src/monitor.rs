//! The service-level monitor: hands open incidents over when a new boundary set takes effect
//! (see [`ioc_wards::reform`]), escalates every missed target and closes resolutions nobody
//! disputed, as revisions written like any other change (see [`crate::actions`]). All three
//! records are pure functions of the incident revision (and the sets), so a second monitor or a
//! replay writes the same bytes.
//!
//! It also attaches new incidents of the categories named in `dashboard.duplicates.auto_attach`
//! to the incident they most likely repeat ([`attach_duplicates`]): as each arrives, and on every
//! pass for any that arrived while this instance was starting or busy.

use chrono::{DateTime, Utc};
use ioc_config::supervise::CancellationToken;
use ioc_schema::lifecycle::{self, Action, Role};
use ioc_schema::sla;
use ioc_schema::{Incident, Source, Status, Step};
use tokio::sync::broadcast::error::RecvError;

use crate::actions::{act_locked, write};
use crate::view::Filtered;
use crate::{ApiError, AppState};

/// The name the audit trail gives the automatic attach.
pub const AUTO_ATTACH_ACTOR: &str = "automatic attach";

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
        // The partition may have moved to another instance since the pass began.
        if !s.commands.owns(&next.id) {
            continue;
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

/// Whether `i` is a new incident that `dashboard.duplicates.auto_attach` attaches: open, of a
/// category named there for its kind of source, within the duplicates' time window of `now`, and
/// untouched by anyone but the router and the monitor (an operator's merge, split or any other
/// action settles it for good).
fn waits_for_attach(s: &AppState, i: &Incident, now: DateTime<Utc>) -> bool {
    let rules = &s.settings.config.dashboard.duplicates;
    let camera = matches!(i.source, Source::Camera { .. });
    i.status.is_open()
        && i.duplicate_of.is_none()
        && rules.auto_attach.applies(&i.category, camera)
        && now - i.occurred_at <= rules.window.to_chrono()
        && i.history
            .iter()
            .all(|t| matches!(t.action, Step::Route | Step::Escalate | Step::HandOver))
}

/// Attaches new incidents (see [`waits_for_attach`]) whose commands this instance applies to the
/// nearest earlier open incident that may be the same thing, the first an operator would be
/// offered (`GET /v1/incidents/{id}/nearby`): a `mark_duplicate` by the system, its note saying
/// why it matched. `only`: that incident alone (as it arrives); `None`: every one still waiting.
/// Only an earlier incident is a target, so two never attach to each other. The number attached.
pub async fn attach_duplicates(
    s: &AppState,
    only: Option<&str>,
    now: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let rules = &s.settings.config.dashboard.duplicates;
    let attach = &rules.auto_attach;
    if attach.cameras.is_empty() && attach.reports.is_empty() {
        return Ok(0);
    }
    let _one_at_a_time = s.acting.lock().await;
    if !s.is_caught_up() {
        return Ok(0);
    }
    let window = rules.window.to_chrono();
    let pairs: Vec<(String, String, String)> = {
        let view = s.view.read().expect("view lock");
        let new: Vec<Incident> = match only {
            Some(id) => view.get(id).into_iter().collect(),
            // Judged from the rows first, so only likely ones are decoded.
            None => view
                .rows()
                .filter(|r| {
                    r.status().is_open()
                        && attach.applies(r.category(), r.is_camera())
                        && now - r.occurred_at() <= window
                })
                .map(|r| r.incident())
                .collect(),
        };
        new.into_iter()
            .filter(|i| s.commands.owns(&i.id) && waits_for_attach(s, i, now))
            .filter_map(|i| {
                let earlier = |r: &crate::view::Row<'_>| {
                    (r.occurred_at(), r.id()) < (i.occurred_at, i.id.as_str())
                };
                let found = view.nearby(&i, rules, earlier).into_iter().next()?;
                Some((i.id, found.id, found.why))
            })
            .collect()
    };
    let mut attached = 0;
    for (id, of, why) in pairs {
        if !s.commands.owns(&id) {
            continue; // moved to another instance meanwhile
        }
        let action = Action::MarkDuplicate {
            of,
            note: Some(format!("attached automatically: {why}")),
        };
        act_locked(s, &id, action, Role::System, AUTO_ATTACH_ACTOR, None).await?;
        s.metrics
            .lifecycle_actions
            .with_label_values(&["auto_attach"])
            .inc();
        attached += 1;
    }
    Ok(attached)
}

/// Runs [`sweep`] and [`attach_duplicates`] every `dashboard.sla_check_interval`, and
/// [`attach_duplicates`] for each new incident as it arrives, until `shutdown` is cancelled.
pub async fn monitor(s: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(s.settings.config.dashboard.sla_check_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = s.changes.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            change = changes.recv() => match change {
                Ok(i) if i.revision == 1 && s.is_caught_up() && waits_for_attach(&s, &i, s.now()) => {
                    if let Err(ApiError(_, _, message)) = attach_duplicates(&s, Some(&i.id), s.now()).await {
                        tracing::warn!(incident = %i.id, "automatic attach: {message}");
                    }
                }
                // Missed ones wait for the next pass.
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
            _ = tick.tick() => {
                match attach_duplicates(&s, None, s.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(attached = n, "automatic attach of duplicates"),
                    Err(ApiError(_, _, message)) => tracing::warn!("automatic attach: {message}"),
                }
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
