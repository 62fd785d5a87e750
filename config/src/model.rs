//! Configuration structs. Every field has a default in `config/ioc.toml` (embedded), so a file
//! only needs the fields it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ioc_schema::sla::{CategoryTargets, Priority, Targets};
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

impl Dur {
    /// As a calendar duration; saturates at the largest one for absurdly long settings.
    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
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
    /// Camera systems posting in their vendors' formats: which device is which camera, and
    /// which vendor event is which ioc event type.
    pub camera_formats: CameraFormatsConfig,
    /// The Open311 GeoReport v2 endpoint for existing 311 apps.
    pub open311: Open311Config,
    /// Request limits on the public endpoints (reports, Open311 filing, confirm and dispute).
    pub limits: LimitsConfig,
}

/// Camera systems in their vendors' formats (`POST /v1/camera-events/{format}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraFormatsConfig {
    /// CSV with a header `format,device,channel,camera_id`: which vendor device (and channel;
    /// empty for every channel) is which camera of the registry. `embedded:` or a path.
    pub devices: String,
    /// UTC offset (`+07:00`) of device clocks that write local time without saying so:
    /// Hikvision times without an offset, Dahua's `UTC` field.
    pub local_utc_offset: String,
    /// Largest image part kept from a multipart message, in bytes; larger ones are left out.
    pub max_image_bytes: usize,
    /// Per format, the vendor's event names and the ioc event types they are. Vendor events
    /// not listed are answered as ignored, not refused: devices send many kinds (motion,
    /// heartbeats) that are nobody's incident.
    pub event_types: BTreeMap<String, BTreeMap<String, String>>,
}

/// Limits per client and per API key; a refused request gets `429` with `Retry-After`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests a minute one client address may make on average (0: no limit).
    pub per_client_per_minute: u32,
    /// How many it may make at once.
    pub per_client_burst: u32,
    /// Requests a minute one API key (an Open311 client) may make on average (0: no limit).
    pub per_key_per_minute: u32,
    pub per_key_burst: u32,
    /// Take the client's address from the first `X-Forwarded-For` entry: only behind a proxy
    /// that sets it, or clients could pick their own.
    pub trust_forwarded_for: bool,
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
    /// Most writes of one stage that may wait for the broker's acknowledgement at once; a
    /// request beyond that is answered 503 at once, so load the broker cannot take does not
    /// queue without bound.
    pub max_pending: usize,
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
    /// Every incident change that concerns a ward (assigned, updated, or taken away); key: ward
    /// id, so a ward's own systems can follow just their ward.
    pub assignments: String,
    /// Lifecycle commands to the dashboards (key: incident id): each is applied by the one
    /// dashboard instance that owns its partition in a consumer group, so two never build on
    /// the same revision. Empty: the incident topic's name with `.commands`.
    #[serde(default)]
    pub commands: String,
    /// What became of each command, for the instance that took the request (key: that
    /// instance). Empty: the incident topic's name with `.command-results`.
    #[serde(default)]
    pub command_results: String,
    /// The routers' camera situations (key: situation key; partition: that of the camera
    /// events they were made from): the state routers rebuild from after a crash or a
    /// rebalance, and what each situation looks like now. Empty: the camera topic's name with
    /// `.situations`.
    #[serde(default)]
    pub situations: String,
    /// NVIDIA DeepStream's own topic (what `nvmsgbroker` publishes to), read by the routers;
    /// empty: none. Set the broker adapter's `partition-key` to `sensor.id`, so all of a
    /// camera's messages are in one partition.
    #[serde(default)]
    pub deepstream: String,
    /// The camera situations made from the DeepStream topic (as `situations` for the camera
    /// topic). Empty: the DeepStream topic's name with `.situations`.
    #[serde(default)]
    pub deepstream_situations: String,
    /// Enforcement records (camera event types whose disposition is `record`; key: record
    /// id). They carry plates, so they are deleted by age. Empty: the incident topic's name
    /// with `.violations`.
    #[serde(default)]
    pub violations: String,
    /// Partitions for topics this program creates; router instances can scale up to this many.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Create missing topics at start (needs the broker's CreateTopics API).
    pub create: bool,
    /// How long reports and camera events are kept: they carry personal data (contacts,
    /// plates), so they are deleted by age. Incidents and assignments are compacted instead and
    /// never deleted by age: the incident topic is the source of truth dashboards rebuild from.
    pub personal_retention: Dur,
    /// How long dead letters are kept for someone to look at.
    pub dead_letter_retention: Dur,
}

