//! Unit tests of the parsers and clients, against in-process servers on 127.0.0.1:0.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use crate::control::listening_url;
use crate::http::{dechunk, parse_response};
use crate::sse::parse_event;
use crate::{AwsOutput, EventStream, SseEvent, http, http_raw};

/// Serves one connection: reads the request head, then runs `answer` on the socket.
fn serve_once(answer: impl FnOnce(&mut TcpStream, String) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        answer(&mut conn, String::from_utf8_lossy(&head).into_owned());
    });
    addr
}

#[test]
fn finds_the_url_in_a_listening_line() {
    let cases = [
        (
            "aviary control listening on http://127.0.0.1:4321",
            Some("http://127.0.0.1:4321"),
        ),
        (
            "2026-01-01T00:00:00Z  INFO aviary control listening on http://127.0.0.1:80/ ok",
            Some("http://127.0.0.1:80"),
        ),
        (
            "aviary control listening on https://127.0.0.1:4321",
            Some("https://127.0.0.1:4321"),
        ),
        ("aviary control listening on ftp://127.0.0.1:80", None),
        ("aviary control listening on 127.0.0.1:80", None),
        ("starting", None),
    ];
    for (line, want) in cases {
        assert_eq!(listening_url(line).as_deref(), want, "{line}");
    }
}

#[test]
fn parses_responses_only_once_complete() {
    let full = b"HTTP/1.1 404 Not Found\r\nx-amzn-ErrorType: NotFoundException\r\ncontent-length: 5\r\n\r\nhello";
    let parsed = parse_response(full, false).unwrap();
    assert_eq!(parsed.status, 404);
    assert_eq!(
        parsed.headers.get("X-AMZN-ERRORTYPE"),
        Some("NotFoundException")
    );
    assert_eq!(parsed.body, b"hello");
    assert!(parse_response(&full[..full.len() - 1], false).is_none());

    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    assert_eq!(parse_response(chunked, false).unwrap().body, b"abcde");
    assert!(parse_response(&chunked[..chunked.len() - 2], false).is_none());
    assert_eq!(
        dechunk(b"1;ext=1\r\nx\r\n0\r\n\r\n"),
        Some((b"x".to_vec(), 17))
    );

    let close_delimited = b"HTTP/1.0 200 OK\r\n\r\nall of it";
    assert!(parse_response(close_delimited, false).is_none());
    assert_eq!(
        parse_response(close_delimited, true).unwrap().body,
        b"all of it"
    );
}

#[test]
fn reads_service_errors_from_aws_cli_stderr() {
    let output = |stderr: &str| AwsOutput {
        status: std::process::Command::new("false").status().unwrap(),
        stdout: String::new(),
        stderr: stderr.to_string(),
    };
    let plain = output(
        "\nAn error occurred (NotFoundException) when calling the DescribeMesh operation: mesh x: not found\n",
    );
    assert_eq!(plain.error_code(), Some("NotFoundException"));
    assert_eq!(plain.error_message(), Some("mesh x: not found"));
    let retried = output(
        "An error occurred (ResourceInUseException) when calling the DeleteMesh operation (reached max retries: 0): in use\n",
    );
    assert_eq!(retried.error_code(), Some("ResourceInUseException"));
    assert_eq!(retried.error_message(), Some("in use"));
    let local = output("Parameter validation failed:\nInvalid value for parameter weight\n");
    assert_eq!((local.error_code(), local.error_message()), (None, None));
}

#[test]
fn parses_event_blocks() {
    let event = parse_event("id: 7\nevent: relist\ndata: {\"a\":\ndata: 1}").unwrap();
    assert_eq!(
        event,
        SseEvent {
            id: Some("7".into()),
            event: Some("relist".into()),
            data: "{\"a\":\n1}".into()
        }
    );
    assert_eq!(event.json()["a"], 1);
    assert_eq!(parse_event(": keep-alive"), None);
    assert_eq!(parse_event("data:x").unwrap().data, "x");
}

