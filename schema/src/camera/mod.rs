//! Camera analytics in their vendors' own formats, read into one shape ([`Observation`]).
//!
//! Real camera systems do not send one message per incident: DeepStream publishes a message per
//! tracked object every few frames, Frigate sends `new`, a stream of `update`s and an `end`,
//! Hikvision repeats `active` and often never says `inactive`, Dahua and ONVIF report rule states.
//! This module only reads what each vendor wrote, without I/O or configuration: which device and
//! channel sent it, what the vendor calls the event, the lifecycle signal, the vendor's stable key
//! where it has one, the device's time (corrected to UTC where the vendor writes local time), the
//! zone, rule and lane, a confidence in `[0, 1]`, a plate, snapshots, and the vendor's own fields.
//! Which camera a device is and which ioc event type a vendor's event is are the deployment's
//! business (`ioc_config`).
//!
//! Modules, one per vendor: [`deepstream`], [`frigate`], [`hikvision`], [`dahua`], [`onvif`];
//! [`multipart`] splits the multipart bodies Hikvision and Dahua send.

pub mod dahua;
pub mod deepstream;
pub mod frigate;
pub mod hikvision;
pub mod multipart;
pub mod onvif;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::InvalidInput;

/// The camera formats `ioc` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// NVIDIA DeepStream `nvmsgconv` JSON, full or minimal schema.
    Deepstream,
    /// Frigate's `frigate/events` MQTT messages.
    Frigate,
    /// Hikvision ISAPI `EventNotificationAlert`, XML or multipart with images.
    Hikvision,
    /// Dahua's event stream lines (`Code=...;action=...;index=...;data={...}`).
    Dahua,
    /// ONVIF `wsnt:Notify` notifications.
    Onvif,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Deepstream,
        Format::Frigate,
        Format::Hikvision,
        Format::Dahua,
        Format::Onvif,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Deepstream => "deepstream",
            Format::Frigate => "frigate",
            Format::Hikvision => "hikvision",
            Format::Dahua => "dahua",
            Format::Onvif => "onvif",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// Where a detection stands in its situation, as the source says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The source says a situation begins (Frigate `new`, Dahua `Start`, ONVIF state true).
    Start,
    /// Another detection of a situation that may or may not have begun yet (DeepStream's
    /// per-frame messages, Hikvision's repeated `active`, Frigate `update`).
    Update,
    /// The source says the situation is over (Frigate `end`, Dahua `Stop`, ONVIF false).
    End,
    /// A capture complete in itself: an ANPR read, a traffic violation snapshot.
    Pulse,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Start => "start",
            Signal::Update => "update",
            Signal::End => "end",
            Signal::Pulse => "pulse",
        }
    }
}

/// An image that came with the message (Hikvision's and Dahua's multipart JPEG parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One detection as a vendor reported it, before the deployment says which camera and which
/// event type it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub format: Format,
    /// The vendor's identity of the sending device: DeepStream `sensor.id`, Frigate's camera
    /// name, Hikvision's device id (or MAC, or IP address), Dahua's and ONVIF's from the
    /// request (`?device=`) or the notification's producer.
    pub device: String,
    /// Hikvision `channelID`, Dahua channel `index`, ONVIF video source token.
    pub channel: Option<String>,
    /// The vendor's names for the event, most specific first (e.g. Frigate `car@no_parking`,
    /// then `car`); the first one the deployment maps decides the ioc event type.
    pub vendor_types: Vec<String>,
    pub signal: Signal,
    /// The source's own stable key for the situation, where it has one (DeepStream sensor and
    /// tracker id, Frigate's event id, Hikvision's ANPR `UUID`).
    pub source_key: Option<String>,
    /// The device's time of the detection in UTC, when it gave a usable one.
    pub device_time: Option<DateTime<Utc>>,
    /// The device's time as written, kept for the record.
    pub device_time_raw: Option<String>,
    pub zone: Option<String>,
    pub rule: Option<String>,
    pub lane: Option<String>,
    /// In `[0, 1]`; `None` when the vendor states none (a rule's state change).
    pub confidence: Option<f64>,
    /// Licence plate (private).
    pub plate: Option<String>,
    pub snapshot_url: Option<String>,
    pub images: Vec<Image>,
    /// The vendor marks this as a resend of an earlier message.
    pub retransmission: bool,
    /// The vendor's own fields, for the record (JSON as sent; XML and text as flat maps).
    pub vendor: serde_json::Value,
}

impl Observation {
    pub(crate) fn new(format: Format, device: String, vendor_type: String, signal: Signal) -> Self {
        Observation {
            format,
            device,
            channel: None,
            vendor_types: vec![vendor_type],
            signal,
            source_key: None,
            device_time: None,
            device_time_raw: None,
            zone: None,
            rule: None,
            lane: None,
            confidence: None,
            plate: None,
            snapshot_url: None,
            images: Vec::new(),
            retransmission: false,
            vendor: serde_json::Value::Null,
        }
    }
}

/// What reading a body needs besides the body itself.
#[derive(Debug, Clone)]
pub struct ReadOptions<'a> {
    /// The body's `Content-Type`, for multipart bodies.
    pub content_type: Option<&'a str>,
    /// The device named by the request (`?device=`), for formats whose messages do not name
    /// their device (Dahua) or to override what they say.
    pub device: Option<&'a str>,
    /// The offset of clocks that write local time without saying so: Hikvision times without
    /// an offset, Dahua's `UTC` field (which is local time written as an epoch).
    pub local_offset: FixedOffset,
}