impl TopicsConfig {
    /// Every topic the pipeline uses.
    pub fn all(&self) -> Vec<&str> {
        let mut all = vec![
            self.situations.as_str(),
            &self.reports,
            &self.camera_events,
            &self.incidents,
            &self.dead_letter,
            &self.assignments,
            &self.commands,
            &self.command_results,
            &self.violations,
        ];
        if !self.deepstream.is_empty() {
            all.extend([self.deepstream.as_str(), &self.deepstream_situations]);
        }
        all
    }

    /// Fills the names left empty from the incident topic's.
    pub(crate) fn derive_names(&mut self) {
        if self.situations.is_empty() {
            self.situations = format!("{}.situations", self.camera_events);
        }
        if self.deepstream_situations.is_empty() && !self.deepstream.is_empty() {
            self.deepstream_situations = format!("{}.situations", self.deepstream);
        }
        if self.violations.is_empty() {
            self.violations = format!("{}.violations", self.incidents);
        }
        if self.commands.is_empty() {
            self.commands = format!("{}.commands", self.incidents);
        }
        if self.command_results.is_empty() {
            self.command_results = format!("{}.command-results", self.incidents);
        }
    }
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
    /// How old an event's own time (`submitted_at`, `detected_at`) may be when it reaches us;
    /// older ones are refused with `invalid_time` (a broken clock or a forged record).
    pub max_event_age: Dur,
    /// How far ahead of the server's clock an event's own time may be.
    pub max_clock_skew: Dur,
    /// Camera systems allowed to post camera events (`Authorization: Bearer <key>` or
    /// `X-Api-Key: <key>`). Without any, camera intake over HTTP refuses everything.
    #[serde(default)]
    pub camera_keys: Vec<CameraKeyConfig>,
    /// The secret that seals HTTP digest nonces. Ingest instances behind one address need the
    /// same one (a device may answer a challenge at another instance); without it each process
    /// makes up its own.
    #[serde(default)]
    pub digest_secret: Option<String>,
    /// Frigate's events from its MQTT broker.
    pub frigate_mqtt: FrigateMqttConfig,
}

/// Ingest as an MQTT client of Frigate's broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrigateMqttConfig {
    /// `mqtt://host:port` (1883 by default) or `mqtts://host:port` (TLS, 8883 by default) of
    /// the broker Frigate publishes to; empty: off.
    pub url: String,
    /// The topic of Frigate's event messages (`<topic_prefix>/events`).
    pub topic: String,
    /// The topic of Frigate's review items (`<topic_prefix>/reviews`), one per activity that
    /// Frigate groups itself; empty: not followed. A review and the events of its objects are
    /// separate situations, so map either the objects' events or the reviews of a camera's
    /// labels in `[camera_formats.event_types.frigate]`, not both.
    #[serde(default)]
    pub review_topic: String,
    /// This client's id; the broker keeps its session (and unacknowledged messages) under it,
    /// so give each ingest instance its own.
    pub client_id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// For `mqtts://`: a PEM file with the certificate authority that signed the broker's
    /// certificate (a city's own CA); without it, the system's trusted roots.
    #[serde(default)]
    pub ca_file: Option<String>,
}

impl FrigateMqttConfig {
    /// Whether `url` asks for TLS (`mqtts://`).
    pub fn tls(&self) -> bool {
        self.url.starts_with("mqtts://")
    }

