//! Sends requests over keep-alive HTTP/1.1 connections, as wrk and wrk2 do.
//!
//! **Open loop** (`rate` set): request `n` is due at `start + n / rate`, whatever became of the
//! ones before it, and its latency is measured from when it was due — so a server that stalls
//! is charged for every request that should have been sent meanwhile (no coordinated omission).
//! The requests are dealt round-robin to the connections; a connection still waiting for an
//! answer sends its next request late, and that lateness counts.
//!
//! **Closed loop** (`rate` unset): each connection sends its next request as soon as the previous
//! one is answered; latency is measured from the send.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// A request with its whole body.
pub type Request = hyper::Request<Full<Bytes>>;

/// What to send, and how fast.
#[derive(Clone, Debug)]
pub struct Load {
    /// `host:port` of the server.
    pub authority: String,
    /// Keep-alive connections.
    pub connections: usize,
    /// Requests per second in all (open loop), or as fast as answered (closed loop).
    pub rate: Option<f64>,
    /// How long to send.
    pub duration: Duration,
}

/// What came back.
pub struct Outcome {
    /// Latency of the answered requests (any status), in microseconds.
    pub latency: hdrhistogram::Histogram<u64>,
    /// Requests answered with a 2xx status.
    pub succeeded: u64,
    /// Other answers, by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, reset or closed).
    pub failed: u64,
    /// From the first request due to the last answer.
    pub elapsed: Duration,
}

impl Outcome {
    /// 2xx answers per second.
    pub fn succeeded_per_second(&self) -> f64 {
        self.succeeded as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `host:port` of a URL such as `http://127.0.0.1:8080`.
pub fn authority(url: &str) -> anyhow::Result<String> {
    let uri: hyper::Uri = url.parse()?;
    Ok(uri.authority().ok_or_else(|| anyhow::anyhow!("{url} names no host"))?.to_string())
}

/// A GET of `path` on `authority`.
pub fn get(authority: &str, path: &str) -> Request {
    hyper::Request::get(path).header(hyper::header::HOST, authority).body(Full::new(Bytes::new())).expect("a GET")
}

/// A POST of a JSON body.
pub fn post_json(authority: &str, path: &str, body: Bytes) -> Request {
    hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("a POST")
}

/// One keep-alive connection.
pub async fn connect(authority: &str) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends `request(n)` for n = 0, 1, 2, … (until it answers `None` or the time is up), and hands
/// each answer to `answered(status, body, when)`.
pub async fn drive<R, A>(load: &Load, request: R, answered: A) -> anyhow::Result<Outcome>
where
    R: Fn(u64) -> Option<Request> + Send + Sync + 'static,
    A: Fn(u16, &Bytes, Instant) + Send + Sync + 'static,
{
    let (request, answered) = (Arc::new(request), Arc::new(answered));
    let mut senders = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        senders.push(connect(&load.authority).await?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + load.duration;
    let connections = load.connections as u64;
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(index, mut sender)| {
            let (request, answered, load) = (request.clone(), answered.clone(), load.clone());
            tokio::spawn(async move {
                let mut tally = Tally::new();
                for round in 0.. {
                    let n = round * connections + index as u64;
                    let due = match load.rate {
                        Some(rate) => start + Duration::from_secs_f64(n as f64 / rate),
                        None => Instant::now().max(start),
                    };
                    if due >= end {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    let Some(next) = request(n) else { break };
                    if sender.ready().await.is_err() {
                        match connect(&load.authority).await {
                            Ok(fresh) => sender = fresh,
                            Err(_) => {
                                tally.failed += 1;
                                continue;
                            }
                        }
                    }
                    match sender.send_request(next).await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let now = Instant::now();
                            tally.answered(status, now - due, now);
                            answered(status, &body, now);
                        }
                        Err(_) => tally.failed += 1,
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::new();
    for task in tasks {
        total.merge(task.await?);
    }
    Ok(Outcome {
        latency: total.latency,
        succeeded: total.succeeded,
        statuses: total.statuses,
        failed: total.failed,
        elapsed: total.last.map_or(Duration::ZERO, |last| last.saturating_duration_since(start)),
    })
}

struct Tally {
    latency: hdrhistogram::Histogram<u64>,
    succeeded: u64,
    statuses: BTreeMap<u16, u64>,
    failed: u64,
    last: Option<Instant>,
}

impl Tally {
    fn new() -> Self {
        Self { latency: crate::histogram(), succeeded: 0, statuses: BTreeMap::new(), failed: 0, last: None }
    }

    fn answered(&mut self, status: u16, latency: Duration, at: Instant) {
        self.latency.saturating_record(latency.as_micros().max(1) as u64);
        if (200..300).contains(&status) {
            self.succeeded += 1;
        } else {
            *self.statuses.entry(status).or_default() += 1;
        }
        self.last = self.last.max(Some(at));
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("histograms of the same bounds");
        self.succeeded += other.succeeded;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.failed += other.failed;
        self.last = self.last.max(other.last);
    }
}
