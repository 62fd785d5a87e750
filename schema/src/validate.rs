//! Input rules shared by the ingest API (which answers 4xx) and the router (which dead-letters).
//! Each failure has a stable machine-readable `code` and a sentence a person can act on.

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;

use crate::{CameraEvent, Location, ReportSubmission};

/// Longest report text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Most photo URLs on one report.
pub const MAX_PHOTOS: usize = 10;
/// How far in the future a client clock may be before a timestamp is refused.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(10);

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct InvalidInput {
    /// Stable code, e.g. `malformed_json`, `missing_field`, `invalid_location`.
    pub code: &'static str,
    pub message: String,
}

impl InvalidInput {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        InvalidInput {
            code,
            message: message.into(),
        }
    }
}

/// Parses JSON, sorting serde's errors into malformed JSON, a missing field and a bad field.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InvalidInput> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => InvalidInput::new(
                "malformed_json",
                format!("The body is not valid JSON ({e}). Send a JSON document."),
            ),
            Category::Data if e.to_string().starts_with("missing field") => InvalidInput::new(
                "missing_field",
                format!("A required field is missing: {e}."),
            ),
            Category::Data => InvalidInput::new(
                "invalid_field",
                format!("A field has the wrong type or value: {e}."),
            ),
        }
    })
}

/// Checks a position: finite, latitude in [-90, 90], longitude in [-180, 180].
pub fn check_location(loc: &Location) -> Result<(), InvalidInput> {
    if !loc.lat.is_finite() || !loc.lon.is_finite() {
        return Err(InvalidInput::new(
            "invalid_location",
            "Latitude and longitude must be finite numbers.",
        ));
    }
    if !(-90.0..=90.0).contains(&loc.lat) {
        return Err(InvalidInput::new(
            "invalid_location",
            format!(
                "Latitude {} is out of range; it must be between -90 and 90.",
                loc.lat
            ),
        ));
    }
    if !(-180.0..=180.0).contains(&loc.lon) {
        return Err(InvalidInput::new(
            "invalid_location",
            format!(
                "Longitude {} is out of range; it must be between -180 and 180.",
                loc.lon
            ),
        ));
    }
    if let Some(acc) = loc.accuracy_m {
        if !acc.is_finite() || acc < 0.0 {
            return Err(InvalidInput::new(
                "invalid_location",
                "accuracy_m must be a non-negative number of metres.",
            ));
        }
    }
    Ok(())
}

fn check_time(field: &str, t: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), InvalidInput> {
    if t > now + MAX_CLOCK_SKEW {
        return Err(InvalidInput::new(
            "invalid_time",
            format!("{field} {t} is in the future; check the device clock."),
        ));
    }
    Ok(())
}

fn check_url(field: &str, url: &str) -> Result<(), InvalidInput> {
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
        return Err(InvalidInput::new(
            "invalid_url",
            format!("{field} must be an http(s) URL of at most 2048 characters."),
        ));
    }
    Ok(())
}

/// Checks a citizen report against the configured categories.
pub fn check_report(
    r: &ReportSubmission,
    category_known: impl Fn(&str) -> bool,
    now: DateTime<Utc>,
) -> Result<(), InvalidInput> {
    if let Some(key) = &r.idempotency_key {
        if key.is_empty() || key.len() > 200 {
            return Err(InvalidInput::new(
                "invalid_field",
                "idempotency_key must be 1 to 200 characters.",
            ));
        }
    }
    if !category_known(&r.category) {
        return Err(InvalidInput::new(
            "unknown_category",
            format!(
                "Category '{}' is not configured; GET /v1/categories lists the valid ones.",
                r.category
            ),
        ));
    }
    if r.text.trim().is_empty() {
        return Err(InvalidInput::new(
            "invalid_field",
            "text must not be empty.",
        ));
    }
    if r.text.chars().count() > MAX_TEXT_CHARS {
        return Err(InvalidInput::new(
            "invalid_field",
            format!("text is longer than {MAX_TEXT_CHARS} characters."),
        ));
    }
    check_location(&r.location)?;
    if r.photo_urls.len() > MAX_PHOTOS {
        return Err(InvalidInput::new(
            "invalid_field",
            format!("At most {MAX_PHOTOS} photo URLs are accepted."),
        ));
    }
    for url in &r.photo_urls {
        check_url("photo_urls", url)?;
    }
    check_time("submitted_at", r.submitted_at, now)
}

