//! testkit: blocking, std-only helpers for black-box tests of aviary. It runs the real `aviary`
//! binary as a child process on an ephemeral 127.0.0.1 port with its own data directory
//! ([`ControlProcess`]), drives it with the real AWS CLI ([`aws`], [`aws_json`]) and with a tiny
//! HTTP/1.1 client that can send what no well-behaved client would ([`http`], [`http_raw`]), and
//! reads its server-sent-event watch stream ([`EventStream`]). It owns nothing of aviary's logic
//! and must never link aviary's crates: tests built on it see only what a user or a proxy sees.
//! Every wait in here is bounded, and every failure panics with what the child or server said.

mod aws;
mod control;
mod http;
mod process;
mod sse;

pub use aws::{AwsOutput, aws, aws_command, aws_json, aws_ok, run};
pub use control::ControlProcess;
pub use http::{Headers, KeepAlive, http, http_json, http_raw, wait_closed};
pub use process::interrupt;
pub use sse::{EventStream, SseEvent};
pub use tempfile::TempDir;

/// A fresh temporary directory, removed when the returned guard drops.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("aviary-test-")
        .tempdir()
        .expect("create a temporary directory")
}

#[cfg(test)]
mod tests;
