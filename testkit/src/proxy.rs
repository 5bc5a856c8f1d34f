//! A TCP proxy a test can cut or freeze.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A TCP proxy to `upstream` that a test can cut (every connection dropped, new ones refused)
/// and restore: the dependency behind it becomes unreachable exactly as after a network
/// failure, while the real server keeps running for everyone else. It can also freeze: the
/// connections stay open at both ends but carry nothing more, as when a network goes silent
/// and neither side hears of it.
pub struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    frozen: tokio_util::sync::CancellationToken,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let frozen = tokio_util::sync::CancellationToken::new();
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (open, frozen, connections) = (open.clone(), frozen.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue;
                    }
                    let frozen = frozen.clone();
                    let forward = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                // Both sockets stay open, silent, until the proxy is dropped.
                                () = frozen.cancelled() => std::future::pending::<()>().await,
                            }
                        }
                    });
                    connections.lock().unwrap().push(forward.abort_handle());
                }
            }
        })
        .abort_handle();
        Self { port, open, frozen, connections, accept }
    }

    /// Every connection, open or new, stops carrying data, without closing.
    pub fn freeze(&self) {
        self.frozen.cancel();
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
