//! The incident lifecycle as a typed state machine. [`apply`] is a pure function from the current
//! incident, an action, who takes it and when, to the next revision, or a [`Refusal`] that says
//! why not; every accepted change appends to the incident's audit trail.
//!
//! ```text
//! new ─verify→ verified ─assign→ assigned ─acknowledge→ acknowledged ─start→ in_progress
//!                                   │                        │                  │
//!                                   └──reject (reason)──→ unassigned (triage) ←─┘   ─resolve→ resolved
//!                                      (or, naming a ward_id, straight to that ward's assigned)
//! resolved ─close→ closed        resolved/closed ─reopen (within the window)→ reopened → (acknowledge, start, resolve)
//! any open ─mark_duplicate→ duplicate        any open ─cancel (reason)→ cancelled
//! ```

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::sla::{self, CategoryTargets, Priority};
use crate::validate::{self, InvalidInput};
use crate::{Actor, ActorRole, Incident, Resolution, Status, Step, WardRef};

/// Who may act, and on what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "role", content = "ward", rename_all = "snake_case")]
pub enum Role {
    /// IOC operators: every ward.
    Operator,
    /// A ward's unit: incidents of this ward only.
    WardUnit(String),
    /// The citizen who filed the report (knows its tracking id).
    Citizen,
    /// The dashboard itself: the automatic attach of a camera's or report's new incident to an
    /// earlier one (`dashboard.duplicates.auto_attach`). Never taken from a token.
    System,
}

impl Role {
    /// The role as the audit trail records it.
    pub fn actor_role(&self) -> ActorRole {
        match self {
            Role::Operator => ActorRole::Operator,
            Role::WardUnit(_) => ActorRole::WardUnit,
            Role::Citizen => ActorRole::Citizen,
            Role::System => ActorRole::System,
        }
    }

    fn name(&self) -> &'static str {
        self.actor_role().as_str()
    }
}

/// Something someone does to an incident, as posted to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Operator: the report is genuine.
    Verify {
        #[serde(default)]
        note: Option<String>,
        /// Sets the priority (and with it the service-level targets).
        #[serde(default)]
        priority: Option<Priority>,
    },
    /// Operator: hand to a ward (also re-routes after a rejection or reassigns).
    Assign {
        ward_id: String,
        #[serde(default)]
        note: Option<String>,
        #[serde(default)]
        priority: Option<Priority>,
    },
    /// Ward unit: seen.
    Acknowledge,
    /// Ward unit: work started.
    Start,
    /// Ward unit: done, with the result the citizen will see.
    Resolve {
        result: String,
        #[serde(default)]
        photo_urls: Vec<String>,
    },
    /// Ward unit: outside our jurisdiction. Back to operators' triage, or straight to the ward
    /// the unit names (`ward_id`) when it knows whose it is.
    Reject {
        reason: String,
        #[serde(default)]
        ward_id: Option<String>,
    },
    /// Operator or citizen: confirmed finished.
    Close,
    /// Citizen: the resolution is disputed.
    Reopen { reason: String },
    /// Operator (or the automatic attach): the same problem as another incident.
    MarkDuplicate {
        of: String,
        /// Why, for the audit trail.
        #[serde(default)]
        note: Option<String>,
    },
    /// Operator: undoes a merge, whoever made it. The incident returns to the status it had
    /// before it was marked a duplicate, and its original no longer lists it.
    Split { reason: String },
    /// Operator: withdrawn.
    Cancel { reason: String },
}

impl Action {
    /// The step this action records in the audit trail.
    pub fn step(&self) -> Step {
        match self {
            Action::Verify { .. } => Step::Verify,
            Action::Assign { .. } => Step::Assign,
            Action::Acknowledge => Step::Acknowledge,
            Action::Start => Step::Start,
            Action::Resolve { .. } => Step::Resolve,
            Action::Reject { .. } => Step::Reject,
            Action::Close => Step::Close,
            Action::Reopen { .. } => Step::Reopen,
            Action::MarkDuplicate { .. } => Step::MarkDuplicate,
            Action::Split { .. } => Step::Split,
            Action::Cancel { .. } => Step::Cancel,
        }
    }

