//! One writer per incident, however many dashboards run: lifecycle actions travel as commands on
//! a topic keyed by incident id, and each partition of it is applied by the one dashboard
//! instance that owns it in a consumer group. Two actions on one incident therefore meet in one
//! place, in order: the second sees the first's revision (and is refused with 409 if it no
//! longer applies), and no two revisions are built on the same one. When an instance dies, the
//! group gives its partitions to the others; before applying a partition's commands, the new
//! owner reads the incident topic's partition of the same number (the same key lands on the
//! same partition number in both) up to its end, so it builds on the last revision written.
//! The service-level monitor writes only for the incidents of the partitions its instance owns.
//!
//! The instance that took the HTTP request waits for the owner's answer on the results topic.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::http::StatusCode;
use ioc_config::kafka::{client_config, LagContext};
use ioc_config::supervise::CancellationToken;
use ioc_schema::lifecycle::{
    Action, CommandAnswer as Answer, CommandRecord as Command, Role, COMMAND_ANSWER_SCHEMA,
    COMMAND_SCHEMA,
};
use ioc_schema::validate::decode_json;
use ioc_schema::Incident;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;

use crate::{ApiError, AppState, STAGE};

/// How long a request waits for the owner of its incident to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(15);
/// How long a new owner waits to read an incident partition to its end before applying.
const CATCH_UP_WAIT: Duration = Duration::from_secs(15);
/// How long a new owner waits before asking where the incident partitions end, so the ends
/// include what the last owner wrote just before the hand-over.
const CATCH_UP_SETTLE: Duration = Duration::from_millis(250);

/// This instance's side of the commands: its name, the requests waiting for answers, the
/// partitions it owns and has caught up on, and how far the view has read each incident
/// partition.
#[derive(Clone)]
pub struct Commands {
    pub(crate) instance: String,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>,
    owned: Arc<RwLock<HashSet<i32>>>,
    partitions: Arc<AtomicI32>,
    /// Incident partition → the next offset the view will read.
    pub(crate) read_up_to: Arc<Mutex<HashMap<i32, i64>>>,
}

impl Default for Commands {
    fn default() -> Self {
        Commands {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            waiting: Arc::default(),
            owned: Arc::default(),
            partitions: Arc::new(AtomicI32::new(0)),
            read_up_to: Arc::default(),
        }
    }
}

/// librdkafka's default partitioner for keyed records (`consistent_random`): CRC-32 of the key
/// modulo the partition count.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in key.as_bytes() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    ((!crc) % partitions.max(1) as u32) as i32
}

impl Commands {
    /// Whether this instance owns (and has caught up on) the partition of incident `id`.
    pub fn owns(&self, id: &str) -> bool {
        let n = self.partitions.load(Ordering::Acquire);
        n > 0
            && self
                .owned
                .read()
                .expect("owned lock")
                .contains(&partition_of(id, n))
    }

    /// How many command partitions this instance owns now.
    pub fn owned_count(&self) -> usize {
        self.owned.read().expect("owned lock").len()
    }
}

fn code_of(code: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "illegal_transition",
        "forbidden",
        "invalid",
        "not_found",
        "unavailable",
        "incident_too_large",
        "internal",
    ];
    KNOWN
        .iter()
        .find(|k| **k == code)
        .copied()
        .unwrap_or("refused")
}

