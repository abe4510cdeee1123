//! TLS between proxies (rustls with ring; no OpenSSL anywhere): what a listener accepts and
//! what a client presents and expects, from App Mesh's TLS fields or from the mesh's own CA.
//!
//! The API, in the order a caller meets it:
//!
//! - [`MeshIdentity::start`] gets this proxy a certificate for a virtual node (or gateway)
//!   from the mesh CA (`spiffe://<mesh>/virtualNode/<name>`) and keeps it current in a task on
//!   the caller's tracker: a fresh key and certificate at two thirds of the validity, retries
//!   with bounded backoff, the trust bundle refreshed with every certificate. Handshakes read
//!   the certificate through a resolver, so a rotation changes what new handshakes present
//!   without touching listeners, pools or open connections; a certificate past its `notAfter`
//!   is never offered.
//! - [`ServerTls`] is what one inbound listener needs: [`ServerTls::from_listener`] from a
//!   listener's `tls` (file certificate, file trust, SAN list), [`ServerTls::mesh`] from the
//!   mesh identity, [`ServerTls::disabled`] for plain text. Build it when the configuration
//!   changes; it is cheap to clone.
//! - [`accept`] turns an accepted `TcpStream` into an [`Accepted`] (plain or TLS, with the
//!   peer's verified names), or a [`Refused`] whose [`Refusal`] is the metric's `reason`:
//!   STRICT refuses plain text, PERMISSIVE tells TLS from plain text by its first byte,
//!   DISABLED reads nothing. The caller emits [`TlsRefused`] for each refusal.
//! - [`ClientTls`] is what one backend connection needs: [`ClientTls::from_policy`] from a
//!   client policy's `tls`, [`ClientTls::mesh`] to reach another node of the mesh (present our
//!   certificate, expect the target's SPIFFE ID). [`ClientTls::applies_to`] says whether a
//!   port gets TLS, [`ClientTls::key`] tells pools apart, [`connect`] runs the handshake;
//!   the caller emits [`TlsConnectFailed`] when it fails.
//!
//! Wired, it reads like this (a sketch; names outside this module are the caller's):
//!
//! ```text
//! let identity = MeshIdentity::start(client, IdentityName { mesh, kind, name },
//!     Renewal::default(), telemetry.tls.clone(), &tracker, shutdown.child_token()).await?;
//! // per inbound listener, rebuilt with each configuration
//! let server = match &listener.tls {
//!     Some(tls) => ServerTls::from_listener(tls)?,
//!     None => ServerTls::mesh(&identity, TlsMode::Strict, None),
//! };
//! // in each connection's own task, never in the accept loop (a handshake may take 10 s)
//! match tls::accept(stream, &server).await {
//!     Ok(io) => http1::Builder::new().serve_connection(TokioIo::new(io), service).await,
//!     Err(refused) => TlsRefused { listener, peer, refused: &refused }.emit(&telemetry.tls),
//! }
//! // outbound: the backend's client policy, else backendDefaults, else the mesh target
//! let tls = ClientTls::from_policy(&policy_tls)?;  // or ClientTls::mesh(&identity, node)
//! let pool_key = (address, tls.applies_to(port).then(|| tls.key()));
//! let io = tls::connect(TcpStream::connect(address).await?, &tls, host).await?;
//! ```
//!
//! `sds` and `acm` sources are App Mesh fields aviary stores but cannot act on: they give
//! [`TlsError::Unsupported`] naming the field and the source. Session resumption is off on
//! both sides, so every new connection is verified against the certificates and trust in use
//! now (pools keep connections open, so full handshakes are rare).
//!
//! Wired in: an agent's inbound listeners accept with it (`inbound::accept`), outbound pools
//! connect with it (`pool::PoolTls`), and `mesh_tls::MeshTls` holds the identities.

mod accept;
mod events;
mod files;
mod identity;
mod verify;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use model::typed::{
    ClientPolicyTls, ClientTlsCertificate, ListenerTls, SanMatch, TlsCertificate, TlsMode, TlsTrust,
};
use rustls::crypto::CryptoProvider;
use tokio::net::TcpStream;

pub use accept::{Accepted, Refusal, Refused, accept};
pub use events::{InboundAccepted, TlsConnectFailed, TlsMetrics, TlsRefused};
pub use identity::{CertResolver, IdentityName, MeshIdentity, Renewal};
pub use verify::PeerIdentity;

use verify::{ClientVerifier, ServerVerifier, Trust};