    pub fn name(&self) -> &'static str {
        self.step().as_str()
    }

    /// Bounds every field a person typed: texts by length and alphabet, links by scheme, ids by
    /// alphabet. A record that breaks these could not be stored (Kafka's record size) or served
    /// (a `javascript:` link on the citizen's page), so it is refused before anything else.
    pub fn check_fields(&self) -> Result<(), InvalidInput> {
        let text = |field: &str, t: &str| validate::check_text(field, t, validate::MAX_TEXT_CHARS);
        match self {
            Action::Verify { note, .. } => note.as_deref().map_or(Ok(()), |n| text("note", n)),
            Action::Assign { ward_id, note, .. } => {
                validate::check_id("ward_id", ward_id)?;
                note.as_deref().map_or(Ok(()), |n| text("note", n))
            }
            Action::Resolve { result, photo_urls } => {
                text("result", result)?;
                validate::check_photos("photo_urls", photo_urls)
            }
            Action::Reject { reason, ward_id } => {
                text("reason", reason)?;
                ward_id
                    .as_deref()
                    .map_or(Ok(()), |w| validate::check_id("ward_id", w))
            }
            Action::Reopen { reason } | Action::Cancel { reason } | Action::Split { reason } => {
                text("reason", reason)
            }
            Action::MarkDuplicate { of, note } => {
                validate::check_id("of", of)?;
                note.as_deref().map_or(Ok(()), |n| text("note", n))
            }
            Action::Acknowledge | Action::Start | Action::Close => Ok(()),
        }
    }

    fn allowed_for(&self, role: &Role) -> bool {
        match self {
            Action::Verify { .. }
            | Action::Assign { .. }
            | Action::Split { .. }
            | Action::Cancel { .. } => *role == Role::Operator,
            Action::MarkDuplicate { .. } => matches!(role, Role::Operator | Role::System),
            Action::Acknowledge
            | Action::Start
            | Action::Resolve { .. }
            | Action::Reject { .. } => {
                matches!(role, Role::WardUnit(_))
            }
            Action::Close => matches!(role, Role::Operator | Role::Citizen),
            Action::Reopen { .. } => *role == Role::Citizen,
        }
    }

    /// The state this action leads to from `from`, if it is legal there.
    fn target(&self, from: Status) -> Option<Status> {
        use Status::*;
        let open = from.is_open();
        match self {
            Action::Verify { .. } => matches!(from, New | Unassigned).then_some(Verified),
            Action::Assign { .. } => matches!(
                from,
                New | Verified | Unassigned | Assigned | Acknowledged | InProgress | Reopened
            )
            .then_some(Assigned),
            Action::Acknowledge => matches!(from, Assigned | Reopened).then_some(Acknowledged),
            Action::Start => matches!(from, Acknowledged | Reopened).then_some(InProgress),
            Action::Resolve { .. } => {
                matches!(from, Acknowledged | InProgress | Reopened).then_some(Resolved)
            }
            Action::Reject { .. } => {
                matches!(from, Assigned | Acknowledged | InProgress).then_some(Unassigned)
            }
            Action::Close => matches!(from, Resolved).then_some(Closed),
            Action::Reopen { .. } => matches!(from, Resolved | Closed).then_some(Reopened),
            Action::MarkDuplicate { .. } => (open && from != Resolved).then_some(Duplicate),
            // The status it returns to is read from the history ([`apply`]).
            Action::Split { .. } => (from == Duplicate).then_some(Duplicate),
            Action::Cancel { .. } => (open && from != Resolved).then_some(Cancelled),
        }
    }
}

/// The version of [`CommandRecord`].
pub const COMMAND_SCHEMA: &str = "ioc.command.v1";
/// The version of [`CommandAnswer`].
pub const COMMAND_ANSWER_SCHEMA: &str = "ioc.command-answer.v1";

/// A lifecycle action on its way to the dashboard instance that owns the incident (the command
/// topic, keyed by incident id).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CommandRecord {
    pub schema: String,
    pub id: String,
    pub incident_id: String,
    pub action: Action,
    pub role: Role,
    /// The token holder's name, for the audit trail.
    pub actor: String,
    /// The instance waiting for the answer.
    pub reply_to: String,
}

