//! TLS's observable events and their metrics: refused connections, certificate renewals. The
//! metric names live here; `Telemetry::new` registers them with the proxy's other metrics.

use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Refused;

const REFUSED: &str = "aviary_proxy_tls_refused";
const ACCEPTED: &str = "aviary_proxy_inbound_connections";
const CONNECT_FAILURES: &str = "aviary_proxy_tls_connect_failures";
const RENEWALS: &str = "aviary_proxy_certificate_renewals";
const NOT_AFTER: &str = "aviary_proxy_certificate_not_after_seconds";

/// TLS's counters; clones count into the same series.
#[derive(Debug, Clone, Default)]
pub struct TlsMetrics {
    refused: Family<[(&'static str, String); 2], Counter>,
    accepted: Family<[(&'static str, &'static str); 1], Counter>,
    connect_failures: Family<[(&'static str, &'static str); 1], Counter>,
    renewals: Family<[(&'static str, String); 2], Counter>,
    not_after: Family<[(&'static str, String); 1], Gauge<i64, AtomicI64>>,
}

impl TlsMetrics {
    /// New metrics, exposed through `registry`.
    pub fn register(registry: &mut Registry) -> TlsMetrics {
        let metrics = TlsMetrics::default();
        registry.register(
            REFUSED,
            "Inbound connections refused by a listener's TLS, by listener and reason",
            metrics.refused.clone(),
        );
        registry.register(
            ACCEPTED,
            "Connections an agent's inbound listeners accepted, by transport (tls, plain)",
            metrics.accepted.clone(),
        );
        registry.register(
            CONNECT_FAILURES,
            "Outbound TLS handshakes that failed or were refused, by reason",
            metrics.connect_failures.clone(),
        );
        registry.register(
            RENEWALS,
            "Certificates asked of the mesh CA, by identity and result (ok, failed)",
            metrics.renewals.clone(),
        );
        registry.register(
            NOT_AFTER,
            "When the certificate in use for an identity expires, in Unix seconds",
            metrics.not_after.clone(),
        );
        metrics
    }
}

/// An inbound listener accepted a connection, over TLS or in plain text (PERMISSIVE and
/// DISABLED listeners take both or the latter). Counted only: one per connection.
pub struct InboundAccepted {
    pub tls: bool,
}

impl InboundAccepted {
    pub fn emit(&self, metrics: &TlsMetrics) {
        let transport = if self.tls { "tls" } else { "plain" };
        metrics
            .accepted
            .get_or_create(&[("transport", transport)])
            .inc();
    }
}

/// A listener refused a connection over TLS. Logged at debug: a scan or a misconfigured peer
/// makes one per attempt, and the counter tells the story.
pub struct TlsRefused<'a> {
    /// The listener, as the caller labels it ("inbound:8080", say).
    pub listener: &'a str,
    pub peer: SocketAddr,
    pub refused: &'a Refused,
}

impl TlsRefused<'_> {
    pub fn emit(&self, metrics: &TlsMetrics) {
        tracing::debug!(
            listener = self.listener,
            peer = %self.peer,
            reason = self.refused.reason.as_str(),
            detail = %self.refused.detail,
            "TLS connection refused"
        );
        metrics
            .refused
            .get_or_create(&[
                ("listener", self.listener.to_string()),
                ("reason", self.refused.reason.as_str().to_string()),
            ])
            .inc();
    }
}

/// An outbound TLS handshake failed or was refused (a server of another CA, not the node
/// expected, no certificate of our own). Logged at warn: the request it was for fails.
pub struct TlsConnectFailed<'a> {
    pub address: SocketAddr,
    pub refused: &'a Refused,
}

impl TlsConnectFailed<'_> {
    pub fn emit(&self, metrics: &TlsMetrics) {
        tracing::warn!(
            address = %self.address,
            reason = self.refused.reason.as_str(),
            detail = %self.refused.detail,
            "TLS connection to an upstream failed"
        );
        metrics
            .connect_failures
            .get_or_create(&[("reason", self.refused.reason.as_str())])
            .inc();
    }
}

/// The mesh CA issued a certificate now in use (the first one too).
pub struct CertificateRenewed<'a> {
    pub identity: &'a str,
    /// Unix seconds.
    pub not_after: u64,
    pub renew_in: Duration,
}

impl CertificateRenewed<'_> {
    pub fn emit(&self, metrics: &TlsMetrics) {
        tracing::info!(
            identity = self.identity,
            not_after = self.not_after,
            renew_in_s = self.renew_in.as_secs(),
            "certificate from the mesh CA in use"
        );
        metrics
            .renewals
            .get_or_create(&[
                ("identity", self.identity.to_string()),
                ("result", "ok".to_string()),
            ])
            .inc();
        metrics
            .not_after
            .get_or_create(&[("identity", self.identity.to_string())])
            .set(i64::try_from(self.not_after).unwrap_or(i64::MAX));
    }
}

/// A certificate could not be had from the mesh CA; the one in use stays while it is valid.
/// A warning while it is, an error once it is not: then handshakes fail closed.
pub struct CertificateRenewalFailed<'a> {
    pub identity: &'a str,
    pub error: &'a str,
    pub retry_in: Duration,
    /// The certificate in use has expired (or there never was one).
    pub expired: bool,
}

impl CertificateRenewalFailed<'_> {
    pub fn emit(&self, metrics: &TlsMetrics) {
        if self.expired {
            tracing::error!(
                identity = self.identity,
                error = self.error,
                retry_in_ms = self.retry_in.as_millis() as u64,
                "no valid certificate: TLS with this identity is refused until the mesh CA answers"
            );
        } else {
            tracing::warn!(
                identity = self.identity,
                error = self.error,
                retry_in_ms = self.retry_in.as_millis() as u64,
                "certificate renewal failed; the current one stays in use"
            );
        }
        metrics
            .renewals
            .get_or_create(&[
                ("identity", self.identity.to_string()),
                ("result", "failed".to_string()),
            ])
            .inc();
    }
}

#[cfg(test)]
mod tests;
