//! ONVIF event notifications (`wsnt:Notify`, as a device pushes them to a subscriber, or as a
//! PullMessages answer carries them): each `wsnt:NotificationMessage` has a `Topic` (e.g.
//! `tns1:RuleEngine/CellMotionDetector/Motion`), a `ProducerReference`, and a `tt:Message` with
//! `UtcTime`, `PropertyOperation` (`Initialized`, `Changed`, `Deleted`), `Source` items (the
//! video source token and the rule) and `Data` items holding the rule's true/false state. A
//! state that turns true starts a situation and one that turns false (or is deleted) ends it; an
//! initial false state says nothing happens and is left out.

use roxmltree::{Document, Node};

use super::{text, time, unreadable, Format, Observation, ReadOptions, Signal};
use crate::validate::InvalidInput;

const F: Format = Format::Onvif;

fn named<'a>(n: Node<'a, 'a>, name: &str) -> impl Iterator<Item = Node<'a, 'a>> + 'a {
    let name = name.to_string();
    n.descendants()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn items<'a>(n: Option<Node<'a, 'a>>) -> Vec<(&'a str, &'a str)> {
    n.map(|n| {
        n.children()
            .filter(|c| c.is_element() && c.tag_name().name() == "SimpleItem")
            .filter_map(|c| Some((c.attribute("Name")?, c.attribute("Value")?)))
            .collect()
    })
    .unwrap_or_default()
}

/// Reads every notification message of the body.
pub fn read(body: &[u8], opts: &ReadOptions<'_>) -> Result<Vec<Observation>, InvalidInput> {
    let doc = Document::parse(text(body, F)?).map_err(|e| unreadable(F, e))?;
    let root = doc.root_element();
    let messages: Vec<Node> = named(root, "NotificationMessage").collect();
    if messages.is_empty() {
        return Err(unreadable(F, "no wsnt:NotificationMessage in the body"));
    }
    let mut out = Vec::new();
    for nm in messages {
        let topic = named(nm, "Topic")
            .next()
            .and_then(|t| t.text())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unreadable(F, "a NotificationMessage has no Topic"))?;
        // `tns1:RuleEngine/...` → `RuleEngine/...`: prefixes differ between devices.
        let topic_name = topic
            .split('/')
            .map(|p| p.rsplit(':').next().unwrap_or(p))
            .collect::<Vec<_>>()
            .join("/");
        let producer = named(nm, "Address")
            .next()
            .and_then(|a| a.text())
            .map(host_of);
        let device = super::device_of(F, opts, producer)?;
        let msg = named(nm, "Message")
            .find(|m| {
                m.attribute("UtcTime").is_some() || m.attribute("PropertyOperation").is_some()
            })
            .ok_or_else(|| unreadable(F, "a NotificationMessage has no tt:Message"))?;
        let source = items(
            msg.children()
                .find(|c| c.is_element() && c.tag_name().name() == "Source"),
        );
        let data = items(
            msg.children()
                .find(|c| c.is_element() && c.tag_name().name() == "Data"),
        );
        let state = data.iter().find_map(|(_, v)| match *v {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        });
        let operation = msg.attribute("PropertyOperation").unwrap_or("Changed");
        let signal = match (operation, state) {
            ("Deleted", _) | (_, Some(false)) => Signal::End,
            (_, Some(true)) => Signal::Start,
            (_, None) => Signal::Pulse,
        };
        if operation == "Initialized" && state == Some(false) {
            continue;
        }
        let mut obs = Observation::new(F, device, topic_name, signal);
        obs.channel = source
            .iter()
            .find(|(k, _)| {
                matches!(
                    *k,
                    "VideoSourceConfigurationToken" | "VideoSourceToken" | "Source" | "InputToken"
                )
            })
            .map(|(_, v)| v.to_string());
        obs.rule = source
            .iter()
            .find(|(k, _)| *k == "Rule")
            .map(|(_, v)| v.to_string());
        obs.zone = obs.rule.clone();
        if let Some(t) = msg.attribute("UtcTime") {
            obs.device_time = time(t, chrono::FixedOffset::east_opt(0).expect("UTC"))?;
            obs.device_time_raw = Some(t.to_string());
        }
        let mut vendor = serde_json::Map::new();
        vendor.insert("Topic".into(), topic.into());
        vendor.insert("PropertyOperation".into(), operation.into());
        for (k, v) in source.iter().chain(data.iter()) {
            vendor.insert((*k).into(), (*v).into());
        }
        obs.vendor = serde_json::Value::Object(vendor);
        out.push(obs);
    }
    Ok(out)
}

/// `http://10.0.0.5/onvif/events` → `10.0.0.5`.
fn host_of(address: &str) -> String {
    let rest = address.trim().split("://").nth(1).unwrap_or(address.trim());
    let host = rest.split('/').next().unwrap_or(rest);
    host.rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host)
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::FixedOffset;

    pub(crate) fn notify(operation: &str, value: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://www.w3.org/2005/08/addressing"
 xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tns1="http://www.onvif.org/ver10/topics">
<SOAP-ENV:Body><wsnt:Notify><wsnt:NotificationMessage>
<wsnt:SubscriptionReference><wsa:Address>http://10.30.0.9:8080/onvif/Subscription?Idx=3</wsa:Address></wsnt:SubscriptionReference>
<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/FieldDetector/ObjectsInside</wsnt:Topic>
<wsnt:ProducerReference><wsa:Address>http://10.30.0.9:8080/onvif/device_service</wsa:Address></wsnt:ProducerReference>
<wsnt:Message><tt:Message UtcTime="2026-12-03T03:10:00Z" PropertyOperation="{operation}">
<tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSource_1"/>
<tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalytics_1"/>
<tt:SimpleItem Name="Rule" Value="LanDuong"/></tt:Source>
<tt:Data><tt:SimpleItem Name="IsInside" Value="{value}"/></tt:Data>
</tt:Message></wsnt:Message></wsnt:NotificationMessage></wsnt:Notify></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
        )
    }

    fn opts() -> ReadOptions<'static> {
        ReadOptions {
            content_type: None,
            device: None,
            local_offset: FixedOffset::east_opt(7 * 3600).unwrap(),
        }
    }

    #[test]
    fn a_rule_state_turning_true_and_false_starts_and_ends() {
        let on = &read(notify("Changed", "true").as_bytes(), &opts()).unwrap()[0];
        assert_eq!(on.signal, Signal::Start);
        assert_eq!(on.device, "10.30.0.9");
        assert_eq!(on.channel.as_deref(), Some("VideoSource_1"));
        assert_eq!(on.rule.as_deref(), Some("LanDuong"));
        assert_eq!(on.vendor_types, ["RuleEngine/FieldDetector/ObjectsInside"]);
        assert_eq!(
            on.device_time.unwrap().to_rfc3339(),
            "2026-12-03T03:10:00+00:00"
        );
        let off = &read(notify("Changed", "false").as_bytes(), &opts()).unwrap()[0];
        assert_eq!(off.signal, Signal::End);
        assert!(read(notify("Initialized", "false").as_bytes(), &opts())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn not_a_notification() {
        let e = read(b"<Envelope/>", &opts()).unwrap_err();
        assert!(e.message.contains("NotificationMessage"), "{}", e.message);
    }
}