/// Reads a body in `format` into its observations.
pub fn read(
    format: Format,
    body: &[u8],
    opts: &ReadOptions<'_>,
) -> Result<Vec<Observation>, InvalidInput> {
    let obs = match format {
        Format::Deepstream => deepstream::read(body, opts)?,
        Format::Frigate => frigate::read(body, opts)?,
        Format::Hikvision => hikvision::read(body, opts)?,
        Format::Dahua => dahua::read(body, opts)?,
        Format::Onvif => onvif::read(body, opts)?,
    };
    Ok(obs)
}

pub(crate) fn unreadable(format: Format, why: impl std::fmt::Display) -> InvalidInput {
    InvalidInput::new(
        "unreadable_payload",
        format!(
            "This is not a {} message: {why}. Check that the device posts to the endpoint of its own format.",
            format.as_str()
        ),
    )
}

pub(crate) fn text(body: &[u8], format: Format) -> Result<&str, InvalidInput> {
    std::str::from_utf8(body).map_err(|e| unreadable(format, format!("not UTF-8 text ({e})")))
}

/// The device named by the request, else the one the message names.
pub(crate) fn device_of(
    format: Format,
    opts: &ReadOptions<'_>,
    from_message: Option<String>,
) -> Result<String, InvalidInput> {
    opts.device
        .map(str::to_string)
        .or(from_message)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            InvalidInput::new(
                "missing_field",
                format!(
                    "A {} message does not say which device sent it; add ?device=<its id in the device registry> to the notification URL.",
                    format.as_str()
                ),
            )
        })
}

/// The first year of epoch seconds: a device whose clock is not set yet (DeepStream's first
/// frame) writes a time in it.
const UNSET_CLOCK_BEFORE: i64 = 31_536_000;

fn impossible(raw: impl std::fmt::Display) -> InvalidInput {
    InvalidInput::new(
        "invalid_time",
        format!("The device's time '{raw}' is not a time it can have; check the device clock."),
    )
}

/// Epoch seconds (with a fraction) as a UTC time; `None` for a time in 1970, which devices send
/// before their clock is set; an error for what no clock can say (negative, beyond the
/// calendar, not a number).
pub(crate) fn epoch(seconds: f64) -> Result<Option<DateTime<Utc>>, InvalidInput> {
    if (0.0..UNSET_CLOCK_BEFORE as f64).contains(&seconds) {
        return Ok(None);
    }
    let millis = (seconds * 1000.0).round();
    if !(0.0..=i64::MAX as f64).contains(&millis) {
        return Err(impossible(seconds));
    }
    DateTime::from_timestamp_millis(millis as i64)
        .map(Some)
        .ok_or_else(|| impossible(seconds))
}

/// An RFC 3339 time; one without an offset is read in `local`. A time in 1970 is an unset
/// clock (`None`); what does not read as a time, or lies before 1970, is an error.
pub(crate) fn time(raw: &str, local: FixedOffset) -> Result<Option<DateTime<Utc>>, InvalidInput> {
    let raw = raw.trim();
    let t = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            let naive = chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f"))
                .ok()?;
            local
                .from_local_datetime(&naive)
                .single()
                .map(|t| t.with_timezone(&Utc))
        })
        .ok_or_else(|| impossible(raw))?;
    match t.timestamp() {
        ..0 => Err(impossible(raw)),
        0..UNSET_CLOCK_BEFORE => Ok(None),
        _ => Ok(Some(t)),
    }
}

/// A confidence as a share: vendors write `0.87` or `87` (percent).
pub(crate) fn share(v: f64) -> Option<f64> {
    if !v.is_finite() || v < 0.0 {
        None
    } else if v <= 1.0 {
        Some(v)
    } else if v <= 100.0 {
        Some(v / 100.0)
    } else {
        None
    }
}

/// A JSON value's text, for ids that vendors write as numbers or strings.
pub(crate) fn id_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_clocks_are_no_time() {
        assert_eq!(epoch(0.0).unwrap(), None);
        assert_eq!(
            time(
                "1970-01-01T00:00:00.000Z",
                FixedOffset::east_opt(0).unwrap()
            )
            .unwrap(),
            None
        );
        let t = time(
            "2026-12-03T10:00:00",
            FixedOffset::east_opt(7 * 3600).unwrap(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-03T03:00:00+00:00");
    }

    /// What no clock can say is refused, not replaced by ingest's time.
    #[test]
    fn impossible_device_times_are_refused() {
        let utc = FixedOffset::east_opt(0).unwrap();
        for raw in [
            "0000-01-01T00:00:00+07:00",
            "1969-12-31T23:59:59Z",
            "yesterday",
        ] {
            assert_eq!(time(raw, utc).unwrap_err().code, "invalid_time", "{raw}");
        }
        for s in [-62_167_219_200.0, 1e300, f64::NAN, f64::INFINITY] {
            assert_eq!(epoch(s).unwrap_err().code, "invalid_time", "{s}");
        }
    }

    #[test]
    fn confidences_become_shares() {
        assert_eq!(share(0.5), Some(0.5));
        assert_eq!(share(87.0), Some(0.87));
        assert_eq!(share(300.0), None);
        assert_eq!(share(f64::NAN), None);
    }
}
