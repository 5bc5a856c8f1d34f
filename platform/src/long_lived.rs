//! Long-lived event streams without hyper's buffers. hyper keeps an 8 KiB read buffer and an
//! 8 KiB write buffer for every HTTP/1 connection while it is open, and a client following a
//! live board keeps its connection open for hours: at 20 000 clients, 320 MiB of buffers that
//! hold nothing. So the first request of a connection, when its head arrived whole and it is a
//! `GET` of a path the service serves streams on, is read here instead:
//!
//! - the head is parsed with `httparse` from what the socket already holds (peeked: a head
//!   that is incomplete, longer than [`HEAD_MAX`], carries a body or asks for an upgrade is
//!   left to hyper, untouched);
//! - the request is answered by the service's own router, so every layer applies as on any
//!   other request (request ids, CORS, metrics, admission, problem documents);
//! - the response is written to the socket by hand: an event stream (`text/event-stream`) as
//!   its head, then each frame of the body as an HTTP/1.1 chunk as it comes, with nothing kept
//!   between frames; a client that closes its end ends it, and one that stops reading is cut
//!   off by the socket's write timeout as before. Any other response (a refusal, an error) is
//!   written whole, and hyper goes on with the connection.

use std::io;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Which request paths are long-lived streams, for [`crate::serve`] (which a service that
/// serves none gives `None`: its connections are never looked at here).
pub type LongLived = fn(path: &str) -> bool;

/// The most bytes of a request head looked at; a longer head goes to hyper.
pub const HEAD_MAX: usize = 4096;

/// The most header fields of a head read here; more go to hyper.
const FIELDS_MAX: usize = 64;

/// A request for a stream, read off the socket.
pub struct Head {
    /// How many bytes of the socket the head takes.
    pub length: usize,
    /// The request, without a body.
    pub request: Request<Body>,
    /// Whether the client asked to close the connection after this request.
    pub close: bool,
}

/// The head `bytes` begin with, when it is complete and asks for a `long_lived` path with
/// `GET` over HTTP/1.1, without a body or an upgrade; `None` leaves the request to hyper.
pub fn head(bytes: &[u8], long_lived: LongLived) -> Option<Head> {
    let mut fields = [httparse::EMPTY_HEADER; FIELDS_MAX];
    let mut parsed = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(length) = parsed.parse(bytes).ok()? else { return None };
    let target = parsed.path?;
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if parsed.method? != "GET" || parsed.version? != 1 || !target.starts_with('/') || !long_lived(path) {
        return None;
    }
    let mut request = Request::builder().method(Method::GET).uri(target).version(Version::HTTP_11);
    let mut close = false;
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(field.value).ok()?;
        let body = (name == header::CONTENT_LENGTH && value != "0") || name == header::TRANSFER_ENCODING;
        if body || name == header::UPGRADE || name == header::EXPECT {
            return None;
        }
        if name == header::CONNECTION {
            let tokens = value.to_str().ok()?;
            close |= tokens.split(',').any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
        request = request.header(name, value);
    }
    Some(Head { length, request: request.body(Body::empty()).ok()?, close })
}

/// Writes `response` to `socket`: an event stream chunk by chunk until it ends, the client
/// closes or a write takes longer than `write_timeout` (`Ok(false)`: the connection is done),
/// anything else whole (`Ok(true)`: hyper goes on with the connection, unless `close`).
pub async fn respond<S: AsyncRead + AsyncWrite + ?Sized>(
    mut socket: Pin<&mut S>,
    response: Response<Body>,
    close: bool,
    write_timeout: Duration,
) -> io::Result<bool> {
    let (mut parts, mut body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    let stream = parts.status == StatusCode::OK
        && parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|kind| kind.as_bytes().starts_with(b"text/event-stream"));
    if !stream {
        let whole = body.collect().await.map_err(io::Error::other)?.to_bytes();
        let mut answer = status_and_fields(parts.status, &parts.headers, close);
        answer.extend_from_slice(format!("content-length: {}\r\n\r\n", whole.len()).as_bytes());
        answer.extend_from_slice(&whole);
        within(write_timeout, socket.write_all(&answer)).await?;
        return Ok(!close);
    }
    let mut answer = status_and_fields(parts.status, &parts.headers, close);
    answer.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
    // Nothing of the head is kept while the stream lasts.
    drop(parts);
    within(write_timeout, socket.write_all(&answer)).await?;
    drop(answer);
    loop {
        // The client has nothing to send on a stream: whatever it sends is read and dropped,
        // and the end of its side ends the stream.
        let mut ignored = [0u8; 64];
        let next = tokio::select! {
            frame = body.frame() => Some(frame),
            read = socket.read(&mut ignored) => match read {
                Ok(0) | Err(_) => return Ok(false),
                Ok(_) => None,
            },
        };
        match next {
            None => {}
            Some(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else { continue };
                if data.is_empty() {
                    continue;
                }
                let mut chunk = Vec::with_capacity(data.len() + 12);
                chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                chunk.extend_from_slice(&data);
                chunk.extend_from_slice(b"\r\n");
                within(write_timeout, socket.write_all(&chunk)).await?;
            }
            // The end: the last chunk says the answer is whole.
            Some(None) => {
                within(write_timeout, socket.write_all(b"0\r\n\r\n")).await?;
                return Ok(false);
            }
            // A body that failed is not whole: the connection closes without the last chunk.
            Some(Some(Err(_))) => return Ok(false),
        }
    }
}

/// `write`, unless it takes longer than `timeout`: a client that stops reading is cut off.
async fn within(timeout: Duration, write: impl Future<Output = io::Result<()>>) -> io::Result<()> {
    tokio::time::timeout(timeout, write).await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// The status line and header fields of an HTTP/1.1 answer, with `date` as hyper writes it,
/// and `connection: close` when `close`; the framing field and the blank line are the caller's.
fn status_and_fields(status: StatusCode, fields: &axum::http::HeaderMap, close: bool) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or_default().as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !fields.contains_key(header::DATE) {
        head.extend_from_slice(format!("date: {}\r\n", httpdate::fmt_http_date(SystemTime::now())).as_bytes());
    }
    if close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(path: &str) -> bool {
        path == "/stream"
    }

    #[test]
    fn a_whole_get_of_a_stream_is_read_here() {
        let bytes = b"GET /stream?limit=5 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\nleftover";
        let head = head(bytes, streams).expect("a stream request");
        assert_eq!(head.length, bytes.len() - "leftover".len());
        assert_eq!(head.request.uri(), "/stream?limit=5");
        assert_eq!(head.request.headers()["last-event-id"], "7");
        assert!(!head.close);
        let closing = head_of(b"GET /stream HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(closing.is_some_and(|head| head.close));
    }

    fn head_of(bytes: &[u8]) -> Option<Head> {
        head(bytes, streams)
    }

    #[test]
    fn everything_else_is_left_to_hyper() {
        for bytes in [
            &b"GET /stream HTTP/1.1\r\nHost: x\r\n"[..],                   // incomplete
            b"GET /other HTTP/1.1\r\n\r\n",                                // not a stream
            b"POST /stream HTTP/1.1\r\n\r\n",                              // not a GET
            b"GET /stream HTTP/1.0\r\n\r\n",                               // HTTP/1.0
            b"GET /stream HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",       // a body
            b"GET /stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", // a body
            b"GET /stream HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",         // an upgrade
            b"GET /stream HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",       // an expectation
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                           // HTTP/2
            b"GET http://x/stream HTTP/1.1\r\n\r\n",                       // absolute form
            b"GET /stream HTTP/1.1\r\nBad Name: x\r\n\r\n",                // malformed
        ] {
            assert!(head_of(bytes).is_none(), "{}", String::from_utf8_lossy(bytes));
        }
        let many = format!("GET /stream HTTP/1.1\r\n{}\r\n", "a: b\r\n".repeat(FIELDS_MAX + 1));
        assert!(head_of(many.as_bytes()).is_none(), "more fields than read here");
    }

    async fn written(response: Response<Body>, close: bool) -> (String, bool) {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        let keep = respond(Pin::new(&mut ours), response, close, Duration::from_secs(5)).await.unwrap();
        drop(ours);
        let mut text = String::new();
        theirs.read_to_string(&mut text).await.unwrap();
        (text, keep)
    }

    #[tokio::test]
    async fn an_answer_that_is_not_a_stream_is_written_whole_and_the_connection_goes_on() {
        let response = Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "application/problem+json")
            .body(Body::from("{\"status\":404}"))
            .unwrap();
        let (text, keep) = written(response, false).await;
        assert!(keep);
        assert!(
            text.starts_with("HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ndate: "),
            "{text}"
        );
        assert!(text.ends_with("\r\ncontent-length: 14\r\n\r\n{\"status\":404}"), "{text}");
        let response = Response::builder().status(StatusCode::NOT_FOUND).body(Body::empty()).unwrap();
        let (text, keep) = written(response, true).await;
        assert!(!keep && text.ends_with("connection: close\r\ncontent-length: 0\r\n\r\n"), "{text}");
    }

    #[tokio::test]
    async fn a_stream_is_written_chunk_by_chunk_and_ends_with_the_last_chunk() {
        let frames = futures::stream::iter(["data: 1\n\n", "", "data: 22\n\n"].map(Ok::<_, io::Error>));
        let response =
            Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(frames)).unwrap();
        let (text, keep) = written(response, false).await;
        assert!(!keep);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ndate: "), "{head}");
        assert!(head.ends_with("\r\ntransfer-encoding: chunked"), "{head}");
        assert_eq!(body, "9\r\ndata: 1\n\n\r\na\r\ndata: 22\n\n\r\n0\r\n\r\n");
    }

    #[tokio::test]
    async fn a_stream_whose_body_fails_ends_without_the_last_chunk() {
        let frames = futures::stream::iter([Ok("data: 1\n\n"), Err(io::Error::other("gone"))]);
        let response =
            Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(frames)).unwrap();
        let (text, keep) = written(response, false).await;
        assert!(!keep);
        assert!(text.ends_with("\r\n\r\n9\r\ndata: 1\n\n\r\n"), "{text}");
    }

    #[tokio::test]
    async fn a_client_that_closes_its_end_ends_the_stream() {
        let response = Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(futures::stream::pending::<io::Result<&'static str>>()))
            .unwrap();
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        let serving =
            tokio::spawn(async move { respond(Pin::new(&mut ours), response, false, Duration::from_secs(5)).await });
        let mut head = [0u8; 16];
        theirs.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK\r");
        theirs.shutdown().await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), serving).await.expect("the stream ends");
        assert!(!ended.unwrap().unwrap());
    }
}
