//! The endpoints an operator points probes and Prometheus at: `GET /healthz` (the process
//! answers), `GET /readyz` (its dependencies answer), and `GET /metrics` ([`crate::metrics`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;

use crate::Problem;
use crate::params::{NoParameters, Strict};

/// One named readiness check: `Ok` when the dependency answers, `Err(reason)` when not.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The checks behind `/readyz`, run concurrently, each bounded by two seconds.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    /// Adds a check named `name`.
    pub fn with<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// Adds a check that `store` answers.
    pub fn with_store<S: store::EventStore>(self, name: &'static str, store: S) -> Self {
        self.with(name, move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// Adds a check that the NATS client is connected.
    pub fn with_nats(self, client: async_nats::Client) -> Self {
        self.with("nats", move || {
            let state = crate::nats::is_connected(&client);
            async move { state }
        })
    }

    async fn run(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let results = futures::future::join_all(self.checks.iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(Duration::from_secs(2), check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err("no answer within 2 s".to_string()),
            };
            (*name, outcome)
        }))
        .await;
        let ready = results.iter().all(|(_, outcome)| outcome.is_ok());
        let report = results
            .into_iter()
            .map(|(name, outcome)| (name.to_string(), serde_json::json!(outcome.err().unwrap_or_else(|| "ok".into()))))
            .collect();
        (ready, report)
    }
}

/// Routes `/healthz`, `/readyz` and `/metrics`.
pub fn router(readiness: Readiness) -> Router {
    crate::metrics::prometheus();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::metrics))
        .with_state(Arc::new(readiness))
}

/// The state of a process or of its dependencies.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (the process answers) or `ready` (its dependencies answer too).
    #[schema(value_type = String)]
    status: &'static str,
    /// Each dependency checked, `ok` or why not (only on `/readyz`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    checks: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses(
    (status = 200, description = "The process is live", body = Health),
))]
pub async fn healthz(Strict(NoParameters {}): Strict<NoParameters>) -> axum::Json<Health> {
    axum::Json(Health { status: "ok", checks: None })
}

/// Every dependency of the process answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Every dependency answers", body = Health),
    (status = 503, description = "A dependency does not answer; the detail names it",
        body = Problem, content_type = "application/problem+json"),
))]
pub async fn readyz(
    State(readiness): State<Arc<Readiness>>,
    Strict(NoParameters {}): Strict<NoParameters>,
) -> Response {
    let (ready, checks) = readiness.run().await;
    if ready {
        (StatusCode::OK, axum::Json(Health { status: "ready", checks: Some(checks) })).into_response()
    } else {
        let detail = checks
            .iter()
            .filter(|(_, v)| v.as_str() != Some("ok"))
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ");
        Problem::unavailable(detail).into_response()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::Request;
    use tower::ServiceExt;

    /// `path`'s status and JSON body, asked of `router`.
    pub(crate) async fn get_status(router: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let response = router.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 100_000).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn readyz_reports_each_failing_dependency() {
        let readiness = Readiness::default()
            .with("postgres", || async { Ok(()) })
            .with("nats", || async { Err("connection refused".to_string()) });
        let (status, body) = get_status(router(readiness), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "unavailable");
        assert_eq!(body["detail"], "nats: connection refused");
    }

    #[tokio::test]
    async fn readyz_is_ok_when_every_check_passes() {
        let readiness = Readiness::default().with("postgres", || async { Ok(()) });
        let (status, body) = get_status(router(readiness), "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["checks"]["postgres"], "ok");
        let (status, _) = get_status(router(Readiness::default()), "/healthz").await;
        assert_eq!(status, StatusCode::OK);
    }
}
