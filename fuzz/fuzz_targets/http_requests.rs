//! Any request to the all-in-one's real router (embedded SQLite, the group commit, the projector
//! and the live board behind it): any method, path, query string and body. Whatever arrives, the
//! answer is never a `500`; a `5xx` is only a documented `503`; and every refusal is an RFC 9457
//! problem document. The first input byte picks the method; the path and query run to the first
//! newline, the body is the rest. With the method byte's top bit set the body's pieces become
//! the claims of a validly signed token instead, so the fuzzer also reaches the award, the
//! append and the read side with players, actions and names of its choosing.
#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use clap::Parser as _;
use events::{ActionClaims, KeyId, KeySecret};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

const KID: &str = "fuzz";
const SECRET: &str = "fuzzing-secret-of-at-least-32-bytes";

struct Server {
    runtime: tokio::runtime::Runtime,
    app: Router,
    _data: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let data = tempfile::tempdir().expect("a temporary folder");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let config = scoreboard::Config::parse_from([
            "scoreboard".to_string(),
            format!("--data={}", data.path().display()),
            format!("--action-keys={KID}={SECRET}"),
            "--rate-limit-per-player=off".into(),
            "--rate-limit-per-address=off".into(),
            "--rate-limit-reads-per-address=off".into(),
            "--read-your-writes-timeout=1ms".into(),
        ]);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let started = runtime.block_on(scoreboard::start(&config, &shutdown)).expect("scoreboard starts");
        let app = started.expect("not shut down").app.clone();
        Server { runtime, app, _data: data }
    })
}

/// A token signed with the trusted key whose claims are the `|`-separated pieces of `text`
/// (player, action, name, score); `None` when a piece is not of its claim's form.
fn signed(text: &str) -> Option<String> {
    let mut pieces = text.splitn(4, '|');
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = ActionClaims {
        jti: uuid::Uuid::now_v7(),
        sub: pieces.next()?.parse().ok()?,
        act: pieces.next()?.parse().ok()?,
        name: pieces.next().map(events::DisplayName::parse).transpose().ok()?,
        score: pieces.next().map(str::parse).transpose().ok()?,
        iat: now,
        exp: now + 300,
    };
    let (kid, secret) = (KeyId::parse(KID).ok()?, KeySecret::new(SECRET.as_bytes()).ok()?);
    Some(serde_json::json!({ "token": events::mint(&kid, &secret, &claims) }).to_string())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(target) = std::str::from_utf8(target) else { return };
    let method = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"][usize::from(selector & 0x7f) % 6];
    let body = if selector & 0x80 != 0 {
        let Some(token) = std::str::from_utf8(body).ok().and_then(signed) else { return };
        token.into_bytes()
    } else {
        body.to_vec()
    };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(format!("/{}", target.trim_start_matches('/')))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
    else {
        return;
    };
    let server = server();
    let response = server.runtime.block_on(server.app.clone().oneshot(request)).expect("the router is infallible");
    let status = response.status();
    assert!(status.as_u16() < 500 || status.as_u16() == 503, "{method} {target}: {status}");
    if status.is_client_error() || status.is_server_error() {
        let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or_default());
        assert_eq!(content_type, Some("application/problem+json"), "{method} {target}: {status}");
    }
});
