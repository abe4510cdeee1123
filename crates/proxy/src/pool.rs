//! Keep-alive HTTP/1.1 connections to upstream endpoints, one pool per address.
//!
//! It does what hyper-util's legacy client did for the proxy, minus what the proxy never
//! needs (URI parsing, a pool key hashed per request, connection racing, ALPN), because it sat
//! on every request's path: an [`Endpoint`](crate::endpoints::Endpoint) keeps its address's
//! pool, so a request takes an idle connection with one uncontended lock. The behaviour is the
//! legacy client's: the most recently used idle connection first; a connection goes back to the
//! pool once it is ready for the next request; a connection idle for [`IDLE_TIMEOUT`] is closed
//! (at checkout and by `Upstreams::expire_idle`); errors read as the legacy client's did
//! (`client error (Connect): tcp connect error: ...`).
//!
//! Beyond the legacy client, because upstreams close idle keep-alive connections on their own
//! schedule (Node.js after 5 s, many servers sooner) and a request written into a connection the
//! upstream is closing fails without any answer:
//! - a connection is kept no longer than the upstream said it would keep it (`Keep-Alive:
//!   timeout=N`, less a margin for the time the answer took to arrive), and never after
//!   `Connection: close` (hyper closes those);
//! - a request that failed on a reused connection before any byte of an answer came is sent
//!   once more, on a fresh connection: always when it provably was not written (hyper hands it
//!   back), and otherwise when the caller says it may be sent twice (an idempotent request
//!   whose body is kept).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::{BoxError, RequestBody};
use crate::lock;
use crate::tls::{ClientTls, TlsConnectFailed, TlsKey, TlsMetrics};

/// How long a connection may stay idle in a pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Every address's pool. Pools are found by address only when an endpoint first sends;
/// afterwards the endpoint holds its pool.
#[derive(Default)]
pub struct Http1Pools {
    /// By address and TLS identity: a connection made with one client certificate and trust
    /// is never handed to a request that needs another.
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
}

/// An address, and the TLS identity its connections are made with (`None`: plain text).
type PoolKey = (SocketAddr, Option<TlsKey>);

/// How a pool's connections are secured: the client TLS, the name sent as SNI, and where
/// handshake failures are counted.
#[derive(Clone)]
pub struct PoolTls {
    pub tls: ClientTls,
    pub server_name: String,
    pub metrics: TlsMetrics,
}

/// The idle connections to one address, most recently used last.
pub struct Pool {
    addr: SocketAddr,
    /// TLS for new connections.
    tls: Option<PoolTls>,
    idle: Mutex<Vec<Idle>>,
}

/// One connection: the handle requests are sent with, and a token cancelled when its task
/// ended (the connection is gone, whatever hyper still says about a request sent on it).
struct Conn {
    sender: http1::SendRequest<RequestBody>,
    ended: CancellationToken,
}

struct Idle {
    conn: Conn,
    /// After this the connection is not used again: the upstream may be closing it.
    until: Instant,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.addr)
            .field("idle", &lock(&self.idle).len())
            .finish()
    }
}

fn expired(until: Instant, now: Instant) -> bool {
    now >= until
}

/// The time an answer takes to reach the proxy after the upstream's idle clock started, with
/// room for scheduling: what is taken off the upstream's announced keep-alive timeout.
const KEEP_ALIVE_MARGIN: Duration = Duration::from_millis(500);

/// How long a connection may be reused after this answer: [`IDLE_TIMEOUT`], or less when the
/// upstream announced `Keep-Alive: timeout=N` (seconds): N less [`KEEP_ALIVE_MARGIN`], at least
/// half of N. `max=` is not read: servers that count requests (Apache) say `Connection: close`
/// on the last one, and hyper honours that.
pub fn keep_for(headers: &http::HeaderMap) -> Duration {
    let announced = headers
        .get_all("keep-alive")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("timeout")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
        .min();
    match announced {
        Some(seconds) => {
            let timeout = Duration::from_secs(seconds);
            timeout
                .saturating_sub(KEEP_ALIVE_MARGIN)
                .max(timeout / 2)
                .min(IDLE_TIMEOUT)
        }
        None => IDLE_TIMEOUT,
    }
}

