//! What happens to open incidents when a new boundary set takes effect.
//!
//! The rule: an incident is routed with the set in force when it reached Kafka (its received
//! time). When a later set takes effect, every incident still open with a ward of an earlier set
//! is handed to the ward that holds its location under the new set, as a revision of its own:
//! the audit trail records a [`Step::HandOver`] naming both wards and both sets, and
//! `previous_ward` makes the assignments topic withdraw it from the old ward and assign it to the
//! new one. An incident whose location no ward of the new set holds goes to operators' triage.
//!
//! [`hand_over`] is a pure function of the incident's revision and the sets, dated at the moment
//! the new set took effect (or at the incident's last change, if that was later), so every
//! dashboard and every replay writes the same record.

use chrono::{DateTime, Utc};
use ioc_config::load::Settings;
use ioc_schema::sla;
use ioc_schema::{Actor, AssignRule, Assignment, HandOver, Incident, Status, Step, WardRef};

use crate::sets::{BoundarySet, BoundarySets};

/// The revision that hands `incident` over to the set in force at `now`, or `None` when it is
/// closed, has no ward, or was already routed or assigned with that set (or a later one).
pub fn hand_over(
    incident: &Incident,
    sets: &BoundarySets,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Option<Incident> {
    let current = sets.select(now)?;
    let old_ward = incident.ward.as_ref()?;
    if !incident.status.is_open() || !superseded(incident, sets, current) {
        return None;
    }
    let at = current.valid_from.max(incident.updated_at);
    let outcome = current
        .index
        .locate(incident.location.lon, incident.location.lat);
    let new_ward = outcome.ward.map(|w| {
        let w = &current.index.wards()[w as usize];
        WardRef {
            id: w.id.clone(),
            name: w.name.clone(),
        }
    });
    let mut next = incident.next_revision();
    next.previous_ward = Some(old_ward.clone());
    next.ward = new_ward.clone();
    next.assignment = Assignment {
        rule: outcome.rule,
        distance_m: outcome.distance_m.map(|d| (d * 100.0).round() / 100.0),
        reason: None,
        boundary_version: Some(current.version.clone()),
    };
    let category = settings.category(&incident.category);
    let (to, note) = match &new_ward {
        Some(w) => {
            next.unit = category.map(|c| c.unit.clone()).or(next.unit);
            let to = match incident.status {
                // A proposal awaiting verification stays one; a resolution waits for the
                // citizen, now under the new ward.
                s @ (Status::New | Status::Verified | Status::Resolved) => s,
                _ => {
                    // The new unit has not seen it: its acknowledgement clock starts now.
                    next.ack_due_at = category.and_then(|c| {
                        sla::acknowledge_due(&c.targets().for_priority(incident.priority), at)
                    });
                    Status::Assigned
                }
            };
            let note = format!(
                "boundary set {} took effect: {} ({}) is now in {} ({})",
                current.version, old_ward.name, old_ward.id, w.name, w.id
            );
            (to, note)
        }
        None => {
            next.unit = None;
            next.ack_due_at = None;
            next.assignment.rule = AssignRule::Unassigned;
            let reason = format!(
                "outside every ward of boundary set {}, which took effect after it was routed to {} ({})",
                current.version, old_ward.name, old_ward.id
            );
            next.assignment.reason = Some(reason.clone());
            (Status::Unassigned, reason)
        }
    };
    next.record(at, Actor::reform(), Step::HandOver, to, Some(note));
    if let Some(t) = next.history.last_mut() {
        t.hand_over = Some(HandOver {
            from_ward: old_ward.clone(),
            from_set: incident.assignment.boundary_version.clone(),
            to_ward: new_ward,
            to_set: current.version.clone(),
        });
    }
    Some(next)
}

/// Whether the set `incident`'s ward came from has been followed by `current`: another version
/// that took effect later (a set no longer configured counts as earlier).
fn superseded(incident: &Incident, sets: &BoundarySets, current: &BoundarySet) -> bool {
    match incident.assignment.boundary_version.as_deref() {
        Some(v) if v == current.version => false,
        Some(v) => sets
            .sets
            .iter()
            .find(|s| s.version == v)
            .is_none_or(|old| old.valid_from < current.valid_from),
        // Incidents from before sets were recorded: judged by when they were last changed.
        None => incident.updated_at < current.valid_from,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use geo::{polygon, MultiPolygon};
    use ioc_schema::fixtures;
    use ioc_schema::AssignmentChange;
    use ioc_schema::AssignmentRecord;

    use super::*;
    use crate::rule::{BuildOptions, Ward};
    use crate::WardIndex;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn square(id: &str, x0: f64, x1: f64) -> Ward {
        Ward {
            id: id.into(),
            name: format!("Ward {id}"),
            geometry: MultiPolygon(vec![polygon![
                (x: x0, y: 0.0), (x: x1, y: 0.0), (x: x1, y: 0.01), (x: x0, y: 0.01)
            ]]),
        }
    }

    fn set(version: &str, from: &str, to: Option<&str>, wards: Vec<Ward>) -> BoundarySet {
        BoundarySet {
            version: version.into(),
            valid_from: t(from),
            valid_to: to.map(t),
            index: Arc::new(WardIndex::build(wards, BuildOptions::default())),
            source: "test".into(),
            modified: None,
            predecessors: None,
        }
    }

    /// Two wards side by side until 2025-07-01, then one unit where both were, minus the
    /// eastern end (0.015 to 0.02), which the new map leaves out.
    fn sets() -> BoundarySets {
        BoundarySets {
            sets: vec![
                set(
                    "old",
                    "2019-01-01T00:00:00Z",
                    Some("2025-07-01T00:00:00Z"),
                    vec![square("A", 0.0, 0.01), square("B", 0.01, 0.02)],
                ),
                set(
                    "new",
                    "2025-07-01T00:00:00Z",
                    None,
                    vec![square("M", 0.0, 0.015)],
                ),
            ],
        }
    }

    fn open_in(ward: &str, lon: f64, status: Status) -> Incident {
        let mut i = fixtures::incident("r1", status, ward, t("2025-06-20T08:00:00Z"));
        i.location.lon = lon;
        i.location.lat = 0.005;
        i.assignment.boundary_version = Some("old".into());
        i
    }

    fn settings() -> Settings {
        Settings::load(None, std::iter::empty()).unwrap()
    }

    #[test]
    fn an_open_incident_goes_to_the_unit_that_holds_its_place_when_the_new_set_takes_effect() {
        let (sets, settings) = (sets(), settings());
        let i = open_in("A", 0.005, Status::InProgress);
        assert_eq!(
            hand_over(&i, &sets, t("2025-06-30T23:59:59Z"), &settings),
            None,
            "nothing changes while the old set is in force"
        );
        let next = hand_over(&i, &sets, t("2025-07-03T00:00:00Z"), &settings).unwrap();
        assert_eq!(next.revision, i.revision + 1);
        assert_eq!(next.ward.as_ref().unwrap().id, "M");
        assert_eq!(next.previous_ward.as_ref().unwrap().id, "A");
        assert_eq!(
            next.status,
            Status::Assigned,
            "the new unit must acknowledge it"
        );
        assert_eq!(next.assignment.boundary_version.as_deref(), Some("new"));
        // Dated when the set took effect, not when the monitor noticed, so replays agree.
        assert_eq!(next.updated_at, t("2025-07-01T00:00:00Z"));
        let step = next.history.last().unwrap();
        assert_eq!(step.action, Step::HandOver);
        let h = step.hand_over.as_ref().unwrap();
        assert_eq!(
            (h.from_ward.id.as_str(), h.from_set.as_deref()),
            ("A", Some("old"))
        );
        assert_eq!(h.to_ward.as_ref().map(|w| w.id.as_str()), Some("M"));
        assert_eq!(h.to_set, "new");
        let records = AssignmentRecord::for_revision(&next);
        let changes: Vec<_> = records
            .iter()
            .map(|r| (r.ward_id.as_str(), r.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("A", AssignmentChange::Withdrawn),
                ("M", AssignmentChange::Assigned)
            ]
        );
        assert_eq!(
            hand_over(&next, &sets, t("2025-07-04T00:00:00Z"), &settings),
            None,
            "handed over once"
        );
        assert_eq!(
            hand_over(&i, &sets, t("2025-08-01T00:00:00Z"), &settings),
            Some(next),
            "the same record whenever it is computed"
        );
    }

    #[test]
    fn a_place_no_new_ward_holds_goes_to_triage() {
        let (sets, settings) = (sets(), settings());
        let i = open_in("B", 0.018, Status::Assigned);
        let next = hand_over(&i, &sets, t("2025-07-02T00:00:00Z"), &settings).unwrap();
        assert_eq!(next.status, Status::Unassigned);
        assert_eq!(next.ward, None);
        assert_eq!(next.unit, None);
        assert_eq!(next.previous_ward.as_ref().unwrap().id, "B");
        assert!(next
            .assignment
            .reason
            .as_deref()
            .unwrap()
            .contains("outside every ward of boundary set new"));
        let step = next.history.last().unwrap().hand_over.clone().unwrap();
        assert_eq!(step.to_ward, None);
    }

    #[test]
    fn proposals_and_resolutions_keep_their_status_and_closed_or_current_ones_stay() {
        let (sets, settings) = (sets(), settings());
        let at = t("2025-07-02T00:00:00Z");
        for s in [Status::New, Status::Verified, Status::Resolved] {
            let next = hand_over(&open_in("B", 0.012, s), &sets, at, &settings).unwrap();
            assert_eq!((next.status, next.ward.unwrap().id.as_str()), (s, "M"));
        }
        for s in [Status::Closed, Status::Cancelled, Status::Duplicate] {
            assert_eq!(
                hand_over(&open_in("A", 0.005, s), &sets, at, &settings),
                None
            );
        }
        let mut current = open_in("M", 0.005, Status::Assigned);
        current.assignment.boundary_version = Some("new".into());
        assert_eq!(hand_over(&current, &sets, at, &settings), None);
        let mut triage = open_in("A", 0.005, Status::Unassigned);
        triage.ward = None;
        assert_eq!(
            hand_over(&triage, &sets, at, &settings),
            None,
            "triage stays with operators"
        );
    }
}
