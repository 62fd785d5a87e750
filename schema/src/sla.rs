//! Service levels: how soon a ward unit should acknowledge and resolve an incident, and what
//! happens when it does not.
//!
//! Every clock here runs on event times written in the incident itself (`occurred_at`, the time
//! of an assignment or a reopening), never on the time a record happens to be processed. An
//! escalation is therefore a pure function of the incident revision and the instant it is judged
//! at: replaying the incident topic, or two monitors judging the same revision, give the same
//! record byte for byte.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Actor, Incident, Status, Step};

/// How urgent an incident is; picks the category's targets.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

/// The two clocks of a service level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// From assignment (or reopening) to the unit's acknowledgement.
    Acknowledge,
    /// From the event (or reopening) to the unit's resolution.
    Resolve,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Acknowledge => "acknowledge",
            Target::Resolve => "resolve",
        }
    }
}

/// A missed target, as recorded on the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Escalation {
    pub target: Target,
    /// The deadline that passed.
    #[serde(deserialize_with = "crate::time::utc")]
    pub due_at: DateTime<Utc>,
}

/// Targets for one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    /// No acknowledgement target when absent.
    pub acknowledge_within: Option<Duration>,
    pub resolve_within: Duration,
}

/// A category's targets: a default and optional overrides per priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryTargets {
    /// Priority of new incidents of the category.
    pub default_priority: Priority,
    pub default: Targets,
    pub by_priority: BTreeMap<Priority, Targets>,
}

impl CategoryTargets {
    pub fn for_priority(&self, p: Priority) -> Targets {
        self.by_priority.get(&p).copied().unwrap_or(self.default)
    }
}

fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Acknowledgement deadline of an assignment made at `at`.
pub fn acknowledge_due(targets: &Targets, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    targets.acknowledge_within.map(|d| plus(at, d))
}

/// Resolution deadline of a clock started at `from` (the event, or a reopening).
pub fn resolve_due(targets: &Targets, from: DateTime<Utc>) -> DateTime<Utc> {
    plus(from, targets.resolve_within)
}

/// Whether the incident waits for a unit's acknowledgement.
fn awaits_acknowledgement(status: Status) -> bool {
    matches!(status, Status::Assigned | Status::Reopened)
}

/// Whether the incident still waits for a resolution.
fn awaits_resolution(status: Status) -> bool {
    status.is_open() && status != Status::Resolved
}

/// The deadlines that have passed at `now` for an incident still waiting on them, earliest
/// first, whether or not they were escalated already.
pub fn overdue(i: &Incident, now: DateTime<Utc>) -> Vec<Escalation> {
    overdue_by(i.status, i.ack_due_at, i.sla_due_at, now)
}

