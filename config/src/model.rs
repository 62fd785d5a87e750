//! Configuration structs. Every field has a default in `config/ioc.toml` (embedded), so a file
//! only needs the fields it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// A duration written the human way: `"500ms"`, `"30s"`, `"4h"`, `"3days"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "'{s}' is not a duration ({e}); write e.g. \"30s\" or \"4h\""
            ))
        })
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub topics: TopicsConfig,
    pub ingest: IngestConfig,
    pub router: RouterConfig,
    pub dashboard: DashboardConfig,
    /// Ward boundary sets, each valid for a period; events are judged by the set in force at
    /// their own time.
    pub boundaries: Vec<BoundarySetConfig>,
    /// Incident categories: what citizens may report and what camera event types map to.
    pub categories: Vec<CategoryConfig>,
    /// CSV file of cameras (`id,lat,lon,description`); `embedded:` or a path.
    pub camera_registry: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list, or `embedded` for librdkafka's in-process mock cluster
    /// (only `ioc demo` can start that one).
    pub brokers: String,
    /// How long a produce may wait for the broker's acknowledgement before the caller is told
    /// the event was not accepted.
    pub produce_timeout: Dur,
    /// Raw librdkafka options passed to every client (e.g. `security.protocol`, `sasl.*`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// Citizen reports accepted by ingest; key: tracking id.
    pub reports: String,
    /// Camera events (from ingest or straight from camera systems); key: camera id.
    pub camera_events: String,
    /// Incident changes, the public view; key: incident id, so one incident's updates stay in order.
    pub incidents: String,
    /// Inputs the router could not use, with the reason and the original bytes.
    pub dead_letter: String,
    /// Partitions for topics this program creates; router instances can scale up to this many.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Create missing topics at start (needs the broker's CreateTopics API).
    pub create: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Address of the ingest HTTP API.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most camera events in one `POST /v1/camera-events` batch.
    pub max_batch: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Consumer group shared by every router instance.
    pub group_id: String,
    /// Address of the router's `/metrics` and `/healthz` endpoint.
    pub listen: String,
    /// Points within this distance of a ward edge are "on the boundary" (metres).
    pub boundary_tolerance_m: f64,
    /// Points outside every ward go to the nearest ward within this distance (metres); 0 disables.
    pub nearest_max_m: f64,
    /// Most produced-but-unacknowledged incidents per router before it pauses consuming.
    pub max_in_flight: usize,
    /// How often to check boundary files for changes (new sets are picked up without a restart).
    pub reload_interval: Dur,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Address of the dashboard HTTP API and map page.
    pub listen: String,
    /// Prefix of the dashboard's consumer group; each instance adds a unique suffix because every
    /// instance reads the whole incident topic from the beginning.
    pub group_prefix: String,
    /// Largest page size for `GET /v1/incidents`.
    pub max_page_size: usize,
    /// Who may read the dashboard. Tokens are stored as SHA-256 hex digests, never in clear.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One access token of the dashboard API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in logs), e.g. "IOC operators" or "Phường An Bình traffic team".
    pub name: String,
    /// SHA-256 of the token, lowercase hex (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
    pub role: Role,
    /// For ward units: the ward id they may see.
    #[serde(default)]
    pub ward: Option<String>,
}

/// What a token may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// IOC operators: every ward.
    Operator,
    /// A ward's unit: its own ward only.
    Ward,
}

/// One set of ward boundaries and the period it is in force.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundarySetConfig {
    /// Recorded on every incident judged by this set.
    pub version: String,
    /// GeoJSON FeatureCollection; `embedded:` or a path (relative to the config file).
    pub file: String,
    /// Feature property holding the ward id.
    pub id_property: String,
    /// Feature property holding the ward name (defaults to the id).
    #[serde(default)]
    pub name_property: Option<String>,
    /// First instant the set is in force.
    pub valid_from: DateTime<Utc>,
    /// First instant it no longer is (open-ended when absent).
    #[serde(default)]
    pub valid_to: Option<DateTime<Utc>>,
}

/// A kind of incident, who handles it and how fast.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    /// Machine id used in reports, e.g. `traffic_order`.
    pub id: String,
    /// Name shown to people.
    pub name: String,
    /// Specialist unit of the ward responsible for this category.
    pub unit: String,
    /// Service level: time from the event to resolution.
    pub resolve_within: Dur,
    /// Camera event types that become incidents of this category.
    #[serde(default)]
    pub camera_event_types: Vec<String>,
}

/// One camera from the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub description: String,
}
