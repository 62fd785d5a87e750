//! HTTP glue every stage shares: a router that cannot hold an undocumented route.
//!
//! [`Documented::route`] registers a path with its handler and its OpenAPI operations in one
//! call, so the document a stage serves at `/openapi.json` lists exactly the paths it routes. The
//! methods each handler accepts are checked against the document by the stages' tests.

use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use ioc_schema::metrics::Metrics;
use ioc_schema::openapi::{Api, Op};
use serde_json::{json, Value};

/// A router and the OpenAPI document of its routes, built together.
pub struct Documented<S> {
    router: Router<S>,
    api: Api,
}

impl<S: Clone + Send + Sync + 'static> Documented<S> {
    pub fn new(api: Api) -> Self {
        Documented {
            router: Router::new(),
            api,
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

    /// Adds what every stage serves its operators: `/healthz` and `/metrics`.
    pub fn with_ops(self, metrics: Metrics) -> Self {
        let text = || Some(("text/plain", json!({"type": "string"})));
        self.route("/healthz", get(|| async { "ok" }), |_| {
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
        let Documented { router, mut api } = self;
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
        (router, doc)
    }
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
