//! Frigate's events from its MQTT broker: ingest subscribes as a client to `frigate/events` and
//! takes each message through the same path as `POST /v1/camera-events/frigate`. The session is
//! persistent and the subscription QoS 1 with manual acknowledgements, so a message is
//! acknowledged to the broker only once Kafka has what it became (or, when it is unusable, its
//! dead letter); a message ingest could not finish before a crash is delivered again, and the
//! event ids derived from the message make the repeat harmless.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use chrono::Utc;
use ioc_config::supervise::CancellationToken;
use ioc_config::FrigateMqttConfig;
use ioc_schema::camera::{Format, ReadOptions};
use ioc_schema::{DeadLetter, DEAD_LETTER_SCHEMA};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

use crate::{accept_vendor, AppError, AppState};

/// Follows the broker until `stop`; reconnects by itself while the broker is away.
pub async fn follow_frigate(
    s: AppState,
    cfg: FrigateMqttConfig,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (host, port) = cfg.host_port().map_err(anyhow::Error::msg)?;
    let mut opts = MqttOptions::new(cfg.client_id.clone(), host.clone(), port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_manual_acks(true);
    opts.set_clean_session(false);
    if let Some(user) = &cfg.username {
        opts.set_credentials(user.clone(), cfg.password.clone().unwrap_or_default());
    }
    if cfg.tls() {
        let tls = match &cfg.ca_file {
            Some(path) => TlsConfiguration::SimpleNative {
                ca: std::fs::read(path).with_context(|| {
                    format!("reading ingest.frigate_mqtt.ca_file {path}: give the PEM file of the broker's certificate authority")
                })?,
                client_auth: None,
            },
            None => TlsConfiguration::Native,
        };
        opts.set_transport(Transport::tls_with_config(tls));
    }
    let (client, mut events) = AsyncClient::new(opts, 64);
    tracing::info!(%host, port, tls = cfg.tls(), topic = %cfg.topic, reviews = %cfg.review_topic, "ingest: following Frigate's MQTT events");
    let mut warned = false;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => {
                let _ = client.try_disconnect();
                return Ok(());
            }
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                warned = false;
                // Also after a reconnect: a broker that lost the session forgot it.
                client
                    .try_subscribe(cfg.topic.clone(), QoS::AtLeastOnce)
                    .context("subscribing to Frigate's events")?;
                if !cfg.review_topic.is_empty() {
                    client
                        .try_subscribe(cfg.review_topic.clone(), QoS::AtLeastOnce)
                        .context("subscribing to Frigate's reviews")?;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let handled = handle(&s, &p.topic, &p.payload, &stop).await;
                if handled {
                    client
                        .try_ack(&p)
                        .context("acknowledging an MQTT message")?;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if !warned {
                    tracing::warn!(%host, port, "ingest: Frigate's MQTT broker: {e}; reconnecting");
                    warned = true;
                }
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Takes one message to Kafka (or its dead letter), retrying while Kafka is away; false only
/// when stopped first.
async fn handle(s: &AppState, topic: &str, payload: &[u8], stop: &CancellationToken) -> bool {
    let opts = ReadOptions {
        content_type: Some("application/json"),
        device: None,
        local_offset: s.settings.camera_local_offset(),
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        let refusal = match accept_vendor(s, Format::Frigate, payload, &opts, None).await {
            Ok(_) => return true,
            Err(AppError::Store(e)) if e.retryable() => {
                tracing::warn!("ingest: Frigate's message not stored yet: {e}; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(AppError::Invalid(_, e)) => (e.code.to_string(), e.message),
            Err(AppError::InvalidBatch(items)) => (
                items[0].1.code.to_string(),
                items
                    .iter()
                    .map(|(i, e)| format!("detection {i}: {}", e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(AppError::Store(e)) => ("refused".to_string(), e.to_string()),
            Err(AppError::Unauthorized(code, message, _)) => (code.to_string(), message),
        };
        // An unusable message must not come back for ever: its dead letter says why.
        let dl = DeadLetter {
            schema: DEAD_LETTER_SCHEMA.to_string(),
            reason: refusal.0,
            detail: refusal.1,
            source_topic: format!("mqtt:{topic}"),
            source_partition: -1,
            source_offset: -1,
            original_base64: base64::engine::general_purpose::STANDARD.encode(payload),
            failed_at: Utc::now(),
        };
        let bytes = serde_json::to_vec(&dl).expect("a dead letter serializes");
        let code = refusal_code(&dl.reason);
        let dead_letters = &s.settings.config.topics.dead_letter;
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = s.intake.sink().send_until_acknowledged(dead_letters, &dl.source_topic, &bytes) => {}
        }
        s.metrics.dead_lettered.with_label_values(&[code]).inc();
        tracing::warn!(
            reason = code,
            "ingest: dead-lettered a Frigate MQTT message: {}",
            dl.detail
        );
        return true;
    }
}

/// A refusal's code as a metric label: one of the codes this program makes, never a sender's
/// text.
fn refusal_code(code: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "unreadable_payload",
        "missing_field",
        "invalid_field",
        "invalid_time",
        "unknown_device",
        "unknown_camera",
        "unknown_event_type",
        "invalid_batch_size",
    ];
    KNOWN
        .iter()
        .find(|k| **k == code)
        .copied()
        .unwrap_or("refused")
}
