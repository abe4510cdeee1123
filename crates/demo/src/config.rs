//! What one demo service instance is: which service and version, where it listens, its faults
//! and, for order, how it reaches its backends.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Url;

use crate::faults::Faults;

/// Where a service listens unless told otherwise (the reference demo's port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Order's backends, addressed by virtual service name: only the mesh proxy can resolve them.
pub const DEFAULT_PRODUCT_URL: &str = "http://product.demomesh.local:8080/";
pub const DEFAULT_CUSTOMER_URL: &str = "http://customer.demomesh.local:8080/";
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    Product,
    Customer,
    Order,
}

impl Service {
    /// The name in answers: `{"service":"Product",...}`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Product => "Product",
            Service::Customer => "Customer",
            Service::Order => "Order",
        }
    }

    /// The name on the command line.
    pub fn id(self) -> &'static str {
        match self {
            Service::Product => "product",
            Service::Customer => "customer",
            Service::Order => "order",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub service: Service,
    pub version: String,
    pub listen: SocketAddr,
    pub faults: Faults,
    /// `/health` answers 503: for tests of health checking.
    pub unhealthy: bool,
    /// Used by order only.
    pub backends: Backends,
}

impl Config {
    /// A healthy service on `DEFAULT_LISTEN` with no faults and the default backends.
    pub fn new(service: Service, version: impl Into<String>) -> Config {
        Config {
            service,
            version: version.into(),
            listen: DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is an address"),
            faults: Faults::default(),
            unhealthy: false,
            backends: Backends::default(),
        }
    }
}

/// How order reaches product and customer.
#[derive(Clone, Debug)]
pub struct Backends {
    pub product: Url,
    pub customer: Url,
    /// Bounds each backend call, connect to last body byte.
    pub timeout: Duration,
    /// The HTTP forward proxy (the mesh proxy) for `http://` backend URLs. Explicit here so the
    /// library never reads the process environment; the binary fills it from `HTTP_PROXY`.
    pub http_proxy: Option<Url>,
    /// Hosts to reach directly despite `http_proxy`, in `NO_PROXY` syntax.
    pub no_proxy: Option<String>,
}

impl Default for Backends {
    fn default() -> Backends {
        Backends {
            product: DEFAULT_PRODUCT_URL.parse().expect("a URL"),
            customer: DEFAULT_CUSTOMER_URL.parse().expect("a URL"),
            timeout: DEFAULT_BACKEND_TIMEOUT,
            http_proxy: None,
            no_proxy: None,
        }
    }
}
