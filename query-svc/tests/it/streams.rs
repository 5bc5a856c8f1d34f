//! Live streams over real sockets: SSE and WebSocket.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use testkit::{Process, SseClient, TestDb, TestStream};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{Stack, ranking};

#[tokio::test]
async fn sse_sends_a_snapshot_then_an_update_per_change() {
    let stack = Stack::start().await;
    stack.submit("alice", "win_match").await;
    let first = stack.submit_seen("bob", "complete_task").await;
    let mut stream = SseClient::open(&stack.query.url, "?limit=3", None).await;

    let snapshot = stream.next().await;
    assert_eq!(snapshot.id, first);
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.data["position"], snapshot.id);
    assert_eq!(ranking(&snapshot.data), [(1, "alice".into(), 100), (2, "bob".into(), 10)]);

    let position = stack.submit("bob", "find_secret").await["position"].as_u64().unwrap();
    let update = stream.next().await;
    assert_eq!((update.event.as_str(), update.id), ("update", position));
    assert_eq!(ranking(&update.data), [(1, "bob".into(), 260), (2, "alice".into(), 100)]);
    assert_eq!(update.data["total_players"], 2);
}

#[tokio::test]
async fn sse_sends_updates_only_when_the_shown_entries_change() {
    let stack = Stack::start().await;
    let leader = stack.submit_seen("alice", "find_secret").await;
    let mut top_one = SseClient::open(&stack.query.url, "?limit=1", None).await;
    let snapshot = top_one.next().await;
    assert_eq!((snapshot.event.as_str(), snapshot.id), ("snapshot", leader));

    stack.submit("bob", "complete_task").await; // below alice: the top 1 does not change
    assert!(top_one.next_within(Duration::from_millis(1500)).await.is_none(), "no update for an unseen change");

    let overtaken = stack.submit("bob", "find_secret").await["position"].as_u64().unwrap();
    let update = top_one.next().await;
    assert_eq!((update.event.as_str(), update.id), ("update", overtaken));
    assert_eq!(ranking(&update.data), [(1, "bob".into(), 260)]);
}

#[tokio::test]
async fn sse_resumes_from_last_event_id_without_a_gap() {
    let stack = Stack::start().await;
    let seen = stack.submit_seen("alice", "win_match").await;
    {
        let mut stream = SseClient::open(&stack.query.url, "", None).await;
        assert_eq!(stream.next().await.id, seen);
    }
    // Disconnected; the board moves on.
    let missed = stack.submit_seen("bob", "find_secret").await;
    let mut resumed = SseClient::open(&stack.query.url, "", Some(seen)).await;
    let catch_up = resumed.next().await;
    assert_eq!(catch_up.id, missed, "the current board at once, since it changed");
    assert_eq!(ranking(&catch_up.data), [(1, "bob".into(), 250), (2, "alice".into(), 100)]);

    // Resuming at the current position: nothing to catch up on, then the next update.
    let mut current = SseClient::open(&stack.query.url, "", Some(missed)).await;
    assert!(current.next_within(Duration::from_millis(800)).await.is_none());
    let next = stack.submit("carol", "complete_task").await["position"].as_u64().unwrap();
    assert_eq!(current.next().await.id, next);

    // A client that showed a newer board (on another replica) is never shown an older one,
    // nor the one it has: its first event is the first board after it.
    let mut ahead = SseClient::open(&stack.query.url, "", Some(next + 1)).await;
    assert!(ahead.next_within(Duration::from_millis(800)).await.is_none());
    assert_eq!(stack.submit_seen("dave", "win_match").await, next + 1);
    assert!(ahead.next_within(Duration::from_millis(800)).await.is_none(), "it already shows position {}", next + 1);
    let newer = stack.submit("erin", "find_secret").await["position"].as_u64().unwrap();
    let event = ahead.next().await;
    assert_eq!(event.id, newer);
    assert_eq!(ranking(&event.data)[..2], [(1, "bob".into(), 250), (2, "erin".into(), 250)], "tie: bob was first");
}

/// A stream's first request is read by the lean path when its head arrives whole, and by hyper
/// when it arrives in pieces: a client cannot tell which (the same fields, the same events).
#[tokio::test]
async fn a_stream_is_answered_alike_whether_its_head_arrives_whole_or_in_pieces() {
    let stack = Stack::start().await;
    let seen = stack.submit_seen("alice", "win_match").await;
    let address = stack.query.url.trim_start_matches("http://").to_string();
    let request =
        format!("GET /v1/leaderboard/stream?limit=3 HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n");
    let (mut whole, whole_event) = first_event(&address, &[request.as_bytes()]).await;
    let (head, rest) = request.as_bytes().split_at(20);
    let (mut pieces, pieces_event) = first_event(&address, &[head, rest]).await;
    assert_eq!(whole[0], "HTTP/1.1 200 OK");
    for fields in [&mut whole, &mut pieces] {
        // Each answer has its own date and request id; the rest is the same, in any order.
        for field in fields.iter_mut() {
            for varies in ["date: ", "x-request-id: "] {
                if field.starts_with(varies) {
                    *field = varies.to_string();
                }
            }
        }
        fields.sort();
    }
    assert_eq!(whole, pieces);
    for field in ["content-type: text/event-stream", "transfer-encoding: chunked", "date: ", "x-request-id: "] {
        assert!(whole.iter().any(|f| f == field), "{field} in {whole:?}");
    }
    assert_eq!(whole_event, pieces_event);
    assert!(whole_event.starts_with("event: snapshot\n") && whole_event.contains(&format!("id: {seen}\n")));
}

