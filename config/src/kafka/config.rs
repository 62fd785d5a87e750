//! Kafka clients built from configuration, and topic creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::model::Config;

/// Longest wait between attempts to reconnect to a broker, unless `[kafka.options]` says
/// otherwise.
const RECONNECT_BACKOFF_MAX_MS: &str = "1000";

/// Base client configuration: brokers plus the raw options from `[kafka.options]`.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.kafka.brokers);
    // librdkafka waits up to 10 s between attempts to reach a broker that went away, so a stage
    // went on refusing requests for up to 10 s after the broker was back (BENCHMARKS.md).
    cc.set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS);
    for (k, v) in &config.kafka.options {
        cc.set(k, v);
    }
    cc
}

/// A producer that never reports success before every in-sync replica has the record, and never
/// writes a record twice on retry. `[kafka.options]` may turn idempotence off for a broker that
/// mishandles it (tansu 0.6 on SQLite storage, see RELIABILITY.md); the stages' deterministic
/// ids make a record written twice harmless, and one request in flight keeps the order.
pub fn producer_config(config: &Config) -> ClientConfig {
    let mut cc = client_config(config);
    let idempotence_off = config
        .kafka
        .options
        .get("enable.idempotence")
        .is_some_and(|v| said_no(v));
    if idempotence_off {
        if !config
            .kafka
            .options
            .contains_key("max.in.flight.requests.per.connection")
        {
            cc.set("max.in.flight.requests.per.connection", "1");
        }
    } else {
        cc.set("enable.idempotence", "true");
    }
    cc.set("acks", "all").set("linger.ms", "2").set(
        "message.timeout.ms",
        config.kafka.produce_timeout.0.as_millis().to_string(),
    );
    cc
}

/// A boolean option set to false the ways librdkafka reads it (`false`, `f`, `0`, any case).
fn said_no(value: &str) -> bool {
    let v = value.trim();
    v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("f") || v == "0"
}

/// How long a fetch may wait at the broker for new records, unless `[kafka.options]` says
/// otherwise. librdkafka's 500 ms default adds up to half a second per stage on brokers that do
/// not answer a waiting fetch as soon as records arrive (the embedded one, tansu); see
/// BENCHMARKS.md.
const FETCH_WAIT_MS: &str = "50";

/// Base configuration of every consumer: a short fetch wait (latency matters more than the few
/// extra fetch requests an idle pipeline makes).
pub fn base_consumer_config(config: &Config) -> ClientConfig {
    let mut cc = client_config(config);
    if !config.kafka.options.contains_key("fetch.wait.max.ms") {
        cc.set("fetch.wait.max.ms", FETCH_WAIT_MS);
    }
    cc
}

/// A consumer that stores offsets only when told (after its outputs are acknowledged) and
/// commits them in the background. The group's two timeouts are defaults `[kafka.options]` may
/// change (a longer session suits static members, see README "Faults on purpose"); the rest is
/// what the stages' delivery promise rests on and is not.
pub fn consumer_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut cc = base_consumer_config(config);
    cc.set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000");
    let session_ms = group_session(&mut cc, config);
    if !config.kafka.options.contains_key("max.poll.interval.ms") {
        // Also bounds how long a rebalance waits for a member that died without leaving; it
        // may not be shorter than the session (librdkafka refuses that).
        let poll_ms = session_ms.map_or(30_000, |ms| ms.max(30_000));
        cc.set("max.poll.interval.ms", poll_ms.to_string());
    }
    cc
}

/// Sets a consumer group member's session to 10 s unless `[kafka.options]` names one; returns
/// the session in force, in milliseconds, where it reads as a number.
pub fn group_session(cc: &mut ClientConfig, config: &Config) -> Option<u64> {
    if !config.kafka.options.contains_key("session.timeout.ms") {
        cc.set("session.timeout.ms", "10000");
    }
    cc.get("session.timeout.ms")
        .and_then(|v| v.trim().parse().ok())
}

