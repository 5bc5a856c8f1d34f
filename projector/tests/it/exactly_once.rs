//! Exactly once, whatever crashes or redeliveries happen.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::WritePath;

#[tokio::test]
async fn every_total_is_exact_after_the_projector_is_killed_mid_stream() {
    let write = Arc::new(WritePath::start().await);
    let projector = write.projector_process().await;
    let accepted = Arc::new(AtomicUsize::new(0));
    // 8 clients submit 80 actions each for 12 players while the projector folds.
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (write, accepted) = (write.clone(), accepted.clone());
            tokio::spawn(async move {
                for i in 0..80 {
                    if write.submit(&format!("p{}", (c * 80 + i) % 12), "win_match").await == 201 {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    testkit::eventually(Duration::from_secs(20), || async { (write.checkpoint().await >= 150).then_some(()) }).await;

    projector.signal("KILL");
    assert!(!projector.wait(Duration::from_secs(5)).await, "killed, not exited");
    let at_kill = write.checkpoint().await;
    let restarted = write.projector_process().await;
    for client in clients {
        client.await.unwrap();
    }
    write.wait_projected().await;

    assert_eq!(accepted.load(Ordering::SeqCst), 640);
    assert_eq!(write.log_head().await, 640);
    assert!(at_kill < 640, "the projector was killed in the middle of the stream ({at_kill})");
    write.assert_read_model_is_the_fold_of_the_log().await;
    drop(restarted);
}

#[tokio::test]
async fn a_duplicate_message_in_the_stream_is_not_counted_twice() {
    let write = WritePath::start().await;
    let projector = write.projector(&[]).await;
    for player in ["a", "b", "c", "a", "b"] {
        assert_eq!(write.submit(player, "win_match").await, 201);
    }
    write.wait_projected().await;

    // Someone publishes a copy of event 3 into the stream (no Nats-Msg-Id: nothing dedups it).
    let js = write.jetstream().await;
    let stream = js.get_stream(&write.stream.name).await.unwrap();
    let original = stream.get_raw_message(3).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    for name in ["Scoreboard-Position", "Scoreboard-Event-Type", "Scoreboard-Event-Version"] {
        headers.insert(name, original.headers.get(name).unwrap().as_str());
    }
    let ack = js.publish_with_headers(original.subject.to_string(), headers, original.payload.clone()).await.unwrap();
    assert_eq!(ack.await.unwrap().sequence, 6, "the copy lands after the five events");
    testkit::eventually(Duration::from_secs(10), || async {
        (write.consumer_info().await.ack_floor.stream_sequence >= 6).then_some(())
    })
    .await;
    write.assert_read_model_is_the_fold_of_the_log().await;

    // The relay carries on after the foreign message, and the projector with it.
    assert_eq!(write.submit("c", "win_match").await, 201);
    write.wait_projected().await;
    write.assert_read_model_is_the_fold_of_the_log().await;
    let messages = write.stream.messages().await;
    assert_eq!(messages.iter().map(|m| m.position).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 3, 6]);
    projector.stop().await.unwrap();
}

#[tokio::test]
async fn a_redelivery_after_the_ack_timeout_is_not_counted_twice() {
    let write = WritePath::start().await;
    let projector = write.projector(&["--ack-wait=1s"]).await;
    assert_eq!(write.submit("warmup", "win_match").await, 201);
    write.wait_projected().await;

    // Hold the checkpoint row so the projector's next transaction waits past the ack timeout.
    let pool = write.db.pool().await;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT position FROM projection_checkpoints FOR UPDATE").execute(&mut *blocker).await.unwrap();
    for i in 0..20 {
        assert_eq!(write.submit(&format!("p{}", i % 3), "win_match").await, 201);
    }
    testkit::eventually(Duration::from_secs(20), || async {
        (write.consumer_info().await.num_redelivered > 0).then_some(())
    })
    .await;
    blocker.commit().await.unwrap();

    write.wait_projected().await;
    testkit::eventually(Duration::from_secs(10), || async {
        (write.consumer_info().await.num_ack_pending == 0).then_some(())
    })
    .await;
    write.assert_read_model_is_the_fold_of_the_log().await;
    projector.stop().await.unwrap();
}
