//! The ingest API: the front door for citizens' reports and camera systems.
//!
//! `POST /v1/reports` and `POST /v1/camera-events` validate their input, write it to Kafka with an
//! idempotent producer (`acks=all`) and answer `202 Accepted` only after the broker has
//! acknowledged the record, so "accepted" always means "durably in Kafka". Bad input gets a 4xx
//! with a machine-readable code and a sentence saying what is wrong; if Kafka cannot take the
//! record the answer is `503` with `Retry-After`, never `202`.
//!
//! The tracking id returned for a report is also the id of the incident it becomes, so a client
//! can follow it on the dashboard API (`GET /v1/incidents/{tracking_id}`).
//!
//! Camera systems also post in their vendors' formats (`POST /v1/camera-events/{format}`, read
//! by `ioc_schema::camera`), and [`mqtt`] follows Frigate's events on its MQTT broker.

pub mod digest;
pub mod mqtt;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use ioc_config::cameras::Converted;
use ioc_config::http::Documented;
use ioc_config::intake::{FileError, Intake};
use ioc_config::kafka::SinkError;
use ioc_config::limits::{per_client, Limits};
use ioc_config::load::{find_by_digest, Settings};
use ioc_config::supervise::Supervisor;
use ioc_config::{CameraKeyConfig, Disposition};
use ioc_schema::camera::{self, Format, ReadOptions};
use ioc_schema::metrics::Metrics;
use ioc_schema::openapi::{Api, Op};
use ioc_schema::validate::{check_id, decode_json, decode_json_list, InvalidInput};
use ioc_schema::{CameraEvent, ReportSubmission, CAMERA_EVENT_SCHEMA};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

const STAGE: &str = "ingest";
/// Seconds a client should wait before retrying when Kafka is unavailable.
const RETRY_AFTER_SECS: u64 = 5;
/// Seconds a client should wait when the admission gate turned it away.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    settings: Arc<Settings>,
    intake: Intake,
    metrics: Metrics,
    nonces: Arc<digest::Nonces>,
}

impl AppState {
    pub fn new(settings: Arc<Settings>, metrics: Metrics) -> anyhow::Result<AppState> {
        let intake = Intake::new(settings.clone(), metrics.clone(), STAGE)
            .context("creating the ingest Kafka producer")?;
        let nonces = Arc::new(digest::Nonces::new(
            settings.config.ingest.digest_secret.as_deref(),
        ));
        Ok(AppState {
            nonces,
            settings,
            intake,
            metrics,
        })
    }
}

/// The one error type of the HTTP layer.
#[derive(Debug)]
pub enum AppError {
    /// The client sent something we will not accept.
    Invalid(StatusCode, InvalidInput),
    /// Several items of a batch were bad; each with its index.
    InvalidBatch(Vec<(usize, InvalidInput)>),
    /// The caller has no valid credential; the challenges it may answer
    /// (`WWW-Authenticate` values besides `Bearer`).
    Unauthorized(&'static str, String, Vec<String>),
    /// Kafka did not take the record: 503 when a retry may help, else 500 (or 413 for a
    /// record too large), logged with the detail.
    Store(SinkError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Invalid(status, e) => (
                status,
                Json(json!({ "error": { "code": e.code, "message": e.message } })),
            )
                .into_response(),
            AppError::InvalidBatch(items) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": {
                        "code": "invalid_batch",
                        "message": format!("{} event(s) in the batch are invalid; nothing was accepted. Fix them and resend the batch.", items.len()),
                        "items": items.iter().map(|(i, e)| json!({"index": i, "code": e.code, "message": e.message})).collect::<Vec<_>>(),
                    }
                })),
            )
                .into_response(),
            AppError::Unauthorized(code, message, challenges) => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    Json(json!({ "error": { "code": code, "message": message } })),
                )
                    .into_response();
                for c in challenges {
                    if let Ok(v) = HeaderValue::from_str(&c) {
                        response.headers_mut().append(header::WWW_AUTHENTICATE, v);
                    }
                }
                response
            }
            AppError::Store(SinkError::TooLarge(detail)) => {
                tracing::warn!("refusing input, too large for Kafka: {detail}");
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Json(json!({ "error": {
                        "code": "body_too_large",
                        "message": "The event is larger than the event store accepts; send less (fewer photos, a shorter text, a smaller batch).",
                    }})),
                )
                    .into_response()
            }
            AppError::Store(SinkError::Refused(detail)) => {
                tracing::error!("the event store refuses input for good: {detail}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": {
                        "code": "internal",
                        "message": "The event store refused the event; this is a fault on our side and retrying will not help until it is fixed.",
                    }})),
                )
                    .into_response()
            }
            AppError::Store(SinkError::Unavailable(detail)) => {
                tracing::warn!("refusing input, Kafka unavailable: {detail}");
                unavailable(
                    "The event store is not reachable, so the event was not accepted. Retry later.",
                    RETRY_AFTER_SECS,
                )
            }
            AppError::Store(SinkError::Busy(why)) => {
                tracing::debug!("refusing input at once: {why}");
                unavailable(
                    "The event store is taking in more than it can right now, so the event was not accepted. Retry after the time in Retry-After.",
                    BUSY_RETRY_AFTER_SECS,
                )
            }
        }
    }
}

/// A 503 that tells the client when to come back.
fn unavailable(message: &str, retry_after: u64) -> Response {
    let mut resp = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": { "code": "unavailable", "message": message }})),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    resp
}

