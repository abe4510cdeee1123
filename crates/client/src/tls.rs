//! TLS for the client: which roots to trust (one CA bundle, or the system's), and naming the certificate problem when a handshake fails.

use std::error::Error as StdError;
use std::path::Path;

use crate::ClientError;

/// Makes ring rustls's process-wide crypto provider. reqwest is built with `rustls-no-provider`
/// (its default provider, aws-lc-rs, needs a long C build), and then it panics when it builds
/// any client without an installed provider, plain-http clients included. So every crate that
/// builds a reqwest client calls this (or its own copy) first. Cheap and idempotent.
pub fn install_crypto_provider() {
    // An error only says a provider is installed already, by us or by the embedding program.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificates of a PEM bundle file; at least one, else the file is surely a mistake.
pub(crate) fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let ca_error = |reason: String| ClientError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(chain(&e)))?;
    if certs.is_empty() {
        return Err(ca_error("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// What was wrong with the TLS session, when a failed request failed for that: the server's
/// certificate is not trusted, not for this host, expired, or the server speaks no TLS.
pub(crate) fn tls_problem(error: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        next = cause(error);
    }
    None
}

/// What caused `error`. rustls's error comes up wrapped in an io::Error (twice, by hyper-rustls),
/// and an io::Error's `source()` skips the error it wraps, where `get_ref()` does not.
fn cause<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => Some(inner),
        None => error.source(),
    }
}

fn describe(error: &rustls::Error) -> String {
    use rustls::CertificateError as Cert;
    let hint = match error {
        rustls::Error::InvalidCertificate(Cert::UnknownIssuer) => {
            " (it is not signed by a CA this client trusts)"
        }
        rustls::Error::InvalidCertificate(Cert::NotValidForName)
        | rustls::Error::InvalidCertificate(Cert::NotValidForNameContext { .. }) => {
            " (it does not name the host in the URL)"
        }
        rustls::Error::InvalidCertificate(Cert::Expired)
        | rustls::Error::InvalidCertificate(Cert::ExpiredContext { .. }) => " (it has expired)",
        rustls::Error::InvalidMessage(_) => " (does the server speak TLS on this port?)",
        _ => "",
    };
    format!("{error}{hint}")
}

/// An error and its causes on one line, for reasons that end up in a single message.
pub(crate) fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(&format!(": {cause}"));
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
