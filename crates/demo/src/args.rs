//! The command line and environment of `aviary-demo`, turned into a `Config`. Flags win over
//! environment variables; bad values are clap errors that name the flag (exit code 2).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use clap::error::ErrorKind;
use reqwest::Url;

use crate::config::{
    Backends, Config, DEFAULT_CUSTOMER_URL, DEFAULT_LISTEN, DEFAULT_PRODUCT_URL, Service,
};
use crate::faults::{ErrorRate, Faults, parse_duration};

#[cfg(test)]
mod tests;

/// One demo service of the aviary walkthrough: answers `GET /` with its name and version (order
/// also calls product and customer through the mesh) and `GET /health`.
#[derive(Debug, Parser)]
#[command(name = "aviary-demo")]
pub struct Args {
    /// Which service to be.
    #[arg(value_enum)]
    pub service: Service,

    /// The version this instance reports.
    #[arg(long, env = "VERSION", default_value = "1.0")]
    pub version: String,

    /// Address to listen on [default: 127.0.0.1:$PORT, else 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Port to listen on at 127.0.0.1, when --listen is not given.
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,

    /// Fraction of requests to `/` answered 500, spread evenly (0.25 fails every 4th).
    #[arg(long, env = "ERROR_RATE", value_name = "0..1", default_value = "0")]
    pub error_rate: ErrorRate,

    /// Delay added to every answer of `/`, like 50ms or 2s.
    #[arg(long, env = "LATENCY", value_parser = parse_duration, default_value = "0")]
    pub latency: Duration,

    /// Answer 500 to every request to `/` after this many.
    #[arg(long, env = "FAIL_AFTER", value_name = "N")]
    pub fail_after: Option<u64>,

    /// Make `/health` answer 503.
    #[arg(long)]
    pub unhealthy: bool,

    /// Order only: where to reach product.
    #[arg(long, env = "PRODUCT_URL", default_value = DEFAULT_PRODUCT_URL)]
    pub product_url: Url,

    /// Order only: where to reach customer.
    #[arg(long, env = "CUSTOMER_URL", default_value = DEFAULT_CUSTOMER_URL)]
    pub customer_url: Url,

    /// Order only: bound on each backend call.
    #[arg(long, env = "BACKEND_TIMEOUT", value_parser = parse_duration, default_value = "2s")]
    pub backend_timeout: Duration,

    /// Order only: HTTP forward proxy for the backend calls, the mesh proxy
    /// [env: HTTP_PROXY, else http_proxy].
    #[arg(long, value_name = "URL")]
    pub http_proxy: Option<Url>,

    /// Order only: hosts to call directly despite the proxy [env: NO_PROXY, else no_proxy].
    #[arg(long, value_name = "HOSTS")]
    pub no_proxy: Option<String>,
}

impl Args {
    /// The config these arguments describe, the proxy settings filled in from `HTTP_PROXY` /
    /// `http_proxy` and `NO_PROXY` / `no_proxy` when not given as flags.
    pub fn into_config(self) -> Result<Config, clap::Error> {
        self.into_config_with_env(|name| std::env::var(name).ok())
    }

    fn into_config_with_env(
        self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, clap::Error> {
        let from_env = |upper: &str, lower: &str| {
            [upper, lower].into_iter().find_map(|name| {
                env(name)
                    .filter(|v| !v.is_empty())
                    .map(|v| (name.to_owned(), v))
            })
        };
        let http_proxy = match self.http_proxy {
            Some(url) => Some(url),
            None => match from_env("HTTP_PROXY", "http_proxy") {
                None => None,
                Some((name, value)) => Some(value.parse::<Url>().map_err(|e| {
                    clap::Error::raw(
                        ErrorKind::InvalidValue,
                        format!("invalid value '{value}' for environment variable {name} (--http-proxy): {e}\n"),
                    )
                })?),
            },
        };
        let no_proxy = self
            .no_proxy
            .or_else(|| from_env("NO_PROXY", "no_proxy").map(|(_, v)| v));
        let listen = match (self.listen, self.port) {
            (Some(listen), _) => listen,
            (None, Some(port)) => SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            (None, None) => DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is an address"),
        };
        Ok(Config {
            service: self.service,
            version: self.version,
            listen,
            faults: Faults {
                error_rate: self.error_rate,
                latency: self.latency,
                fail_after: self.fail_after,
            },
            unhealthy: self.unhealthy,
            backends: Backends {
                product: self.product_url,
                customer: self.customer_url,
                timeout: self.backend_timeout,
                http_proxy,
                no_proxy,
            },
        })
    }
}