fn bad_request(e: InvalidInput) -> AppError {
    let status = match e.code {
        "malformed_json" => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    AppError::Invalid(status, e)
}

/// Turns the body extractor's refusal (too large, unreadable) into our error format.
fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, AppError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::Invalid(
                StatusCode::PAYLOAD_TOO_LARGE,
                InvalidInput::new(
                    "body_too_large",
                    format!("The body is larger than {limit} bytes."),
                ),
            )
        } else {
            AppError::Invalid(
                StatusCode::BAD_REQUEST,
                InvalidInput::new("unreadable_body", rejection.body_text()),
            )
        }
    })
}

/// The answer to an accepted report.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReportAccepted {
    /// The report's id, which is also its incident's id, and the citizen's credential to
    /// confirm or dispute the result.
    pub tracking_id: String,
    /// Always `accepted`: the report is durably in Kafka.
    pub status: String,
    /// Whether an earlier submission with the same idempotency key was answered instead.
    pub duplicate: bool,
    /// Where the report's progress can be followed.
    pub status_url: String,
}

/// The answer to an accepted batch of camera events.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CameraAccepted {
    pub accepted: usize,
    /// Each event's id, as sent or derived from camera, type and time.
    pub event_ids: Vec<String>,
    /// The id of the incident each event becomes, or (`vio-…`) of the enforcement record, for
    /// event types whose disposition is `record`.
    pub incident_ids: Vec<String>,
}

/// A configured category.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub unit: String,
    pub camera_event_types: Vec<String>,
}

/// The ingest HTTP application: its routes and their OpenAPI description.
pub fn app(state: AppState) -> Router {
    let limit = state.settings.config.ingest.max_body_bytes;
    let limits = Limits::from_config(&state.settings.config.limits);
    let (router, _) = routes(state.metrics.clone(), limits);
    router.layer(DefaultBodyLimit::max(limit)).with_state(state)
}

/// The OpenAPI 3.1 description of the ingest API (served at `/openapi.json`).
pub fn openapi() -> serde_json::Value {
    routes(Metrics::new(), Limits::off()).1
}

fn routes(metrics: Metrics, limits: Limits) -> (Router<AppState>, serde_json::Value) {
    let mut api = Api::new(
        "ioc ingest",
        "The front door for citizens' reports and camera systems. 202 means the event is durably in Kafka; 4xx says what to fix; 503 with Retry-After means retry later.",
    );
    api.security_scheme(
        "cameraKey",
        json!({"type": "http", "scheme": "bearer", "description": "A camera system's key (also accepted as an X-Api-Key header)."}),
    );
    api.security_scheme(
        "cameraBasic",
        json!({"type": "http", "scheme": "basic", "description": "A camera system's key as the password (any user name), for devices that offer only basic authentication."}),
    );
    api.security_scheme(
        "cameraDigest",
        json!({"type": "http", "scheme": "digest", "description": "HTTP digest (RFC 7616, realm \"ioc\", qop auth, SHA-256 or MD5) with the user name and key configured for the camera system; a request without credentials is answered 401 with the challenge."}),
    );
    let refusals: &[(u16, &str)] = &[
        (400, "Not JSON, or an unreadable body"),
        (413, "The body is larger than ingest.max_body_bytes"),
        (
            422,
            "The event breaks a rule: the error's code and message say which",
        ),
        (
            503,
            "Kafka did not acknowledge; nothing was accepted, retry later",
        ),
        (
            500,
            "Kafka refused the event for good; retrying will not help",
        ),
    ];
    Documented::new(api)
        .route(
            "/v1/reports",
            post(post_report).route_layer(from_fn_with_state(limits, per_client)),
            |api| {
            let body = api.request::<ReportSubmission>();
            let ok = api.response::<ReportAccepted>();
            vec![Op::post("File a citizen's report")
                .tag("citizens")
                .describe("Validated, written to the reports topic and answered 202 only after Kafka acknowledged it. Resending with the same idempotency_key returns the same tracking id.")
                .json_body(body)
                .json(202, "Accepted: durably in Kafka", ok)
                .errors(api, refusals)
                .errors(api, &[(429, "Too many reports from this client; Retry-After says when to retry")])]
            },
        )
        .route("/v1/camera-events", post(post_camera_events), |api| {
            let body = json!({"type": "array", "minItems": 1, "items": api.request::<CameraEvent>()});
            let ok = api.response::<CameraAccepted>();
            vec![Op::post("Post a batch of camera events")
                .tag("cameras")
                .describe("All events valid or none accepted (422 lists each bad index).")
                .security(&["cameraKey"])
                .json_body(body)
                .json(202, "Accepted: durably in Kafka", ok)
                .errors(api, refusals)
                .errors(api, &[(401, "No or an invalid camera system's key")])]
        })
        .route("/v1/camera-events/{format}", post(post_vendor_events), |api| {
            let ok = api.response::<VendorAccepted>();
            let query = api.query::<DeviceQuery>();
            let any = json!({"type": "string"});
            vec![Op::post("Post a camera system's message in its vendor's format")
                .tag("cameras")
                .describe("`deepstream` (nvmsgconv JSON, full or minimal schema, one message, an array or one per line), `frigate` (a frigate/events message), `hikvision` (EventNotificationAlert XML, or multipart/form-data with the XML and JPEG parts), `dahua` (event stream lines or multipart/x-mixed-replace parts; name the device with ?device=), `onvif` (a wsnt:Notify). Devices are mapped to cameras by camera_formats.devices and vendor events to ioc event types by camera_formats.event_types; unmapped events are answered as ignored.")
                .path_param_of("format", "The vendor format", json!({"enum": ["deepstream", "frigate", "hikvision", "dahua", "onvif"]}))
                .params(query)
                .security(&["cameraKey", "cameraBasic", "cameraDigest"])
                .bodies(json!({
                    "application/json": {"schema": {}},
                    "application/xml": {"schema": any},
                    "text/plain": {"schema": any},
                }))
                .json(202, "Accepted: every mapped detection is durably in Kafka", ok)
                .errors(api, refusals)
                .errors(api, &[(401, "No or an invalid camera system's key"), (404, "Not a camera format")])]
        })
        .route("/v1/categories", get(get_categories), |api| {
            let list = json!({"type": "array", "items": api.response::<Category>()});
            vec![Op::get("The configured categories, their units and camera event types")
                .tag("citizens")
                .json(200, "Categories", list)]
        })
        .with_ops(metrics, STAGE, |s: AppState| async move {
            s.intake.sink().reachable().await
        })
        .finish()
}

