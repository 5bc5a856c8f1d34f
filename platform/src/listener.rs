//! A TCP listener whose connections time out on stalled writes: a client that stops reading
//! (its socket buffer full for longer than the timeout) is disconnected instead of holding a
//! connection and its buffers forever. Healthy clients never wait on a write that long.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;

/// Accepts connections from `inner` and gives each a write timeout.
pub struct StallGuard {
    inner: TcpListener,
    write_timeout: Duration,
}

impl StallGuard {
    /// Wraps `inner`.
    pub fn new(inner: TcpListener, write_timeout: Duration) -> Self {
        Self { inner, write_timeout }
    }
}

impl axum::serve::Listener for StallGuard {
    type Io = Pin<Box<TimeoutStream<TcpStream>>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((socket, address)) => {
                    let _ = socket.set_nodelay(true);
                    let mut socket = TimeoutStream::new(socket);
                    socket.set_write_timeout(Some(self.write_timeout));
                    return (Box::pin(socket), address);
                }
                Err(error) => {
                    // Out of file descriptors or similar: wait rather than spin.
                    tracing::warn!(error.message = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
