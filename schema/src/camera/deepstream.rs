//! NVIDIA DeepStream messages (`nvmsgconv`, as `nvmsgbroker` publishes them).
//!
//! Full schema: one object per message, `sensor.id`, `object.id` (the tracker's id), `event.type`
//! (`entry`, `exit`, `moving`, `stopped`, `parked`, `empty`, `reset` or a custom name),
//! `@timestamp`, `object.vehicle.license`. `messageid` and `event.id` are fresh UUIDs in every
//! message, so the situation's key is the sensor and the tracker id. Minimal schema: `sensorId`
//! and `objects`, each `trackerId|left|top|right|bottom|label` with optional attributes after it
//! (newer versions end with the detector's confidence). There is no start or end: every message
//! is an update, and a situation ends when its inactivity gap passes. The first frame may carry a
//! 1970 timestamp, which is read as no device time.

use serde_json::Value;

use super::{
    epoch, id_text, share, text, time, unreadable, Format, Observation, ReadOptions, Signal,
};
use crate::validate::InvalidInput;

const F: Format = Format::Deepstream;

/// Reads one message, an array of messages, or one message per line.
pub fn read(body: &[u8], opts: &ReadOptions<'_>) -> Result<Vec<Observation>, InvalidInput> {
    let text = text(body, F)?;
    let trimmed = text.trim_start();
    let messages: Vec<Value> = if trimmed.starts_with('[') {
        serde_json::from_str(text).map_err(|e| unreadable(F, e))?
    } else {
        let mut out = Vec::new();
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for m in stream {
            out.push(m.map_err(|e| unreadable(F, e))?);
        }
        out
    };
    if messages.is_empty() {
        return Err(unreadable(F, "the body holds no message"));
    }
    let mut out = Vec::new();
    for m in &messages {
        read_message(m, opts, &mut out)?;
    }
    Ok(out)
}