async fn get_categories(State(s): State<AppState>) -> Json<Vec<Category>> {
    Json(
        s.settings
            .config
            .categories
            .iter()
            .map(|c| Category {
                id: c.id.clone(),
                name: c.name.clone(),
                unit: c.unit.clone(),
                camera_event_types: c.camera_event_types.clone(),
            })
            .collect(),
    )
}

async fn post_report(
    State(s): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    s.metrics
        .events_in
        .with_label_values(&[STAGE, "report"])
        .inc();
    let result = accept_report(&s, raw).await;
    if let Err(AppError::Invalid(_, e)) = &result {
        s.metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
    }
    result
}

async fn accept_report(
    s: &AppState,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let bytes = body(raw, s.settings.config.ingest.max_body_bytes)?;
    let sub: ReportSubmission = decode_json(&bytes).map_err(bad_request)?;
    // The app's reports are one client per channel; they carry no credential to tell more apart.
    let client = sub.channel.as_str();
    let filed = s.intake.file_report(sub, client).await?;
    Ok(accepted_report(s, &filed.tracking_id, filed.duplicate))
}

impl From<FileError> for AppError {
    fn from(e: FileError) -> AppError {
        match e {
            FileError::Invalid(e) => bad_request(e),
            FileError::Store(e) => AppError::Store(e),
        }
    }
}

fn accepted_report(s: &AppState, id: &str, duplicate: bool) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(ReportAccepted {
            tracking_id: id.to_string(),
            status: "accepted".into(),
            duplicate,
            status_url: format!(
                "{}/r/{id}",
                s.settings.config.dashboard.public_url.trim_end_matches('/')
            ),
        }),
    )
        .into_response()
}

/// The camera system posting, by its key (`Authorization: Bearer <key>`, `X-Api-Key: <key>`,
/// the password of HTTP basic authentication) or by its answer to a digest challenge for
/// `method` and `uri` (the request's target).
fn camera_system<'a>(
    s: &'a AppState,
    headers: &HeaderMap,
    method: &str,
    uri: &axum::http::Uri,
) -> Result<&'a CameraKeyConfig, AppError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
    let challenges = |stale: bool| {
        let mut c = vec![format!("Basic realm=\"{}\"", digest::REALM)];
        c.extend(s.nonces.challenges(now, stale));
        c
    };
    if let Some(answer) = authorization.and_then(digest::parse) {
        return digest_system(s, &answer, method, uri, now).map_err(|(code, message, stale)| {
            AppError::Unauthorized(code, message, challenges(stale))
        });
    }
    // Cameras whose notification settings offer only a user name and a password send the key
    // as the password of HTTP basic authentication.
    let basic = authorization
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|up| up.split_once(':').map(|(_, p)| p.to_string()));
    let presented = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or(basic)
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    let Some(key) = presented else {
        return Err(AppError::Unauthorized(
            "unauthenticated",
            "Camera systems send their key as 'Authorization: Bearer <key>', 'X-Api-Key: <key>', as the password of HTTP basic authentication, or answer the digest challenge of this response with the user name and key configured for them; the IOC issues one per camera system.".into(),
            challenges(false),
        ));
    };
    find_by_digest(&s.settings.config.ingest.camera_keys, |k| &k.sha256, &key).ok_or_else(|| {
        AppError::Unauthorized(
            "invalid_key",
            "The camera system's key is not valid.".into(),
            challenges(false),
        )
    })
}

