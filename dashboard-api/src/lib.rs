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

pub mod actions;
pub mod auth;
pub mod figures;
pub mod open311;
pub mod view;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
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
use chrono::{DateTime, Utc};
use futures::stream::Stream;
use ioc_config::http::Documented;
use ioc_config::kafka::{client_config, dashboard_consumer_config, LagContext, Sink};
use ioc_config::load::Settings;
use ioc_config::supervise::{CancellationToken, Supervisor};
use ioc_schema::boundary::{multipolygon_to_geojson, WardFeature};
use ioc_schema::lifecycle::Action;
use ioc_schema::metrics::Metrics;
use ioc_schema::openapi::{Api, Op};
use ioc_schema::validate::decode_json;
use ioc_schema::{Incident, Resolution, Status, WardRef};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt as _;

use crate::auth::{Caller, Tokens};
use crate::view::{Query, View};

const STAGE: &str = "dashboard";
/// A topic without new records for this long counts as read to its end.
const CATCH_UP_QUIET: Duration = Duration::from_secs(10);
const MAP_PAGE: &str = include_str!("../assets/map.html");
/// Largest request body the dashboard reads: lifecycle actions, disputes and Open311 forms are
/// small, and every text in them is limited to 4,000 characters.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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
    sink: Sink,
    /// Serialises lifecycle actions so two of them never build on the same revision.
    acting: Arc<tokio::sync::Mutex<()>>,
    /// Whether the view has read the incident topic up to where it ended at start; no change is
    /// written before, so none builds on a stale revision.
    caught_up: Arc<AtomicBool>,
    clock: Clock,
    /// Files Open311 requests through the same path as `POST /v1/reports`.
    intake: ioc_ingest::AppState,
    /// Cancelled when the dashboard stops: live streams end and the monitor stops writing.
    stopping: CancellationToken,
}

/// Where "now" comes from: the system clock, or a test's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

impl AppState {
    /// Builds the state: loads the boundary set in force now (for the map) and the tokens.
    pub fn new(
        settings: Arc<Settings>,
        metrics: Metrics,
        clock: Clock,
    ) -> anyhow::Result<AppState> {
        let now = clock();
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
            max_page: settings.config.dashboard.max_page_size,
            sink: Sink::new(&settings.config, metrics.clone(), STAGE)
                .context("creating the dashboard's Kafka producer")?,
            intake: ioc_ingest::AppState::new(settings.clone(), metrics.clone())?,
            metrics,
            settings,
            acting: Arc::default(),
            caught_up: Arc::default(),
            clock,
            stopping: CancellationToken::new(),
        })
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
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
        let mut resp = (
            self.0,
            Json(json!({"error": {"code": self.1, "message": self.2}})),
        )
            .into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        resp
    }
}

/// The dashboard HTTP application.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes(state.metrics.clone());
    router
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The OpenAPI 3.1 description of the dashboard API (served at `/openapi.json`).
pub fn openapi() -> serde_json::Value {
    routes(Metrics::new()).1
}

