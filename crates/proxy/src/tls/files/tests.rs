//! PEM texts that hold nothing usable are refused with a reason.

use super::{pem_certificates, roots_from_pem};

#[test]
fn pem_texts_without_a_certificate_are_refused() {
    fn check(pem: &str, expected: Result<usize, &str>) {
        let got = pem_certificates(pem).map(|c| c.len());
        assert_eq!(
            got.as_ref().map_err(String::as_str),
            expected.as_ref().map_err(|e| *e),
            "{pem}"
        );
    }
    let ca = crate::tls::tests::Ca::new();
    check(&ca.pem, Ok(1));
    check(
        &format!("{}{}", ca.pem, crate::tls::tests::Ca::new().pem),
        Ok(2),
    );
    check("", Err("no PEM certificate in it"));
    check(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        Err("no PEM certificate in it"),
    );
    assert!(roots_from_pem(&ca.pem).is_ok());
    assert!(roots_from_pem("garbage").is_err());
}
