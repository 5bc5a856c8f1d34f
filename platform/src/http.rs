//! The HTTP assembly every service shares: its routes with the operations endpoints and
//! `/openapi.json`, problem-document fallbacks, request ids, request metrics, tracing and CORS.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::classify::ServerErrorsFailureClass;

use crate::probes::{Readiness, router};

/// The header that names a request: the client's own when it sent one, else a fresh UUID.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A service's whole router: its `routes`, the operations endpoints, `/openapi.json` serving
/// `api` (see [`crate::openapi::describe`]), a problem-document
/// fallback, request metrics, CORS open to any origin (action tokens are the credential, there
/// are no cookies), and an `x-request-id` on every response that also names the span every log
/// line of the request is written in.
pub fn service(routes: Router, api: &utoipa::openapi::OpenApi, readiness: Readiness) -> Router {
    service_with_hot(routes, api, readiness, |_| false)
}

/// [`service`], with the requests `hot` says are the hot path (every page asks for them, they are
/// answered from memory) traced at `debug` rather than `info`: their span costs nothing unless
/// asked for, and they log nothing at `info` anyway.
pub fn service_with_hot(
    routes: Router,
    api: &utoipa::openapi::OpenApi,
    readiness: Readiness,
    hot: fn(&Request) -> bool,
) -> Router {
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, HeaderName::from_static("last-event-id"), REQUEST_ID])
        .expose_headers([REQUEST_ID]);
    let trace = tower_http::trace::TraceLayer::new_for_http().make_span_with(move |request: &Request| {
        let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let (method, path) = (request.method(), request.uri().path());
        if hot(request) {
            tracing::debug_span!("request", request_id = %id, method = %method, path = %path)
        } else {
            tracing::info_span!("request", request_id = %id, method = %method, path = %path)
        }
    });
    // A 503 is a refusal (a cap, a full queue) or a dependency down, which what noticed it logs
    // once: logged per answer at `error`, a flood of refused requests would be a flood of lines.
    let trace = trace.on_failure(|failure: ServerErrorsFailureClass, latency: Duration, _: &tracing::Span| {
        let latency_ms = latency.as_millis();
        match failure {
            ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
                tracing::debug!(target: "tower_http::trace::on_failure", classification = %failure, latency_ms, "response failed");
            }
            _ => tracing::error!(target: "tower_http::trace::on_failure", classification = %failure, latency_ms, "response failed"),
        }
    });
    routes
        .merge(router(readiness))
        .merge(crate::openapi::router(api))
        .fallback(crate::problem::not_found)
        .method_not_allowed_fallback(crate::problem::method_not_allowed)
        .layer(axum::middleware::from_fn(track_http))
        .layer(trace)
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(tower_http::request_id::SetRequestIdLayer::new(REQUEST_ID, FreshRequestId))
        .layer(cors)
}

/// A fresh random (version 4) UUID for a request that brought no id, drawn from the thread's
/// CSPRNG (seeded from the OS once) rather than a `getrandom` system call per request.
#[derive(Clone, Copy)]
struct FreshRequestId;

impl tower_http::request_id::MakeRequestId for FreshRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let value =
            axum::http::HeaderValue::from_str(id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer())).ok()?;
        Some(tower_http::request_id::RequestId::new(value))
    }
}

/// Middleware recording `http_requests_total` and `http_request_duration_seconds` by route,
/// method and status. Every label comes from a closed set (the routes the service declares,
/// the standard methods, the statuses it answers), so no client can create new series.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    HttpMetrics::of(route, method, response.status().as_u16(), |handles| {
        handles.requests.increment(1);
        handles.duration.record(started.elapsed().as_secs_f64());
    });
    response
}

/// The handles of the HTTP metrics of one route, method and status, registered once: a request
/// then records through them without building label strings or looking the series up.
struct HttpMetrics {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Every route's handles, by route, then method and status.
type ByRoute = std::collections::HashMap<Box<str>, std::collections::HashMap<(&'static str, u16), HttpMetrics>>;

impl HttpMetrics {
    /// Runs `record` with the handles of `route`, `method` and `status`, registering them first
    /// if this is the first such request.
    fn of(route: &str, method: &'static str, status: u16, record: impl FnOnce(&Self)) {
        static HANDLES: OnceLock<std::sync::RwLock<ByRoute>> = OnceLock::new();
        let handles = HANDLES.get_or_init(Default::default);
        {
            let known = handles.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(metrics) = known.get(route).and_then(|by_status| by_status.get(&(method, status))) {
                return record(metrics);
            }
        }
        let mut known = handles.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let metrics = known.entry(route.into()).or_default().entry((method, status)).or_insert_with(|| {
            let labels = [("route", route.to_string()), ("method", method.to_string()), ("status", status.to_string())];
            Self {
                requests: metrics::counter!("http_requests_total", &labels),
                duration: metrics::histogram!("http_request_duration_seconds", &labels),
            }
        });
        record(metrics);
    }
}

/// The method as a metrics label: a standard method by name, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    [
        ("GET", Method::GET),
        ("POST", Method::POST),
        ("PUT", Method::PUT),
        ("DELETE", Method::DELETE),
        ("HEAD", Method::HEAD),
        ("OPTIONS", Method::OPTIONS),
        ("PATCH", Method::PATCH),
        ("CONNECT", Method::CONNECT),
        ("TRACE", Method::TRACE),
    ]
    .into_iter()
    .find(|(_, standard)| standard == method)
    .map_or("other", |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Problem;
    use crate::probes::tests::get_status;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    /// What a subscriber wrote, for a test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl tracing_subscriber::fmt::MakeWriter<'_> for Captured {
        type Writer = Self;

        fn make_writer(&self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn a_500_is_logged_as_an_error_and_a_503_refusal_is_not() {
        let routes = Router::new()
            .route("/broken", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .route("/refused", get(|| async { Problem::unavailable("too many reads in flight") }));
        let api = crate::openapi::describe("test", "a test", utoipa::openapi::OpenApiBuilder::new().build());
        let app = service(routes, &api, Readiness::default());
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt().with_writer(captured.clone()).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                for _ in 0..100 {
                    assert_eq!(get_status(app.clone(), "/refused").await.0, StatusCode::SERVICE_UNAVAILABLE);
                }
                assert_eq!(get_status(app.clone(), "/broken").await.0, StatusCode::INTERNAL_SERVER_ERROR);
            });
        });
        let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let errors: Vec<&str> = logged.lines().filter(|line| line.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{logged}");
        assert!(errors[0].contains("500") && errors[0].contains("/broken"), "{logged}");
    }

    #[tokio::test]
    async fn every_response_names_its_request() {
        let api = crate::openapi::describe("test", "a test", utoipa::openapi::OpenApiBuilder::new().build());
        let app = service(Router::new(), &api, Readiness::default());
        let request = Request::get("/healthz").header("x-request-id", "client-chosen-42").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
        let response = app.oneshot(Request::get("/nowhere").body(Body::empty()).unwrap()).await.unwrap();
        let generated = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    }

    #[tokio::test]
    async fn every_service_describes_itself_and_its_operations_endpoints() {
        let api = crate::openapi::describe("test", "a test", utoipa::openapi::OpenApiBuilder::new().build());
        let app = service(Router::new(), &api, Readiness::default());
        let (status, body) = get_status(app.clone(), "/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["openapi"], "3.1.0");
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert!(body["paths"][path]["get"].is_object(), "{path} is not described");
        }
        assert!(body["components"]["schemas"]["Problem"].is_object());
        let (status, _) = get_status(app, "/healthz?verbose=1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "operations endpoints read their parameters strictly too");
    }
}
