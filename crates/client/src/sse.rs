//! A minimal server-sent-events reader for the `/v1` watch stream.

use futures_util::StreamExt;
pub use model::wire::WatchEvent;

use crate::ClientError;

pub struct WatchStream {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl WatchStream {
    pub(crate) fn new(response: reqwest::Response) -> WatchStream {
        WatchStream {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event; `Ok(None)` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block)? {
                    return Ok(Some(event));
                }
                continue;
            }
            match self.body.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(ClientError::Protocol(format!("watch stream: {e}"))),
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
            }
        }
    }
}

/// Parses one `field: value` block; comments (keep-alives) yield `None`.
fn parse_block(block: &str) -> Result<Option<WatchEvent>, ClientError> {
    let mut event = "message".to_string();
    let mut data = String::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        }
    }
    if data.is_empty() {
        return Ok(None);
    }
    WatchEvent::from_sse(&event, &data)
        .map(Some)
        .map_err(|e| ClientError::Protocol(format!("watch event: {e}")))
}
