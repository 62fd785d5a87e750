//! Layered loading (embedded defaults, file, environment) and validation that reports every
//! problem at once.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::assets::FileRef;
use crate::model::{Camera, CategoryConfig, Config};

/// The embedded defaults: the demo city on the embedded broker.
pub const DEFAULT_TOML: &str = include_str!("../ioc.toml");

/// The bundled demo city's cameras and the vendor devices that stand for them.
const DEMO_CAMERAS: &str = "embedded:demo/cameras.csv";
const DEMO_DEVICES: &str = "embedded:demo/camera-devices.csv";

/// Prefix of environment overrides: `IOC_KAFKA__BROKERS=host:9092` sets `kafka.brokers`.
pub const ENV_PREFIX: &str = "IOC_";

/// Everything wrong with a configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(p: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![p.into()],
        }
    }
}

/// A loaded, validated configuration with its derived tables.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    /// Folder of the configuration file; relative paths inside it start here.
    pub base_dir: Option<PathBuf>,
    /// The file this was loaded from, if any (watched for new boundary sets).
    pub config_path: Option<PathBuf>,
    pub cameras: Arc<HashMap<String, Camera>>,
    /// Vendor devices and channels → cameras (`camera_formats.devices`).
    pub devices: Arc<crate::cameras::DeviceRegistry>,
}

