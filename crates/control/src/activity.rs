//! What one connection is doing (reading a request head, answering, idle between requests), and the watchdog that closes it when a head or an idle spell lasts too long.
//!
//! hyper's own `header_read_timeout` runs from the moment it waits for a head, idle time
//! included, so it cannot tell a slow head from a quiet keep-alive connection. Go's
//! `ReadHeaderTimeout`/`IdleTimeout` pair can, and this is the same pair: the head deadline
//! starts with the connection or with the first byte of the next request, the idle deadline
//! when the last response has been sent.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting since then for a request head to be complete: the connection is new, or the
    /// first byte of its next request has arrived.
    Head(Instant),
    /// This many requests are being answered (their responses are not all sent yet).
    Busy(usize),
    /// Nothing to do since then: between keep-alive requests.
    Idle(Instant),
}

/// Why the watchdog gave up on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    HeaderRead,
    Idle,
}

/// Shared by a connection's byte stream (which sees bytes arrive), its service (which sees
/// requests start and responses end) and its watchdog.
#[derive(Clone)]
pub(crate) struct Activity(Arc<watch::Sender<Phase>>);

impl Activity {
    /// A connection whose first request head is due from now on.
    pub(crate) fn new() -> Activity {
        Activity(Arc::new(watch::Sender::new(Phase::Head(Instant::now()))))
    }

    /// Bytes arrived: an idle connection is now reading a head.
    fn received(&self) {
        // A read lock first: most reads happen while busy, and need no write.
        if matches!(*self.0.borrow(), Phase::Idle(_)) {
            self.0.send_if_modified(|phase| match phase {
                Phase::Idle(_) => {
                    *phase = Phase::Head(Instant::now());
                    true
                }
                _ => false,
            });
        }
    }

    /// A request's head is in; no deadline runs until its response has been sent.
    pub(crate) fn request_started(&self) -> Answering {
        self.0.send_modify(|phase| {
            *phase = match *phase {
                Phase::Busy(n) => Phase::Busy(n + 1),
                Phase::Head(_) | Phase::Idle(_) => Phase::Busy(1),
            }
        });
        Answering(self.clone())
    }

    /// Resolves when the current head has taken longer than `header_read`, or the connection
    /// has been idle longer than `idle`; never while a request is being answered.
    pub(crate) fn watchdog(
        &self,
        header_read: Duration,
        idle: Duration,
    ) -> impl Future<Output = Expired> + use<> {
        let mut phases = self.0.subscribe();
        async move {
            loop {
                let phase = *phases.borrow_and_update();
                let deadline = match phase {
                    Phase::Head(since) => Some((since + header_read, Expired::HeaderRead)),
                    Phase::Idle(since) => Some((since + idle, Expired::Idle)),
                    Phase::Busy(_) => None,
                };
                let expiry = async move {
                    match deadline {
                        Some((at, why)) => {
                            tokio::time::sleep_until(at).await;
                            why
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = phases.changed() => {
                        // Every sender is gone only when the connection is; nothing to watch.
                        if changed.is_err() {
                            return std::future::pending().await;
                        }
                    }
                    why = expiry => return why,
                }
            }
        }
    }
}

/// Held while a response is being sent; the last one dropped makes the connection idle.
pub(crate) struct Answering(Activity);

impl Drop for Answering {
    fn drop(&mut self) {
        (self.0).0.send_modify(|phase| {
            *phase = match *phase {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle(Instant::now()),
            }
        });
    }
}

/// A response body that keeps its request [`Answering`] until hyper has sent it (or dropped
/// it, when the client went away). Long watch streams are thereby never idle.
pub(crate) struct Tracked<B> {
    body: B,
    _answering: Answering,
}

impl<B> Tracked<B> {
    pub(crate) fn new(body: B, answering: Answering) -> Tracked<B> {
        Tracked {
            body,
            _answering: answering,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    // hyper sets `content-length` from an exact hint; hiding it would turn answers chunked.
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's byte stream that tells its [`Activity`] when request bytes arrive.
pub(crate) struct Watched<I> {
    inner: I,
    activity: Activity,
}

impl<I> Watched<I> {
    pub(crate) fn new(inner: I, activity: Activity) -> Watched<I> {
        Watched { inner, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.received();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
