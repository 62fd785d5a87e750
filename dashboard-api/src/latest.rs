//! Keeping each incident's latest revision the last record of it on the incident topic.
//!
//! Revisions are written by their incident's one owner, in order, so the last record of an
//! incident is normally its latest revision. One writer can break that: a router that crashed
//! replays the reports it had not committed and writes their revision 1 again, maybe after a
//! ward unit's change built revision 2 or 3 on it. Every reader keeps the highest revision, so
//! the view is unaffected; but the incident topic is compacted, and compaction keeps each key's
//! last record: the older revision 1. (Seen in the fault harness on tansu's SQLite storage,
//! which compacts eagerly: a dashboard started afresh got revision 1 of incidents the survivors
//! held at revision 4.) So the view notes incidents whose last record is older than the
//! revision it holds, and the instance owning an incident's commands writes the held revision
//! again, byte for byte: the last record is the latest again, and no revision gains a second
//! content.

use std::time::Duration;

use ioc_config::supervise::CancellationToken;

use crate::AppState;

/// How often the owner looks for incidents whose last record is older than their latest.
const PASS: Duration = Duration::from_secs(2);

/// Runs [`restore`] every [`PASS`] until `shutdown` is cancelled.
pub async fn keep_latest_last(s: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(PASS);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {
                restore(&s).await;
            }
        }
    }
}

/// Writes again the latest revision of every incident this instance owns whose last record on
/// the topic is an older revision; returns how many it wrote. Nothing before the view has
/// caught up with the topic (an older record read then may be followed by the latest).
pub async fn restore(s: &AppState) -> usize {
    if !s.is_caught_up() {
        return 0;
    }
    // Under the actions' lock: no newer revision is being written meanwhile, so what the view
    // holds is the latest.
    let _one_at_a_time = s.acting.lock().await;
    let due = s
        .view
        .read()
        .expect("view lock")
        .behind(|id| s.commands.owns(id));
    let topic = &s.settings.config.topics.incidents;
    let mut written = 0;
    for (id, record) in due {
        if let Err(e) = s.sink.send(topic, &id, &record).await {
            tracing::warn!(incident = %id, "cannot write the latest revision again (next pass tries again): {e}");
            break;
        }
        written += 1;
    }
    if written > 0 {
        s.metrics
            .lifecycle_actions
            .with_label_values(&["latest_written_again"])
            .inc_by(written as u64);
        tracing::info!(
            incidents = written,
            "latest revisions written again after an older record of each (a replayed revision 1)"
        );
    }
    written
}
