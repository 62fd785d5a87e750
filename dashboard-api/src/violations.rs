//! Enforcement records (camera event types whose disposition is `record`: red-light and
//! crossing violations, ANPR captures): read from the violations topic by every instance, counted
//! per ward, camera and event type, the latest kept for listing. Plates are served only to tokens
//! with `plates = true`; a ward unit sees only its ward's records.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query as QueryParams, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::stream::Stream;
use ioc_config::kafka::dashboard_consumer_config;
use ioc_config::supervise::CancellationToken;
use ioc_schema::validate::decode_json;
use ioc_schema::{EnforcementRecord, WardRef, VIOLATION_SCHEMA};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::{narrow_ward, Authenticated, Caller};
use crate::http::live_events;
use crate::{bad_query, ApiError, AppState, STAGE};

/// How many of the latest records are kept for `GET /v1/violations`; counts cover all.
pub const KEPT: usize = 5_000;

/// What the dashboard holds of the violations topic.
#[derive(Default)]
pub struct Violations {
    /// Every record id counted, so one written again (a replay, a retried write) counts once.
    seen: HashSet<String>,
    /// (ward id, camera, event type) → count.
    counts: BTreeMap<(Option<String>, String, String), ViolationCount>,
    /// The latest records, newest first.
    recent: VecDeque<EnforcementRecord>,
}

/// How many records one camera made of one event type in one ward.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ViolationCount {
    /// None: the camera stands outside every ward.
    pub ward: Option<WardRef>,
    pub camera_id: String,
    pub event_type: String,
    pub count: u64,
    /// The latest capture's time.
    pub last_at: DateTime<Utc>,
}

/// A change the live stream carries: a record (new, or written again with a plate read later
/// in its track) and its row of counts after it. Applying one twice changes nothing, so a page
/// may take it before or after its first listing.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ViolationChange {
    pub record: EnforcementRecord,
    pub count: ViolationCount,
}

/// The row of counts a record belongs to.
type CountKey = (Option<String>, String, String);

fn count_key(r: &EnforcementRecord) -> CountKey {
    (
        r.ward.as_ref().map(|w| w.id.clone()),
        r.camera_id.clone(),
        r.event_type.clone(),
    )
}

impl Violations {
    /// Counts and keeps `r`; false when its id was counted before.
    pub fn apply(&mut self, r: EnforcementRecord) -> bool {
        if !self.seen.insert(r.id.clone()) {
            // Written again (a plate read later in its track): the newer version is shown,
            // and still counted once.
            if let Some(shown) = self.recent.iter_mut().find(|k| k.id == r.id) {
                *shown = r;
            }
            return false;
        }
        let c = self
            .counts
            .entry(count_key(&r))
            .or_insert_with(|| ViolationCount {
                ward: r.ward.clone(),
                camera_id: r.camera_id.clone(),
                event_type: r.event_type.clone(),
                count: 0,
                last_at: r.detected_at,
            });
        c.count += 1;
        c.last_at = c.last_at.max(r.detected_at);
        // Records arrive roughly in time order; keep the newest first.
        let at = self
            .recent
            .iter()
            .position(|k| k.detected_at <= r.detected_at)
            .unwrap_or(self.recent.len());
        self.recent.insert(at, r);
        self.recent.truncate(KEPT);
        true
    }

