//! Accept loops: one per bound listener, one task per connection (HTTP/1.1, keep-alive), all
//! owned by the proxy's task tracker and drained gracefully at shutdown; each listener bounds
//! its open connections and answers 503 past the bound.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::forward::{self, Entry};
use crate::inbound::{self, Target};
use crate::telemetry::ConnectionRefused;
use crate::tls::{self, Accepted, InboundAccepted, Refusal, Refused, ServerTls, TlsRefused};
use crate::{Shared, admin, headers};

/// The answer past a listener's connection limit, written without a task or a wait.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 45\r\n\
\r\n\
too many connections to this proxy listener\r\n";

/// What a listener serves.
#[derive(Debug, Clone)]
pub enum Serves {
    Proxy(Entry),
    /// An agent's inbound listener for one local replica.
    Inbound(Arc<Target>),
    Admin,
}

impl Serves {
    /// The `listener` label of its metrics.
    fn listener(&self) -> &'static str {
        match self {
            Serves::Proxy(Entry::Gateway { .. }) => "gateway",
            Serves::Proxy(Entry::Egress { .. }) => "egress",
            Serves::Inbound(_) => "inbound",
            Serves::Admin => "admin",
        }
    }
}

/// Accepts until `stop` is cancelled, at most `max_connections` open at once; each
/// connection drains gracefully on `stop` too.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    serves: Serves,
    max_connections: usize,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, remote) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream);
            ConnectionRefused {
                listener: serves.listener(),
                max_connections,
            }
            .emit(&shared.telemetry);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        let serves = serves.clone();
        tracker.spawn(async move {
            let _open = shared.telemetry.connection_opened(serves.listener());
            // TLS in the connection's own task: a handshake may take seconds.
            let tls = match &serves {
                Serves::Inbound(target) => Some(inbound::server_tls(&shared, target)),
                Serves::Proxy(Entry::Gateway { port }) => shared.table.load().gateway_tls(*port),
                _ => None,
            };
            match tls {
                Some(tls) => {
                    if let Some(io) = accept(&shared, &serves, tls, stream, remote).await {
                        connection(TokioIo::new(io), remote, shared, serves, stop).await;
                    }
                }
                None => connection(TokioIo::new(stream), remote, shared, serves, stop).await,
            }
            drop(permit);
        });
    }
}

/// Accepts one connection as `tls` says (a listener's `tls` that could not be built refuses
/// every connection: the spec asked for TLS); a refusal is counted by reason and ends it.
async fn accept(
    shared: &Shared,
    serves: &Serves,
    tls: Result<ServerTls, String>,
    stream: TcpStream,
    remote: SocketAddr,
) -> Option<Accepted> {
    let listener = serves.listener();
    let refused = match tls {
        Ok(tls) => match tls::accept(stream, &tls).await {
            Ok(accepted) => {
                let peer = accepted
                    .peer()
                    .and_then(|p| p.uris.first().or(p.dns_names.first()));
                tracing::debug!(%remote, listener, peer = ?peer, "connection accepted");
                if let Serves::Inbound(_) = serves {
                    InboundAccepted {
                        tls: accepted.is_tls(),
                    }
                    .emit(&shared.telemetry.tls);
                }
                return Some(accepted);
            }
            Err(refused) => refused,
        },
        Err(why) => Refused::new(Refusal::HandshakeFailed, why),
    };
    TlsRefused {
        listener,
        peer: remote,
        refused: &refused,
    }
    .emit(&shared.telemetry.tls);
    None
}

/// A connection past the limit, refused without a task, a read or a wait: a fresh socket's
/// send buffer always takes [`TOO_MANY`] whole. Dropping the stream closes it, with a reset if
/// the client's request is already in: Linux still delivers the 503 sent before it.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(TOO_MANY);
}

async fn connection<T>(
    io: TokioIo<T>,
    remote: SocketAddr,
    shared: Arc<Shared>,
    serves: Serves,
    stop: CancellationToken,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let forwarded_for = headers::forwarded_for(remote.ip());
    // HTTP/2 from other hosts' proxies (to nodes that speak it) as well as HTTP/1.1.
    let inbound = matches!(serves, Serves::Inbound(_));
    let service = service_fn(move |request| {
        let shared = shared.clone();
        let forwarded_for = forwarded_for.clone();
        let serves = serves.clone();
        async move {
            let response = match &serves {
                Serves::Proxy(entry) => {
                    forward::handle(&shared, entry, &forwarded_for, request).await
                }
                Serves::Inbound(target) => inbound::handle(&shared, target, request).await,
                Serves::Admin => admin::handle(&shared, request).await,
            };
            Ok::<_, Infallible>(response)
        }
    });
    if inbound {
        let builder = auto::Builder::new(TokioExecutor::new());
        let mut conn = pin!(builder.serve_connection(io, service));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%remote, %error, "connection ended with an error");
                }
            }
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
        return;
    }
    let mut conn = pin!(
        http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .serve_connection(io, service)
    );
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
