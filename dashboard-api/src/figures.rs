//! The numbers an IOC reports each month, computed from incidents' own event times (so the same
//! topic always gives the same figures): resolution and acknowledgement times, service-level
//! compliance, escalations, rejections and reroutes, per ward and category.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ioc_schema::sla::{self, Target};
use ioc_schema::{ActorRole, Incident, Status, Step};
use serde::Serialize;

/// Figures for one ward and category (or for everything, in `total`).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Row {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ward: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub category: String,
    /// The specialist unit that handles the category in the ward.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// Incidents that occurred in the period.
    pub received: usize,
    /// Incidents an operator verified.
    pub verified: usize,
    /// Still needing work now (resolved ones wait only for the citizen).
    pub open: usize,
    /// With a resolution (resolved, or closed after one).
    pub resolved: usize,
    pub resolution_seconds_p50: Option<i64>,
    pub resolution_seconds_p90: Option<i64>,
    pub acknowledge_seconds_p50: Option<i64>,
    pub acknowledge_seconds_p90: Option<i64>,
    /// Share of resolved incidents resolved by their deadline (0..1).
    pub resolved_on_time_rate: Option<f64>,
    /// Share of acknowledged incidents acknowledged by their deadline (0..1).
    pub acknowledged_on_time_rate: Option<f64>,
    /// Open now and past a deadline.
    pub overdue_now: usize,
    /// Escalations recorded (missed targets).
    pub escalations: usize,
    /// Rejections by a unit as outside its jurisdiction.
    pub rejected: usize,
    /// Incidents handed to another ward after a rejection.
    pub rerouted: usize,
    /// Resolutions the citizen disputed (the incident was reopened).
    pub reopened: usize,
    /// Resolutions the citizen confirmed.
    pub confirmed: usize,
    pub duplicates: usize,
    pub cancelled: usize,
}

/// The figures of a set of incidents.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub total: Row,
    pub rows: Vec<Row>,
}

#[derive(Default)]
struct Acc {
    row: Row,
    resolution: Vec<i64>,
    acknowledge: Vec<i64>,
    on_time: usize,
    acked: usize,
    acked_on_time: usize,
}

impl Acc {
    fn add(&mut self, i: &Incident, now: DateTime<Utc>) {
        let r = &mut self.row;
        r.received += 1;
        if r.unit.is_empty() {
            if let Some(unit) = &i.unit {
                r.unit.clone_from(unit);
            }
        }
        if i.history.iter().any(|t| t.action == Step::Verify) {
            r.verified += 1;
        }
        if i.status.is_open() && i.status != Status::Resolved {
            r.open += 1;
        }
        if !sla::overdue(i, now).is_empty() {
            r.overdue_now += 1;
        }
        r.escalations += i.escalations.len();
        match i.status {
            Status::Duplicate => r.duplicates += 1,
            Status::Cancelled => r.cancelled += 1,
            _ => {}
        }
        let mut rejected_before = false;
        let mut assigned_at = None;
        let mut acknowledged = false;
        for t in &i.history {
            match t.action {
                Step::Route | Step::Assign if t.to == Status::Assigned => {
                    if t.action == Step::Assign && rejected_before {
                        r.rerouted += 1;
                        rejected_before = false;
                    }
                    assigned_at = Some(t.at);
                }
                Step::Reject => {
                    r.rejected += 1;
                    rejected_before = true;
                }
                Step::Reopen => r.reopened += 1,
                Step::Close if t.actor.role == ActorRole::Citizen => r.confirmed += 1,
                Step::Acknowledge if !acknowledged => {
                    acknowledged = true;
                    if let Some(from) = assigned_at {
                        self.acknowledge.push((t.at - from).num_seconds());
                    }
                    self.acked += 1;
                    // Late exactly when the acknowledgement target was escalated.
                    if !i
                        .escalations
                        .iter()
                        .any(|e| e.target == Target::Acknowledge && e.due_at <= t.at)
                    {
                        self.acked_on_time += 1;
                    }
                }
                _ => {}
            }
        }
        if let Some(res) = &i.resolution {
            r.resolved += 1;
            self.resolution.push((res.at - i.occurred_at).num_seconds());
            if res.at <= i.sla_due_at {
                self.on_time += 1;
            }
        }
    }

