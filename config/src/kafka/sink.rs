//! Writing a record and waiting for the broker's acknowledgement: the one produce path of every
//! stage, measured in `ioc_kafka_produce_seconds{stage}`, with errors that say whether a retry
//! can help.
//!
//! Requests that write (a citizen's report, a camera event, an operator's action) pass an
//! admission gate first, so more load than the broker takes is answered at once instead of
//! queueing without bound: at most `kafka.max_pending` writes of a stage wait for
//! acknowledgements, and while the broker is not acknowledging, one write at a time probes it
//! and the others are refused without waiting. Memory stays bounded by the gate, and a client
//! learns within milliseconds that it should come back later.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ioc_schema::metrics::Metrics;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use crate::model::Config;

/// Why a record was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The broker is away or slow; the same record may be sent again later.
    #[error("the broker did not acknowledge the record: {0}")]
    Unavailable(String),
    /// The record is larger than the broker or topic accepts; resending cannot help.
    #[error("the record is too large for the broker: {0}")]
    TooLarge(String),
    /// The broker refused it for good (authorization, a bad topic); resending cannot help.
    #[error("the broker refused the record: {0}")]
    Refused(String),
    /// Not sent: too many writes are waiting for the broker, or the broker is not acknowledging
    /// and another write is probing it. Sending again in a moment may succeed.
    #[error("not sent: {0}")]
    Busy(&'static str),
}

impl SinkError {
    /// Whether sending the same record again may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, SinkError::Unavailable(_) | SinkError::Busy(_))
    }

    /// Sorts librdkafka's errors by what the caller can do about them.
    pub fn classify(e: &KafkaError) -> SinkError {
        use RDKafkaErrorCode as C;
        let detail = e.to_string();
        match e.rdkafka_error_code() {
            Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge) => {
                SinkError::TooLarge(detail)
            }
            Some(
                C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidTopic
                | C::InvalidMessage
                | C::InvalidRecord
                | C::UnsupportedForMessageFormat
                | C::SaslAuthenticationFailed
                | C::Authentication,
            ) => SinkError::Refused(detail),
            _ => SinkError::Unavailable(detail),
        }
    }
}

/// A producer of one stage that waits for acknowledgements. Cheap to clone (one shared
/// producer), as every pending write holds one.
#[derive(Clone)]
pub struct Sink(Arc<Inner>);

struct Inner {
    producer: FutureProducer,
    timeout: Duration,
    metrics: Metrics,
    /// `ioc_kafka_produce_seconds{stage}`, looked up once rather than at every write.
    produce_seconds: prometheus::Histogram,
    stage: &'static str,
    gate: Gate,
}

/// The admission gate of a stage's request writes.
struct Gate {
    /// Writes that may wait for acknowledgements at once.
    pending: Arc<tokio::sync::Semaphore>,
    /// The broker is not acknowledging: the last write that ended, ended unacknowledged.
    away: AtomicBool,
    /// While away, the one write that may try.
    probe: Arc<tokio::sync::Semaphore>,
}

