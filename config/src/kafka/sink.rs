//! Writing a record and waiting for the broker's acknowledgement: the one produce path of every
//! stage, measured in `ioc_kafka_produce_seconds{stage}`, with errors that say whether a retry
//! can help.

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
}

impl SinkError {
    /// Whether sending the same record again may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, SinkError::Unavailable(_))
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

/// A producer of one stage that waits for acknowledgements.
#[derive(Clone)]
pub struct Sink {
    producer: FutureProducer,
    timeout: Duration,
    metrics: Metrics,
    stage: &'static str,
}

impl Sink {
    /// An idempotent, `acks=all` producer (see [`super::producer_config`]).
    pub fn new(config: &Config, metrics: Metrics, stage: &'static str) -> Result<Sink, KafkaError> {
        Ok(Sink {
            producer: super::producer_config(config).create()?,
            timeout: config.kafka.produce_timeout.0,
            metrics,
            stage,
        })
    }

    /// Writes one record and waits for the broker's acknowledgement (at most
    /// `kafka.produce_timeout`).
    pub async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> Result<(), SinkError> {
        let started = Instant::now();
        let record = FutureRecord::to(topic).key(key).payload(payload);
        self.producer
            .send(record, Timeout::After(self.timeout))
            .await
            .map_err(|(e, _)| SinkError::classify(&e))?;
        self.metrics
            .produce_seconds
            .with_label_values(&[self.stage])
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Whether the brokers answer a metadata request within two seconds (for readiness).
    pub async fn reachable(&self) -> Result<(), String> {
        use rdkafka::producer::Producer as _;
        let producer = self.producer.clone();
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
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.send(topic, key, payload).await {
                Ok(()) => return,
                Err(e) if e.retryable() => {
                    tracing::warn!(stage = self.stage, %topic, "{e}; retrying in {backoff:?}");
                }
                Err(e) => {
                    tracing::error!(stage = self.stage, %topic, "{e}; retrying in {backoff:?}, but this needs an operator");
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
}
