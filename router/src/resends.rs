//! A report is routed once per tracking id.
//!
//! Ingest answers a resubmission (same idempotency key) from its memory of keys, but that memory
//! is per process: a citizen's app whose first answer died with its ingest (the broker had the
//! report) sends again to another ingest, which writes the report a second time, later. Both
//! records carry the same tracking id (derived from the key and the content), so they land in
//! the same partition of the reports topic, and the router, seeing the id again at a later
//! offset, leaves the second record alone: routing it would write a second revision 1 with
//! another `received_at`.
//!
//! The memory is per partition and covers a window before each record: the last
//! [`RESEND_RECORDS`] records of the partition and at most [`RESEND_WINDOW`] of time. A router
//! seeing a partition for the first time (its start, or a partition moved to it), or seeing it
//! continue past records another router handled, reads those records back from the reports
//! topic first. A resend later than the window is routed again (as it was before this memory):
//! an app retrying after that long is rare, and the incident keeps its id either way.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use ioc_config::load::Settings;
use ioc_config::supervise::CancellationToken;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;

/// How far back, in records of one partition, a resend is recognised.
pub const RESEND_RECORDS: i64 = 10_000;
/// How far back, in time, a resend is recognised.
pub const RESEND_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Attempts at reading a partition's recent records before routing without them.
const READ_ATTEMPTS: u32 = 3;

/// The tracking ids routed recently, per partition of the reports topic.
pub struct Resends {
    topic: String,
    partitions: HashMap<i32, Routed>,
}

/// One partition's recent tracking ids.
#[derive(Default)]
struct Routed {
    /// The offset after the last record known.
    next: i64,
    /// Per tracking id, the offset of its first record.
    first: HashMap<String, i64>,
    /// The records remembered, oldest first: offset, Kafka time (ms), tracking id.
    order: VecDeque<(i64, i64, String)>,
}

impl Routed {
    fn remember(&mut self, offset: i64, at_ms: i64, id: &str) {
        let first = self.first.entry(id.to_string()).or_insert(offset);
        if offset < *first {
            *first = offset;
        }
        self.order.push_back((offset, at_ms, id.to_string()));
        self.next = self.next.max(offset + 1);
    }

    /// Forgets what is older than the window before `at_ms`.
    fn forget_before(&mut self, at_ms: i64) {
        let oldest_ms = at_ms - RESEND_WINDOW.as_millis() as i64;
        while let Some((offset, t, _)) = self.order.front() {
            if *t >= oldest_ms && self.order.len() as i64 <= RESEND_RECORDS {
                break;
            }
            let offset = *offset;
            let (_, _, id) = self.order.pop_front().expect("front exists");
            if self.first.get(&id) == Some(&offset) {
                self.first.remove(&id);
            }
        }
    }
}

impl Resends {
    /// A memory for the reports topic `topic`.
    pub fn new(topic: &str) -> Resends {
        Resends {
            topic: topic.to_string(),
            partitions: HashMap::new(),
        }
    }

    /// Whether the report `id` at `offset` of `partition` repeats one at an earlier offset (so
    /// routed already), remembering it either way. Reads the partition's recent records back
    /// first when this router does not know them; should that fail, the report counts as new.
    pub fn repeats(
        &mut self,
        settings: &Settings,
        stop: &CancellationToken,
        partition: i32,
        offset: i64,
        id: &str,
        at: DateTime<Utc>,
    ) -> bool {
        let at_ms = at.timestamp_millis();
        let unknown_from = match self.partitions.get(&partition) {
            None => Some(0),
            Some(r) if offset > r.next => Some(r.next),
            // In step, or back at records it has seen (a partition that came back to it at
            // its committed offset): what it remembers holds.
            Some(_) => None,
        };
        if let Some(from) = unknown_from {
            let from = from.max(offset - RESEND_RECORDS);
            let routed = self.partitions.entry(partition).or_default();
            if from < offset {
                match read_ids(settings, &self.topic, partition, from, offset, stop) {
                    Ok(records) => {
                        for (o, t, id) in records {
                            routed.remember(o, t, &id);
                        }
                    }
                    Err(e) => tracing::warn!(
                        partition,
                        offset,
                        "router: routing a report without knowing the partition's recent tracking ids (a resend among them would be routed again): {e:#}"
                    ),
                }
            }
            routed.next = routed.next.max(offset);
        }
        self.note(partition, offset, id, at_ms)
    }

