//! Where the projector tells the query side that the read model moved.
//!
//! An announcement is only a wake-up: the new checkpoint. A query service reads what changed
//! from the read model itself, so whoever can publish on the subject can make it look, never
//! make it believe.

use tokio::sync::broadcast;

/// The channel of new checkpoints: a NATS subject between processes, a broadcast channel
/// inside one process.
#[derive(Clone, Debug)]
pub enum Announcer {
    /// Published on a core NATS subject, as the decimal position.
    Nats {
        /// The client.
        client: async_nats::Client,
        /// The subject.
        subject: String,
    },
    /// Sent to the query side in the same process.
    InProcess(broadcast::Sender<u64>),
}

impl Announcer {
    /// Announces that the read model folded through `position`; a lost announcement is repaired
    /// by the next one, or by the query side's own polling.
    pub async fn announce(&self, position: u64) {
        match self {
            Self::Nats { client, subject } => {
                if let Err(error) = client.publish(subject.clone(), position.to_string().into()).await {
                    tracing::warn!(error.message = %error, "could not announce a change; query services poll");
                }
            }
            Self::InProcess(sender) => {
                // No receiver yet is fine: a query side that starts later loads the board.
                drop(sender.send(position));
            }
        }
    }
}
