//! Many writers at once: every acknowledged write gets its own version, and the last one wins.

use std::collections::{BTreeMap, HashSet};
use std::thread;

use serde_json::{Value, json};
use testkit::{http, http_json};

use crate::{Write, apply_raw, assert_contains, create_step1_raw, example, route_spec, start};

const THREADS: usize = 8;
const WRITES_PER_THREAD: usize = 25;
const PRODUCT_R: &str = "/v20190125/meshes/demomesh/virtualRouter/product-vr/routes/product-r";

/// A distinct, valid split (total at most 100) for write number `n` of 200.
fn split(n: usize) -> (i64, i64) {
    ((n % 98 + 1) as i64, (n / 98) as i64)
}

#[test]
fn concurrent_route_updates_get_unique_versions_and_the_last_one_wins() {
    let control = start();
    let url = control.url().to_string();
    create_step1_raw(&url);
    let (status, body) = apply_raw(&url, &example("product-v15-vn"), Write::Create);
    assert_eq!(status, 200, "{body}");

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = url.clone();
            thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for i in 0..WRITES_PER_THREAD {
                    let (v1, v15) = split(t * WRITES_PER_THREAD + i);
                    let spec = route_spec(&[("product-vn", v1), ("product-v15-vn", v15)]);
                    let body = json!({ "spec": spec }).to_string();
                    let (status, headers, text) =
                        http("PUT", &format!("{url}{PRODUCT_R}"), Some(&body));
                    match status {
                        200..=299 => {
                            let route: Value = serde_json::from_str(&text)
                                .unwrap_or_else(|e| panic!("2xx body is not JSON ({e}): {text}"));
                            // The response describes this write (defaults aside).
                            assert_contains(&route["spec"], &spec);
                            let version = route["metadata"]["version"]
                                .as_u64()
                                .unwrap_or_else(|| panic!("no metadata.version: {route}"));
                            acknowledged.push((version, route["spec"].clone()));
                        }
                        // Refusing under contention is allowed; failing is not.
                        409 | 429 => {
                            let kind = headers.get("x-amzn-ErrorType").unwrap_or_default();
                            assert!(
                                kind.starts_with("ConflictException")
                                    || kind.starts_with("TooManyRequestsException"),
                                "{status} {kind}: {text}"
                            );
                        }
                        _ => panic!("update {t}/{i}: {status}: {text}"),
                    }
                }
                acknowledged
            })
        })
        .collect();
    let acknowledged: Vec<(u64, Value)> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("writer thread"))
        .collect();

    assert!(!acknowledged.is_empty(), "no update succeeded");
    let versions: HashSet<u64> = acknowledged.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions.len(),
        acknowledged.len(),
        "two acknowledged writes share a version"
    );
    let by_version: BTreeMap<u64, &Value> = acknowledged.iter().map(|(v, s)| (*v, s)).collect();
    let (&last_version, &last_spec) = by_version.last_key_value().unwrap();
    // Created at 1, and each acknowledged update added exactly one.
    assert_eq!(last_version, 1 + acknowledged.len() as u64);
    assert_eq!(
        by_version.keys().copied().collect::<Vec<_>>(),
        (2..=last_version).collect::<Vec<_>>()
    );

    let (status, _, route) = http_json("GET", &format!("{url}{PRODUCT_R}"), None);
    assert_eq!(status, 200, "{route}");
    assert_eq!(route["metadata"]["version"], json!(last_version));
    assert_eq!(
        &route["spec"], last_spec,
        "the final route is not the last acknowledged write"
    );
}

#[test]
fn concurrent_creates_of_one_name_make_exactly_one_resource() {
    let control = start();
    let url = control.url().to_string();
    create_step1_raw(&url);
    let mut input = example("product-v15-vn");
    input["virtualNodeName"] = json!("racer-vn");

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (url, mut input) = (url.clone(), input.clone());
            // Each racer its own client token: these are different requests, not retries.
            input["clientToken"] = json!(format!("racer-{t}"));
            thread::spawn(move || apply_raw(&url, &input, Write::Create))
        })
        .collect();
    let results: Vec<(u16, Value)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let winners: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (status, body) in &results {
        assert!(*status == 200 || *status == 409, "{status}: {body}");
    }
    let (status, _, node) = http_json(
        "GET",
        &format!("{url}/v20190125/meshes/demomesh/virtualNodes/racer-vn"),
        None,
    );
    assert_eq!(status, 200, "{node}");
    assert_eq!(node["metadata"]["uid"], winners[0]["metadata"]["uid"]);
    assert_eq!(node["metadata"]["version"], 1);
}