/// A dashboard's consumer: its own group (every instance reads the whole incident topic), from
/// the beginning, never committing (it rebuilds its view from the topic at every start).
pub fn dashboard_consumer_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut cc = base_consumer_config(config);
    cc.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000");
    cc
}

/// The settings a topic is created with, by its role: the incident and assignment topics are
/// compacted by key and never deleted by age; the input topics (personal data) and the dead
/// letters are deleted after their configured retention.
pub fn topic_settings(config: &Config, topic: &str) -> Vec<(&'static str, String)> {
    let t = &config.topics;
    let ms = |d: crate::model::Dur| d.0.as_millis().to_string();
    if topic == t.situations
        || topic == t.violations
        || (!topic.is_empty() && topic == t.deepstream_situations)
    {
        // One record per situation key (or enforcement record id), the latest kept; deleted
        // with the camera events they were made from.
        vec![
            ("cleanup.policy", "compact,delete".into()),
            ("retention.ms", ms(t.personal_retention)),
        ]
    } else if topic == t.incidents || topic == t.assignments {
        vec![
            ("cleanup.policy", "compact".into()),
            ("retention.ms", "-1".into()),
        ]
    } else if topic == t.commands || topic == t.command_results {
        // Working messages between dashboards, read within seconds.
        vec![
            ("cleanup.policy", "delete".into()),
            ("retention.ms", "86400000".into()),
        ]
    } else if topic == t.dead_letter {
        vec![
            ("cleanup.policy", "delete".into()),
            ("retention.ms", ms(t.dead_letter_retention)),
        ]
    } else {
        vec![
            ("cleanup.policy", "delete".into()),
            ("retention.ms", ms(t.personal_retention)),
        ]
    }
}

/// Creates the pipeline's topics if they are missing (already existing ones are fine), each
/// with the settings of its role ([`topic_settings`]).
pub async fn ensure_topics(config: &Config) -> Result<(), KafkaError> {
    let admin: AdminClient<_> = client_config(config).create()?;
    let t = &config.topics;
    let names = t.all();
    let settings: Vec<_> = names.iter().map(|n| topic_settings(config, n)).collect();
    let new: Vec<_> = names
        .iter()
        .zip(&settings)
        .map(|(n, s)| {
            s.iter().fold(
                NewTopic::new(
                    n,
                    t.partitions,
                    TopicReplication::Fixed(t.replication_factor),
                ),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(topic = %name, %code, "cannot create topic");
                })
            }
        }
    }
    Ok(())
}

