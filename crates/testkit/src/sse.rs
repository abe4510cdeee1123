//! A blocking reader of a server-sent-events stream (`text/event-stream`), one event at a time.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{Headers, parse_head};

/// How long the response head may take to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// One event: its `id:`, `event:` (absent means the default, `message`) and joined `data:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// The `data:` payload parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {self:?}"))
    }
}

/// An open `GET` whose response body is read as server-sent events.
pub struct EventStream {
    stream: TcpStream,
    status: u16,
    headers: Headers,
    chunked: bool,
    /// Received transport bytes not yet decoded (a partial chunk).
    raw: Vec<u8>,
    /// Decoded body bytes not yet returned as events, with `\r` removed.
    body: Vec<u8>,
    closed: bool,
}

impl EventStream {
    /// Sends `GET url` with `Accept: text/event-stream`, as the seeded admin, and reads the
    /// response head.
    pub fn open(url: &str) -> EventStream {
        EventStream::open_as(url, crate::TEST_ADMIN_TOKEN)
    }

    /// Like [`EventStream::open`], with `token`.
    pub fn open_as(url: &str, token: &str) -> EventStream {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("testkit speaks plain http only, not {url}"));
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\
             Authorization: Bearer {token}\r\n\
             Cache-Control: no-cache\r\nUser-Agent: aviary-testkit\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .expect("send watch request");

        let deadline = Instant::now() + HEAD_TIMEOUT;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let (status, headers, head_len) = loop {
            if let Some(head) = parse_head(&raw) {
                break head;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "GET {url}: no response head within {HEAD_TIMEOUT:?}"
            );
            stream
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            match stream.read(&mut buf) {
                Ok(0) => panic!(
                    "GET {url}: connection closed before the response head:\n{}",
                    String::from_utf8_lossy(&raw)
                ),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("GET {url}: reading the response head: {e}"),
            }
        };
        let chunked = headers
            .get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let mut events = EventStream {
            stream,
            status,
            headers,
            chunked,
            raw: Vec::new(),
            body: Vec::new(),
            closed: false,
        };
        events.push(&raw[head_len..]);
        events
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// True once the server has ended the body or closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next event, skipping comments and keep-alives; `None` if none completes within
    /// `timeout` or the stream ends first.
    pub fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        loop {
            while let Some(event) = self.take_event() {
                if let Some(event) = event {
                    return Some(event);
                }
            }
            if self.closed {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.push(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(_) => self.closed = true,
            }
        }
    }

    /// Everything left in the body once the server closes it (bounded by `timeout`); for error
    /// responses, whose body is not an event stream.
    pub fn rest_of_body(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => self.closed = true,
                Ok(n) => self.push(&buf[..n]),
            }
            let expected = self
                .headers
                .get("content-length")
                .and_then(|l| l.trim().parse().ok());
            if expected.is_some_and(|len: usize| self.body.len() >= len) {
                break;
            }
        }
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Feeds received transport bytes through the chunked decoder (if any) into `body`.
    fn push(&mut self, bytes: &[u8]) {
        if !self.chunked {
            self.body.extend(bytes.iter().filter(|b| **b != b'\r'));
            return;
        }
        self.raw.extend_from_slice(bytes);
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let Ok(size) = usize::from_str_radix(size_text, 16) else {
                panic!("bad chunk size line {size_text:?} in event stream");
            };
            if size == 0 {
                self.closed = true;
                self.raw.clear();
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            let data: Vec<u8> = self.raw[start..start + size].to_vec();
            self.body.extend(data.iter().filter(|b| **b != b'\r'));
            self.raw.drain(..start + size + 2);
        }
    }

    /// Removes one complete event block from `body`: `Some(None)` for a block with nothing but
    /// comments, `None` when no complete block is buffered.
    fn take_event(&mut self) -> Option<Option<SseEvent>> {
        let end = self.body.windows(2).position(|w| w == b"\n\n")?;
        let block = String::from_utf8_lossy(&self.body[..end]).into_owned();
        self.body.drain(..end + 2);
        Some(parse_event(&block))
    }
}

/// One event from the lines of a block (without the blank line that ended it).
pub(crate) fn parse_event(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        id: None,
        event: None,
        data: String::new(),
    };
    let mut has_data = false;
    for line in block.split('\n') {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => event.id = Some(value.to_string()),
            "event" => event.event = Some(value.to_string()),
            "data" => {
                if has_data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    (has_data || event.event.is_some() || event.id.is_some()).then_some(event)
}