/// [`overdue`] from the three fields it reads, for holders of an incident's summary.
pub fn overdue_by(
    status: Status,
    ack_due_at: Option<DateTime<Utc>>,
    sla_due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Escalation> {
    let mut out = Vec::new();
    if awaits_acknowledgement(status) {
        if let Some(due) = ack_due_at.filter(|d| *d <= now) {
            out.push(Escalation {
                target: Target::Acknowledge,
                due_at: due,
            });
        }
    }
    if awaits_resolution(status) && sla_due_at <= now {
        out.push(Escalation {
            target: Target::Resolve,
            due_at: sla_due_at,
        });
    }
    out.sort_by_key(|e| e.due_at);
    out
}

/// The next escalation due at `now` that the incident does not record yet.
pub fn next_escalation(i: &Incident, now: DateTime<Utc>) -> Option<Escalation> {
    overdue(i, now)
        .into_iter()
        .find(|e| !i.escalations.contains(e))
}

/// The revision that records `e`: the incident is marked overdue and the audit trail says which
/// target was missed. The entry is dated at the deadline (or the incident's last change, if that
/// came later), so it depends only on the incident.
pub fn escalate(i: &Incident, e: Escalation) -> Incident {
    let mut next = i.next_revision();
    let note = format!(
        "not {} by {}",
        match e.target {
            Target::Acknowledge => "acknowledged",
            Target::Resolve => "resolved",
        },
        e.due_at.to_rfc3339()
    );
    next.record(
        e.due_at.max(i.updated_at),
        Actor::monitor(),
        Step::Escalate,
        i.status,
        Some(note),
    );
    next.escalations.push(e);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// Occurred 08:00, acknowledgement due 09:00, resolution due the next day at 08:00.
    fn incident(status: Status) -> Incident {
        let mut i = crate::fixtures::incident("i1", status, "P001", t("2026-01-01T08:00:00Z"));
        i.ack_due_at = Some(t("2026-01-01T09:00:00Z"));
        i.sla_due_at = t("2026-01-02T08:00:00Z");
        i
    }

    #[test]
    fn an_escalation_does_not_carry_the_ward_a_previous_revision_took_it_from() {
        // Reassigned from P009 to P001 (that revision told P009 "withdrawn"), then it misses
        // its acknowledgement: the escalation concerns P001 alone.
        let mut i = incident(Status::Assigned);
        i.previous_ward = Some(crate::WardRef {
            id: "P009".into(),
            name: "Nine".into(),
        });
        let e = next_escalation(&i, t("2026-01-01T10:30:00Z")).unwrap();
        let next = escalate(&i, e);
        assert_eq!(next.previous_ward, None);
        let records = crate::AssignmentRecord::for_revision(&next);
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].ward_id, "P001");
        assert_eq!(records[0].change, crate::AssignmentChange::Updated);
    }

    #[test]
    fn nothing_is_due_before_the_deadline() {
        let i = incident(Status::Assigned);
        assert!(next_escalation(&i, t("2026-01-01T08:59:59Z")).is_none());
    }

    #[test]
    fn a_missed_acknowledgement_escalates_once_and_is_dated_by_the_deadline() {
        let i = incident(Status::Assigned);
        let e = next_escalation(&i, t("2026-01-01T10:30:00Z")).unwrap();
        assert_eq!(e.target, Target::Acknowledge);
        let next = escalate(&i, e.clone());
        assert_eq!(next.revision, 2);
        assert_eq!(next.history.last().unwrap().at, t("2026-01-01T09:00:00Z"));
        // Judged again, later: nothing new until the resolution deadline passes.
        assert!(next_escalation(&next, t("2026-01-01T20:00:00Z")).is_none());
        let r = next_escalation(&next, t("2026-01-03T00:00:00Z")).unwrap();
        assert_eq!(r.target, Target::Resolve);
        // The same revision judged twice gives the same record.
        assert_eq!(escalate(&i, e.clone()), escalate(&i, e));
    }

    #[test]
    fn acknowledged_or_resolved_incidents_are_not_escalated_for_those_targets() {
        let i = incident(Status::Acknowledged);
        assert!(next_escalation(&i, t("2026-01-01T12:00:00Z")).is_none());
        let i = incident(Status::Resolved);
        assert!(next_escalation(&i, t("2026-02-01T00:00:00Z")).is_none());
        let i = incident(Status::Cancelled);
        assert!(overdue(&i, t("2026-02-01T00:00:00Z")).is_empty());
    }

    #[test]
    fn priorities_pick_their_own_targets() {
        let normal = Targets {
            acknowledge_within: Some(Duration::hours(1)),
            resolve_within: Duration::hours(24),
        };
        let urgent = Targets {
            acknowledge_within: Some(Duration::minutes(5)),
            resolve_within: Duration::hours(1),
        };
        let c = CategoryTargets {
            default_priority: Priority::Normal,
            default: normal,
            by_priority: [(Priority::Urgent, urgent)].into(),
        };
        assert_eq!(c.for_priority(Priority::Urgent), urgent);
        assert_eq!(c.for_priority(Priority::Low), normal);
        let at = t("2026-01-01T08:00:00Z");
        assert_eq!(
            acknowledge_due(&c.for_priority(Priority::Urgent), at),
            Some(t("2026-01-01T08:05:00Z"))
        );
        assert_eq!(
            resolve_due(&c.for_priority(Priority::Urgent), at),
            t("2026-01-01T09:00:00Z")
        );
    }
}
