//! A watch for a consumer the group coordinator has left short: the group says it is stable,
//! yet this member holds fewer partitions of a topic than any assignor gives a member of a group
//! that size, so some partitions' records wait for nobody.
//!
//! A Kafka cluster's coordinator does not leave a stable group like that. tansu 0.6 does: when a
//! member misses its heartbeats and rejoins, its coordinator answers joins without waiting for
//! the other members, so the leader can hand out an assignment naming members that are gone,
//! and the members that remain are given nothing while heartbeats report all is well (seen in
//! the fault harness, `benches/faults.rs`, and README "Router failover"). tansu's DescribeGroups
//! leaves members' assignments out, so each member judges from what it holds itself: the
//! coordinator's member count (DescribeGroups, every few seconds from a thread of its own)
//! against its own assignment, which the consume loop reports. When a member holds fewer than
//! `partitions / members` (rounded down) of a topic for a while, the loop is told to leave and
//! join again, which starts a new generation with an assignment over the members really there.
//! In a healthy group every member holds at least that share, so the watch never acts.
//!
//! The second case is a rebalance that never ends: tansu, dropping a member that missed its
//! heartbeats, makes the group forming again under the same generation and goes on answering
//! the other members' heartbeats without an error, so nobody joins and the partitions of the
//! member gone stay with nobody (one command partition, two dashboards, the owner killed: the
//! survivor waited for good in about one run of four). A group that stays neither stable nor
//! empty for as long gets the same rejoin. On a Kafka cluster a rebalance ends within the
//! members' rebalance timeout, and a member asked to join again joins at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;

use crate::model::Config;

/// How often the group is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Short of its share for this long (a rebalance takes a few seconds) means left short.
const SHORT_FOR: Duration = Duration::from_secs(10);
/// After asking for a rejoin, the group gets this long to settle before it is judged again.
const SETTLE: Duration = Duration::from_secs(20);

/// Runs until dropped; [`StrandWatch::rejoin_due`] says when the consumer should rejoin.
pub struct StrandWatch {
    due: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Partitions held now, per topic, as the consume loop last reported.
    held: Arc<Mutex<Option<HashMap<String, usize>>>>,
}

impl StrandWatch {
    /// Watches this member's share of `topics` in `group`, in a thread of its own.
    pub fn start(
        config: &Config,
        group: &str,
        topics: &[&str],
        stage: &'static str,
    ) -> StrandWatch {
        let due = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(None));
        let client: Option<BaseConsumer> = super::client_config(config).create().ok();
        let (group, topics) = (
            group.to_string(),
            topics.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        );
        if let Some(client) = client {
            let (due, stop, held) = (due.clone(), stop.clone(), held.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("{stage}-strand-watch"))
                .spawn(move || watch(&client, &group, &topics, stage, &due, &stop, &held));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "{stage}: cannot start the watch for stranded partitions");
            }
        }
        StrandWatch { due, stop, held }
    }

    /// Tells the watch what the consumer holds now (its `assignment()`).
    pub fn report(&self, assignment: &TopicPartitionList) {
        let mut per_topic: HashMap<String, usize> = HashMap::new();
        for e in assignment.elements() {
            *per_topic.entry(e.topic().to_string()).or_default() += 1;
        }
        *self.held.lock().expect("held lock") = Some(per_topic);
    }

    /// True once each time the watch found this member left short: the caller should
    /// unsubscribe and subscribe again.
    pub fn rejoin_due(&self) -> bool {
        self.due.swap(false, Ordering::AcqRel)
    }
}

impl Drop for StrandWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn watch(
    client: &BaseConsumer,
    group: &str,
    topics: &[String],
    stage: &str,
    due: &AtomicBool,
    stop: &AtomicBool,
    held: &Mutex<Option<HashMap<String, usize>>>,
) {
    let mut wrong_since: Option<Instant> = None;
    let mut quiet_until = Instant::now() + CHECK_EVERY;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(500));
        if Instant::now() < quiet_until {
            continue;
        }
        quiet_until = Instant::now() + CHECK_EVERY;
        let own = held.lock().expect("held lock").clone();
        if own.is_none() {
            tracing::debug!(group, "no assignment reported yet");
        }
        let verdict = own.and_then(|own| judge(client, group, topics, &own));
        match verdict {
            Some(verdict) => {
                let since = *wrong_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SHORT_FOR {
                    match verdict {
                        Verdict::Short(Short {
                            topic,
                            holds,
                            share,
                        }) => tracing::warn!(
                            group,
                            topic,
                            holds,
                            share,
                            "{stage}: the group is stable but this member holds {holds} partitions of {topic}, fewer than its share; leaving and joining again"
                        ),
                        Verdict::Unsettled(state) => tracing::warn!(
                            group,
                            state,
                            "{stage}: the group has been {state} for {}s while this member heartbeats; leaving and joining again",
                            since.elapsed().as_secs()
                        ),
                    }
                    due.store(true, Ordering::Release);
                    wrong_since = None;
                    quiet_until = Instant::now() + SETTLE;
                }
            }
            None => wrong_since = None,
        }
    }
}