/// The owner's answer to a command (the command results topic, keyed by `reply_to`): the new
/// revision, or why not.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CommandAnswer {
    pub schema: String,
    pub command_id: String,
    pub reply_to: String,
    /// The HTTP status the request is answered with.
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<crate::Incident>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why an action was refused, for a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// Not allowed in the incident's current state (HTTP 409).
    IllegalTransition,
    /// Not this caller's to do: another role, or another ward (HTTP 403).
    Forbidden,
    /// The action itself is wrong: a missing reason, an unknown ward (HTTP 422).
    Invalid,
}

impl RefusalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::IllegalTransition => "illegal_transition",
            RefusalCode::Forbidden => "forbidden",
            RefusalCode::Invalid => "invalid",
        }
    }
}

impl PartialEq<&str> for RefusalCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an action was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
    pub current: Status,
}

/// Context an action needs besides the incident itself.
pub struct Context<'a> {
    pub role: Role,
    /// Token holder's name, for the audit trail.
    pub actor_name: &'a str,
    pub at: DateTime<Utc>,
    /// The ward named by an `assign` action, resolved by the caller from the boundary set.
    pub ward: Option<WardRef>,
    /// The version of the boundary set `ward` was found in, recorded with the assignment.
    pub boundary_version: Option<String>,
    /// The category's responsible unit, for `assign`.
    pub unit: Option<String>,
    /// How long after resolution a citizen may dispute it.
    pub reopen_window: Duration,
    /// The category's service-level targets; deadlines are left as they are when absent.
    pub targets: Option<&'a CategoryTargets>,
}

impl Context<'_> {
    /// Who acts, as the audit trail records it.
    fn actor(&self) -> Actor {
        Actor {
            role: self.role.actor_role(),
            name: self.actor_name.into(),
        }
    }
}

