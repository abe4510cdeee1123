//! CA files that cannot be used are named with their problem, and certificate errors get a hint.

use rustls::CertificateError;

use super::{describe, read_ca};
use crate::{Client, ClientError, ClientOptions};

/// `read_ca` of a file holding `pem` (or of no file, for `None`) fails with `reason`.
#[track_caller]
fn check_unusable(pem: Option<&str>, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    if let Some(pem) = pem {
        std::fs::write(&path, pem).unwrap();
    }
    match read_ca(&path) {
        Err(ClientError::Ca {
            path: named,
            reason: got,
        }) => {
            assert_eq!(named, path.display().to_string());
            assert!(got.contains(reason), "{got:?} does not say {reason:?}");
        }
        Ok(certs) => panic!("{pem:?} gave {} certificates", certs.len()),
        Err(other) => panic!("{pem:?}: {other}"),
    }
}

#[test]
fn unusable_ca_files_are_named_with_their_problem() {
    check_unusable(None, "No such file");
    check_unusable(Some(""), "no PEM certificate");
    check_unusable(Some("just text\n"), "no PEM certificate");
    check_unusable(
        Some("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n"),
        "",
    );
}

#[test]
fn a_client_with_an_unusable_ca_is_not_built_and_a_plain_one_is() {
    let options = ClientOptions {
        ca: Some("/nonexistent/aviary/ca.pem".into()),
    };
    assert!(matches!(
        Client::with_options("https://127.0.0.1:1", &options),
        Err(ClientError::Ca { .. })
    ));
    // Installs the crypto provider itself: reqwest would panic without one.
    let client = Client::new("http://127.0.0.1:1/");
    assert_eq!(client.base_url(), "http://127.0.0.1:1");
}

#[test]
fn certificate_problems_come_with_a_hint() {
    let cases = [
        (
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "invalid peer certificate: UnknownIssuer (it is not signed by a CA this client trusts)",
        ),
        (
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            "(it does not name the host in the URL)",
        ),
        (
            rustls::Error::InvalidCertificate(CertificateError::Expired),
            "(it has expired)",
        ),
        (
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            "(does the server speak TLS on this port?)",
        ),
    ];
    for (error, hint) in cases {
        let text = describe(&error);
        assert!(text.contains(hint), "{text:?} lacks {hint:?}");
    }
}
