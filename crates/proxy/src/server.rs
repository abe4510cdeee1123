//! Accept loops: one per bound listener, one task per connection (HTTP/1.1, keep-alive), all
//! owned by the proxy's task tracker and drained gracefully at shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::forward::{self, Entry};
use crate::{Shared, admin, headers};

/// What a listener serves.
#[derive(Debug, Clone, Copy)]
pub enum Serves {
    Proxy(Entry),
    Admin,
}

/// Accepts until `stop` is cancelled; each connection drains gracefully on `stop` too.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    serves: Serves,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
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
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            connection(TokioIo::new(stream), remote, shared, serves, stop).await;
        });
    }
}

async fn connection(
    io: TokioIo<tokio::net::TcpStream>,
    remote: SocketAddr,
    shared: Arc<Shared>,
    serves: Serves,
    stop: CancellationToken,
) {
    let forwarded_for = headers::forwarded_for(remote.ip());
    let service = service_fn(move |request| {
        let shared = shared.clone();
        let forwarded_for = forwarded_for.clone();
        async move {
            let response = match serves {
                Serves::Proxy(entry) => {
                    forward::handle(&shared, entry, &forwarded_for, request).await
                }
                Serves::Admin => admin::handle(&shared, request).await,
            };
            Ok::<_, Infallible>(response)
        }
    });
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
