//! Open311 GeoReport v2, so existing 311 apps and tools can file and follow reports. Every
//! resource is served as `.json` and as `.xml` (the spec's required format).
//!
//! - `GET /open311/v2/services.json`: the categories, as services.
//! - `POST /open311/v2/requests.json`: form-encoded, with `api_key`; filed through the same path
//!   as `POST /v1/reports` (validated, written to the reports topic, acknowledged by Kafka before
//!   the answer), so it becomes an incident like any other report.
//! - `GET /open311/v2/requests.json`: filters `service_request_id`, `service_code`, `start_date`,
//!   `end_date`, `status`; by default the last 90 days, at most 1000 requests, newest first.
//! - `GET /open311/v2/requests/{id}.json`: one request.
//!
//! The lifecycle's finer states map onto `open`/`closed`, with `status_notes` saying where the
//! request stands; `expected_datetime` is the service-level deadline. Errors use the spec's
//! format: a JSON array of `{"code", "description"}`. Only citizens' reports are served here,
//! never camera events, and nothing about reporters.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Form, Json};
use chrono::{DateTime, Duration, Utc};
use ioc_config::http::Documented;
use ioc_config::intake::FileError;
use ioc_config::limits::{retry_after_secs, Limits, Peer};
use ioc_config::load::find_by_digest;
use ioc_schema::openapi::Op;
use ioc_schema::{Channel, Contact, Incident, Location, ReportSubmission, Source, Status};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::view::Filtered;
use crate::AppState;

/// Most requests in one `GET requests.json` answer.
const MAX_REQUESTS: usize = 1000;
/// Default window of `GET requests.json` without dates.
const DEFAULT_DAYS: i64 = 90;

/// Adds the Open311 routes, documented, under `/open311/v2`.
pub fn document(docs: Documented<AppState>, limits: Limits) -> Documented<AppState> {
    // The per-address limit of the public routes, refusing in this API's own error format.
    let limited = |m: MethodRouter<AppState>| {
        m.route_layer(axum::middleware::from_fn_with_state(
            limits.clone(),
            per_client,
        ))
    };
    let file = "`services.json` or `requests.json`, or the same in `.xml`";
    // Every answer comes in the format the path's extension names, errors included.
    let fmt_answers = |op: Op, ok: u16, ok_text: &str| {
        [ok, 400, 403, 404, 413, 500, 503]
            .into_iter()
            .fold(op, |op, status| {
                let description = if status == ok {
                    ok_text
                } else {
                    "Refused, in the spec's error format"
                };
                op.answers_in(
                    status,
                    description,
                    json!({
                        "application/json": {"schema": {"type": "array"}},
                        "text/xml": {"schema": {"type": "string"}},
                    }),
                )
            })
    };
    docs.route(
        "/open311/v2/{file}",
        get(get_collection).merge(limited(post(post_request))),
        |_| {
            vec![
                fmt_answers(
                    Op::get("Open311: the services (categories) or the requests, with the spec's filters")
                        .tag("open311")
                        .path_param_of("file", file, json!({"enum": ["services.json", "services.xml", "requests.json", "requests.xml"]})),
                    200,
                    "Services or requests",
                ),
                fmt_answers(
                    Op::post("Open311: file a request (form-encoded, with api_key)")
                        .tag("open311")
                        .path_param_of("file", "`requests.json` or `requests.xml`", json!({"enum": ["requests.json", "requests.xml"]}))
                        .body(
                            "application/x-www-form-urlencoded",
                            json!({"type": "object", "properties": {
                                "api_key": {"type": "string"}, "service_code": {"type": "string"},
                                "lat": {"type": "string"}, "long": {"type": "string"},
                                "description": {"type": "string"}, "address_string": {"type": "string"},
                                "media_url": {"type": "string"}, "email": {"type": "string"},
                                "first_name": {"type": "string"}, "last_name": {"type": "string"},
                                "phone": {"type": "string"}, "jurisdiction_id": {"type": "string"}}}),
                        ),
                    201,
                    "Filed: durably in Kafka",
                )
                .answers_in(
                    429,
                    "Too many requests from this client or API key; Retry-After says when to retry (the spec's error format)",
                    json!({
                        "application/json": {"schema": {"type": "array"}},
                        "text/xml": {"schema": {"type": "string"}},
                    }),
                ),
            ]
        },
    )
    .route("/open311/v2/services/{file}", get(service_definition), |_| {
        vec![fmt_answers(
            Op::get("Open311 service definitions (none are offered: every service is realtime without attributes)")
                .tag("open311")
                .path_param("file", "`{service_code}.json` or `.xml`"),
            200,
            "Never: answered 404",
        )]
    })
    .route("/open311/v2/requests/{file}", get(one_request), |_| {
        vec![fmt_answers(
            Op::get("Open311: one request")
                .tag("open311")
                .path_param("file", "`{service_request_id}.json` or `.xml`"),
            200,
            "The request",
        )]
    })
}

