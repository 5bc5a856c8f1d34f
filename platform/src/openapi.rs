//! OpenAPI 3.1 descriptions, generated from the code with utoipa: each service describes its own
//! routes, and [`describe`] adds what every service shares — the operations endpoints, the
//! problem documents any route may answer, and `x-request-id` on every response.

use axum::Router;
use axum::http::header;
use axum::routing::get;
use utoipa::PartialSchema;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr};

use crate::Problem;

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The operations endpoints every service serves (see [`crate::probes::router`]).
#[derive(utoipa::OpenApi)]
#[openapi(paths(crate::probes::healthz, crate::probes::readyz, crate::metrics::metrics), components(schemas(Problem)))]
struct Operations;

/// A service's whole description: its `routes` (described by the service) with the operations
/// endpoints, titled `title`, where each of the service's own operations may also answer
/// `400 invalid_request` (an unknown query parameter), `429 rate_limited`, `503 unavailable`
/// and `500 internal` (and `408 request_timeout` where it takes a body), and every response
/// names the request in `x-request-id`.
pub fn describe(title: &str, description: &str, routes: OpenApi) -> OpenApi {
    let mut api = routes;
    api.info.title = title.to_string();
    api.info.description = Some(description.to_string());
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    api.info.license = Some(utoipa::openapi::License::new("MIT OR Apache-2.0"));
    api.info.contact = None;
    for operation in operations(&mut api) {
        let responses = &mut operation.responses.responses;
        for (status, problem) in [
            ("400", problem("The request is not valid (`invalid_request`), for example an unknown query parameter")),
            ("429", problem("Too many requests from this client address (`rate_limited`); retry after `Retry-After`")),
            ("500", problem("An unexpected error (`internal`)")),
            ("503", problem("A dependency is unavailable or the service is overloaded; retry after `Retry-After`")),
        ] {
            responses.entry(status.to_string()).or_insert_with(|| RefOr::T(problem));
        }
        if operation.request_body.is_some() {
            let slow = problem("The body did not arrive within `BODY_TIMEOUT` (`request_timeout`)");
            responses.entry("408".to_string()).or_insert_with(|| RefOr::T(slow));
        }
    }
    api.merge(<Operations as utoipa::OpenApi>::openapi());
    for operation in operations(&mut api) {
        for response in operation.responses.responses.values_mut() {
            if let RefOr::T(response) = response {
                let header = HeaderBuilder::new()
                    .schema(Some(<String as PartialSchema>::schema()))
                    .description(Some("The request's own `x-request-id` when it sent one, else a fresh UUID"))
                    .build();
                response.headers.insert("x-request-id".to_string(), RefOr::T(header));
            }
        }
    }
    api
}

/// A response carrying a problem document (RFC 9457), with the `Retry-After` it may carry.
pub fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
        .header(
            "retry-after",
            HeaderBuilder::new()
                .schema(Some(<u64 as PartialSchema>::schema()))
                .description(Some("Seconds to wait before retrying (on 429 and 503)"))
                .build(),
        )
        .build()
}

/// Route `/openapi.json`, serving `api`.
pub fn router(api: &OpenApi) -> Router {
    let body = to_json(api);
    Router::new()
        .route("/openapi.json", get(move || std::future::ready(([(header::CONTENT_TYPE, "application/json")], body))))
}

/// `api` as the JSON checked in under `docs/`: pretty, with a final newline.
pub fn to_json(api: &OpenApi) -> String {
    let mut json = api.to_pretty_json().expect("an OpenAPI document always serialises");
    json.push('\n');
    json
}

fn operations(api: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    api.paths.paths.values_mut().flat_map(|item| {
        [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch].into_iter().flatten()
    })
}