/// Whether a request that failed this way got no byte of an answer on a connection that was
/// closing: the connection closed or was reset under it. A timeout, or an answer that did not
/// parse, is the upstream's own failure and is not sent again here.
fn closed_under(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        return true;
    }
    let mut source = StdError::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            );
        }
        source = cause.source();
    }
    false
}

impl Http1Pools {
    /// The plain-text pool of `addr`, shared by every endpoint with that address.
    pub fn pool(&self, addr: SocketAddr) -> Arc<Pool> {
        self.pool_with(addr, None)
    }

    /// The pool of `addr` whose connections are made with `tls`.
    pub fn pool_with(&self, addr: SocketAddr, tls: Option<PoolTls>) -> Arc<Pool> {
        let key = (addr, tls.as_ref().map(|t| t.tls.key()));
        lock(&self.pools)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Pool {
                    addr,
                    tls,
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
                .partition(|i| i.conn.sender.is_ready() && !expired(i.until, now));
            *idle = keep;
            closed.extend(expired);
            !idle.is_empty() || Arc::strong_count(pool) > 1
        });
        drop(pools);
        // Dropping a sender ends its connection; outside the locks.
        drop(closed);
    }

    /// The number of idle connections to `addr` (for tests).
    #[cfg(test)]
    pub fn idle(&self, addr: SocketAddr) -> usize {
        lock(&self.pools)
            .get(&(addr, None))
            .map_or(0, |pool| lock(&pool.idle).len())
    }
}

impl Pool {
    /// The most recently used idle connection that is still open and ready.
    fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        while let Some(entry) = idle.pop() {
            if entry.conn.sender.is_ready() && !expired(entry.until, now) {
                return Some(entry.conn);
            }
        }
        None
    }

    fn put(&self, conn: Conn, keep: Duration) {
        let until = Instant::now() + keep;
        lock(&self.idle).push(Idle { conn, until });
    }

    /// Returns a connection to the pool once it can take the next request: now if it can
    /// (the whole response was read along with its head), else when it can. It is kept for
    /// `keep` from then ([`keep_for`]).
    fn release(self: &Arc<Self>, mut conn: Conn, keep: Duration) {
        if conn.sender.is_ready() {
            self.put(conn, keep);
            return;
        }
        let pool = self.clone();
        // Ends when the response body was read (ready) or the connection closed.
        tokio::spawn(async move {
            if conn.sender.ready().await.is_ok() {
                pool.put(conn, keep);
            }
        });
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
        let stream = connect_tcp(self.addr).await?;
        match &self.tls {
            None => self.handshake(stream).await,
            Some(pool_tls) => {
                self.handshake(secure(stream, self.addr, pool_tls).await?)
                    .await
            }
        }
    }

    async fn handshake<T>(&self, stream: T) -> Result<Conn, ClientError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::send_request)?;
        let (error_tx, error_rx) = tokio::sync::oneshot::channel();
        // The connection's task ends with the connection: closed by the upstream, or by the
        // proxy when the last sender (in the pool or in use) is dropped.
        let ended = CancellationToken::new();
        let on_end = ended.clone().drop_guard();
        tokio::spawn(async move {
            let _on_end = on_end;
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection error");
                let _ = error_tx.send(error);
            }
        });
        match sender.ready().await {
            Ok(()) => Ok(Conn { sender, ended }),
            // The connection ended before it was ready; its own error says why.
            Err(error) if error.is_closed() => match error_rx.await {
                Ok(cause) => Err(ClientError::send_request(cause)),
                Err(_) => Err(ClientError::send_request(error)),
            },
            Err(error) => Err(ClientError::send_request(error)),
        }
    }

    /// Sends `request` (origin-form URI) on an idle connection or a new one. `again` builds the
    /// same request once more, for a caller whose request may be sent twice (idempotent, body
    /// kept): it is used when a reused connection closed under the request before any answer.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<RequestBody>,
        again: Option<&(dyn Fn() -> Request<RequestBody> + Sync)>,
    ) -> Result<Response<Incoming>, ClientError> {
        // At most two tries: the first on a pooled connection if there is one, and, when that
        // one was closing, the second on a fresh connection (another pooled one may be closing
        // for the same reason).
        let mut fresh = false;
        loop {
            let pooled = if fresh { None } else { self.checkout() };
            let (conn, reused) = match pooled {
                Some(conn) => (conn, true),
                // Boxed: the connect future is large and rarely needed, and this one is moved
                // through every level of the request's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            let Conn {
                sender: mut handle,
                ended,
            } = conn;
            let mut sent = pin!(handle.try_send_request(request));
            // Biased: an answer the connection delivered before it ended is taken first.
            let ended_first = tokio::select! {
                biased;
                result = &mut sent => Err(result),
                () = ended.cancelled() => Ok(()),
            };
            let (result, handle) = match ended_first {
                Err(result) => (result, Some(handle)),
                // The connection ended and the request has no answer: it sits in the queue
                // of a connection that is gone (sent while the connection was closing). Only
                // dropping the last handle drops that queue, which hands the request back.
                Ok(()) => {
                    drop(handle);
                    (sent.await, None)
                }
            };
            match result {
                Ok(response) => {
                    if let Some(sender) = handle {
                        self.release(Conn { sender, ended }, keep_for(response.headers()));
                    }
                    return Ok(response);
                }
                Err(mut error) => {
                    let unsent = error.take_message();
                    let error = error.into_error();
                    let stale = reused && closed_under(&error);
                    match (unsent, again) {
                        (Some(unsent), _) if stale => request = unsent,
                        (None, Some(again)) if stale => request = again(),
                        (Some(_), _) => return Err(ClientError::canceled(error)),
                        (None, _) => return Err(ClientError::send_request(error)),
                    }
                    tracing::debug!(addr = %self.addr, %error,
                        "a reused connection closed under the request; sending it on a fresh one");
                    fresh = true;
                }
            }
        }
    }
}

