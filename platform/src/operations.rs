//! The endpoints an operator points probes and Prometheus at: `GET /healthz` (the process
//! answers), `GET /readyz` (its dependencies answer) and `GET /metrics`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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
            let state = crate::jetstream::is_connected(&client);
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

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution.
    Histogram,
}

/// Every metric a Scoreboard process exports, with its help text: the closed set that
/// `/metrics` describes (HELP and TYPE) and the metrics table of docs/operating.md lists.
pub const METRICS: &[(&str, MetricKind, &str)] = &[
    ("http_requests_total", MetricKind::Counter, "HTTP requests answered, by route, method and status."),
    (
        "http_request_duration_seconds",
        MetricKind::Histogram,
        "Time to answer an HTTP request, by route, method and status.",
    ),
    ("http_connections", MetricKind::Gauge, "Open client connections."),
    (
        "http_connections_refused_total",
        MetricKind::Counter,
        "Connections refused with 503 at accept, by reason (per_address, total).",
    ),
    (
        "http_timeouts_total",
        MetricKind::Counter,
        "Connections and requests ended for slowness, by phase (first_byte, head, body).",
    ),
    (
        "http_forwarded_for_ignored_total",
        MetricKind::Counter,
        "X-Forwarded-For headers ignored because the peer is not a trusted proxy.",
    ),
    (
        "actions_total",
        MetricKind::Counter,
        "POST /v1/actions answers, by outcome (accepted, retried, or the problem code).",
    ),
    ("append_batch_size", MetricKind::Histogram, "Events per group-commit transaction."),
    ("append_batch_seconds", MetricKind::Histogram, "Time of one group-commit append, isolating retries included."),
    (
        "append_queue_full_total",
        MetricKind::Counter,
        "Actions refused with 503 because the group-commit queue was full.",
    ),
    (
        "trust_reloads_total",
        MetricKind::Counter,
        "Reloads of keys, operators and catalog on SIGHUP, by outcome (applied, refused).",
    ),
    (
        "checkpoints_total",
        MetricKind::Counter,
        "Checkpoints of the Merkle tree signed, by outcome (signed, failed, unpublished).",
    ),
    ("checkpoint_tree_size", MetricKind::Gauge, "Tree size of the latest checkpoint this process signed."),
    (
        "moderation_events_total",
        MetricKind::Counter,
        "Bans, unbans and revocations asked for by operators, by outcome (appended, refused).",
    ),
    (
        "anomaly_flags_total",
        MetricKind::Counter,
        "Players flagged for review by the anomaly rules, by rule: the flag rate.",
    ),
    ("usage_actions_total", MetricKind::Counter, "Actions folded into usage analytics, by action (of the catalog)."),
    ("usage_points_total", MetricKind::Counter, "Points awarded by the actions folded into usage analytics."),
    ("usage_new_players_total", MetricKind::Counter, "Players folded whose first award ever it was."),
    (
        "usage_active_players",
        MetricKind::Gauge,
        "Distinct players awarded in the newest UTC hour or day folded, by window (hour, day).",
    ),
    ("relay_published_position", MetricKind::Gauge, "Log position of the last event published to JetStream."),
    ("relay_lag_events", MetricKind::Gauge, "Events in the log not yet published to JetStream."),
    ("relay_published_total", MetricKind::Counter, "Events published to JetStream."),
    ("relay_errors_total", MetricKind::Counter, "Relay rounds interrupted by an error."),
    (
        "relay_foreign_messages_total",
        MetricKind::Counter,
        "Stream messages the relay stepped over: not written by a relay of this log.",
    ),
    (
        "relay_resynchronisations_total",
        MetricKind::Counter,
        "Times the relay resynchronised after someone else wrote into the stream.",
    ),
    (
        "relay_diverged",
        MetricKind::Gauge,
        "1 while the stream holds an event beyond the log's head (the log is behind the stream).",
    ),
    ("projector_checkpoint", MetricKind::Gauge, "Log position the read model has folded through."),
    (
        "season_results_published_total",
        MetricKind::Counter,
        "Versions of season results published (a season closed, or moderation amended one).",
    ),
    ("season_results_relayed_total", MetricKind::Counter, "Versions of season results sent to JetStream."),
    ("projector_lag_events", MetricKind::Gauge, "Stream messages not yet delivered to the projector."),
    ("projector_events_applied_total", MetricKind::Counter, "Events folded into the read model."),
    (
        "projector_events_skipped_total",
        MetricKind::Counter,
        "Delivered messages at or below the checkpoint (redeliveries, duplicates).",
    ),
    (
        "projector_forged_messages_total",
        MetricKind::Counter,
        "Stream messages the event log contradicts: never folded.",
    ),
    ("projector_foreign_messages_total", MetricKind::Counter, "Stream messages without a position header: not events."),
    ("projector_errors_total", MetricKind::Counter, "Projection runs interrupted by an error."),
    ("projector_batch_size", MetricKind::Histogram, "Events folded per transaction."),
    ("projector_batch_seconds", MetricKind::Histogram, "Time to fold and acknowledge one batch."),
    ("query_board_position", MetricKind::Gauge, "Log position of the board this query service serves."),
    ("query_board_loads_total", MetricKind::Counter, "Whole-board loads from the read model (start, restore)."),
    (
        "query_projection_lagging_total",
        MetricKind::Counter,
        "Reads answered 503 projection_lagging (min_position not reached in time).",
    ),
    (
        "query_announcements_unconfirmed_total",
        MetricKind::Counter,
        "Announcements claiming more than the read model holds.",
    ),
    ("query_announcements_ignored_total", MetricKind::Counter, "Announcements that are not a position."),
    ("query_rate_limited_total", MetricKind::Counter, "Reads refused with 429 by the per-address limit."),
    (
        "query_database_reads_refused_total",
        MetricKind::Counter,
        "Reads of the database (past boards, the log, proofs) refused with 503, by reason (per_address, total).",
    ),
    ("query_cache_hits_total", MetricKind::Counter, "Reads of the database answered from memory, by kind."),
    ("live_connections", MetricKind::Gauge, "Open live streams, by kind (sse, ws)."),
    (
        "live_connections_refused_total",
        MetricKind::Counter,
        "Live streams refused with 503, by reason (per_address, total).",
    ),
    (
        "live_boards_conflated_total",
        MetricKind::Counter,
        "Boards a live stream skipped because a newer one was ready when its client was.",
    ),
];

