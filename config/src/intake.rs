//! Filing a citizen's report: validated, written to the reports topic, and answered only once
//! the broker has acknowledged it. Ingest's `POST /v1/reports` and the dashboard's Open311
//! endpoint both file through here, so both keep the same rules and the same promise.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use ioc_schema::metrics::Metrics;
use ioc_schema::validate::{check_report, InvalidInput};
use ioc_schema::{ids, Report, ReportSubmission, REPORT_SCHEMA};
use rdkafka::error::KafkaError;

use crate::kafka::{Sink, SinkError};
use crate::load::Settings;

/// Idempotency keys remembered, so a resubmission is answered without writing again.
const REMEMBERED_KEYS: usize = 100_000;

/// Files reports for one stage.
#[derive(Clone)]
pub struct Intake {
    settings: Arc<Settings>,
    sink: Sink,
    metrics: Metrics,
    stage: &'static str,
    seen_keys: Arc<Mutex<KeyMemory>>,
}

/// Recently accepted idempotency keys (scoped by client), each with the tracking id it got and
/// a digest of the report it came with; oldest forgotten first. Forgetting (or a resend reaching
/// another instance, whose memory this is not) is safe: the tracking id is derived from the
/// scope, the key and the content, so the report is written again under the same id, and the
/// router routes an id once (`ioc_router::resends`).
#[derive(Default)]
struct KeyMemory {
    ids: HashMap<String, (String, String)>,
    order: VecDeque<String>,
}

impl KeyMemory {
    fn get(&self, key: &str) -> Option<(String, String)> {
        self.ids.get(key).cloned()
    }

    fn remember(&mut self, key: String, id: String, digest: String) {
        if self.ids.insert(key.clone(), (id, digest)).is_none() {
            self.order.push_back(key);
            if self.order.len() > REMEMBERED_KEYS {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }
}

/// A digest of what a report says (everything but the idempotency key), to tell a retry from a
/// different report sent with a reused key.
fn content_digest(sub: &ReportSubmission) -> String {
    let mut content = sub.clone();
    content.idempotency_key = None;
    crate::load::token_digest(&serde_json::to_string(&content).expect("a report serializes"))
}

/// A report that is durably in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub tracking_id: String,
    /// Whether an earlier submission with the same idempotency key was answered instead.
    pub duplicate: bool,
}

/// Why a report was not filed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The report breaks a rule; resending it unchanged cannot help.
    #[error("{0}")]
    Invalid(InvalidInput),
    /// Kafka did not take it (the error says whether a retry can help).
    #[error("{0}")]
    Store(SinkError),
}

impl Intake {
    /// Checks filing against `settings` and writes to its reports topic; counted as `stage`.
    pub fn new(
        settings: Arc<Settings>,
        metrics: Metrics,
        stage: &'static str,
    ) -> Result<Intake, KafkaError> {
        Ok(Intake {
            sink: Sink::new(&settings.config, metrics.clone(), stage)?,
            settings,
            metrics,
            stage,
            seen_keys: Arc::default(),
        })
    }

    /// The producer, for other records of the same stage (camera events).
    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    /// Validates a citizen's report and writes it to the reports topic, returning once the
    /// broker has acknowledged it. Every way in (`POST /v1/reports`, Open311) goes through here.
    /// `client` scopes idempotency keys (an Open311 client's key name, or the app channel): the
    /// same key from another client is another report. The same key with a different report is
    /// refused (`idempotency_key_reused`), as payment APIs do, rather than answered with the
    /// first report's tracking id.
    pub async fn file_report(
        &self,
        sub: ReportSubmission,
        client: &str,
    ) -> Result<Filed, FileError> {
        let s = self;
        let now = Utc::now();
        check_report(
            &sub,
            |c| s.settings.category(c).is_some(),
            now,
            &s.settings.time_window(),
        )
        .map_err(FileError::Invalid)?;
        let digest = content_digest(&sub);
        let scoped_key = sub
            .idempotency_key
            .as_ref()
            .map(|k| format!("{client}\u{0}{k}"));
        if let Some(key) = &scoped_key {
            if let Some((id, seen)) = s.seen_keys.lock().expect("key memory").get(key) {
                if seen != digest {
                    return Err(FileError::Invalid(InvalidInput::new(
                        "idempotency_key_reused",
                        "This idempotency_key was already used for a different report; use a new key for a new report, or resend the first report unchanged.",
                    )));
                }
                return Ok(Filed {
                    tracking_id: id,
                    duplicate: true,
                });
            }
        }
        let tracking_id = match &sub.idempotency_key {
            Some(key) => ids::report_id_for_key(client, key, &digest),
            None => ids::new_report_id(),
        };
        let report = Report {
            schema: REPORT_SCHEMA.to_string(),
            tracking_id: tracking_id.clone(),
            channel: sub.channel,
            category: sub.category,
            text: sub.text,
            location: sub.location,
            address: sub.address,
            photo_urls: sub.photo_urls,
            reporter: sub.reporter,
            // Most intake APIs take the time of receipt when the client gives none.
            submitted_at: sub.submitted_at.unwrap_or(now),
            received_at: now,
        };
        let payload = serde_json::to_vec(&report).expect("report serializes");
        s.sink
            .send(&s.settings.config.topics.reports, &tracking_id, &payload)
            .await
            .map_err(FileError::Store)?;
        if let Some(key) = scoped_key {
            s.seen_keys
                .lock()
                .expect("key memory")
                .remember(key, tracking_id.clone(), digest);
        }
        s.metrics
            .events_out
            .with_label_values(&[s.stage, "report"])
            .inc();
        Ok(Filed {
            tracking_id,
            duplicate: false,
        })
    }
}