/// What a write holds while it waits for the broker.
struct Admitted {
    _pending: tokio::sync::OwnedSemaphorePermit,
    _probe: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Gate {
    fn new(max_pending: usize) -> Gate {
        Gate {
            pending: Arc::new(tokio::sync::Semaphore::new(max_pending)),
            away: AtomicBool::new(false),
            probe: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    fn admit(&self) -> Result<Admitted, SinkError> {
        let probe = if self.away.load(Ordering::Acquire) {
            let permit = self.probe.clone().try_acquire_owned().map_err(|_| {
                SinkError::Busy("the event store is not acknowledging writes; another write is checking whether it is back")
            })?;
            Some(permit)
        } else {
            None
        };
        let pending = self.pending.clone().try_acquire_owned().map_err(|_| {
            SinkError::Busy("too many writes are waiting for the event store's acknowledgement")
        })?;
        Ok(Admitted {
            _pending: pending,
            _probe: probe,
        })
    }

    fn outcome(&self, result: &Result<(), SinkError>) {
        match result {
            Ok(()) => self.away.store(false, Ordering::Release),
            Err(SinkError::Unavailable(_)) => self.away.store(true, Ordering::Release),
            Err(_) => {}
        }
    }
}

impl Sink {
    /// An idempotent, `acks=all` producer (see [`super::producer_config`]).
    pub fn new(config: &Config, metrics: Metrics, stage: &'static str) -> Result<Sink, KafkaError> {
        Ok(Sink(Arc::new(Inner {
            producer: super::producer_config(config).create()?,
            timeout: config.kafka.produce_timeout.0,
            produce_seconds: metrics.produce_seconds.with_label_values(&[stage]),
            metrics,
            stage,
            gate: Gate::new(config.kafka.max_pending),
        })))
    }

    /// Writes one record for a request and waits for the broker's acknowledgement (at most
    /// `kafka.produce_timeout`). Refused at once with [`SinkError::Busy`] when the admission
    /// gate is full or the broker is away and another write is probing it.
    pub async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> Result<(), SinkError> {
        let admitted = match self.0.gate.admit() {
            Ok(a) => a,
            Err(e) => {
                self.0
                    .metrics
                    .produce_refusals
                    .with_label_values(&[self.0.stage])
                    .inc();
                return Err(e);
            }
        };
        let result = self.write(topic, None, key, payload).await;
        self.0.gate.outcome(&result);
        drop(admitted);
        result
    }

    /// Writes one record, without the admission gate.
    async fn write(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        payload: &[u8],
    ) -> Result<(), SinkError> {
        let started = Instant::now();
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        self.0
            .producer
            .send(record, Timeout::After(self.0.timeout))
            .await
            .map_err(|(e, _)| SinkError::classify(&e))?;
        self.0
            .produce_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Whether the brokers answer a metadata request within two seconds (for readiness).
    pub async fn reachable(&self) -> Result<(), String> {
        use rdkafka::producer::Producer as _;
        let producer = self.0.producer.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|_| ())
                .map_err(|e| format!("the Kafka brokers do not answer: {e}"))
        })
        .await
        .map_err(|e| format!("the broker check failed: {e}"))?
    }

    /// Writes until the broker acknowledges. A pipeline stage never skips an input: while the
    /// broker is away it retries with backoff (and its consumer stops taking new input once
    /// enough outputs are pending). A record the broker refuses for good is retried too, slowly,
    /// and logged as an error, because dropping it would lose an accepted event; an operator
    /// has to fix the cluster or the topic.
    pub async fn send_until_acknowledged(&self, topic: &str, key: &str, payload: &[u8]) {
        self.send_to_partition_until_acknowledged(topic, None, key, payload)
            .await
    }

    /// Like [`Sink::send_until_acknowledged`], to a chosen partition (`None`: by key).
    pub async fn send_to_partition_until_acknowledged(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        payload: &[u8],
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.write(topic, partition, key, payload).await {
                Ok(()) => return,
                Err(e) if e.retryable() => {
                    tracing::warn!(stage = self.0.stage, %topic, "{e}; retrying in {backoff:?}");
                }
                Err(e) => {
                    tracing::error!(stage = self.0.stage, %topic, "{e}; retrying in {backoff:?}, but this needs an operator");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_of_an_absent_broker_are_worth_a_retry() {
        let production = |c| KafkaError::MessageProduction(c);
        assert!(SinkError::classify(&production(RDKafkaErrorCode::MessageTimedOut)).retryable());
        assert!(SinkError::classify(&production(RDKafkaErrorCode::AllBrokersDown)).retryable());
        assert!(SinkError::classify(&production(RDKafkaErrorCode::QueueFull)).retryable());
        assert!(matches!(
            SinkError::classify(&production(RDKafkaErrorCode::MessageSizeTooLarge)),
            SinkError::TooLarge(_)
        ));
        assert!(
            !SinkError::classify(&production(RDKafkaErrorCode::TopicAuthorizationFailed))
                .retryable()
        );
    }

    #[test]
    fn the_gate_admits_up_to_its_bound_and_one_probe_while_the_broker_is_away() {
        let gate = Gate::new(2);
        let a = gate.admit().expect("first");
        let b = gate.admit().expect("second");
        assert!(matches!(gate.admit(), Err(SinkError::Busy(_))));
        drop(a);
        let c = gate.admit().expect("a freed place is taken again");
        drop((b, c));

        gate.outcome(&Err(SinkError::Unavailable("timed out".into())));
        let probe = gate.admit().expect("one write probes");
        assert!(matches!(gate.admit(), Err(SinkError::Busy(_))));
        // A refusal for good says nothing about the broker being away.
        gate.outcome(&Err(SinkError::Refused("denied".into())));
        assert!(matches!(gate.admit(), Err(SinkError::Busy(_))));
        drop(probe);
        let probe = gate.admit().expect("the next write probes");
        gate.outcome(&Ok(()));
        drop(probe);
        let both = (gate.admit().expect("open"), gate.admit().expect("open"));
        drop(both);
    }
}