/// Reads one message (either schema) into `out`.
pub fn read_message(
    m: &Value,
    opts: &ReadOptions<'_>,
    out: &mut Vec<Observation>,
) -> Result<(), InvalidInput> {
    if !m.is_object() {
        return Err(unreadable(F, "a message must be a JSON object"));
    }
    let raw_time = m["@timestamp"].as_str().map(str::to_string);
    let device_time = raw_time
        .as_deref()
        .map(|t| time(t, opts.local_offset))
        .transpose()?
        .flatten();
    if let Some(objects) = m["objects"].as_array() {
        let sensor = super::device_of(F, opts, id_text(&m["sensorId"]))?;
        for o in objects {
            let Some(line) = o.as_str() else {
                return Err(unreadable(
                    F,
                    "minimal-schema objects are '|'-separated strings",
                ));
            };
            let fields: Vec<&str> = line.split('|').collect();
            if fields.len() < 6 || fields[0].is_empty() || fields[5].is_empty() {
                return Err(unreadable(
                    F,
                    format!("object '{line}' is not trackerId|left|top|right|bottom|label"),
                ));
            }
            let label = fields[5].to_ascii_lowercase();
            let mut obs = Observation::new(F, sensor.clone(), label, Signal::Update);
            obs.source_key = Some(format!("{sensor}/{}", fields[0]));
            obs.device_time = device_time;
            obs.device_time_raw = raw_time.clone();
            obs.confidence = fields
                .last()
                .filter(|_| fields.len() > 6)
                .and_then(|c| c.parse::<f64>().ok())
                .filter(|c| (0.0..=1.0).contains(c));
            obs.vendor = serde_json::json!({
                "version": m["version"], "id": m["id"], "@timestamp": m["@timestamp"],
                "sensorId": m["sensorId"], "object": line,
            });
            out.push(obs);
        }
        return Ok(());
    }
    let sensor = super::device_of(F, opts, id_text(&m["sensor"]["id"]))?;
    let event_type = m["event"]["type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            unreadable(
                F,
                "a full-schema message needs event.type (or objects[] for the minimal schema)",
            )
        })?;
    let object = &m["object"];
    let class = ["vehicle", "person", "face", "bag"]
        .into_iter()
        .find(|c| object[*c].is_object());
    let mut obs = Observation::new(F, sensor.clone(), event_type.to_string(), Signal::Update);
    if let Some(class) = class {
        obs.vendor_types.insert(0, format!("{event_type}:{class}"));
    }
    if let Some(tracker) = id_text(&object["id"]) {
        obs.source_key = Some(format!("{sensor}/{tracker}"));
    }
    obs.device_time = match device_time {
        Some(t) => Some(t),
        None => m["@timestamp"].as_f64().map(epoch).transpose()?.flatten(),
    };
    obs.device_time_raw = raw_time;
    obs.confidence = object["confidence"]
        .as_f64()
        .or_else(|| class.and_then(|c| object[c]["confidence"].as_f64()))
        .and_then(share);
    obs.plate = object["vehicle"]["license"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    obs.zone = m["place"]["id"]
        .as_str()
        .or_else(|| m["place"]["name"].as_str())
        .map(str::to_string);
    obs.rule = m["analyticsModule"]["id"].as_str().map(str::to_string);
    obs.snapshot_url = m["videoPath"]
        .as_str()
        .filter(|p| p.starts_with("http://") || p.starts_with("https://"))
        .map(str::to_string);
    let mut vendor = m.clone();
    // The plate lives in the private field only.
    if let Some(v) = vendor.pointer_mut("/object/vehicle") {
        if let Some(v) = v.as_object_mut() {
            v.remove("license");
        }
    }
    obs.vendor = vendor;
    out.push(obs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn opts() -> ReadOptions<'static> {
        ReadOptions {
            content_type: None,
            device: None,
            local_offset: FixedOffset::east_opt(7 * 3600).unwrap(),
        }
    }

    /// A full-schema message as nvmsgconv writes it for a parked vehicle.
    pub(crate) const FULL: &str = r#"{
      "messageid": "84a3a0ad-7eb8-49a2-9aa7-104ded6764d0", "mdsversion": "1.0",
      "@timestamp": "2026-12-03T03:00:01.250Z",
      "place": {"id": "zone-3", "name": "Le Loi / Hai Ba Trung", "type": "intersection",
                "location": {"lat": 10.7769, "lon": 106.7009, "alt": 0.0}},
      "sensor": {"id": "ds-cam-17", "type": "Camera", "description": "north approach",
                 "location": {"lat": 10.7769, "lon": 106.7009, "alt": 0.0},
                 "coordinate": {"x": 0.0, "y": 0.0, "z": 0.0}},
      "analyticsModule": {"id": "parking-rules", "description": "Vehicle dwell", "source": "nvdsanalytics", "version": "1.0"},
      "object": {"id": "1042", "speed": 0.0, "direction": 0.0, "orientation": 0.0, "confidence": 0.81,
                 "vehicle": {"type": "sedan", "make": "", "model": "", "color": "white", "licenseState": "",
                             "license": "51F-123.45", "confidence": 0.77},
                 "bbox": {"topleftx": 120, "toplefty": 80, "bottomrightx": 360, "bottomrighty": 240},
                 "location": {"lat": 0.0, "lon": 0.0, "alt": 0.0}, "coordinate": {"x": 0.0, "y": 0.0, "z": 0.0}},
      "event": {"id": "b7f4a7a0-1d3e-4a57-9b1d-0b3f1f1fbb21", "type": "parked"},
      "videoPath": ""
    }"#;

    #[test]
    fn a_full_message_keys_on_sensor_and_tracker() {
        let obs = read(FULL.as_bytes(), &opts()).unwrap();
        assert_eq!(obs.len(), 1);
        let o = &obs[0];
        assert_eq!(o.device, "ds-cam-17");
        assert_eq!(o.vendor_types, ["parked:vehicle", "parked"]);
        assert_eq!(o.source_key.as_deref(), Some("ds-cam-17/1042"));
        assert_eq!(o.signal, Signal::Update);
        assert_eq!(o.confidence, Some(0.81));
        assert_eq!(o.plate.as_deref(), Some("51F-123.45"));
        assert_eq!(o.zone.as_deref(), Some("zone-3"));
        assert_eq!(
            o.device_time.unwrap().to_rfc3339(),
            "2026-12-03T03:00:01.250+00:00"
        );
        assert!(
            o.vendor["object"]["vehicle"].get("license").is_none(),
            "{}",
            o.vendor
        );
    }

    #[test]
    fn a_1970_first_frame_has_no_device_time() {
        let m = FULL.replace("2026-12-03T03:00:01.250Z", "1970-01-01T00:00:00.000Z");
        let o = &read(m.as_bytes(), &opts()).unwrap()[0];
        assert_eq!(o.device_time, None);
        assert_eq!(
            o.device_time_raw.as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn minimal_messages_give_one_observation_per_object() {
        let m = r#"{"version":"4.0","id":"3721","@timestamp":"2026-12-03T03:00:02.000Z","sensorId":"ds-cam-17",
            "objects":["1042|120|80|360|240|Vehicle|#|sedan|||white|0.66","7|10|10|40|90|Person"]}"#;
        let obs = read(m.as_bytes(), &opts()).unwrap();
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[0].vendor_types, ["vehicle"]);
        assert_eq!(obs[0].source_key.as_deref(), Some("ds-cam-17/1042"));
        assert_eq!(obs[0].confidence, Some(0.66));
        assert_eq!(obs[1].vendor_types, ["person"]);
        assert_eq!(obs[1].confidence, None);
    }

    #[test]
    fn several_messages_one_per_line() {
        let body = format!("{}\n{}", FULL.replace('\n', " "), FULL.replace('\n', " "));
        assert_eq!(read(body.as_bytes(), &opts()).unwrap().len(), 2);
    }

    #[test]
    fn broken_messages_say_what_is_wrong() {
        for (body, needle) in [
            ("{", "not a deepstream message"),
            (r#"{"sensor":{"id":"x"}}"#, "event.type"),
            (r#"{"event":{"type":"parked"}}"#, "which device"),
            (r#"{"sensorId":"s","objects":["1|2|3"]}"#, "trackerId|left"),
            ("[]", "no message"),
        ] {
            let e = read(body.as_bytes(), &opts()).unwrap_err();
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
    }
}