/// The process's Prometheus recorder, installed on first use, with every metric of
/// [`METRICS`] described.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; the handle then stays unused.
        drop(metrics::set_global_recorder(recorder));
        for &(name, kind, help) in METRICS {
            match kind {
                MetricKind::Counter => metrics::describe_counter!(name, help),
                MetricKind::Gauge => metrics::describe_gauge!(name, help),
                MetricKind::Histogram => metrics::describe_histogram!(name, help),
            }
        }
        handle
    })
}

/// Routes `/healthz`, `/readyz` and `/metrics`.
pub fn router(readiness: Readiness) -> Router {
    prometheus();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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

/// Every metric of the process, in Prometheus's text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
))]
pub async fn metrics(Strict(NoParameters {}): Strict<NoParameters>) -> String {
    prometheus().render()
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

    /// Every metric the workspace records is one of [`METRICS`] (so it is described and
    /// documented), and every one of [`METRICS`] is recorded somewhere.
    #[test]
    fn the_metrics_catalog_is_the_set_the_code_records() {
        fn sources(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().to_string();
                if path.is_dir() && !name.starts_with('.') && name != "target" {
                    sources(&path, found);
                } else if name.ends_with(".rs") {
                    found.push(std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let mut files = Vec::new();
        sources(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")), &mut files);
        let mut recorded = std::collections::BTreeSet::new();
        for file in &files {
            for macro_call in ["metrics::counter!(\"", "metrics::gauge!(\"", "metrics::histogram!(\""] {
                for (at, _) in file.match_indices(macro_call) {
                    let rest = &file[at + macro_call.len()..];
                    recorded.insert(rest[..rest.find('"').unwrap()].to_string());
                }
            }
        }
        let described: std::collections::BTreeSet<String> = METRICS.iter().map(|(n, _, _)| n.to_string()).collect();
        assert_eq!(recorded, described);
    }

    /// The Grafana dashboard in `docs/` charts only metrics of the catalog.
    #[test]
    fn the_dashboard_charts_only_metrics_that_exist() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana-dashboard.json");
        let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let promql = ["sum", "by", "rate", "max", "min", "increase", "histogram_quantile", "le"];
        let labels = ["route", "outcome", "kind", "reason", "action", "window"];
        let mut charted = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                // Label values in quotes and range durations in brackets are not names.
                let unquoted: String = expr.split('"').step_by(2).collect::<Vec<_>>().join(" ");
                let unquoted: String =
                    unquoted.split('[').map(|part| part.split_once(']').map_or(part, |(_, rest)| rest)).collect();
                for word in unquoted.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.is_empty()
                        || word.parse::<f64>().is_ok()
                        || promql.contains(&word)
                        || labels.contains(&word)
                    {
                        continue;
                    }
                    let name = word.strip_suffix("_bucket").unwrap_or(word);
                    assert!(METRICS.iter().any(|(known, _, _)| *known == name), "{expr}: {name} is not a metric");
                    charted += 1;
                }
            }
        }
        assert!(charted >= 20, "{charted}");
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
