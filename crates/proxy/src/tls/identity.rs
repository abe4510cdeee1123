//! The mesh identity: a key pair made here, a certificate for it from the mesh CA, kept
//! current in the background and read by every handshake through a swappable resolver.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use model::wire::{IdentityKind, IssuedCertificate};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::events::{CertificateRenewalFailed, CertificateRenewed, TlsMetrics};
use super::verify::Trust;
use super::{TlsError, files};

/// Whose certificate: a virtual node (or gateway) of a mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityName {
    pub mesh: String,
    pub kind: IdentityKind,
    pub name: String,
}

/// When certificates are renewed and how failures are retried.
#[derive(Debug, Clone)]
pub struct Renewal {
    /// Renew this soon after each certificate if that is earlier than its `renew_at()` (two
    /// thirds into its validity); the CA's shortest TTL is a minute, so tests rotate with it.
    pub every: Option<Duration>,
    /// The first retry after a failure; doubled each time up to `retry_max`. Also the least
    /// time between two certificates, so a CA whose clock is ahead cannot make a busy loop.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// One request to the CA, at most.
    pub request_timeout: Duration,
}

impl Default for Renewal {
    fn default() -> Renewal {
        Renewal {
            every: None,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl Renewal {
    /// How long the certificate just issued is used before the next is asked for.
    fn after(&self, issued: &IssuedCertificate) -> Duration {
        let natural = issued
            .renew_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        self.every
            .map_or(natural, |every| every.min(natural))
            .max(self.retry_min)
    }
}

/// The certificate handshakes present (as server and as client), replaced in place: a swap
/// changes what the next handshake presents, never an open connection. A certificate past
/// its `notAfter` is not offered, so a listener or client with nothing valid fails closed.
#[derive(Debug)]
pub struct CertResolver {
    /// What the certificate is, for logs: an identity, or "file".
    name: String,
    current: ArcSwapOption<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    /// `None` for files: their validity is the peer's to check.
    not_after: Option<SystemTime>,
}

impl CertResolver {
    /// Nothing to present until [`CertResolver::set`].
    pub fn empty(name: &str) -> CertResolver {
        CertResolver {
            name: name.to_string(),
            current: ArcSwapOption::empty(),
        }
    }

    /// A certificate that never changes (a spec's file).
    pub fn fixed(key: Arc<CertifiedKey>) -> CertResolver {
        let resolver = CertResolver::empty("file certificate");
        resolver.set(key, None);
        resolver
    }

    /// New handshakes present `key` from now on, until `not_after` (wall clock, as
    /// certificates are).
    pub fn set(&self, key: Arc<CertifiedKey>, not_after: Option<SystemTime>) {
        self.current
            .store(Some(Arc::new(Current { key, not_after })));
    }

    /// The certificate to present now, if one is valid.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        let current = self.current.load_full()?;
        match current.not_after {
            Some(not_after) if SystemTime::now() >= not_after => None,
            _ => Some(current.key.clone()),
        }
    }

    pub fn has_current(&self) -> bool {
        self.current().is_some()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl rustls::server::ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

impl rustls::client::ResolvesClientCert for CertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        self.has_current()
    }
}

/// This proxy's identity in the mesh: the certificate it presents and the bundle it trusts,
/// both kept current by a renewal task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MeshIdentity {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: IdentityName,
    /// `spiffe://<mesh>/<kind>/<name>`.
    id: String,
    resolver: Arc<CertResolver>,
    trust: Arc<Trust>,
}

impl MeshIdentity {
    /// Gets the first certificate (an error if the CA does not give one: the caller decides
    /// whether to retry or serve without), then spawns on `tracker` the task that renews it
    /// until `shutdown`.
    pub async fn start(
        client: client::Client,
        name: IdentityName,
        renewal: Renewal,
        metrics: TlsMetrics,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<MeshIdentity, TlsError> {
        let id = model::wire::spiffe_id(&name.mesh, name.kind, &name.name);
        let (issued, key, roots) =
            issue(&client, &name, &id, &renewal)
                .await
                .map_err(|reason| TlsError::Issue {
                    identity: id.clone(),
                    reason,
                })?;
        let trust = Trust::new(roots, "mesh CA trust bundle")?;
        let identity = MeshIdentity {
            inner: Arc::new(Inner {
                resolver: Arc::new(CertResolver::empty(&id)),
                trust: Arc::new(trust),
                name,
                id,
            }),
        };
        identity.inner.resolver.set(key, Some(expiry(&issued)));
        let renew_in = renewal.after(&issued);
        CertificateRenewed {
            identity: identity.id(),
            not_after: issued.not_after,
            renew_in,
        }
        .emit(&metrics);
        tracker.spawn(
            identity
                .clone()
                .renew(client, renew_in, renewal, metrics, shutdown),
        );
        Ok(identity)
    }

    /// An identity over a resolver and trust made elsewhere (tests: certificates from rcgen).
    #[cfg(test)]
    pub(crate) fn from_parts(
        name: IdentityName,
        resolver: Arc<CertResolver>,
        trust: Arc<Trust>,
    ) -> MeshIdentity {
        let id = model::wire::spiffe_id(&name.mesh, name.kind, &name.name);
        MeshIdentity {
            inner: Arc::new(Inner {
                name,
                id,
                resolver,
                trust,
            }),
        }
    }

    /// `spiffe://<mesh>/<kind>/<name>`.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub fn mesh(&self) -> &str {
        &self.inner.name.mesh
    }

