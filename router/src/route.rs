//! One input record in, one incident (or a reason to dead-letter it) out: reports routed whole,
//! camera records decoded and checked (their grouping into situations is `situations`), and a
//! checked camera event made an incident. No I/O, no clock: the output depends only on the
//! record, its Kafka timestamp and the configuration, which is what makes a replay harmless.

use std::time::Instant;

use chrono::{DateTime, Utc};
use ioc_config::load::Settings;
use ioc_config::{CategoryConfig, Verification};
use ioc_schema::metrics::Metrics;
use ioc_schema::sla::{self, CategoryTargets};
use ioc_schema::validate::{check_id, check_location, decode_json, InvalidInput};
use ioc_schema::{
    Actor, AssignRule, Assignment, CameraEvent, EnforcementRecord, Incident, Location, Report,
    Source, Status, Step, WardRef, CAMERA_EVENT_SCHEMA, INCIDENT_SCHEMA, REPORT_SCHEMA,
    VIOLATION_SCHEMA,
};

use crate::wards::BoundarySets;

/// Which input topic a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Report,
    CameraEvent,
    /// NVIDIA DeepStream's own messages, from its topic.
    DeepStream,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Report => "report",
            InputKind::CameraEvent => "camera_event",
            InputKind::DeepStream => "deepstream",
        }
    }
}

