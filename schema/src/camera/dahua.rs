//! Dahua's event stream (`eventManager.cgi?action=attach`, or the same lines pushed over
//! HTTP): one event per part or line, `Code=<event>;action=Start|Stop|Pulse;index=<channel>`
//! and, for intelligent events, `;data={json}`. The stream does not name the device, so the
//! request does (`?device=`). In `data`, `UTC` is the camera's local time written as if it were
//! an epoch and `RealUTC` the true epoch (seven hours apart in Vietnam); traffic captures are
//! `Pulse` with `TrafficCar.PlateNumber`, `Lane` and an `EventID`. Heartbeat lines are skipped.

use serde_json::Value;

use super::multipart::{boundary, parts};
use super::{epoch, id_text, share, text, unreadable, Format, Observation, ReadOptions, Signal};
use crate::validate::InvalidInput;

const F: Format = Format::Dahua;

/// Reads every event in the body.
pub fn read(body: &[u8], opts: &ReadOptions<'_>) -> Result<Vec<Observation>, InvalidInput> {
    let mut events: Vec<String> = Vec::new();
    if let Some(b) = opts.content_type.and_then(boundary) {
        for p in parts(body, &b) {
            events.extend(split_events(text(p.body, F)?));
        }
    } else {
        events.extend(split_events(text(body, F)?));
    }
    if events.is_empty() {
        return Err(unreadable(F, "no 'Code=...;action=...' event in the body"));
    }
    let device = super::device_of(F, opts, None)?;
    events
        .iter()
        .map(|e| read_event(e, &device, opts))
        .collect()
}

/// Events start with `Code=`; a `data` object may run over several lines.
fn split_events(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim_end_matches('\r');
        if t.starts_with("Code=") {
            out.push(t.to_string());
        } else if let Some(last) = out.last_mut() {
            if last.contains(";data=") {
                last.push('\n');
                last.push_str(t);
            }
        }
    }
    out
}

