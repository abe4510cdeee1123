//! Health checks of one replica as its node's first listener says: the policy, one probe, and
//! the threshold counting that turns probe results into healthy / unhealthy.

use std::time::Duration;

use crate::desired::NodeHealth;

/// Without a `healthCheck`, a replica is healthy once its port accepts a connection.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET path`; any 2xx passes. Redirects are not followed (a 3xx fails).
    Http { path: String },
    /// A TCP connection is accepted.
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub probe: Probe,
    /// A fixed port to probe; `None` probes the replica's own `PORT`.
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

impl Policy {
    /// The policy for a replica of `node`. `interval_override` replaces the spec's interval and
    /// caps its timeout (App Mesh's minimum interval, 5 s, is too slow for tests).
    ///
    /// `healthCheck.port` is honoured only when it differs from the listener's port: every
    /// replica listens on its own `PORT`, which stands in for the listener port here.
    /// `http2` checks are made over HTTP/1.1 and `grpc` checks as TCP connects.
    pub fn new(node: Option<&NodeHealth>, interval_override: Option<Duration>) -> Policy {
        let node = node.cloned().unwrap_or_default();
        let mut policy = match &node.check {
            None => Policy {
                probe: Probe::Tcp,
                port: None,
                interval: DEFAULT_INTERVAL,
                timeout: DEFAULT_INTERVAL,
                healthy_threshold: 1,
                unhealthy_threshold: 1,
            },
            Some(check) => Policy {
                probe: match check.protocol.as_str() {
                    "http" | "http2" => Probe::Http {
                        path: check.path.clone().unwrap_or_else(|| "/".into()),
                    },
                    _ => Probe::Tcp,
                },
                port: check.port.filter(|port| Some(*port) != node.listener_port),
                interval: Duration::from_millis(check.interval_millis),
                timeout: Duration::from_millis(check.timeout_millis),
                healthy_threshold: check.healthy_threshold.max(1),
                unhealthy_threshold: check.unhealthy_threshold.max(1),
            },
        };
        if let Some(interval) = interval_override {
            policy.interval = interval;
            policy.timeout = policy.timeout.min(interval);
        }
        policy
    }

    /// Probes `127.0.0.1` once, within the policy's timeout; `Err` says why it failed.
    pub async fn check(&self, http: &reqwest::Client, replica_port: u16) -> Result<(), String> {
        let port = self.port.unwrap_or(replica_port);
        let attempt = async {
            match &self.probe {
                Probe::Tcp => tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("connect to port {port}: {e}")),
                Probe::Http { path } => {
                    let url = format!("http://127.0.0.1:{port}{path}");
                    match http.get(&url).send().await {
                        Ok(response) if response.status().is_success() => Ok(()),
                        Ok(response) => Err(format!("GET {url}: HTTP {}", response.status())),
                        Err(e) => Err(format!("GET {url}: {e}")),
                    }
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

/// The health of a replica as far as its checks tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not yet passed `healthy_threshold` checks in a row, nor failed `unhealthy_threshold`.
    Starting,
    Healthy,
    Unhealthy,
}

/// Counts consecutive passes and failures against the thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    health: Health,
    passes: u32,
    failures: u32,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            health: Health::Starting,
            passes: 0,
            failures: 0,
        }
    }
}

impl Tracker {
    pub fn health(&self) -> Health {
        self.health
    }

    /// Records one probe; returns the new health when it changed.
    pub fn record(&mut self, passed: bool, policy: &Policy) -> Option<Health> {
        if passed {
            self.passes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.passes = 0;
        }
        let next = if self.passes >= policy.healthy_threshold {
            Health::Healthy
        } else if self.failures >= policy.unhealthy_threshold {
            Health::Unhealthy
        } else {
            self.health
        };
        (next != self.health).then(|| {
            self.health = next;
            next
        })
    }
}

#[cfg(test)]
mod tests;
