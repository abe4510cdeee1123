//! Peer certificate checks: the chain to a trust that may change (the mesh bundle), then the
//! peer's names against the allowed SANs, on both sides of a handshake.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};

use super::TlsError;

/// The CAs a peer must chain to. Fixed for a trust file; replaced in place for the mesh
/// bundle, so verifiers built once see every refresh.
#[derive(Debug)]
pub struct Trust {
    current: ArcSwap<Anchors>,
    provider: Arc<CryptoProvider>,
}

/// One version of the trust, with rustls's client verifier built over it once, not per
/// handshake.
#[derive(Debug)]
struct Anchors {
    roots: Arc<RootCertStore>,
    clients: Arc<dyn ClientCertVerifier>,
}

impl Trust {
    /// `field` names where the roots came from, for the error if rustls cannot use them.
    pub fn new(roots: RootCertStore, field: &'static str) -> Result<Trust, TlsError> {
        let provider = super::provider();
        let anchors =
            Anchors::new(roots, &provider).map_err(|reason| TlsError::Config { field, reason })?;
        Ok(Trust {
            current: ArcSwap::from_pointee(anchors),
            provider,
        })
    }

    /// New handshakes verify against `roots` from now on.
    pub fn set(&self, roots: RootCertStore) -> Result<(), String> {
        self.current
            .store(Arc::new(Anchors::new(roots, &self.provider)?));
        Ok(())
    }
}

impl Anchors {
    fn new(roots: RootCertStore, provider: &Arc<CryptoProvider>) -> Result<Anchors, String> {
        let roots = Arc::new(roots);
        let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .map_err(|e| e.to_string())?;
        Ok(Anchors { roots, clients })
    }
}

/// The names a verified peer certificate carries: URI SANs (SPIFFE IDs) and DNS SANs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerIdentity {
    pub uris: Vec<String>,
    pub dns_names: Vec<String>,
}

impl PeerIdentity {
    /// The names of a certificate's leaf; `None` if it does not parse (never for one a
    /// verifier accepted).
    pub fn of(leaf: &CertificateDer<'_>) -> Option<PeerIdentity> {
        let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
        Some(PeerIdentity {
            uris: cert.valid_uri_names().map(str::to_string).collect(),
            dns_names: cert.valid_dns_names().map(str::to_string).collect(),
        })
    }

    #[cfg(test)]
    /// The first `spiffe://` URI SAN: a mesh identity.
    pub fn spiffe_id(&self) -> Option<&str> {
        self.uris
            .iter()
            .map(String::as_str)
            .find(|uri| uri.starts_with("spiffe://"))
    }

    /// App Mesh's exact SAN match: one of the peer's names is in `allowed`.
    pub fn matches(&self, allowed: &[String]) -> bool {
        self.uris
            .iter()
            .chain(&self.dns_names)
            .any(|name| allowed.contains(name))
    }
}

/// The SAN check both verifiers share; refused as `NotValidForName`, which `Refusal` reads as
/// `san_not_allowed` (rustls's own chain checks never return it: names are ours alone here).
fn check_names(leaf: &CertificateDer<'_>, allowed: Option<&[String]>) -> Result<(), rustls::Error> {
    let Some(allowed) = allowed else {
        return Ok(());
    };
    match PeerIdentity::of(leaf) {
        Some(peer) if peer.matches(allowed) => Ok(()),
        _ => Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        )),
    }
}

/// What our clients check of a server: rustls's webpki chain check (serverAuth) against the
/// trust, then the allowed names. rustls's own verifier matches the name the client dialled
/// as a DNS name or IP, never a URI SAN, so SPIFFE servers need this one.
#[derive(Debug)]
pub struct ServerVerifier {
    trust: Arc<Trust>,
    allowed: Option<Vec<String>>,
    provider: Arc<CryptoProvider>,
}

impl ServerVerifier {
    pub fn new(
        trust: Arc<Trust>,
        allowed: Option<Vec<String>>,
        provider: Arc<CryptoProvider>,
    ) -> ServerVerifier {
        ServerVerifier {
            trust,
            allowed,
            provider,
        }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.trust.current.load().roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        check_names(end_entity, self.allowed.as_deref())?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signatures(&self.provider).tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signatures(&self.provider).tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        signatures(&self.provider).schemes()
    }
}

/// What our listeners check of a client: rustls's `WebPkiClientVerifier` over the current
/// trust (a client certificate is mandatory), then the allowed names.
#[derive(Debug)]
pub struct ClientVerifier {
    trust: Arc<Trust>,
    allowed: Option<Vec<String>>,
    provider: Arc<CryptoProvider>,
}

impl ClientVerifier {
    pub fn new(
        trust: Arc<Trust>,
        allowed: Option<Vec<String>>,
        provider: Arc<CryptoProvider>,
    ) -> ClientVerifier {
        ClientVerifier {
            trust,
            allowed,
            provider,
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints would borrow from a trust that can be replaced meanwhile; our clients
        // present their one certificate whatever the hints say.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let anchors = self.trust.current.load();
        anchors
            .clients
            .verify_client_cert(end_entity, intermediates, now)?;
        check_names(end_entity, self.allowed.as_deref())?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signatures(&self.provider).tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signatures(&self.provider).tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        signatures(&self.provider).schemes()
    }
}

/// The handshake-signature checks both verifiers leave to the crypto provider, as rustls's
/// own verifiers do.
struct Signatures<'a>(&'a rustls::crypto::WebPkiSupportedAlgorithms);

fn signatures(provider: &rustls::crypto::CryptoProvider) -> Signatures<'_> {
    Signatures(&provider.signature_verification_algorithms)
}

impl Signatures<'_> {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.0)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.0)
    }

    fn schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