/// Applies an action, giving the next revision of the incident.
pub fn apply(incident: &Incident, action: &Action, cx: &Context<'_>) -> Result<Incident, Refusal> {
    let from = incident.status;
    let refuse = |code: RefusalCode, message: String| Refusal {
        code,
        message,
        current: from,
    };
    if !action.allowed_for(&cx.role) {
        return Err(refuse(
            RefusalCode::Forbidden,
            format!(
                "A {} may not {} an incident.",
                cx.role.name(),
                action.name()
            ),
        ));
    }
    if let Role::WardUnit(own) = &cx.role {
        if incident.ward.as_ref().map(|w| &w.id) != Some(own) {
            return Err(refuse(
                RefusalCode::Forbidden,
                format!("Incident {} is not assigned to ward {own}.", incident.id),
            ));
        }
    }
    let mut to = action.target(from).ok_or_else(|| {
        refuse(
            RefusalCode::IllegalTransition,
            format!(
                "Cannot {} an incident that is {}.",
                action.name(),
                from.as_str()
            ),
        )
    })?;
    action
        .check_fields()
        .map_err(|e| refuse(RefusalCode::Invalid, e.message))?;
    let mut next = incident.next_revision();
    let mut note = None;
    let mut priority = None;
    if let Action::Reject { reason, .. }
    | Action::Cancel { reason }
    | Action::Reopen { reason }
    | Action::Split { reason } = action
    {
        if reason.trim().is_empty() {
            return Err(refuse(
                RefusalCode::Invalid,
                format!("To {} an incident, give a reason.", action.name()),
            ));
        }
        note = Some(reason.clone());
    }
    match action {
        Action::Verify {
            note: n,
            priority: p,
        } => {
            note = n.clone();
            priority = *p;
        }
        Action::Assign {
            ward_id,
            note: n,
            priority: p,
        } => {
            let ward = named_ward(cx, ward_id).ok_or_else(|| {
                refuse(
                    RefusalCode::Invalid,
                    format!("Ward '{ward_id}' is not in the boundary set in force."),
                )
            })?;
            if incident.ward.as_ref().is_some_and(|old| old.id != ward.id) {
                next.previous_ward = incident.ward.clone();
            }
            hand_over(&mut next, ward, p.unwrap_or(incident.priority), cx);
            note = n.clone();
            priority = *p;
        }
        Action::Resolve { result, photo_urls } => {
            if result.trim().is_empty() {
                return Err(refuse(
                    RefusalCode::Invalid,
                    "A resolution needs a result text for the citizen.".into(),
                ));
            }
            next.resolution = Some(Resolution {
                text: result.clone(),
                photo_urls: photo_urls.clone(),
                at: cx.at,
            });
        }
        Action::Reject { ward_id, .. } => {
            // Back to triage: no ward until an operator routes it again...
            next.previous_ward = next.ward.take();
            next.unit = None;
            next.ack_due_at = None;
            // ...unless the unit names the ward it belongs to.
            if let Some(w) = ward_id {
                let own = next.previous_ward.as_ref().map(|p| &p.id);
                let ward = named_ward(cx, w)
                    .filter(|_| Some(w) != own)
                    .ok_or_else(|| {
                        refuse(
                            RefusalCode::Invalid,
                            format!("Ward '{w}' is not another ward of the boundary set in force."),
                        )
                    })?;
                hand_over(&mut next, ward, incident.priority, cx);
                to = Status::Assigned;
            }
        }
        Action::Reopen { .. } => {
            let resolved_at = incident
                .resolution
                .as_ref()
                .map(|r| r.at)
                .unwrap_or(incident.updated_at);
            let window_ends = resolved_at
                .checked_add_signed(cx.reopen_window)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            if cx.at > window_ends {
                return Err(refuse(
                    RefusalCode::IllegalTransition,
                    format!(
                        "The resolution can only be disputed within {}.",
                        span(cx.reopen_window)
                    ),
                ));
            }
            if let Some(t) = cx.targets {
                // A disputed resolution restarts both clocks.
                let t = t.for_priority(incident.priority);
                next.ack_due_at = sla::acknowledge_due(&t, cx.at);
                next.sla_due_at = sla::resolve_due(&t, cx.at);
            }
        }
        Action::MarkDuplicate { of, note: why } => {
            if of == &incident.id {
                return Err(refuse(
                    RefusalCode::Invalid,
                    "An incident cannot duplicate itself.".into(),
                ));
            }
            next.duplicate_of = Some(of.clone());
            note = Some(match why {
                Some(why) => format!("duplicate of {of}: {why}"),
                None => format!("duplicate of {of}"),
            });
        }
        Action::Split { reason } => {
            // Back to where the last merge found it (a merge of an untouched report: new).
            to = incident
                .history
                .iter()
                .rev()
                .find(|t| t.action == Step::MarkDuplicate)
                .and_then(|t| t.from)
                .unwrap_or(Status::New);
            let of = incident.duplicate_of.as_deref().unwrap_or("?");
            next.duplicate_of = None;
            note = Some(format!("split from {of}: {reason}"));
        }
        Action::Acknowledge | Action::Start | Action::Close | Action::Cancel { .. } => {}
    }
    if let (Some(p), Some(t)) = (priority.filter(|p| *p != incident.priority), cx.targets) {
        next.priority = p;
        let t = t.for_priority(p);
        next.sla_due_at = sla::resolve_due(&t, resolution_clock_start(incident));
        let p = format!("priority {}", p.as_str());
        note = Some(note.map_or(p.clone(), |n| format!("{n} ({p})")));
    }
    next.record(cx.at, cx.actor(), action.step(), to, note);
    Ok(next)
}

/// The ward an action names, as the caller resolved it from the boundary set in force.
fn named_ward(cx: &Context<'_>, id: &str) -> Option<WardRef> {
    cx.ward.clone().filter(|w| w.id == id)
}

/// Gives the incident to `ward` and its unit; the unit's acknowledgement clock starts now.
fn hand_over(next: &mut Incident, ward: WardRef, priority: Priority, cx: &Context<'_>) {
    next.ward = Some(ward);
    next.unit = cx.unit.clone();
    if cx.boundary_version.is_some() {
        next.assignment.boundary_version = cx.boundary_version.clone();
    }
    if let Some(t) = cx.targets {
        next.ack_due_at = sla::acknowledge_due(&t.for_priority(priority), cx.at);
    }
}

/// The revision that closes a resolution nobody disputed within `after`, once `now` is past that
/// point. Dated at the deadline, not at `now`, so any monitor writes the same record.
pub fn auto_close(i: &Incident, after: Duration, now: DateTime<Utc>) -> Option<Incident> {
    let resolved_at = i.resolution.as_ref()?.at;
    let due = resolved_at.checked_add_signed(after)?;
    if i.status != Status::Resolved || now < due {
        return None;
    }
    let mut next = i.next_revision();
    next.record(
        due.max(i.updated_at),
        Actor::monitor(),
        Step::AutoClose,
        Status::Closed,
        Some(format!("not disputed within {}", span(after))),
    );
    Some(next)
}

