//! testkit: blocking, std-only helpers for black-box tests of aviary. It runs the real `aviary`
//! binary as a child process on an ephemeral 127.0.0.1 port with its own data directory
//! ([`ControlProcess`]), drives it with the real AWS CLI ([`aws`], [`aws_json`]) and with a tiny
//! HTTP/1.1 client that can send what no well-behaved client would ([`http`], [`http_raw`]),
//! reads its server-sent-event watch stream ([`EventStream`]), and runs real etcd clusters for
//! the store's etcd backend ([`etcd::EtcdCluster`]). It owns nothing of aviary's logic
//! and must never link aviary's crates: tests built on it see only what a user or a proxy sees.
//! Every wait in here is bounded, and every failure panics with what the child or server said.

mod aws;
mod control;
pub mod etcd;
mod http;
mod process;
mod sse;

/// The admin token every [`ControlProcess`] is seeded with (its `admin.token`), and that
/// [`http`] sends. A fixed test secret: these control planes live on loopback for one test.
pub const TEST_ADMIN_TOKEN: &str =
    "aviary_7e57000000000000_00000000000000000000000000000000000000000000000000000000a11ce5e1";
/// The SigV4 keys every [`ControlProcess`] is seeded with (its `credentials`), which
/// [`aws_command`] signs with.
pub const TEST_ACCESS_KEY: &str = "AKIAAVIARYTESTKEY000";
pub const TEST_SECRET_KEY: &str = "aviary-testkit-secret-key-not-a-real-one0";

pub use aws::{AwsOutput, aws, aws_command, aws_json, aws_ok, run};
pub use control::{ControlProcess, Memory};
pub use http::{Headers, KeepAlive, http, http_as, http_json, http_raw, parse_head, wait_closed};
pub use process::interrupt;
pub use sse::{EventStream, SseEvent};
pub use tempfile::TempDir;

/// Writes the test secrets into a data directory (`aviary control --data-dir`, `aviary up
/// --data-dir`) unless it already has its own, so that [`TEST_ADMIN_TOKEN`] and
/// [`TEST_ACCESS_KEY`] work against what starts there.
pub fn seed_secrets(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("create the data directory");
    let token = dir.join("admin.token");
    if !token.exists() {
        std::fs::write(&token, format!("{TEST_ADMIN_TOKEN}\n")).expect("seed admin.token");
    }
    let credentials = dir.join("credentials");
    if !credentials.exists() {
        let text = format!(
            "[default]\naws_access_key_id = {TEST_ACCESS_KEY}\naws_secret_access_key = {TEST_SECRET_KEY}\n"
        );
        std::fs::write(&credentials, text).expect("seed credentials");
    }
}

/// A fresh temporary directory, removed when the returned guard drops.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("aviary-test-")
        .tempdir()
        .expect("create a temporary directory")
}

#[cfg(test)]
mod tests;