impl Settings {
    /// Loads the embedded defaults, then `file` if given, then `IOC_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut value: toml::Table = DEFAULT_TOML
            .parse()
            .map_err(|e| ConfigError::one(format!("embedded defaults: {e}")))?;
        let mut base_dir = None;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::one(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let overlay: toml::Table = text
                .parse()
                .map_err(|e| ConfigError::one(format!("{}: {e}", path.display())))?;
            merge(&mut value, overlay);
            base_dir = Some(path.parent().unwrap_or(Path::new(".")).to_path_buf());
        }
        let mut problems = Vec::new();
        for (key, raw) in env {
            let Some(path) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if !path.contains("__") {
                continue;
            }
            let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
            if let Err(e) = set_path(&mut value, &parts, &raw) {
                problems.push(format!("{key}: {e}"));
            }
        }
        let config: Config =
            toml::Value::Table(value)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let mut problems = problems.clone();
                    problems.push(e.to_string().trim().to_string());
                    ConfigError { problems }
                })?;
        let mut config = config;
        config.topics.derive_names();
        let mut settings = Settings {
            config,
            base_dir,
            config_path: file.map(Path::to_path_buf),
            cameras: Arc::default(),
            devices: Arc::default(),
        };
        if let Err(errs) = settings.load_cameras() {
            problems.extend(errs.into_iter().map(|e| format!("camera_registry: {e}")));
        } else if let Err(errs) = settings.load_devices() {
            problems.extend(
                errs.into_iter()
                    .map(|e| format!("camera_formats.devices: {e}")),
            );
        }
        settings.validate(&mut problems);
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Loads the embedded defaults only (tests, demo).
    pub fn defaults() -> Settings {
        Settings::load(None, std::iter::empty()).expect("embedded defaults are valid")
    }

    /// Resolves a file named in the configuration.
    pub fn file(&self, name: &str) -> Result<FileRef, String> {
        FileRef::resolve(name, self.base_dir.as_deref())
    }

    /// The window of acceptable event times around the time an event is received.
    pub fn time_window(&self) -> ioc_schema::validate::TimeWindow {
        ioc_schema::validate::TimeWindow {
            max_age: self.config.ingest.max_event_age.to_chrono(),
            max_skew: self.config.ingest.max_clock_skew.to_chrono(),
        }
    }

    /// Checks a camera event against the deployment: its own fields (see
    /// [`ioc_schema::validate::check_camera_event`]), a registered camera and a configured event
    /// type. Ingest answers the refusal with a 422, the router dead-letters it; both say the
    /// same. `now` is when the event was received.
    pub fn check_camera_event(
        &self,
        e: &ioc_schema::CameraEvent,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(&Camera, &CategoryConfig), ioc_schema::validate::InvalidInput> {
        use ioc_schema::validate::{check_camera_event, InvalidInput};
        check_camera_event(e, now, &self.time_window())?;
        let camera = self.cameras.get(&e.camera_id).ok_or_else(|| {
            InvalidInput::new(
                "unknown_camera",
                format!(
                    "Camera '{}' is not in the camera registry; register it in the configuration first.",
                    e.camera_id
                ),
            )
        })?;
        let category = self
            .category_for_camera_type(&e.event_type)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .config
                    .categories
                    .iter()
                    .flat_map(|c| c.camera_event_types.iter().map(String::as_str))
                    .collect();
                InvalidInput::new(
                    "unknown_event_type",
                    format!(
                        "Event type '{}' is not configured; known types: {}.",
                        e.event_type,
                        known.join(", ")
                    ),
                )
            })?;
        Ok((camera, category))
    }

    pub fn category(&self, id: &str) -> Option<&CategoryConfig> {
        self.config.categories.iter().find(|c| c.id == id)
    }

    /// The category a camera event type belongs to.
    pub fn category_for_camera_type(&self, event_type: &str) -> Option<&CategoryConfig> {
        self.config
            .categories
            .iter()
            .find(|c| c.camera_event_types.iter().any(|t| t == event_type))
    }

    /// Reads the device registry the configuration names into `devices`.
    fn load_devices(&mut self) -> Result<(), Vec<String>> {
        let c = &self.config;
        // The bundled demo devices name the bundled demo cameras; with a city's own camera
        // registry and no devices of its own, there are none.
        if c.camera_formats.devices.is_empty()
            || c.camera_formats.devices == DEMO_DEVICES && c.camera_registry != DEMO_CAMERAS
        {
            self.devices = Arc::default();
            return Ok(());
        }
        let text = self
            .file(&self.config.camera_formats.devices)
            .and_then(|f| f.read().map_err(|e| format!("cannot read {f}: {e}")))
            .map_err(|e| vec![e])?;
        let cameras = self.cameras.clone();
        let known = move |id: &str| cameras.contains_key(id);
        self.devices = Arc::new(crate::cameras::DeviceRegistry::parse(&text, &known)?);
        Ok(())
    }

    /// Reads the camera registry the configuration names into `cameras`.
    fn load_cameras(&mut self) -> Result<(), Vec<String>> {
        let loaded = self
            .file(&self.config.camera_registry)
            .and_then(|f| {
                f.read()
                    .map_err(|e| format!("cannot read {f}: {e}"))
                    .map(|text| parse_cameras(&text))
            })
            .map_err(|e| vec![e])?;
        self.cameras = Arc::new(loaded?);
        Ok(())
    }

    /// Checks the configuration (and the registry already loaded), listing every problem.
    fn validate(&self, problems: &mut Vec<String>) {
        let c = &self.config;
        if c.kafka.brokers.trim().is_empty() {
            problems.push("kafka.brokers is empty; give host:port pairs or 'embedded'".into());
        }
        if c.kafka.produce_timeout.0.is_zero() {
            problems.push("kafka.produce_timeout must be more than zero".into());
        }
        for t in c.router.dispositions.keys() {
            if !c
                .categories
                .iter()
                .any(|cat| cat.camera_event_types.contains(t))
            {
                problems.push(format!(
                    "router.dispositions names '{t}', which no category lists in camera_event_types"
                ));
            }
        }
        for k in &c.ingest.camera_keys {
            if let Some(d) = &k.digest {
                if d.md5.is_none() && d.sha256.is_none() {
                    problems.push(format!(
                        "ingest.camera_keys '{}': digest needs md5 or sha256 of '{}:ioc:<key>' (ioc token --digest-user {} prints both)",
                        k.name, d.user, d.user
                    ));
                }
            }
        }
        if !c.ingest.frigate_mqtt.url.is_empty() {
            if let Err(e) = c.ingest.frigate_mqtt.host_port() {
                problems.push(e);
            }
        }
        if crate::cameras::parse_offset(&c.camera_formats.local_utc_offset).is_none() {
            problems.push(format!(
                "camera_formats.local_utc_offset '{}' is not an offset; write e.g. \"+07:00\"",
                c.camera_formats.local_utc_offset
            ));
        }
        for (format, table) in &c.camera_formats.event_types {
            if ioc_schema::camera::Format::parse(format).is_none() {
                problems.push(format!(
                    "camera_formats.event_types.{format}: not a format (deepstream, frigate, hikvision, dahua, onvif)"
                ));
            }
            for (vendor, ours) in table {
                if self.category_for_camera_type(ours).is_none() {
                    problems.push(format!(
                        "camera_formats.event_types.{format}.{vendor}: '{ours}' is no category's camera event type"
                    ));
                }
            }
        }
        if c.kafka.max_pending == 0 {
            problems.push("kafka.max_pending must be at least 1".into());
        }
        let topics = [
            ("topics.reports", &c.topics.reports),
            ("topics.camera_events", &c.topics.camera_events),
            ("topics.incidents", &c.topics.incidents),
            ("topics.dead_letter", &c.topics.dead_letter),
            ("topics.assignments", &c.topics.assignments),
        ];
        let mut seen = HashSet::new();
        for (field, name) in topics {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
            {
                problems.push(format!(
                    "{field} '{name}' is not a valid topic name (letters, digits, '.', '_', '-')"
                ));
            }
            if !seen.insert(name) {
                problems.push(format!("{field} '{name}' is used for two purposes"));
            }
        }
        if c.topics.partitions < 1 {
            problems.push("topics.partitions must be at least 1".into());
        }
        if c.topics.replication_factor < 1 {
            problems.push("topics.replication_factor must be at least 1".into());
        }
        for (field, addr) in [
            ("ingest.listen", &c.ingest.listen),
            ("router.listen", &c.router.listen),
            ("dashboard.listen", &c.dashboard.listen),
        ] {
            if addr.parse::<SocketAddr>().is_err() {
                problems.push(format!(
                    "{field} '{addr}' is not an address like 127.0.0.1:8080"
                ));
            }
        }
        if c.ingest.max_body_bytes < 1024 {
            problems.push("ingest.max_body_bytes must be at least 1024".into());
        }
        if c.ingest.max_batch == 0 {
            problems.push("ingest.max_batch must be at least 1".into());
        }
        if c.router.group_id.is_empty() {
            problems.push("router.group_id is empty".into());
        }
        if !(c.router.boundary_tolerance_m >= 0.0 && c.router.boundary_tolerance_m <= 100.0) {
            problems.push("router.boundary_tolerance_m must be between 0 and 100 metres".into());
        }
        if !(c.router.nearest_max_m >= 0.0 && c.router.nearest_max_m <= 10_000.0) {
            problems.push("router.nearest_max_m must be between 0 and 10000 metres".into());
        }
        if c.router.max_in_flight == 0 {
            problems.push("router.max_in_flight must be at least 1".into());
        }
        if c.router.situation_linger.0 > std::time::Duration::from_secs(5) {
            problems.push(format!(
                "router.situation_linger is {:?}; at most 5s (a lingering state holds its detections' offsets back)",
                c.router.situation_linger.0
            ));
        }
        if c.dashboard.max_page_size == 0 {
            problems.push("dashboard.max_page_size must be at least 1".into());
        }
        let digests = c
            .dashboard
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("dashboard.tokens[{i}]"), &t.name, &t.sha256))
            .chain(
                c.open311
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (format!("open311.keys[{i}]"), &k.name, &k.sha256)),
            )
            .chain(
                c.ingest
                    .camera_keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (format!("ingest.camera_keys[{i}]"), &k.name, &k.sha256)),
            );
        for (field, name, sha256) in digests {
            if sha256.len() != 64 || !sha256.chars().all(|ch| ch.is_ascii_hexdigit()) {
                problems.push(format!("{field} ({name}): sha256 must be 64 hex digits"));
            }
        }
        for (i, t) in c.dashboard.tokens.iter().enumerate() {
            match (t.role, &t.ward) {
                (crate::model::Role::Ward, None) => problems.push(format!(
                    "dashboard.tokens[{i}] ({}): a ward token needs `ward`",
                    t.name
                )),
                (crate::model::Role::Operator, Some(_)) => problems.push(format!(
                    "dashboard.tokens[{i}] ({}): an operator token must not name a ward",
                    t.name
                )),
                _ => {}
            }
        }
        if c.dashboard.sla_check_interval.0.is_zero() {
            problems.push("dashboard.sla_check_interval must be more than zero".into());
        }
        if c.boundaries.is_empty() {
            problems.push("no [[boundaries]] set is configured".into());
        }
        let mut versions = HashSet::new();
        for (i, b) in c.boundaries.iter().enumerate() {
            if !versions.insert(&b.version) {
                problems.push(format!(
                    "boundaries[{i}]: version '{}' appears twice",
                    b.version
                ));
            }
            if let Some(to) = b.valid_to {
                if to <= b.valid_from {
                    problems.push(format!(
                        "boundaries[{i}] ({}): valid_to is not after valid_from",
                        b.version
                    ));
                }
            }
            match self.file(&b.file) {
                Ok(crate::assets::FileRef::Path(p)) if !p.is_file() => problems.push(format!(
                    "boundaries[{i}] ({}): file {} does not exist",
                    b.version,
                    p.display()
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("boundaries[{i}]: {e}")),
            }
        }
        if c.categories.is_empty() {
            problems.push("no [[categories]] are configured".into());
        }
        let mut ids = HashSet::new();
        let mut types = HashMap::new();
        for cat in &c.categories {
            if !ids.insert(&cat.id) {
                problems.push(format!("category '{}' appears twice", cat.id));
            }
            if cat.resolve_within.0.is_zero()
                || cat
                    .priorities
                    .values()
                    .any(|t| t.resolve_within.0.is_zero())
            {
                problems.push(format!(
                    "category '{}': resolve_within must be more than zero",
                    cat.id
                ));
            }
            for t in &cat.camera_event_types {
                if let Some(other) = types.insert(t, &cat.id) {
                    problems.push(format!(
                        "camera event type '{t}' is mapped to both '{other}' and '{}'",
                        cat.id
                    ));
                }
            }
        }
        let attach = &c.dashboard.duplicates.auto_attach;
        for (kind, list) in [("cameras", &attach.cameras), ("reports", &attach.reports)] {
            for unknown in list.iter().filter(|id| !ids.contains(id)) {
                problems.push(format!(
                    "dashboard.duplicates.auto_attach.{kind} names category '{unknown}', which is not among [[categories]]"
                ));
            }
        }
        if !self.cameras.is_empty() {
            for (i, k) in c.ingest.camera_keys.iter().enumerate() {
                for cam in k
                    .cameras
                    .iter()
                    .filter(|cam| !self.cameras.contains_key(*cam))
                {
                    problems.push(format!(
                        "ingest.camera_keys[{i}] ({}): camera '{cam}' is not in the camera registry",
                        k.name
                    ));
                }
            }
        }
    }
}

