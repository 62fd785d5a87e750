//! The dashboard API: what IOC operators and ward units watch.
//!
//! It consumes the incident topic from the beginning (every instance on its own, with a unique
//! consumer group and no commits) and keeps the latest revision of every incident in memory, then
//! serves:
//! - `GET /v1/incidents` with filters (ward, status, category, time range) and pagination,
//!   `GET /v1/incidents/{id}`, `GET /v1/stats` (counts by ward × status × category),
//!   `GET /v1/wards` (GeoJSON with live counts), `GET /v1/stream` (Server-Sent Events of every
//!   incident change): all need a token; a ward unit's token sees only its own ward.
//! - `GET /v1/reports/{tracking_id}`: a citizen's public view of their report, no token needed.
//! - `GET /` (the live map page), `/healthz`, `/metrics`.
//!
//! Incidents carry no contact details or plates (see `ioc_schema::Incident`), so nothing served
//! here can leak them.
//!
//! Modules: [`view`] (the in-memory view and its queries), [`auth`] (tokens and roles).

pub mod auth;
pub mod view;

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::Stream;
use ioc_config::kafka::{client_config, producer_config, LagContext};
use ioc_config::load::Settings;
use ioc_schema::boundary::{multipolygon_to_geojson, WardFeature};
use ioc_schema::lifecycle::{self, Action, Context, Role};
use ioc_schema::metrics::Metrics;
use ioc_schema::validate::decode_json;
use ioc_schema::{Incident, WardRef};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt as _;

use crate::auth::{Caller, Tokens};
use crate::view::{Query, View};

const STAGE: &str = "dashboard";
const MAP_PAGE: &str = include_str!("../assets/map.html");

/// State shared by the handlers and the consumer.
#[derive(Clone)]
pub struct AppState {
    view: Arc<RwLock<View>>,
    changes: broadcast::Sender<Arc<Incident>>,
    wards: Arc<Vec<WardFeature>>,
    boundary_version: Arc<str>,
    tokens: Arc<Tokens>,
    metrics: Metrics,
    max_page: usize,
    settings: Arc<Settings>,
    producer: FutureProducer,
    /// Serialises lifecycle actions so two of them never build on the same revision.
    acting: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    /// Builds the state: loads the boundary set in force now (for the map) and the tokens.
    pub fn new(settings: Arc<Settings>, metrics: Metrics) -> anyhow::Result<AppState> {
        let now = chrono::Utc::now();
        let set = settings
            .config
            .boundaries
            .iter()
            .filter(|b| b.valid_from <= now && b.valid_to.is_none_or(|t| now < t))
            .max_by_key(|b| b.valid_from)
            .context("no boundary set is in force now; the map needs one")?;
        let file = settings.file(&set.file).map_err(anyhow::Error::msg)?;
        let text = file.read().with_context(|| format!("reading {file}"))?;
        let wards = ioc_schema::boundary::parse_wards(
            &text,
            &set.id_property,
            set.name_property.as_deref(),
        )
        .with_context(|| format!("boundary file {file}"))?;
        Ok(AppState {
            view: Arc::default(),
            changes: broadcast::channel(4096).0,
            wards: Arc::new(wards),
            boundary_version: set.version.as_str().into(),
            tokens: Arc::new(Tokens::from_config(&settings.config.dashboard.tokens)),
            metrics,
            max_page: settings.config.dashboard.max_page_size,
            producer: producer_config(&settings.config)
                .create()
                .context("creating the dashboard's Kafka producer")?,
            settings,
            acting: Arc::default(),
        })
    }

    /// Applies an incident record to the view and tells stream subscribers if it changed.
    pub fn apply(&self, incident: Incident) {
        let mut view = self.view.write().expect("view lock");
        let old_status = view.get(&incident.id).map(|i| i.status);
        if let Some(changed) = view.apply(incident) {
            let gauge = &self.metrics.dashboard_incidents;
            if let Some(old) = old_status {
                gauge.with_label_values(&[old.as_str()]).dec();
            }
            gauge.with_label_values(&[changed.status.as_str()]).inc();
            let _ = self.changes.send(Arc::new(changed.clone()));
        }
    }
}

/// The one error type of the HTTP layer.
pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error": {"code": self.1, "message": self.2}})),
        )
            .into_response()
    }
}

/// The dashboard HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Html(MAP_PAGE) }))
        .route("/v1/incidents", get(list_incidents))
        .route("/v1/incidents/{id}", get(get_incident))
        .route("/v1/reports/{id}", get(get_report_status))
        .route("/v1/reports/{id}/confirm", post(citizen_confirm))
        .route("/v1/reports/{id}/dispute", post(citizen_dispute))
        .route("/v1/incidents/{id}/actions", post(post_action))
        .route("/v1/assignments", get(get_assignments))
        .route("/v1/stats", get(get_stats))
        .route("/v1/wards", get(get_wards))
        .route("/v1/stream", get(stream))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.render() }),
        )
        .with_state(state)
}

