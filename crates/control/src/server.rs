//! The HTTP/1.1 server under the router: our own accept loop instead of `axum::serve`, so connections are bounded in number, each has a header-read and an idle timeout, and TLS a handshake timeout.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::App;
use crate::activity::{Activity, Expired, Tracked, Watched};
use crate::telemetry::{
    AcceptFailed, ConnectionEnded, ConnectionRefused, ConnectionTimedOut, TlsHandshakeFailed,
};

/// How many connections, and how long each may take over what.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at most; one more is refused at once (see [`refuse`]).
    pub max_connections: usize,
    /// From a connection's start, or the first byte of its next request, to a complete head.
    pub header_read_timeout: Duration,
    /// Between keep-alive requests. Longer than `client`'s pool idle time (30 s), so a client
    /// never sends on a connection this side is closing.
    pub idle_timeout: Duration,
    /// From accepting a TLS connection to a finished handshake.
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The answer past the connection limit, with App Mesh's error type for it, which the AWS CLI
/// and SDKs retry with backoff.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
x-amzn-ErrorType: ServiceUnavailableException\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 51\r\n\
\r\n\
{\"message\":\"too many connections; try again later\"}";

/// How long shutdown waits for open connections to finish what they are answering.
const DRAIN: Duration = Duration::from_secs(5);
/// After a failed accept (out of file descriptors, say): wait, rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What every connection of one listener shares.
struct Server {
    router: TowerToHyperService<Router>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    app: Arc<App>,
}

/// Accepts until the app's shutdown token is cancelled, then lets open connections finish
/// (bounded by [`DRAIN`]): idle ones close at once, watch streams end on the same token.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    app: Arc<App>,
) {
    let shutdown = app.shutdown.clone();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let server = Arc::new(Server {
        router: TowerToHyperService::new(crate::router(app.clone())),
        tls,
        limits,
        app,
    });
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                AcceptFailed { error: &error }.emit(&server.app.telemetry);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                connections.spawn(connection(server.clone(), stream, permit));
            }
            Err(_) => refuse(&server, stream),
        }
    }
    // The port closes now, not after the drain.
    drop(listener);
    connections.close();
    let _ = tokio::time::timeout(DRAIN, connections.wait()).await;
}

/// One connection past the limit, refused without a task, a read or a wait. A plain-HTTP
/// client gets [`TOO_MANY`] (a fresh socket's send buffer always takes it whole, so `try_write`
/// does not block); a TLS client could read nothing before a handshake, the very cost this
/// refuses, so it is just closed. Dropping the stream closes it, with a reset if the client's
/// request is already in: Linux still delivers the 503 sent before it.
fn refuse(server: &Server, stream: TcpStream) {
    if server.tls.is_none() {
        let _ = stream.try_write(TOO_MANY);
    }
    ConnectionRefused {
        max_connections: server.limits.max_connections,
    }
    .emit(&server.app.telemetry);
}

/// A connection, holding one permit until it closes.
async fn connection(server: Arc<Server>, stream: TcpStream, _permit: OwnedSemaphorePermit) {
    let _open = server.app.telemetry.connection_opened();
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = &server.tls else {
        return http(&server, stream).await;
    };
    let handshake = tokio::select! {
        _ = server.app.shutdown.cancelled() => return,
        handshake = tokio::time::timeout(
            server.limits.tls_handshake_timeout,
            acceptor.accept(stream),
        ) => handshake,
    };
    match handshake {
        Ok(Ok(stream)) => http(&server, stream).await,
        // A client that does not trust this certificate, one speaking plain HTTP, a scanner.
        Ok(Err(error)) => TlsHandshakeFailed { error: &error }.emit(&server.app.telemetry),
        Err(_) => ConnectionTimedOut::TlsHandshake.emit(&server.app.telemetry),
    }
}

/// Serves HTTP/1.1 requests on `io` until the client closes, a deadline passes, or shutdown.
async fn http<I>(server: &Server, io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let router = server.router.clone();
    let requests = activity.clone();
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let answering = requests.request_started();
        let answer = router.call(request);
        async move {
            let response = answer.await?;
            Ok::<_, Infallible>(response.map(|body| Tracked::new(body, answering)))
        }
    });
    let mut conn = pin!(
        http1::Builder::new()
            // The watchdog owns it: hyper's would also run, and close, while idle.
            .header_read_timeout(None)
            .keep_alive(true)
            .serve_connection(TokioIo::new(Watched::new(io, activity.clone())), service)
    );
    let limits = &server.limits;
    let mut watchdog = pin!(activity.watchdog(limits.header_read_timeout, limits.idle_timeout));
    let telemetry = &server.app.telemetry;
    tokio::select! {
        ended = conn.as_mut() => ConnectionEnded { error: ended.err() }.emit(),
        expired = watchdog.as_mut() => timed_out(expired).emit(telemetry),
        _ = server.app.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                ended = conn.as_mut() => ConnectionEnded { error: ended.err() }.emit(),
                expired = watchdog.as_mut() => timed_out(expired).emit(telemetry),
            }
        }
    }
}

fn timed_out(expired: Expired) -> ConnectionTimedOut {
    match expired {
        Expired::HeaderRead => ConnectionTimedOut::HeaderRead,
        Expired::Idle => ConnectionTimedOut::Idle,
    }
}

#[cfg(test)]
mod tests;