/// A period in words: whole days when it is whole days, else hours or minutes.
fn span(d: Duration) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if d.num_days() > 0 && d == Duration::days(d.num_days()) {
        plural(d.num_days(), "day")
    } else if d.num_hours() > 0 && d == Duration::hours(d.num_hours()) {
        plural(d.num_hours(), "hour")
    } else {
        plural(d.num_minutes(), "minute")
    }
}

/// When the resolution clock started: the event, or the latest reopening.
fn resolution_clock_start(i: &Incident) -> DateTime<Utc> {
    i.history
        .iter()
        .rev()
        .find(|t| t.action == Step::Reopen)
        .map_or(i.occurred_at, |t| t.at)
}

/// The original's revision that records `duplicate_id` merged into it, or `None` if it already
/// does (so a retried merge writes nothing new). Refused when the original is no longer open.
pub fn absorb(
    original: &Incident,
    duplicate_id: &str,
    cx: &Context<'_>,
) -> Result<Option<Incident>, Refusal> {
    if original.merged.iter().any(|m| m == duplicate_id) {
        return Ok(None);
    }
    if !original.status.is_open() || original.id == duplicate_id {
        return Err(Refusal {
            code: RefusalCode::Invalid,
            message: format!(
                "Incident {} is {} and cannot take duplicates.",
                original.id,
                original.status.as_str()
            ),
            current: original.status,
        });
    }
    let mut next = original.next_revision();
    next.merged.push(duplicate_id.to_string());
    next.record(
        cx.at,
        cx.actor(),
        Step::Merge,
        original.status,
        Some(format!("merged duplicate {duplicate_id}")),
    );
    Ok(Some(next))
}

