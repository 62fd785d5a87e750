//! Hikvision ISAPI `EventNotificationAlert`, pushed over HTTP by the camera's alarm server
//! ("HTTP listening") settings: XML alone, or `multipart/form-data` with the XML and JPEG parts.
//!
//! Detections (`VMD`, `linedetection`, `fielddetection`, ...) repeat `eventState=active` with a
//! rising `activePostCount` and often never send `inactive`: they have no stable key, so their
//! situation is camera + type + zone with an inactivity gap. ANPR sends one message per capture
//! (`UUID`, `ANPR/licensePlate`, `ANPR/confidenceLevel` 0–100): a pulse. `dateTime` carries the
//! camera's local offset (one without is read in the configured offset), and
//! `isDataRetransmission` marks a resend. The device is `deviceID` where the model sends it, else
//! the MAC address, else the IP address; the channel is `channelID` (or `dynChannelID`).

use roxmltree::{Document, Node};

use super::multipart::{boundary, parts};
use super::{share, text, time, unreadable, Format, Image, Observation, ReadOptions, Signal};
use crate::validate::InvalidInput;

const F: Format = Format::Hikvision;

/// Reads an alert, plain or multipart.
pub fn read(body: &[u8], opts: &ReadOptions<'_>) -> Result<Vec<Observation>, InvalidInput> {
    if let Some(b) = opts.content_type.and_then(boundary) {
        let parts = parts(body, &b);
        let xml = parts
            .iter()
            .find(|p| {
                p.content_type.as_deref().is_some_and(|t| t.contains("xml"))
                    || p.body.trim_ascii_start().starts_with(b"<")
            })
            .ok_or_else(|| unreadable(F, "no part of the multipart body is the alert's XML"))?;
        let mut obs = read_xml(text(xml.body, F)?, opts)?;
        let images: Vec<Image> = parts
            .iter()
            .filter(|p| {
                p.content_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("image/"))
            })
            .map(|p| Image {
                content_type: p.content_type.clone().unwrap_or_default(),
                bytes: p.body.to_vec(),
            })
            .collect();
        obs.images = images;
        return Ok(vec![obs]);
    }
    Ok(vec![read_xml(text(body, F)?, opts)?])
}

