//! Writing lifecycle changes: actions posted by operators, ward units and citizens, and the
//! service-level monitor's escalations and automatic closes.
//!
//! Every change is checked against the incident's current revision, written to the incident
//! topic (the single source of truth) and only then applied to the local view. Changes are
//! serialised by one lock, and every incident's changes are made by the one instance that owns
//! its partition of the command topic ([`crate::commands`]), so two never build on the same
//! revision however many instances run.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ioc_config::kafka::SinkError;
use ioc_schema::lifecycle::{self, Action, Context, RefusalCode, Role};
use ioc_schema::validate::decode_json;
use ioc_schema::{Incident, Status, WardRef};

use crate::auth::{Authenticated, Caller};
use crate::ApiError;
use crate::{not_found, AppState};

/// How long an action waits for a starting dashboard to finish reading the topic.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// How many merges an action follows to reach the original incident.
const MAX_MERGE_HOPS: usize = 8;

fn unavailable(detail: &str) -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("{detail} Retry in a moment."),
    )
}

/// Writes one incident revision and waits for the broker's acknowledgement; applies it to the
/// view only then.
pub(crate) async fn write(s: &AppState, next: &Incident) -> Result<(), ApiError> {
    let payload = serde_json::to_vec(next).expect("incident serializes");
    s.sink
        .send(&s.settings.config.topics.incidents, &next.id, &payload)
        .await
        .map_err(|e| match e {
            SinkError::Unavailable(detail) => {
                tracing::warn!("cannot write incident change: {detail}");
                unavailable("The change could not be stored.")
            }
            SinkError::Busy(why) => {
                tracing::warn!("incident change not written: {why}");
                unavailable("The event store is busy, so the change was not stored.")
            }
            SinkError::TooLarge(detail) => {
                tracing::error!(incident = %next.id, "incident revision too large to store: {detail}");
                ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "incident_too_large",
                    "The incident's record has grown larger than the event store accepts; no further change can be stored. Tell the IOC administrator.".into(),
                )
            }
            SinkError::Refused(detail) => {
                tracing::error!("the event store refuses incident changes: {detail}");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "The event store refused the change; retrying will not help until the IOC administrator fixes it.".into(),
                )
            }
        })?;
    s.apply(next.clone());
    Ok(())
}

/// The incident an action on `id` reaches: `id` itself, or the original it was merged into.
fn target_of(s: &AppState, id: &str) -> Result<Incident, ApiError> {
    let view = s.view.read().expect("view lock");
    let mut current = view.get(id).ok_or_else(|| not_found(id))?;
    for _ in 0..MAX_MERGE_HOPS {
        match (&current.status, &current.duplicate_of) {
            (Status::Duplicate, Some(original)) => match view.get(original) {
                Some(o) => current = o,
                None => break,
            },
            _ => break,
        }
    }
    Ok(current)
}

fn refusal(r: lifecycle::Refusal) -> ApiError {
    let code = r.code.as_str();
    match r.code {
        // Nothing about the incident's state: it may be another ward's.
        RefusalCode::Forbidden => ApiError(StatusCode::FORBIDDEN, code, r.message),
        RefusalCode::Invalid => ApiError(StatusCode::UNPROCESSABLE_ENTITY, code, r.message),
        RefusalCode::IllegalTransition => ApiError(
            StatusCode::CONFLICT,
            code,
            format!("{} The incident is {}.", r.message, r.current.as_str()),
        ),
    }
}

/// A request body within the dashboard's limit, or a 413 that says so.
fn body(raw: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    raw.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "The body is larger than {} bytes; texts are limited to {} characters.",
                    crate::MAX_BODY_BYTES,
                    ioc_schema::validate::MAX_TEXT_CHARS
                ),
            )
        } else {
            ApiError(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                rejection.body_text(),
            )
        }
    })
}

/// Applies a lifecycle action to incident `id` (or, if it was merged, to its original) through
/// the instance that owns the incident ([`crate::commands`]) and returns the new revision.
pub async fn act(
    s: &AppState,
    id: &str,
    action: Action,
    role: Role,
    actor: &str,
) -> Result<Incident, ApiError> {
    crate::commands::submit(s, id, action, role, actor).await
}

