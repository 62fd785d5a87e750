//! What the handlers, the consumer and the monitor share: the view of every incident, the
//! change feed of the live streams, the wards in force, tokens, the Kafka sink and the clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use ioc_config::kafka::Sink;
use ioc_config::load::Settings;
use ioc_config::supervise::CancellationToken;
use ioc_schema::metrics::Metrics;
use ioc_schema::Incident;
use ioc_wards::{BoundarySet, BoundarySets, SharedSets};
use tokio::sync::broadcast;

use crate::auth::Tokens;
use crate::view::{Decoded, View};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use ioc_config::intake::Intake;
use ioc_config::limits::Limits;

use crate::STAGE;

/// How far a drawn ward outline may stray from the real one, in degrees (about 11 m: less than
/// a pixel on a city-wide map).
pub const DRAW_TOLERANCE_DEG: f64 = 1e-4;

/// An answer as JSON bytes.
pub(crate) fn to_json<T: Serialize>(answer: &T) -> Vec<u8> {
    serde_json::to_vec(answer).expect("an answer serializes")
}

/// State shared by the handlers and the consumer.
#[derive(Clone)]
pub struct AppState {
    pub(crate) view: Arc<RwLock<View>>,
    /// Enforcement records: counts and the latest (see [`crate::violations`]).
    pub(crate) violations: Arc<RwLock<crate::violations::Violations>>,
    pub(crate) changes: broadcast::Sender<Arc<Incident>>,
    /// Enforcement records as they arrive, for the violations' live stream.
    pub(crate) violation_changes: broadcast::Sender<Arc<crate::violations::ViolationChange>>,
    /// The boundary sets, swapped when the configuration gains or changes one.
    pub(crate) sets: SharedSets,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) metrics: Metrics,
    pub(crate) max_page: usize,
    pub(crate) settings: Arc<Settings>,
    pub(crate) sink: Sink,
    /// Serialises lifecycle actions so two of them never build on the same revision.
    pub(crate) acting: Arc<tokio::sync::Mutex<()>>,
    /// Whether the view has read the incident topic up to where it ended at start; no change is
    /// written before, so none builds on a stale revision.
    pub(crate) caught_up: Arc<AtomicBool>,
    pub(crate) clock: Clock,
    /// Files Open311 requests through the same path as `POST /v1/reports`.
    pub(crate) intake: Intake,
    /// Request budgets of the public endpoints (the per-key one is checked by Open311 filing).
    pub(crate) limits: Limits,
    /// Cancelled when the dashboard stops: live streams end and the monitor stops writing.
    pub(crate) stopping: CancellationToken,
    /// The outlines of the set in force, simplified for drawing, made once per set.
    pub(crate) outlines: Arc<std::sync::Mutex<Option<Outlines>>>,
    /// Lifecycle commands: this instance's name, its waiting requests and owned partitions.
    pub commands: crate::commands::Commands,
}

/// Ward outlines simplified for drawing (never for lookups), in ward order, with the index they
/// were made from (a reloaded set has a new one).
pub(crate) struct Outlines {
    pub(crate) of: Arc<ioc_wards::WardIndex>,
    pub(crate) geometry: Arc<Vec<serde_json::Value>>,
}

/// Where "now" comes from: the system clock, or a test's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

