//! Message bodies the proxy sends: request bodies upstream (kept for replay while small) and
//! response bodies downstream (streamed, with the route's idle timeout).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::endpoints::InFlight;
use crate::error::ProxyError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body up to this size is kept so the request can be retried; a larger one is
/// streamed and the request is not retried.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// A request body after the proxy looked at it.
pub enum Prepared {
    /// Complete and small: can be sent any number of times.
    Replayable(Bytes),
    /// Too large (or not buffered): sent once, as it arrives.
    Streaming(RequestBody),
}

/// Reads the body until it ends or passes [`REPLAY_LIMIT`]; with `buffer` false it is streamed
/// untouched (a request that cannot be retried anyway).
pub async fn prepare(mut body: Incoming, buffer: bool) -> Result<Prepared, ProxyError> {
    if body.is_end_stream() {
        return Ok(Prepared::Replayable(Bytes::new()));
    }
    if !buffer {
        return Ok(Prepared::Streaming(RequestBody::stream(
            VecDeque::new(),
            body,
        )));
    }
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut size = 0;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(ProxyError::BadRequest(format!("request body: {e}"))),
            Some(Ok(frame)) => {
                let trailers = frame.is_trailers();
                size += frame.data_ref().map_or(0, Bytes::len);
                frames.push_back(frame);
                if trailers || size > REPLAY_LIMIT {
                    return Ok(Prepared::Streaming(RequestBody::stream(frames, body)));
                }
            }
        }
    }
    let mut all = BytesMut::with_capacity(size);
    for frame in frames {
        if let Ok(data) = frame.into_data() {
            all.extend_from_slice(&data);
        }
    }
    Ok(Prepared::Replayable(all.freeze()))
}

/// What is sent upstream.
pub enum RequestBody {
    Full(Option<Bytes>),
    Stream {
        /// Frames already read from the caller.
        prefix: VecDeque<Frame<Bytes>>,
        rest: Incoming,
    },
}

impl RequestBody {
    fn stream(prefix: VecDeque<Frame<Bytes>>, rest: Incoming) -> RequestBody {
        RequestBody::Stream { prefix, rest }
    }

    pub fn full(bytes: Bytes) -> RequestBody {
        RequestBody::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            RequestBody::Stream { prefix, rest } => match prefix.pop_front() {
                Some(frame) => Poll::Ready(Some(Ok(frame))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Full(bytes) => bytes.is_none(),
            RequestBody::Stream { prefix, rest } => prefix.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            RequestBody::Stream { prefix, rest } => {
                let buffered: u64 = prefix
                    .iter()
                    .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
                    .sum();
                let remaining = rest.size_hint();
                let mut hint = SizeHint::new();
                if let Some(upper) = remaining.upper() {
                    hint.set_upper(upper + buffered);
                }
                hint.set_lower(remaining.lower() + buffered);
                hint
            }
        }
    }
}

/// What is sent downstream.
pub enum ResponseBody {
    Full(Option<Bytes>),
    Upstream {
        body: Incoming,
        idle: Option<IdleTimeout>,
        /// Counts toward the endpoint's outstanding requests until the body is done.
        in_flight: Option<InFlight>,
    },
}

/// The route's idle timeout on an upstream body: it runs out `after` the last frame (or the
/// response head). The timer is only armed when the body actually has to wait: most bodies
/// are complete by the time they are polled, and a timer per response would cost more than
/// forwarding it.
pub struct IdleTimeout {
    after: Duration,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimeout {
    fn new(after: Duration) -> IdleTimeout {
        IdleTimeout {
            after,
            deadline: Instant::now() + after,
            sleep: None,
        }
    }

    fn activity(&mut self) {
        self.deadline = Instant::now() + self.after;
    }

    /// Ready when the body has been idle for `after`.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx)
    }
}

impl ResponseBody {
    pub fn text(text: impl Into<String>) -> ResponseBody {
        ResponseBody::Full(Some(Bytes::from(text.into())))
    }

    /// An upstream body passed on as it comes, with no idle limit and no endpoint to account
    /// to (an agent's inbound side: the calling proxy does both).
    pub fn passed_on(body: Incoming) -> ResponseBody {
        ResponseBody::Upstream {
            body,
            idle: None,
            in_flight: None,
        }
    }

    pub fn upstream(body: Incoming, idle: Option<Duration>, in_flight: InFlight) -> ResponseBody {
        ResponseBody::Upstream {
            body,
            idle: idle.map(IdleTimeout::new),
            in_flight: Some(in_flight),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Upstream {
                body,
                idle,
                in_flight,
            } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(frame) => {
                    if frame.is_none() {
                        in_flight.take();
                    } else if let Some(idle) = idle {
                        idle.activity();
                    }
                    Poll::Ready(frame.map(|f| f.map_err(BoxError::from)))
                }
                Poll::Pending => {
                    let Some(idle) = idle else {
                        return Poll::Pending;
                    };
                    if idle.poll_expired(cx).is_pending() {
                        return Poll::Pending;
                    }
                    in_flight.take();
                    let message = format!("upstream response body idle for {:?}", idle.after);
                    Poll::Ready(Some(Err(message.into())))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Upstream { body, .. } => body.size_hint(),
        }
    }
}