/// Routes one citizen report. `received_at` is the record's Kafka timestamp.
pub fn route_report(
    settings: &Settings,
    sets: &BoundarySets,
    metrics: Option<&Metrics>,
    payload: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Incident, InvalidInput> {
    let r: Report = decode_json(payload)?;
    if r.schema != REPORT_SCHEMA {
        return Err(InvalidInput::new(
            "unknown_schema",
            format!("schema '{}' is not {REPORT_SCHEMA}", r.schema),
        ));
    }
    let category = settings.category(&r.category).ok_or_else(|| {
        InvalidInput::new(
            "unknown_category",
            format!("category '{}' is not configured", r.category),
        )
    })?;
    check_location(&r.location)?;
    // Ingest makes tracking ids; anything else on the topic was not written by it.
    check_id("tracking_id", &r.tracking_id)?;
    let targets = category.targets();
    let mut incident = incident_skeleton(
        r.tracking_id,
        Source::Report { channel: r.channel },
        category,
        &targets,
        r.location,
        r.submitted_at,
        received_at,
    );
    incident.text = Some(r.text);
    incident.address = r.address;
    incident.media_urls = r.photo_urls;
    let hold = settings.config.router.require_verification != Verification::None;
    assign(&mut incident, category, &targets, sets, metrics, hold);
    Ok(incident)
}

/// Reads and checks a camera-topic record. `received_at` is its Kafka time, which stands in
/// for "now" so the verdict does not change on replay.
pub fn decode_camera(
    settings: &Settings,
    payload: &[u8],
    received_at: DateTime<Utc>,
) -> Result<CameraEvent, InvalidInput> {
    let e: CameraEvent = decode_json(payload)?;
    if let Some(schema) = &e.schema {
        if schema != CAMERA_EVENT_SCHEMA {
            return Err(InvalidInput::new(
                "unknown_schema",
                format!("schema '{schema}' is not {CAMERA_EVENT_SCHEMA}"),
            ));
        }
    }
    settings.check_camera_event(&e, received_at)?;
    Ok(e)
}

/// Reads a record of DeepStream's own topic (one message, full or minimal schema) into checked
/// camera events, the device registry naming the camera of each `sensor.id`. The record's Kafka
/// time stands for ingest's, so a replay reads the same. Detections of vendor events mapped to
/// no ioc event type are left out.
pub fn decode_deepstream(
    settings: &Settings,
    payload: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Vec<CameraEvent>, InvalidInput> {
    use ioc_config::cameras::Converted;
    use ioc_schema::camera::{deepstream, ReadOptions};
    let opts = ReadOptions {
        content_type: None,
        device: None,
        local_offset: settings.camera_local_offset(),
    };
    let mut out = Vec::new();
    for obs in deepstream::read(payload, &opts)? {
        if let Converted::Event(e) = settings.convert_observation(obs, received_at)? {
            settings.check_camera_event(&e, received_at)?;
            out.push(*e);
        }
    }
    Ok(out)
}

/// The incident a checked camera event (or the situation it opened, `occurred_at` its first
/// detection) becomes, under the id `id`.
pub fn camera_incident(
    settings: &Settings,
    sets: &BoundarySets,
    metrics: Option<&Metrics>,
    e: &CameraEvent,
    id: String,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
) -> Incident {
    // Checked when it was decoded (`decode_camera`, `decode_deepstream`): only looked up here.
    let camera = settings
        .cameras
        .get(&e.camera_id)
        .expect("a checked camera event's camera is registered");
    let category = settings
        .category_for_camera_type(&e.event_type)
        .expect("a checked camera event's type is configured");
    let location = Location {
        lat: camera.lat,
        lon: camera.lon,
        accuracy_m: None,
    };
    let targets = category.targets();
    let mut incident = incident_skeleton(
        id,
        Source::Camera {
            camera_id: e.camera_id.clone(),
            event_type: e.event_type.clone(),
            confidence: e.confidence,
        },
        category,
        &targets,
        location,
        occurred_at,
        received_at,
    );
    incident.text = Some(format!(
        "{} detected by camera {}{}{}",
        e.event_type.replace('_', " "),
        camera.id,
        if camera.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", camera.description)
        },
        e.zone
            .as_deref()
            .map(|z| format!(", zone {z}"))
            .unwrap_or_default()
    ));
    incident.media_urls = e.snapshot_url.iter().cloned().collect();
    let hold = settings.config.router.require_verification == Verification::All;
    assign(&mut incident, category, &targets, sets, metrics, hold);
    incident
}

/// The enforcement record of a camera capture (disposition `record`), placed where the
/// capture's incident would have been: same ward lookup, same unit. For a tracked capture,
/// `detections`, `confidence` and `snapshot_url` are its track's so far.
pub fn enforcement_record(
    settings: &Settings,
    placed: &Incident,
    e: &CameraEvent,
    detections: u64,
    confidence: f64,
    snapshot_url: Option<String>,
) -> EnforcementRecord {
    EnforcementRecord {
        schema: VIOLATION_SCHEMA.to_string(),
        id: ioc_schema::ids::violation_id(&placed.id),
        camera_id: e.camera_id.clone(),
        event_type: e.event_type.clone(),
        category: placed.category.clone(),
        // The category's unit even outside every ward: the record is still theirs to see.
        unit: settings
            .category_for_camera_type(&e.event_type)
            .map(|c| c.unit.clone())
            .unwrap_or_default(),
        confidence,
        detected_at: placed.occurred_at,
        received_at: placed.received_at,
        location: placed.location,
        ward: placed.ward.clone(),
        plate: e.plate.clone(),
        lane: e.lane.clone(),
        zone: e.zone.clone(),
        snapshot_url,
        format: e.vendor.as_ref().map(|v| v.format),
        detections,
    }
}

fn incident_skeleton(
    id: String,
    source: Source,
    category: &CategoryConfig,
    targets: &CategoryTargets,
    location: Location,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
) -> Incident {
    let priority = targets.default_priority;
    Incident {
        schema: INCIDENT_SCHEMA.to_string(),
        id,
        revision: 1,
        source,
        category: category.id.clone(),
        text: None,
        location,
        address: None,
        media_urls: Vec::new(),
        ward: None,
        assignment: Assignment {
            rule: AssignRule::Unassigned,
            distance_m: None,
            reason: None,
            boundary_version: None,
        },
        unit: None,
        status: Status::Unassigned,
        priority,
        occurred_at,
        received_at,
        ack_due_at: None,
        sla_due_at: sla::resolve_due(&targets.for_priority(priority), occurred_at),
        updated_at: received_at,
        resolution: None,
        duplicate_of: None,
        merged: Vec::new(),
        previous_ward: None,
        escalations: Vec::new(),
        situation: None,
        history: Vec::new(),
    }
}

/// Picks the boundary set in force when the incident was received and applies the ward rule. With `hold`,
/// a located incident waits for operators as `new`, the ward found kept as a proposal and no
/// acknowledgement clock until an operator assigns it.
fn assign(
    incident: &mut Incident,
    category: &CategoryConfig,
    targets: &CategoryTargets,
    sets: &BoundarySets,
    metrics: Option<&Metrics>,
    hold: bool,
) {
    // The unit responsible is the one in force when the incident reached us; what happens to
    // it when a later set takes effect is the reform's hand-over (`ioc_wards::reform`).
    let Some(set) = sets.select(incident.received_at) else {
        incident.assignment.reason = Some(format!(
            "no boundary set is in force at {}",
            incident.received_at.to_rfc3339()
        ));
        count(metrics, AssignRule::Unassigned);
        return;
    };
    let started = Instant::now();
    let outcome = set
        .index
        .locate(incident.location.lon, incident.location.lat);
    if let Some(m) = metrics {
        m.lookup_seconds
            .with_label_values(&[&set.version])
            .observe(started.elapsed().as_secs_f64());
    }
    incident.assignment = Assignment {
        rule: outcome.rule,
        distance_m: outcome.distance_m.map(|d| (d * 100.0).round() / 100.0),
        reason: None,
        boundary_version: Some(set.version.clone()),
    };
    match outcome.ward {
        Some(w) => {
            let ward = &set.index.wards()[w as usize];
            incident.ward = Some(WardRef {
                id: ward.id.clone(),
                name: ward.name.clone(),
            });
            incident.unit = Some(category.unit.clone());
            if hold {
                incident.status = Status::New;
            } else {
                incident.status = Status::Assigned;
                // The unit's acknowledgement clock starts when the record reached Kafka.
                let t = targets.for_priority(incident.priority);
                incident.ack_due_at = sla::acknowledge_due(&t, incident.received_at);
            }
        }
        None => {
            incident.assignment.reason = Some(format!(
                "outside every ward of boundary set {} and farther than {} m from any",
                set.version,
                set.index.options().nearest_max_m
            ));
        }
    }
    count(metrics, outcome.rule);
    record_routing(incident);
}

/// The first entry of the audit trail: the router's decision, timed by the input record.
fn record_routing(incident: &mut Incident) {
    let note = incident.assignment.reason.clone();
    incident.record(
        incident.received_at,
        Actor::router(),
        Step::Route,
        incident.status,
        note,
    );
}

fn count(metrics: Option<&Metrics>, rule: AssignRule) {
    if let Some(m) = metrics {
        m.assigned.with_label_values(&[rule.as_str()]).inc();
    }
}
