//! Simulated camera systems speaking their vendors' formats: DeepStream, Frigate, Hikvision,
//! Dahua and ONVIF devices from the device registry post tracks of detections to
//! `POST /v1/camera-events/{format}`, as real ones do: a parked car reported every few seconds
//! for minutes, a wrong-way driver for seconds, a flood for an hour, and now and then a
//! Hikvision ANPR read of a passing car. The router is to make one incident of each track, and
//! of each ANPR read one enforcement record.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use ioc_config::load::Settings;
use ioc_config::supervise::CancellationToken;
use ioc_schema::camera::Format;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// What is going on in front of a camera, and how long it lasts (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scene {
    ParkedCar,
    WrongWay,
    Flood,
    /// One ANPR read of a passing car (Hikvision): a capture, not a track.
    Anpr,
}

/// One track: a device, a scene, when it began and when it ends, how often it is reported.
struct Track {
    format: Format,
    device: String,
    channel: String,
    scene: Scene,
    id: String,
    started: DateTime<Utc>,
    ends: DateTime<Utc>,
    every_s: i64,
    next: DateTime<Utc>,
    sent: u32,
}

/// The vendor's name for a scene, as `[camera_formats.event_types]` maps it by default.
fn vendor_event(format: Format, scene: Scene) -> Option<&'static str> {
    Some(match (format, scene) {
        (Format::Deepstream, Scene::ParkedCar) => "parked",
        (Format::Deepstream, Scene::WrongWay) => "wrong_way",
        (Format::Frigate, Scene::ParkedCar) => "no_parking",
        (Format::Frigate, Scene::WrongWay) => "wrong_way",
        (Format::Hikvision, Scene::ParkedCar) => "illegalParking",
        (Format::Hikvision, Scene::WrongWay) => "retrograde",
        (Format::Hikvision, Scene::Anpr) => "ANPR",
        (Format::Dahua, Scene::ParkedCar) => "TrafficParking",
        (Format::Dahua, Scene::WrongWay) => "TrafficRetrograde",
        (Format::Onvif, Scene::Flood) => "RuleEngine/MyRuleDetector/Flooding",
        (Format::Onvif, Scene::ParkedCar) => "RuleEngine/FieldDetector/ObjectsInside",
        _ => return None,
    })
}

/// A made-up Vietnamese plate.
fn plate(rng: &mut SmallRng) -> String {
    format!(
        "90A-{:03}.{:02}",
        rng.random_range(0..1000),
        rng.random_range(0..100)
    )
}

/// The body of one message of `t` at `now` (`last`: the track's final one).
fn message(
    t: &Track,
    now: DateTime<Utc>,
    last: bool,
    rng: &mut SmallRng,
) -> (String, &'static str) {
    let event = vendor_event(t.format, t.scene).expect("scene of the format");
    let local = now.with_timezone(&FixedOffset::east_opt(7 * 3600).expect("offset"));
    let confidence = (rng.random_range(0.55..0.98f64) * 100.0).round() / 100.0;
    match t.format {
        Format::Deepstream => (
            json!({
                "messageid": uuid::Uuid::new_v4().to_string(), "mdsversion": "1.0",
                "@timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "sensor": {"id": t.device, "type": "Camera"},
                "analyticsModule": {"id": "ioc-demo", "description": "dwell and direction"},
                "object": {"id": t.id, "confidence": confidence,
                           "vehicle": {"type": "sedan", "color": "white", "license": format!("51F-{:03}.{:02}", t.sent % 1000, t.sent % 100)},
                           "bbox": {"topleftx": 100, "toplefty": 80, "bottomrightx": 300, "bottomrighty": 220}},
                "event": {"id": uuid::Uuid::new_v4().to_string(), "type": event},
                "videoPath": "",
            })
            .to_string(),
            "application/json",
        ),
        Format::Frigate => {
            let kind = if t.sent == 0 { "new" } else if last { "end" } else { "update" };
            let start = t.started.timestamp_millis() as f64 / 1000.0;
            let frame = now.timestamp_millis() as f64 / 1000.0;
            (
                json!({"type": kind, "before": {"id": t.id, "camera": t.device, "label": "car"},
                       "after": {"id": t.id, "camera": t.device, "label": "car", "score": confidence,
                                 "top_score": confidence, "start_time": start, "frame_time": frame,
                                 "end_time": if last { Some(frame) } else { None },
                                 "current_zones": [event], "entered_zones": [event],
                                 "has_snapshot": true, "has_clip": false, "stationary": true}})
                .to_string(),
                "application/json",
            )
        }
        Format::Hikvision if t.scene == Scene::Anpr => (
            format!(
                "<EventNotificationAlert version=\"2.0\" xmlns=\"http://www.isapi.org/ver20/XMLSchema\">\
                 <macAddress>{}</macAddress><channelID>{}</channelID><dateTime>{}</dateTime>\
                 <activePostCount>1</activePostCount><eventType>{event}</eventType><eventState>active</eventState>\
                 <ANPR><country>VN</country><licensePlate>{}</licensePlate><confidenceLevel>{}</confidenceLevel>\
                 <laneNo>{}</laneNo></ANPR><UUID>{}</UUID></EventNotificationAlert>",
                t.device,
                t.channel,
                local.to_rfc3339(),
                plate(rng),
                (confidence * 100.0).round(),
                rng.random_range(1..4),
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, t.id.as_bytes()),
            ),
            "application/xml",
        ),
        Format::Hikvision => (
            // Hikvision repeats `active` and often never says `inactive`.
            format!(
                "<EventNotificationAlert version=\"2.0\" xmlns=\"http://www.hikvision.com/ver20/XMLSchema\">\
                 <macAddress>{}</macAddress><channelID>{}</channelID><dateTime>{}</dateTime>\
                 <activePostCount>{}</activePostCount><eventType>{event}</eventType><eventState>active</eventState>\
                 <DetectionRegionList><DetectionRegionEntry><regionID>1</regionID></DetectionRegionEntry></DetectionRegionList>\
                 </EventNotificationAlert>",
                t.device, t.channel, local.to_rfc3339(), t.sent + 1
            ),
            "application/xml",
        ),
        Format::Dahua => {
            let action = if t.sent == 0 { "Start" } else if last { "Stop" } else { "Start" };
            // Dahua's UTC field is local time written as an epoch; RealUTC is the true one.
            let real = now.timestamp();
            (
                format!(
                    "Code={event};action={action};index={};data={{\"Name\":\"Lan 1\",\"UTC\":{},\"RealUTC\":{real},\"Object\":{{\"ObjectType\":\"Vehicle\",\"Confidence\":{}}}}}\n",
                    t.channel, real + 7 * 3600, (confidence * 100.0).round()
                ),
                "text/plain",
            )
        }
        Format::Onvif => (
            format!(
                "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsnt=\"http://docs.oasis-open.org/wsn/b-2\" xmlns:tt=\"http://www.onvif.org/ver10/schema\">\
                 <s:Body><wsnt:Notify><wsnt:NotificationMessage><wsnt:Topic>tns1:{event}</wsnt:Topic>\
                 <wsnt:Message><tt:Message UtcTime=\"{}\" PropertyOperation=\"Changed\"><tt:Source>\
                 <tt:SimpleItem Name=\"VideoSourceConfigurationToken\" Value=\"{}\"/><tt:SimpleItem Name=\"Rule\" Value=\"demo\"/></tt:Source>\
                 <tt:Data><tt:SimpleItem Name=\"State\" Value=\"{}\"/></tt:Data></tt:Message></wsnt:Message>\
                 </wsnt:NotificationMessage></wsnt:Notify></s:Body></s:Envelope>",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                t.channel,
                !last
            ),
            "application/xml",
        ),
    }
}

