//! Record shapes on the wire. Every record carries `schema`, a version string, so a consumer can
//! reject (dead-letter) a shape it does not know instead of misreading it.
//!
//! Privacy is structural: [`Incident`] has no field that could hold a reporter's contact or a
//! licence plate, so nothing built from it (the incident topic, every dashboard response) can leak
//! them. Those fields exist only on the internal input topics.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::sla::{Escalation, Priority};

pub const REPORT_SCHEMA: &str = "ioc.report.v1";
pub const CAMERA_EVENT_SCHEMA: &str = "ioc.camera-event.v1";
pub const INCIDENT_SCHEMA: &str = "ioc.incident.v1";
pub const DEAD_LETTER_SCHEMA: &str = "ioc.dead-letter.v1";
pub const ASSIGNMENT_SCHEMA: &str = "ioc.assignment.v1";
pub const SITUATION_SCHEMA: &str = "ioc.camera-situation.v1";
pub const VIOLATION_SCHEMA: &str = "ioc.violation.v1";

/// A position in WGS84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    /// Horizontal accuracy reported by the device, in metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
}

/// How a citizen reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    App,
    WebPortal,
    Hotline,
    Open311,
    Other,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::App => "app",
            Channel::WebPortal => "web_portal",
            Channel::Hotline => "hotline",
            Channel::Open311 => "open311",
            Channel::Other => "other",
        }
    }
}

/// Reporter's contact details. Private: kept on the reports topic for the IOC's own follow-up,
/// never copied into an incident.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// What a citizen sends to `POST /v1/reports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSubmission {
    /// Client-chosen key; resubmitting with the same key returns the same tracking id.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    pub channel: Channel,
    pub category: String,
    pub text: String,
    #[serde(deserialize_with = "crate::validate::object")]
    pub location: Location,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub photo_urls: Vec<String>,
    #[serde(default, deserialize_with = "crate::validate::optional_object")]
    pub reporter: Option<Contact>,
    /// When the citizen made the report on their device; when absent, the time it reached us.
    #[serde(default)]
    pub submitted_at: Option<DateTime<Utc>>,
}

/// A validated report as stored on the reports topic (keyed by `tracking_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    pub schema: String,
    pub tracking_id: String,
    pub channel: Channel,
    pub category: String,
    pub text: String,
    pub location: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photo_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<Contact>,
    pub submitted_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// A detection from a CCTV analytics system, as posted to `POST /v1/camera-events` or published
/// straight to the camera topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Derived from camera, type and time when absent (see [`crate::ids::camera_event_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub camera_id: String,
    pub event_type: String,
    /// Detector confidence in `[0, 1]`.
    pub confidence: f64,
    pub detected_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_url: Option<String>,
    /// Licence plate, private: never copied into an incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    /// Where the detection stands in its situation (`start`, `update`, `end`, `pulse`); absent
    /// is `pulse`: an event complete in itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<crate::camera::Signal>,
    /// The source's own stable key for the situation (a tracker id, a vendor's event id), 1–128
    /// characters of the id alphabet; without one, a situation is camera + type + zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    /// Zone, rule, lane and channel as the camera system names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Set by ingest's vendor adapters, never taken from a sender of ioc's own JSON: the
    /// vendor format, its name for the event, the device's time as written, when ingest
    /// received the message, images that came with it, and the vendor's own fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<VendorRecord>,
}

/// What a vendor adapter keeps of the original message (see [`crate::camera`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorRecord {
    pub format: crate::camera::Format,
    /// The device as the vendor identifies it, and the vendor's name for the event.
    pub device: String,
    pub event: String,
    /// The device's own time as it wrote it (local time, epoch, or `1970-...` before its clock
    /// was set); `detected_at` is the corrected UTC time, or ingest's time when unusable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_time: Option<String>,
    pub ingested_at: DateTime<Utc>,
    /// The vendor marked the message as a resend.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retransmission: bool,
    /// Images that came with the message (JPEG parts), base64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<VendorImage>,
    /// The vendor's own fields, plates left out.
    #[serde(default)]
    pub fields: serde_json::Value,
}

/// An image part of a vendor message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorImage {
    pub content_type: String,
    pub base64: String,
}