#[test]
fn http_sends_method_path_and_body() {
    let addr = serve_once(|conn, head| {
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).unwrap();
        let reply = format!(
            "{} {}",
            head.lines().next().unwrap(),
            String::from_utf8_lossy(&body)
        );
        write!(
            conn,
            "HTTP/1.1 201 Created\r\nX-Test: yes\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
    });
    let (status, headers, body) = http("PATCH", &format!("http://{addr}/a/b?c=d"), Some("{}"));
    assert_eq!(status, 201);
    assert_eq!(headers.get("x-test"), Some("yes"));
    assert_eq!(body, "PATCH /a/b?c=d HTTP/1.1 {}");
}

#[test]
fn http_keeps_an_early_answer_to_an_oversized_body() {
    let addr = serve_once(|conn, _| {
        conn.write_all(
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbig",
        )
        .unwrap();
        thread::sleep(Duration::from_millis(100));
    });
    let huge = "x".repeat(8 << 20);
    let (status, _, body) = http("PUT", &format!("http://{addr}/"), Some(&huge));
    assert_eq!((status, body.as_str()), (413, "big"));
}

#[test]
fn http_raw_returns_what_the_server_said() {
    let addr = serve_once(|conn, head| {
        assert!(head.starts_with("BREW / HTCPCP/1.0\r\n"), "{head}");
        conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    });
    let reply = http_raw(&addr, b"BREW / HTCPCP/1.0\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
}

#[test]
fn event_stream_reads_events_split_across_chunks() {
    let addr = serve_once(|conn, _| {
        conn.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .unwrap();
        for piece in [
            ": hi\n\n",
            "id: 1\r\nda",
            "ta: {\"revision\":1}\n\nid: 2\ndata: {}\n",
            "\n",
        ] {
            write!(conn, "{:x}\r\n{piece}\r\n", piece.len()).unwrap();
            conn.flush().unwrap();
            thread::sleep(Duration::from_millis(20));
        }
        conn.write_all(b"0\r\n\r\n").unwrap();
    });
    let mut events = EventStream::open(&format!("http://{addr}/watch"));
    assert_eq!(events.status(), 200);
    assert_eq!(
        events.headers().get("content-type"),
        Some("text/event-stream")
    );
    let first = events.next_event(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (first.id.as_deref(), first.json()["revision"].as_i64()),
        (Some("1"), Some(1))
    );
    assert_eq!(
        events
            .next_event(Duration::from_secs(5))
            .unwrap()
            .id
            .as_deref(),
        Some("2")
    );
    assert_eq!(events.next_event(Duration::from_secs(5)), None);
    assert!(events.is_closed());
}

#[test]
fn event_stream_times_out_without_events() {
    let addr = serve_once(|conn, _| {
        conn.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap();
        thread::sleep(Duration::from_secs(2));
    });
    let mut events = EventStream::open(&format!("http://{addr}/"));
    assert_eq!(events.next_event(Duration::from_millis(200)), None);
    assert!(!events.is_closed());
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The workspace's one tidy check (STYLE.md, "Every file explains itself"): every source and
/// test file of every crate opens with a `//!` line, and every `lib.rs` with a paragraph.
#[test]
fn every_file_of_every_crate_explains_itself() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    let mut libs = 0;
    for krate in std::fs::read_dir(&crates).unwrap() {
        let krate = krate.unwrap().path();
        rust_files(&krate.join("src"), &mut files);
        rust_files(&krate.join("tests"), &mut files);
        if let Ok(lib) = std::fs::read_to_string(krate.join("src/lib.rs")) {
            libs += 1;
            let paragraph = lib.lines().take_while(|l| l.starts_with("//!")).count();
            assert!(
                paragraph >= 3,
                "{}: lib.rs opens with {paragraph} doc lines, not a paragraph (what it is, owns, must never know)",
                krate.display()
            );
        }
    }
    assert!(
        libs >= 10,
        "found only {libs} crates under {}",
        crates.display()
    );
    assert!(files.len() > 100, "found only {} files", files.len());
    let undocumented: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a `//!` first line: {undocumented:?}"
    );
}