fn routes(metrics: Metrics) -> (Router<AppState>, serde_json::Value) {
    let mut api = Api::new(
        "ioc dashboard",
        "What IOC operators and ward units watch and work with, the citizen's view of a report, and Open311 GeoReport v2. A ward unit's token sees only its own ward.",
    );
    api.security_scheme(
        "token",
        json!({"type": "http", "scheme": "bearer", "description": "An operator's or a ward unit's token (`ioc token` makes one)."}),
    );
    let read: &[(u16, &str)] = &[
        (400, "A bad query parameter, or a token in the URL"),
        (401, "No token, or an invalid one"),
        (403, "Not in this ward unit's ward"),
    ];
    let id = "The incident's id (a report's tracking id, or `cam-…` for a camera event)";
    let docs = Documented::new(api)
        .route("/", get(|| async { Html(MAP_PAGE) }), |_| {
            vec![Op::get("The live map page (sign in with a token)")
                .tag("operators")
                .answers(200, "HTML", Some(("text/html", json!({"type": "string"}))))]
        })
        .route("/v1/incidents", get(list_incidents), |api| {
            let params = api.query::<Query>();
            let page = api.response::<view::Page<'static>>();
            vec![Op::get("Incidents, newest first, filtered and paginated")
                .tag("operators")
                .security(&["token"])
                .params(params)
                .json(200, "One page", page)
                .errors(api, read)]
        })
        .route("/v1/incidents/{id}", get(get_incident), |api| {
            let incident = api.response::<Incident>();
            vec![Op::get("One incident with its full history")
                .tag("operators")
                .security(&["token"])
                .path_param("id", id)
                .json(200, "The incident", incident)
                .errors(api, read)
                .errors(api, &[(404, "No such incident")])]
        })
        .route("/v1/incidents/{id}/actions", post(actions::post_action), |api| {
            let body = api.request::<Action>();
            let incident = api.response::<Incident>();
            vec![Op::post("A lifecycle action by an operator or a ward unit")
                .tag("ward units")
                .security(&["token"])
                .path_param("id", id)
                .json_body(body)
                .json(200, "The incident's new revision", incident)
                .errors(api, read)
                .errors(
                    api,
                    &[
                        (404, "No such incident"),
                        (409, "Not allowed in the incident's current state (the message names it)"),
                        (413, "The body is too large"),
                        (422, "A field breaks a rule"),
                        (503, "The change could not be stored; retry"),
                        (500, "The event store refused the change for good"),
                    ],
                )]
        })
        .route("/v1/reports/{id}", get(get_report_status), |api| {
            let status = api.response::<PublicStatus>();
            vec![Op::get("A citizen's view of their report: status, ward and result")
                .tag("citizens")
                .path_param("id", "The tracking id")
                .json(200, "The report's status", status)
                .errors(api, &[(404, "No such report")])]
        })
        .route("/v1/reports/{id}/confirm", post(actions::citizen_confirm), |api| {
            let answer = api.response::<actions::CitizenAnswer>();
            vec![Op::post("The citizen accepts the resolution")
                .tag("citizens")
                .path_param("id", "The tracking id")
                .json(200, "Closed", answer)
                .errors(api, &[(404, "No such report"), (409, "Not resolved"), (503, "Retry")])]
        })
        .route("/v1/reports/{id}/dispute", post(actions::citizen_dispute), |api| {
            let body = api.request::<actions::Dispute>();
            let answer = api.response::<actions::CitizenAnswer>();
            vec![Op::post("The citizen disputes the resolution (within the reopen window)")
                .tag("citizens")
                .path_param("id", "The tracking id")
                .json_body(body)
                .json(200, "Reopened", answer)
                .errors(
                    api,
                    &[
                        (404, "No such report"),
                        (409, "Not resolved, or the window has passed"),
                        (413, "The body is too large"),
                        (422, "No reason given"),
                        (503, "Retry"),
                    ],
                )]
        })
        .route("/v1/assignments", get(get_assignments), |api| {
            let params = api.query::<Query>();
            let list = json!({"type": "array", "items": api.response::<Incident>()});
            vec![Op::get("A ward unit's open work, earliest due first")
                .tag("ward units")
                .security(&["token"])
                .params(params)
                .json(200, "Open assignments", list)
                .errors(api, read)]
        })
        .route("/v1/overdue", get(get_overdue), |api| {
            let params = api.query::<Query>();
            vec![Op::get("Open incidents past a deadline now, most overdue first")
                .tag("operators")
                .security(&["token"])
                .params(params)
                .json(200, "Overdue incidents", json!({"type": "object", "required": ["at", "total", "items"]}))
                .errors(api, read)]
        })
        .route("/v1/figures", get(get_figures), |api| {
            let params = api.query::<Query>();
            vec![Op::get("Per ward and category over since..until (default the last 30 days)")
                .tag("operators")
                .security(&["token"])
                .params(params)
                .json(200, "Figures", json!({"type": "object", "required": ["since", "until", "at", "total", "rows"]}))
                .errors(api, read)]
        })
        .route("/v1/stats", get(get_stats), |api| {
            let params = api.query::<Query>();
            let stats = api.response::<view::Stats>();
            vec![Op::get("Counts by ward, status and category")
                .tag("operators")
                .security(&["token"])
                .params(params)
                .json(200, "Counts", stats)
                .errors(api, read)]
        })
        .route("/v1/wards", get(get_wards), |api| {
            vec![Op::get("The wards in force as an RFC 7946 FeatureCollection, with live counts")
                .tag("operators")
                .security(&["token"])
                .answers(200, "GeoJSON", Some(("application/json", json!({"type": "object", "required": ["type", "features"]}))))
                .errors(api, read)]
        })
        .route("/v1/stream", get(stream), |api| {
            let params = api.query::<Query>();
            vec![Op::get("Server-Sent Events: one `incident` event per change")
                .tag("operators")
                .describe("Browsers cannot set headers on an EventSource, so this endpoint alone also takes the token as `access_token` in the query.")
                .security(&["token"])
                .params(params)
                .answers(200, "An endless event stream", Some(("text/event-stream", json!({"type": "string"}))))
                .errors(api, read)]
        });
    open311::document(docs).with_ops(metrics).finish()
}