impl CameraEvent {
    /// The id of the incident this event becomes: derived on our side from the camera and the
    /// event's id, and namespaced (`cam-`) so that no sender can choose it, or take the id a
    /// citizen's report will get.
    pub fn incident_id(&self) -> String {
        crate::ids::camera_incident_id(&self.camera_id, &self.id())
    }

    /// The event's id as the sender gave it, or derived when the sender did not give one.
    pub fn id(&self) -> String {
        match &self.event_id {
            Some(id) => id.clone(),
            None => crate::ids::camera_event_id(
                &self.camera_id,
                &self.event_type,
                &self
                    .detected_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
        }
    }
}

/// One camera situation as the router sees it after a detection: what the situations topic
/// holds (key: [`Situation::key`], partition: the camera events' own), so a router that takes
/// the partition over continues every open situation where the last one left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Situation {
    pub schema: String,
    /// Camera, event type and the source's key (or the zone): what detections of one
    /// situation share.
    pub key: String,
    /// The incident it is (or will be, once it has lasted long enough): derived from the key
    /// and the first detection's time.
    pub incident_id: String,
    pub camera_id: String,
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    /// Detection times of the first and the latest detection.
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Kafka times of the first and the latest detection's records.
    pub first_received_at: DateTime<Utc>,
    pub last_received_at: DateTime<Utc>,
    pub detections: u64,
    pub peak_confidence: f64,
    /// The snapshot of the most confident detection that had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_url: Option<String>,
    /// The source said it is over; otherwise it is over once `gap_seconds` pass without a
    /// detection.
    pub ended: bool,
    pub gap_seconds: i64,
    /// Whether its incident has been written (it lasted `min_duration`).
    pub incident_written: bool,
    /// Whether a plate was read by the time its incident (or enforcement record) was written,
    /// or since: a plate read only later in the track writes an enforcement record again, with
    /// the plate.
    #[serde(default)]
    pub plate_seen: bool,
    /// Ids of its latest detections, so a detection sent twice counts once.
    #[serde(default)]
    pub recent_events: Vec<String>,
    /// The camera-topic partition and offset of the latest detection applied.
    pub partition: i32,
    pub offset: i64,
}

impl Situation {
    /// What its incident shows of it.
    pub fn summary(&self) -> SituationSummary {
        SituationSummary {
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            detections: self.detections,
            peak_confidence: self.peak_confidence,
            snapshot_url: self.snapshot_url.clone(),
            ended: self.ended,
            gap_seconds: self.gap_seconds,
        }
    }
}

/// Where an incident came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Report {
        channel: Channel,
    },
    Camera {
        camera_id: String,
        event_type: String,
        confidence: f64,
    },
}

/// Which rule decided the ward (see the README's "Ward assignment rule").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AssignRule {
    /// Strictly inside exactly one ward.
    Inside,
    /// Within the boundary tolerance of a ward edge; a deterministic choice among touching wards.
    Boundary,
    /// Strictly inside more than one ward (overlapping polygons); lowest ward id chosen.
    Overlap,
    /// Outside every ward but within the fallback distance of the nearest one.
    Nearest,
    /// No ward: left for operators' triage.
    Unassigned,
}

impl AssignRule {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignRule::Inside => "inside",
            AssignRule::Boundary => "boundary",
            AssignRule::Overlap => "overlap",
            AssignRule::Nearest => "nearest",
            AssignRule::Unassigned => "unassigned",
        }
    }
}

/// An enforcement record: a camera capture (a red-light or crossing violation, an ANPR read)
/// for the traffic police, on the violations topic (keyed by `id`), instead of an incident for
/// operators. It carries the plate, so the topic is deleted by age like the camera topic and
/// the dashboard shows plates only to tokens allowed to read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnforcementRecord {
    pub schema: String,
    /// `vio-` and an id derived from the camera and the capture's id (or its situation's, for
    /// a tracked capture, which is revised while the track lasts); a replay writes the same.
    pub id: String,
    pub camera_id: String,
    pub event_type: String,
    /// The category whose unit handles it (e.g. `traffic_order`), and that unit.
    pub category: String,
    pub unit: String,
    pub confidence: f64,
    pub detected_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The camera's position and the ward holding it (none: outside every ward).
    pub location: Location,
    pub ward: Option<WardRef>,
    /// Private: served only to tokens allowed to read plates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_url: Option<String>,
    /// The vendor format it came in, when it came through an adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::camera::Format>,
    /// For a tracked capture: how many detections its track had so far.
    pub detections: u64,
}

