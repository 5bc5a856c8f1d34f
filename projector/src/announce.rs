//! Where the projector tells the query side what changed.

use events::BoardChange;
use tokio::sync::broadcast;

/// The channel of [`BoardChange`]s: a NATS subject between processes, a broadcast channel
/// inside one process.
#[derive(Clone, Debug)]
pub enum Announcer {
    /// Published on a core NATS subject.
    Nats {
        /// The client.
        client: async_nats::Client,
        /// The subject.
        subject: String,
    },
    /// Sent to the query side in the same process.
    InProcess(broadcast::Sender<BoardChange>),
}

impl Announcer {
    /// Announces `change`; a lost announcement is repaired by the next one (or heartbeat).
    pub async fn announce(&self, change: BoardChange) {
        match self {
            Self::Nats { client, subject } => {
                let payload = serde_json::to_vec(&change).expect("changes always serialise");
                if let Err(error) = client.publish(subject.clone(), payload.into()).await {
                    tracing::warn!(error.message = %error, "could not announce a change; the next heartbeat will");
                }
            }
            Self::InProcess(sender) => {
                // No receiver yet is fine: a query side that starts later loads the board.
                drop(sender.send(change));
            }
        }
    }
}
