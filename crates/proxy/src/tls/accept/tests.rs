//! rustls's errors as refusal reasons, and the reasons' metric labels.

use rustls::{AlertDescription, CertificateError, Error};

use super::Refusal;

#[test]
fn rustls_errors_map_to_the_most_precise_reason() {
    fn check(error: Error, expected: Refusal) {
        assert_eq!(Refusal::of(&error), expected, "{error:?}");
    }
    check(
        Error::InvalidCertificate(CertificateError::UnknownIssuer),
        Refusal::UnknownCa,
    );
    check(
        Error::InvalidCertificate(CertificateError::NotValidForName),
        Refusal::SanNotAllowed,
    );
    check(
        Error::InvalidCertificate(CertificateError::Expired),
        Refusal::BadCertificate,
    );
    check(
        Error::InvalidCertificate(CertificateError::BadSignature),
        Refusal::BadCertificate,
    );
    check(
        Error::InvalidCertificate(CertificateError::InvalidPurpose),
        Refusal::BadCertificate,
    );
    check(Error::NoCertificatesPresented, Refusal::NoClientCertificate);
    check(
        Error::General("no server certificate chain resolved".into()),
        Refusal::NoLocalCertificate,
    );
    check(
        Error::AlertReceived(AlertDescription::UnknownCA),
        Refusal::HandshakeFailed,
    );
    check(Error::DecryptError, Refusal::HandshakeFailed);
}

#[test]
fn an_io_error_without_rustls_inside_is_a_failed_handshake() {
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    assert_eq!(
        super::Refused::from_io(&reset).reason,
        Refusal::HandshakeFailed
    );
    let wrapped = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        Error::InvalidCertificate(CertificateError::UnknownIssuer),
    );
    assert_eq!(super::Refused::from_io(&wrapped).reason, Refusal::UnknownCa);
}

#[test]
fn reasons_have_stable_labels() {
    let all = [
        (Refusal::PlainTextInStrict, "plain_text_in_strict"),
        (Refusal::HandshakeFailed, "handshake_failed"),
        (Refusal::UnknownCa, "unknown_ca"),
        (Refusal::BadCertificate, "bad_certificate"),
        (Refusal::SanNotAllowed, "san_not_allowed"),
        (Refusal::NoClientCertificate, "no_client_certificate"),
        (Refusal::NoLocalCertificate, "no_local_certificate"),
        (Refusal::Timeout, "timeout"),
        (Refusal::Closed, "closed"),
    ];
    for (reason, label) in all {
        assert_eq!(reason.as_str(), label);
    }
}
