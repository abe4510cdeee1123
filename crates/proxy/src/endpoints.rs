//! The endpoints of a virtual node: where they come from (an [`EndpointSource`]: DNS service
//! discovery, or endpoints registered in the control plane), which are healthy (passive outlier
//! detection), and which one serves the next request (power of two choices, least requests).
//!
//! A node's [`NodeEndpoints`] outlives configuration swaps while its source stays the same, so
//! outstanding-request counts and ejections carry over.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::uri::Authority;
use tokio::time::Instant;

use crate::error::ProxyError;
use crate::outlier::{OutlierConfig, OutlierState};
use crate::pool::{Http1Pools, Pool};
use crate::telemetry::Series;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How long DNS answers are trusted before they are looked up again.
pub const DNS_TTL: Duration = Duration::from_secs(5);
/// A lookup that takes longer than this counts as failed.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a node's endpoints come from.
pub trait EndpointSource: Send + Sync + fmt::Debug {
    /// Identifies the source: two sources with the same description find the same endpoints,
    /// so a new configuration keeps the old one's endpoint state.
    fn describe(&self) -> String;
    /// The current addresses.
    fn discover(&self) -> BoxFuture<io::Result<Vec<SocketAddr>>>;
    /// How long an answer stays good; `None` for ever (it changes only with the configuration).
    fn ttl(&self) -> Option<Duration>;
    /// Why this source can never find an endpoint, when that is known without asking.
    fn unavailable(&self) -> Option<&str> {
        None
    }
    /// The workload `addr` is a replica of, when this node counts per workload.
    fn workload(&self, _addr: SocketAddr) -> Option<EndpointWorkload> {
        None
    }
}

/// The workload an endpoint is a replica of, and the series its attempts count into too.
#[derive(Debug, Clone)]
pub struct EndpointWorkload {
    pub name: Arc<str>,
    pub series: Arc<Series>,
}

/// `spec.serviceDiscovery.dns.hostname` and the listener port, through the system resolver.
#[derive(Debug, Clone)]
pub struct DnsSource {
    pub hostname: String,
    pub port: u16,
}

impl EndpointSource for DnsSource {
    fn describe(&self) -> String {
        format!("dns {}:{}", self.hostname, self.port)
    }

    fn discover(&self) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        let target = (self.hostname.clone(), self.port);
        Box::pin(async move {
            let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(target).await?.collect();
            addrs.sort();
            addrs.dedup();
            Ok(addrs)
        })
    }

    fn ttl(&self) -> Option<Duration> {
        Some(DNS_TTL)
    }
}

/// Endpoints registered in the control plane (the snapshot's `endpoints`), healthy ones only.
#[derive(Debug, Clone)]
pub struct RegisteredSource {
    pub addrs: Vec<SocketAddr>,
    /// The workload of each address, sorted by address; empty unless the node's endpoints
    /// come from two or more workloads (then they are counted per workload as well).
    pub workloads: Vec<(SocketAddr, EndpointWorkload)>,
}

impl EndpointSource for RegisteredSource {
    fn describe(&self) -> String {
        let addrs: Vec<String> = (self.addrs.iter())
            .map(|addr| match self.workload(*addr) {
                Some(workload) => format!("{addr} ({})", workload.name),
                None => addr.to_string(),
            })
            .collect();
        format!("registered [{}]", addrs.join(", "))
    }

    fn workload(&self, addr: SocketAddr) -> Option<EndpointWorkload> {
        let at = self
            .workloads
            .binary_search_by_key(&addr, |(a, _)| *a)
            .ok()?;
        Some(self.workloads[at].1.clone())
    }

    fn discover(&self) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        let addrs = self.addrs.clone();
        Box::pin(async move { Ok(addrs) })
    }

    fn ttl(&self) -> Option<Duration> {
        None
    }
}

/// A node whose endpoints cannot be found (no listener, no supported service discovery).
#[derive(Debug, Clone)]
pub struct NoSource {
    pub reason: String,
}

impl EndpointSource for NoSource {
    fn describe(&self) -> String {
        format!("none ({})", self.reason)
    }

    fn discover(&self) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        let reason = self.reason.clone();
        Box::pin(async move { Err(io::Error::other(reason)) })
    }

    fn ttl(&self) -> Option<Duration> {
        None
    }

    fn unavailable(&self) -> Option<&str> {
        Some(&self.reason)
    }
}

/// One address of a node and what the balancer and outlier detection know about it.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `addr` as a URI authority, formatted once rather than for every request.
    authority: Option<Authority>,
    /// The keep-alive connections to `addr`, found on the first request.
    http1_pool: OnceLock<Arc<Pool>>,
    outstanding: AtomicUsize,
    outlier: OutlierState,
    pub workload: Option<EndpointWorkload>,
}

impl Endpoint {
    fn new(addr: SocketAddr, workload: Option<EndpointWorkload>) -> Endpoint {
        Endpoint {
            addr,
            authority: Authority::try_from(addr.to_string()).ok(),
            http1_pool: OnceLock::new(),
            outstanding: AtomicUsize::new(0),
            outlier: OutlierState::default(),
            workload,
        }
    }

    /// `None` for an address that is no valid authority (an IPv6 zone); requests to it fail.
    pub fn authority(&self) -> Option<&Authority> {
        self.authority.as_ref()
    }

    /// The pool of keep-alive HTTP/1.1 connections to `addr`.
    pub fn http1_pool(&self, pools: &Http1Pools) -> &Arc<Pool> {
        self.http1_pool.get_or_init(|| pools.pool(self.addr))
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }
}

