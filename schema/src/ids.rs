//! Deterministic ids.
//!
//! The router is at-least-once: after a crash it may see an input again. Because an incident's id is
//! a pure function of its source event, a replay rewrites the same incident instead of creating a
//! second one, and the dashboard's upsert by id absorbs it.
//!
//! Every incident id is made here, never taken from a sender: a report's is a UUID (from the
//! client's idempotency key, or random), a camera event's is `cam-` and a UUID derived from the
//! camera and the event. The two namespaces cannot meet, so no camera system can take the id a
//! citizen's report will get.

use uuid::Uuid;

/// Namespace for every v5 id this project derives (a fixed random value; never change it).
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_9e0a_53d2_4b8e_9a41_2c7d_e8b0_f3a5);

/// Tracking id of a citizen report submitted with a client idempotency key: resubmitting the
/// same report with the same key, from the same client, yields the same id. The key is scoped
/// by the client (`scope`) and bound to the report's content (`content_digest`), so another
/// client's key, or the same key with another report, never leads to someone else's id (which
/// is that citizen's credential for confirm and dispute).
pub fn report_id_for_key(scope: &str, idempotency_key: &str, content_digest: &str) -> String {
    Uuid::new_v5(
        &NAMESPACE,
        format!("report-key:{scope}\u{0}{idempotency_key}\u{0}{content_digest}").as_bytes(),
    )
    .to_string()
}

/// Tracking id of a citizen report submitted without an idempotency key.
pub fn new_report_id() -> String {
    Uuid::new_v4().to_string()
}

/// Id of a camera event: a camera reports one event of a type at one instant, so these three
/// fields identify it even when the camera system sends it twice.
pub fn camera_event_id(camera_id: &str, event_type: &str, detected_at_rfc3339: &str) -> String {
    Uuid::new_v5(
        &NAMESPACE,
        format!("camera:{camera_id}:{event_type}:{detected_at_rfc3339}").as_bytes(),
    )
    .to_string()
}

/// Prefix of every incident id that comes from a camera.
pub const CAMERA_INCIDENT_PREFIX: &str = "cam-";

/// Id of the incident a camera event becomes.
pub fn camera_incident_id(camera_id: &str, event_id: &str) -> String {
    let derived = Uuid::new_v5(
        &NAMESPACE,
        format!("camera-incident:{camera_id}:{event_id}").as_bytes(),
    );
    format!("{CAMERA_INCIDENT_PREFIX}{derived}")
}

pub const VIOLATION_PREFIX: &str = "vio-";

/// Id of the enforcement record made from a camera incident id (`cam-…`): the same derivation,
/// its own prefix, so a capture and its record are easy to relate and never collide.
pub fn violation_id(camera_incident_id: &str) -> String {
    let rest = camera_incident_id
        .strip_prefix(CAMERA_INCIDENT_PREFIX)
        .unwrap_or(camera_incident_id);
    format!("{VIOLATION_PREFIX}{rest}")
}

/// Id of the incident a camera situation becomes: from its key and its first detection's
/// time, so a router that replays the detections derives the same one.
pub fn camera_situation_id(key: &str, first_seen_rfc3339: &str) -> String {
    let derived = Uuid::new_v5(
        &NAMESPACE,
        format!("camera-situation:{key}\u{0}{first_seen_rfc3339}").as_bytes(),
    );
    format!("{CAMERA_INCIDENT_PREFIX}{derived}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_id_and_different_keys_differ() {
        assert_eq!(
            report_id_for_key("app", "abc", "d1"),
            report_id_for_key("app", "abc", "d1")
        );
        assert_ne!(
            report_id_for_key("app", "abc", "d1"),
            report_id_for_key("app", "abd", "d1")
        );
        // Another client's key, or the same key with other content: another id.
        assert_ne!(
            report_id_for_key("app", "abc", "d1"),
            report_id_for_key("open311:PhuLy-S", "abc", "d1")
        );
        assert_ne!(
            report_id_for_key("app", "abc", "d1"),
            report_id_for_key("app", "abc", "d2")
        );
        assert_ne!(new_report_id(), new_report_id());
        let a = camera_event_id("CAM-1", "accident", "2026-01-01T00:00:00Z");
        assert_eq!(
            a,
            camera_event_id("CAM-1", "accident", "2026-01-01T00:00:00Z")
        );
        assert_ne!(
            a,
            camera_event_id("CAM-2", "accident", "2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn camera_incident_ids_cannot_take_a_report_id() {
        let report = report_id_for_key("app", "k-42", "d");
        // A camera system sending the report's predictable id as its event id gets another id.
        let cam = camera_incident_id("CAM-1", &report);
        assert!(cam.starts_with(CAMERA_INCIDENT_PREFIX));
        assert_ne!(cam, report);
        assert!(!report.starts_with(CAMERA_INCIDENT_PREFIX));
        assert_eq!(cam, camera_incident_id("CAM-1", &report));
        assert_ne!(cam, camera_incident_id("CAM-2", &report));
    }
}