/// Checks that the topics that must keep the truth (incidents, assignments) do not delete it by
/// age: refused when the broker reports `cleanup.policy` without `compact` and a finite
/// `retention.ms`. A broker that does not report the settings (or cannot be asked) is trusted,
/// with a warning logged.
pub async fn check_topic_policies(config: &Config) -> Result<(), String> {
    let admin: AdminClient<_> = client_config(config)
        .create()
        .map_err(|e| format!("cannot create an admin client: {e}"))?;
    let t = &config.topics;
    let keep = [t.incidents.as_str(), t.assignments.as_str()];
    let specs: Vec<_> = keep.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
    let described = match admin.describe_configs(&specs, &opts).await {
        Ok(d) => d,
        Err(e) => {
            // Not every broker offers DescribeConfigs (the embedded one does not), and an ACL may
            // deny it: then the policy cannot be checked, which is no reason to refuse to run.
            tracing::warn!(
                "cannot read the topics' settings ({e}); their retention is not checked"
            );
            return Ok(());
        }
    };
    let mut problems = Vec::new();
    for (name, result) in keep.iter().zip(described) {
        let Ok(resource) = result else {
            tracing::warn!(topic = %name, "the broker did not report this topic's settings; cannot check its retention");
            continue;
        };
        let get = |key: &str| {
            resource
                .entries
                .iter()
                .find(|e| e.name == key)
                .and_then(|e| e.value.clone())
        };
        match (get("cleanup.policy"), get("retention.ms")) {
            (None, _) => {
                tracing::warn!(topic = %name, "the broker does not report cleanup.policy; cannot check that it keeps every incident");
            }
            (Some(policy), retention) => {
                let compacted = policy.split(',').any(|p| p.trim() == "compact");
                let deletes = policy.split(',').any(|p| p.trim() == "delete");
                let forever = retention.as_deref() == Some("-1");
                if !compacted || (deletes && !forever) {
                    problems.push(format!(
                        "topic {name} has cleanup.policy={policy} and retention.ms={}: it would delete incidents by age, and a restarted dashboard would lose them. Set cleanup.policy=compact (and retention.ms=-1) on it.",
                        retention.unwrap_or_else(|| "?".into())
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::FutureProducer;

    /// A producer for a secured cluster can be made only when librdkafka was built with TLS
    /// (without it: "OpenSSL not available at build time"); SCRAM comes with it.
    #[test]
    fn clients_for_a_secured_cluster_can_be_built() {
        for (protocol, mechanism) in [
            ("SSL", None),
            ("SASL_SSL", Some("PLAIN")),
            ("SASL_SSL", Some("SCRAM-SHA-256")),
            ("SASL_SSL", Some("SCRAM-SHA-512")),
        ] {
            let mut config = crate::load::Settings::load(None, std::iter::empty())
                .expect("defaults load")
                .config;
            config.kafka.brokers = "127.0.0.1:1".into();
            let options = &mut config.kafka.options;
            options.insert("security.protocol".into(), protocol.into());
            if let Some(m) = mechanism {
                options.insert("sasl.mechanisms".into(), m.into());
                options.insert("sasl.username".into(), "ioc".into());
                options.insert("sasl.password".into(), "secret".into());
            }
            let made: Result<FutureProducer, _> = producer_config(&config).create();
            assert!(made.is_ok(), "{protocol} {mechanism:?}: {:?}", made.err());
        }
    }

    /// The group's session may be set in `[kafka.options]` (a longer one for static members);
    /// the poll interval then follows it where librdkafka would refuse a shorter one, and the
    /// consumer can be made.
    #[test]
    fn a_longer_session_from_the_options_is_kept_and_the_poll_interval_follows() {
        let mut config = crate::load::Settings::load(None, std::iter::empty())
            .expect("defaults load")
            .config;
        config.kafka.brokers = "127.0.0.1:1".into();
        let cc = consumer_config(&config, "g");
        assert_eq!(cc.get("session.timeout.ms"), Some("10000"));
        assert_eq!(cc.get("max.poll.interval.ms"), Some("30000"));
        config
            .kafka
            .options
            .insert("session.timeout.ms".into(), "45000".into());
        let cc = consumer_config(&config, "g");
        assert_eq!(cc.get("session.timeout.ms"), Some("45000"));
        assert_eq!(cc.get("max.poll.interval.ms"), Some("45000"));
        let made: Result<rdkafka::consumer::BaseConsumer, _> = cc.create();
        assert!(made.is_ok(), "{:?}", made.err());
    }

    /// Idempotence turned off the ways librdkafka reads "false" stays off, with one request in
    /// flight; anything else gets the idempotent producer.
    #[test]
    fn idempotence_is_off_only_when_the_options_say_so() {
        for (value, off) in [
            ("false", true),
            ("False", true),
            ("0", true),
            ("f", true),
            ("true", false),
            ("no", false),
        ] {
            let mut config = crate::load::Settings::load(None, std::iter::empty())
                .expect("defaults load")
                .config;
            config
                .kafka
                .options
                .insert("enable.idempotence".into(), value.into());
            let cc = producer_config(&config);
            let in_flight = cc.get("max.in.flight.requests.per.connection");
            if off {
                assert_eq!(cc.get("enable.idempotence"), Some(value), "{value}");
                assert_eq!(in_flight, Some("1"), "{value}");
            } else {
                assert_eq!(cc.get("enable.idempotence"), Some("true"), "{value}");
                assert_eq!(in_flight, None, "{value}");
            }
        }
    }
}