impl AppState {
    /// Builds the state: loads the boundary sets (the one in force now draws the map and names
    /// the wards an operator may assign to) and the tokens.
    pub fn new(
        settings: Arc<Settings>,
        metrics: Metrics,
        clock: Clock,
    ) -> anyhow::Result<AppState> {
        let sets = BoundarySets::load(&settings, None).context("loading boundary sets")?;
        if sets.select(clock()).is_none() {
            anyhow::bail!("no boundary set is in force now; the map needs one");
        }
        let limits = Limits::from_config(&settings.config.limits);
        Ok(AppState {
            limits,
            view: Arc::default(),
            violations: Arc::default(),
            changes: broadcast::channel(4096).0,
            violation_changes: broadcast::channel(4096).0,
            sets: Arc::new(RwLock::new(Arc::new(sets))),
            tokens: Arc::new(Tokens::from_config(&settings.config.dashboard.tokens)),
            max_page: settings.config.dashboard.max_page_size,
            sink: Sink::new(&settings.config, metrics.clone(), STAGE)
                .context("creating the dashboard's Kafka producer")?,
            intake: Intake::new(settings.clone(), metrics.clone(), "open311")
                .context("creating the Open311 intake's Kafka producer")?,
            metrics,
            settings,
            acting: Arc::default(),
            caught_up: Arc::default(),
            clock,
            stopping: CancellationToken::new(),
            outlines: Default::default(),
            commands: Default::default(),
        })
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Runs a read over the whole view on a blocking thread and answers its result as JSON. A
    /// full scan of a large view (figures over 200,000 incidents take ~0.1 s) must not hold an
    /// async worker, or every live stream on that worker stalls meanwhile.
    /// `read` returns the JSON bytes (see [`to_json`]), so answers may borrow from the view.
    pub(crate) async fn scan<F>(&self, read: F) -> Response
    where
        F: FnOnce(&View) -> Vec<u8> + Send + 'static,
    {
        let view = self.view.clone();
        let body = tokio::task::spawn_blocking(move || read(&view.read().expect("view lock")))
            .await
            .expect("a view read does not panic");
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }

    /// Runs `f` on the boundary set in force now.
    /// The outlines of `set`'s wards for drawing: simplified to about [`DRAW_TOLERANCE_DEG`]
    /// (topology-preserving, so no ring collapses), made on first use and kept until the set
    /// changes. Ho Chi Minh City's 217,000 vertices would otherwise go to every browser.
    pub(crate) fn outlines(&self, set: &ioc_wards::BoundarySet) -> Arc<Vec<serde_json::Value>> {
        use geo::SimplifyVwPreserve;
        let mut cached = self.outlines.lock().expect("outlines lock");
        if let Some(o) = cached.as_ref().filter(|o| Arc::ptr_eq(&o.of, &set.index)) {
            return o.geometry.clone();
        }
        let epsilon = DRAW_TOLERANCE_DEG * DRAW_TOLERANCE_DEG;
        let geometry: Arc<Vec<serde_json::Value>> = Arc::new(
            set.index
                .wards()
                .iter()
                .map(|w| {
                    ioc_schema::boundary::multipolygon_to_geojson(
                        &w.geometry.simplify_vw_preserve(epsilon),
                    )
                })
                .collect(),
        );
        *cached = Some(Outlines {
            of: set.index.clone(),
            geometry: geometry.clone(),
        });
        geometry
    }

    pub(crate) fn with_set_in_force<T>(&self, f: impl FnOnce(Option<&BoundarySet>) -> T) -> T {
        let sets = self.sets.read().expect("sets lock").clone();
        f(sets.select(self.now()))
    }

    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Applies an incident record to the view and tells stream subscribers if it changed.
    pub fn apply(&self, incident: Incident) {
        let json = serde_json::to_vec(&incident).expect("an incident serialises");
        self.apply_encoded(incident, &json);
    }

    /// [`AppState::apply`] for an incident decoded from the record `json`.
    pub fn apply_encoded(&self, incident: Incident, json: &[u8]) {
        self.apply_all([Decoded::new(incident, json)]);
    }

    /// [`AppState::apply_encoded`] for records in order, under one hold of the view's lock.
    pub fn apply_all(&self, records: impl IntoIterator<Item = Decoded>) {
        let mut view = self.view.write().expect("view lock");
        let gauge = &self.metrics.dashboard_incidents;
        for record in records {
            let old_status = view.status(&record.incident.id);
            if let Some(changed) = view.apply_decoded(record) {
                if let Some(old) = old_status {
                    gauge.with_label_values(&[old.as_str()]).dec();
                }
                gauge.with_label_values(&[changed.status.as_str()]).inc();
                let _ = self.changes.send(Arc::new(changed));
            }
        }
    }
}
