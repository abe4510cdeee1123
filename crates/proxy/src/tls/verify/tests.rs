//! App Mesh's exact SAN match over a peer's URI and DNS names.

use super::PeerIdentity;

#[test]
fn a_peer_matches_when_one_of_its_names_is_listed() {
    fn check(uris: &[&str], dns: &[&str], allowed: &[&str], expected: bool) {
        let peer = PeerIdentity {
            uris: uris.iter().map(|s| s.to_string()).collect(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
        };
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        assert_eq!(peer.matches(&allowed), expected, "{peer:?} {allowed:?}");
    }
    let node = "spiffe://m/virtualNode/a";
    check(&[node], &[], &[node], true);
    check(&[], &["a.local"], &["b.local", "a.local"], true);
    check(&[node], &["a.local"], &["a.local"], true);
    check(&[node], &[], &["spiffe://m/virtualNode/b"], false);
    // Exact, not a prefix or a case-insensitive match.
    check(&[node], &[], &["spiffe://m/virtualNode/"], false);
    check(&[], &["a.local"], &["A.LOCAL"], false);
    check(&[], &[], &[node], false);
    check(&[node], &[], &[], false);
}

#[test]
fn the_spiffe_id_is_the_first_spiffe_uri() {
    let peer = PeerIdentity {
        uris: vec!["https://x".into(), "spiffe://m/virtualNode/a".into()],
        dns_names: vec![],
    };
    assert_eq!(peer.spiffe_id(), Some("spiffe://m/virtualNode/a"));
    assert_eq!(PeerIdentity::default().spiffe_id(), None);
}
