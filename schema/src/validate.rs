//! Input rules shared by the ingest API (which answers 4xx), the dashboard (which answers 4xx to
//! lifecycle actions) and the router (which dead-letters). Each failure has a stable
//! machine-readable `code` and a sentence a person can act on.
//!
//! Everything that crosses our edge is bounded here: the shape of the JSON (objects where the
//! schema names objects, never arrays standing in for them), the alphabet and length of ids, the
//! length of every text, the schemes of links and the window of acceptable event times. What
//! passes can be written into JSON, XML, Server-Sent Events and log lines without breaking them.

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Duration, Utc};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::{CameraEvent, Contact, Location, ReportSubmission};

/// Longest report text (and resolution or reason text) accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest short text (an address, a note's subject, a contact field), in characters.
pub const MAX_SHORT_CHARS: usize = 500;
/// Most photo URLs on one report or resolution.
pub const MAX_PHOTOS: usize = 10;
/// Longest URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest id a client may send (an event id, a camera id, an idempotency key).
pub const MAX_ID_CHARS: usize = 128;

/// How far around the time an event was received its own time may lie. Anything outside is a
/// broken clock or a forged record, refused with `invalid_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// How old an event may be when it arrives.
    pub max_age: Duration,
    /// How far ahead of our clock a device's clock may run.
    pub max_skew: Duration,
}

impl Default for TimeWindow {
    fn default() -> Self {
        TimeWindow {
            max_age: Duration::days(30),
            max_skew: Duration::minutes(5),
        }
    }
}

impl TimeWindow {
    /// Checks that `t` lies within the window around `now`.
    pub fn check(
        &self,
        field: &str,
        t: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), InvalidInput> {
        let earliest = now.checked_sub_signed(self.max_age);
        let latest = now.checked_add_signed(self.max_skew);
        if latest.is_some_and(|latest| t > latest) {
            return Err(InvalidInput::new(
                "invalid_time",
                format!(
                    "{field} {} is more than {} ahead of the server's clock; check the device clock.",
                    t.to_rfc3339(),
                    words(self.max_skew)
                ),
            ));
        }
        if earliest.is_some_and(|earliest| t < earliest) {
            return Err(InvalidInput::new(
                "invalid_time",
                format!(
                    "{field} {} is more than {} before it reached us; events that old are not accepted.",
                    t.to_rfc3339(),
                    words(self.max_age)
                ),
            ));
        }
        Ok(())
    }
}

/// A period in words, for messages.
fn words(d: Duration) -> String {
    if d.num_days() >= 1 {
        format!("{} days", d.num_days())
    } else if d.num_hours() >= 1 {
        format!("{} hours", d.num_hours())
    } else {
        format!("{} minutes", d.num_minutes())
    }
}

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

/// Deserializes `T` only from a JSON object. Serde's derived structs also accept an array of
/// the fields in order, so `"location": [20.5, 105.9]` would otherwise be read as `{lat, lon}`
/// (and a GeoJSON-minded client's `[lon, lat]` silently swapped); the schema names objects, so
/// an array is refused.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    struct ObjectOnly<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object with named fields (arrays are refused: [lat, lon] and GeoJSON's [lon, lat] cannot be told apart)")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(ObjectOnly(PhantomData))
}

/// [`object`] for an optional field: absent or `null` is `None`.
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    struct Opt<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Opt<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object or null")
        }
        fn visit_none<E>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Option<T>, D2::Error> {
            object(d).map(Some)
        }
    }
    d.deserialize_option(Opt(PhantomData))
}

/// A `T` that was a JSON object on the wire (see [`object`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d).map(Object)
    }
}

/// Parses a JSON object into `T`, sorting serde's errors into malformed JSON, a missing field
/// and a bad field. The top level must be an object (see [`object`]).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InvalidInput> {
    decode::<Object<T>>(bytes).map(|o| o.0)
}