/// The two formats of the spec, chosen by the file extension of the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// Splits `name.json` / `name.xml` into the name and its format.
    fn split(file: &str) -> Option<(&str, Format)> {
        if let Some(name) = file.strip_suffix(".json") {
            Some((name, Format::Json))
        } else {
            file.strip_suffix(".xml").map(|name| (name, Format::Xml))
        }
    }
}

/// A list answer: `root` and `item` name the XML elements; JSON is the plain array.
fn respond(fmt: Format, status: StatusCode, root: &str, item: &str, items: Vec<Value>) -> Response {
    match fmt {
        Format::Json => (status, Json(items)).into_response(),
        Format::Xml => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
            out.push_str(&format!("<{root}>"));
            for v in &items {
                out.push_str(&format!("<{item}>"));
                if let Value::Object(fields) = v {
                    for (k, v) in fields {
                        match v {
                            Value::Null => out.push_str(&format!("<{k}/>")),
                            Value::String(s) => {
                                out.push_str(&format!("<{k}>{}</{k}>", xml_escape(s)))
                            }
                            other => out.push_str(&format!(
                                "<{k}>{}</{k}>",
                                xml_escape(&other.to_string())
                            )),
                        }
                    }
                }
                out.push_str(&format!("</{item}>"));
            }
            out.push_str(&format!("</{root}>"));
            (
                status,
                [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
                out,
            )
                .into_response()
        }
    }
}

/// Escapes text for XML 1.0 and drops what it cannot carry at all (control characters other
/// than tab and line breaks, U+FFFE, U+FFFF), so the feed stays well-formed whatever was stored.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| xml_char(*c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether XML 1.0 can carry `c` (its `Char` production; Rust's `char` has no surrogates).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// An error in the spec's format: `[{"code", "description"}]`, or `<errors><error>…` in XML.
/// The last field is the `Retry-After` in seconds, for answers that have one.
pub struct Open311Error(StatusCode, String, Format, Option<u64>);

impl Open311Error {
    fn new(status: StatusCode, description: impl Into<String>) -> Self {
        let retry = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(5);
        Open311Error(status, description.into(), Format::Json, retry)
    }

    fn in_format(mut self, fmt: Format) -> Self {
        self.2 = fmt;
        self
    }
}

impl IntoResponse for Open311Error {
    fn into_response(self) -> Response {
        let body = vec![json!({"code": self.0.as_u16(), "description": self.1})];
        let mut resp = respond(self.2, self.0, "errors", "error", body);
        if let Some(secs) = self.3 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// A 429 with `Retry-After`, for `who` (an address or an API key) over its budget.
fn too_many(who: &str, wait: std::time::Duration) -> Open311Error {
    let secs = retry_after_secs(wait);
    let mut refused = Open311Error::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("{who} has made too many requests; retry in {secs} s."),
    );
    refused.3 = Some(secs);
    refused
}

/// The per-address limit on the Open311 routes, answering in the format the path names.
async fn per_client(
    State(limits): State<Limits>,
    Peer(peer): Peer,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match limits.check_client(req.headers(), peer) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let fmt = if req.uri().path().ends_with(".xml") {
                Format::Xml
            } else {
                Format::Json
            };
            too_many("This client", wait).in_format(fmt).into_response()
        }
    }
}

fn bad(msg: impl Into<String>) -> Open311Error {
    Open311Error::new(StatusCode::BAD_REQUEST, msg)
}

fn not_served(file: &str) -> Open311Error {
    Open311Error::new(
        StatusCode::NOT_FOUND,
        format!("No resource '{file}'. Resources: services.json, requests.json, requests/{{id}}.json (or .xml)."),
    )
}

/// `GET /services.{fmt}` and `GET /requests.{fmt}`.
async fn get_collection(
    State(s): State<AppState>,
    Path(file): Path<String>,
    query: axum::extract::RawQuery,
) -> Result<Response, Open311Error> {
    let (name, fmt) = Format::split(&file).ok_or_else(|| not_served(&file))?;
    let q = query.0.unwrap_or_default();
    let result = match name {
        "services" => services(&s, &q, fmt),
        "requests" => list_requests(&s, &q, fmt),
        _ => Err(not_served(&file)),
    };
    result.map_err(|e| e.in_format(fmt))
}

