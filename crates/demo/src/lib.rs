//! The demo services of the aviary walkthrough: `product`, `customer` and `order`, small HTTP
//! servers that answer with their name and version, so every response shows which version of
//! each service served it.
//!
//! It owns the services' HTTP surface (`GET /`, `GET /health`), order's parallel calls to product
//! and customer through the mesh (by virtual service name, via an HTTP forward proxy: the
//! `HTTP_PROXY` convention), and fault injection for canary tests (error rate, latency,
//! fail-after, unhealthy). It must never know aviary's internals: it depends on no aviary crate
//! and reaches the mesh only the way any application would.

mod args;
mod config;
mod entry;
mod error;
mod faults;
mod order;
mod server;

use std::io::Write as _;

use tokio_util::sync::CancellationToken;

pub use args::Args;
pub use config::{
    Backends, Config, DEFAULT_CUSTOMER_URL, DEFAULT_LISTEN, DEFAULT_PRODUCT_URL, Service,
};
pub use entry::main;
pub use error::DemoError;
pub use faults::{ErrorRate, Faults, parse_duration};
pub use order::install_crypto_provider;
pub use server::Server;

/// Binds, announces `aviary-demo <service> <version> listening on http://ADDR` on stdout (what a
/// supervisor or a person waits for), and serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DemoError> {
    let server = Server::bind(config).await?;
    // Nobody reading stdout is no reason to stop serving, hence `writeln!` over `println!`.
    let _ = writeln!(
        std::io::stdout(),
        "aviary-demo {} {} listening on http://{}",
        server.service().id(),
        server.version(),
        server.local_addr()
    );
    server.serve(shutdown).await
}