/// The ward an incident was assigned to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WardRef {
    pub id: String,
    pub name: String,
}

/// How the ward was chosen, kept on the incident so an operator can see why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Assignment {
    pub rule: AssignRule,
    /// Distance to the chosen ward, for `nearest` (metres).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
    /// Why no ward was chosen, for `unassigned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Version of the boundary set that was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary_version: Option<String>,
}

/// Where an incident stands. See [`crate::lifecycle`] for the allowed transitions.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Received, waiting for an operator to verify it.
    New,
    /// Verified by an operator, not yet handed to a ward.
    Verified,
    /// Handed to a ward and its unit.
    Assigned,
    /// The unit has seen it.
    Acknowledged,
    /// The unit is working on it.
    InProgress,
    /// The unit posted a result.
    Resolved,
    /// Finished: confirmed by the citizen, or left unchallenged.
    Closed,
    /// No ward, or rejected by one: waiting for operators' triage.
    Unassigned,
    /// Merged into another incident.
    Duplicate,
    /// The citizen disputed the resolution.
    Reopened,
    /// Withdrawn by an operator.
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Status::New,
        Status::Verified,
        Status::Assigned,
        Status::Acknowledged,
        Status::InProgress,
        Status::Resolved,
        Status::Closed,
        Status::Unassigned,
        Status::Duplicate,
        Status::Reopened,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Verified => "verified",
            Status::Assigned => "assigned",
            Status::Acknowledged => "acknowledged",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Unassigned => "unassigned",
            Status::Duplicate => "duplicate",
            Status::Reopened => "reopened",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the incident still needs work.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Closed | Status::Duplicate | Status::Cancelled)
    }
}

/// The kind of actor that changed an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    /// The router's first decision.
    Router,
    Operator,
    WardUnit,
    Citizen,
    /// The dashboard itself: the service-level monitor's escalations and automatic closes, the
    /// hand-over at a boundary reform, automatic attaches of duplicates.
    System,
}

impl ActorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorRole::Router => "router",
            ActorRole::Operator => "operator",
            ActorRole::WardUnit => "ward_unit",
            ActorRole::Citizen => "citizen",
            ActorRole::System => "system",
        }
    }
}

/// Who changed an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    pub role: ActorRole,
    /// Name of the token holder (internal; not shown to citizens).
    pub name: String,
}

impl Actor {
    /// The router, deciding where an incident goes.
    pub fn router() -> Actor {
        Actor {
            role: ActorRole::Router,
            name: "ioc router".into(),
        }
    }

    /// The service-level monitor.
    pub fn monitor() -> Actor {
        Actor {
            role: ActorRole::System,
            name: "service level monitor".into(),
        }
    }

    /// The hand-over of open incidents when a new boundary set takes effect.
    pub fn reform() -> Actor {
        Actor {
            role: ActorRole::System,
            name: "boundary reform".into(),
        }
    }
}

/// What happened to an incident: one step of its audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The router's decision: a ward, a proposal, or triage.
    Route,
    Verify,
    Assign,
    Acknowledge,
    Start,
    Resolve,
    Reject,
    Close,
    Reopen,
    MarkDuplicate,
    /// A merge was undone (on the duplicate and on its original).
    Split,
    Cancel,
    /// A duplicate was merged into this incident.
    Merge,
    /// A service-level target was missed.
    Escalate,
    /// A resolution nobody disputed was closed.
    AutoClose,
    /// A new boundary set took effect and the incident went to the unit that now holds its
    /// location (or to triage when none does).
    HandOver,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Route => "route",
            Step::Verify => "verify",
            Step::Assign => "assign",
            Step::Acknowledge => "acknowledge",
            Step::Start => "start",
            Step::Resolve => "resolve",
            Step::Reject => "reject",
            Step::Close => "close",
            Step::Reopen => "reopen",
            Step::MarkDuplicate => "mark_duplicate",
            Step::Split => "split",
            Step::Cancel => "cancel",
            Step::Merge => "merge",
            Step::Escalate => "escalate",
            Step::AutoClose => "auto_close",
            Step::HandOver => "hand_over",
        }
    }
}

