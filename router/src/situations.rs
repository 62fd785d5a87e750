//! Camera detections into situations: one incident per situation, not per message.
//!
//! Detections of one situation share a key: the camera, the event type and the source's own
//! stable key (a tracker id, a vendor's event id) where it has one, else the zone. A detection
//! continues the key's open situation when it comes within the event type's `gap` of the
//! latest one (by detection time, and by record time, so a replay decides the same); a source's
//! `end` closes it; anything later opens a new one. The incident is written once, when the
//! situation has lasted `min_duration`; its id derives from the key and the first detection's
//! time. Detections below `min_confidence` are left out; `pulse` events (and ioc's own JSON
//! without a `signal`) are complete in themselves and stay one incident each.
//!
//! The state after an applied detection goes to the situations topic (key: the situation key,
//! partition: the camera partition), after that detection's incident is acknowledged and after
//! the key's earlier records are; the pipeline may write one state for several detections of a
//! key, the latest, which includes the others. So the situations topic's record of a key says how far
//! that key got: a router that takes the partition over (after a crash or a rebalance) reads it
//! back, skips detections at or before that offset, and applies the rest to the same state,
//! writing the same incidents again.
//!
//! This module is pure: the pipeline brings the records and writes what it decides.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ioc_config::model::Grouping;
use ioc_schema::camera::Signal;
use ioc_schema::{CameraEvent, Situation, SITUATION_SCHEMA};

/// How many of a situation's latest detection ids are kept to recognise a resend.
const RECENT_EVENTS: usize = 8;

/// How long after its gap a quiet situation is kept in memory (by record time): a detection
/// later than that can never continue it, so it can go.
const KEEP_AFTER_GAP: Duration = Duration::hours(1);

/// What one detection does.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not a situation's detection: one incident of its own, as before.
    Pulse,
    /// Left out, with the reason (below the confidence floor, an end without a situation).
    Dropped(&'static str),
    /// Already applied before a crash or a rebalance: its outputs are on Kafka.
    AlreadyApplied,
    /// Applied: write the incident first when `write_incident`, then the situation record.
    /// `plate_arrived`: this detection read the first plate of a situation whose incident was
    /// written without one (an enforcement record is written again, with it).
    Grouped {
        situation: Box<Situation>,
        write_incident: bool,
        plate_arrived: bool,
    },
}

impl Decision {
    /// What was decided, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Pulse => "pulse",
            Decision::Dropped(reason) => reason,
            Decision::AlreadyApplied => "already_applied",
            Decision::Grouped { .. } => "grouped",
        }
    }
}

/// The situations of the camera partitions this router has.
#[derive(Debug, Default)]
pub struct Situations {
    partitions: HashMap<i32, Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    by_key: HashMap<String, Situation>,
    /// The offset the next record is expected at; another one means the partition moved
    /// (rebalance, restart) and its state must be read back.
    next_offset: Option<i64>,
    latest_received: Option<DateTime<Utc>>,
    applied_since_prune: usize,
}

/// Whether an event belongs to a situation (rather than being complete in itself).
pub fn grouped(e: &CameraEvent) -> bool {
    !matches!(e.signal, None | Some(Signal::Pulse))
}

/// The key detections of one situation share.
pub fn key_of(e: &CameraEvent) -> String {
    match &e.source_key {
        Some(k) => format!("{}|{}|key:{k}", e.camera_id, e.event_type),
        None => format!(
            "{}|{}|zone:{}",
            e.camera_id,
            e.event_type,
            e.zone.as_deref().unwrap_or("")
        ),
    }
}

impl Situations {
    /// Called with every record of the camera topic before anything else: a record that does
    /// not follow the last one of its partition means the partition moved meanwhile (a
    /// rebalance, a restart), and what this router knew of it is forgotten.
    pub fn observe(&mut self, partition: i32, offset: i64) {
        if self
            .partitions
            .get(&partition)
            .is_some_and(|p| p.next_offset != Some(offset))
        {
            self.partitions.remove(&partition);
        }
    }

    /// Whether the state of `partition` is known and continues at `offset`, or `offset` is the
    /// record just applied (a record of several detections, such as a DeepStream message
    /// naming several objects, applies them one after another); when not, the caller reads
    /// the partition's situations back ([`Situations::restore`]) before the partition's next
    /// detection is decided. A record at another offset has been seen by
    /// [`Situations::observe`] first, which forgets a partition that did not continue.
    pub fn in_step(&self, partition: i32, offset: i64) -> bool {
        self.partitions
            .get(&partition)
            .and_then(|p| p.next_offset)
            .is_some_and(|next| next == offset || next == offset + 1)
    }