/// Decodes a query string, refusing it in the spec's error format.
fn query<T: serde::de::DeserializeOwned>(q: &str, hint: &str) -> Result<T, Open311Error> {
    serde_urlencoded::from_str(q).map_err(|e| bad(format!("Bad query string: {e}.{hint}")))
}

fn check_jurisdiction(s: &AppState, given: Option<&str>) -> Result<(), Open311Error> {
    match (&s.settings.config.open311.jurisdiction_id, given) {
        (Some(ours), Some(j)) if j != ours => Err(Open311Error::new(
            StatusCode::NOT_FOUND,
            format!("jurisdiction_id '{j}' is not served here; this endpoint serves '{ours}'."),
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct Jurisdiction {
    jurisdiction_id: Option<String>,
}

fn services(s: &AppState, q: &str, fmt: Format) -> Result<Response, Open311Error> {
    let q: Jurisdiction = query(q, "")?;
    check_jurisdiction(s, q.jurisdiction_id.as_deref())?;
    let list: Vec<Value> = s
        .settings
        .config
        .categories
        .iter()
        .map(|c| {
            json!({
                "service_code": c.id,
                "service_name": c.name,
                "description": format!("Handled by the ward's {}; resolved within {} as a rule.", c.unit, humantime::format_duration(c.resolve_within.0)),
                "metadata": false,
                "type": "realtime",
                "keywords": c.camera_event_types.join(","),
                "group": c.unit,
            })
        })
        .collect();
    Ok(respond(fmt, StatusCode::OK, "services", "service", list))
}

async fn service_definition(Path(file): Path<String>) -> Open311Error {
    let (code, fmt) = Format::split(&file).unwrap_or((&file, Format::Json));
    Open311Error::new(
        StatusCode::NOT_FOUND,
        format!("Service '{code}' has no extra attributes (metadata is false for every service)."),
    )
    .in_format(fmt)
}

/// The fields of `POST requests.json` this endpoint uses; others (`attribute[...]`,
/// `device_id`, `account_id`, `address_id`) are accepted and ignored.
#[derive(Deserialize)]
struct NewRequest {
    api_key: Option<String>,
    jurisdiction_id: Option<String>,
    service_code: Option<String>,
    lat: Option<String>,
    long: Option<String>,
    address_string: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    description: Option<String>,
    media_url: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn coordinate(name: &str, v: Option<String>) -> Result<f64, Open311Error> {
    let v = non_empty(v).ok_or_else(|| {
        bad("lat and long are required: requests are routed to a ward by their coordinates.")
    })?;
    v.parse::<f64>()
        .map_err(|_| bad(format!("{name} '{v}' is not a number in decimal degrees.")))
}

async fn post_request(
    State(s): State<AppState>,
    Path(file): Path<String>,
    form: Result<Form<NewRequest>, FormRejection>,
) -> Result<Response, Open311Error> {
    match Format::split(&file) {
        Some(("requests", fmt)) => file_request(&s, form, fmt)
            .await
            .map_err(|e| e.in_format(fmt)),
        _ => Err(not_served(&file)),
    }
}

async fn file_request(
    s: &AppState,
    form: Result<Form<NewRequest>, FormRejection>,
    fmt: Format,
) -> Result<Response, Open311Error> {
    let Form(r) = form.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Open311Error::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "The request is larger than {} bytes.",
                    crate::MAX_BODY_BYTES
                ),
            );
        }
        bad(format!(
            "{} Send application/x-www-form-urlencoded fields.",
            e.body_text()
        ))
    })?;
    s.metrics
        .events_in
        .with_label_values(&["open311", "report"])
        .inc();
    let key = non_empty(r.api_key).ok_or_else(|| {
        Open311Error::new(
            StatusCode::FORBIDDEN,
            "api_key is required to file a request; the IOC issues keys to 311 clients.",
        )
    })?;
    let Some(client) = find_by_digest(&s.settings.config.open311.keys, |k| &k.sha256, &key) else {
        return Err(Open311Error::new(
            StatusCode::FORBIDDEN,
            "api_key is not valid.",
        ));
    };
    // Each 311 client (API key) has its own budget besides the per-address one.
    if let Err(wait) = s.limits.per_key.check(&client.name) {
        return Err(too_many("This api_key", wait));
    }
    let client = format!("open311:{}", client.name);
    check_jurisdiction(s, r.jurisdiction_id.as_deref())?;
    let code = non_empty(r.service_code)
        .ok_or_else(|| bad("service_code is required; GET services.json lists them."))?;
    let category = s.settings.category(&code).ok_or_else(|| {
        Open311Error::new(
            StatusCode::NOT_FOUND,
            format!("service_code '{code}' is not offered; GET services.json lists them."),
        )
    })?;
    let location = Location {
        lat: coordinate("lat", r.lat)?,
        lon: coordinate("long", r.long)?,
        accuracy_m: None,
    };
    let name = [non_empty(r.first_name), non_empty(r.last_name)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let contact = Contact {
        name: Some(name).filter(|n| !n.is_empty()),
        phone: non_empty(r.phone),
        email: non_empty(r.email),
    };
    let sub = ReportSubmission {
        idempotency_key: None,
        channel: Channel::Open311,
        category: category.id.clone(),
        text: non_empty(r.description).unwrap_or_else(|| category.name.clone()),
        location,
        address: non_empty(r.address_string),
        photo_urls: non_empty(r.media_url).into_iter().collect(),
        reporter: (contact != Contact::default()).then_some(contact),
        submitted_at: None,
    };
    let filed = s.intake.file_report(sub, &client).await.map_err(|e| match e {
        FileError::Invalid(e) => bad(e.message),
        FileError::Store(e) if e.retryable() => {
            tracing::warn!("refusing Open311 request: {e}");
            Open311Error::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The request could not be stored; retry later.",
            )
        }
        FileError::Store(e) => {
            tracing::error!("the event store refuses Open311 requests: {e}");
            Open311Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The request could not be stored, and retrying will not help until the IOC fixes it.",
            )
        }
    })?;
    let answer = json!({
        "service_request_id": filed.tracking_id,
        "service_notice": format!("Routed to the responsible ward's {}; expect it to be resolved within {}.", category.unit, humantime::format_duration(category.resolve_within.0)),
        "account_id": null,
    });
    Ok(respond(
        fmt,
        StatusCode::CREATED,
        "service_requests",
        "request",
        vec![answer],
    ))
}