/// One entry of an incident's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transition {
    #[serde(deserialize_with = "crate::time::utc")]
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub from: Option<Status>,
    pub to: Status,
    /// What happened.
    pub action: Step,
    /// Why, or the result text (internal unless it is a resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For a hand-over: which ward under which set gave it to which ward under which set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_over: Option<HandOver>,
    /// The command that made this change, so a command applied again (after its owner
    /// crashed before committing it) changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// What a hand-over at a boundary reform moved, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HandOver {
    /// The ward that held the incident under the set it was routed with.
    pub from_ward: WardRef,
    /// That set's version, when the incident recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_set: Option<String>,
    /// The ward holding its location under the set now in force; none sends it to triage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ward: Option<WardRef>,
    /// The set now in force.
    pub to_set: String,
}

/// The unit's result, shown to the citizen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resolution {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photo_urls: Vec<String>,
    #[serde(deserialize_with = "crate::time::utc")]
    pub at: DateTime<Utc>,
}

/// The public view of an incident, as stored on the incident topic (keyed by `id`). A record is a
/// pure function of its source record, so replaying an input writes identical bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Incident {
    pub schema: String,
    /// For a report: its tracking id; for a camera event: `cam-` and an id derived from the
    /// camera and the event's id (see [`crate::ids`]).
    pub id: String,
    /// Increases with every change of this incident; consumers keep the highest.
    pub revision: u64,
    pub source: Source,
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub location: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_urls: Vec<String>,
    pub ward: Option<WardRef>,
    pub assignment: Assignment,
    /// Responsible specialist unit for the category.
    pub unit: Option<String>,
    pub status: Status,
    /// How urgent; picks the category's service-level targets.
    #[serde(default)]
    pub priority: Priority,
    /// When it happened: report submission or camera detection time.
    #[serde(deserialize_with = "crate::time::utc")]
    pub occurred_at: DateTime<Utc>,
    /// When the source record reached Kafka.
    #[serde(deserialize_with = "crate::time::utc")]
    pub received_at: DateTime<Utc>,
    /// Time by which the assigned unit should acknowledge it (absent when the category sets no
    /// such target, or no unit holds it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::time::utc_option"
    )]
    pub ack_due_at: Option<DateTime<Utc>>,
    /// Time by which the unit should resolve it, from the category's service level.
    #[serde(deserialize_with = "crate::time::utc")]
    pub sla_due_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::time::utc")]
    pub updated_at: DateTime<Utc>,
    /// The unit's result, once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The incident this one was merged into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// Incidents merged into this one; their later updates are forwarded here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
    /// The ward this revision took the incident away from (a rejection or a reassignment), so
    /// that ward hears it is no longer its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_ward: Option<WardRef>,
    /// Service-level targets missed so far; non-empty means the incident is marked overdue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<Escalation>,
    /// Every change, oldest first: who, when, what and why.
    #[serde(default)]
    pub history: Vec<Transition>,
    /// For a camera situation: what has been seen of it so far. Kept up to date by new
    /// revisions while the situation lasts (without audit entries: nobody acted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub situation: Option<SituationSummary>,
}

/// What an incident shows of its camera situation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SituationSummary {
    #[serde(deserialize_with = "crate::time::utc")]
    pub first_seen: DateTime<Utc>,
    #[serde(deserialize_with = "crate::time::utc")]
    pub last_seen: DateTime<Utc>,
    pub detections: u64,
    pub peak_confidence: f64,
    /// The snapshot of the most confident detection that had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_url: Option<String>,
    /// The camera system said it is over.
    pub ended: bool,
    /// Without the source's end, it is over once this long passes without a detection.
    pub gap_seconds: i64,
}

