//! The dashboard's HTTP API: its documented routes and the read handlers (the lifecycle's
//! writes are in [`crate::actions`], Open311 in [`crate::open311`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::HeaderMap;
use axum::middleware::from_fn_with_state;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures::stream::Stream;
use ioc_config::http::Documented;
use ioc_config::limits::{per_client, Limits};
use ioc_schema::lifecycle::Action;
use ioc_schema::metrics::Metrics;
use ioc_schema::names;
use ioc_schema::openapi::{Api, Op};
use ioc_schema::{Incident, Resolution, Status, WardRef};
use ioc_wards::predecessors;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt as _;

use crate::auth::{Authenticated, Caller, Scoped};
use crate::state::to_json;
use crate::view::{Filtered, Query};
use crate::{
    actions, bad_query, figures, not_found, not_yours, open311, scope, view, ApiError, AppState,
    MAP_PAGE, MAX_BODY_BYTES,
};
use crate::{pages, STAGE};

/// The dashboard HTTP application.
pub fn app(state: AppState) -> Router {
    let limits = Limits::from_config(&state.settings.config.limits);
    let (router, _) = routes(state.metrics.clone(), limits);
    router
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The OpenAPI 3.1 description of the dashboard API (served at `/openapi.json`).
pub fn openapi() -> serde_json::Value {
    routes(Metrics::new(), Limits::off()).1
}

fn routes(metrics: Metrics, limits: Limits) -> (Router<AppState>, serde_json::Value) {
    let limited = |m: axum::routing::MethodRouter<AppState>| {
        m.route_layer(from_fn_with_state(limits.clone(), per_client))
    };
    let too_many = (
        429,
        "Too many requests from this client; Retry-After says when to retry",
    );
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
        .route("/console", get(pages::console), |_| {
            vec![html_page("The operators' console: live queue, incidents, actions, figures")]
        })
        .route("/ward", get(pages::ward), |_| {
            vec![html_page("The ward unit's work list (for phones too)")]
        })
        .route("/r/{id}", get(pages::citizen), |_| {
            vec![html_page("The citizen's status page of a report").path_param("id", "The tracking id")]
        })
        .route("/assets/app.js", get(pages::script), |_| {
            vec![Op::get("The pages' script")
                .tag("pages")
                .answers(200, "JavaScript", Some(("text/javascript", json!({"type": "string"}))))]
        })
        .route("/assets/app.css", get(pages::style), |_| {
            vec![Op::get("The pages' style sheet")
                .tag("pages")
                .answers(200, "CSS", Some(("text/css", json!({"type": "string"}))))]
        })
        .route("/v1/incidents", get(list_incidents), |api| {
            let params = api.query::<Query>();
            let page = api.response::<view::Page>();
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
        .route("/v1/violations/counts", get(crate::violations::get_counts), |api| {
            let params = api.query::<crate::violations::ViolationQuery>();
            let list = json!({"type": "array", "items": api.response::<crate::violations::ViolationCount>()});
            vec![Op::get("Enforcement records counted per ward, camera and event type, largest first")
                .tag("operators")
                .describe("Camera event types whose disposition is `record` (router.dispositions: red-light and crossing violations, ANPR captures) become enforcement records instead of incidents. `limit` does not apply here. A ward token sees only its ward's.")
                .security(&["token"])
                .params(params)
                .json(200, "The counts", list)
                .errors(api, read)]
        })
        .route("/v1/violations", get(crate::violations::get_records), |api| {
            let params = api.query::<crate::violations::ViolationQuery>();
            let list = json!({"type": "array", "items": api.response::<ioc_schema::EnforcementRecord>()});
            vec![Op::get("The latest enforcement records, newest first")
                .tag("operators")
                .describe("At most `limit` (default 100) of the latest 5,000. The plate is present only for a token with `plates = true` (e.g. the traffic police unit's). A ward token sees only its ward's.")
                .security(&["token"])
                .params(params)
                .json(200, "The records", list)
                .errors(api, read)]
        })
        .route("/v1/violations/stream", get(crate::violations::stream), |api| {
            let params = api.query::<crate::violations::ViolationStreamQuery>();
            vec![Op::get("Server-Sent Events: one `violation` event per new or rewritten enforcement record")
                .tag("operators")
                .describe("Each event carries the record and its row of counts after it (applying one twice changes nothing). The plate only for a token with `plates = true`; a ward token sees only its ward's. Like /v1/stream, this endpoint also takes the token as `access_token` in the query.")
                .security(&["token"])
                .params(params)
                .answers(200, "An endless event stream", Some(("text/event-stream", json!({"type": "string"}))))
                .errors(api, read)]
        })
        .route("/v1/incidents/{id}/nearby", get(get_nearby), |api| {
            let list = json!({"type": "array", "items": api.response::<crate::view::Nearby>()});
            vec![Op::get("Open incidents that may be the same thing as this one")
                .tag("operators")
                .describe("Of the same category or a related one (dashboard.duplicates.related), within the category's radius and the time window, nearest first, at most 5, each with its distance, time apart and why it matched. A ward token sees only its ward's. Merge one with the mark_duplicate action (undone with split); categories in dashboard.duplicates.auto_attach join the nearest earlier one by themselves.")
                .security(&["token"])
                .path_param("id", id)
                .json(200, "Possible duplicates", list)
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
        .route("/v1/reports/{id}/confirm", limited(post(actions::citizen_confirm)), |api| {
            let answer = api.response::<actions::CitizenAnswer>();
            vec![Op::post("The citizen accepts the resolution")
                .tag("citizens")
                .path_param("id", "The tracking id")
                .json(200, "Closed", answer)
                .errors(api, &[(404, "No such report"), (409, "Not resolved"), (503, "Retry"), too_many])]
        })
        .route("/v1/reports/{id}/dispute", limited(post(actions::citizen_dispute)), |api| {
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
                        too_many,
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
            let params = api.query::<WardSearch>();
            vec![Op::get("The wards in force as an RFC 7946 FeatureCollection, with live counts")
                .tag("operators")
                .security(&["token"])
                .params(params)
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
    open311::document(docs, limits.clone())
        .with_ops(metrics, STAGE, |s: AppState| async move {
            if !s.is_caught_up() {
                return Err("still reading the incident topic after a start".to_string());
            }
            s.sink.reachable().await
        })
        .finish()
}

fn html_page(summary: &str) -> Op {
    Op::get(summary).tag("pages").answers(
        200,
        "HTML",
        Some(("text/html", json!({"type": "string"}))),
    )
}

async fn list_incidents(
    State(s): State<AppState>,
    Scoped(q, _): Scoped,
) -> Result<Response, ApiError> {
    let max = s.max_page;
    Ok(s.scan(move |view| to_json(&view.query(&q, max))).await)
}

async fn get_incident(
    State(s): State<AppState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let incident = s
        .view
        .read()
        .expect("view lock")
        .get(&id)
        .ok_or_else(|| not_found(&id))?;
    if let Caller::Ward(own) = &who.caller {
        if incident.ward.as_ref().map(|w| &w.id) != Some(own) {
            return Err(not_yours());
        }
    }
    Ok(Json(incident).into_response())
}

async fn get_nearby(
    State(s): State<AppState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Vec<crate::view::Nearby>>, ApiError> {
    let view = s.view.read().expect("view lock");
    let incident = view.get(&id).ok_or_else(|| not_found(&id))?;
    let own = match &who.caller {
        Caller::Ward(own) => {
            if incident.ward.as_ref().map(|w| &w.id) != Some(own) {
                return Err(not_yours());
            }
            Some(own.clone())
        }
        _ => None,
    };
    let rules = &s.settings.config.dashboard.duplicates;
    Ok(Json(view.nearby(&incident, rules, |r| {
        own.as_deref().is_none_or(|w| r.ward_id() == Some(w))
    })))
}

/// A citizen's view of their report: status and ward, nothing about anyone else.
async fn get_report_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PublicStatus>, ApiError> {
    let view = s.view.read().expect("view lock");
    let i = view.get(&id).ok_or_else(|| not_found(&id))?;
    let mut body = PublicStatus::of(&i);
    // A report merged into another follows the original from then on.
    if let Some(original) = i.duplicate_of.as_deref().and_then(|o| view.get(o)) {
        body.merged_into = Some(Box::new(PublicStatus::of(&original)));
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

async fn get_stats(State(s): State<AppState>, Scoped(q, _): Scoped) -> Result<Response, ApiError> {
    Ok(s.scan(move |view| to_json(&view.stats(&q))).await)
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

/// Filters of `GET /v1/wards`.
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WardSearch {
    /// Only wards whose name contains this, compared without diacritics or case ("sai gon"
    /// finds "Phường Sài Gòn"), or whose id is this.
    pub q: Option<String>,
}

async fn get_wards(
    State(s): State<AppState>,
    who: Authenticated,
    search: Result<QueryParams<WardSearch>, QueryRejection>,
) -> Result<Response, ApiError> {
    let QueryParams(search) = search.map_err(bad_query)?;
    let wanted = search.q.as_deref().map(|q| (q.trim(), names::fold(q)));
    let counts = s.view.read().expect("view lock").ward_counts();
    let body = s.with_set_in_force(|set| {
        let Some(set) = set else {
            return json!({"type": "FeatureCollection", "boundary_version": null, "features": []});
        };
        let outlines = s.outlines(set);
        let features: Vec<_> = set
            .index
            .wards()
            .iter()
            .zip(outlines.iter())
            .filter(|(w, _)| match &who.caller {
                Caller::Ward(own) => &w.id == own,
                Caller::Operator => true,
            })
            .filter(|(w, _)| {
                wanted
                    .as_ref()
                    .is_none_or(|(q, folded)| w.id == *q || names::fold(&w.name).contains(folded))
            })
            .map(|(w, outline)| {
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
                    "geometry": outline,
                })
            })
            .collect();
        json!({
            "type": "FeatureCollection",
            "boundary_version": set.version,
            "simplified_to_deg": crate::state::DRAW_TOLERANCE_DEG,
            "features": features,
        })
    });
    Ok(Json(body).into_response())
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
    let q = scope(&who.caller, q)?;
    Ok(live_events(
        &s,
        s.changes.subscribe(),
        move |incident: &Incident| q.matches(incident).then(|| incident_event(incident)),
    ))
}

/// A live stream of what `changes` carries, each item made an event by `event` (None: not for
/// this caller); a `lagged` event when the client fell behind (it should load its list again),
/// a keep-alive comment every 15 s, and an end when the dashboard stops.
pub(crate) fn live_events<T, F>(
    s: &AppState,
    changes: broadcast::Receiver<Arc<T>>,
    mut event: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    T: Clone + Send + Sync + 'static,
    F: FnMut(&T) -> Option<Event> + Send + 'static,
{
    let events = BroadcastStream::new(changes).filter_map(move |item| match item {
        Ok(change) => event(&change).map(Ok),
        Err(BroadcastStreamRecvError::Lagged(n)) => {
            Some(Ok(Event::default().event("lagged").data(n.to_string())))
        }
    });
    // A stream never ends by itself; at shutdown it must, or the server waits for it.
    let events = futures::StreamExt::take_until(events, s.stopping.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// A ward unit's open work, most overdue first (operators may pass `ward`).
async fn get_assignments(
    State(s): State<AppState>,
    Scoped(q, _): Scoped,
) -> Result<Response, ApiError> {
    let max = s.max_page;
    Ok(s.scan(move |view| to_json(&view.open_work(&q, max))).await)
}

/// Open incidents past a deadline now, the most overdue first.
async fn get_overdue(
    State(s): State<AppState>,
    Scoped(q, _): Scoped,
) -> Result<Response, ApiError> {
    let now = s.now();
    let limit = q.limit.unwrap_or(100).clamp(1, s.max_page);
    Ok(s.scan(move |view| {
        let (total, items) = view.overdue(&q, now, limit);
        to_json(&json!({
            "at": now,
            "total": total,
            "items": items,
        }))
    })
    .await)
}

/// The month's numbers: per ward and category, resolution-time percentiles, service-level
/// compliance, escalations, rejections and reroutes, over incidents that occurred in
/// `since..until` (default: the last 30 days).
async fn get_figures(
    State(s): State<AppState>,
    Scoped(mut q, _): Scoped,
) -> Result<Response, ApiError> {
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
    let Some(version) = q.boundary_set.clone() else {
        return Ok(s
            .scan(move |view| {
                let report = figures::Figures::compute(
                    view.rows().filter(|r| q.matches(r)).map(|r| r.incident()),
                    now,
                );
                to_json(&json!({
                    "since": q.since,
                    "until": q.until,
                    "at": now,
                    "total": report.total,
                    "rows": report.rows,
                }))
            })
            .await);
    };
    let sets = s.sets.read().expect("sets lock").clone();
    if !sets.sets.iter().any(|set| set.version == version) {
        let known: Vec<&str> = sets.sets.iter().map(|s| s.version.as_str()).collect();
        return Err(bad_query(format!(
            "boundary_set '{version}' is not loaded; the sets are: {}",
            known.join(", ")
        )));
    }
    Ok(s.scan(move |view| {
        let set = sets
            .sets
            .iter()
            .find(|set| set.version == version)
            .expect("checked above");
        let table = set.predecessors.as_deref();
        let mut placed: BTreeMap<&'static str, usize> = BTreeMap::new();
        let counted = view
            .rows()
            .filter(|r| q.matches_but_ward(r))
            .filter_map(|r| {
                let i = r.incident();
                let (ward, how) = predecessors::place(&i, &set.version, &set.index, table);
                let ward = ward.map(|w| set.index.wards()[w as usize].id.clone());
                q.in_ward(ward.as_deref()).then(|| {
                    *placed.entry(how.as_str()).or_default() += 1;
                    (i, ward)
                })
            });
        let report = figures::Figures::compute_in(counted, now);
        to_json(&json!({
            "since": q.since,
            "until": q.until,
            "at": now,
            "boundary_set": set.version,
            "placed": placed,
            "total": report.total,
            "rows": report.rows,
        }))
    })
    .await)
}