    /// What this identity presents; a handshake reads it each time.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.inner.resolver.clone()
    }

    pub(super) fn trust(&self) -> Arc<Trust> {
        self.inner.trust.clone()
    }

    /// Renews after `wait`, then whenever the certificate in use says, until `shutdown`.
    async fn renew(
        self,
        client: client::Client,
        mut wait: Duration,
        renewal: Renewal,
        metrics: TlsMetrics,
        shutdown: CancellationToken,
    ) {
        let mut backoff = renewal.retry_min;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = issue(&client, &self.inner.name, &self.inner.id, &renewal) => result,
            };
            let installed = result.and_then(|(issued, key, roots)| {
                // Trust first: a peer holding a certificate of a new CA is accepted before we
                // present one of our own from it.
                self.inner.trust.set(roots)?;
                self.inner.resolver.set(key, Some(expiry(&issued)));
                Ok(issued)
            });
            match installed {
                Ok(issued) => {
                    wait = renewal.after(&issued);
                    backoff = renewal.retry_min;
                    CertificateRenewed {
                        identity: self.id(),
                        not_after: issued.not_after,
                        renew_in: wait,
                    }
                    .emit(&metrics);
                }
                Err(error) => {
                    wait = backoff;
                    backoff = (backoff * 2).min(renewal.retry_max);
                    CertificateRenewalFailed {
                        identity: self.id(),
                        error: &error,
                        retry_in: wait,
                        expired: !self.inner.resolver.has_current(),
                    }
                    .emit(&metrics);
                }
            }
        }
    }
}

/// A fresh key pair and the CA's certificate for it, with the trust bundle, within the
/// request timeout. A new key each time, so a key that leaked stops being useful with its
/// certificate.
async fn issue(
    client: &client::Client,
    name: &IdentityName,
    id: &str,
    renewal: &Renewal,
) -> Result<(IssuedCertificate, Arc<CertifiedKey>, rustls::RootCertStore), String> {
    let pair = rcgen::KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
    let public_key = pair.public_key_pem();
    let request = client.issue_certificate(&name.mesh, name.kind, &name.name, &public_key);
    let issued = tokio::time::timeout(renewal.request_timeout, request)
        .await
        .map_err(|_| format!("no answer within {:?}", renewal.request_timeout))?
        .map_err(|e| e.to_string())?;
    if issued.identity != id {
        return Err(format!("the CA issued {} instead", issued.identity));
    }
    let chain =
        files::pem_certificates(&issued.certificate).map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pair.serialize_der()));
    let key = files::key_pair(chain, key)?;
    let roots =
        files::roots_from_pem(&issued.trust_bundle).map_err(|e| format!("trust bundle: {e}"))?;
    Ok((issued, key, roots))
}

fn expiry(issued: &IssuedCertificate) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(issued.not_after)
}

#[cfg(test)]
mod tests;