impl SituationSummary {
    /// Whether the situation is still going on at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        !self.ended && now <= self.last_seen + chrono::Duration::seconds(self.gap_seconds)
    }

    /// Whether `newer` says enough more to be worth a revision: the end, a new snapshot, a
    /// confidence 0.1 higher, twice the detections, or a minute more of it. A situation
    /// lasting hours makes tens of revisions, not one per detection.
    pub fn worth_updating(&self, newer: &SituationSummary) -> bool {
        newer.detections > self.detections
            && (newer.ended != self.ended
                || newer.snapshot_url.is_some() && newer.snapshot_url != self.snapshot_url
                || newer.peak_confidence >= self.peak_confidence + 0.1
                || newer.detections >= self.detections * 2
                || newer.last_seen >= self.last_seen + chrono::Duration::minutes(1))
    }
}

impl Incident {
    /// The start of this incident's next revision: the revision number moved on and the fields
    /// that describe one revision only (`previous_ward`) cleared. Every change is built from
    /// here and finished with [`Incident::record`], so no path forgets either half.
    pub fn next_revision(&self) -> Incident {
        let mut next = self.clone();
        next.revision += 1;
        next.previous_ward = None;
        next
    }

    /// Records a step at `at`: the status it leads to, the time of the change and the audit
    /// trail's entry (from the status the incident had until now).
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        step: Step,
        to: Status,
        note: Option<String>,
    ) {
        let from = (!self.history.is_empty()).then_some(self.status);
        self.status = to;
        self.updated_at = at;
        self.history.push(Transition {
            at,
            actor,
            from,
            to,
            action: step,
            note,
            hand_over: None,
            command: None,
        });
    }
}

/// What the router writes to the dead-letter topic for input it cannot use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    pub schema: String,
    /// Short machine-readable reason, e.g. `malformed_json`, `unknown_camera`.
    pub reason: String,
    /// A sentence saying what is wrong.
    pub detail: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    /// The original record value, base64 (standard alphabet), byte for byte.
    pub original_base64: String,
    pub failed_at: DateTime<Utc>,
}

/// What an assignment record tells a ward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentChange {
    /// This revision handed the incident to the ward.
    Assigned,
    /// A later change of an incident the ward holds.
    Updated,
    /// The incident was taken from the ward (rejected by it, or reassigned elsewhere).
    Withdrawn,
}

/// A record of the assignments topic, keyed by ward and incident ([`AssignmentRecord::key`]): every incident revision that concerns a
/// ward, for systems that integrate with their ward directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AssignmentRecord {
    pub schema: String,
    pub ward_id: String,
    pub change: AssignmentChange,
    pub incident: Incident,
}

impl AssignmentRecord {
    /// The record's key on the assignments topic: `ward id/incident id`. The topic is
    /// compacted, which keeps a key's last record: keyed by ward alone, a ward would keep only
    /// its last incident's record; keyed so, each ward keeps the latest word on each of its
    /// incidents, and a ward's own system picks its records by the key's prefix.
    pub fn key(&self) -> String {
        format!("{}/{}", self.ward_id, self.incident.id)
    }

    /// The records one incident revision gives (each keyed by [`AssignmentRecord::key`]): one
    /// for the ward that holds it, and one for the ward it was taken from. A pure function of
    /// the revision.
    pub fn for_revision(i: &Incident) -> Vec<AssignmentRecord> {
        let mut out = Vec::new();
        if let Some(old) = &i.previous_ward {
            out.push(AssignmentRecord {
                schema: ASSIGNMENT_SCHEMA.into(),
                ward_id: old.id.clone(),
                change: AssignmentChange::Withdrawn,
                incident: i.clone(),
            });
        }
        // A ward is only a proposal until an operator has verified and assigned the incident.
        let proposed = matches!(i.status, Status::New | Status::Verified);
        if let Some(ward) = i.ward.as_ref().filter(|_| !proposed) {
            // New to this ward: it came from another one (re-routed, rejected naming this
            // ward, handed over at a reform), or it was routed or assigned just now.
            let assigned_now = i.previous_ward.is_some()
                || i.status == Status::Assigned
                    && i.history
                        .last()
                        .is_some_and(|t| matches!(t.action, Step::Route | Step::Assign));
            out.push(AssignmentRecord {
                schema: ASSIGNMENT_SCHEMA.into(),
                ward_id: ward.id.clone(),
                change: if assigned_now {
                    AssignmentChange::Assigned
                } else {
                    AssignmentChange::Updated
                },
                incident: i.clone(),
            });
        }
        out
    }
}
