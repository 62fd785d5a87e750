//! HTTP glue every stage shares: a router that cannot hold an undocumented route.
//!
//! [`Documented::route`] registers a path with its handler and its OpenAPI operations in one
//! call, so the document a stage serves at `/openapi.json` lists exactly the paths it routes. The
//! methods each handler accepts are checked against the document by the stages' tests.

use std::future::Future;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use ioc_schema::metrics::Metrics;
use ioc_schema::openapi::{Api, Op};
use serde_json::{json, Value};

/// A router and the OpenAPI document of its routes, built together.
pub struct Documented<S> {
    router: Router<S>,
    api: Api,
    /// Set by [`Documented::with_ops`]: every request is then counted and timed by route.
    measured: Option<(Metrics, &'static str)>,
}

impl<S: Clone + Send + Sync + 'static> Documented<S> {
    pub fn new(api: Api) -> Self {
        Documented {
            router: Router::new(),
            api,
            measured: None,
        }
    }

    /// Routes `path` to `handler` and documents it with the operations `ops` returns (one per
    /// method the handler accepts).
    pub fn route(
        mut self,
        path: &str,
        handler: MethodRouter<S>,
        ops: impl FnOnce(&mut Api) -> Vec<Op>,
    ) -> Self {
        for op in ops(&mut self.api) {
            self.api.add(path, op);
        }
        self.router = self.router.route(path, handler);
        self
    }

    /// Adds what every stage serves its operators: `/healthz` (alive), `/readyz` (able to do its
    /// work now, by `ready`, for a load balancer) and `/metrics`; and counts every request of
    /// the stage by route and status in `ioc_http_requests_total` and
    /// `ioc_http_request_duration_seconds`.
    pub fn with_ops<R, Fut>(mut self, metrics: Metrics, stage: &'static str, ready: R) -> Self
    where
        R: Fn(S) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.measured = Some((metrics.clone(), stage));
        let text = || Some(("text/plain", json!({"type": "string"})));
        self.route(
            "/readyz",
            get(move |State(state): State<S>| {
                let ready = ready.clone();
                async move {
                    match ready(state).await {
                        Ok(()) => (StatusCode::OK, Json(json!({"ready": true}))),
                        Err(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"ready": false, "reason": reason})),
                        ),
                    }
                }
            }),
            |_| {
                let answer = json!({"type": "object", "required": ["ready"], "properties": {
                    "ready": {"type": "boolean"}, "reason": {"type": "string"}}});
                vec![Op::get("Readiness: whether this stage can do its work now")
                    .tag("operations")
                    .describe("For a load balancer: 503 with the reason while the broker is unreachable (or, for the dashboard, while it is still reading the incident topic).")
                    .json(200, "Ready", answer.clone())
                    .json(503, "Not ready, with the reason", answer)]
            },
        )
        .route("/healthz", get(|| async { "ok" }), |_| {
            vec![Op::get("Liveness: `ok` while the process runs")
                .tag("operations")
                .answers(200, "Alive", text())]
        })
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { m.render() }
            }),
            |_| {
                vec![Op::get("Prometheus metrics of this stage")
                    .tag("operations")
                    .answers(200, "Metrics in the Prometheus text format", text())]
            },
        )
    }

    /// The router, with `GET /openapi.json` serving the finished document.
    pub fn finish(self) -> (Router<S>, Value) {
        let Documented {
            router,
            mut api,
            measured,
        } = self;
        api.add(
            "/openapi.json",
            Op::get("This document: the OpenAPI 3.1 description of every endpoint here").json(
                200,
                "The document",
                json!({"type": "object"}),
            ),
        );
        let doc = api.finish();
        let served = doc.clone();
        let router = router.route(
            "/openapi.json",
            get(move || {
                let doc = served.clone();
                async move { Json(doc) }
            }),
        );
        let router = match measured {
            Some((metrics, stage)) => router.layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let metrics = metrics.clone();
                    async move { measure(metrics, stage, req, next).await }
                },
            )),
            None => router,
        };
        (router, doc)
    }
}

/// Counts and times one request under its route template (`/v1/incidents/{id}`, never the raw
/// path, so the label stays a bounded set); unmatched paths count as `unmatched`.
async fn measure(metrics: Metrics, stage: &'static str, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    metrics
        .http_seconds
        .with_label_values(&[stage, &route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[stage, &route, response.status().as_str()])
        .inc();
    response
}

/// Checks a router against its document: every documented method of every path is routed (not
/// 405) and every other method is refused with 405, so a handler cannot accept what the
/// document does not say. Path parameters are filled with `sample`. Returns the mismatches.
pub async fn undocumented_methods(router: Router, doc: &Value, sample: &str) -> Vec<String> {
    use tower::ServiceExt as _;
    let documented = ioc_schema::openapi::operations(doc);
    let mut paths: Vec<&String> = documented.iter().map(|(_, p)| p).collect();
    paths.sort();
    paths.dedup();
    let mut problems = Vec::new();
    for path in paths {
        let uri: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { sample } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(&uri)
                .body(axum::body::Body::empty())
                .expect("a valid request");
            let Ok(resp) = router.clone().oneshot(req).await;
            let routed = resp.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED;
            let is_documented = documented.iter().any(|(m, p)| m == method && p == path);
            if routed != is_documented {
                problems.push(format!(
                    "{method} {path}: {} but {}",
                    if routed { "routed" } else { "refused with 405" },
                    if is_documented {
                        "documented"
                    } else {
                        "not documented"
                    }
                ));
            }
        }
    }
    problems
}