/// A request in flight to an endpoint; counts toward its outstanding requests until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    fn start(endpoint: Arc<Endpoint>) -> InFlight {
        endpoint.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(endpoint)
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Resolved {
    endpoints: Vec<Arc<Endpoint>>,
    /// `None`: good until the configuration changes.
    expires: Option<Instant>,
    /// Why the last discovery failed, if it did (the endpoints are then the previous ones).
    error: Option<String>,
}

pub struct NodeEndpoints {
    node: String,
    source: Box<dyn EndpointSource>,
    resolved: ArcSwapOption<Resolved>,
    refreshing: AtomicBool,
    epoch: Instant,
}

impl fmt::Debug for NodeEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeEndpoints")
            .field("node", &self.node)
            .field("source", &self.source.describe())
            .finish()
    }
}

impl NodeEndpoints {
    pub fn new(node: impl Into<String>, source: Box<dyn EndpointSource>) -> NodeEndpoints {
        NodeEndpoints {
            node: node.into(),
            source,
            resolved: ArcSwapOption::empty(),
            refreshing: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    pub fn source(&self) -> String {
        self.source.describe()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The endpoints, discovering them first when never done; when the answer is stale, the
    /// one caller that claims the refresh waits for it and everyone else uses the stale answer.
    async fn current(&self) -> Arc<Resolved> {
        let Some(resolved) = self.resolved.load_full() else {
            return self.refresh().await;
        };
        let fresh = resolved.expires.is_none_or(|at| Instant::now() < at);
        if fresh || self.refreshing.swap(true, Ordering::AcqRel) {
            return resolved;
        }
        // Cleared on drop too: a caller that goes away mid-lookup must not block refreshes.
        struct Claim<'a>(&'a AtomicBool);
        impl Drop for Claim<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _claim = Claim(&self.refreshing);
        self.refresh().await
    }

    async fn refresh(&self) -> Arc<Resolved> {
        let previous = self.resolved.load_full();
        let found = match tokio::time::timeout(DISCOVERY_TIMEOUT, self.source.discover()).await {
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {DISCOVERY_TIMEOUT:?}")),
        };
        let expires = self.source.ttl().map(|ttl| Instant::now() + ttl);
        let resolved = match found {
            Ok(addrs) => {
                let old = previous.as_ref().map(|p| &p.endpoints[..]).unwrap_or(&[]);
                let endpoints = addrs
                    .into_iter()
                    .map(|addr| match old.iter().find(|e| e.addr == addr) {
                        Some(kept) => kept.clone(),
                        None => Arc::new(Endpoint::new(addr, self.source.workload(addr))),
                    })
                    .collect();
                Resolved {
                    endpoints,
                    expires,
                    error: None,
                }
            }
            Err(error) => {
                tracing::warn!(node = %self.node, source = %self.source.describe(), %error,
                    "endpoint discovery failed");
                Resolved {
                    endpoints: previous.map(|p| p.endpoints.clone()).unwrap_or_default(),
                    expires,
                    error: Some(error),
                }
            }
        };
        let resolved = Arc::new(resolved);
        self.resolved.store(Some(resolved.clone()));
        resolved
    }

    /// Picks an endpoint for one attempt: the less loaded of two random healthy endpoints,
    /// other than `avoid` (the one that just failed) when another is healthy.
    pub async fn pick(&self, avoid: Option<SocketAddr>) -> Result<InFlight, ProxyError> {
        let resolved = self.current().await;
        let now = self.now_ms();
        let healthy = |e: &Endpoint| !e.outlier.is_ejected(now);
        let chosen = choose(&resolved.endpoints, |e| healthy(e) && Some(e.addr) != avoid)
            .or_else(|| choose(&resolved.endpoints, healthy));
        match chosen {
            Some(endpoint) => Ok(InFlight::start(endpoint.clone())),
            None => Err(ProxyError::NoHealthyEndpoint {
                node: self.node.clone(),
                reason: match (&resolved.error, resolved.endpoints.len()) {
                    (_, 0) if self.source.unavailable().is_some() => {
                        self.source.unavailable().unwrap_or_default().to_string()
                    }
                    (Some(error), 0) => format!("{}: {error}", self.source.describe()),
                    (None, 0) => format!("{} found no endpoint", self.source.describe()),
                    (_, n) => format!("all {n} endpoints are ejected by outlier detection"),
                },
            }),
        }
    }

    /// Records one attempt's outcome for outlier detection; returns the ejection it caused.
    pub fn record(
        &self,
        endpoint: &Endpoint,
        server_error: bool,
        outlier: Option<&OutlierConfig>,
    ) -> Option<Duration> {
        let now = self.now_ms();
        if !server_error {
            endpoint.outlier.record_success(now);
            return None;
        }
        let config = outlier?;
        if !endpoint.outlier.record_server_error(config, now) {
            return None;
        }
        let resolved = self.resolved.load_full()?;
        let ejected = resolved
            .endpoints
            .iter()
            .filter(|e| e.outlier.is_ejected(now))
            .count();
        config
            .may_eject(ejected, resolved.endpoints.len())
            .then(|| endpoint.outlier.eject(config, now))
    }
}

/// Power of two choices: two distinct random candidates among the usable ones, the one with
/// fewer outstanding requests wins.
fn choose(
    endpoints: &[Arc<Endpoint>],
    usable: impl Fn(&Endpoint) -> bool,
) -> Option<&Arc<Endpoint>> {
    let n = endpoints.iter().filter(|e| usable(e)).count();
    let nth = |k: usize| endpoints.iter().filter(|e| usable(e)).nth(k);
    match n {
        0 => None,
        1 => nth(0),
        _ => {
            let a = fastrand::usize(0..n);
            let mut b = fastrand::usize(0..n - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (nth(a)?, nth(b)?);
            Some(if b.outstanding() < a.outstanding() {
                b
            } else {
                a
            })
        }
    }
}

#[cfg(test)]
mod tests;