/// Parses a JSON array of objects into `T`s (see [`decode_json`]).
pub fn decode_json_list<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, InvalidInput> {
    decode::<Vec<Object<T>>>(bytes).map(|v| v.into_iter().map(|o| o.0).collect())
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InvalidInput> {
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

/// Checks a client-supplied id: 1 to [`MAX_ID_CHARS`] characters of `A-Z a-z 0-9 . _ : / @ + -`.
/// Ids end up in Kafka keys, log lines, URLs and event-stream fields, where a newline or a quote
/// would break the format.
pub fn check_id(field: &str, id: &str) -> Result<(), InvalidInput> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "._:/@+-".contains(c);
    if id.is_empty() || id.len() > MAX_ID_CHARS || !id.chars().all(safe) {
        return Err(InvalidInput::new(
            "invalid_id",
            format!(
                "{field} must be 1 to {MAX_ID_CHARS} characters of letters, digits and . _ : / @ + - (no spaces or control characters)."
            ),
        ));
    }
    Ok(())
}

/// Checks a text field: at most `max` characters, no control characters but line breaks and
/// tabs (XML 1.0 cannot carry the others, and they have no place in a report).
pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), InvalidInput> {
    if text.chars().count() > max {
        return Err(InvalidInput::new(
            "text_too_long",
            format!("{field} is longer than {max} characters; shorten it."),
        ));
    }
    if let Some(c) = text.chars().find(|c| !allowed_in_text(*c)) {
        return Err(InvalidInput::new(
            "invalid_field",
            format!(
                "{field} contains the control character U+{:04X}; remove it.",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// Whether a character may appear in stored text: what XML 1.0 can carry, minus the C1
/// controls and the Unicode non-characters U+FFFE/U+FFFF.
pub fn allowed_in_text(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (!c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// Checks a required, non-blank text field.
pub fn check_required_text(field: &str, text: &str, max: usize) -> Result<(), InvalidInput> {
    if text.trim().is_empty() {
        return Err(InvalidInput::new(
            "invalid_field",
            format!("{field} must not be empty."),
        ));
    }
    check_text(field, text, max)
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

/// Checks a link: an `http` or `https` URL with a host, at most [`MAX_URL_CHARS`], no spaces or
/// control characters. Anything else (`javascript:`, `file:`, `data:`) would be served to
/// citizens and operators as a link.
pub fn check_url(field: &str, url: &str) -> Result<(), InvalidInput> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        ""
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || url.chars().count() > MAX_URL_CHARS
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\"\\`".contains(c))
    {
        return Err(InvalidInput::new(
            "invalid_url",
            format!("{field} must be http(s) URLs with a host, of at most {MAX_URL_CHARS} characters, without spaces or quotes."),
        ));
    }
    Ok(())
}

/// Checks a list of photo links.
pub fn check_photos(field: &str, urls: &[String]) -> Result<(), InvalidInput> {
    if urls.len() > MAX_PHOTOS {
        return Err(InvalidInput::new(
            "invalid_field",
            format!("At most {MAX_PHOTOS} {field} are accepted."),
        ));
    }
    urls.iter().try_for_each(|u| check_url(field, u))
}

fn check_contact(c: &Contact) -> Result<(), InvalidInput> {
    for (field, value) in [
        ("reporter.name", &c.name),
        ("reporter.phone", &c.phone),
        ("reporter.email", &c.email),
    ] {
        if let Some(v) = value {
            check_text(field, v, MAX_SHORT_CHARS)?;
        }
    }
    Ok(())
}

/// Checks a citizen report against the configured categories; `now` is when it was received.
pub fn check_report(
    r: &ReportSubmission,
    category_known: impl Fn(&str) -> bool,
    now: DateTime<Utc>,
    window: &TimeWindow,
) -> Result<(), InvalidInput> {
    if let Some(key) = &r.idempotency_key {
        if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "invalid_field",
                "idempotency_key must be 1 to 200 characters, without control characters.",
            ));
        }
    }
    if !category_known(&r.category) {
        let mut shown: String = r
            .category
            .chars()
            .take(64)
            .filter(|c| !c.is_control())
            .collect();
        if shown.len() < r.category.len() {
            shown.push('…');
        }
        return Err(InvalidInput::new(
            "unknown_category",
            format!(
                "Category '{shown}' is not configured; GET /v1/categories lists the valid ones."
            ),
        ));
    }
    check_required_text("text", &r.text, MAX_TEXT_CHARS)?;
    if let Some(a) = &r.address {
        check_text("address", a, MAX_SHORT_CHARS)?;
    }
    if let Some(c) = &r.reporter {
        check_contact(c)?;
    }
    check_location(&r.location)?;
    check_photos("photo_urls", &r.photo_urls)?;
    match r.submitted_at {
        Some(t) => window.check("submitted_at", t, now),
        None => Ok(()),
    }
}

/// Checks a camera event's own fields (the camera registry is checked by the caller); `now` is
/// when it was received.
pub fn check_camera_event(
    e: &CameraEvent,
    now: DateTime<Utc>,
    window: &TimeWindow,
) -> Result<(), InvalidInput> {
    if e.camera_id.is_empty() {
        return Err(InvalidInput::new(
            "missing_field",
            "camera_id must not be empty.",
        ));
    }
    check_id("camera_id", &e.camera_id)?;
    check_id("event_type", &e.event_type)?;
    if let Some(id) = &e.event_id {
        check_id("event_id", id)?;
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
    if let Some(plate) = &e.plate {
        check_text("plate", plate, 32)?;
    }
    if let Some(key) = &e.source_key {
        check_id("source_key", key)?;
    }
    for (field, value) in [
        ("zone", &e.zone),
        ("rule", &e.rule),
        ("lane", &e.lane),
        ("channel", &e.channel),
    ] {
        if let Some(v) = value {
            check_text(field, v, MAX_ID_CHARS)?;
        }
    }
    window.check("detected_at", e.detected_at, now)
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
        check_report(&r, |c| c == "traffic_order", now(), &TimeWindow::default()).unwrap();
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
            check_report(&r, |_| false, now(), &TimeWindow::default())
                .unwrap_err()
                .code,
            "unknown_category"
        );
        r.location.lat = 91.0;
        assert_eq!(
            check_report(&r, |_| true, now(), &TimeWindow::default())
                .unwrap_err()
                .code,
            "invalid_location"
        );
        r.location.lat = f64::NAN;
        assert_eq!(
            check_report(&r, |_| true, now(), &TimeWindow::default())
                .unwrap_err()
                .code,
            "invalid_location"
        );
        r.location.lat = 20.0;
        r.location.lon = -181.0;
        assert_eq!(
            check_report(&r, |_| true, now(), &TimeWindow::default())
                .unwrap_err()
                .code,
            "invalid_location"
        );
        r.location.lon = 105.0;
        r.submitted_at = Some(now() + Duration::hours(1));
        assert_eq!(
            check_report(&r, |_| true, now(), &TimeWindow::default())
                .unwrap_err()
                .code,
            "invalid_time"
        );
        r.submitted_at = Some(now());
        r.photo_urls = vec!["file:///etc/passwd".into()];
        assert_eq!(
            check_report(&r, |_| true, now(), &TimeWindow::default())
                .unwrap_err()
                .code,
            "invalid_url"
        );
        r.photo_urls.clear();
        r.text = "  ".into();
        assert_eq!(
            check_report(&r, |_| true, now(), &TimeWindow::default())
                .unwrap_err()
                .code,
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
            check_camera_event(&e, now(), &TimeWindow::default())
                .unwrap_err()
                .code,
            "invalid_field"
        );
    }

    #[test]
    fn arrays_never_stand_in_for_objects() {
        for body in [
            report_json("").replace(r#"{"lat":20.54,"lon":105.91}"#, "[20.54, 105.91]"),
            report_json(r#","reporter":[]"#),
            r#"["app","traffic_order","x",{"lat":1,"lon":1},null,[],null,"2026-01-01T00:00:00Z"]"#
                .to_string(),
        ] {
            let err = decode_json::<ReportSubmission>(body.as_bytes()).unwrap_err();
            assert_eq!(err.code, "invalid_field", "{body}");
            assert!(err.message.contains("JSON object"), "{}", err.message);
        }
        // An explicit null reporter is still "no reporter".
        let r: ReportSubmission =
            decode_json(report_json(r#","reporter":null"#).as_bytes()).unwrap();
        assert_eq!(r.reporter, None);
        let r: ReportSubmission =
            decode_json(report_json(r#","reporter":{"phone":"0912"}"#).as_bytes()).unwrap();
        assert_eq!(r.reporter.unwrap().phone.as_deref(), Some("0912"));
        assert!(decode_json_list::<CameraEvent>(
            br#"[["C1","accident",0.5,"2026-01-01T00:00:00Z"]]"#
        )
        .is_err());
    }

    #[test]
    fn ids_keep_to_a_safe_alphabet() {
        for good in ["CAM-0001", "a", "frigate/cam_1:2026@x+y.z"] {
            check_id("event_id", good).unwrap();
        }
        let long = "x".repeat(MAX_ID_CHARS + 1);
        for bad in [
            "",
            " ",
            "x\ny",
            "x\ry",
            "x\0y",
            "a b",
            "é",
            "<script>",
            long.as_str(),
        ] {
            assert_eq!(
                check_id("event_id", bad).unwrap_err().code,
                "invalid_id",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn times_outside_the_window_are_refused_without_overflow() {
        let w = TimeWindow::default();
        let now = now();
        w.check("t", now, now).unwrap();
        w.check("t", now - Duration::days(29), now).unwrap();
        w.check("t", now + Duration::minutes(4), now).unwrap();
        for t in [
            now - Duration::days(31),
            now + Duration::minutes(6),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            "0000-01-01T00:00:00Z".parse().unwrap(),
        ] {
            assert_eq!(
                w.check("t", t, now).unwrap_err().code,
                "invalid_time",
                "{t}"
            );
        }
        // A window at the edge of the calendar does not overflow either.
        w.check("t", DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC)
            .unwrap();
        w.check("t", DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MAX_UTC)
            .unwrap();
    }

    #[test]
    fn only_http_links_with_a_host() {
        for good in [
            "https://x.vn/a.jpg",
            "http://10.0.0.1:8080/snap?id=1",
            "HTTPS://X.VN/",
        ] {
            check_url("photo_urls", good).unwrap();
        }
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/html,<b>",
            "https://",
            "https:///path",
            "https://x.vn/a b",
            "https://x.vn/\"onmouseover=",
            "//x.vn/a",
        ] {
            assert_eq!(
                check_url("photo_urls", bad).unwrap_err().code,
                "invalid_url",
                "{bad}"
            );
        }
    }

    #[test]
    fn texts_are_bounded_and_free_of_control_characters() {
        check_text("text", "Dòng một\nDòng hai\tcột", 100).unwrap();
        assert_eq!(
            check_text("text", "a\u{0}b", 100).unwrap_err().code,
            "invalid_field"
        );
        assert_eq!(
            check_text("text", "a\u{1b}[31m", 100).unwrap_err().code,
            "invalid_field"
        );
        assert_eq!(
            check_text("text", "a\u{FFFF}", 100).unwrap_err().code,
            "invalid_field"
        );
        assert_eq!(
            check_text("text", &"ư".repeat(101), 100).unwrap_err().code,
            "text_too_long"
        );
        let mut r: ReportSubmission = decode_json(report_json("").as_bytes()).unwrap();
        r.text = "x\u{7}".into();
        assert!(check_report(&r, |_| true, now(), &TimeWindow::default()).is_err());
    }
}