/// Applies a lifecycle action here: on the instance that owns the incident's partition of the
/// command topic (or in a test without one), after the view has read what the last owner wrote.
/// The caller holds `s.acting`, so two actions never build on the same revision.
pub(crate) async fn act_locked(
    s: &AppState,
    id: &str,
    action: Action,
    role: Role,
    actor: &str,
    command: Option<&str>,
) -> Result<Incident, ApiError> {
    // Right after a start the view may still be reading the topic; give it a moment.
    let started = std::time::Instant::now();
    while !s.is_caught_up() {
        if started.elapsed() > CATCH_UP_WAIT {
            return Err(unavailable(
                "The dashboard is still reading the incident history.",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A citizen of a merged report follows the original: their confirmation or dispute is about
    // the one problem both reports describe. Staff act on the incident they name.
    let current = if role == Role::Citizen {
        target_of(s, id)?
    } else {
        s.view
            .read()
            .expect("view lock")
            .get(id)
            .ok_or_else(|| not_found(id))?
    };
    // A command applied again (its owner crashed before committing it) changes nothing: the
    // answer is the revision it made the first time, or the incident as it is now.
    if let Some(c) = command {
        if current
            .history
            .iter()
            .any(|t| t.command.as_deref() == Some(c))
        {
            return Ok(current);
        }
    }
    let at = s.now();
    let named = match &action {
        Action::Assign { ward_id, .. } => Some(ward_id),
        Action::Reject { ward_id, .. } => ward_id.as_ref(),
        _ => None,
    };
    let (ward, boundary_version) = named
        .and_then(|id| {
            s.with_set_in_force(|set| {
                let set = set?;
                set.index.wards().iter().find(|w| &w.id == id).map(|w| {
                    let ward = WardRef {
                        id: w.id.clone(),
                        name: w.name.clone(),
                    };
                    (ward, set.version.clone())
                })
            })
        })
        .unzip();
    let category = s.settings.category(&current.category);
    let targets = category.map(|c| c.targets());
    let cx = Context {
        role,
        actor_name: actor,
        at,
        ward,
        boundary_version,
        unit: category.map(|c| c.unit.clone()),
        reopen_window: s.settings.config.dashboard.reopen_window.to_chrono(),
        targets: targets.as_ref(),
    };
    // A merge names the original's own original if that was merged too.
    let (action, original) = match action {
        Action::MarkDuplicate { of, note } => {
            let original = target_of(s, &of).map_err(|_| {
                ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    format!("No incident {of} to merge into."),
                )
            })?;
            let of = original.id.clone();
            (Action::MarkDuplicate { of, note }, Some(original))
        }
        other => (other, None),
    };
    let mut next = lifecycle::apply(&current, &action, &cx).map_err(refusal)?;
    if let Some(t) = next.history.last_mut() {
        t.command = command.map(String::from);
    }
    // The original's record goes first: a retry after a failure in between finds it done.
    if let Some(original) = original {
        if let Some(absorbed) = lifecycle::absorb(&original, &current.id, &cx).map_err(refusal)? {
            write(s, &absorbed).await?;
        }
    }
    if let Action::Split { .. } = action {
        let original = current.duplicate_of.as_deref().and_then(|o| {
            let view = s.view.read().expect("view lock");
            view.get(o)
        });
        if let Some(released) = original.and_then(|o| lifecycle::release(&o, &current.id, &cx)) {
            write(s, &released).await?;
        }
    }
    write(s, &next).await?;
    s.metrics
        .lifecycle_actions
        .with_label_values(&[action.name()])
        .inc();
    Ok(next)
}

/// `POST /v1/incidents/{id}/actions`: an operator's or ward unit's action.
pub async fn post_action(
    State(s): State<AppState>,
    who: Authenticated,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let action: Action = decode_json(&body(raw)?)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.message))?;
    // The audit trail names the token's holder, so a unit's or operator's action is theirs.
    let role = match who.caller {
        Caller::Operator => Role::Operator,
        Caller::Ward(w) => Role::WardUnit(w),
    };
    Ok(Json(act(&s, &id, action, role, &who.name).await?).into_response())
}

/// What a citizen's confirmation or dispute answers.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct CitizenAnswer {
    pub tracking_id: String,
    pub status: Status,
    /// The report this one was merged into, which took the answer instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_to: Option<String>,
}

fn citizen_answer(asked: &str, next: &Incident) -> Response {
    Json(CitizenAnswer {
        tracking_id: asked.to_string(),
        status: next.status,
        forwarded_to: (next.id != asked).then(|| next.id.clone()),
    })
    .into_response()
}

/// `POST /v1/reports/{id}/confirm`: the citizen accepts the resolution.
pub async fn citizen_confirm(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let next = act(&s, &id, Action::Close, Role::Citizen, "citizen").await?;
    Ok(citizen_answer(&id, &next))
}

/// Why the citizen disputes a resolution.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispute {
    /// What is still wrong.
    pub reason: String,
}

/// `POST /v1/reports/{id}/dispute`: the citizen says the problem is not solved.
pub async fn citizen_dispute(
    State(s): State<AppState>,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let d: Dispute = decode_json(&body(raw)?)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.message))?;
    let next = act(
        &s,
        &id,
        Action::Reopen { reason: d.reason },
        Role::Citizen,
        "citizen",
    )
    .await?;
    Ok(citizen_answer(&id, &next))
}
