//! Waiting between retries of work that must go on until shutdown (reaching a dependency,
//! publishing, folding): 100 ms, doubling after each failure, at most 5 s.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

const FIRST: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_secs(5);

/// The delay before the next retry.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// How long the next [`Backoff::wait`] sleeps.
    pub fn delay(&self) -> Duration {
        self.next
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }

    /// Sleeps for the current delay, then doubles it. `false` if `shutdown` came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(LONGEST);
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn delays_double_up_to_five_seconds_and_reset() {
        let (mut backoff, shutdown) = (Backoff::default(), CancellationToken::new());
        let mut delays = Vec::new();
        for _ in 0..8 {
            delays.push(backoff.delay().as_millis());
            assert!(backoff.wait(&shutdown).await);
        }
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.delay(), FIRST);
        shutdown.cancel();
        assert!(!backoff.wait(&shutdown).await, "shutdown ends the wait");
    }
}