    /// Host and port of `url` (`mqtt://host:port`, port 1883 when absent; `mqtts://`, 8883).
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let (rest, default_port) = if let Some(rest) = self.url.strip_prefix("mqtts://") {
            (rest, 8883)
        } else if let Some(rest) = self.url.strip_prefix("mqtt://") {
            (rest, 1883)
        } else {
            return Err(format!(
                "ingest.frigate_mqtt.url '{}' must start with mqtt:// or, for TLS, mqtts://",
                self.url
            ));
        };
        let rest = rest.trim_end_matches('/');
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => p.parse().map(|p| (h.to_string(), p)).map_err(|_| {
                format!(
                    "ingest.frigate_mqtt.url '{}': '{p}' is not a port",
                    self.url
                )
            }),
            _ if !rest.is_empty() => Ok((rest.to_string(), default_port)),
            _ => Err(format!(
                "ingest.frigate_mqtt.url '{}' names no host",
                self.url
            )),
        }
    }
}

/// One camera system's key for `POST /v1/camera-events`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraKeyConfig {
    /// The system that holds it, e.g. "District 1 traffic analytics".
    pub name: String,
    /// SHA-256 of the key, lowercase hex (`ioc token` makes one).
    pub sha256: String,
    /// Camera ids this system may post for; empty means every camera in the registry.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// For devices that answer only an HTTP digest challenge (realm "ioc"): the user name they
    /// are given and `H(user:ioc:key)`; `ioc token --digest-user NAME` prints them.
    #[serde(default)]
    pub digest: Option<DigestLoginConfig>,
}

/// A camera system's HTTP digest login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestLoginConfig {
    /// The user name the devices send.
    pub user: String,
    /// MD5 of `user:ioc:key`, lowercase hex (the algorithm most cameras use).
    #[serde(default)]
    pub md5: Option<String>,
    /// SHA-256 of `user:ioc:key`, lowercase hex.
    #[serde(default)]
    pub sha256: Option<String>,
}

impl CameraKeyConfig {
    /// Whether this system may post events of `camera_id`.
    pub fn covers(&self, camera_id: &str) -> bool {
        self.cameras.is_empty() || self.cameras.iter().any(|c| c == camera_id)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Consumer group shared by every router instance.
    pub group_id: String,
    /// This router's stable name in the group (Kafka static membership, `group.instance.id`),
    /// e.g. the host or pod name, unique per running router. A router restarted under the same
    /// name takes its own partitions back at once, without a rebalance; one that does not come
    /// back loses them after the session timeout. Unset: dynamic membership.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Address of the router's `/metrics` and `/healthz` endpoint.
    pub listen: String,
    /// Points within this distance of a ward edge are "on the boundary" (metres).
    pub boundary_tolerance_m: f64,
    /// Points outside every ward go to the nearest ward within this distance (metres); 0 disables.
    pub nearest_max_m: f64,
    /// Most inputs per router whose outputs are not yet acknowledged (written, waiting for the
    /// broker, or a camera detection's state waiting out `situation_linger`) before it pauses
    /// consuming.
    pub max_in_flight: usize,
    /// How long a camera situation's new state waits before it is written, so that the key's
    /// further detections meanwhile share one record on the situations topic. A detection that
    /// makes an incident (or an enforcement record) is written at once. 0: every detection's
    /// state is written as soon as the key's previous record is acknowledged.
    #[serde(default = "default_situation_linger")]
    pub situation_linger: Dur,
    /// How often to check boundary files for changes (new sets are picked up without a restart).
    pub reload_interval: Dur,
    /// Which incidents wait for an operator's verification before reaching the ward: `none`
    /// (the router assigns directly), `reports` (citizens' reports; camera events go straight
    /// through) or `all`. Waiting incidents are `new`, with the ward the router found as a proposal.
    pub require_verification: Verification,
    /// How camera detections are grouped into situations, one incident each.
    pub situations: SituationsConfig,
    /// Per camera event type, what its captures become: `incident` (the default: operators
    /// and ward units handle it) or `record` (an enforcement record on the violations topic
    /// for the category's unit, e.g. red-light captures for the traffic police).
    #[serde(default)]
    pub dispositions: BTreeMap<String, Disposition>,
}

fn default_situation_linger() -> Dur {
    Dur(std::time::Duration::from_millis(200))
}

/// What a camera event type's captures become.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// An incident that operators verify and ward units handle.
    #[default]
    Incident,
    /// An enforcement record, one per capture (or per tracked vehicle), counted on the
    /// dashboard, its plate readable only by tokens allowed to.
    Record,
}