/// The camera system whose digest login `answer` proves; else the refusal's code, message and
/// whether only the nonce was too old (the device then answers a fresh challenge by itself).
fn digest_system<'a>(
    s: &'a AppState,
    answer: &digest::Answer,
    method: &str,
    uri: &axum::http::Uri,
    now: u64,
) -> Result<&'a CameraKeyConfig, (&'static str, String, bool)> {
    let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    if answer.uri != target && answer.uri != uri.path() {
        return Err((
            "invalid_digest",
            "The digest answer is for another address than this request's.".into(),
            false,
        ));
    }
    match s.nonces.check(&answer.nonce, now) {
        Ok(()) => {}
        Err(digest::NonceProblem::Stale) => {
            return Err((
                "stale_nonce",
                "The digest nonce has expired; answer this response's challenge.".into(),
                true,
            ))
        }
        Err(digest::NonceProblem::Forged) => {
            return Err((
                "invalid_digest",
                "The digest nonce was not issued here; answer this response's challenge.".into(),
                false,
            ))
        }
    }
    let refused = || {
        (
            "invalid_key",
            "The user name or key in the digest answer is not valid.".into(),
            false,
        )
    };
    if answer.realm != digest::REALM {
        return Err(refused());
    }
    s.settings
        .config
        .ingest
        .camera_keys
        .iter()
        .find(|k| {
            let Some(login) = k.digest.as_ref().filter(|l| l.user == answer.username) else {
                return false;
            };
            let ha1 = match answer.algorithm {
                digest::Algorithm::Md5 => login.md5.as_deref(),
                digest::Algorithm::Sha256 => login.sha256.as_deref(),
            };
            ha1.is_some_and(|ha1| {
                digest::same(
                    &digest::expected(answer, &ha1.to_ascii_lowercase(), method),
                    &answer.response,
                )
            })
        })
        .ok_or_else(refused)
}

async fn post_camera_events(
    State(s): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let system = camera_system(&s, &headers, method.as_str(), &uri).inspect_err(|_| {
        s.metrics
            .rejected
            .with_label_values(&[STAGE, "unauthenticated"])
            .inc();
    })?;
    let bytes = body(raw, s.settings.config.ingest.max_body_bytes)?;
    let events: Vec<CameraEvent> = decode_json_list(&bytes).map_err(|e| {
        s.metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
        bad_request(e)
    })?;
    s.metrics
        .events_in
        .with_label_values(&[STAGE, "camera_event"])
        .inc_by(events.len() as u64);
    let max = s.settings.config.ingest.max_batch;
    if events.is_empty() || events.len() > max {
        return Err(bad_request(InvalidInput::new(
            "invalid_batch_size",
            format!(
                "Send between 1 and {max} camera events per request; got {}.",
                events.len()
            ),
        )));
    }
    let now = Utc::now();
    let bad: Vec<(usize, InvalidInput)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            check_camera(&s.settings, Some(system), e, now)
                .err()
                .map(|err| (i, err))
        })
        .collect();
    if !bad.is_empty() {
        for (_, e) in &bad {
            s.metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
        }
        return Err(AppError::InvalidBatch(bad));
    }
    let mut incident_ids = Vec::with_capacity(events.len());
    let events: Vec<CameraEvent> = events
        .into_iter()
        .map(|mut e| {
            // Only ingest's own vendor adapters write what the vendor sent.
            e.vendor = None;
            e.event_id = Some(e.id());
            e.schema = Some(CAMERA_EVENT_SCHEMA.to_string());
            let id = e.incident_id();
            incident_ids.push(match s.settings.config.router.disposition(&e.event_type) {
                Disposition::Record => ioc_schema::ids::violation_id(&id),
                Disposition::Incident => id,
            });
            e
        })
        .collect();
    // All or nothing from the client's view: on any failure it resends the batch, and the
    // deterministic event ids make the records already written harmless repeats.
    let event_ids = publish_camera_events(&s, events).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CameraAccepted {
            accepted: event_ids.len(),
            event_ids,
            incident_ids,
        }),
    )
        .into_response())
}

/// `?device=` of a vendor camera post.
#[derive(Debug, serde::Deserialize, JsonSchema)]
pub struct DeviceQuery {
    /// The device as the device registry names it, for formats whose messages do not say
    /// (Dahua), or to name it instead of what the message says.
    #[serde(default)]
    pub device: Option<String>,
}

/// The answer to an accepted vendor message.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VendorAccepted {
    /// Detections written to the camera topic.
    pub accepted: usize,
    /// Each accepted detection's id, derived from the message (a resend has the same).
    pub event_ids: Vec<String>,
    /// Detections of vendor events the deployment maps to no ioc event type
    /// (`camera_formats.event_types`), accepted and dropped.
    pub ignored: Vec<IgnoredDetection>,
}

/// A detection that was dropped, and why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IgnoredDetection {
    pub index: usize,
    pub vendor_event: String,
    pub reason: String,
}