fn child<'a>(n: Node<'a, 'a>, name: &str) -> Option<&'a str> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case(name))
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn descendant<'a>(n: Node<'a, 'a>, name: &str) -> Option<&'a str> {
    n.descendants()
        .find(|c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case(name))
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Every leaf element as `path: text`, the plate left out.
pub(crate) fn flat(root: Node<'_, '_>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for n in root.descendants().filter(|n| n.is_element()) {
        if n.children().any(|c| c.is_element()) {
            continue;
        }
        let name = n.tag_name().name();
        if name.eq_ignore_ascii_case("licensePlate") || name.eq_ignore_ascii_case("plateNo") {
            continue;
        }
        let path: Vec<&str> = n
            .ancestors()
            .filter(|a| a.is_element() && *a != root)
            .map(|a| a.tag_name().name())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let key = path.join("/");
        let value = n.text().unwrap_or("").trim().to_string();
        // Repeated elements (regions in a list) keep the first; the rest number on.
        let mut k = key.clone();
        let mut i = 1;
        while map.contains_key(&k) {
            i += 1;
            k = format!("{key}#{i}");
        }
        map.insert(k, value.into());
        for a in n.attributes() {
            map.insert(format!("{key}@{}", a.name()), a.value().into());
        }
    }
    serde_json::Value::Object(map)
}

fn read_xml(xml: &str, opts: &ReadOptions<'_>) -> Result<Observation, InvalidInput> {
    let doc = Document::parse(xml).map_err(|e| unreadable(F, e))?;
    let root = doc.root_element();
    if root.tag_name().name() != "EventNotificationAlert" {
        return Err(unreadable(
            F,
            format!(
                "the root element is <{}>, not <EventNotificationAlert>",
                root.tag_name().name()
            ),
        ));
    }
    let event_type =
        child(root, "eventType").ok_or_else(|| unreadable(F, "<eventType> is missing"))?;
    let device = super::device_of(
        F,
        opts,
        child(root, "deviceID")
            .or_else(|| child(root, "macAddress"))
            .or_else(|| child(root, "ipAddress"))
            .map(str::to_string),
    )?;
    let state = child(root, "eventState").unwrap_or("active");
    let anpr = root
        .children()
        .find(|c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case("ANPR"));
    let signal = if anpr.is_some() || event_type.eq_ignore_ascii_case("ANPR") {
        Signal::Pulse
    } else if state.eq_ignore_ascii_case("inactive") {
        Signal::End
    } else {
        Signal::Update
    };
    let mut obs = Observation::new(F, device, event_type.to_string(), signal);
    obs.channel = child(root, "channelID")
        .or_else(|| child(root, "dynChannelID"))
        .map(str::to_string);
    if let Some(raw) = child(root, "dateTime") {
        obs.device_time = time(raw, opts.local_offset)?;
        obs.device_time_raw = Some(raw.to_string());
    }
    obs.retransmission = child(root, "isDataRetransmission") == Some("true");
    obs.zone = descendant(root, "regionID").map(str::to_string);
    obs.lane = descendant(root, "laneNo")
        .or_else(|| descendant(root, "driveChan"))
        .map(str::to_string);
    if let Some(a) = anpr {
        obs.plate = child(a, "licensePlate")
            .or_else(|| child(a, "originalLicensePlate"))
            .filter(|p| !p.eq_ignore_ascii_case("unknown"))
            .map(str::to_string);
        obs.confidence = child(a, "confidenceLevel")
            .and_then(|c| c.parse::<f64>().ok())
            .and_then(share);
        obs.source_key = child(root, "UUID").map(str::to_string);
    }
    obs.vendor = flat(root);
    Ok(obs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn opts(content_type: Option<&str>) -> ReadOptions<'_> {
        ReadOptions {
            content_type,
            device: None,
            local_offset: FixedOffset::east_opt(7 * 3600).unwrap(),
        }
    }

    pub(crate) fn line_crossing(state: &str, count: u32, time: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<ipAddress>10.20.0.31</ipAddress><portNo>80</portNo><protocol>HTTP</protocol>
<macAddress>c0:56:e3:aa:bb:01</macAddress><channelID>1</channelID>
<dateTime>{time}</dateTime><activePostCount>{count}</activePostCount>
<eventType>linedetection</eventType><eventState>{state}</eventState>
<eventDescription>linedetection alarm</eventDescription><channelName>Nga tu Hang Xanh</channelName>
<DetectionRegionList><DetectionRegionEntry><regionID>2</regionID><sensitivityLevel>50</sensitivityLevel>
<RegionCoordinatesList><RegionCoordinates><positionX>10</positionX><positionY>20</positionY></RegionCoordinates></RegionCoordinatesList>
</DetectionRegionEntry></DetectionRegionList>
<isDataRetransmission>false</isDataRetransmission>
</EventNotificationAlert>"#
        )
    }

    pub(crate) const ANPR: &str = r#"<EventNotificationAlert version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">
<ipAddress>10.20.0.32</ipAddress><macAddress>c0:56:e3:aa:bb:02</macAddress><channelID>1</channelID>
<dateTime>2026-12-03T10:15:00+07:00</dateTime><activePostCount>1</activePostCount>
<eventType>ANPR</eventType><eventState>active</eventState><eventDescription>ANPR</eventDescription>
<ANPR><country>VN</country><licensePlate>51G-888.88</licensePlate><line>1</line><direction>forward</direction>
<confidenceLevel>94</confidenceLevel><plateType>unknown</plateType><laneNo>2</laneNo></ANPR>
<UUID>9a3e0f3c-1111-4c9f-9d55-5a0c6c3f7e10</UUID><picNum>2</picNum>
<isDataRetransmission>true</isDataRetransmission>
</EventNotificationAlert>"#;

    #[test]
    fn a_detection_repeats_as_updates_with_the_cameras_offset() {
        let o = &read(
            line_crossing("active", 3, "2026-12-03T10:00:05+07:00").as_bytes(),
            &opts(None),
        )
        .unwrap()[0];
        assert_eq!(o.device, "c0:56:e3:aa:bb:01");
        assert_eq!(o.channel.as_deref(), Some("1"));
        assert_eq!(o.vendor_types, ["linedetection"]);
        assert_eq!(o.signal, Signal::Update);
        assert_eq!(o.zone.as_deref(), Some("2"));
        assert_eq!(o.source_key, None);
        assert_eq!(
            o.device_time.unwrap().to_rfc3339(),
            "2026-12-03T03:00:05+00:00"
        );
        assert_eq!(o.vendor["activePostCount"], "3");
        let end = &read(
            line_crossing("inactive", 4, "2026-12-03T10:01:00").as_bytes(),
            &opts(None),
        )
        .unwrap()[0];
        assert_eq!(end.signal, Signal::End);
        // No offset written: the configured one.
        assert_eq!(
            end.device_time.unwrap().to_rfc3339(),
            "2026-12-03T03:01:00+00:00"
        );
    }

    #[test]
    fn an_anpr_capture_is_a_pulse_with_its_plate_kept_private() {
        let o = &read(ANPR.as_bytes(), &opts(None)).unwrap()[0];
        assert_eq!(o.signal, Signal::Pulse);
        assert_eq!(o.plate.as_deref(), Some("51G-888.88"));
        assert_eq!(o.confidence, Some(0.94));
        assert_eq!(o.lane.as_deref(), Some("2"));
        assert_eq!(
            o.source_key.as_deref(),
            Some("9a3e0f3c-1111-4c9f-9d55-5a0c6c3f7e10")
        );
        assert!(o.retransmission);
        assert!(!o.vendor.to_string().contains("888.88"), "{}", o.vendor);
    }

    #[test]
    fn multipart_alerts_bring_their_images() {
        let xml = line_crossing("active", 1, "2026-12-03T10:00:00+07:00");
        let mut body = Vec::new();
        body.extend_from_slice(b"--MIME_boundary\r\nContent-Disposition: form-data; name=\"linedetection\"\r\nContent-Type: application/xml; charset=\"UTF-8\"\r\n\r\n");
        body.extend_from_slice(xml.as_bytes());
        body.extend_from_slice(b"\r\n--MIME_boundary\r\nContent-Disposition: form-data; name=\"linedetectionImage\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xe0JFIF\xff\xd9\r\n--MIME_boundary--\r\n");
        let o = &read(
            &body,
            &opts(Some("multipart/form-data; boundary=MIME_boundary")),
        )
        .unwrap()[0];
        assert_eq!(o.vendor_types, ["linedetection"]);
        assert_eq!(o.images.len(), 1);
        assert_eq!(o.images[0].content_type, "image/jpeg");
        assert!(o.images[0].bytes.starts_with(b"\xff\xd8"));
    }

    #[test]
    fn other_xml_is_refused() {
        let e = read(b"<Notify/>", &opts(None)).unwrap_err();
        assert!(
            e.message.contains("EventNotificationAlert"),
            "{}",
            e.message
        );
        let e = read(b"<EventNotificationAlert>", &opts(None)).unwrap_err();
        assert_eq!(e.code, "unreadable_payload");
    }
}