    /// Applies `r` and tells what changed, for the live stream.
    pub fn change(&mut self, r: EnforcementRecord) -> Option<ViolationChange> {
        let key = count_key(&r);
        self.apply(r.clone());
        let count = self.counts.get(&key)?.clone();
        Some(ViolationChange { record: r, count })
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Filters of the violation listings.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ViolationQuery {
    /// A ward id; a ward unit's token is held to its own ward.
    pub ward: Option<String>,
    pub camera_id: Option<String>,
    /// An event type, e.g. `red_light_violation`.
    pub event_type: Option<String>,
    /// `GET /v1/violations` only: how many of the latest (default 100, at most
    /// `dashboard.max_page_size`).
    pub limit: Option<usize>,
}

impl ViolationQuery {
    /// The query narrowed to what `caller` may see.
    fn scoped(mut self, caller: &Caller) -> Result<ViolationQuery, ApiError> {
        narrow_ward(caller, &mut self.ward)?;
        Ok(self)
    }

    fn matches(&self, ward: Option<&WardRef>, camera_id: &str, event_type: &str) -> bool {
        self.ward
            .as_ref()
            .is_none_or(|w| ward.is_some_and(|x| &x.id == w))
            && self.camera_id.as_ref().is_none_or(|c| c == camera_id)
            && self.event_type.as_ref().is_none_or(|t| t == event_type)
    }
}

/// Filters of the violations' live stream: those of the listings, and the token, which a
/// browser's EventSource can send only in the address.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ViolationStreamQuery {
    /// A ward id; a ward unit's token is held to its own ward.
    pub ward: Option<String>,
    pub camera_id: Option<String>,
    /// An event type, e.g. `red_light_violation`.
    pub event_type: Option<String>,
    /// The token, when it cannot be sent as `Authorization: Bearer`.
    pub access_token: Option<String>,
}

/// A violation listing's filters, checked and narrowed to what the caller may see, and the
/// caller.
pub struct ScopedViolations(ViolationQuery, Authenticated);

impl FromRequestParts<AppState> for ScopedViolations {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let QueryParams(q) = QueryParams::<ViolationQuery>::from_request_parts(parts, s)
            .await
            .map_err(bad_query)?;
        let who = Authenticated::from_request_parts(parts, s).await?;
        Ok(ScopedViolations(q.scoped(&who.caller)?, who))
    }
}

/// `GET /v1/violations/counts`: counts per ward, camera and event type, largest first.
pub async fn get_counts(
    State(s): State<AppState>,
    ScopedViolations(q, _): ScopedViolations,
) -> Result<Json<Vec<ViolationCount>>, ApiError> {
    let held = s.violations.read().expect("violations lock");
    let mut rows: Vec<ViolationCount> = held
        .counts
        .values()
        .filter(|c| q.matches(c.ward.as_ref(), &c.camera_id, &c.event_type))
        .cloned()
        .collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_at.cmp(&a.last_at)));
    Ok(Json(rows))
}

/// `GET /v1/violations`: the latest records, newest first; plates only for tokens allowed them.
pub async fn get_records(
    State(s): State<AppState>,
    ScopedViolations(q, who): ScopedViolations,
) -> Result<Json<Vec<EnforcementRecord>>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(s.max_page);
    let held = s.violations.read().expect("violations lock");
    let rows = held
        .recent
        .iter()
        .filter(|r| q.matches(r.ward.as_ref(), &r.camera_id, &r.event_type))
        .take(limit)
        .map(|r| {
            let mut r = r.clone();
            if !who.plates {
                r.plate = None;
            }
            r
        })
        .collect();
    Ok(Json(rows))
}

/// `GET /v1/violations/stream`: one `violation` event per new or rewritten record the caller
/// may see (a ward unit its ward's; the plate only for a token allowed it).
pub async fn stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<QueryParams<ViolationStreamQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let QueryParams(q) = q.map_err(bad_query)?;
    let who = s.tokens.authenticate(&headers, q.access_token.as_deref())?;
    let q = ViolationQuery {
        ward: q.ward,
        camera_id: q.camera_id,
        event_type: q.event_type,
        limit: None,
    }
    .scoped(&who.caller)?;
    let plates = who.plates;
    Ok(live_events(
        &s,
        s.violation_changes.subscribe(),
        move |change: &ViolationChange| {
            let r = &change.record;
            if !q.matches(r.ward.as_ref(), &r.camera_id, &r.event_type) {
                return None;
            }
            let mut change = change.clone();
            if !plates {
                change.record.plate = None;
            }
            Some(Event::default().event("violation").data(
                // JSON escapes every control character, so no data line can be broken.
                serde_json::to_string(&change).unwrap_or_else(|_| "{}".into()),
            ))
        },
    ))
}