    fn finish(mut self) -> Row {
        let rate = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
        self.resolution.sort_unstable();
        self.acknowledge.sort_unstable();
        let r = &mut self.row;
        r.resolution_seconds_p50 = percentile(&self.resolution, 50);
        r.resolution_seconds_p90 = percentile(&self.resolution, 90);
        r.acknowledge_seconds_p50 = percentile(&self.acknowledge, 50);
        r.acknowledge_seconds_p90 = percentile(&self.acknowledge, 90);
        r.resolved_on_time_rate = rate(self.on_time, r.resolved);
        r.acknowledged_on_time_rate = rate(self.acked_on_time, self.acked);
        self.row
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

impl Figures {
    /// Figures per the ward each incident holds now.
    pub fn compute<I: Borrow<Incident>>(
        incidents: impl Iterator<Item = I>,
        now: DateTime<Utc>,
    ) -> Self {
        Figures::compute_in(
            incidents.map(|i| {
                let ward = i.borrow().ward.as_ref().map(|w| w.id.clone());
                (i, ward)
            }),
            now,
        )
    }

    /// Figures per the ward given with each incident (`None`: unassigned), e.g. the wards of
    /// another boundary set.
    pub fn compute_in<I: Borrow<Incident>>(
        incidents: impl Iterator<Item = (I, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut total = Acc::default();
        let mut groups: BTreeMap<(String, String), Acc> = BTreeMap::new();
        for (i, ward) in incidents {
            let i = i.borrow();
            let ward = ward.unwrap_or_else(|| "unassigned".to_string());
            total.add(i, now);
            groups
                .entry((ward, i.category.clone()))
                .or_default()
                .add(i, now);
        }
        let mut total = total.finish();
        total.unit.clear();
        Figures {
            total,
            rows: groups
                .into_iter()
                .map(|((ward, category), acc)| {
                    let mut row = acc.finish();
                    row.ward = ward;
                    // The unit is per category; the total mixes them.
                    row.category = category;
                    row
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ioc_schema::fixtures;
    use ioc_schema::sla::Escalation;
    use ioc_schema::{ActorRole, Resolution, Transition};

    fn t(h: i64) -> DateTime<Utc> {
        "2026-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(h)
    }

    fn step(at: i64, action: Step, to: Status) -> Transition {
        fixtures::transition(t(at), ActorRole::Operator, action, to)
    }

    /// An incident that occurred at minute 0, due at `due` minutes, with these steps.
    fn incident(id: &str, due: i64, steps: Vec<Transition>, resolved_at: Option<i64>) -> Incident {
        let status = steps.last().map_or(Status::Assigned, |s| s.to);
        let mut i = fixtures::incident(id, status, "P001", t(0));
        i.ack_due_at = Some(t(30));
        i.sla_due_at = t(due);
        i.resolution = resolved_at.map(|m| Resolution {
            text: "done".into(),
            photo_urls: vec![],
            at: t(m),
        });
        i.history = steps;
        i
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn figures_count_times_compliance_and_reroutes() {
        let route = |m| step(m, Step::Route, Status::Assigned);
        let on_time = incident(
            "a",
            600,
            vec![
                route(0),
                step(10, Step::Acknowledge, Status::Acknowledged),
                step(100, Step::Resolve, Status::Resolved),
            ],
            Some(100),
        );
        let mut late = incident(
            "b",
            600,
            vec![
                route(0),
                step(40, Step::Acknowledge, Status::Acknowledged),
                step(700, Step::Resolve, Status::Resolved),
            ],
            Some(700),
        );
        late.escalations = vec![
            Escalation {
                target: Target::Acknowledge,
                due_at: t(30),
            },
            Escalation {
                target: Target::Resolve,
                due_at: t(600),
            },
        ];
        let rerouted = incident(
            "c",
            600,
            vec![
                route(0),
                step(5, Step::Reject, Status::Unassigned),
                step(8, Step::Verify, Status::Verified),
                step(20, Step::Assign, Status::Assigned),
            ],
            None,
        );
        let mut confirmed = on_time.clone();
        confirmed.id = "d".into();
        confirmed.history.push(fixtures::transition(
            t(200),
            ActorRole::Citizen,
            Step::Close,
            Status::Closed,
        ));
        // An operator's close is not a citizen's confirmation.
        let mut closed_by_operator = on_time.clone();
        closed_by_operator.id = "e".into();
        closed_by_operator
            .history
            .push(step(200, Step::Close, Status::Closed));
        let f = Figures::compute([&confirmed, &closed_by_operator].into_iter(), t(1000));
        assert_eq!((f.total.confirmed, f.total.verified), (1, 0));
        let all = [on_time, late, rerouted];
        let f = Figures::compute(all.iter(), t(1000));
        let r = &f.total;
        assert_eq!((r.received, r.open, r.resolved), (3, 1, 2));
        assert_eq!(r.resolution_seconds_p50, Some(100 * 60));
        assert_eq!(r.resolution_seconds_p90, Some(700 * 60));
        assert_eq!(r.acknowledge_seconds_p50, Some(10 * 60));
        assert_eq!(r.resolved_on_time_rate, Some(0.5));
        assert_eq!(r.acknowledged_on_time_rate, Some(0.5));
        assert_eq!((r.rejected, r.rerouted, r.escalations), (1, 1, 2));
        assert_eq!(r.verified, 1);
        // "c" is assigned, unacknowledged since minute 20 (due at 30) and unresolved past 600.
        assert_eq!(r.overdue_now, 1);
        assert_eq!(f.rows.len(), 1);
        assert_eq!(f.rows[0].ward, "P001");
        let mut view = crate::view::View::default();
        for i in all {
            view.apply(i);
        }
        let (total, list) = view.overdue(&crate::view::Query::default(), t(1000), 10);
        assert_eq!((total, list.len()), (1, 1));
        assert_eq!(list[0].incident.id, "c");
        assert_eq!(list[0].target, Target::Acknowledge);
    }
}
