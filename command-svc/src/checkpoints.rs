//! Signed checkpoints: at least every `CHECKPOINT_INTERVAL` while the log grows, the tree head
//! is signed (C2SP signed-note / tlog-checkpoint, Ed25519) and kept for auditors.

use std::time::Duration;

use anyhow::Context as _;
use store::{Checkpoint, EventStore, KeptSigner};
use tlog::note::Signer;
use tokio_util::sync::CancellationToken;

use crate::config::AuditConfig;

/// The name of a key Scoreboard generates for itself, and so the origin line of its checkpoints.
pub const GENERATED_KEY_NAME: &str = "scoreboard";

/// The signer in force: `AUDIT_SIGNING_KEY` (its verifier key kept in the database, for the
/// read side to serve), or else the key generated once and kept in the database, generated now
/// if this is the first start (replicas starting together agree on the first one kept).
pub async fn signer<S: EventStore>(config: &AuditConfig, log: &S) -> anyhow::Result<Signer> {
    if let Some(key) = &config.audit_signing_key {
        let signer = Signer::parse(key.expose()).context("AUDIT_SIGNING_KEY")?;
        log.keep_signer(&KeptSigner { verifier: signer.verifier().to_string(), private_key: None }, true).await?;
        return Ok(signer);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a signing key: {e}"))?;
    let generated = Signer::from_seed(GENERATED_KEY_NAME, seed)?;
    let candidate =
        KeptSigner { verifier: generated.verifier().to_string(), private_key: Some(generated.to_private()) };
    let kept = log.keep_signer(&candidate, false).await?;
    let private = kept.private_key.context(
        "AUDIT_SIGNING_KEY is unset, but the checkpoints so far were signed with a key set by the operator; set it again",
    )?;
    Ok(Signer::parse(&private)?)
}

/// Where signed checkpoints are published besides the database: their own JetStream stream.
#[derive(Clone)]
pub struct Publisher {
    /// JetStream.
    pub js: async_nats::jetstream::Context,
    /// The checkpoint stream.
    pub stream: platform::nats::LogStream,
}

impl Publisher {
    /// Publishes `checkpoint` on `<subject>.<tree size>`, once (`Nats-Msg-Id` = the tree size,
    /// so replicas signing the same tree publish one message), creating the stream if needed.
    async fn publish(&self, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        self.stream.ensure(&self.js).await.map_err(|e| anyhow::anyhow!("checkpoint stream: {e}"))?;
        let message = platform::nats::checkpoint_publication(checkpoint.tree_size, &checkpoint.note);
        let subject = self.stream.subject(&checkpoint.tree_size.to_string());
        self.js.send_publish(subject, message).await?.await?;
        Ok(())
    }
}

/// Signs a checkpoint whenever the tree grew, every `interval`, until `stop` (and once more
/// then, so the last appends are covered), and publishes it with `publisher` when there is one.
/// A checkpoint NATS did not take is kept in the database all the same (the source of truth)
/// and counted as `unpublished`.
pub async fn sign_periodically<S: EventStore>(
    log: S,
    signer: Signer,
    interval: Duration,
    publisher: Option<Publisher>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            _ = ticks.tick() => false,
        };
        match sign_if_grown(&log, &signer).await {
            Ok(Some(checkpoint)) => {
                if let Some(publisher) = &publisher
                    && let Err(error) = publisher.publish(&checkpoint).await
                {
                    metrics::counter!("checkpoints_total", "outcome" => "unpublished").increment(1);
                    tracing::warn!(error.message = %error, tree_size = checkpoint.tree_size, "publishing a checkpoint failed");
                }
            }
            Ok(None) => {}
            Err(error) => {
                metrics::counter!("checkpoints_total", "outcome" => "failed").increment(1);
                tracing::warn!(error.message = %error, "signing a checkpoint failed; retrying at the next interval");
            }
        }
        if stopping {
            return;
        }
    }
}

/// Signs and keeps a checkpoint of the whole tree if it is larger than the latest one.
pub async fn sign_if_grown<S: EventStore>(log: &S, signer: &Signer) -> anyhow::Result<Option<Checkpoint>> {
    let size = log.tree_size().await?;
    let latest = log.latest_checkpoint().await?.map_or(0, |c| c.tree_size);
    if size <= latest {
        return Ok(None);
    }
    let plan = tlog::Plan::root(size);
    let root = plan.hashes(&log.read_nodes(&plan.nodes()).await?).context("a node of the Merkle tree is missing")?[0];
    let note = signer.sign(&tlog::note::checkpoint(signer.name(), size, &root))?;
    let checkpoint = Checkpoint { tree_size: size, root_hash: root, note };
    log.save_checkpoint(&checkpoint).await?;
    metrics::counter!("checkpoints_total", "outcome" => "signed").increment(1);
    metrics::gauge!("checkpoint_tree_size").set(size as f64);
    Ok(Some(checkpoint))
}
