//! Frigate's `frigate/events` messages: `{"type": "new"|"update"|"end", "before": {..},
//! "after": {..}}`, where `after.id` is stable for the whole tracked object, `camera` names the
//! camera, `label` the object class, `score`/`top_score` the confidence, `start_time`,
//! `end_time` and `frame_time` are epoch seconds, `current_zones`/`entered_zones` the zones and
//! `recognized_license_plate` the plate (a string, or `[plate, score]` in some versions).
//!
//! Frigate's `frigate/reviews` messages have the same envelope; their `after` is a review item
//! (what Frigate itself groups into one activity on one camera): `id`, `camera`, `start_time`,
//! `end_time`, `severity` (`alert` or `detection`) and `data` with the tracked objects'
//! `detections` ids, `objects` labels, `zones`, `sub_labels` and `audio`. A review is one
//! situation keyed by its id; its names for the event are `label@zone` and `label` of each
//! object, then `review:<severity>`. It states no confidence, and an `update` no time of its
//! own (the time it arrives stands in).

use serde_json::Value;

use super::{epoch, id_text, share, text, unreadable, Format, Observation, ReadOptions, Signal};
use crate::validate::InvalidInput;

const F: Format = Format::Frigate;

/// Reads one event message.
pub fn read(body: &[u8], opts: &ReadOptions<'_>) -> Result<Vec<Observation>, InvalidInput> {
    let m: Value = serde_json::from_str(text(body, F)?).map_err(|e| unreadable(F, e))?;
    let signal = match m["type"].as_str() {
        Some("new") => Signal::Start,
        Some("update") => Signal::Update,
        Some("end") => Signal::End,
        other => {
            return Err(unreadable(
                F,
                format!("type must be new, update or end, not {other:?}"),
            ))
        }
    };
    let after = &m["after"];
    if !after.is_object() {
        return Err(unreadable(F, "the message has no 'after' object"));
    }
    if after.get("severity").is_some() && after["data"].is_object() {
        return review(&m, signal, opts).map(|o| vec![o]);
    }
    let id = id_text(&after["id"]).ok_or_else(|| unreadable(F, "after.id is missing"))?;
    let label = after["label"]
        .as_str()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| unreadable(F, "after.label is missing"))?;
    let device = super::device_of(F, opts, after["camera"].as_str().map(str::to_string))?;
    let zones: Vec<String> = after["current_zones"]
        .as_array()
        .filter(|z| !z.is_empty())
        .or_else(|| after["entered_zones"].as_array())
        .map(|z| {
            z.iter()
                .filter_map(|z| z.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut obs = Observation::new(F, device, label.to_string(), signal);
    obs.vendor_types = zones
        .iter()
        .map(|z| format!("{label}@{z}"))
        .chain(std::iter::once(label.to_string()))
        .collect();
    obs.zone = zones.first().cloned();
    obs.source_key = Some(id);
    let when = match signal {
        Signal::End => after["end_time"].as_f64(),
        Signal::Start => after["start_time"].as_f64(),
        _ => after["frame_time"].as_f64(),
    }
    .or_else(|| after["start_time"].as_f64());
    obs.device_time = when.map(epoch).transpose()?.flatten();
    obs.device_time_raw = when.map(|t| t.to_string());
    obs.confidence = after["top_score"]
        .as_f64()
        .or_else(|| after["score"].as_f64())
        .and_then(share);
    obs.plate = match &after["recognized_license_plate"] {
        Value::String(p) if !p.is_empty() => Some(p.clone()),
        Value::Array(a) => a.first().and_then(|p| p.as_str()).map(str::to_string),
        _ => None,
    };
    let mut vendor = serde_json::json!({"type": m["type"], "after": after});
    if let Some(a) = vendor["after"].as_object_mut() {
        a.remove("recognized_license_plate");
        a.remove("thumbnail");
    }
    obs.vendor = vendor;
    Ok(vec![obs])
}

/// One review item message (see the module's text).
fn review(m: &Value, signal: Signal, opts: &ReadOptions<'_>) -> Result<Observation, InvalidInput> {
    let after = &m["after"];
    let id = id_text(&after["id"]).ok_or_else(|| unreadable(F, "after.id is missing"))?;
    let severity = after["severity"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unreadable(F, "after.severity must be alert or detection"))?;
    let names = |field: &str| -> Vec<String> {
        after["data"][field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (objects, zones) = (names("objects"), names("zones"));
    let device = super::device_of(F, opts, after["camera"].as_str().map(str::to_string))?;
    let review = format!("review:{severity}");
    let mut obs = Observation::new(F, device, review.clone(), signal);
    obs.vendor_types = objects
        .iter()
        .flat_map(|o| zones.iter().map(move |z| format!("{o}@{z}")))
        .chain(objects.iter().cloned())
        .chain(std::iter::once(review))
        .collect();
    obs.zone = zones.first().cloned();
    obs.source_key = Some(format!("review-{id}"));
    let when = match signal {
        Signal::Start => after["start_time"].as_f64(),
        Signal::End => after["end_time"].as_f64(),
        _ => None,
    };
    obs.device_time = when.map(epoch).transpose()?.flatten();
    obs.device_time_raw = when.map(|t| t.to_string());
    let mut vendor = serde_json::json!({"type": m["type"], "after": after});
    // Sub labels name recognised people and plates: not kept.
    if let Some(d) = vendor["after"]["data"].as_object_mut() {
        d.remove("sub_labels");
    }
    obs.vendor = vendor;
    Ok(obs)
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

    pub(crate) fn message(kind: &str, end: &str) -> String {
        format!(
            r#"{{"type":"{kind}","before":{{"id":"1764730800.25-ab12cd","camera":"cong_truong","label":"car"}},
            "after":{{"id":"1764730800.25-ab12cd","camera":"cong_truong","frame_time":1764730812.5,
            "snapshot_time":1764730810.0,"label":"car","sub_label":null,"top_score":0.84,"false_positive":false,
            "start_time":1764730800.25,"end_time":{end},"score":0.79,"box":[10,20,110,220],"area":20000,
            "ratio":0.5,"region":[0,0,320,320],"current_zones":["no_parking"],"entered_zones":["no_parking"],
            "thumbnail":null,"has_snapshot":true,"has_clip":true,"stationary":true,"motionless_count":40,
            "position_changes":1,"attributes":{{}},"recognized_license_plate":"29A-123.45"}}}}"#
        )
    }

    #[test]
    fn new_update_end_are_start_update_end_of_one_key() {
        let signals: Vec<_> = [("new", "null"), ("update", "null"), ("end", "1764730900.0")]
            .into_iter()
            .map(|(k, e)| read(message(k, e).as_bytes(), &opts()).unwrap().remove(0))
            .collect();
        assert_eq!(
            signals.iter().map(|o| o.signal).collect::<Vec<_>>(),
            [Signal::Start, Signal::Update, Signal::End]
        );
        assert!(signals
            .iter()
            .all(|o| o.source_key.as_deref() == Some("1764730800.25-ab12cd")));
        let first = &signals[0];
        assert_eq!(first.device, "cong_truong");
        assert_eq!(first.vendor_types, ["car@no_parking", "car"]);
        assert_eq!(first.confidence, Some(0.84));
        assert_eq!(first.plate.as_deref(), Some("29A-123.45"));
        assert_eq!(
            first.device_time.unwrap().timestamp_millis(),
            1_764_730_800_250
        );
        assert_eq!(signals[2].device_time.unwrap().timestamp(), 1_764_730_900);
        assert!(first.vendor["after"]
            .get("recognized_license_plate")
            .is_none());
    }

    fn review_message(kind: &str, end: &str) -> String {
        format!(
            r#"{{"type":"{kind}","before":{{}},"after":{{"id":"1764730800.5-rv12ab","camera":"cong_truong",
            "start_time":1764730800.5,"end_time":{end},"severity":"alert",
            "thumb_path":"/media/frigate/clips/review/thumb-cong_truong-1764730800.5-rv12ab.webp",
            "data":{{"detections":["1764730800.25-ab12cd","1764730805.1-ef34gh"],"objects":["person","car"],
            "sub_labels":["Nguyen Van A"],"zones":["san_truoc"],"audio":[]}}}}}}"#
        )
    }

    #[test]
    fn a_review_is_one_situation_named_by_its_objects_and_zones() {
        let read_one = |k: &str, e: &str| {
            read(review_message(k, e).as_bytes(), &opts())
                .unwrap()
                .remove(0)
        };
        let new = read_one("new", "null");
        assert_eq!(new.signal, Signal::Start);
        assert_eq!(
            new.source_key.as_deref(),
            Some("review-1764730800.5-rv12ab")
        );
        assert_eq!(new.device, "cong_truong");
        assert_eq!(
            new.vendor_types,
            [
                "person@san_truoc",
                "car@san_truoc",
                "person",
                "car",
                "review:alert"
            ]
        );
        assert_eq!(new.zone.as_deref(), Some("san_truoc"));
        assert_eq!(new.confidence, None);
        assert_eq!(
            new.device_time.unwrap().timestamp_millis(),
            1_764_730_800_500
        );
        assert!(!new.vendor.to_string().contains("Nguyen Van A"));
        // An update says no time of its own; the end its end_time.
        assert_eq!(read_one("update", "null").device_time, None);
        let end = read_one("end", "1764730860.0");
        assert_eq!(
            (end.signal, end.device_time.unwrap().timestamp()),
            (Signal::End, 1_764_730_860)
        );
        let e = read(
            br#"{"type":"new","after":{"id":"x","camera":"c","severity":"","data":{}}}"#,
            &opts(),
        )
        .unwrap_err();
        assert!(e.message.contains("severity"), "{}", e.message);
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let e = read(br#"{"type":"gone","after":{}}"#, &opts()).unwrap_err();
        assert!(e.message.contains("new, update or end"), "{}", e.message);
        let e = read(
            br#"{"type":"new","after":{"id":"x","camera":"c"}}"#,
            &opts(),
        )
        .unwrap_err();
        assert!(e.message.contains("label"), "{}", e.message);
    }
}
