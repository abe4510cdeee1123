//! A deliberately small blocking HTTP/1.1 client over `TcpStream`, able to send malformed requests.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use serde_json::Value;

/// How long a response may take; every read is bounded by it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`http_raw`] waits for more bytes once the server has gone quiet.
const RAW_QUIET: Duration = Duration::from_secs(10);

/// Response headers in arrival order; names compare case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` as the seeded admin ([`crate::TEST_ADMIN_TOKEN`])
/// and returns status, headers and body text. A body is sent as `application/json` with its
/// `Content-Length`, whatever it contains.
pub fn http(method: &str, url: &str, body: Option<&str>) -> (u16, Headers, String) {
    let auth = format!("Bearer {}", crate::TEST_ADMIN_TOKEN);
    http_as(method, url, body, &[("Authorization", &auth)])
}

/// Like [`http`], with exactly the extra `headers` given (no token unless one is among them;
/// a `Content-Type` among them replaces the JSON one).
pub fn http_as(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Headers, String) {
    let (host, path) = split_url(url);
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {host}\r\n"));
    }
    request.push_str("Connection: close\r\n");
    request.push_str("Accept: application/json\r\nUser-Agent: aviary-testkit\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default().as_bytes());

    let raw = exchange(host, &bytes, READ_TIMEOUT);
    match parse_response(&raw, true) {
        Some(Parsed {
            status,
            headers,
            body,
            ..
        }) => (status, headers, String::from_utf8_lossy(&body).into_owned()),
        None => panic!(
            "{method} {url}: incomplete HTTP response:\n{}",
            String::from_utf8_lossy(&raw)
        ),
    }
}

/// Like [`http`], but parses the body as JSON (panicking with the body if it is not).
pub fn http_json(method: &str, url: &str, body: Option<&str>) -> (u16, Headers, Value) {
    let (status, headers, text) = http(method, url, body);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {url} -> {status}: body is not JSON ({e}):\n{text}"));
    (status, headers, json)
}

/// Writes `bytes` as-is to `addr` (`127.0.0.1:PORT`) and returns whatever comes back, as text:
/// everything up to the end of the first complete response, the server closing, or a quiet spell.
pub fn http_raw(addr: &str, bytes: &[u8]) -> String {
    String::from_utf8_lossy(&exchange(addr, bytes, RAW_QUIET)).into_owned()
}

/// One keep-alive HTTP/1.1 connection, held open between requests, for tests that fill,
/// count or starve a server's connections.
pub struct KeepAlive {
    stream: TcpStream,
    host: String,
}

impl KeepAlive {
    /// Connects to `addr` (`127.0.0.1:PORT`); every read on it waits at most [`READ_TIMEOUT`].
    pub fn open(addr: &str) -> KeepAlive {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set read timeout");
        KeepAlive {
            stream,
            host: addr.to_string(),
        }
    }

    /// Sends `GET path` (keep-alive) and reads its response: status, headers and body, or
    /// `None` if the server closed or reset the connection before a whole response.
    pub fn get(&mut self, path: &str) -> Option<(u16, Headers, String)> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: aviary-testkit\r\n\r\n",
            self.host
        );
        self.stream.write_all(request.as_bytes()).ok()?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(parsed) = parse_response(&raw, false) {
                let body = String::from_utf8_lossy(&parsed.body).into_owned();
                return Some((parsed.status, parsed.headers, body));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    /// Waits (at most `limit`) for the server to close the connection; how long that took, or
    /// `None` if it stayed open. Whatever the server sends meanwhile is discarded.
    pub fn wait_closed(&mut self, limit: Duration) -> Option<Duration> {
        wait_closed(&mut self.stream, limit)
    }
}

/// Waits (at most `limit`) for the peer of `stream` to close or reset it; how long that took,
/// or `None` if it stayed open. Whatever arrives meanwhile is discarded.
pub fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // A reset is a close too.
            Err(_) => return Some(start.elapsed()),
        }
    }
}

/// Writes on one thread while reading on this one: a server may answer (413, 400) and close
/// before it has read a large body, and that answer must not be lost to a blocked or failed write.
fn exchange(addr: &str, bytes: &[u8], quiet: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(quiet))
        .expect("set read timeout");
    let mut writer = stream.try_clone().expect("clone stream");
    let bytes = bytes.to_vec();
    let written = thread::spawn(move || {
        let _ = writer.write_all(&bytes);
        let _ = writer.flush();
    });

    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if parse_response(&raw, false).is_some() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // A reset after the server answered, or a quiet server: return what arrived.
            Err(_) => break,
        }
    }
    // Unblocks the writer if the server stopped reading.
    let _ = stream.shutdown(Shutdown::Both);
    let _ = written.join();
    raw
}

/// `http://host:port/path?q` -> (`host:port`, `/path?q`).
fn split_url(url: &str) -> (&str, &str) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("testkit speaks plain http only, not {url}"));
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

pub(crate) struct Parsed {
    pub(crate) status: u16,
    pub(crate) headers: Headers,
    pub(crate) body: Vec<u8>,
}

/// One HTTP/1.1 response from the start of `raw`, or `None` while it is incomplete.
/// At end of stream (`eof`), a response without a length takes everything that arrived.
pub(crate) fn parse_response(raw: &[u8], eof: bool) -> Option<Parsed> {
    let (status, headers, head_len) = parse_head(raw)?;
    let rest = &raw[head_len..];
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?.0
    } else if let Some(len) = headers.get("content-length") {
        let len: usize = len.trim().parse().ok()?;
        rest.get(..len)?.to_vec()
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(Parsed {
        status,
        headers,
        body,
    })
}

/// Status, headers and the length of the head (through the blank line), once it is complete.
pub fn parse_head(raw: &[u8]) -> Option<(u16, Headers, usize)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((status, Headers(headers), end + 4))
}

/// Decodes a complete chunked body: (body, bytes consumed), or `None` if more is needed.
pub(crate) fn dechunk(mut raw: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = raw.len();
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            // Trailers, if any, end with a blank line.
            let trailers_end = if raw.starts_with(b"\r\n") {
                2
            } else {
                raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4
            };
            return Some((body, total - raw.len() + trailers_end));
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}