/// A handshake (with the wait for its first byte) must finish within this, so
/// a client that connects and sends nothing holds a connection for a bounded time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What cannot be built from a TLS spec, or fetched from the mesh CA.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file of the spec is missing, unreadable or holds nothing usable.
    #[error("{field}: cannot use {path}: {reason}")]
    File {
        field: &'static str,
        path: String,
        reason: String,
    },
    /// An App Mesh source aviary stores but does not act on (`sds`, `acm`).
    #[error(
        "{field}: the {source_name} source is not supported by aviary (use file, or the mesh CA)"
    )]
    Unsupported {
        field: &'static str,
        source_name: &'static str,
    },
    /// rustls refused the certificate, key or trust (a key that does not match, no roots).
    #[error("{field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The mesh CA did not issue a certificate.
    #[error("certificate for {identity} from the mesh CA: {reason}")]
    Issue { identity: String, reason: String },
}

/// The process's one crypto provider for TLS between proxies. Passed explicitly to every
/// builder, so nothing depends on a process-wide default being installed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What one inbound listener accepts.
#[derive(Clone)]
pub struct ServerTls {
    mode: TlsMode,
    /// `None` when DISABLED.
    config: Option<Arc<rustls::ServerConfig>>,
    resolver: Option<Arc<CertResolver>>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mode", &self.mode)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Plain text only.
    pub fn disabled() -> ServerTls {
        ServerTls {
            mode: TlsMode::Disabled,
            config: None,
            resolver: None,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// A listener's `tls` as App Mesh defines it: its certificate from `file`, and with
    /// `validation`, a client certificate required that chains to the trust file and, with
    /// `subjectAlternativeNames`, names one of them. DISABLED reads no file, since none is
    /// used. Files are read now, so a mistake is reported when the configuration arrives.
    pub fn from_listener(tls: &ListenerTls) -> Result<ServerTls, TlsError> {
        if tls.mode == TlsMode::Disabled {
            return Ok(ServerTls::disabled());
        }
        let key = match &tls.certificate {
            TlsCertificate::File {
                certificate_chain,
                private_key,
            } => files::certified_key(
                certificate_chain,
                "tls.certificate.file.certificateChain",
                private_key,
                "tls.certificate.file.privateKey",
            )?,
            TlsCertificate::Sds { .. } => return Err(unsupported("tls.certificate", "sds")),
            TlsCertificate::Acm { .. } => return Err(unsupported("tls.certificate", "acm")),
        };
        let clients = match &tls.validation {
            None => None,
            Some(validation) => {
                let trust = file_trust(&validation.trust)?;
                Some((trust, validation.subject_alternative_names.clone()))
            }
        };
        Ok(ServerTls::build(
            tls.mode,
            Arc::new(CertResolver::fixed(key)),
            clients,
        ))
    }

    /// The mesh's own mutual TLS: present `identity`'s certificate and require a client
    /// certificate from the mesh CA (the current bundle), naming one of `allowed` if given.
    pub fn mesh(identity: &MeshIdentity, mode: TlsMode, allowed: Option<SanMatch>) -> ServerTls {
        if mode == TlsMode::Disabled {
            return ServerTls::disabled();
        }
        ServerTls::build(mode, identity.resolver(), Some((identity.trust(), allowed)))
    }

    fn build(
        mode: TlsMode,
        resolver: Arc<CertResolver>,
        clients: Option<(Arc<Trust>, Option<SanMatch>)>,
    ) -> ServerTls {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions");
        let builder = match clients {
            None => builder.with_no_client_auth(),
            Some((trust, allowed)) => builder.with_client_cert_verifier(Arc::new(
                ClientVerifier::new(trust, allowed.map(|s| s.exact), provider),
            )),
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        // No resumption: a resumed session skips certificate checks, and a peer's rotated or
        // revoked-by-expiry certificate must be looked at on every new connection.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        ServerTls {
            mode,
            config: Some(Arc::new(config)),
            resolver: Some(resolver),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    #[cfg(test)]
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    #[cfg(test)]
    /// Bounds the first byte's wait and the handshake together (default [`HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> ServerTls {
        self.handshake_timeout = timeout;
        self
    }
}

/// How one backend's connections are made: TLS config, the names expected of the server, and
/// where the policy applies.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    resolver: Option<Arc<CertResolver>>,
    enforce: bool,
    ports: Vec<u16>,
    key: TlsKey,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("enforce", &self.enforce)
            .field("ports", &self.ports)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Identifies what a [`ClientTls`] verifies and presents, for keying connection pools by
/// (address, TLS identity): equal for equal policies (also across configuration updates),
/// different for plain text and for every distinct policy or mesh target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TlsKey(u64);

impl ClientTls {
    /// A client policy's `tls`: the server must chain to the trust file and, with
    /// `subjectAlternativeNames`, name one of them (DNS or URI SAN; without a list only the
    /// chain is checked, as App Mesh does); the client certificate is presented if set.
    pub fn from_policy(policy: &ClientPolicyTls) -> Result<ClientTls, TlsError> {
        let trust = file_trust(&policy.validation.trust)?;
        let resolver = match &policy.certificate {
            None => None,
            Some(ClientTlsCertificate::File {
                certificate_chain,
                private_key,
            }) => Some(Arc::new(CertResolver::fixed(files::certified_key(
                certificate_chain,
                "tls.certificate.file.certificateChain",
                private_key,
                "tls.certificate.file.privateKey",
            )?))),
            Some(ClientTlsCertificate::Sds { .. }) => {
                return Err(unsupported("tls.certificate", "sds"));
            }
        };
        let allowed = policy
            .validation
            .subject_alternative_names
            .as_ref()
            .map(|s| s.exact.clone());
        Ok(ClientTls::build(
            trust,
            allowed,
            resolver,
            policy.enforced(),
            policy.ports.clone(),
            key_of(("policy", policy)),
        ))
    }

    /// To another node of the mesh: present `identity`'s certificate, and expect the server to
    /// be `spiffe://<mesh>/virtualNode/<target>` from the mesh CA. Applies to every port.
    pub fn mesh(identity: &MeshIdentity, target: &str) -> ClientTls {
        let expected = model::wire::spiffe_id(
            identity.mesh(),
            model::wire::IdentityKind::VirtualNode,
            target,
        );
        let key = key_of(("mesh", identity.id(), &expected));
        ClientTls::build(
            identity.trust(),
            Some(vec![expected]),
            Some(identity.resolver()),
            true,
            Vec::new(),
            key,
        )
    }

    fn build(
        trust: Arc<Trust>,
        allowed: Option<Vec<String>>,
        resolver: Option<Arc<CertResolver>>,
        enforce: bool,
        ports: Vec<u16>,
        key: TlsKey,
    ) -> ClientTls {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ServerVerifier::new(
                trust, allowed, provider,
            )));
        let mut config = match &resolver {
            None => builder.with_no_client_auth(),
            Some(resolver) => builder.with_client_cert_resolver(resolver.clone()),
        };
        // See `ServerTls::build`: every connection is checked afresh.
        config.resumption = rustls::client::Resumption::disabled();
        ClientTls {
            config: Arc::new(config),
            resolver,
            enforce,
            ports,
            key,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// Whether connections to `port` use TLS: the policy is enforced (App Mesh's default) and
    /// lists the port, or lists none.
    pub fn applies_to(&self, port: u16) -> bool {
        self.enforce && (self.ports.is_empty() || self.ports.contains(&port))
    }

    pub fn key(&self) -> TlsKey {
        self.key
    }

    #[cfg(test)]
    /// The ALPN protocols offered (none by default).
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> ClientTls {
        self.key = key_of(("alpn", self.key, &protocols));
        Arc::make_mut(&mut self.config).alpn_protocols = protocols;
        self
    }
}

/// The TLS handshake of an outbound connection, within the handshake timeout. `server_name`
/// is sent as SNI when it is a DNS name (an IP address sends none); the server is verified
/// by the policy's trust and names, not by it. With a certificate to present whose validity
/// ended (renewal failing too long), the handshake is not attempted.
pub async fn connect(
    stream: TcpStream,
    tls: &ClientTls,
    server_name: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Refused> {
    if let Some(resolver) = &tls.resolver
        && !resolver.has_current()
    {
        return Err(Refused::new(
            Refusal::NoLocalCertificate,
            format!(
                "{}: no valid certificate of our own to present",
                resolver.name()
            ),
        ));
    }
    // A name rustls cannot send (a SPIFFE ID, say) still connects: SNI is only a hint here.
    let name =
        rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap_or_else(|_| {
            rustls::pki_types::ServerName::try_from("mesh.invalid").expect("a valid DNS name")
        });
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    match tokio::time::timeout(tls.handshake_timeout, connector.connect(name, stream)).await {
        Err(_) => Err(Refused::new(
            Refusal::Timeout,
            "TLS handshake timed out".into(),
        )),
        Ok(Err(error)) => Err(Refused::from_io(&error)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

fn unsupported(field: &'static str, source_name: &'static str) -> TlsError {
    TlsError::Unsupported { field, source_name }
}

/// A validation context's trust, as listeners and client policies both name it.
fn file_trust(trust: &TlsTrust) -> Result<Arc<Trust>, TlsError> {
    const FIELD: &str = "tls.validation.trust";
    match trust {
        TlsTrust::File { certificate_chain } => {
            let field = "tls.validation.trust.file.certificateChain";
            Ok(Arc::new(Trust::new(
                files::roots(certificate_chain, field)?,
                field,
            )?))
        }
        TlsTrust::Sds { .. } => Err(unsupported(FIELD, "sds")),
        TlsTrust::Acm { .. } => Err(unsupported(FIELD, "acm")),
    }
}

fn key_of(what: impl Hash) -> TlsKey {
    // SipHash with fixed keys: the same policy gets the same key for the life of the process.
    let mut hasher = std::hash::DefaultHasher::new();
    what.hash(&mut hasher);
    TlsKey(hasher.finish())
}

#[cfg(test)]
mod tests;