async fn post_vendor_events(
    State(s): State<AppState>,
    Path(format): Path<String>,
    query: Result<Query<DeviceQuery>, axum::extract::rejection::QueryRejection>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let Some(format) = Format::parse(&format) else {
        return Err(AppError::Invalid(
            StatusCode::NOT_FOUND,
            InvalidInput::new(
                "unknown_format",
                format!(
                    "'{format}' is not a camera format; post to /v1/camera-events/{{deepstream,frigate,hikvision,dahua,onvif}}, or ioc's own JSON to /v1/camera-events."
                ),
            ),
        ));
    };
    let system = camera_system(&s, &headers, method.as_str(), &uri).inspect_err(|_| {
        s.metrics
            .rejected
            .with_label_values(&[STAGE, "unauthenticated"])
            .inc();
    })?;
    let Query(query) =
        query.map_err(|e| bad_request(InvalidInput::new("invalid_query", e.body_text())))?;
    if let Some(d) = &query.device {
        check_id("device", d).map_err(bad_request)?;
    }
    let bytes = body(raw, s.settings.config.ingest.max_body_bytes)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let opts = ReadOptions {
        content_type,
        device: query.device.as_deref(),
        local_offset: s.settings.camera_local_offset(),
    };
    let accepted = accept_vendor(&s, format, &bytes, &opts, Some(system)).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// Reads one vendor message, checks each detection (camera, type, time and, for a camera
/// system posting with a key, that the key covers the camera) and writes them to the camera
/// topic: all or none. What the deployment maps to no ioc event type is answered as ignored.
pub(crate) async fn accept_vendor(
    s: &AppState,
    format: Format,
    bytes: &[u8],
    opts: &ReadOptions<'_>,
    system: Option<&CameraKeyConfig>,
) -> Result<VendorAccepted, AppError> {
    let refused = |e: InvalidInput| {
        s.metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
        bad_request(e)
    };
    let observations = camera::read(format, bytes, opts).map_err(refused)?;
    s.metrics
        .events_in
        .with_label_values(&[STAGE, "camera_event"])
        .inc_by(observations.len() as u64);
    let max = s.settings.config.ingest.max_batch;
    if observations.len() > max {
        return Err(refused(InvalidInput::new(
            "invalid_batch_size",
            format!(
                "Send at most {max} detections per request; got {}.",
                observations.len()
            ),
        )));
    }
    let now = Utc::now();
    let mut events = Vec::new();
    let mut ignored = Vec::new();
    let mut bad = Vec::new();
    for (i, obs) in observations.into_iter().enumerate() {
        match s.settings.convert_observation(obs, now) {
            Ok(Converted::Event(e)) => match check_camera(&s.settings, system, &e, now) {
                Ok(()) => events.push(*e),
                Err(err) => bad.push((i, err)),
            },
            Ok(Converted::Ignored { vendor_event }) => ignored.push(IgnoredDetection {
                index: i,
                reason: format!(
                    "{} event '{vendor_event}' is mapped to no ioc event type (camera_formats.event_types.{})",
                    format.as_str(),
                    format.as_str()
                ),
                vendor_event,
            }),
            Err(err) => bad.push((i, err)),
        }
    }
    if !bad.is_empty() {
        for (_, e) in &bad {
            s.metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
        }
        if bad.len() == 1 && events.is_empty() && ignored.is_empty() {
            return Err(bad_request(bad.remove(0).1));
        }
        return Err(AppError::InvalidBatch(bad));
    }
    if !ignored.is_empty() {
        s.metrics
            .rejected
            .with_label_values(&[STAGE, "unmapped_event_type"])
            .inc_by(ignored.len() as u64);
    }
    let event_ids = publish_camera_events(s, events).await?;
    Ok(VendorAccepted {
        accepted: event_ids.len(),
        event_ids,
        ignored,
    })
}

/// Writes accepted camera events to the camera topic (keyed by camera, so all of a camera's
/// events meet in one partition) and answers once Kafka has every one of them.
async fn publish_camera_events(
    s: &AppState,
    events: Vec<CameraEvent>,
) -> Result<Vec<String>, AppError> {
    let topic = &s.settings.config.topics.camera_events;
    let mut sends = Vec::with_capacity(events.len());
    let mut ids = Vec::with_capacity(events.len());
    for e in events {
        ids.push(e.id());
        let payload = serde_json::to_vec(&e).expect("camera event serializes");
        let key = e.camera_id;
        sends.push(async move {
            s.intake
                .sink()
                .send(topic, &key, &payload)
                .await
                .map_err(AppError::Store)
        });
    }
    for result in futures::future::join_all(sends).await {
        result?;
    }
    s.metrics
        .events_out
        .with_label_values(&[STAGE, "camera_event"])
        .inc_by(ids.len() as u64);
    Ok(ids)
}

fn check_camera(
    settings: &Settings,
    system: Option<&CameraKeyConfig>,
    e: &CameraEvent,
    now: chrono::DateTime<Utc>,
) -> Result<(), InvalidInput> {
    if let Some(system) = system.filter(|k| !k.covers(&e.camera_id)) {
        if check_id("camera_id", &e.camera_id).is_err() {
            return settings.check_camera_event(e, now).map(|_| ());
        }
        return Err(InvalidInput::new(
            "camera_not_allowed",
            format!(
                "The key of '{}' does not cover camera '{}'; ask the IOC to add it to that system's cameras.",
                system.name, e.camera_id
            ),
        ));
    }
    settings.check_camera_event(e, now).map(|_| ())
}

/// Serves the ingest API on `ingest.listen` until `shutdown` completes, then lets requests in
/// progress finish.
pub async fn run(
    settings: Arc<Settings>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = ioc_config::bind("ingest.listen", &settings.config.ingest.listen).await?;
    serve(listener, settings, metrics, shutdown).await
}

/// Like [`run`] on an already bound listener (tests bind port 0).
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Arc<Settings>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState::new(settings.clone(), metrics)?;
    tracing::info!("ingest API on http://{}", listener.local_addr()?);
    let mut tasks = Supervisor::new();
    let token = tasks.token();
    let server = axum::serve(
        listener,
        app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(token.clone().cancelled_owned());
    tasks.spawn("HTTP server", async move {
        server.await.context("ingest server")
    });
    let frigate = &settings.config.ingest.frigate_mqtt;
    if !frigate.url.is_empty() {
        tasks.spawn(
            "Frigate MQTT follower",
            mqtt::follow_frigate(state, frigate.clone(), token.clone()),
        );
    }
    tasks.run(STAGE, shutdown, Duration::from_secs(10)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// State whose producer points at a closed port: validation never reaches Kafka, and a
    /// valid event shows what happens when Kafka is down.
    fn state() -> AppState {
        let env = vec![
            ("IOC_KAFKA__BROKERS".to_string(), "127.0.0.1:9".to_string()),
            (
                "IOC_KAFKA__PRODUCE_TIMEOUT".to_string(),
                "\"1s\"".to_string(),
            ),
        ];
        let mut settings = Settings::load(None, env).unwrap();
        // Every state() seals nonces alike, as instances sharing a secret do.
        settings.config.ingest.digest_secret = Some("test digest secret".into());
        settings.config.ingest.camera_keys = vec![
            CameraKeyConfig {
                name: "test cameras".into(),
                sha256: ioc_config::load::token_digest(CAMERA_KEY),
                cameras: vec![],
                digest: Some(ioc_config::DigestLoginConfig {
                    user: DIGEST_USER.into(),
                    md5: Some(digest::ha1(digest::Algorithm::Md5, DIGEST_USER, CAMERA_KEY)),
                    sha256: Some(digest::ha1(
                        digest::Algorithm::Sha256,
                        DIGEST_USER,
                        CAMERA_KEY,
                    )),
                }),
            },
            CameraKeyConfig {
                name: "one camera".into(),
                sha256: ioc_config::load::token_digest(ONE_CAMERA_KEY),
                cameras: vec!["CAM-0002".into()],
                digest: None,
            },
        ];
        AppState::new(Arc::new(settings), Metrics::new()).unwrap()
    }

    const CAMERA_KEY: &str = "test-camera-key";
    const DIGEST_USER: &str = "hik-nvr";
    const ONE_CAMERA_KEY: &str = "test-one-camera-key";

    async fn post(
        path: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, serde_json::Value, Option<String>) {
        post_as(path, Some(CAMERA_KEY), body).await
    }

    async fn post_as(
        path: &str,
        key: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, serde_json::Value, Option<String>) {
        let mut req = Request::post(path).header("content-type", "application/json");
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        let resp = app(state())
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or_default(),
            retry,
        )
    }

    fn report(lat: f64) -> String {
        report_at(lat, &Utc::now().to_rfc3339())
    }

    fn report_at(lat: f64, at: &str) -> String {
        format!(
            r#"{{"channel":"app","category":"traffic_order","text":"Đèn tín hiệu hỏng","location":{{"lat":{lat},"lon":105.91}},"submitted_at":"{at}"}}"#
        )
    }

    #[tokio::test]
    async fn bad_reports_get_4xx_with_a_code_and_a_reason() {
        let cases = [
            (
                "{not json".to_string(),
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                r#"{"channel":"app"}"#.to_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing_field",
            ),
            (
                report(123.0),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_location",
            ),
            (
                report(20.5).replace("traffic_order", "parking_fines"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_category",
            ),
            (
                report(20.5).replace("20.5", "NaN"),
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
        ];
        for (body, status, code) in cases {
            let (got, json, _) = post("/v1/reports", body.clone()).await;
            assert_eq!(got, status, "{body}: {json}");
            assert_eq!(json["error"]["code"], code, "{body}");
            assert!(json["error"]["message"].as_str().unwrap().len() > 10);
        }
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused_with_413() {
        let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(300_000));
        let (status, json, _) = post("/v1/reports", big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json["error"]["code"], "body_too_large");
    }

    #[tokio::test]
    async fn camera_batches_name_each_bad_event() {
        let body = r#"[
            {"camera_id":"CAM-0001","event_type":"accident","confidence":0.9,"detected_at":"NOW"},
            {"camera_id":"CAM-9999","event_type":"accident","confidence":0.9,"detected_at":"NOW"},
            {"camera_id":"CAM-0001","event_type":"alien_landing","confidence":0.9,"detected_at":"NOW"}]"#
            .replace("NOW", &Utc::now().to_rfc3339());
        let (status, json, _) = post("/v1/camera-events", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let items = json["error"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["index"], 1);
        assert_eq!(items[0]["code"], "unknown_camera");
        assert_eq!(items[1]["code"], "unknown_event_type");
    }

    #[tokio::test]
    async fn when_kafka_is_down_a_valid_report_gets_503_not_202() {
        let (status, json, retry) = post("/v1/reports", report(20.5)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
        assert_eq!(json["error"]["code"], "unavailable");
        assert_eq!(retry.as_deref(), Some("5"));
    }

    fn camera(extra: &str) -> String {
        camera_at(&Utc::now().to_rfc3339(), extra)
    }

    fn camera_at(now: &str, extra: &str) -> String {
        format!(
            r#"[{{"camera_id":"CAM-0001","event_type":"accident","confidence":0.9,"detected_at":"{now}"{extra}}}]"#
        )
    }

    #[tokio::test]
    async fn camera_intake_needs_a_camera_systems_key() {
        for key in [None, Some("wrong-key"), Some("")] {
            let (status, json, _) = post_as("/v1/camera-events", key, camera("")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}: {json}");
            assert!(json["error"]["message"].as_str().unwrap().len() > 10);
        }
        // A key limited to other cameras cannot post for this one.
        let (status, json, _) =
            post_as("/v1/camera-events", Some(ONE_CAMERA_KEY), camera("")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
        assert_eq!(json["error"]["items"][0]["code"], "camera_not_allowed");
        // With the right key the event is valid and only Kafka (down here) stops it.
        let (status, _, _) = post("/v1/camera-events", camera("")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn hostile_ids_times_and_shapes_are_refused() {
        let cases = [
            (
                "/v1/camera-events",
                camera(r#","event_id":"x\ny""#),
                "invalid_id",
            ),
            (
                "/v1/camera-events",
                camera(r#","event_id":"x\r""#),
                "invalid_id",
            ),
            (
                "/v1/camera-events",
                camera(r#","event_id":"x\u0000""#),
                "invalid_id",
            ),
            (
                "/v1/camera-events",
                camera(r#","event_id":"""#),
                "invalid_id",
            ),
            (
                "/v1/camera-events",
                camera(r#","event_id":"  ""#),
                "invalid_id",
            ),
            (
                "/v1/camera-events",
                camera_at("-262143-01-01T00:00:00Z", ""),
                "invalid_time",
            ),
            (
                "/v1/reports",
                report_at(20.5, "0000-01-01T00:00:00Z"),
                "invalid_time",
            ),
            (
                "/v1/reports",
                report(20.5).replace(r#"{"lat":20.5,"lon":105.91}"#, "[20.5, 105.91]"),
                "invalid_field",
            ),
            (
                "/v1/reports",
                report(20.5).replace(r#""submitted_at""#, r#""reporter":[],"submitted_at""#),
                "invalid_field",
            ),
            (
                "/v1/reports",
                report(20.5).replace("Đèn tín hiệu hỏng", "a\\u0001b"),
                "invalid_field",
            ),
        ];
        for (path, body, code) in cases {
            let (status, json, _) = post(path, body.clone()).await;
            assert!(status.is_client_error(), "{body}: {status} {json}");
            let got = json["error"]["items"][0]["code"]
                .as_str()
                .or(json["error"]["code"].as_str());
            assert_eq!(got, Some(code), "{body}: {json}");
        }
    }

    #[tokio::test]
    async fn every_request_is_counted_by_route_and_status_and_readiness_names_the_broker() {
        let app = app(state());
        let send = |req: Request<Body>| app.clone().oneshot(req);
        send(Request::post("/v1/reports").body(Body::from("{")).unwrap())
            .await
            .unwrap();
        let ready = send(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(ready.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["ready"], false);
        assert!(v["reason"].as_str().unwrap().contains("Kafka"), "{v}");
        let metrics = send(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = axum::body::to_bytes(metrics.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.contains(
                r#"ioc_http_requests_total{route="/v1/reports",stage="ingest",status="400"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"ioc_http_request_duration_seconds_count{route="/readyz",stage="ingest"} 1"#
        ));
    }

    #[tokio::test]
    async fn a_client_over_its_limit_gets_429_with_retry_after() {
        let env = vec![
            ("IOC_KAFKA__BROKERS".to_string(), "127.0.0.1:9".to_string()),
            (
                "IOC_LIMITS__PER_CLIENT_PER_MINUTE".to_string(),
                "60".to_string(),
            ),
            ("IOC_LIMITS__PER_CLIENT_BURST".to_string(), "2".to_string()),
        ];
        let settings = Arc::new(Settings::load(None, env).unwrap());
        let app = app(AppState::new(settings, Metrics::new()).unwrap());
        let send = || {
            app.clone().oneshot(
                Request::post("/v1/reports")
                    .header("content-type", "application/json")
                    .body(Body::from("{"))
                    .unwrap(),
            )
        };
        for _ in 0..2 {
            assert_eq!(send().await.unwrap().status(), StatusCode::BAD_REQUEST);
        }
        let refused = send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "1");
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "rate_limited");
    }

    async fn post_vendor(
        path: &str,
        auth: Option<(&str, String)>,
        content_type: &str,
        body: String,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::post(path).header("content-type", content_type);
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        let resp = app(state())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn basic(key: &str) -> (&'static str, String) {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("camera:{key}"));
        ("authorization", format!("Basic {token}"))
    }

    /// `alert` with its `<dateTime>` replaced by `at`.
    fn with_date(alert: &str, at: &str) -> String {
        let start = alert.find("<dateTime>").unwrap() + "<dateTime>".len();
        let end = alert.find("</dateTime>").unwrap();
        format!("{}{at}{}", &alert[..start], &alert[end..])
    }

    fn hik_alert(device_mac: &str, event_type: &str) -> String {
        let now = Utc::now()
            .with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap())
            .to_rfc3339();
        format!(
            "<EventNotificationAlert version=\"2.0\" xmlns=\"http://www.hikvision.com/ver20/XMLSchema\">\
             <macAddress>{device_mac}</macAddress><channelID>1</channelID><dateTime>{now}</dateTime>\
             <activePostCount>1</activePostCount><eventType>{event_type}</eventType><eventState>active</eventState>\
             </EventNotificationAlert>"
        )
    }

    /// A Hikvision alert from a registered device passes the key (as basic authentication's
    /// password), the registry and the checks, and reaches the (absent) broker: 503.
    #[tokio::test]
    async fn a_vendor_alert_from_a_registered_device_goes_to_kafka() {
        let (status, json) = post_vendor(
            "/v1/camera-events/hikvision",
            Some(basic(CAMERA_KEY)),
            "application/xml",
            hik_alert("hik-0003", "fielddetection"),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    }

    /// A device that answers only a digest challenge: no credentials → 401 with Basic and
    /// Digest (SHA-256, MD5) challenges; its answer with the configured login passes (503: the
    /// test broker is absent); a wrong key, another address, a nonce not ours or an old one
    /// are refused, the old one with `stale=true`.
    #[tokio::test]
    async fn a_device_signs_in_by_answering_the_digest_challenge() {
        let path = "/v1/camera-events/hikvision";
        let send = |authorization: Option<String>| async move {
            let mut req = Request::post(path).header("content-type", "application/xml");
            if let Some(a) = authorization {
                req = req.header("authorization", a);
            }
            let resp = app(state())
                .oneshot(
                    req.body(Body::from(hik_alert("hik-0003", "fielddetection")))
                        .unwrap(),
                )
                .await
                .unwrap();
            let challenges: Vec<String> = resp
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            (status, challenges, json)
        };
        let (status, challenges, _) = send(None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            challenges
                .iter()
                .any(|c| c.starts_with("Basic realm=\"ioc\"")),
            "{challenges:?}"
        );
        let md5 = challenges
            .iter()
            .find(|c| c.contains("algorithm=MD5"))
            .expect("an MD5 digest challenge");
        assert!(
            challenges.iter().any(|c| c.contains("algorithm=SHA-256")),
            "{challenges:?}"
        );
        let nonce = md5
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let answer = |alg: digest::Algorithm, key: &str, uri: &str, nonce: &str| {
            let name = if alg == digest::Algorithm::Md5 {
                "MD5"
            } else {
                "SHA-256"
            };
            let header = format!(
                "Digest username=\"{DIGEST_USER}\", realm=\"ioc\", nonce=\"{nonce}\", uri=\"{uri}\", \
                 algorithm={name}, qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"\""
            );
            let parsed = digest::parse(&header).unwrap();
            let response = digest::expected(&parsed, &digest::ha1(alg, DIGEST_USER, key), "POST");
            header.replace("response=\"\"", &format!("response=\"{response}\""))
        };
        for alg in [digest::Algorithm::Md5, digest::Algorithm::Sha256] {
            let (status, _, json) = send(Some(answer(alg, CAMERA_KEY, path, &nonce))).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{alg:?}: {json}");
        }
        let md5 = digest::Algorithm::Md5;
        let (status, _, json) = send(Some(answer(md5, "guess", path, &nonce))).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_key"))
        );
        let (status, _, json) = send(Some(answer(md5, CAMERA_KEY, "/v1/reports", &nonce))).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_digest"))
        );
        let forged = digest::Nonces::new(Some("not ours")).issue(Utc::now().timestamp() as u64);
        let (status, _, json) = send(Some(answer(md5, CAMERA_KEY, path, &forged))).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_digest"))
        );
        let old = state().nonces.issue(Utc::now().timestamp() as u64 - 3600);
        let (status, challenges, json) = send(Some(answer(md5, CAMERA_KEY, path, &old))).await;
        assert_eq!(json["error"]["code"], "stale_nonce", "{json}");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            challenges.iter().any(|c| c.contains("stale=true")),
            "{challenges:?}"
        );
    }

    #[tokio::test]
    async fn vendor_refusals_say_what_to_fix() {
        let key = || Some(("x-api-key", CAMERA_KEY.to_string()));
        // An unknown device names the row to add.
        let (status, json) = post_vendor(
            "/v1/camera-events/hikvision",
            key(),
            "application/xml",
            hik_alert("aa:bb", "fielddetection"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
        assert_eq!(json["error"]["code"], "unknown_device");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hikvision,aa:bb,1,"));
        // Something that is not the format.
        let (status, json) = post_vendor(
            "/v1/camera-events/onvif",
            key(),
            "application/xml",
            "<x/>".into(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json["error"]["code"], "unreadable_payload");
        // A time no clock can say is refused, not replaced by ingest's.
        let year_zero = with_date(
            &hik_alert("hik-0003", "fielddetection"),
            "0000-01-01T00:00:00+07:00",
        );
        let (status, json) = post_vendor(
            "/v1/camera-events/hikvision",
            key(),
            "application/xml",
            year_zero,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
        assert_eq!(json["error"]["code"], "invalid_time");
        // A vendor event nobody maps is accepted and dropped, with the reason.
        let (status, json) = post_vendor(
            "/v1/camera-events/hikvision",
            key(),
            "application/xml",
            hik_alert("hik-0003", "videoloss"),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        assert_eq!(json["accepted"], 0);
        assert_eq!(json["ignored"][0]["vendor_event"], "videoloss");
        // No key, a wrong key, a wrong password, an unknown format.
        let body = || hik_alert("hik-0003", "fielddetection");
        let (status, _) = post_vendor(
            "/v1/camera-events/hikvision",
            None,
            "application/xml",
            body(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = post_vendor(
            "/v1/camera-events/hikvision",
            Some(basic("guess")),
            "application/xml",
            body(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, json) =
            post_vendor("/v1/camera-events/axis", key(), "application/xml", body()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json["error"]["code"], "unknown_format");
        // A key limited to other cameras.
        let (status, json) = post_vendor(
            "/v1/camera-events/hikvision",
            Some(("x-api-key", ONE_CAMERA_KEY.to_string())),
            "application/xml",
            body(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json["error"]["code"], "camera_not_allowed");
        // Dahua's stream does not name its device.
        let (status, json) = post_vendor(
            "/v1/camera-events/dahua",
            key(),
            "text/plain",
            "Code=TrafficParking;action=Start;index=0".into(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("?device="));
    }
}