impl RouterConfig {
    /// What captures of `event_type` become.
    pub fn disposition(&self, event_type: &str) -> Disposition {
        self.dispositions
            .get(event_type)
            .copied()
            .unwrap_or_default()
    }
}

/// Grouping of camera detections into situations (see the README's "Camera situations").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SituationsConfig {
    /// A situation without the source's own end ends when no detection came for this long;
    /// a later detection opens a new one.
    pub gap: Dur,
    /// Detections less confident than this are left out (one-frame noise).
    pub min_confidence: f64,
    /// A situation becomes an incident only once it has lasted this long (from its first to
    /// its latest detection); one that ends sooner was noise.
    pub min_duration: Dur,
    /// The same three per camera event type, where they differ.
    #[serde(default)]
    pub event_types: BTreeMap<String, SituationRule>,
}

/// Per event type overrides of [`SituationsConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SituationRule {
    #[serde(default)]
    pub gap: Option<Dur>,
    #[serde(default)]
    pub min_confidence: Option<f64>,
    #[serde(default)]
    pub min_duration: Option<Dur>,
}

/// The grouping rule in force for one event type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grouping {
    pub gap: chrono::Duration,
    pub min_confidence: f64,
    pub min_duration: chrono::Duration,
}

impl SituationsConfig {
    pub fn for_type(&self, event_type: &str) -> Grouping {
        let o = self
            .event_types
            .get(event_type)
            .cloned()
            .unwrap_or_default();
        Grouping {
            gap: o.gap.unwrap_or(self.gap).to_chrono(),
            min_confidence: o.min_confidence.unwrap_or(self.min_confidence),
            min_duration: o.min_duration.unwrap_or(self.min_duration).to_chrono(),
        }
    }
}

/// See [`RouterConfig::require_verification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    None,
    Reports,
    All,
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
    /// This instance's stable name in the group that shares the command topic (Kafka static
    /// membership, `group.instance.id`), e.g. the host or pod name, unique per running
    /// dashboard. An instance restarted under the same name takes its own command partitions
    /// back at once; one that does not come back loses them after the session timeout. Unset:
    /// dynamic membership.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Who may read the dashboard. Tokens are stored as SHA-256 hex digests, never in clear.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// How long after a resolution the citizen may dispute it.
    pub reopen_window: Dur,
    /// Resolved incidents nobody disputes are closed this long after the resolution.
    pub close_after: Dur,
    /// How often to look for missed service levels (escalations) and incidents to close.
    pub sla_check_interval: Dur,
    /// Whether this instance writes escalations, hand-overs and automatic closes (for the
    /// incidents of the command partitions it owns; each is written by one instance).
    pub monitor: bool,
    /// The time zone the web pages show dates in (an IANA name).
    pub time_zone: String,
    /// Where citizens reach the dashboard (e.g. `https://ioc.example.vn`): ingest's answer to a
    /// report points at the status page there. Empty: a path on the dashboard.
    #[serde(default)]
    pub public_url: String,
    /// Which open incidents are offered as possible duplicates of an incident.
    pub duplicates: DuplicatesConfig,
}

/// `GET /v1/incidents/{id}/nearby`: open incidents that may be the same thing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicatesConfig {
    /// How far apart two incidents may be, in metres.
    pub radius_m: f64,
    /// How far apart in time (of occurrence).
    pub window: Dur,
    /// Radius per category, where it differs (a flood covers more ground than a parked car).
    #[serde(default)]
    pub radius_m_by_category: BTreeMap<String, f64>,
    /// Groups of categories that may describe the same thing, e.g. `["environment",
    /// "urban_order"]`: an incident is offered duplicates of its own category and of the
    /// other categories of its groups.
    #[serde(default)]
    pub related: Vec<Vec<String>>,
    /// Which new incidents are attached at once to the nearest earlier open incident these
    /// rules offer (recorded in the audit trail; an operator's `split` undoes it).
    #[serde(default)]
    pub auto_attach: AutoAttach,
}