    /// Remembers the report `id` at `offset` of a partition known up to it, answering whether
    /// it repeats one at an earlier offset.
    fn note(&mut self, partition: i32, offset: i64, id: &str, at_ms: i64) -> bool {
        let routed = self.partitions.entry(partition).or_default();
        let repeat = routed.first.get(id).is_some_and(|first| *first < offset);
        routed.remember(offset, at_ms, id);
        routed.forget_before(at_ms);
        repeat
    }
}

/// The tracking ids of the reports at offsets `from..to` of `partition`, with their offsets
/// and Kafka times, tried [`READ_ATTEMPTS`] times.
fn read_ids(
    settings: &Settings,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<(i64, i64, String)>> {
    let read = || read_range(settings, topic, partition, from, to);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = if crate::pipeline::multi_thread_runtime() {
            tokio::task::block_in_place(read)
        } else {
            read()
        };
        match result {
            Ok(records) => return Ok(records),
            Err(e) if attempt >= READ_ATTEMPTS || stop.is_cancelled() => return Err(e),
            Err(e) => {
                tracing::warn!(
                    partition,
                    attempt,
                    "router: reading recent reports back: {e:#}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

fn read_range(
    settings: &Settings,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> anyhow::Result<Vec<(i64, i64, String)>> {
    #[derive(serde::Deserialize)]
    struct Id {
        tracking_id: String,
    }
    let started = Instant::now();
    let consumer: BaseConsumer = ioc_config::kafka::base_consumer_config(&settings.config)
        .set("group.id", format!("{topic}.resends"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the reader of recent reports")?;
    let (low, _) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .with_context(|| format!("the start of {topic} partition {partition}"))?;
    let from = from.max(low);
    let mut records = Vec::new();
    if from >= to {
        return Ok(records);
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(from))?;
    consumer.assign(&tpl)?;
    let deadline = started + Duration::from_secs(60);
    // The record at `to` exists (it is being routed), so reading reaches it even past a gap.
    loop {
        if Instant::now() >= deadline {
            anyhow::bail!(
                "read {topic} partition {partition} only to {} of {to} in 60 s",
                records
                    .last()
                    .map_or(from, |r: &(i64, i64, String)| r.0 + 1)
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if m.offset() >= to {
                    break;
                }
                let parsed = m
                    .payload()
                    .and_then(|v| serde_json::from_slice::<Id>(v).ok());
                if let Some(Id { tracking_id }) = parsed {
                    let at = m.timestamp().to_millis().unwrap_or_default();
                    records.push((m.offset(), at, tracking_id));
                }
                if m.offset() + 1 >= to {
                    break;
                }
            }
            Some(Err(e)) => return Err(e).context("reading recent reports"),
            None => {}
        }
    }
    tracing::info!(
        partition,
        records = to - from,
        took_ms = started.elapsed().as_millis() as u64,
        "router: read the partition's recent reports back to recognise resends"
    );
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(offsets: std::ops::Range<i64>) -> Routed {
        let mut r = Routed::default();
        for o in offsets {
            r.remember(o, o * 1000, &format!("id-{o}"));
        }
        r
    }

    #[test]
    fn an_id_at_a_later_offset_repeats_and_at_its_own_offset_does_not() {
        let mut resends = Resends::new("reports");
        resends.partitions.insert(0, known(0..5));
        assert!(resends.note(0, 5, "id-2", 5_000));
        // The partition came back at an earlier offset: the first record is not a repeat.
        assert!(!resends.note(0, 2, "id-2", 5_000));
        assert!(!resends.note(0, 6, "id-new", 6_000));
        assert!(resends.note(0, 7, "id-new", 7_000));
    }

    #[test]
    fn the_window_forgets_old_records_by_count_and_by_time() {
        let mut r = known(0..RESEND_RECORDS + 10);
        r.forget_before((RESEND_RECORDS + 9) * 1000);
        assert!(r.order.len() as i64 <= RESEND_RECORDS);
        assert!(!r.first.contains_key("id-0"));
        let far = (RESEND_RECORDS + 9) * 1000 + RESEND_WINDOW.as_millis() as i64 + 1;
        r.forget_before(far);
        assert!(r.first.is_empty() && r.order.is_empty());
    }
}