fn caller(s: &AppState, headers: &HeaderMap, q: &Query) -> Result<Caller, ApiError> {
    s.tokens.authenticate(headers, q.access_token.as_deref())
}

/// Narrows a query to what the caller may see: a ward unit only its own ward.
fn scope(caller: &Caller, mut q: Query) -> Result<Query, ApiError> {
    if let Caller::Ward(own) = caller {
        match &q.ward {
            Some(w) if w != own => {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("This token may only see ward {own}."),
                ))
            }
            _ => q.ward = Some(own.clone()),
        }
    }
    Ok(q)
}

/// The query of a filtered endpoint, narrowed to what the caller may see.
fn scoped(
    s: &AppState,
    headers: &HeaderMap,
    q: Result<QueryParams<Query>, QueryRejection>,
) -> Result<Query, ApiError> {
    let QueryParams(q) = q.map_err(bad_query)?;
    scope(&caller(s, headers, &q)?, q)
}

fn bad_query(e: impl std::fmt::Display) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("Bad query parameter: {e}. Filters: ward, status, category, since, until (RFC 3339), limit, offset."),
    )
}

async fn list_incidents(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<QueryParams<Query>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = scoped(&s, &headers, q)?;
    let view = s.view.read().expect("view lock");
    Ok(Json(view.query(&q, s.max_page)).into_response())
}

async fn get_incident(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = caller(&s, &headers, &Query::default())?;
    let view = s.view.read().expect("view lock");
    let incident = view.get(&id).ok_or_else(|| not_found(&id))?;
    if let Caller::Ward(own) = &who {
        if incident.ward.as_ref().map(|w| &w.id) != Some(own) {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("This token may only see ward {own}."),
            ));
        }
    }
    Ok(Json(incident).into_response())
}

fn not_found(id: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("No incident {id}. A report just accepted may take a moment to appear."),
    )
}

