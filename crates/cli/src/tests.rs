//! How errors read: one line, each cause once, and the hint an unreachable control plane needs.

use super::error_line;

/// An error whose message shows its source too, as a thiserror `{source}` does.
#[derive(Debug)]
struct Shows(std::io::Error);

impl std::fmt::Display for Shows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read x: {}", self.0)
    }
}

impl std::error::Error for Shows {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn each_cause_is_printed_once() {
    let io = std::io::Error::other("disk on fire");
    let error = anyhow::Error::new(Shows(io)).context("loading mesh.yaml");
    assert_eq!(
        error_line(&error),
        "loading mesh.yaml: cannot read x: disk on fire"
    );
    let plain = anyhow::anyhow!("a").context("b").context("c");
    assert_eq!(error_line(&plain), "c: b: a");
}

#[tokio::test]
async fn a_refused_connection_says_what_to_start() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let refused = client::Client::new(&url).snapshot("m").await.unwrap_err();
    let error = anyhow::Error::from(refused).context("mesh.yaml#1");
    assert_eq!(
        error_line(&error),
        format!(
            "mesh.yaml#1: cannot reach the control plane at {url}: connection refused \
             — is `aviary demo` running? (--control URL or AVIARY_CONTROL says where)"
        )
    );
}
