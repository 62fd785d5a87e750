//! Frigate's `frigate/events` messages: `{"type": "new"|"update"|"end", "before": {..},
//! "after": {..}}`, where `after.id` is stable for the whole tracked object, `camera` names the
//! camera, `label` the object class, `score`/`top_score` the confidence, `start_time`,
//! `end_time` and `frame_time` are epoch seconds, `current_zones`/`entered_zones` the zones and
//! `recognized_license_plate` the plate (a string, or `[plate, score]` in some versions).

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