/// Filters of `GET requests.json`.
#[derive(Deserialize)]
struct RequestFilter {
    jurisdiction_id: Option<String>,
    service_request_id: Option<String>,
    service_code: Option<String>,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    status: Option<String>,
}

fn list(v: &Option<String>) -> Option<Vec<&str>> {
    v.as_deref().map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .collect()
    })
}

fn list_requests(s: &AppState, q: &str, fmt: Format) -> Result<Response, Open311Error> {
    let f: RequestFilter = query(
        q,
        " Dates are ISO 8601 with a time zone, e.g. 2026-01-31T00:00:00Z.",
    )?;
    check_jurisdiction(s, f.jurisdiction_id.as_deref())?;
    let statuses = list(&f.status);
    if let Some(bad_status) = statuses
        .iter()
        .flatten()
        .find(|x| !matches!(**x, "open" | "closed"))
    {
        return Err(bad(format!(
            "status '{bad_status}' is neither open nor closed."
        )));
    }
    let view = s.view.read().expect("view lock");
    let hits: Vec<Incident> = match list(&f.service_request_id) {
        // Ids override every other filter, as the spec says.
        Some(ids) => {
            let mut hits: Vec<Incident> = ids
                .iter()
                .filter_map(|id| view.get(id))
                .filter(|i| matches!(i.source, Source::Report { .. }))
                .collect();
            hits.sort_by(|a, b| b.occurred_at.cmp(&a.occurred_at).then(a.id.cmp(&b.id)));
            hits.truncate(MAX_REQUESTS);
            hits
        }
        None => {
            let end = f.end_date.unwrap_or_else(|| s.now());
            let start = match f.start_date {
                Some(t) => t,
                None => end
                    .checked_sub_signed(Duration::days(DEFAULT_DAYS))
                    .ok_or_else(|| {
                        bad("end_date is too early to count back from; give start_date as well.")
                    })?,
            };
            let codes = list(&f.service_code);
            let mut rows: Vec<_> = view
                .rows()
                .filter(|r| !r.is_camera())
                .filter(|r| r.occurred_at() >= start && r.occurred_at() <= end)
                .filter(|r| codes.as_ref().is_none_or(|c| c.contains(&r.category())))
                .filter(|r| {
                    statuses
                        .as_ref()
                        .is_none_or(|st| st.contains(&open_or_closed(r.status())))
                })
                .collect();
            rows.sort_by(|a, b| {
                b.occurred_at()
                    .cmp(&a.occurred_at())
                    .then(a.id().cmp(b.id()))
            });
            rows.truncate(MAX_REQUESTS);
            rows.iter().map(|r| r.incident()).collect()
        }
    };
    let out: Vec<Value> = hits.iter().map(|i| request_json(s, i)).collect();
    Ok(respond(
        fmt,
        StatusCode::OK,
        "service_requests",
        "request",
        out,
    ))
}