/// Sends `action` to the owner of incident `id` and waits for its answer.
pub async fn submit(
    s: &AppState,
    id: &str,
    action: Action,
    role: Role,
    actor: &str,
) -> Result<Incident, ApiError> {
    let c = &s.commands;
    let command = Command {
        schema: COMMAND_SCHEMA.into(),
        id: uuid::Uuid::new_v4().simple().to_string(),
        incident_id: id.to_string(),
        action,
        role,
        actor: actor.to_string(),
        reply_to: c.instance.clone(),
    };
    let (tx, rx) = oneshot::channel();
    c.waiting
        .lock()
        .expect("waiting lock")
        .insert(command.id.clone(), tx);
    let forget = || {
        c.waiting.lock().expect("waiting lock").remove(&command.id);
    };
    let bytes = serde_json::to_vec(&command).expect("a command serializes");
    if let Err(e) = s
        .sink
        .send(&s.settings.config.topics.commands, id, &bytes)
        .await
    {
        forget();
        tracing::warn!("cannot send a command: {e}");
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The change could not be passed on. Retry in a moment.".into(),
        ));
    }
    match tokio::time::timeout(ANSWER_WAIT, rx).await {
        Ok(Ok(answer)) => match answer.incident {
            Some(i) if answer.status < 300 => {
                // The answer may arrive before this instance's view has read the revision.
                s.apply(i.clone());
                Ok(i)
            }
            _ => Err(ApiError(
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                code_of(answer.code.as_deref().unwrap_or("")),
                answer.message.unwrap_or_default(),
            )),
        },
        _ => {
            forget();
            Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "No dashboard instance confirmed the change within {} s (the owner of this incident may be restarting). It will still be applied once an instance takes the incident over: look at the incident before repeating it.",
                    ANSWER_WAIT.as_secs()
                ),
            ))
        }
    }
}

