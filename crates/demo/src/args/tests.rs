//! Unit tests of argument parsing: defaults, precedence, and errors that name the flag. (Flags
//! over environment variables is tested on the real binary, whose environment a test controls.)

use std::time::Duration;

use clap::Parser;

use super::Args;
use crate::config::Service;

fn parse(args: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("aviary-demo").chain(args.iter().copied())).unwrap()
}

fn parse_error(args: &[&str]) -> String {
    Args::try_parse_from(std::iter::once("aviary-demo").chain(args.iter().copied()))
        .unwrap_err()
        .to_string()
}

#[test]
fn every_flag_lands_in_the_config() {
    let args = parse(&[
        "order",
        "--version",
        "2.0",
        "--listen",
        "127.0.0.1:9999",
        "--error-rate",
        "0.25",
        "--latency",
        "50ms",
        "--fail-after",
        "3",
        "--unhealthy",
        "--product-url",
        "http://p.test/",
        "--customer-url",
        "http://c.test/",
        "--backend-timeout",
        "1s",
        "--http-proxy",
        "http://127.0.0.1:15001",
    ]);
    let config = args.into_config_with_env(|_| None).unwrap();
    assert_eq!(config.service, Service::Order);
    assert_eq!(config.version, "2.0");
    assert_eq!(config.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(config.faults.error_rate.to_string(), "0.25");
    assert_eq!(config.faults.latency, Duration::from_millis(50));
    assert_eq!(config.faults.fail_after, Some(3));
    assert!(config.unhealthy);
    assert_eq!(config.backends.product.as_str(), "http://p.test/");
    assert_eq!(config.backends.customer.as_str(), "http://c.test/");
    assert_eq!(config.backends.timeout, Duration::from_secs(1));
    assert_eq!(
        config.backends.http_proxy.unwrap().as_str(),
        "http://127.0.0.1:15001/"
    );
}

#[test]
fn defaults_are_the_reference_demo() {
    let config = parse(&["product"]).into_config_with_env(|_| None).unwrap();
    assert_eq!(config.version, "1.0");
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.faults, crate::Faults::default());
    assert!(!config.unhealthy);
    assert_eq!(
        config.backends.product.as_str(),
        "http://product.demomesh.local:8080/"
    );
    assert_eq!(
        config.backends.customer.as_str(),
        "http://customer.demomesh.local:8080/"
    );
    assert_eq!(config.backends.timeout, Duration::from_secs(2));
    assert_eq!(config.backends.http_proxy, None);
}

#[test]
fn listen_wins_over_port() {
    let config = parse(&["customer", "--port", "7000"])
        .into_config_with_env(|_| None)
        .unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
    let config = parse(&["customer", "--port", "7000", "--listen", "127.0.0.1:7001"])
        .into_config_with_env(|_| None)
        .unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:7001");
}

#[test]
fn proxy_comes_from_flag_then_upper_then_lower_case_env() {
    let env = |name: &str| match name {
        "HTTP_PROXY" => Some("http://upper:1".to_owned()),
        "http_proxy" => Some("http://lower:1".to_owned()),
        "no_proxy" => Some("localhost".to_owned()),
        _ => None,
    };
    let proxy = |args: &[&str], env: &dyn Fn(&str) -> Option<String>| {
        let config = parse(args).into_config_with_env(env).unwrap();
        config.backends.http_proxy.map(|url| url.to_string())
    };
    assert_eq!(
        proxy(&["order", "--http-proxy", "http://flag:1"], &env).as_deref(),
        Some("http://flag:1/")
    );
    assert_eq!(proxy(&["order"], &env).as_deref(), Some("http://upper:1/"));
    let lower_only = |name: &str| env(name).filter(|_| name == "http_proxy");
    assert_eq!(
        proxy(&["order"], &lower_only).as_deref(),
        Some("http://lower:1/")
    );
    let empty = |_: &str| Some(String::new());
    assert_eq!(proxy(&["order"], &empty), None);
    let config = parse(&["order"]).into_config_with_env(env).unwrap();
    assert_eq!(config.backends.no_proxy.as_deref(), Some("localhost"));
}

#[test]
fn a_bad_proxy_in_the_environment_names_the_variable() {
    let env = |name: &str| (name == "HTTP_PROXY").then(|| "not a url".to_owned());
    let err = parse(&["order"]).into_config_with_env(env).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("HTTP_PROXY"), "{err}");
}

#[test]
fn bad_values_name_their_flag() {
    let check = |args: &[&str], flag: &str| {
        let err = parse_error(args);
        assert!(err.contains(flag), "{args:?}: {err}");
    };
    check(&["product", "--error-rate", "1.5"], "--error-rate");
    check(&["product", "--latency", "soon"], "--latency");
    check(&["product", "--fail-after=-1"], "--fail-after");
    check(&["product", "--listen", "localhost"], "--listen");
    check(&["order", "--backend-timeout", "2"], "--backend-timeout");
    check(&["order", "--product-url", "not a url"], "--product-url");
    check(&["inventory"], "inventory");
}
