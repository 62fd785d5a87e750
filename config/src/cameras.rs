//! Vendor camera messages into ioc camera events: the device registry (which vendor device and
//! channel is which camera) and the event-type tables of `[camera_formats]`.

use std::collections::HashMap;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Utc};
use ioc_schema::camera::{Format, Observation};
use ioc_schema::validate::{check_id, check_text, check_url, InvalidInput};
use ioc_schema::{CameraEvent, VendorImage, VendorRecord, CAMERA_EVENT_SCHEMA};

use crate::load::Settings;

/// Largest vendor record kept with an event (its fields as JSON), in bytes; beyond it only a
/// note that it was left out.
const MAX_VENDOR_FIELDS_BYTES: usize = 16 * 1024;

/// `(format, device, channel)` → camera id; a row with an empty channel covers every channel.
#[derive(Debug, Clone, Default)]
pub struct DeviceRegistry {
    devices: HashMap<(Format, String, String), String>,
}

impl DeviceRegistry {
    /// Reads `format,device,channel,camera_id` rows; every camera must be in `cameras`.
    pub fn parse(text: &str, known: &dyn Fn(&str) -> bool) -> Result<DeviceRegistry, Vec<String>> {
        let mut devices = HashMap::new();
        let mut errors = Vec::new();
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        for (i, rec) in rdr.records().enumerate() {
            let line = i + 2;
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("line {line}: {e}"));
                    continue;
                }
            };
            let field = |n| rec.get(n).unwrap_or("").to_string();
            let (format, device, channel, camera) = (field(0), field(1), field(2), field(3));
            let Some(format) = Format::parse(&format) else {
                errors.push(format!(
                    "line {line}: format '{format}' is not one of deepstream, frigate, hikvision, dahua, onvif"
                ));
                continue;
            };
            if device.is_empty() || camera.is_empty() {
                errors.push(format!("line {line}: needs a device and a camera_id"));
                continue;
            }
            if !known(&camera) {
                errors.push(format!(
                    "line {line}: camera '{camera}' is not in the camera registry"
                ));
                continue;
            }
            let key = (format, device.clone(), channel.clone());
            if devices.insert(key, camera).is_some() {
                errors.push(format!(
                    "line {line}: {} device '{device}' channel '{channel}' appears twice",
                    format.as_str()
                ));
            }
        }
        if errors.is_empty() {
            Ok(DeviceRegistry { devices })
        } else {
            Err(errors)
        }
    }

    /// The camera a device's channel is: the row for that channel, else the device's row
    /// without a channel.
    pub fn camera(&self, format: Format, device: &str, channel: Option<&str>) -> Option<&str> {
        let exact = channel.and_then(|c| {
            self.devices
                .get(&(format, device.to_string(), c.to_string()))
        });
        exact
            .or_else(|| {
                self.devices
                    .get(&(format, device.to_string(), String::new()))
            })
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Every row: format, device, channel (empty: every channel) and camera.
    pub fn iter(&self) -> impl Iterator<Item = (Format, &str, &str, &str)> {
        self.devices
            .iter()
            .map(|((f, d, c), cam)| (*f, d.as_str(), c.as_str(), cam.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

/// Reads `+07:00`-style offsets.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s == "Z" || s == "UTC" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// What became of one vendor observation.
#[derive(Debug)]
pub enum Converted {
    Event(Box<CameraEvent>),
    /// The deployment maps none of the vendor's names for it to an ioc event type.
    Ignored {
        vendor_event: String,
    },
}

impl Settings {
    /// The offset `[camera_formats] local_utc_offset` names (validated at load).
    pub fn camera_local_offset(&self) -> FixedOffset {
        parse_offset(&self.config.camera_formats.local_utc_offset)
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
    }

    /// An observation as an ioc camera event: its camera from the device registry, its event
    /// type from the format's table, its time the device's (or `now`, ingest's, when the
    /// device gave none usable), and an id derived from the message so a resend is the same
    /// event. The event still has to pass [`Settings::check_camera_event`].
    pub fn convert_observation(
        &self,
        obs: Observation,
        now: DateTime<Utc>,
    ) -> Result<Converted, InvalidInput> {
        let f = obs.format;
        let Some(camera) = self.devices.camera(f, &obs.device, obs.channel.as_deref()) else {
            return Err(InvalidInput::new(
                "unknown_device",
                format!(
                    "{} device '{}'{} is not in the device registry ({}); add a row '{},{},{},<camera id>'.",
                    f.as_str(),
                    obs.device,
                    obs.channel.as_deref().map(|c| format!(" channel '{c}'")).unwrap_or_default(),
                    self.config.camera_formats.devices,
                    f.as_str(),
                    obs.device,
                    obs.channel.as_deref().unwrap_or(""),
                ),
            ));
        };
        let table = self.config.camera_formats.event_types.get(f.as_str());
        let Some(event_type) = obs
            .vendor_types
            .iter()
            .find_map(|t| table.and_then(|m| m.get(t)))
        else {
            return Ok(Converted::Ignored {
                vendor_event: obs.vendor_types.last().cloned().unwrap_or_default(),
            });
        };
        for (field, value) in [
            ("zone", &obs.zone),
            ("rule", &obs.rule),
            ("lane", &obs.lane),
            ("channel", &obs.channel),
        ] {
            if let Some(v) = value {
                check_text(field, v, 128)?;
            }
        }
        if let Some(url) = &obs.snapshot_url {
            check_url("snapshot_url", url)?;
        }
        let source_key = obs.source_key.as_ref().map(|k| {
            if check_id("source_key", k).is_ok() {
                k.clone()
            } else {
                // A vendor key outside the id alphabet still identifies the situation.
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, k.as_bytes()).to_string()
            }
        });
        let mut fields = obs.vendor.clone();
        if let Some(m) = fields.as_object_mut() {
            m.remove("isDataRetransmission");
        }
        let event_id = {
            let identity = serde_json::json!([
                f.as_str(),
                obs.device,
                obs.channel,
                obs.vendor_types,
                obs.signal.as_str(),
                source_key,
                obs.device_time_raw,
                obs.plate,
                fields,
            ]);
            uuid::Uuid::new_v5(
                &uuid::Uuid::from_u128(0x2b9c_51d4_7e0f_4a63_8c15_93d7_a0e6_41bf),
                identity.to_string().as_bytes(),
            )
            .to_string()
        };
        if serde_json::to_vec(&fields).map_or(0, |v| v.len()) > MAX_VENDOR_FIELDS_BYTES {
            fields = serde_json::json!({"left_out": format!("larger than {MAX_VENDOR_FIELDS_BYTES} bytes")});
        }
        let max_image = self.config.camera_formats.max_image_bytes;
        let images = obs
            .images
            .iter()
            .filter(|i| i.bytes.len() <= max_image)
            .take(4)
            .map(|i| VendorImage {
                content_type: i.content_type.clone(),
                base64: base64::engine::general_purpose::STANDARD.encode(&i.bytes),
            })
            .collect();
        Ok(Converted::Event(Box::new(CameraEvent {
            schema: Some(CAMERA_EVENT_SCHEMA.to_string()),
            event_id: Some(event_id),
            camera_id: camera.to_string(),
            event_type: event_type.clone(),
            confidence: obs.confidence.unwrap_or(1.0),
            detected_at: obs.device_time.unwrap_or(now),
            snapshot_url: obs.snapshot_url,
            plate: obs.plate,
            signal: Some(obs.signal),
            source_key,
            zone: obs.zone,
            rule: obs.rule,
            lane: obs.lane,
            channel: obs.channel,
            vendor: Some(VendorRecord {
                format: f,
                device: obs.device,
                event: obs.vendor_types.last().cloned().unwrap_or_default(),
                device_time: obs.device_time_raw,
                ingested_at: now,
                retransmission: obs.retransmission,
                images,
                fields,
            }),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ioc_schema::camera::{read, ReadOptions, Signal};

    #[test]
    fn offsets_read_the_usual_way() {
        assert_eq!(parse_offset("+07:00").unwrap().local_minus_utc(), 7 * 3600);
        assert_eq!(
            parse_offset("-03:30").unwrap().local_minus_utc(),
            -(3 * 3600 + 1800)
        );
        assert_eq!(parse_offset("Z").unwrap().local_minus_utc(), 0);
        assert!(parse_offset("7").is_none());
        assert!(parse_offset("+25:00").is_none());
    }

    #[test]
    fn the_registry_names_bad_rows() {
        let known = |c: &str| c == "CAM-0001";
        let r = DeviceRegistry::parse(
            "format,device,channel,camera_id\nhikvision,h1,1,CAM-0001\nhikvision,h1,,CAM-0001\n",
            &known,
        )
        .unwrap();
        assert_eq!(
            r.camera(Format::Hikvision, "h1", Some("1")),
            Some("CAM-0001")
        );
        assert_eq!(
            r.camera(Format::Hikvision, "h1", Some("2")),
            Some("CAM-0001")
        );
        assert_eq!(r.camera(Format::Dahua, "h1", None), None);
        let errs = DeviceRegistry::parse(
            "format,device,channel,camera_id\naxis,a,,CAM-0001\nonvif,o,,CAM-9\nonvif,,,CAM-0001\n",
            &known,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("axis"));
        assert!(errs[1].contains("CAM-9"));
    }

    #[test]
    fn a_frigate_event_becomes_a_camera_event_of_its_camera() {
        let settings = Settings::defaults();
        let now = Utc::now();
        let t = now.timestamp() as f64 - 5.0;
        let body = format!(
            r#"{{"type":"new","after":{{"id":"{t}-abc","camera":"cam_0002","label":"car","score":0.7,
            "top_score":0.8,"start_time":{t},"current_zones":["no_parking"],"recognized_license_plate":"29A-1"}}}}"#
        );
        let opts = ReadOptions {
            content_type: None,
            device: None,
            local_offset: settings.camera_local_offset(),
        };
        let obs = read(Format::Frigate, body.as_bytes(), &opts).unwrap();
        let Converted::Event(e) = settings.convert_observation(obs[0].clone(), now).unwrap() else {
            panic!("mapped")
        };
        assert_eq!(e.camera_id, "CAM-0002");
        assert_eq!(e.event_type, "illegal_parking");
        assert_eq!(e.signal, Some(Signal::Start));
        assert_eq!(e.plate.as_deref(), Some("29A-1"));
        assert_eq!(e.zone.as_deref(), Some("no_parking"));
        assert_eq!(e.detected_at.timestamp(), t as i64);
        settings.check_camera_event(&e, now).unwrap();
        // The same message again is the same event.
        let Converted::Event(again) = settings.convert_observation(obs[0].clone(), now).unwrap()
        else {
            panic!()
        };
        assert_eq!(again.event_id, e.event_id);
        // An unmapped label is ignored; an unknown camera refused.
        let mut other = obs[0].clone();
        other.vendor_types = vec!["dog".into()];
        assert!(matches!(
            settings.convert_observation(other, now).unwrap(),
            Converted::Ignored { .. }
        ));
        let mut stranger = obs[0].clone();
        stranger.device = "garage".into();
        let err = settings.convert_observation(stranger, now).unwrap_err();
        assert_eq!(err.code, "unknown_device");
        assert!(
            err.message.contains("frigate,garage,,<camera id>"),
            "{}",
            err.message
        );
    }
}