/// Checks a camera event's own fields (the camera registry is checked by the caller).
pub fn check_camera_event(e: &CameraEvent, now: DateTime<Utc>) -> Result<(), InvalidInput> {
    if e.camera_id.is_empty() {
        return Err(InvalidInput::new(
            "missing_field",
            "camera_id must not be empty.",
        ));
    }
    if !(0.0..=1.0).contains(&e.confidence) {
        return Err(InvalidInput::new(
            "invalid_field",
            format!("confidence {} must be between 0 and 1.", e.confidence),
        ));
    }
    if let Some(url) = &e.snapshot_url {
        check_url("snapshot_url", url)?;
    }
    check_time("detected_at", e.detected_at, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_json(extra: &str) -> String {
        format!(
            r#"{{"channel":"app","category":"traffic_order","text":"Xe đỗ trên vỉa hè",
               "location":{{"lat":20.54,"lon":105.91}},"submitted_at":"2026-01-01T00:00:00Z"{extra}}}"#
        )
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:05:00Z".parse().unwrap()
    }

    #[test]
    fn a_good_report_passes() {
        let r: ReportSubmission = decode_json(report_json("").as_bytes()).unwrap();
        check_report(&r, |c| c == "traffic_order", now()).unwrap();
    }

    #[test]
    fn json_errors_are_sorted_by_kind() {
        assert_eq!(
            decode_json::<ReportSubmission>(b"{").unwrap_err().code,
            "malformed_json"
        );
        assert_eq!(
            decode_json::<ReportSubmission>(br#"{"channel":"app"}"#)
                .unwrap_err()
                .code,
            "missing_field"
        );
        let bad_channel = report_json("").replace("\"app\"", "\"pigeon\"");
        assert_eq!(
            decode_json::<ReportSubmission>(bad_channel.as_bytes())
                .unwrap_err()
                .code,
            "invalid_field"
        );
        let unknown = report_json(r#","colour":"red""#);
        assert_eq!(
            decode_json::<ReportSubmission>(unknown.as_bytes())
                .unwrap_err()
                .code,
            "invalid_field"
        );
    }

    #[test]
    fn out_of_range_and_unknown_values_are_refused() {
        let mut r: ReportSubmission = decode_json(report_json("").as_bytes()).unwrap();
        assert_eq!(
            check_report(&r, |_| false, now()).unwrap_err().code,
            "unknown_category"
        );
        r.location.lat = 91.0;
        assert_eq!(
            check_report(&r, |_| true, now()).unwrap_err().code,
            "invalid_location"
        );
        r.location.lat = f64::NAN;
        assert_eq!(
            check_report(&r, |_| true, now()).unwrap_err().code,
            "invalid_location"
        );
        r.location.lat = 20.0;
        r.location.lon = -181.0;
        assert_eq!(
            check_report(&r, |_| true, now()).unwrap_err().code,
            "invalid_location"
        );
        r.location.lon = 105.0;
        r.submitted_at = now() + Duration::hours(1);
        assert_eq!(
            check_report(&r, |_| true, now()).unwrap_err().code,
            "invalid_time"
        );
        r.submitted_at = now();
        r.photo_urls = vec!["file:///etc/passwd".into()];
        assert_eq!(
            check_report(&r, |_| true, now()).unwrap_err().code,
            "invalid_url"
        );
        r.photo_urls.clear();
        r.text = "  ".into();
        assert_eq!(
            check_report(&r, |_| true, now()).unwrap_err().code,
            "invalid_field"
        );
    }

    #[test]
    fn camera_confidence_must_be_a_probability() {
        let e: CameraEvent = decode_json(
            br#"{"camera_id":"C1","event_type":"accident","confidence":1.5,"detected_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            check_camera_event(&e, now()).unwrap_err().code,
            "invalid_field"
        );
    }
}