/// The configured credential whose digest matches `secret`, if any. Every kind of key (dashboard
/// tokens, Open311 keys, camera systems' keys) is stored as a digest and checked through here.
pub fn find_by_digest<'a, T>(
    items: &'a [T],
    digest_of: impl Fn(&T) -> &str,
    secret: &str,
) -> Option<&'a T> {
    let digest = token_digest(secret.trim());
    items
        .iter()
        .find(|item| digest_of(item).eq_ignore_ascii_case(&digest))
}

/// SHA-256 of a token as lowercase hex, the form tokens are configured in.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses the camera registry CSV (`id,lat,lon,description`), listing every bad row.
pub fn parse_cameras(text: &str) -> Result<HashMap<String, Camera>, Vec<String>> {
    if text.trim_start().starts_with('{') {
        return parse_camera_features(text);
    }
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let id = rec.get(0).unwrap_or("").trim().to_string();
        let lat = rec.get(1).and_then(|s| s.trim().parse::<f64>().ok());
        let lon = rec.get(2).and_then(|s| s.trim().parse::<f64>().ok());
        match (lat, lon) {
            (Some(lat), Some(lon))
                if !id.is_empty()
                    && (-90.0..=90.0).contains(&lat)
                    && (-180.0..=180.0).contains(&lon) =>
            {
                let cam = Camera {
                    id: id.clone(),
                    lat,
                    lon,
                    description: rec.get(3).unwrap_or("").to_string(),
                };
                if out.insert(id.clone(), cam).is_some() {
                    errors.push(format!("line {line}: camera id '{id}' appears twice"));
                }
            }
            _ => errors.push(format!(
                "line {line}: needs id, lat (-90..90), lon (-180..180)"
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A registry as a GeoJSON FeatureCollection of Points (as city portals publish them): the
/// camera id is the feature's `id` (or its `id` property), the description its `name` property.
fn parse_camera_features(text: &str) -> Result<HashMap<String, Camera>, Vec<String>> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| vec![format!("not GeoJSON: {e}")])?;
    let Some(features) = doc["features"].as_array() else {
        return Err(vec!["a GeoJSON registry must be a FeatureCollection".into()]);
    };
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for (i, f) in features.iter().enumerate() {
        let id = match (&f["id"], &f["properties"]["id"]) {
            (serde_json::Value::String(s), _) | (_, serde_json::Value::String(s)) => s.clone(),
            (serde_json::Value::Number(n), _) | (_, serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let at = &f["geometry"]["coordinates"];
        let (lon, lat) = (at[0].as_f64(), at[1].as_f64());
        match (lat, lon) {
            (Some(lat), Some(lon))
                if ioc_schema::validate::check_id("camera_id", &id).is_ok()
                    && f["geometry"]["type"] == "Point"
                    && (-90.0..=90.0).contains(&lat)
                    && (-180.0..=180.0).contains(&lon) =>
            {
                let description = f["properties"]["name"].as_str().unwrap_or("").to_string();
                let cam = Camera {
                    id: id.clone(),
                    lat,
                    lon,
                    description,
                };
                if out.insert(id.clone(), cam).is_some() {
                    errors.push(format!("feature {i}: camera id '{id}' appears twice"));
                }
            }
            _ => errors.push(format!(
                "feature {i}: needs a Point geometry and an id (letters, digits, . _ : / @ + -)"
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Deep-merges `overlay` into `base`: tables merge key by key, anything else is replaced.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets `a.b.c` from an environment string, read as a TOML value when it parses as one
/// (numbers, booleans, arrays) and as a plain string otherwise.
fn set_path(table: &mut toml::Table, parts: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = parts.split_last().ok_or("empty key")?;
    let mut t = table;
    for p in parents {
        t = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .ok_or_else(|| format!("'{p}' is not a section"))?;
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    t.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_are_valid() {
        let s = Settings::defaults();
        assert!(!s.config.boundaries.is_empty());
        assert!(!s.cameras.is_empty());
        assert!(s.category_for_camera_type("red_light_violation").is_some());
    }

    #[test]
    fn environment_overrides_win_and_are_typed() {
        let env = vec![
            (
                "IOC_KAFKA__BROKERS".to_string(),
                "k1:9092,k2:9092".to_string(),
            ),
            ("IOC_TOPICS__PARTITIONS".to_string(), "12".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let s = Settings::load(None, env).unwrap();
        assert_eq!(s.config.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(s.config.topics.partitions, 12);
    }

    #[test]
    fn every_problem_is_listed() {
        let env = vec![
            ("IOC_TOPICS__PARTITIONS".to_string(), "0".to_string()),
            ("IOC_INGEST__LISTEN".to_string(), "nowhere".to_string()),
            (
                "IOC_ROUTER__BOUNDARY_TOLERANCE_M".to_string(),
                "-1".to_string(),
            ),
            ("IOC_CAMERA_REGISTRY".to_string(), "x".to_string()),
        ];
        let err = Settings::load(None, env).unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("partitions")
                && text.contains("ingest.listen")
                && text.contains("tolerance")
        );
    }

    #[test]
    fn a_situation_linger_past_a_few_seconds_is_refused() {
        let linger = |v: &str| {
            Settings::load(
                None,
                vec![("IOC_ROUTER__SITUATION_LINGER".to_string(), v.to_string())],
            )
        };
        assert_eq!(
            linger("5s")
                .unwrap()
                .config
                .router
                .situation_linger
                .0
                .as_secs(),
            5
        );
        let err = linger("1h").unwrap_err();
        assert!(err.to_string().contains("router.situation_linger"), "{err}");
    }

    #[test]
    fn an_automatic_attach_names_configured_categories_only() {
        let attach = |kind: &str, v: &str| {
            Settings::load(
                None,
                vec![(
                    format!("IOC_DASHBOARD__DUPLICATES__AUTO_ATTACH__{kind}"),
                    v.to_string(),
                )],
            )
        };
        let s = attach("CAMERAS", "[\"environment\"]").unwrap();
        let a = &s.config.dashboard.duplicates.auto_attach;
        assert!(a.applies("environment", true));
        assert!(!a.applies("environment", false), "reports stay off");
        let err = attach("REPORTS", "[\"flooding\"]").unwrap_err();
        assert!(
            err.to_string()
                .contains("auto_attach.reports names category 'flooding'"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = std::env::temp_dir().join(format!("ioc-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[ingest]\nlisten_adress = \"127.0.0.1:1\"\n").unwrap();
        let err = Settings::load(Some(&path), std::iter::empty()).unwrap_err();
        assert!(err.to_string().contains("listen_adress"), "{err}");
    }

    #[test]
    fn frigate_urls_and_digest_logins_are_checked() {
        let dir = std::env::temp_dir().join(format!("ioc-cfg-mqtt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        let load = |body: &str| {
            std::fs::write(&path, body).unwrap();
            Settings::load(Some(&path), std::iter::empty())
        };
        let s = load("[ingest.frigate_mqtt]\nurl = \"mqtts://broker.city.vn\"\n").unwrap();
        let mqtt = &s.config.ingest.frigate_mqtt;
        assert!(mqtt.tls());
        assert_eq!(mqtt.host_port().unwrap(), ("broker.city.vn".into(), 8883));
        let err = load("[ingest.frigate_mqtt]\nurl = \"ws://broker:80\"\n").unwrap_err();
        assert!(err.to_string().contains("mqtts://"), "{err}");
        let err = load(
            "[ingest]\ncamera_keys = [{ name = \"NVR\", sha256 = \"ab\", digest = { user = \"nvr-1\" } }]\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("digest needs md5 or sha256 of 'nvr-1:ioc:<key>'"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn camera_rows_are_checked() {
        let errs =
            parse_cameras("id,lat,lon,description\nC1,1,2,a\nC1,1,2,b\nC2,95,0,c\n").unwrap_err();
        assert_eq!(errs.len(), 2);
    }

    #[test]
    fn a_registry_can_be_a_geojson_feature_collection() {
        let point = |id: &str, lon: f64, lat: f64| {
            format!(
                r#"{{"type":"Feature","id":{id},"geometry":{{"type":"Point","coordinates":[{lon},{lat}]}},"properties":{{"name":"Trần Quang Khải"}}}}"#
            )
        };
        let ok = format!(
            r#"{{"type":"FeatureCollection","features":[{},{}]}}"#,
            point("\"662b86c4\"", 106.69, 10.79),
            point("17", 106.7, 10.8)
        );
        let cams = parse_cameras(&ok).unwrap();
        assert_eq!(cams["662b86c4"].lat, 10.79);
        assert_eq!(cams["662b86c4"].description, "Trần Quang Khải");
        assert!(cams.contains_key("17"));
        let bad = format!(
            r#"{{"type":"FeatureCollection","features":[{},{}]}}"#,
            point("\"TTH 406\"", 106.69, 10.79),
            point("\"ok\"", 106.69, 95.0)
        );
        assert_eq!(parse_cameras(&bad).unwrap_err().len(), 2);
    }
}