/// A stream request that is refused (here: an unknown parameter) is answered whole, and the
/// connection goes on to serve the client's next request.
#[tokio::test]
async fn a_refused_stream_request_is_answered_whole_and_its_connection_goes_on() {
    let stack = Stack::start().await;
    stack.submit_seen("alice", "win_match").await;
    let address = stack.query.url.trim_start_matches("http://").to_string();
    let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
    let ask = format!("GET /v1/leaderboard/stream?bogus=1 HTTP/1.1\r\nHost: {address}\r\n\r\n");
    connection.write_all(ask.as_bytes()).await.unwrap();
    let (fields, body) = whole_answer(&mut connection).await;
    assert_eq!(fields[0], "HTTP/1.1 400 Bad Request");
    assert!(fields.iter().any(|f| f == "content-type: application/problem+json"), "{fields:?}");
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 400);

    let next = format!("GET /v1/leaderboard?limit=1 HTTP/1.1\r\nHost: {address}\r\n\r\n");
    connection.write_all(next.as_bytes()).await.unwrap();
    let (fields, body) = whole_answer(&mut connection).await;
    assert_eq!(fields[0], "HTTP/1.1 200 OK");
    assert_eq!(ranking(&serde_json::from_slice(&body).unwrap()), [(1, "alice".into(), 100)]);
}

/// Sends `pieces` of a request 100 ms apart, then reads the answer's head (its lines) and the
/// first event of its chunked body.
async fn first_event(address: &str, pieces: &[&[u8]]) -> (Vec<String>, String) {
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    for piece in pieces {
        connection.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = read_until(&mut connection, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        text.split_once("\r\n\r\n").is_some_and(|(_, body)| body.contains("\n\n\r\n"))
    })
    .await;
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let (_size, chunk) = body.split_once("\r\n").unwrap();
    let event = &chunk[..chunk.find("\n\n").unwrap() + 2];
    (head.lines().map(str::to_string).collect(), event.to_string())
}

/// Reads one answer framed by `content-length`: its head's lines and its body.
async fn whole_answer(connection: &mut tokio::net::TcpStream) -> (Vec<String>, Vec<u8>) {
    let mut received = read_until(connection, |bytes| bytes.windows(4).any(|w| w == b"\r\n\r\n")).await;
    let end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let fields: Vec<String> = String::from_utf8_lossy(&received[..end]).lines().map(str::to_string).collect();
    let length: usize = fields
        .iter()
        .find_map(|f| f.to_ascii_lowercase().strip_prefix("content-length: ").map(|n| n.parse().unwrap()))
        .expect("content-length");
    while received.len() < end + length {
        let mut more = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), connection.read(&mut more)).await.unwrap().unwrap();
        assert!(n > 0, "the connection stays open");
        received.extend_from_slice(&more[..n]);
    }
    (fields, received[end..end + length].to_vec())
}

async fn read_until(connection: &mut tokio::net::TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut received = Vec::new();
    while !done(&received) {
        let mut more = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), connection.read(&mut more)).await.unwrap().unwrap();
        assert!(n > 0, "the connection closed after {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&more[..n]);
    }
    received
}

#[tokio::test]
async fn websocket_sends_the_same_snapshot_and_updates() {
    let stack = Stack::start().await;
    let first = stack.submit_seen("alice", "win_match").await;
    let url = format!("{}/v1/leaderboard/ws?limit=5", stack.query.url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut next_board = async || -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap().unwrap().unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                return serde_json::from_str(&text).unwrap();
            }
        }
    };
    let snapshot = next_board().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["position"], first);
    assert_eq!(ranking(&snapshot), [(1, "alice".into(), 100)]);

    let position = stack.submit("bob", "find_secret").await["position"].as_u64().unwrap();
    let update = next_board().await;
    assert_eq!(update["type"], "update");
    assert_eq!(update["position"], position);
    assert_eq!(ranking(&update), [(1, "bob".into(), 250), (2, "alice".into(), 100)]);
    socket.send(tokio_tungstenite::tungstenite::Message::Close(None)).await.unwrap();
}