    /// Whether anything is known of `partition` (it was read back, or detections of it applied).
    pub fn known(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Replaces the state of `partition` with the records read back from the situations
    /// topic (latest per key, in topic order), to continue at `offset`.
    pub fn restore(&mut self, partition: i32, records: Vec<Situation>, offset: i64) {
        let mut p = Partition {
            next_offset: Some(offset),
            ..Partition::default()
        };
        for s in records {
            p.latest_received = p.latest_received.max(Some(s.last_received_at));
            p.by_key.insert(s.key.clone(), s);
        }
        self.partitions.insert(partition, p);
    }

    /// Moves past a record of `partition` that is no detection (a dead letter).
    pub fn skip(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.next_offset = Some(offset + 1);
        }
    }

    /// Open situations held in memory, over all partitions.
    pub fn len(&self) -> usize {
        self.partitions.values().map(|p| p.by_key.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one detection (already validated) at `partition`/`offset`, received (Kafka
    /// time) at `received_at`.
    pub fn apply(
        &mut self,
        rule: Grouping,
        e: &CameraEvent,
        partition: i32,
        offset: i64,
        received_at: DateTime<Utc>,
    ) -> Decision {
        let signal = match e.signal {
            None | Some(Signal::Pulse) => {
                // No state needed, and none read back for it.
                self.skip(partition, offset);
                return Decision::Pulse;
            }
            Some(s) => s,
        };
        let p = self.partitions.entry(partition).or_default();
        p.next_offset = Some(offset + 1);
        let key = key_of(e);
        let event_id = e.id();
        if let Some(s) = p.by_key.get(&key) {
            if s.offset >= offset {
                return Decision::AlreadyApplied;
            }
            if s.recent_events.contains(&event_id) {
                return Decision::Dropped("repeated_event");
            }
        }
        if e.confidence < rule.min_confidence && signal != Signal::End {
            return Decision::Dropped("below_min_confidence");
        }
        p.latest_received = p.latest_received.max(Some(received_at));
        let continues = p.by_key.get(&key).is_some_and(|s| {
            !s.ended
                && e.detected_at <= s.last_seen + rule.gap
                && e.detected_at >= s.first_seen - rule.gap
                && received_at <= s.last_received_at + rule.gap + KEEP_AFTER_GAP
        });
        let situation = if continues {
            let s = p.by_key.get_mut(&key).expect("continued situation");
            s.last_seen = s.last_seen.max(e.detected_at);
            s.last_received_at = s.last_received_at.max(received_at);
            s.detections += 1;
            if (e.confidence > s.peak_confidence || s.snapshot_url.is_none())
                && e.snapshot_url.is_some()
            {
                s.snapshot_url = e.snapshot_url.clone();
            }
            s.peak_confidence = s.peak_confidence.max(e.confidence);
            s.ended = signal == Signal::End;
            s.offset = offset;
            if s.recent_events.len() >= RECENT_EVENTS {
                s.recent_events.remove(0);
            }
            s.recent_events.push(event_id);
            s
        } else {
            if signal == Signal::End {
                return Decision::Dropped("end_without_situation");
            }
            let first = e.detected_at;
            let s = Situation {
                schema: SITUATION_SCHEMA.to_string(),
                key: key.clone(),
                incident_id: ioc_schema::ids::camera_situation_id(
                    &key,
                    &first.to_rfc3339_opts(SecondsFormat::Millis, true),
                ),
                camera_id: e.camera_id.clone(),
                event_type: e.event_type.clone(),
                zone: e.zone.clone(),
                source_key: e.source_key.clone(),
                first_seen: first,
                last_seen: first,
                first_received_at: received_at,
                last_received_at: received_at,
                detections: 1,
                peak_confidence: e.confidence,
                snapshot_url: e.snapshot_url.clone(),
                ended: false,
                gap_seconds: rule.gap.num_seconds(),
                incident_written: false,
                plate_seen: false,
                recent_events: vec![event_id],
                partition,
                offset,
            };
            p.by_key.insert(key.clone(), s);
            p.by_key.get_mut(&key).expect("inserted")
        };
        let lasted = situation.last_seen - situation.first_seen >= rule.min_duration;
        let write_incident = !situation.incident_written && lasted;
        let plate = e.plate.as_deref().is_some_and(|p| !p.is_empty());
        let plate_arrived = situation.incident_written && plate && !situation.plate_seen;
        situation.incident_written |= write_incident;
        if situation.incident_written {
            situation.plate_seen |= plate;
        }
        let out = Decision::Grouped {
            situation: Box::new(situation.clone()),
            write_incident,
            plate_arrived,
        };
        p.applied_since_prune += 1;
        if p.applied_since_prune >= 1024 {
            p.applied_since_prune = 0;
            if let Some(latest) = p.latest_received {
                p.by_key.retain(|_, s| {
                    latest <= s.last_received_at + Duration::seconds(s.gap_seconds) + KEEP_AFTER_GAP
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(gap_s: i64, min_conf: f64, min_dur_s: i64) -> Grouping {
        Grouping {
            gap: Duration::seconds(gap_s),
            min_confidence: min_conf,
            min_duration: Duration::seconds(min_dur_s),
        }
    }

    fn event(at_s: i64, signal: Signal, confidence: f64, key: Option<&str>) -> CameraEvent {
        let t = DateTime::from_timestamp(1_764_730_800 + at_s, 0).unwrap();
        serde_json::from_value(serde_json::json!({
            "camera_id": "CAM-0001", "event_type": "illegal_parking", "confidence": confidence,
            "detected_at": t, "signal": signal, "source_key": key, "zone": "no_parking",
        }))
        .unwrap()
    }

    /// Feeds `events` as consecutive offsets; returns every decision.
    fn feed(s: &mut Situations, r: Grouping, events: &[CameraEvent], from: i64) -> Vec<Decision> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| s.apply(r, e, 0, from + i as i64, e.detected_at))
            .collect()
    }

    fn grouped(d: &Decision) -> (&Situation, bool) {
        match d {
            Decision::Grouped {
                situation,
                write_incident,
                ..
            } => (situation, *write_incident),
            other => panic!("not grouped: {other:?}"),
        }
    }

    #[test]
    fn a_stream_of_detections_is_one_situation_until_the_gap() {
        let mut s = Situations::default();
        let r = rule(60, 0.3, 0);
        let events: Vec<_> = [0, 10, 20, 75, 200]
            .iter()
            .map(|t| event(*t, Signal::Update, 0.5, None))
            .collect();
        let d = feed(&mut s, r, &events, 0);
        let ids: Vec<_> = d.iter().map(|d| grouped(d).0.incident_id.clone()).collect();
        assert!(ids[..4].iter().all(|i| *i == ids[0]), "{ids:?}");
        assert_ne!(ids[4], ids[0], "200 s is past the 60 s gap after 75 s");
        assert_eq!(
            d.iter().filter(|d| grouped(d).1).count(),
            2,
            "one incident each"
        );
        let (last_of_first, _) = grouped(&d[3]);
        assert_eq!(last_of_first.detections, 4);
        assert_eq!(
            (last_of_first.last_seen - last_of_first.first_seen).num_seconds(),
            75
        );
    }

    /// A plate read after the incident (or record) was written is reported once, by the
    /// detection that reads it; one read with the first write is not reported again.
    #[test]
    fn a_plate_read_later_in_the_track_is_reported_once() {
        let mut s = Situations::default();
        let r = rule(600, 0.0, 0);
        let with_plate = |at, key| {
            let mut e = event(at, Signal::Update, 0.9, Some(key));
            e.plate = Some("30E-555.55".into());
            e
        };
        let events = [
            event(0, Signal::Start, 0.9, Some("a")),
            event(5, Signal::Update, 0.9, Some("a")),
            with_plate(10, "a"),
            with_plate(15, "a"),
            with_plate(20, "b"),
            with_plate(25, "b"),
        ];
        let arrived: Vec<(bool, bool)> = feed(&mut s, r, &events, 0)
            .iter()
            .map(|d| match d {
                Decision::Grouped {
                    write_incident,
                    plate_arrived,
                    ..
                } => (*write_incident, *plate_arrived),
                other => panic!("not grouped: {other:?}"),
            })
            .collect();
        assert_eq!(
            arrived,
            [
                (true, false),
                (false, false),
                (false, true),
                (false, false),
                (true, false),
                (false, false)
            ]
        );
    }

    #[test]
    fn the_sources_end_closes_and_a_later_start_opens_anew() {
        let mut s = Situations::default();
        let r = rule(600, 0.0, 0);
        let k = Some("1764730800.25-ab12cd");
        let events = [
            event(0, Signal::Start, 0.6, k),
            event(5, Signal::Update, 0.9, k),
            event(9, Signal::End, 0.9, k),
            event(12, Signal::Update, 0.7, k),
            event(20, Signal::End, 0.7, None),
        ];
        let d = feed(&mut s, r, &events, 0);
        let (end, _) = grouped(&d[2]);
        assert!(end.ended);
        assert_eq!(end.detections, 3);
        assert_eq!(end.peak_confidence, 0.9);
        assert_ne!(grouped(&d[3]).0.incident_id, end.incident_id);
        assert_eq!(d[4], Decision::Dropped("end_without_situation"));
    }

    #[test]
    fn a_detection_sent_twice_counts_once() {
        let mut s = Situations::default();
        let e = event(0, Signal::Update, 0.6, None);
        let d = feed(
            &mut s,
            rule(60, 0.0, 0),
            &[e.clone(), event(3, Signal::Update, 0.6, None), e],
            0,
        );
        assert_eq!(d[2], Decision::Dropped("repeated_event"));
        assert_eq!(grouped(&d[1]).0.detections, 2);
    }

    /// Pulses need no state and read none back; a record that does not follow the last one
    /// of its partition (the partition moved away and back) makes the router forget it.
    #[test]
    fn a_partition_that_moved_is_read_back_again() {
        let mut s = Situations::default();
        let r = rule(60, 0.0, 0);
        assert_eq!(
            s.apply(r, &event(0, Signal::Pulse, 0.9, None), 0, 0, Utc::now()),
            Decision::Pulse
        );
        assert!(!s.in_step(0, 1), "a pulse does not make a partition known");
        s.restore(0, Vec::new(), 1);
        feed(&mut s, r, &[event(1, Signal::Update, 0.9, None)], 1);
        s.observe(0, 2);
        assert!(s.in_step(0, 2));
        s.observe(0, 7);
        assert!(
            !s.in_step(0, 7) && s.is_empty(),
            "offsets 2 to 6 went to another router"
        );
    }

    #[test]
    fn noise_is_left_out() {
        let mut s = Situations::default();
        let r = rule(60, 0.5, 30);
        let d = feed(
            &mut s,
            r,
            &[
                event(0, Signal::Update, 0.2, None),
                event(1, Signal::Update, 0.6, None),
                event(2, Signal::Update, 0.6, None),
                event(40, Signal::Update, 0.6, None),
            ],
            0,
        );
        assert_eq!(d[0], Decision::Dropped("below_min_confidence"));
        assert!(!grouped(&d[1]).1 && !grouped(&d[2]).1, "not yet 30 s long");
        assert!(grouped(&d[3]).1, "written once it lasted 30 s");
        assert_eq!(
            feed(&mut s, r, &[event(50, Signal::Pulse, 0.9, None)], 10)[0],
            Decision::Pulse
        );
    }

    /// A router that takes over after a crash reads back the situations of the partition and,
    /// replaying from the last committed offset, decides exactly what the first one did.
    #[test]
    fn a_replay_from_the_situations_read_back_decides_the_same() {
        let r = rule(60, 0.3, 20);
        let events: Vec<_> = (0..30)
            .map(|i| {
                event(
                    i * 5,
                    if i == 29 { Signal::End } else { Signal::Update },
                    0.4 + (i % 7) as f64 / 20.0,
                    None,
                )
            })
            .collect();
        let mut first = Situations::default();
        let all = feed(&mut first, r, &events, 100);
        // It crashed after the situation record of offset 100 + 14 was written, and its
        // consumer had committed only up to 100 + 9.
        for (crash_at, committed) in [(14usize, 9usize), (14, 14), (3, 0), (0, 0)] {
            let written: Vec<Situation> = all[..=crash_at]
                .iter()
                .map(|d| grouped(d).0.clone())
                .collect();
            let mut second = Situations::default();
            assert!(!second.in_step(0, 100 + committed as i64));
            second.restore(
                0,
                vec![written.last().unwrap().clone()],
                100 + committed as i64,
            );
            let again = feed(&mut second, r, &events[committed..], 100 + committed as i64);
            for (i, d) in again.iter().enumerate() {
                let n = committed + i;
                if n <= crash_at {
                    assert_eq!(*d, Decision::AlreadyApplied, "offset {n}");
                } else {
                    assert_eq!(*d, all[n], "offset {n}");
                }
            }
        }
    }
}