/// Reads the violations topic from the beginning into the state until `stop`.
pub async fn follow(s: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let cfg = &s.settings.config;
    let group = format!(
        "{}-violations-{}",
        cfg.dashboard.group_prefix,
        uuid::Uuid::new_v4()
    );
    let consumer: StreamConsumer = dashboard_consumer_config(cfg, &group)
        .create()
        .context("creating the violations consumer")?;
    consumer
        .subscribe(&[&cfg.topics.violations])
        .context("subscribing to the violations topic")?;
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = consumer.recv() => m,
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "violations consumer");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        s.metrics
            .events_in
            .with_label_values(&[STAGE, "violation"])
            .inc();
        match decode_json::<EnforcementRecord>(m.payload().unwrap_or_default()) {
            Ok(r) if r.schema == VIOLATION_SCHEMA => {
                let mut violations = s.violations.write().expect("violations lock");
                if s.violation_changes.receiver_count() == 0 {
                    // Nobody follows the stream (the start-up replay, mostly): no change to build.
                    violations.apply(r);
                } else if let Some(change) = violations.change(r) {
                    drop(violations);
                    // A follower that left meanwhile is no error.
                    let _ = s.violation_changes.send(Arc::new(change));
                }
            }
            Ok(r) => {
                tracing::warn!(offset = m.offset(), schema = %r.schema, "skipping a violation record of another schema")
            }
            Err(e) => {
                s.metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
                tracing::warn!(
                    partition = m.partition(),
                    offset = m.offset(),
                    "skipping an unreadable violation record: {}",
                    e.message
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ioc_schema::Location;

    fn record(id: &str, ward: &str, camera: &str, minute: i64) -> EnforcementRecord {
        EnforcementRecord {
            schema: VIOLATION_SCHEMA.into(),
            id: id.into(),
            camera_id: camera.into(),
            event_type: "red_light_violation".into(),
            category: "traffic_order".into(),
            unit: "Traffic police team".into(),
            confidence: 0.9,
            detected_at: DateTime::from_timestamp(1_790_000_000 + minute * 60, 0).unwrap(),
            received_at: DateTime::from_timestamp(1_790_000_000 + minute * 60, 0).unwrap(),
            location: Location {
                lat: 10.7,
                lon: 106.7,
                accuracy_m: None,
            },
            ward: Some(WardRef {
                id: ward.into(),
                name: format!("Phường {ward}"),
            }),
            plate: Some("51G-888.88".into()),
            lane: None,
            zone: None,
            snapshot_url: None,
            format: None,
            detections: 1,
        }
    }

    #[test]
    fn a_record_counts_once_however_often_it_is_read() {
        let mut v = Violations::default();
        assert!(v.apply(record("vio-1", "W1", "CAM-1", 0)));
        assert!(!v.apply(record("vio-1", "W1", "CAM-1", 0)));
        assert!(v.apply(record("vio-2", "W1", "CAM-1", 2)));
        assert!(v.apply(record("vio-3", "W2", "CAM-2", 1)));
        assert_eq!(v.len(), 3);
        let c = &v.counts[&(
            Some("W1".into()),
            "CAM-1".into(),
            "red_light_violation".into(),
        )];
        assert_eq!((c.count, c.last_at.timestamp()), (2, 1_790_000_120));
        let order: Vec<_> = v.recent.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(order, ["vio-2", "vio-3", "vio-1"]);
    }

    #[test]
    fn a_change_carries_its_row_of_counts_and_a_rewrite_does_not_count_again() {
        let mut v = Violations::default();
        let first = v.change(record("vio-1", "W1", "CAM-1", 0)).unwrap();
        assert_eq!(first.count.count, 1);
        let second = v.change(record("vio-2", "W1", "CAM-1", 3)).unwrap();
        assert_eq!(
            (second.count.count, second.count.last_at.timestamp()),
            (2, 1_790_000_180)
        );
        // The first record written again (its plate read later): same row, still two.
        let mut rewritten = record("vio-1", "W1", "CAM-1", 0);
        rewritten.plate = Some("30E-555.55".into());
        let again = v.change(rewritten).unwrap();
        assert_eq!(again.count.count, 2);
        assert_eq!(again.record.plate.as_deref(), Some("30E-555.55"));
        let other = v.change(record("vio-3", "W2", "CAM-2", 1)).unwrap();
        assert_eq!(
            (other.count.camera_id.as_str(), other.count.count),
            ("CAM-2", 1)
        );
    }

    #[test]
    fn a_ward_unit_is_held_to_its_ward() {
        let own = Caller::Ward("W1".into());
        let Ok(q) = ViolationQuery::default().scoped(&own) else {
            panic!("a ward unit may ask for its own ward");
        };
        assert!(q.matches(
            Some(&record("x", "W1", "C", 0).ward.unwrap()),
            "C",
            "red_light_violation"
        ));
        assert!(!q.matches(
            Some(&record("x", "W2", "C", 0).ward.unwrap()),
            "C",
            "red_light_violation"
        ));
        assert!(!q.matches(None, "C", "red_light_violation"));
        let other = ViolationQuery {
            ward: Some("W2".into()),
            ..Default::default()
        };
        assert!(other.scoped(&own).is_err());
    }
}