#[tokio::test]
async fn two_replicas_deliver_the_same_updates() {
    let stack = Stack::start().await;
    let replica = stack.replica(&[]).await;
    let mut streams = [
        SseClient::open(&stack.query.url, "?limit=5", None).await,
        SseClient::open(&replica.url, "?limit=5", None).await,
    ];
    for stream in &mut streams {
        assert_eq!(stream.next().await.event, "snapshot");
    }
    for (player, action) in [("a", "win_match"), ("b", "find_secret"), ("a", "find_secret"), ("c", "daily_login")] {
        let position = stack.submit(player, action).await["position"].as_u64().unwrap();
        let first = streams[0].next().await;
        let second = streams[1].next().await;
        assert_eq!((first.id, second.id), (position, position));
        assert_eq!(first.data, second.data, "both replicas show the same board");
    }
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_disconnected_and_memory_stays_flat() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let mut settings = testkit::settings(&db.url, &stream);
    settings.push(("STREAM_WRITE_TIMEOUT", "1s".into()));
    let query = Process::start(env!("CARGO_BIN_EXE_query-svc"), &settings, "QUERY_ADDR").await;
    let address = query.url.trim_start_matches("http://").to_string();

    // Three clients ask for the top 100 and never read; one client reads everything.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut connection = socket.connect(address.parse().unwrap()).await.unwrap();
        let request = format!("GET /v1/leaderboard/stream?limit=100 HTTP/1.1\r\nHost: {address}\r\n\r\n");
        connection.write_all(request.as_bytes()).await.unwrap();
        stalled.push(connection);
    }
    let mut reader = SseClient::open(&query.url, "?limit=100", None).await;
    assert_eq!(reader.next().await.event, "snapshot");
    let live_connections = async || -> u64 {
        let metrics = reqwest::get(format!("{}/metrics", query.url)).await.unwrap().text().await.unwrap();
        metrics
            .lines()
            .find(|l| l.starts_with("live_connections{kind=\"sse\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    // The stalled clients' requests may still be on their way in: wait until all four stream.
    testkit::eventually(Duration::from_secs(5), || async { (live_connections().await == 4).then_some(()) }).await;
    let before = query.rss_kib();

    // Changes that reshuffle the whole top 100 (about 6 KB per board sent), written into the read
    // model as a projector would and announced, in rounds, until the clients that do not read
    // have filled their buffers and been disconnected.
    let nats = async_nats::connect(&stream.nats_url).await.unwrap();
    let pool = db.pool().await;
    let mut position = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while live_connections().await > 1 {
        assert!(tokio::time::Instant::now() < deadline, "clients that stop reading are disconnected");
        for _ in 0..200 {
            position += 1;
            let scores: Vec<i64> =
                (0..100u64).map(|p| (position * 1000 + (p * 7919 + position * 104_729) % 1000) as i64).collect();
            fold_into_read_model(&pool, position, &scores).await;
            nats.publish(stream.changes_subject.clone(), position.to_string().into()).await.unwrap();
        }
        nats.flush().await.unwrap();
        assert_eq!(reader.until_position(position).await.id, position, "the reading client keeps up");
    }

    let grown = query.rss_kib().saturating_sub(before);
    // Each client that does not read was offered `position` boards of ~6 KB (tens of MB);
    // conflation keeps one board per client, and the stalled ones are gone.
    eprintln!("{position} changes; query-svc grew by {grown} KiB");
    assert!(position >= 400, "{position} changes");
    assert!(grown < 20_000, "query-svc grew by {grown} KiB for clients that do not read");

    for mut connection in stalled {
        let mut sink = vec![0u8; 1 << 16];
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match connection.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a client that stops reading is disconnected");
    }
}

/// What a projector's commit does to the read model: players `player-000 …` get `scores`, the
/// commit's change row records them, and the checkpoint moves to `position`.
async fn fold_into_read_model(pool: &sqlx::PgPool, position: u64, scores: &[i64]) {
    let standings: Vec<events::Standing> = scores
        .iter()
        .enumerate()
        .map(|(p, score)| events::Standing {
            player_id: format!("player-{p:03}").parse().unwrap(),
            name: None,
            score: *score as u64,
            reached_at: position,
            banned: false,
        })
        .collect();
    let players: Vec<&str> = standings.iter().map(|s| s.player_id.as_str()).collect();
    let position = position as i64;
    let mut tx = pool.begin().await.unwrap();
    let from: i64 =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints FOR UPDATE").fetch_one(&mut *tx).await.unwrap();
    sqlx::query(
        "INSERT INTO leaderboard (player_id, score, reached_at) \
         SELECT player_id, score, $3 FROM unnest($1::text[], $2::bigint[]) AS input(player_id, score) \
         ON CONFLICT (player_id) DO UPDATE SET score = EXCLUDED.score, reached_at = $3",
    )
    .bind(players)
    .bind(scores)
    .bind(position)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO board_changes (position, from_position, standings, seasons, entries) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(position)
    .bind(from)
    .bind(store::snapshot::encode(&standings))
    .bind(store::snapshot::encode_seasons(&[]))
    .bind(standings.len() as i64)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE projection_checkpoints SET position = $1").bind(position).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}
