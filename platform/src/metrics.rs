//! What a process tells Prometheus: its recorder, installed once, and the metrics it describes
//! (HELP and TYPE) — the ones every HTTP server records ([`SHARED`]) and each service's own,
//! which the service lists beside the code that records them (`command_svc::METRICS`,
//! `projector::METRICS`, `query_svc::METRICS`); served at `GET /metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::params::{NoParameters, Strict};

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution.
    Histogram,
}

/// A metric: its name, its kind and its help text.
pub type Metric = (&'static str, Kind, &'static str);

/// The metrics every HTTP server records (connections, requests, timeouts).
pub const SHARED: &[Metric] = &[
    ("http_requests_total", Kind::Counter, "HTTP requests answered, by route, method and status."),
    ("http_request_duration_seconds", Kind::Histogram, "Time to answer an HTTP request, by route, method and status."),
    ("http_connections", Kind::Gauge, "Open client connections."),
    (
        "http_connections_refused_total",
        Kind::Counter,
        "Connections refused with 503 at accept, by reason (per_address, total).",
    ),
    (
        "http_timeouts_total",
        Kind::Counter,
        "Connections and requests ended for slowness, by phase (first_byte, head, body).",
    ),
    (
        "http_forwarded_for_ignored_total",
        Kind::Counter,
        "X-Forwarded-For headers ignored because the peer is not a trusted proxy.",
    ),
];

/// The process's Prometheus recorder, installed on first use, with [`SHARED`] described.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; the handle then stays unused.
        drop(::metrics::set_global_recorder(recorder));
        describe(SHARED);
        handle
    })
}

/// Installs the recorder (first, so that nothing recorded while starting is lost) and
/// describes `own`, the metrics of the service this process runs.
pub fn install(own: &[Metric]) -> &'static PrometheusHandle {
    let handle = prometheus();
    describe(own);
    handle
}

fn describe(metrics: &[Metric]) {
    for &(name, kind, help) in metrics {
        match kind {
            Kind::Counter => ::metrics::describe_counter!(name, help),
            Kind::Gauge => ::metrics::describe_gauge!(name, help),
            Kind::Histogram => ::metrics::describe_histogram!(name, help),
        }
    }
}

/// Every metric of the process, in Prometheus's text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
))]
pub async fn metrics(Strict(NoParameters {}): Strict<NoParameters>) -> String {
    prometheus().render()
}