/// A citizen's view of their report: status and ward, nothing about anyone else.
async fn get_report_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = s.view.read().expect("view lock");
    let i = view.get(&id).ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({
        "tracking_id": i.id,
        "category": i.category,
        "status": i.status,
        "ward": i.ward,
        "unit": i.unit,
        "submitted_at": i.occurred_at,
        "expected_by": i.sla_due_at,
        "updated_at": i.updated_at,
        "result": i.resolution,
        // Public history: what changed and when; who did it and internal notes stay inside.
        "history": i.history.iter().map(|t| json!({"at": t.at, "status": t.to})).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn get_stats(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<QueryParams<Query>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = scoped(&s, &headers, q)?;
    let view = s.view.read().expect("view lock");
    Ok(Json(view.stats(&q)).into_response())
}

async fn get_wards(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = caller(&s, &headers, &Query::default())?;
    let view = s.view.read().expect("view lock");
    let counts = view.ward_counts();
    let features: Vec<_> = s
        .wards
        .iter()
        .filter(|w| match &who {
            Caller::Ward(own) => &w.id == own,
            Caller::Operator => true,
        })
        .map(|w| {
            let c = counts.get(w.id.as_str()).cloned().unwrap_or_default();
            json!({
                "type": "Feature",
                "id": w.id,
                "properties": {
                    "id": w.id,
                    "name": w.name,
                    "incidents": c.values().sum::<usize>(),
                    "by_status": c,
                },
                "geometry": multipolygon_to_geojson(&w.geometry),
            })
        })
        .collect();
    Ok(Json(json!({
        "type": "FeatureCollection",
        "boundary_version": &*s.boundary_version,
        "features": features,
    }))
    .into_response())
}

async fn stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<QueryParams<Query>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let q = scoped(&s, &headers, q)?;
    let events = BroadcastStream::new(s.changes.subscribe()).filter_map(move |item| match item {
        Ok(incident) if q.matches(&incident) => Some(Ok(Event::default()
            .event("incident")
            .id(format!("{}:{}", incident.id, incident.revision))
            .json_data(&*incident)
            .expect("incident serializes"))),
        Ok(_) => None,
        // The client fell behind; it should reload the list.
        Err(BroadcastStreamRecvError::Lagged(n)) => {
            Some(Ok(Event::default().event("lagged").data(n.to_string())))
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// How long after a resolution a citizen may dispute it.
const REOPEN_WINDOW_DAYS: i64 = 7;

/// Applies a lifecycle action: checks it against the current state, writes the new revision to
/// the incident topic (the single source of truth), and only then updates the local view.
async fn act(
    s: &AppState,
    id: &str,
    action: Action,
    role: Role,
    actor: &str,
) -> Result<Incident, ApiError> {
    let _one_at_a_time = s.acting.lock().await;
    let current = s
        .view
        .read()
        .expect("view lock")
        .get(id)
        .cloned()
        .ok_or_else(|| not_found(id))?;
    let ward = match &action {
        Action::Assign { ward_id, .. } => {
            s.wards.iter().find(|w| &w.id == ward_id).map(|w| WardRef {
                id: w.id.clone(),
                name: w.name.clone(),
            })
        }
        _ => None,
    };
    let cx = Context {
        role,
        actor_name: actor,
        at: chrono::Utc::now(),
        ward,
        unit: s
            .settings
            .category(&current.category)
            .map(|c| c.unit.clone()),
        reopen_window: chrono::Duration::days(REOPEN_WINDOW_DAYS),
    };
    let next = lifecycle::apply(&current, &action, &cx).map_err(|r| {
        let status = match r.code {
            "forbidden" => StatusCode::FORBIDDEN,
            "invalid" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        };
        ApiError(
            status,
            r.code,
            format!("{} The incident is {}.", r.message, r.current.as_str()),
        )
    })?;
    let payload = serde_json::to_vec(&next).expect("incident serializes");
    let record = FutureRecord::to(&s.settings.config.topics.incidents)
        .key(&next.id)
        .payload(&payload);
    s.producer
        .send(record, s.settings.config.kafka.produce_timeout.0)
        .await
        .map_err(|(e, _)| {
            tracing::warn!("cannot write incident change: {e}");
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The change could not be stored; retry later.".into(),
            )
        })?;
    s.apply(next.clone());
    Ok(next)
}

async fn post_action(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let who = caller(&s, &headers, &Query::default())?;
    let action: Action = decode_json(&body)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.message))?;
    let (role, name) = match who {
        Caller::Operator => (Role::Operator, "operator"),
        Caller::Ward(w) => (Role::WardUnit(w), "ward unit"),
    };
    Ok(Json(act(&s, &id, action, role, name).await?).into_response())
}

async fn citizen_confirm(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let next = act(&s, &id, Action::Close, Role::Citizen, "citizen").await?;
    Ok(Json(json!({"tracking_id": next.id, "status": next.status})).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Dispute {
    reason: String,
}

async fn citizen_dispute(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let d: Dispute = decode_json(&body)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.message))?;
    let next = act(
        &s,
        &id,
        Action::Reopen { reason: d.reason },
        Role::Citizen,
        "citizen",
    )
    .await?;
    Ok(Json(json!({"tracking_id": next.id, "status": next.status})).into_response())
}

/// A ward unit's open work, most overdue first (operators may pass `ward`).
async fn get_assignments(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<QueryParams<Query>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = scoped(&s, &headers, q)?;
    let view = s.view.read().expect("view lock");
    Ok(Json(view.open_work(&q, s.max_page)).into_response())
}

/// Reads the incident topic from the beginning into the view until `shutdown`.
pub async fn consume(
    settings: &Settings,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let cfg = &settings.config;
    let group = format!("{}-{}", cfg.dashboard.group_prefix, uuid::Uuid::new_v4());
    let consumer: StreamConsumer<LagContext> = client_config(cfg)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        .create_with_context(LagContext {
            metrics: state.metrics.clone(),
            stage: STAGE,
        })
        .context("creating the dashboard's Kafka consumer")?;
    consumer
        .subscribe(&[&cfg.topics.incidents])
        .context("subscribing to the incident topic")?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    state.metrics.events_in.with_label_values(&[STAGE, "incident"]).inc();
                    match decode_json::<Incident>(m.payload().unwrap_or_default()) {
                        Ok(incident) => state.apply(incident),
                        Err(e) => {
                            state.metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
                            tracing::warn!(partition = m.partition(), offset = m.offset(), "skipping unreadable incident: {}", e.message);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Serves the dashboard on `listener` and consumes incidents until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Arc<Settings>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState::new(settings.clone(), metrics)?;
    if state.tokens.is_empty() {
        tracing::warn!("dashboard.tokens is empty: every request except /v1/reports/{{id}} will be refused; add a token (see README)");
    }
    tracing::info!("dashboard API on http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server =
        axum::serve(listener, app(state.clone())).with_graceful_shutdown(stopped(stop_rx.clone()));
    let server = tokio::spawn(async move { server.await });
    let consumed = consume(&settings, state, async {
        shutdown.await;
    })
    .await;
    let _ = stop_tx.send(true);
    // Open SSE streams never end on their own; give the server a moment, then move on.
    let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
    consumed
}

/// Serves the dashboard on `dashboard.listen` until `shutdown`.
pub async fn run(
    settings: Arc<Settings>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = ioc_config::bind("dashboard.listen", &settings.config.dashboard.listen).await?;
    serve(listener, settings, metrics, shutdown).await
}