/// What is wrong with this member's place in the group.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Stable, and this member holds less than its share of a topic.
    Short(Short),
    /// A rebalance that does not end: tansu 0.6, dropping a member that missed its heartbeats,
    /// turns a stable group back into a forming one without a new generation, and answers the
    /// remaining members' heartbeats (same generation) with no error, so none of them is told
    /// to join again and the group waits for a join that never comes.
    Unsettled(String),
}

/// A topic of which this member holds less than its share.
#[derive(Debug, PartialEq)]
struct Short {
    topic: String,
    holds: usize,
    share: usize,
}

/// Asks the coordinator about the `group`; `None` when it cannot say (no answer), when the group
/// has no members, or when it is stable and this member holds its share of every topic.
fn judge(
    client: &BaseConsumer,
    group: &str,
    topics: &[String],
    own: &HashMap<String, usize>,
) -> Option<Verdict> {
    let timeout = Duration::from_secs(5);
    let list = client
        .fetch_group_list(Some(group), timeout)
        .inspect_err(|e| tracing::debug!(group, error = %e, "cannot describe the group"))
        .ok()?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        tracing::debug!(group, "the coordinator does not know the group");
        return None;
    };
    let members = info.members().len();
    tracing::debug!(
        group,
        state = info.state(),
        members,
        ?own,
        "the group as its coordinator tells it"
    );
    if unsettled(info.state(), members) {
        return Some(Verdict::Unsettled(info.state().to_string()));
    }
    if info.state() != "Stable" {
        return None;
    }
    for topic in topics {
        let meta = client.fetch_metadata(Some(topic), timeout).ok()?;
        let partitions = meta
            .topics()
            .iter()
            .find(|t| t.name() == topic)?
            .partitions()
            .len();
        let holds = own.get(topic).copied().unwrap_or(0);
        if let Some(share) = left_short(partitions, members, holds) {
            return Some(Verdict::Short(Short {
                topic: topic.clone(),
                holds,
                share,
            }));
        }
    }
    None
}

/// A group with members that is neither stable nor empty is rebalancing; that is fine for a
/// few seconds, and a sign of the stuck rebalance above when it lasts.
fn unsettled(state: &str, members: usize) -> bool {
    members > 0 && !matches!(state, "Stable" | "Empty" | "Dead")
}

/// The share a member of `members` holding `holds` of `partitions` should at least have, when
/// it has less: range, round-robin and sticky assignors all give each member at least
/// `partitions / members`, rounded down.
fn left_short(partitions: usize, members: usize, holds: usize) -> Option<usize> {
    if members == 0 {
        return None;
    }
    let share = partitions / members;
    (holds < share).then_some(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_short_only_below_the_share_every_assignor_gives() {
        assert_eq!(
            left_short(4, 2, 0),
            Some(2),
            "given nothing in a group of two"
        );
        assert_eq!(
            left_short(4, 2, 1),
            Some(2),
            "one partition left to a member gone"
        );
        assert_eq!(left_short(4, 2, 2), None);
        assert_eq!(left_short(4, 3, 1), None, "4 over 3: at least one each");
        assert_eq!(
            left_short(4, 5, 0),
            None,
            "more members than partitions: some get none"
        );
        assert_eq!(left_short(4, 0, 0), None);
    }

    #[test]
    fn only_a_rebalance_with_members_counts_as_unsettled() {
        assert!(
            unsettled("Assigning", 1),
            "tansu's forming group without a leader"
        );
        assert!(unsettled("PreparingRebalance", 2));
        assert!(!unsettled("Stable", 2));
        assert!(!unsettled("Empty", 0));
        assert!(!unsettled("Assigning", 0), "nobody left to join");
    }
}
