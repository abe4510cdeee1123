//! `DemoError`: what can stop a demo service from starting or serving.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("cannot build the HTTP client for the backend calls: {0}")]
    Client(#[source] reqwest::Error),
}