fn read_event(e: &str, device: &str, opts: &ReadOptions<'_>) -> Result<Observation, InvalidInput> {
    let (head, data) = match e.split_once(";data=") {
        Some((h, d)) => (h, Some(d)),
        None => (e, None),
    };
    let mut code = None;
    let mut action = None;
    let mut index = None;
    for pair in head.split(';') {
        match pair.split_once('=') {
            Some(("Code", v)) => code = Some(v.trim()),
            Some(("action", v)) => action = Some(v.trim()),
            Some(("index", v)) => index = Some(v.trim()),
            _ => {}
        }
    }
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| unreadable(F, format!("event '{head}' has no Code")))?;
    let signal = match action {
        Some("Start") => Signal::Start,
        Some("Stop") => Signal::End,
        Some("Pulse") => Signal::Pulse,
        other => {
            return Err(unreadable(
                F,
                format!("action must be Start, Stop or Pulse, not {other:?}"),
            ))
        }
    };
    let data: Value = match data {
        // The object ends the event; lines after it (a heartbeat) are not part of it.
        Some(d) => serde_json::Deserializer::from_str(d.trim())
            .into_iter::<Value>()
            .next()
            .unwrap_or_else(|| serde_json::from_str(""))
            .map_err(|err| unreadable(F, format!("the data of {code} is not JSON: {err}")))?,
        None => Value::Null,
    };
    let mut obs = Observation::new(F, device.to_string(), code.to_string(), signal);
    obs.channel = index.map(str::to_string);
    let real = data["RealUTC"].as_f64().map(epoch).transpose()?.flatten();
    let local = data["UTC"]
        .as_f64()
        .map(|t| epoch(t - f64::from(opts.local_offset.local_minus_utc())))
        .transpose()?
        .flatten();
    obs.device_time = real.or(local);
    obs.device_time_raw = data["RealUTC"]
        .as_f64()
        .or_else(|| data["UTC"].as_f64())
        .map(|t| t.to_string());
    obs.rule = data["Name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    obs.zone = obs.rule.clone();
    obs.lane = id_text(&data["Lane"]);
    obs.plate = data["TrafficCar"]["PlateNumber"]
        .as_str()
        .or_else(|| {
            (data["Object"]["ObjectType"].as_str() == Some("Plate"))
                .then(|| data["Object"]["Text"].as_str())
                .flatten()
        })
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    obs.confidence = data["Object"]["Confidence"].as_f64().and_then(share);
    if signal == Signal::Pulse {
        obs.source_key =
            id_text(&data["EventID"]).map(|id| format!("{device}/{}/{id}", index.unwrap_or("0")));
    }
    let mut vendor =
        serde_json::json!({"Code": code, "action": action, "index": index, "data": data});
    if let Some(car) = vendor
        .pointer_mut("/data/TrafficCar")
        .and_then(Value::as_object_mut)
    {
        car.remove("PlateNumber");
    }
    if let Some(o) = vendor
        .pointer_mut("/data/Object")
        .and_then(Value::as_object_mut)
    {
        if o.get("ObjectType").and_then(Value::as_str) == Some("Plate") {
            o.remove("Text");
        }
    }
    obs.vendor = vendor;
    Ok(obs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn opts<'a>(device: Option<&'a str>, content_type: Option<&'static str>) -> ReadOptions<'a> {
        ReadOptions {
            content_type,
            device,
            local_offset: FixedOffset::east_opt(7 * 3600).unwrap(),
        }
    }

    #[test]
    fn start_and_stop_with_true_time_from_real_utc() {
        let body = "Code=CrossRegionDetection;action=Start;index=0;data={\n \"Name\" : \"Vung cam do\",\n \"UTC\" : 1764756000,\n \"RealUTC\" : 1764730800,\n \"Object\" : {\"ObjectType\": \"Vehicle\", \"Confidence\": 88}\n}\nHeartbeat\nCode=CrossRegionDetection;action=Stop;index=0;data={\"Name\":\"Vung cam do\",\"UTC\":1764756060}\n";
        let obs = read(body.as_bytes(), &opts(Some("dh-07"), None)).unwrap();
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[0].signal, Signal::Start);
        assert_eq!(obs[0].device, "dh-07");
        assert_eq!(obs[0].channel.as_deref(), Some("0"));
        assert_eq!(obs[0].zone.as_deref(), Some("Vung cam do"));
        assert_eq!(obs[0].confidence, Some(0.88));
        assert_eq!(obs[0].device_time.unwrap().timestamp(), 1_764_730_800);
        // Without RealUTC, UTC is local time: seven hours are taken off.
        assert_eq!(obs[1].signal, Signal::End);
        assert_eq!(
            obs[1].device_time.unwrap().timestamp(),
            1_764_756_060 - 7 * 3600
        );
    }

    #[test]
    fn a_traffic_capture_is_a_pulse_with_a_private_plate() {
        let body = r#"Code=TrafficJunction;action=Pulse;index=1;data={"EventID":516,"Lane":2,"RealUTC":1764730800,"TrafficCar":{"PlateNumber":"30K-555.55","PlateColor":"Yellow"},"Object":{"ObjectType":"Plate","Text":"30K-555.55","Confidence":91}}"#;
        let body = format!("--myboundary\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}\r\n--myboundary--\r\n", body.len());
        let obs = read(
            body.as_bytes(),
            &opts(
                Some("dh-07"),
                Some("multipart/x-mixed-replace; boundary=myboundary"),
            ),
        )
        .unwrap();
        let o = &obs[0];
        assert_eq!(o.signal, Signal::Pulse);
        assert_eq!(o.plate.as_deref(), Some("30K-555.55"));
        assert_eq!(o.lane.as_deref(), Some("2"));
        assert_eq!(o.source_key.as_deref(), Some("dh-07/1/516"));
        assert!(!o.vendor.to_string().contains("555.55"), "{}", o.vendor);
    }

    #[test]
    fn the_device_must_be_named() {
        let e = read(b"Code=VideoMotion;action=Start;index=0", &opts(None, None)).unwrap_err();
        assert!(e.message.contains("?device="), "{}", e.message);
        let e = read(b"Heartbeat\n", &opts(Some("d"), None)).unwrap_err();
        assert_eq!(e.code, "unreadable_payload");
        let e = read(
            b"Code=VideoMotion;action=Maybe;index=0",
            &opts(Some("d"), None),
        )
        .unwrap_err();
        assert!(e.message.contains("Start, Stop or Pulse"), "{}", e.message);
    }
}