/// HTTP/2 over TLS: one multiplexed connection per (address, TLS identity), which hyper-util's
/// client (the proxy's plain HTTP/2, making its own connections) cannot make.
#[derive(Default)]
pub struct Http2TlsPools {
    conns: Mutex<HashMap<PoolKey, http2::SendRequest<RequestBody>>>,
    /// Serialises connecting, so a burst of first requests makes one connection, not many.
    connecting: tokio::sync::Mutex<()>,
}

impl Http2TlsPools {
    /// Sends `request` (absolute-form URI) on the connection to `addr` made with `tls`,
    /// connecting first if there is none or it closed.
    pub async fn send(
        &self,
        addr: SocketAddr,
        tls: &PoolTls,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, ClientError> {
        let key = (addr, Some(tls.tls.key()));
        let mut sender = match self.live(&key) {
            Some(sender) => sender,
            None => {
                let _one = self.connecting.lock().await;
                match self.live(&key) {
                    Some(sender) => sender,
                    None => {
                        let sender = Box::pin(connect_http2(addr, tls)).await?;
                        lock(&self.conns).insert(key, sender.clone());
                        sender
                    }
                }
            }
        };
        sender
            .send_request(request)
            .await
            .map_err(ClientError::send_request)
    }

    fn live(&self, key: &PoolKey) -> Option<http2::SendRequest<RequestBody>> {
        lock(&self.conns)
            .get(key)
            .filter(|sender| !sender.is_closed())
            .cloned()
    }

    /// Forgets closed connections (their endpoints went away, or the upstream ended them).
    pub fn expire(&self) {
        lock(&self.conns).retain(|_, sender| !sender.is_closed());
    }
}

async fn connect_http2(
    addr: SocketAddr,
    tls: &PoolTls,
) -> Result<http2::SendRequest<RequestBody>, ClientError> {
    let stream = secure(connect_tcp(addr).await?, addr, tls).await?;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(ClientError::send_request)?;
    // Ends with the connection: closed by the upstream, or when the last sender is dropped.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upstream HTTP/2 connection error");
        }
    });
    Ok(sender)
}

/// The TLS handshake of a new upstream connection; a failure is counted and reads as a
/// connect error (nothing was sent).
async fn secure(
    stream: TcpStream,
    addr: SocketAddr,
    tls: &PoolTls,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    let connected = crate::tls::connect(stream, &tls.tls, &tls.server_name);
    connected.await.map_err(|refused| {
        TlsConnectFailed {
            address: addr,
            refused: &refused,
        }
        .emit(&tls.metrics);
        ClientError::tls(refused)
    })
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

    /// The TLS handshake failed: nothing was sent, as with a refused connection.
    fn tls(refused: crate::tls::Refused) -> ClientError {
        ClientError {
            kind: ClientErrorKind::Connect,
            source: Box::new(refused),
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
