//! Unit tests of the child environment and port leases.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use super::*;

fn lookup(env: &[(OsString, OsString)], key: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.to_string_lossy().into_owned())
}

#[test]
fn the_child_gets_port_proxy_and_extra_path_first() {
    let workload_env = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
    let env = child_env(
        &workload_env,
        4321,
        Some("http://127.0.0.1:15001"),
        &[PathBuf::from("/opt/aviary/bin")],
        Some("/usr/bin:/bin".into()),
    );
    assert_eq!(lookup(&env, "PORT").as_deref(), Some("4321"));
    assert_eq!(
        lookup(&env, "HTTP_PROXY").as_deref(),
        Some("http://127.0.0.1:15001")
    );
    assert_eq!(
        lookup(&env, "http_proxy").as_deref(),
        Some("http://127.0.0.1:15001")
    );
    assert_eq!(
        lookup(&env, "PATH").as_deref(),
        Some("/opt/aviary/bin:/usr/bin:/bin")
    );
    assert_eq!(lookup(&env, "GREETING").as_deref(), Some("hi"));
}

#[test]
fn the_workload_may_override_the_proxy_but_never_the_port() {
    let workload_env = BTreeMap::from([
        ("HTTP_PROXY".to_string(), "http://elsewhere:1".to_string()),
        ("PORT".to_string(), "80".to_string()),
    ]);
    let env = child_env(
        &workload_env,
        4321,
        Some("http://127.0.0.1:15001"),
        &[],
        None,
    );
    // Later entries win when the command's environment is built.
    assert_eq!(
        lookup(&env, "HTTP_PROXY").as_deref(),
        Some("http://elsewhere:1")
    );
    assert_eq!(lookup(&env, "PORT").as_deref(), Some("4321"));
    assert_eq!(
        lookup(&env, "PATH"),
        None,
        "no extra path: PATH is inherited untouched"
    );
    assert_eq!(
        lookup(&env, "http_proxy").as_deref(),
        Some("http://127.0.0.1:15001")
    );
}

#[test]
fn leased_ports_are_distinct_until_released() {
    let ports = Arc::new(Ports::default());
    let leases: Vec<PortLease> = (0..20).map(|_| ports.lease().unwrap()).collect();
    let distinct: std::collections::HashSet<u16> = leases.iter().map(PortLease::port).collect();
    assert_eq!(distinct.len(), 20);
    assert_eq!(lock(&ports.leased).len(), 20);
    drop(leases);
    assert!(
        lock(&ports.leased).is_empty(),
        "dropping a lease releases its port"
    );
}
