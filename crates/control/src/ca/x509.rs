//! The CA's X.509 work, without IO or clock: a mesh CA's key and certificate, callers' public
//! keys, and the leaf certificates signed for them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::pki_types::pem::PemObject;

/// A mesh CA's own validity. Long, because nothing rotates it yet: a rotation needs a trust
/// bundle of old and new CA while leaves move over, and the bundle is one CA today.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Leaves start this long before they are issued, so a peer whose clock runs a little behind
/// does not refuse a certificate as not yet valid.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("is not a PEM PUBLIC KEY (SubjectPublicKeyInfo): {0}")]
    Pem(String),
    #[error(
        "is not an ECDSA P-256, ECDSA P-384 or Ed25519 public key (RSA and other curves are not accepted)"
    )]
    Unsupported,
    #[error("holds an ECDSA point that is not on its curve")]
    NotOnCurve,
}

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot generate a CA: {0}")]
    Generate(rcgen::Error),
    #[error("the stored CA key cannot be loaded: {0}")]
    StoredKey(rcgen::Error),
    #[error("cannot sign a certificate: {0}")]
    Sign(rcgen::Error),
    #[error("{0} is not a time a certificate can hold")]
    Time(String),
}

/// A caller's public key, as it sent it: the key's bytes and its algorithm. The matching
/// private key is never seen here.
#[derive(Debug)]
pub struct LeafKey {
    alg: &'static SignatureAlgorithm,
    /// The SubjectPublicKeyInfo's BIT STRING contents: the point, or Ed25519's 32 bytes.
    key: Vec<u8>,
}

impl PublicKeyData for LeafKey {
    fn der_bytes(&self) -> &[u8] {
        &self.key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// Each accepted key type's SubjectPublicKeyInfo is one fixed DER header (algorithm and
/// curve OIDs, BIT STRING tag and length) followed by the key bytes, so matching the header
/// parses it exactly: no ASN.1 parser meets what callers send (rcgen's needs x509-parser).
const KEY_TYPES: [(&[u8], usize, &SignatureAlgorithm, Option<Curve>); 3] = [
    (
        &[
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ],
        65,
        &rcgen::PKCS_ECDSA_P256_SHA256,
        Some(Curve::P256),
    ),
    (
        &[
            0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
        ],
        97,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        Some(Curve::P384),
    ),
    (
        &[
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ],
        32,
        &rcgen::PKCS_ED25519,
        None,
    ),
];

#[derive(Debug, Clone, Copy)]
enum Curve {
    P256,
    P384,
}

/// Parses a PEM `PUBLIC KEY`. ECDSA points are checked to lie on their curve (by an ECDH with
/// a throwaway key, which is how ring validates a peer's point), so a certificate is never
/// issued for bytes that are no key at all.
pub fn parse_public_key(pem: &str) -> Result<LeafKey, KeyError> {
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| KeyError::Pem(e.to_string()))?;
    let der: &[u8] = der.as_ref();
    let (header, _, alg, curve) = KEY_TYPES
        .iter()
        .find(|(header, len, ..)| der.len() == header.len() + len && der.starts_with(header))
        .ok_or(KeyError::Unsupported)?;
    let key = der[header.len()..].to_vec();
    if let Some(curve) = curve {
        check_point(*curve, &key)?;
    }
    Ok(LeafKey { alg, key })
}

fn check_point(curve: Curve, point: &[u8]) -> Result<(), KeyError> {
    use ring::agreement;
    let alg = match curve {
        Curve::P256 => &agreement::ECDH_P256,
        Curve::P384 => &agreement::ECDH_P384,
    };
    let rng = ring::rand::SystemRandom::new();
    let mine =
        agreement::EphemeralPrivateKey::generate(alg, &rng).map_err(|_| KeyError::NotOnCurve)?;
    agreement::agree_ephemeral(mine, &agreement::UnparsedPublicKey::new(alg, point), |_| ())
        .map_err(|_| KeyError::NotOnCurve)
}

/// A new CA: its key (PKCS#8 PEM) and self-signed certificate (PEM), valid from `now` for
/// [`CA_VALIDITY`]. `common_name` must be kept: [`issuer`] rebuilds the CA from it.
pub fn generate_ca(
    common_name: &str,
    serial: [u8; 16],
    now: SystemTime,
) -> Result<(String, String), CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
    let mut params = ca_params(common_name);
    params.serial_number = Some(serial_number(serial));
    params.not_before = offset_time(now.checked_sub(CLOCK_SKEW).unwrap_or(now))?;
    params.not_after = offset_time(now + CA_VALIDITY)?;
    let certificate = params.self_signed(&key).map_err(CaError::Generate)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// What signs leaves: the stored key with the CA's name. A leaf's issuer name and authority
/// key identifier come from these, so they match the stored certificate without parsing it.
pub fn issuer(common_name: &str, key_pem: &str) -> Result<Issuer<'static, KeyPair>, CaError> {
    let key = KeyPair::from_pem(key_pem).map_err(CaError::StoredKey)?;
    Ok(Issuer::new(ca_params(common_name), key))
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "aviary");
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    // Leaves only: no intermediate CAs under a mesh CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A signed leaf and its validity in Unix seconds.
#[derive(Debug)]
pub struct Leaf {
    pub pem: String,
    pub not_before: u64,
    pub not_after: u64,
}

/// A leaf for `key` whose only name is the URI `identity`: valid from [`CLOCK_SKEW`] before
/// `now` to `now + ttl`, for TLS servers and clients both (mesh peers are each other's server
/// and client), and no CA.
pub fn sign_leaf(
    issuer: &Issuer<'_, KeyPair>,
    key: &LeafKey,
    identity: &str,
    serial: [u8; 16],
    now: SystemTime,
    ttl: Duration,
) -> Result<Leaf, CaError> {
    // Whole seconds: that is all X.509 holds, and the answer's numbers must be the cert's.
    let now = UNIX_EPOCH + Duration::from_secs(unix_seconds(now)?);
    let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
    let not_after = now + ttl;
    let mut params = CertificateParams::default();
    // An empty subject: the SPIFFE ID is the identity, and rcgen then marks the SAN critical,
    // as RFC 5280 asks.
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(
        identity
            .to_string()
            .try_into()
            .map_err(|e: rcgen::Error| CaError::Sign(e))?,
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial_number(serial));
    params.not_before = offset_time(not_before)?;
    params.not_after = offset_time(not_after)?;
    let certificate = params.signed_by(key, issuer).map_err(CaError::Sign)?;
    Ok(Leaf {
        pem: certificate.pem(),
        not_before: unix_seconds(not_before)?,
        not_after: unix_seconds(not_after)?,
    })
}

/// A positive serial of 127 random bits (RFC 5280: positive, at most 20 bytes, unpredictable).
fn serial_number(mut bytes: [u8; 16]) -> SerialNumber {
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn unix_seconds(time: SystemTime) -> Result<u64, CaError> {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| CaError::Time(format!("{time:?}")))
}

fn offset_time(time: SystemTime) -> Result<time::OffsetDateTime, CaError> {
    let seconds = i64::try_from(unix_seconds(time)?).map_err(|e| CaError::Time(e.to_string()))?;
    time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| CaError::Time(e.to_string()))
}
