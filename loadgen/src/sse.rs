//! Follows a Server-Sent Events stream of the board, noting when each board (its `id:`, the
//! position folded into it) arrived.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http_body_util::BodyExt as _;
use tokio_util::sync::CancellationToken;

/// The boards one client received: `(position, when)`, in arrival order.
pub type Seen = Vec<(u64, Instant)>;

/// Opens `path` on `authority` and records every event's `id:` until `stop` is cancelled or the
/// stream ends. `opened` is told once the snapshot has arrived; `latest` holds the last position.
pub async fn follow(
    authority: String,
    path: String,
    stop: CancellationToken,
    opened: tokio::sync::mpsc::Sender<()>,
    latest: Arc<AtomicU64>,
) -> anyhow::Result<Seen> {
    let mut sender = crate::http::connect(&authority).await?;
    let response = sender.send_request(crate::http::get(&authority, &path)).await?;
    anyhow::ensure!(response.status() == 200, "{path} answered {}", response.status());
    let mut body = response.into_body();
    let mut seen = Seen::new();
    let mut line = Vec::new();
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            frame = body.frame() => frame,
        };
        let Some(frame) = frame else { break };
        let Ok(data) = frame?.into_data() else { continue };
        let now = Instant::now();
        for &byte in data.iter() {
            if byte != b'\n' {
                line.push(byte);
                continue;
            }
            if let Some(id) = line.strip_prefix(b"id: ") {
                let position = std::str::from_utf8(id)?.trim().parse()?;
                if seen.is_empty() {
                    let _ = opened.send(()).await;
                }
                seen.push((position, now));
                latest.store(position, Ordering::Relaxed);
            }
            line.clear();
        }
    }
    Ok(seen)
}

/// When a client first saw a board at or past `position`, if it did.
pub fn first_at(seen: &Seen, position: u64) -> Option<Instant> {
    let i = seen.partition_point(|&(p, _)| p < position);
    seen.get(i).map(|&(_, at)| at)
}
