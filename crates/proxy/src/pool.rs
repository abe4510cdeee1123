//! Keep-alive HTTP/1.1 connections to upstream endpoints, one pool per address.
//!
//! It does what hyper-util's legacy client did for the proxy, minus what the proxy never
//! needs (URI parsing, a pool key hashed per request, connection racing, ALPN), because it sat
//! on every request's path: an [`Endpoint`](crate::endpoints::Endpoint) keeps its address's
//! pool, so a request takes an idle connection with one uncontended lock. The behaviour is the
//! legacy client's: the most recently used idle connection first; a connection goes back to the
//! pool once it is ready for the next request; a connection idle for [`IDLE_TIMEOUT`] is closed
//! (at checkout and by [`Http1Pools::expire_idle`]); a request that a reused connection could
//! not even start (closed meanwhile) is sent again on another; errors read as the legacy
//! client's did (`client error (Connect): tcp connect error: ...`).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::{BoxError, RequestBody};

/// How long a connection may stay idle in a pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Every address's pool. Pools are found by address only when an endpoint first sends;
/// afterwards the endpoint holds its pool.
#[derive(Default)]
pub struct Http1Pools {
    pools: Mutex<HashMap<SocketAddr, Arc<Pool>>>,
}

/// The idle connections to one address, most recently used last.
pub struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.addr)
            .field("idle", &lock(&self.idle).len())
            .finish()
    }
}

/// A poisoned lock only means another request panicked; the list itself is still sound.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn expired(since: Instant, now: Instant) -> bool {
    now.saturating_duration_since(since) > IDLE_TIMEOUT
}

impl Http1Pools {
    /// The pool of `addr`, shared by every endpoint with that address.
    pub fn pool(&self, addr: SocketAddr) -> Arc<Pool> {
        lock(&self.pools)
            .entry(addr)
            .or_insert_with(|| {
                Arc::new(Pool {
                    addr,
                    idle: Mutex::default(),
                })
            })
            .clone()
    }

    /// Closes connections idle for longer than [`IDLE_TIMEOUT`] (or closed by the upstream),
    /// and forgets the pools no endpoint uses and that hold nothing.
    pub fn expire(&self, now: Instant) {
        let mut pools = lock(&self.pools);
        let mut closed = Vec::new();
        pools.retain(|_, pool| {
            let mut idle = lock(&pool.idle);
            let (keep, expired): (Vec<Idle>, Vec<Idle>) = idle
                .drain(..)
                .partition(|i| i.sender.is_ready() && !expired(i.since, now));
            *idle = keep;
            closed.extend(expired);
            !idle.is_empty() || Arc::strong_count(pool) > 1
        });
        drop(pools);
        // Dropping a sender ends its connection; outside the locks.
        drop(closed);
    }

    /// Expires idle connections every [`IDLE_TIMEOUT`] until `stop`.
    pub async fn expire_idle(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(IDLE_TIMEOUT);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.expire(Instant::now()),
            }
        }
    }

    /// The number of idle connections to `addr` (for tests).
    #[cfg(test)]
    pub fn idle(&self, addr: SocketAddr) -> usize {
        lock(&self.pools)
            .get(&addr)
            .map_or(0, |pool| lock(&pool.idle).len())
    }
}

impl Pool {
    /// The most recently used idle connection that is still open and ready.
    fn checkout(&self) -> Option<http1::SendRequest<RequestBody>> {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        while let Some(entry) = idle.pop() {
            if entry.sender.is_ready() && !expired(entry.since, now) {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put(&self, sender: http1::SendRequest<RequestBody>) {
        let since = Instant::now();
        lock(&self.idle).push(Idle { sender, since });
    }

    /// Returns a connection to the pool once it can take the next request: now if it can
    /// (the whole response was read along with its head), else when it can.
    fn release(self: &Arc<Self>, mut sender: http1::SendRequest<RequestBody>) {
        if sender.is_ready() {
            self.put(sender);
            return;
        }
        let pool = self.clone();
        // Ends when the response body was read (ready) or the connection closed.
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.put(sender);
            }
        });
    }

    async fn connect(&self) -> Result<http1::SendRequest<RequestBody>, ClientError> {
        let stream = connect_tcp(self.addr).await?;
        let (mut sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::send_request)?;
        let (error_tx, error_rx) = tokio::sync::oneshot::channel();
        // The connection's task ends with the connection: closed by the upstream, or by the
        // proxy when the last sender (in the pool or in use) is dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection error");
                let _ = error_tx.send(error);
            }
        });
        match sender.ready().await {
            Ok(()) => Ok(sender),
            // The connection ended before it was ready; its own error says why.
            Err(error) if error.is_closed() => match error_rx.await {
                Ok(cause) => Err(ClientError::send_request(cause)),
                Err(_) => Err(ClientError::send_request(error)),
            },
            Err(error) => Err(ClientError::send_request(error)),
        }
    }

    /// Sends `request` (origin-form URI) on an idle connection or a new one.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, ClientError> {
        loop {
            let (mut sender, reused) = match self.checkout() {
                Some(sender) => (sender, true),
                // Boxed: the connect future is large and rarely needed, and this one is moved
                // through every level of the request's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.release(sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    // Not even started, on a connection the upstream closed while it was
                    // idle: another connection may well take it.
                    Some(unsent) if reused => request = unsent,
                    Some(_) => return Err(ClientError::canceled(error.into_error())),
                    None => return Err(ClientError::send_request(error.into_error())),
                },
            }
        }
    }
}

async fn connect_tcp(addr: SocketAddr) -> Result<TcpStream, ClientError> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| ClientError::connect("tcp open error", e))?;
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr)).await {
        Ok(result) => result,
        Err(elapsed) => Err(io::Error::new(io::ErrorKind::TimedOut, elapsed)),
    }
    .map_err(|e| ClientError::connect("tcp connect error", e))?;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::warn!(%error, "tcp set_nodelay error");
    }
    Ok(stream)
}

/// Why an upstream request got no response; reads as hyper-util's legacy client error did.
#[derive(Debug)]
pub struct ClientError {
    kind: ClientErrorKind,
    source: BoxError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientErrorKind {
    /// No connection: nothing was sent.
    Connect,
    /// The request was sent, or may have been, and failed.
    SendRequest,
    /// The connection could not take the request and it was not sent again.
    Canceled,
}

impl ClientError {
    fn connect(step: &'static str, cause: io::Error) -> ClientError {
        ClientError {
            kind: ClientErrorKind::Connect,
            source: Box::new(ConnectError { step, cause }),
        }
    }

    fn send_request(cause: hyper::Error) -> ClientError {
        ClientError {
            kind: ClientErrorKind::SendRequest,
            source: Box::new(cause),
        }
    }

    fn canceled(cause: hyper::Error) -> ClientError {
        ClientError {
            kind: ClientErrorKind::Canceled,
            source: Box::new(cause),
        }
    }

    /// The connection could not be established.
    pub fn is_connect(&self) -> bool {
        self.kind == ClientErrorKind::Connect
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client error ({:?})", self.kind)
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// Which step of connecting failed, and the system's reason.
#[derive(Debug)]
struct ConnectError {
    step: &'static str,
    cause: io::Error,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.step)
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.cause)
    }
}

#[cfg(test)]
mod tests;
