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
//! from them can leak them; enforcement records ([`violations`]) carry plates, served only to
//! tokens allowed to read them.
//!
//! Modules: `state` (what the handlers, the consumer and the monitor share), `http` (the
//! documented routes and the read handlers), [`auth`] (tokens, the `Authenticated` and `Scoped`
//! extractors), [`actions`] (lifecycle writes), [`monitor`] (escalations and automatic closes),
//! [`latest`] (each incident's latest revision kept last on the compacted topic),
//! `consumer` (the incident topic into the view), [`view`] (the in-memory view and its
//! queries), [`figures`], [`open311`], `error` (the HTTP layer's one error type).

pub mod actions;
pub mod auth;
pub mod commands;
mod consumer;
mod error;
pub mod figures;
mod http;
pub mod latest;
pub mod monitor;
pub mod open311;
mod pages;
pub mod situations;
mod state;
pub mod view;
pub mod violations;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ioc_config::load::Settings;
use ioc_config::supervise::Supervisor;
use ioc_schema::metrics::Metrics;

pub(crate) use auth::scope;
pub use consumer::consume;
pub use error::ApiError;
pub(crate) use error::{bad_query, not_found, not_yours};
pub use http::{app, openapi, PublicStatus, PublicStep};
pub use state::{system_clock, AppState, Clock};

const STAGE: &str = "dashboard";
/// A topic without new records for this long counts as read to its end.
const CATCH_UP_QUIET: Duration = Duration::from_secs(10);
const MAP_PAGE: &str = include_str!("../assets/map.html");
/// Largest request body the dashboard reads: lifecycle actions, disputes and Open311 forms are
/// small, and every text in them is limited to 4,000 characters.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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
    // Indexing the boundary sets takes a while on a large map: off the async workers.
    let building = settings.clone();
    let mut state = tokio::task::spawn_blocking(move || AppState::new(building, metrics, clock))
        .await
        .context("building the dashboard's state panicked")??;
    if state.tokens.is_empty() {
        tracing::warn!("dashboard.tokens is empty: every request except /v1/reports/{{id}} will be refused; add a token (see README)");
    }
    // Draw the current map's outlines before the first browser asks for them.
    let drawing = state.clone();
    tokio::task::spawn_blocking(move || {
        drawing.with_set_in_force(|set| set.map(|set| drawing.outlines(set)));
    });
    tracing::info!("dashboard API on http://{}", listener.local_addr()?);
    let mut tasks = Supervisor::new();
    let token = tasks.token();
    state.stopping = token.clone();
    let server = axum::serve(
        listener,
        app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(token.clone().cancelled_owned());
    tasks.spawn("HTTP server", async move {
        server.await.context("serving the dashboard")
    });
    if settings.config.dashboard.monitor {
        tasks.spawn(
            "service-level monitor",
            monitor::monitor(state.clone(), token.clone()),
        );
    }
    tasks.spawn("command owner", commands::own(state.clone(), token.clone()));
    tasks.spawn(
        "latest revisions last",
        latest::keep_latest_last(state.clone(), token.clone()),
    );
    tasks.spawn(
        "camera situations",
        situations::follow(state.clone(), token.clone()),
    );
    tasks.spawn(
        "enforcement records",
        violations::follow(state.clone(), token.clone()),
    );
    tasks.spawn(
        "command answers",
        commands::listen(state.clone(), token.clone()),
    );
    tasks.spawn(
        "boundary watcher",
        ioc_wards::watch(settings.clone(), state.sets.clone(), token.clone()),
    );
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
