//! A thread of its own for the reads that cost a core: a board replayed at a past position, a
//! past season read and ranked whole (a million standings read, decoded and sorted take about
//! a second of CPU). However many are admitted, they take turns on this one thread and its
//! runtime, so they can take at most one core from the threads that answer the hot path.

use std::future::Future;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::error::QueryError;

/// The handle of that thread's runtime; cheap to clone.
#[derive(Clone, Debug)]
pub struct Apart(Handle);

impl Apart {
    /// Starts the thread; it ends when `shutdown` fires.
    pub fn start(shutdown: CancellationToken) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new().name("heavy-reads".into()).spawn(move || runtime.block_on(shutdown.cancelled()))?;
        Ok(Self(handle))
    }

    /// Runs `work` on the thread and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, QueryError>> + Send + 'static,
    ) -> Result<T, QueryError> {
        match self.0.spawn(work).await {
            Ok(done) => done,
            // The service is stopping: the thread's runtime dropped the work.
            Err(error) if error.is_cancelled() => Err(QueryError::Busy("the service is stopping")),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}
