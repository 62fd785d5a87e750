//! A plain incident to start tests and benchmarks from (the crate's own tests, and others with
//! the `fixtures` feature): set the fields a case is about, leave the rest.

use chrono::{DateTime, Utc};

use crate::sla::Priority;
use crate::{
    Actor, ActorRole, AssignRule, Assignment, Channel, Incident, Location, Source, Status, Step,
    Transition, WardRef, INCIDENT_SCHEMA,
};

/// An environment report located inside `ward` (id and name alike), everything dated `at`,
/// due `at`, with no history.
pub fn incident(id: &str, status: Status, ward: &str, at: DateTime<Utc>) -> Incident {
    Incident {
        schema: INCIDENT_SCHEMA.into(),
        id: id.into(),
        revision: 1,
        source: Source::Report {
            channel: Channel::App,
        },
        category: "environment".into(),
        text: None,
        location: Location {
            lat: 0.0,
            lon: 0.0,
            accuracy_m: None,
        },
        address: None,
        media_urls: vec![],
        ward: Some(WardRef {
            id: ward.into(),
            name: ward.into(),
        }),
        assignment: Assignment {
            rule: AssignRule::Inside,
            distance_m: None,
            reason: None,
            boundary_version: None,
        },
        unit: Some("unit".into()),
        status,
        priority: Priority::Normal,
        occurred_at: at,
        received_at: at,
        ack_due_at: None,
        sla_due_at: at,
        updated_at: at,
        resolution: None,
        duplicate_of: None,
        merged: vec![],
        previous_ward: None,
        escalations: vec![],
        situation: None,
        history: vec![],
    }
}

/// An audit-trail entry by someone of `role` (named alike).
pub fn transition(at: DateTime<Utc>, role: ActorRole, action: Step, to: Status) -> Transition {
    Transition {
        at,
        actor: Actor {
            role,
            name: role.as_str().into(),
        },
        from: None,
        to,
        action,
        note: None,
        hand_over: None,
        command: None,
    }
}