/// The original's revision that no longer lists `duplicate_id` among its merged incidents, or
/// `None` if it does not (so a retried split writes nothing new).
pub fn release(original: &Incident, duplicate_id: &str, cx: &Context<'_>) -> Option<Incident> {
    if !original.merged.iter().any(|m| m == duplicate_id) {
        return None;
    }
    let mut next = original.next_revision();
    next.merged.retain(|m| m != duplicate_id);
    next.record(
        cx.at,
        cx.actor(),
        Step::Split,
        original.status,
        Some(format!("split off {duplicate_id}")),
    );
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(status: Status, ward: &str) -> Incident {
        let t: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        crate::fixtures::incident("i1", status, ward, t)
    }

    fn cx(role: Role, days: i64) -> Context<'static> {
        Context {
            role,
            actor_name: "tester",
            at: "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::days(days),
            ward: Some(WardRef {
                id: "P002".into(),
                name: "Two".into(),
            }),
            boundary_version: Some("v2".into()),
            unit: Some("unit".into()),
            reopen_window: Duration::days(7),
            targets: None,
        }
    }

    fn unit() -> Role {
        Role::WardUnit("P001".into())
    }

    #[test]
    fn the_happy_path_records_every_step() {
        let mut i = incident(Status::Assigned, "P001");
        for (action, role) in [
            (Action::Acknowledge, unit()),
            (Action::Start, unit()),
            (
                Action::Resolve {
                    result: "Đã dọn sạch".into(),
                    photo_urls: vec![],
                },
                unit(),
            ),
            (Action::Close, Role::Citizen),
        ] {
            i = apply(&i, &action, &cx(role, 1)).unwrap();
        }
        assert_eq!(i.status, Status::Closed);
        assert_eq!(i.revision, 5);
        let steps: Vec<&str> = i.history.iter().map(|t| t.action.as_str()).collect();
        assert_eq!(steps, ["acknowledge", "start", "resolve", "close"]);
        assert_eq!(i.resolution.unwrap().text, "Đã dọn sạch");
    }

    #[test]
    fn illegal_transitions_say_where_the_incident_is() {
        let i = incident(Status::Assigned, "P001");
        let err = apply(&i, &Action::Close, &cx(Role::Operator, 1)).unwrap_err();
        assert_eq!(err.code, "illegal_transition");
        assert_eq!(err.current, Status::Assigned);
        let err = apply(&i, &Action::Start, &cx(unit(), 1)).unwrap_err();
        assert_eq!(err.code, "illegal_transition");
    }

    #[test]
    fn units_act_only_on_their_ward_and_only_as_units() {
        let i = incident(Status::Assigned, "P009");
        assert_eq!(
            apply(&i, &Action::Acknowledge, &cx(unit(), 1))
                .unwrap_err()
                .code,
            "forbidden"
        );
        let i = incident(Status::Assigned, "P001");
        let cancel = Action::Cancel {
            reason: "spam".into(),
        };
        assert_eq!(
            apply(&i, &cancel, &cx(unit(), 1)).unwrap_err().code,
            "forbidden"
        );
        assert_eq!(
            apply(&i, &Action::Acknowledge, &cx(Role::Citizen, 1))
                .unwrap_err()
                .code,
            "forbidden"
        );
    }

    #[test]
    fn a_rejection_returns_to_triage_and_an_operator_reroutes() {
        let i = incident(Status::Acknowledged, "P001");
        assert_eq!(
            apply(
                &i,
                &Action::Reject {
                    reason: " ".into(),
                    ward_id: None
                },
                &cx(unit(), 1)
            )
            .unwrap_err()
            .code,
            "invalid"
        );
        let i = apply(
            &i,
            &Action::Reject {
                reason: "Thuộc phường bên cạnh".into(),
                ward_id: None,
            },
            &cx(unit(), 1),
        )
        .unwrap();
        assert_eq!(i.status, Status::Unassigned);
        assert!(i.ward.is_none());
        let i = apply(
            &i,
            &Action::Assign {
                ward_id: "P002".into(),
                note: None,
                priority: None,
            },
            &cx(Role::Operator, 1),
        )
        .unwrap();
        assert_eq!(i.status, Status::Assigned);
        assert_eq!(i.ward.unwrap().id, "P002");
    }

    #[test]
    fn disputes_only_within_the_window() {
        let i = incident(Status::Acknowledged, "P001");
        let i = apply(
            &i,
            &Action::Resolve {
                result: "done".into(),
                photo_urls: vec![],
            },
            &cx(unit(), 1),
        )
        .unwrap();
        let late = apply(
            &i,
            &Action::Reopen {
                reason: "still there".into(),
            },
            &cx(Role::Citizen, 20),
        );
        assert_eq!(late.unwrap_err().code, "illegal_transition");
        let i = apply(
            &i,
            &Action::Reopen {
                reason: "still there".into(),
            },
            &cx(Role::Citizen, 3),
        )
        .unwrap();
        assert_eq!(i.status, Status::Reopened);
        let i = apply(&i, &Action::Acknowledge, &cx(unit(), 3)).unwrap();
        assert_eq!(i.status, Status::Acknowledged);
    }

    #[test]
    fn terminal_states_stay_terminal() {
        for status in [Status::Duplicate, Status::Cancelled] {
            let i = incident(status, "P001");
            for action in [
                Action::Acknowledge,
                Action::Close,
                Action::Cancel { reason: "x".into() },
            ] {
                let role = if matches!(action, Action::Acknowledge) {
                    unit()
                } else {
                    Role::Operator
                };
                assert_eq!(
                    apply(&i, &action, &cx(role, 1)).unwrap_err().code,
                    "illegal_transition"
                );
            }
        }
    }

    fn targets() -> CategoryTargets {
        let normal = sla::Targets {
            acknowledge_within: Some(Duration::hours(1)),
            resolve_within: Duration::hours(48),
        };
        CategoryTargets {
            default_priority: Priority::Normal,
            default: normal,
            by_priority: [(
                Priority::Urgent,
                sla::Targets {
                    acknowledge_within: Some(Duration::minutes(10)),
                    resolve_within: Duration::hours(4),
                },
            )]
            .into(),
        }
    }

    #[test]
    fn reassigning_restarts_the_acknowledgement_clock_and_names_the_old_ward() {
        let t = targets();
        let i = incident(Status::Assigned, "P001");
        let mut c = cx(Role::Operator, 2);
        c.targets = Some(&t);
        let assign = Action::Assign {
            ward_id: "P002".into(),
            note: None,
            priority: Some(Priority::Urgent),
        };
        let next = apply(&i, &assign, &c).unwrap();
        assert_eq!(next.previous_ward.as_ref().unwrap().id, "P001");
        assert_eq!(next.ack_due_at, Some(c.at + Duration::minutes(10)));
        // Urgent: four hours from the event itself.
        assert_eq!(next.sla_due_at, i.occurred_at + Duration::hours(4));
        assert_eq!(next.priority, Priority::Urgent);
        // The next change no longer names a previous ward.
        let acked = apply(
            &next,
            &Action::Acknowledge,
            &cx(Role::WardUnit("P002".into()), 2),
        );
        assert!(acked.unwrap().previous_ward.is_none());
    }

    #[test]
    fn a_merge_is_recorded_once_on_the_original() {
        let original = incident(Status::Assigned, "P001");
        let c = cx(Role::Operator, 1);
        let merged = absorb(&original, "dup-1", &c).unwrap().unwrap();
        assert_eq!(merged.merged, ["dup-1"]);
        assert_eq!(merged.revision, original.revision + 1);
        assert!(absorb(&merged, "dup-1", &c).unwrap().is_none());
        let closed = incident(Status::Cancelled, "P001");
        assert_eq!(absorb(&closed, "dup-1", &c).unwrap_err().code, "invalid");
    }

    #[test]
    fn a_split_undoes_a_merge_on_both_incidents() {
        let mut i = incident(Status::Acknowledged, "P001");
        let t = i.occurred_at;
        i.record(t, Actor::router(), Step::Route, Status::Acknowledged, None);
        let attach = Action::MarkDuplicate {
            of: "orig".into(),
            note: Some("same category, 40 m apart".into()),
        };
        // Only operators and the dashboard's own attach may merge.
        assert_eq!(
            apply(&i, &attach, &cx(unit(), 1)).unwrap_err().code,
            "forbidden"
        );
        let dup = apply(&i, &attach, &cx(Role::System, 1)).unwrap();
        let marked = dup.history.last().unwrap();
        assert_eq!(marked.actor.role, ActorRole::System);
        assert_eq!(
            marked.note.as_deref(),
            Some("duplicate of orig: same category, 40 m apart")
        );
        let split = |reason: &str| Action::Split {
            reason: reason.into(),
        };
        assert_eq!(
            apply(&dup, &split(" "), &cx(Role::Operator, 1))
                .unwrap_err()
                .code,
            "invalid",
            "a split needs a reason"
        );
        assert_eq!(
            apply(&dup, &split("x"), &cx(Role::System, 1))
                .unwrap_err()
                .code,
            "forbidden",
            "only an operator splits"
        );
        let back = apply(&dup, &split("hai vụ khác nhau"), &cx(Role::Operator, 2)).unwrap();
        assert_eq!(
            back.status,
            Status::Acknowledged,
            "back where the merge found it"
        );
        assert_eq!(back.duplicate_of, None);
        assert_eq!(back.history.last().unwrap().action, Step::Split);
        assert_eq!(
            apply(&back, &split("again"), &cx(Role::Operator, 2))
                .unwrap_err()
                .code,
            "illegal_transition"
        );
        // The original lists the duplicate until the split, once.
        let c = cx(Role::Operator, 2);
        let original = absorb(&incident(Status::Assigned, "P001"), "dup-1", &c)
            .unwrap()
            .unwrap();
        let released = release(&original, "dup-1", &c).unwrap();
        assert!(released.merged.is_empty());
        assert_eq!(released.status, Status::Assigned);
        assert_eq!(released.history.last().unwrap().action, Step::Split);
        assert!(release(&released, "dup-1", &c).is_none());
    }

    #[test]
    fn a_unit_that_knows_whose_it_is_hands_it_straight_over() {
        let i = incident(Status::Acknowledged, "P001");
        let reject = |w: &str| Action::Reject {
            reason: "Bên kia đường là phường khác".into(),
            ward_id: Some(w.into()),
        };
        // cx() resolves ward P002 only.
        assert_eq!(
            apply(&i, &reject("P009"), &cx(unit(), 1)).unwrap_err().code,
            "invalid"
        );
        let next = apply(&i, &reject("P002"), &cx(unit(), 1)).unwrap();
        assert_eq!(next.status, Status::Assigned);
        assert_eq!(next.ward.unwrap().id, "P002");
        assert_eq!(next.previous_ward.unwrap().id, "P001");
        assert_eq!(next.history.last().unwrap().action, Step::Reject);
    }
}
