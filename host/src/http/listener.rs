//! Accepting connections within limits: at most `max_connections` open in all and
//! `max_connections_per_client` from one address (a connection over either is closed
//! as soon as it is accepted), a header-read timeout that also closes idle keep-alive
//! connections, and a bounded drain on shutdown. A client holding sockets open can use
//! up only its own share, never everybody's.

use super::front_door::{FrontDoor, client_key};
use crate::config::ServerConfig;
use crate::telemetry::{ConnRefused, Metrics};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::task::AbortOnDropHandle;

/// Open connections, in all and per client address.
#[derive(Debug, Default)]
pub struct Connections {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct ConnSlot {
    conns: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    /// Caps of `max_total` connections, `max_per_client` of them from one address.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_client,
            open: Mutex::default(),
        })
    }

    /// A place for a connection from `ip`, or which cap is full.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, ConnRefused> {
        let mut open = crate::sync::lock(&self.open);
        let (total, per) = &mut *open;
        if *total >= self.max_total {
            return Err(ConnRefused::Total);
        }
        let mine = per.entry(ip).or_insert(0);
        if *mine >= self.max_per_client {
            return Err(ConnRefused::PerClient);
        }
        *mine += 1;
        *total += 1;
        Ok(ConnSlot {
            conns: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = crate::sync::lock(&self.conns.open);
        let (total, per) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
    }
}

/// A listener on `addr` whose kernel queue holds `backlog` completed handshakes (std
/// and tokio use 128: a burst past it has its handshakes dropped and retried seconds
/// later, long after the connection caps should have judged them).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std and tokio do: a restarted gateway can rebind while old sockets linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves `door` on `listener` within `limits` until `shutdown` resolves, then stops
/// accepting, lets requests in flight finish (at most `drain_timeout_ms`) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    door: FrontDoor,
    limits: &ServerConfig,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Accepting on a runtime worker, where the connections' tasks run: on the thread
    // `block_on` holds, every new connection's task would be handed over to a worker
    // (a thread wake-up before its first byte is read).
    // Dropping this future stops the accept loop too, as when it ran here.
    let accepting = accept(listener, door, limits.clone(), metrics, shutdown);
    match AbortOnDropHandle::new(tokio::spawn(accepting)).await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    door: FrontDoor,
    limits: ServerConfig,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let conns = Connections::new(limits.max_connections, limits.max_connections_per_client);
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a transient error): back off briefly
                    // instead of spinning; connections that close free descriptors.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match conns.open(client_key(peer.ip())) {
            Ok(s) => s,
            Err(why) => {
                metrics.protection.connection_refused(why);
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let door = door.for_peer(peer);
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let door = door.clone();
            async move { Ok::<_, std::convert::Infallible>(door.handle(req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        let metrics = metrics.clone();
        metrics.protection.connection_opened();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client = %peer, "connection ended with an error");
            }
            metrics.protection.connection_closed();
            drop(slot);
        });
    }
    drop(listener);
    let drain = Duration::from_millis(limits.drain_timeout_ms);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!(after_ms = limits.drain_timeout_ms, "shutdown: connections still open after the drain timeout");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_past_std_backlog_waits_in_the_kernel_queue() {
        // The kernel caps the backlog at `net.core.somaxconn` (4096 since Linux 5.4).
        let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok());
        if cap.is_some_and(|c| c < 1024) {
            eprintln!("skipped: net.core.somaxconn is {cap:?}, under the 1024 this needs");
            return;
        }
        let listener = bind("127.0.0.1:0".parse().expect("addr"), 1024).expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Nobody accepts yet: with std's backlog of 128 the handshakes past it would be
        // dropped, and the connects would wait a second for the SYN to be retried.
        let mut held = Vec::new();
        for _ in 0..400 {
            let conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500));
            held.push(conn.expect("connect within the backlog"));
        }
        for _ in 0..400 {
            let accepted =
                tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
            assert!(
                matches!(accepted, Ok(Ok(_))),
                "queued connection not accepted at once"
            );
        }
    }

    #[test]
    fn caps_hold_per_client_and_in_all_and_free_on_drop() {
        let c = Connections::new(3, 2);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let a1 = c.open(a).expect("a1");
        let _a2 = c.open(a).expect("a2");
        assert_eq!(c.open(a).unwrap_err(), ConnRefused::PerClient);
        let _b1 = c.open(b).expect("b1");
        assert_eq!(c.open(b).unwrap_err(), ConnRefused::Total);
        drop(a1);
        assert!(c.open(b).is_ok());
    }
}