/// Who is asking, from the `Authorization` header. A token in the URL is refused here: only the
/// event stream takes one (see [`stream`]).
fn caller(s: &AppState, headers: &HeaderMap, q: &Query) -> Result<Caller, ApiError> {
    if q.access_token.is_some() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "token_in_url",
            "access_token in the URL is accepted only by /v1/stream; send 'Authorization: Bearer <token>' instead.".into(),
        ));
    }
    s.tokens.authenticate(headers, None)
}

/// The refusal a ward unit gets for anything outside its ward: it says no more than that.
fn not_yours() -> ApiError {
    ApiError(
        StatusCode::FORBIDDEN,
        "forbidden",
        "This is not in your ward.".into(),
    )
}

/// Narrows a query to what the caller may see: a ward unit only its own ward.
fn scope(caller: &Caller, mut q: Query) -> Result<Query, ApiError> {
    if let Caller::Ward(own) = caller {
        match &q.ward {
            Some(w) if w != own => return Err(not_yours()),
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
        format!(
            "Bad query parameter: {}. Filters: ward, status ({}), category, since, until (RFC 3339), limit, offset.",
            e.to_string().replace(['\n', '\r'], " "),
            Status::ALL.map(Status::as_str).join(", ")
        ),
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
            return Err(not_yours());
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
) -> Result<Json<PublicStatus>, ApiError> {
    let view = s.view.read().expect("view lock");
    let i = view.get(&id).ok_or_else(|| not_found(&id))?;
    let mut body = PublicStatus::of(i);
    // A report merged into another follows the original from then on.
    if let Some(original) = i.duplicate_of.as_deref().and_then(|o| view.get(o)) {
        body.merged_into = Some(Box::new(PublicStatus::of(original)));
    }
    Ok(Json(body))
}

/// What a citizen may see of an incident: status, ward and result; who acted and internal notes
/// stay inside.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PublicStatus {
    pub tracking_id: String,
    pub category: String,
    pub status: Status,
    pub ward: Option<WardRef>,
    pub unit: Option<String>,
    pub submitted_at: DateTime<Utc>,
    /// The service-level deadline.
    pub expected_by: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The unit's result, once resolved.
    pub result: Option<Resolution>,
    /// Each change of status, oldest first.
    pub history: Vec<PublicStep>,
    /// The report this one was merged into, which it follows from then on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<Box<PublicStatus>>,
}

/// One change of status, as a citizen sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PublicStep {
    pub at: DateTime<Utc>,
    pub status: Status,
}