/// `[dashboard.duplicates.auto_attach]`: per category and kind of source, whether a new incident
/// joins the incident it most likely repeats without waiting for an operator. Off unless a
/// category is named.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoAttach {
    /// Categories whose new camera incidents are attached (a flood seen by a second camera).
    #[serde(default)]
    pub cameras: Vec<String>,
    /// Categories whose new citizens' reports are attached. A report is a person's own account,
    /// so none are by default.
    #[serde(default)]
    pub reports: Vec<String>,
}

impl AutoAttach {
    /// Whether a new incident of `category`, from a camera or not, is attached automatically.
    pub fn applies(&self, category: &str, camera: bool) -> bool {
        let list = if camera { &self.cameras } else { &self.reports };
        list.iter().any(|c| c == category)
    }
}

impl DuplicatesConfig {
    pub fn radius_for(&self, category: &str) -> f64 {
        self.radius_m_by_category
            .get(category)
            .copied()
            .unwrap_or(self.radius_m)
    }

    /// Whether incidents of `a` and `b` may be the same thing, and why.
    pub fn relates(&self, a: &str, b: &str) -> Option<&'static str> {
        if a == b {
            Some("same category")
        } else if self
            .related
            .iter()
            .any(|g| g.iter().any(|c| c == a) && g.iter().any(|c| c == b))
        {
            Some("related categories")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Open311Config {
    /// `jurisdiction_id` this endpoint answers for; requests naming another one are refused.
    /// Any (or none) is accepted when unset.
    #[serde(default)]
    pub jurisdiction_id: Option<String>,
    /// API keys of 311 clients allowed to file requests, stored as SHA-256 hex digests.
    #[serde(default)]
    pub keys: Vec<ApiKeyConfig>,
}

/// One Open311 API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The client that holds it, e.g. "PhuLy-S app".
    pub name: String,
    /// SHA-256 of the key, lowercase hex.
    pub sha256: String,
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
    /// Whether its holder may read licence plates on enforcement records (e.g. the traffic
    /// police unit); others see the records without plates.
    #[serde(default)]
    pub plates: bool,
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
    /// Which wards of the set before this one each of its wards was made from, for figures
    /// across the change (`GET /v1/figures?boundary_set=`).
    #[serde(default)]
    pub predecessors: Option<PredecessorsConfig>,
}

/// A CSV table with one row per ward of a set: its id, and the wards of the previous set it was
/// made from, by id or by name, separated by commas (names are compared without diacritics,
/// prefixes such as "Phường" or qualifiers in parentheses).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredecessorsConfig {
    /// `embedded:` or a path (relative to the config file).
    pub file: String,
    /// Column holding the new ward's id.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// Column listing the previous set's wards.
    #[serde(default = "default_list_column")]
    pub list_column: String,
}

fn default_id_column() -> String {
    "id".into()
}

fn default_list_column() -> String {
    "predecessors".into()
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
    /// Service level: time from assignment to the unit's acknowledgement (none when absent).
    #[serde(default)]
    pub acknowledge_within: Option<Dur>,
    /// Priority of new incidents of this category.
    #[serde(default)]
    pub priority: Priority,
    /// Targets for particular priorities, overriding the two above:
    /// `[categories.priorities.urgent] acknowledge_within = "5m", resolve_within = "1h"`.
    #[serde(default)]
    pub priorities: BTreeMap<Priority, PriorityTargets>,
    /// Camera event types that become incidents of this category.
    #[serde(default)]
    pub camera_event_types: Vec<String>,
}

/// Service-level targets of one priority.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityTargets {
    #[serde(default)]
    pub acknowledge_within: Option<Dur>,
    pub resolve_within: Dur,
}

impl CategoryConfig {
    /// The category's targets in the schema's terms.
    pub fn targets(&self) -> CategoryTargets {
        CategoryTargets {
            default_priority: self.priority,
            default: Targets {
                acknowledge_within: self.acknowledge_within.map(Dur::to_chrono),
                resolve_within: self.resolve_within.to_chrono(),
            },
            by_priority: self
                .priorities
                .iter()
                .map(|(p, t)| {
                    (
                        *p,
                        Targets {
                            acknowledge_within: t.acknowledge_within.map(Dur::to_chrono),
                            resolve_within: t.resolve_within.to_chrono(),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// One camera from the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub description: String,
}