/// Reads the answers meant for this instance, from the results topic's end at start.
pub async fn listen(s: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let cfg = &s.settings.config;
    // Where the results topic ends now: answers to this instance come after. A broker that is
    // slow or away at start is waited for, not a reason to stop the dashboard.
    let mut logged = false;
    let ends = loop {
        let (settings, topic) = (s.settings.clone(), cfg.topics.command_results.clone());
        match tokio::task::spawn_blocking(move || ends_of(&settings, &topic))
            .await
            .expect("the end-offset probe does not panic")
        {
            Ok(ends) => break ends,
            Err(e) => {
                if !logged {
                    tracing::warn!(
                        "cannot read the command results topic's end offsets yet ({e:#}); retrying"
                    );
                    logged = true;
                }
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let consumer: StreamConsumer = client_config(cfg)
        .set(
            "group.id",
            format!("{}.{}", cfg.topics.command_results, s.commands.instance),
        )
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the command results consumer")?;
    let mut tpl = TopicPartitionList::new();
    for (p, end) in ends {
        tpl.add_partition_offset(&cfg.topics.command_results, p, Offset::Offset(end))?;
    }
    consumer.assign(&tpl)?;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    let Ok(answer) = decode_json::<Answer>(m.payload().unwrap_or_default()) else { continue };
                    if answer.reply_to != s.commands.instance { continue }
                    let waiting = s.commands.waiting.lock().expect("waiting lock").remove(&answer.command_id);
                    if let Some(tx) = waiting {
                        let _ = tx.send(answer);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "command results consumer");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Partition → high watermark of `topic`.
fn ends_of(settings: &ioc_config::load::Settings, topic: &str) -> anyhow::Result<Vec<(i32, i64)>> {
    let probe: BaseConsumer = client_config(&settings.config)
        .set("group.id", format!("{topic}.probe"))
        .create()?;
    let md = probe.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut out = Vec::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = probe.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        out.push((p.id(), high));
    }
    anyhow::ensure!(
        !out.is_empty(),
        "topic {topic} is missing: create it, or set topics.create = true so the stages create it"
    );
    Ok(out)
}

/// Applies the commands of the partitions this instance owns in the dashboards' group.
pub async fn own(s: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let cfg = &s.settings.config;
    let group = format!("{}.owners", cfg.topics.commands);
    let mut config = client_config(cfg);
    config
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("heartbeat.interval.ms", "1000");
    ioc_config::kafka::group_session(&mut config, cfg);
    if let Some(instance) = cfg
        .dashboard
        .instance_id
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        // Static membership: restarted under its name, the instance is the same member.
        config.set(
            "group.instance.id",
            format!("{instance}-dashboard-commands"),
        );
    }
    let consumer: StreamConsumer<LagContext> = config
        .create_with_context(
            // A revoked partition stops counting as owned at once, not at the next refresh:
            // the monitor then writes none of its incidents while the group hands it over.
            LagContext::new(s.metrics.clone(), "dashboard-commands").on_revoke({
                let owned = s.commands.owned.clone();
                move || owned.write().expect("owned lock").clear()
            }),
        )
        .context("creating the command consumer")?;
    consumer
        .subscribe(&[&cfg.topics.commands])
        .context("subscribing to the command topic")?;
    let watch = ioc_config::kafka::StrandWatch::start(
        cfg,
        &group,
        &[&cfg.topics.commands],
        "dashboard-commands",
    );
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {
                if watch.rejoin_due() {
                    ioc_config::kafka::source::rejoin(&consumer, "dashboard-commands");
                } else if let Ok(tpl) = consumer.assignment() {
                    watch.report(&tpl);
                }
                refresh_ownership(&s, &consumer).await
            }
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    let partition = m.partition();
                    if !s.commands.owned.read().expect("owned lock").contains(&partition) {
                        refresh_ownership(&s, &consumer).await;
                    }
                    let answer = match decode_json::<Command>(m.payload().unwrap_or_default()) {
                        Ok(c) if c.schema == COMMAND_SCHEMA => Some(apply(&s, c).await),
                        _ => {
                            tracing::warn!(partition, offset = m.offset(), "skipping an unreadable command");
                            None
                        }
                    };
                    if let Some(answer) = answer {
                        // The answer goes out beside the next command: what must be stored before
                        // moving on is the incident's record (a command applied again changes
                        // nothing), and an answer lost to a crash is a 503 the requester retries.
                        let bytes = serde_json::to_vec(&answer).expect("an answer serializes");
                        let (sink, topic) = (s.sink.clone(), cfg.topics.command_results.clone());
                        tokio::spawn(async move {
                            sink.send_until_acknowledged(&topic, &answer.reply_to, &bytes).await;
                        });
                    }
                    if let Err(e) = consumer.commit_message(&m, CommitMode::Async) {
                        tracing::debug!(error = %e, "committing a command");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "command consumer");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

async fn apply(s: &AppState, c: Command) -> Answer {
    let result = {
        let _one_at_a_time = s.acting.lock().await;
        crate::actions::act_locked(s, &c.incident_id, c.action, c.role, &c.actor, Some(&c.id)).await
    };
    let (status, incident, code, message) = match result {
        Ok(i) => (200, Some(i), None, None),
        Err(ApiError(status, code, message)) => {
            (status.as_u16(), None, Some(code.to_string()), Some(message))
        }
    };
    Answer {
        schema: COMMAND_ANSWER_SCHEMA.into(),
        command_id: c.id,
        reply_to: c.reply_to,
        status,
        incident,
        code,
        message,
    }
}

/// Brings the set of owned partitions in line with the group's assignment; a partition newly
/// owned counts only once the view has read the incident topic's partition of that number to
/// its end (the last owner's revisions included).
async fn refresh_ownership(s: &AppState, consumer: &StreamConsumer<LagContext>) {
    let assigned: HashSet<i32> = match consumer.assignment() {
        Ok(tpl) => tpl.elements().iter().map(|e| e.partition()).collect(),
        Err(_) => return,
    };
    if s.commands.partitions.load(Ordering::Acquire) == 0 {
        let settings = s.settings.clone();
        let topic = s.settings.config.topics.commands.clone();
        if let Ok(Ok(ends)) = tokio::task::spawn_blocking(move || ends_of(&settings, &topic)).await
        {
            s.commands
                .partitions
                .store(ends.len() as i32, Ordering::Release);
        }
    }
    let known: HashSet<i32> = s.commands.owned.read().expect("owned lock").clone();
    let new: Vec<i32> = assigned.difference(&known).copied().collect();
    s.commands
        .owned
        .write()
        .expect("owned lock")
        .retain(|p| assigned.contains(p));
    if new.is_empty() {
        return;
    }
    commit_where_none(consumer, &s.settings.config.topics.commands, &new);
    let settings = s.settings.clone();
    let topic = s.settings.config.topics.incidents.clone();
    tokio::time::sleep(CATCH_UP_SETTLE).await;
    let ends = tokio::task::spawn_blocking(move || ends_of(&settings, &topic))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    // Each new partition counts as owned once the view has read its incident partition to the
    // end reported a moment after the hand-over began: tansu has reported ends short of records
    // it already serves (RELIABILITY.md), and the last owner's final revision must be in the
    // view before this instance builds on it. (Waiting for the partition to go quiet instead
    // never ended under steady load.) All of them are waited for together.
    let started = Instant::now();
    let mut waiting = new;
    while !waiting.is_empty() {
        let read_up_to = s
            .commands
            .read_up_to
            .lock()
            .expect("positions lock")
            .clone();
        let late = started.elapsed() > CATCH_UP_WAIT;
        waiting.retain(|&p| {
            let end = ends.iter().find(|(q, _)| *q == p).map_or(0, |(_, e)| *e);
            let read = read_up_to.get(&p).copied().unwrap_or(0);
            let caught_up = read >= end;
            if !caught_up && !late {
                return true;
            }
            if !caught_up {
                tracing::warn!(
                    partition = p,
                    read,
                    end,
                    "taking over a partition before reading the incident topic to its end"
                );
            }
            tracing::info!(
                partition = p,
                "{STAGE}: now applying this partition's commands"
            );
            s.commands.owned.write().expect("owned lock").insert(p);
            false
        });
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Gives each of `partitions` with no committed offset in the owners' group its low
/// watermark, where `auto.offset.reset = earliest` starts anyway. tansu lists a group
/// (ListGroups, the only way librdkafka describes one) only once it has a committed offset, and
/// the other dashboards' watch for stranded partitions cannot judge a group it cannot see: a
/// new owner killed before its first command would leave its partition stranded unseen.
fn commit_where_none(consumer: &StreamConsumer<LagContext>, topic: &str, partitions: &[i32]) {
    let timeout = Duration::from_secs(5);
    let mut asked = TopicPartitionList::new();
    for p in partitions {
        asked.add_partition(topic, *p);
    }
    let Ok(committed) = consumer.committed_offsets(asked, timeout) else {
        return;
    };
    let mut missing = TopicPartitionList::new();
    for e in committed.elements() {
        if matches!(e.offset(), Offset::Invalid) {
            if let Ok((low, _)) = consumer.fetch_watermarks(topic, e.partition(), timeout) {
                let _ = missing.add_partition_offset(topic, e.partition(), Offset::Offset(low));
            }
        }
    }
    if missing.count() > 0 {
        if let Err(e) = consumer.commit(&missing, CommitMode::Sync) {
            tracing::debug!(error = %e, "committing a taken-over partition's start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The partition a key is computed to land on is where librdkafka's producer puts it.
    #[tokio::test]
    async fn keys_land_where_partition_of_says() {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let topic = "partitioner-check";
        let broker = ioc_config::kafka::EmbeddedBroker::start(&[topic], 6).unwrap();
        let env = [(
            "IOC_KAFKA__BROKERS".to_string(),
            broker.bootstrap_servers().to_string(),
        )];
        let settings = ioc_config::load::Settings::load(None, env).unwrap();
        let producer: FutureProducer = ioc_config::kafka::producer_config(&settings.config)
            .create()
            .unwrap();
        for n in 0..60 {
            let key = format!("r-{n}-{}", uuid::Uuid::new_v4());
            let delivered = producer
                .send(
                    FutureRecord::to(topic).key(&key).payload("x"),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            assert_eq!(delivered.partition, partition_of(&key, 6), "{key}");
        }
    }
}
