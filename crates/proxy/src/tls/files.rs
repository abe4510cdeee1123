//! PEM certificates, keys and trust from the files a TLS spec names (each error naming the
//! file and the spec field) and from the mesh CA's answers.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// A certificate chain (leaf first) and its private key, checked to belong together.
pub fn certified_key(
    chain_path: &str,
    chain_field: &'static str,
    key_path: &str,
    key_field: &'static str,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certificates(chain_path, chain_field)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::File {
        field: key_field,
        path: key_path.to_string(),
        reason: e.to_string(),
    })?;
    key_pair(chain, key).map_err(|reason| TlsError::File {
        field: key_field,
        path: key_path.to_string(),
        reason,
    })
}

/// A signing key for `key` with its chain; the error says why they cannot be used together.
pub fn key_pair(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, String> {
    let provider = super::provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| e.to_string())?;
    let certified = CertifiedKey::new(chain, signer);
    // A key that is not the certificate's would fail every handshake, far from its cause.
    certified
        .keys_match()
        .map_err(|e| format!("the key is not the certificate's: {e}"))?;
    Ok(Arc::new(certified))
}

/// The CA certificates of a trust file.
pub fn roots(path: &str, field: &'static str) -> Result<RootCertStore, TlsError> {
    let error = |reason: String| TlsError::File {
        field,
        path: path.to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for ca in certificates(path, field)? {
        roots.add(ca).map_err(|e| error(e.to_string()))?;
    }
    Ok(roots)
}

/// The CA certificates of a PEM text (the mesh CA's bundle).
pub fn roots_from_pem(pem: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for ca in pem_certificates(pem)? {
        roots.add(ca).map_err(|e| e.to_string())?;
    }
    Ok(roots)
}

/// Every certificate of a PEM text; at least one.
pub fn pem_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(chain)
}

fn certificates(path: &str, field: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::File {
        field,
        path: path.to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if chain.is_empty() {
        return Err(error("no PEM certificate in it".into()));
    }
    Ok(chain)
}

#[cfg(test)]
mod tests;