impl PublicStatus {
    pub fn of(i: &Incident) -> PublicStatus {
        PublicStatus {
            tracking_id: i.id.clone(),
            category: i.category.clone(),
            status: i.status,
            ward: i.ward.clone(),
            unit: i.unit.clone(),
            submitted_at: i.occurred_at,
            expected_by: i.sla_due_at,
            updated_at: i.updated_at,
            result: i.resolution.clone(),
            history: i
                .history
                .iter()
                .filter(|t| t.from != Some(t.to))
                .map(|t| PublicStep {
                    at: t.at,
                    status: t.to,
                })
                .collect(),
            merged_into: None,
        }
    }
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

/// One incident as a Server-Sent Event. Ids are made by us from a safe alphabet; the check is
/// kept anyway because axum panics on a line break in an event id, which would cut the stream.
fn incident_event(incident: &Incident) -> Event {
    let event = Event::default().event("incident");
    let event = if ioc_schema::validate::check_id("id", &incident.id).is_ok() {
        event.id(format!("{}:{}", incident.id, incident.revision))
    } else {
        event
    };
    // JSON escapes every control character, so the data line cannot be broken either.
    event.data(serde_json::to_string(incident).unwrap_or_else(|_| "{}".into()))
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
    let QueryParams(mut q) = q.map_err(bad_query)?;
    let who = s
        .tokens
        .authenticate(&headers, q.access_token.take().as_deref())?;
    let q = scope(&who, q)?;
    let events = BroadcastStream::new(s.changes.subscribe()).filter_map(move |item| match item {
        Ok(incident) if q.matches(&incident) => Some(Ok(incident_event(&incident))),
        Ok(_) => None,
        // The client fell behind; it should reload the list.
        Err(BroadcastStreamRecvError::Lagged(n)) => {
            Some(Ok(Event::default().event("lagged").data(n.to_string())))
        }
    });
    // A stream never ends by itself; at shutdown it must, or the server waits for it.
    let events = futures::StreamExt::take_until(events, s.stopping.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
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

/// Open incidents past a deadline now, the most overdue first.
async fn get_overdue(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<QueryParams<Query>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = scoped(&s, &headers, q)?;
    let now = s.now();
    let view = s.view.read().expect("view lock");
    let items = figures::overdue(view.iter().filter(|i| q.matches(i)), now);
    let limit = q.limit.unwrap_or(100).clamp(1, s.max_page);
    Ok(Json(json!({
        "at": now,
        "total": items.len(),
        "items": items.into_iter().take(limit).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// The month's numbers: per ward and category, resolution-time percentiles, service-level
/// compliance, escalations, rejections and reroutes, over incidents that occurred in
/// `since..until` (default: the last 30 days).
async fn get_figures(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<QueryParams<Query>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut q = scoped(&s, &headers, q)?;
    let now = s.now();
    let until = q.until.unwrap_or(now);
    let since = match q.since {
        Some(t) => t,
        None => until
            .checked_sub_signed(chrono::Duration::days(30))
            .ok_or_else(|| bad_query("until is too early to count 30 days back from"))?,
    };
    q.since = Some(since);
    q.until = Some(until);
    let view = s.view.read().expect("view lock");
    let report = figures::Figures::compute(view.iter().filter(|i| q.matches(i)), now);
    Ok(Json(json!({
        "since": q.since,
        "until": q.until,
        "at": now,
        "total": report.total,
        "rows": report.rows,
    }))
    .into_response())
}

/// Offsets the view must reach before it has read everything that was on the topic at start:
/// partition → high watermark, for non-empty partitions.
fn catch_up_targets(settings: &Settings) -> anyhow::Result<HashMap<i32, i64>> {
    let cfg = &settings.config;
    let probe: BaseConsumer = client_config(cfg)
        .set("group.id", format!("{}-probe", cfg.dashboard.group_prefix))
        .create()?;
    let topic = &cfg.topics.incidents;
    let md = probe.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut out = HashMap::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = probe.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        if high > low {
            out.insert(p.id(), high);
        }
    }
    Ok(out)
}

/// Reads the incident topic from the beginning into the view until `shutdown`.
pub async fn consume(
    settings: &Settings,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let cfg = &settings.config;
    let group = format!("{}-{}", cfg.dashboard.group_prefix, uuid::Uuid::new_v4());
    let consumer: StreamConsumer<LagContext> = dashboard_consumer_config(cfg, &group)
        .create_with_context(LagContext {
            metrics: state.metrics.clone(),
            stage: STAGE,
        })
        .context("creating the dashboard's Kafka consumer")?;
    consumer
        .subscribe(&[&cfg.topics.incidents])
        .context("subscribing to the incident topic")?;
    let probe_settings = settings.clone();
    let mut targets = match tokio::task::spawn_blocking(move || catch_up_targets(&probe_settings))
        .await
        .expect("watermark probe does not panic")
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("cannot read the incident topic's end offsets ({e:#}); treating the first {CATCH_UP_QUIET:?} without records as caught up");
            HashMap::from([(-1, i64::MAX)])
        }
    };
    let mut last_record = std::time::Instant::now();
    let mut check = tokio::time::interval(Duration::from_millis(250));
    tokio::pin!(shutdown);
    loop {
        if !targets.is_empty() && last_record.elapsed() >= CATCH_UP_QUIET {
            // Some brokers report end offsets that are never reached (e.g. after transaction
            // markers); a quiet topic is as caught up as it gets.
            targets.clear();
        }
        if targets.is_empty() && !state.is_caught_up() {
            tracing::info!(
                incidents = state.view.read().expect("view lock").len(),
                "dashboard caught up with the incident topic"
            );
            state.caught_up.store(true, Ordering::Release);
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = check.tick() => {}
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    last_record = std::time::Instant::now();
                    if targets.get(&m.partition()).is_some_and(|end| m.offset() + 1 >= *end) {
                        targets.remove(&m.partition());
                    }
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
    serve_with_clock(listener, settings, metrics, system_clock(), shutdown).await
}

/// Like [`serve`] with a given clock (tests move time forward to see deadlines pass).
pub async fn serve_with_clock(
    listener: tokio::net::TcpListener,
    settings: Arc<Settings>,
    metrics: Metrics,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut state = AppState::new(settings.clone(), metrics, clock)?;
    if state.tokens.is_empty() {
        tracing::warn!("dashboard.tokens is empty: every request except /v1/reports/{{id}} will be refused; add a token (see README)");
    }
    tracing::info!("dashboard API on http://{}", listener.local_addr()?);
    let mut tasks = Supervisor::new();
    let token = tasks.token();
    state.stopping = token.clone();
    let server = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(token.clone().cancelled_owned());
    tasks.spawn("HTTP server", async move {
        server.await.context("serving the dashboard")
    });
    if settings.config.dashboard.monitor {
        tasks.spawn(
            "service-level monitor",
            actions::monitor(state.clone(), token.clone()),
        );
    }
    let consumed = settings.clone();
    tasks.spawn("incident consumer", async move {
        consume(&consumed, state, token.cancelled_owned()).await
    });
    tasks.run(STAGE, shutdown, Duration::from_secs(10)).await
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