/// Starts `tracks_per_minute` tracks a minute on random devices of the registry and posts
/// their detections until `stop`.
pub(super) async fn simulate(
    settings: Arc<Settings>,
    base: String,
    camera_key: String,
    tracks_per_minute: f64,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let devices: Vec<(Format, String, String)> = settings
        .devices
        .iter()
        .map(|(f, d, c, _)| (f, d.to_string(), c.to_string()))
        .collect();
    if devices.is_empty() || tracks_per_minute <= 0.0 {
        return Ok(());
    }
    let client = super::http_client();
    let mut rng = SmallRng::seed_from_u64(0xca3e7a);
    let mut tracks: Vec<Track> = Vec::new();
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    let mut started = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        let now = Utc::now();
        if tracks.len() < 300 && rng.random_bool((tracks_per_minute / 60.0).min(1.0)) {
            let (format, device, channel) = devices[rng.random_range(0..devices.len())].clone();
            let scene = match (format, rng.random_range(0..10)) {
                (Format::Onvif, 0..=2) => Scene::Flood,
                (Format::Onvif, _) => Scene::ParkedCar,
                (Format::Hikvision, 7..=8) => Scene::Anpr,
                (_, 0..=6) => Scene::ParkedCar,
                _ => Scene::WrongWay,
            };
            let lasts = match scene {
                Scene::ParkedCar => rng.random_range(90..900),
                Scene::WrongWay => rng.random_range(4..20),
                Scene::Flood => 3600,
                Scene::Anpr => 0,
            };
            started += 1;
            tracks.push(Track {
                format,
                device,
                channel,
                scene,
                id: format!("{}-{started}", now.timestamp()),
                started: now,
                ends: now + chrono::Duration::seconds(lasts),
                every_s: if scene == Scene::WrongWay {
                    1
                } else {
                    rng.random_range(3..8)
                },
                next: now,
                sent: 0,
            });
        }
        for t in tracks.iter_mut().filter(|t| t.next <= now) {
            let last = now >= t.ends;
            let (body, content_type) = message(t, now, last, &mut rng);
            t.sent += 1;
            t.next = now + chrono::Duration::seconds(t.every_s);
            let query = match t.format {
                Format::Dahua | Format::Onvif => format!("?device={}", t.device),
                _ => String::new(),
            };
            let request = client
                .post(format!(
                    "{base}/v1/camera-events/{}{query}",
                    t.format.as_str()
                ))
                .bearer_auth(&camera_key)
                .header("content-type", content_type)
                .body(body);
            tokio::spawn(async move {
                match request.send().await {
                    Ok(r) if !r.status().is_success() => {
                        tracing::debug!(
                            "simulated camera refused: {}",
                            r.text().await.unwrap_or_default()
                        );
                    }
                    Err(e) => tracing::debug!("simulated camera request failed: {e}"),
                    _ => {}
                }
            });
        }
        tracks.retain(|t| now < t.ends);
    }
}