async fn one_request(
    State(s): State<AppState>,
    Path(file): Path<String>,
    q: axum::extract::RawQuery,
) -> Result<Response, Open311Error> {
    let (id, fmt) = Format::split(&file)
        .ok_or_else(|| bad("Ask for requests/{id}.json or requests/{id}.xml."))?;
    one(&s, id, &q.0.unwrap_or_default(), fmt).map_err(|e| e.in_format(fmt))
}

fn one(s: &AppState, id: &str, q: &str, fmt: Format) -> Result<Response, Open311Error> {
    let q: Jurisdiction = query(q, "")?;
    check_jurisdiction(s, q.jurisdiction_id.as_deref())?;
    let view = s.view.read().expect("view lock");
    let i = view
        .get(id)
        .filter(|i| matches!(i.source, Source::Report { .. }))
        .ok_or_else(|| {
            Open311Error::new(
                StatusCode::NOT_FOUND,
                format!("No service request {id}. One just filed may take a moment to appear."),
            )
        })?;
    Ok(respond(
        fmt,
        StatusCode::OK,
        "service_requests",
        "request",
        vec![request_json(s, &i)],
    ))
}

fn open_or_closed(status: Status) -> &'static str {
    if status.is_open() && status != Status::Resolved {
        "open"
    } else {
        "closed"
    }
}

/// Where a request stands, in a sentence for the citizen (no internal notes).
fn status_notes(i: &Incident) -> String {
    let ward = i.ward.as_ref().map_or("", |w| w.name.as_str());
    match i.status {
        Status::New => "Received; waiting for an operator to verify it.".into(),
        Status::Verified => "Verified by the operations center; being routed.".into(),
        Status::Unassigned => "Being routed to the responsible ward.".into(),
        Status::Assigned => format!("Assigned to {ward}."),
        Status::Acknowledged => format!("Acknowledged by {ward}."),
        Status::InProgress => format!("{ward} is working on it."),
        Status::Reopened => "Reopened after the resolution was disputed.".into(),
        Status::Resolved | Status::Closed => i
            .resolution
            .as_ref()
            .map_or("Resolved.".into(), |r| format!("Resolved: {}", r.text)),
        Status::Duplicate => format!(
            "Merged into request {}, which is followed instead.",
            i.duplicate_of.as_deref().unwrap_or("?")
        ),
        Status::Cancelled => "Cancelled by the operations center.".into(),
    }
}

fn request_json(s: &AppState, i: &Incident) -> Value {
    let service_name = s
        .settings
        .category(&i.category)
        .map_or(i.category.as_str(), |c| c.name.as_str());
    let agency = match (&i.unit, &i.ward) {
        (Some(u), Some(w)) => format!("{u}, {}", w.name),
        (None, Some(w)) => w.name.clone(),
        _ => "Intelligent Operations Center".into(),
    };
    json!({
        "service_request_id": i.id,
        "status": open_or_closed(i.status),
        "status_notes": status_notes(i),
        "service_name": service_name,
        "service_code": i.category,
        "description": i.text,
        "agency_responsible": agency,
        "service_notice": null,
        "requested_datetime": i.occurred_at,
        "updated_datetime": i.updated_at,
        "expected_datetime": i.sla_due_at,
        "address": i.address,
        "address_id": null,
        "zipcode": null,
        "lat": i.location.lat,
        "long": i.location.lon,
        "media_url": i.media_urls.first(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(
            xml_escape("Rác <thải> & \"nước\" 'đọng'"),
            "Rác &lt;thải&gt; &amp; &quot;nước&quot; &apos;đọng&apos;"
        );
    }

    #[test]
    fn what_xml_cannot_carry_is_dropped() {
        // Stored before the edge refused them, or by another writer: the feed stays well-formed.
        assert_eq!(
            xml_escape("a\u{0}b\u{7}c\u{1b}d\u{FFFE}\u{FFFF}e\tf\ng\rh😀"),
            "abcde\tf\ng\rh😀"
        );
    }

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(
            Format::split("requests.json"),
            Some(("requests", Format::Json))
        );
        assert_eq!(Format::split("abc.xml"), Some(("abc", Format::Xml)));
        assert_eq!(Format::split("requests"), None);
    }
}
