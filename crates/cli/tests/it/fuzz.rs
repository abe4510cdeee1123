//! A bounded, seeded fuzz test of the App Mesh API (and `/v1` workloads and endpoints): valid
//! create and update bodies of every kind, broken in deterministic ways, sent over raw HTTP to a
//! real `aviary control`. Never a 5xx, never a dropped connection, every 4xx a JSON `message`
//! that names the field or the problem, and nothing changed by a rejected request.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use testkit::{http_json, http_raw};

use crate::{Write, create_step1_raw, example, rest_call, start};

/// The default seed; `AVIARY_FUZZ_SEED=N` explores others. A failure names the seed and case.
const SEED: u64 = 0x00a5_1a12_f022;
const CASES: usize = 2000;

/// Stand-ins, `MARK` + kind, replaced in the serialized body by what a `serde_json::Value`
/// cannot hold: `deep` nesting, invalid `utf8`, a `number` out of range, a duplicate `key:K`.
const MARK: &str = "\u{1}fuzz:";

/// One valid request to start from.
#[derive(Clone)]
struct Seed {
    method: &'static str,
    path: String,
    body: Option<Value>,
}

/// One request as sent.
struct Case {
    what: String,
    method: &'static str,
    path: String,
    body: Vec<u8>,
}

/// What came back; `status` 0 when the connection closed without a complete response.
struct Reply {
    status: u16,
    error_type: Option<String>,
    body: String,
}

/// Valid requests of every kind: a create of a new resource and an update of an existing one
/// (the walkthrough's example files), describes and lists, and aviary's own workloads and
/// endpoints.
fn seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let fresh = [
        ("mesh", "meshName", "fuzz-mesh"),
        ("product-vn", "virtualNodeName", "fuzz-vn"),
        ("product-vr", "virtualRouterName", "fuzz-vr"),
        ("product-r", "routeName", "fuzz-r"),
        ("vs-product", "virtualServiceName", "fuzz.demomesh.local"),
        ("demo-gw", "virtualGatewayName", "fuzz-gw"),
        ("order-gr", "gatewayRouteName", "fuzz-gr"),
    ];
    for (name, field, new_name) in fresh {
        let (path, mut body) = rest_call(&example(name), Write::Create);
        body[field] = json!(new_name);
        seeds.push(Seed {
            method: "PUT",
            path,
            body: Some(body),
        });
        let (item, update) = rest_call(&example(name), Write::Update);
        seeds.push(Seed {
            method: "PUT",
            path: item.clone(),
            body: Some(update),
        });
        seeds.push(Seed {
            method: "GET",
            path: item,
            body: None,
        });
    }
    let arn = "resourceArn=arn:aws:appmesh:local:000000000000:mesh/demomesh/virtualNode/product-vn";
    seeds.extend([
        Seed {
            method: "PUT",
            path: format!("/v20190125/tag?{arn}"),
            body: Some(json!({"tags": [{"key": "team", "value": "shop"}]})),
        },
        Seed {
            method: "PUT",
            path: format!("/v20190125/untag?{arn}"),
            body: Some(json!({"tagKeys": ["team"]})),
        },
        Seed {
            method: "GET",
            path: format!("/v20190125/tags?{arn}&limit=1"),
            body: None,
        },
    ]);
    let v1 = "/v1/meshes/demomesh";
    seeds.extend([
        Seed {
            method: "PUT",
            path: format!("{v1}/workloads/fuzz-w"),
            body: Some(
                json!({"virtualNode": "product-vn", "command": ["true"], "replicas": 0,
                "env": {"A": "b"}}),
            ),
        },
        Seed {
            method: "PUT",
            path: format!("{v1}/endpoints/product-vn/fuzz-e"),
            body: Some(json!({"address": "127.0.0.1", "port": 1})),
        },
        Seed {
            method: "GET",
            path: "/v20190125/meshes/demomesh/virtualRouter/product-vr/routes".into(),
            body: None,
        },
    ]);
    seeds
}

/// Every place in `value`, as JSON pointers (the root is "").
fn slots(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                slots(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                slots(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

/// Values of the wrong type, odd strings and numbers at the edges of every integer type.
fn odd_value(rng: &mut fastrand::Rng) -> Value {
    let choices = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(2_147_483_648u64),
        json!(4_294_967_296u64),
        json!(1.5),
        json!(-0.0),
        json!(1e308),
        json!(""),
        json!(" "),
        json!("x"),
        json!("\u{0}"),
        json!("\u{202e}gnp.exe"),
        json!("../../etc/passwd"),
        json!("a/b"),
        json!("%2F"),
        json!("é".repeat(300)),
        json!("x".repeat(256)),
        json!([]),
        json!([1, "two", null]),
        json!({}),
        json!({"a": {"b": {}}}),
        json!(format!("{MARK}number")),
    ];
    pick(rng, &choices).clone()
}

/// Replaces, removes or adds one thing somewhere in `body`.
fn mutate_value(rng: &mut fastrand::Rng, body: &mut Value) -> String {
    let mut places = Vec::new();
    slots(body, String::new(), &mut places);
    let place = pick(rng, &places).clone();
    let shown = if place.is_empty() { "/" } else { &place };
    let Some(target) = body.pointer_mut(&place) else {
        return "nothing".into();
    };
    match rng.u8(..9) {
        0 => {
            *target = odd_value(rng);
            format!("{shown} = {}", short(target))
        }
        1 => {
            *target = json!("x".repeat(100_000));
            format!("{shown} = a 100 KB string")
        }
        2 => {
            *target = json!(format!("{MARK}deep"));
            format!("{shown} = 10,000 nested arrays or objects")
        }
        3 => {
            *target = Value::Null;
            format!("{shown} = null")
        }
        4 => {
            *target = json!("");
            format!("{shown} = \"\"")
        }
        5 => {
            *target = json!(format!("{MARK}utf8"));
            format!("{shown} = a string with invalid UTF-8")
        }
        6 => match target {
            Value::Object(map) => {
                let keys = [
                    "colour",
                    "",
                    "spec",
                    "__proto__",
                    "a/b",
                    "é",
                    "weigth",
                    "metadata",
                ];
                let key = pick(rng, &keys).to_string();
                map.insert(key.clone(), odd_value(rng));
                format!("{shown} gets an extra field '{key}'")
            }
            Value::Array(items) => {
                items.push(odd_value(rng));
                format!("{shown} gets an extra item")
            }
            other => {
                *other = json!([other.clone(), other.clone()]);
                format!("{shown} wrapped in an array")
            }
        },
        7 => match target {
            Value::Object(map) if !map.is_empty() => {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = pick(rng, &keys).clone();
                map.insert(format!("{MARK}key:{key}"), odd_value(rng));
                format!("{shown} has '{key}' twice")
            }
            other => {
                *other = json!({format!("{MARK}key:a"): 1, "a": 2});
                format!("{shown} = {{\"a\": 1, \"a\": 2}}")
            }
        },
        _ => remove(body, &place),
    }
}

fn remove(body: &mut Value, place: &str) -> String {
    let Some((parent, last)) = place.rsplit_once('/') else {
        *body = json!({});
        return "the whole body = {}".into();
    };
    match body.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&last.replace("~1", "/").replace("~0", "~"));
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
    format!("{place} removed")
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

/// The body as bytes, with the stand-ins replaced.
fn render(rng: &mut fastrand::Rng, body: &Value) -> Vec<u8> {
    let text = body.to_string();
    let open = format!("\"{}", escaped(MARK));
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&open) {
        bytes.extend_from_slice(&rest.as_bytes()[..at]);
        let after = &rest[at + open.len()..];
        let end = after.find('"').expect("a stand-in ends with a quote");
        bytes.extend_from_slice(&stand_in(rng, &after[..end]));
        rest = &after[end + 1..];
    }
    bytes.extend_from_slice(rest.as_bytes());
    bytes
}

fn stand_in(rng: &mut fastrand::Rng, marker: &str) -> Vec<u8> {
    let (kind, arg) = marker.split_once(':').unwrap_or((marker, ""));
    match kind {
        "deep" if rng.bool() => {
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()
        }
        "deep" => format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes(),
        "utf8" => {
            let invalid: [&[u8]; 5] = [
                b"\xff",
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\xc0\x80",
                b"\xf8\x88\x80\x80\x80",
            ];
            [b"\"ok".as_slice(), *pick(rng, &invalid), b"ok\""].concat()
        }
        "number" => {
            let numbers = [
                "1e400",
                "-1e400",
                "123456789012345678901234567890",
                "-0",
                "01",
            ];
            pick(rng, &numbers).as_bytes().to_vec()
        }
        _ => format!("\"{arg}\"").into_bytes(),
    }
}

/// How serde_json writes a stand-in inside quotes.
fn escaped(marker: &str) -> String {
    let quoted = serde_json::to_string(marker).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_string()
}

/// Path segments that are no resource's name.
const JUNK_SEGMENTS: [&str; 14] = [
    "",
    "%00",
    "..",
    "%2e%2e",
    "a%2Fb",
    "%FF",
    "%C3%28",
    "%E2%82%AC",
    "%20",
    "-lead",
    "~",
    "%E2%80%AE",
    "%",
    "%%41",
];

/// The seed's path with one segment replaced (or a trailing slash, or a query string).
fn mutate_path(rng: &mut fastrand::Rng, path: &str) -> (String, String) {
    let (base, _) = path.split_once('?').unwrap_or((path, ""));
    let mut segments: Vec<String> = base.split('/').map(str::to_string).collect();
    match rng.u8(..4) {
        0 => (format!("{base}/"), "a trailing slash".into()),
        1 => {
            let query = pick(
                rng,
                &[
                    "limit=0",
                    "limit=101",
                    "limit=-1",
                    "limit=%FF",
                    "limit=99999999999999999999",
                    "nextToken=zz",
                    "nextToken=%E2%82%AC1",
                    "nextToken=%C3%A9%C3%A9",
                    "nextToken=",
                    "nextToken=%FF%FE",
                    "limit=1&limit=2",
                    "%ZZ=1",
                ],
            );
            (format!("{base}?{query}"), format!("query {query}"))
        }
        _ => {
            // Not the empty segment before the first '/', nor the API version.
            let i = rng.usize(2..segments.len().max(3)).min(segments.len() - 1);
            let junk = pick(rng, &JUNK_SEGMENTS);
            let long = "n".repeat(300);
            segments[i] = if rng.u8(..10) == 0 {
                long
            } else {
                junk.to_string()
            };
            (
                segments.join("/"),
                format!("segment {i} = {:?}", segments[i]),
            )
        }
    }
}

fn make_case(rng: &mut fastrand::Rng, seeds: &[Seed]) -> Case {
    let seed = pick(rng, seeds).clone();
    let mut what = Vec::new();
    let mut path = seed.path.clone();
    let mut method = seed.method;
    if seed.body.is_none() || rng.u8(..5) == 0 {
        let (new_path, change) = mutate_path(rng, &seed.path);
        path = new_path;
        what.push(change);
        if rng.u8(..4) == 0 {
            method = *pick(rng, &["GET", "PUT", "DELETE", "POST", "PATCH"]);
            what.push(format!("as {method}"));
        }
    }
    let body = match seed.body {
        Some(mut body) => {
            for _ in 0..=rng.usize(..3) {
                what.push(mutate_value(rng, &mut body));
            }
            let mut bytes = render(rng, &body);
            if rng.u8(..12) == 0 {
                bytes.truncate(rng.usize(..bytes.len().max(1)));
                what.push(format!("cut to {} bytes", bytes.len()));
            }
            bytes
        }
        None => Vec::new(),
    };
    Case {
        what: format!("{} {} ({})", seed.method, seed.path, what.join("; ")),
        method,
        path,
        body,
    }
}

fn send(addr: &str, case: &Case) -> Reply {
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        case.method,
        case.path,
        testkit::TEST_ADMIN_TOKEN,
        case.body.len()
    )
    .into_bytes();
    request.extend_from_slice(&case.body);
    let raw = http_raw(addr, &request);
    let Some((head, body)) = raw.split_once("\r\n\r\n") else {
        return Reply {
            status: 0,
            error_type: None,
            body: raw,
        };
    };
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let complete = headers
        .get("content-length")
        .and_then(|len| len.parse::<usize>().ok())
        .is_none_or(|len| body.len() >= len);
    Reply {
        status: if complete { status } else { 0 },
        error_type: headers.get("x-amzn-errortype").cloned(),
        body: body.to_string(),
    }
}

/// A message names the problem: a field (`path: what`, or a quoted name) or what was wrong.
fn names_the_problem(message: &str) -> bool {
    const PROBLEMS: [&str; 10] = [
        "JSON",
        "not found",
        "does not exist",
        "already exists",
        "is in use",
        "is not allowed on",
        "larger than",
        "no App Mesh operation",
        "no API at path",
        "query string",
    ];
    match message.split_once("detected: ") {
        // Validation errors: each one names its field, or quotes the name it is about.
        Some((_, problems)) => problems.split("; ").all(names_a_field),
        None => names_a_field(message) || PROBLEMS.iter().any(|p| message.contains(p)),
    }
}

/// `spec.listeners[0].port: must be ...`, or a quoted `'name'`.
fn names_a_field(problem: &str) -> bool {
    let path_like = |f: &str| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c))
    };
    problem
        .split_once(": ")
        .is_some_and(|(field, _)| path_like(field))
        || problem.contains('\'')
}

/// Everything a request could have changed: the whole mesh at the store's revision.
fn state(url: &str) -> Value {
    let (status, _, body) = http_json("GET", &format!("{url}/v1/meshes/demomesh/snapshot"), None);
    assert_eq!(status, 200, "{body}");
    body
}

/// A reply that is an answer: no 5xx, no dropped connection; a 4xx is JSON in App Mesh's
/// error shape with a message that names the field or the problem.
fn check_reply(what: &str, reply: &Reply, stderr: &str) {
    assert_ne!(
        reply.status, 0,
        "{what}: the connection closed without an answer: {:?}\n--- stderr\n{stderr}",
        reply.body
    );
    assert!(
        reply.status < 500,
        "{what}: answered {}: {}\n--- stderr\n{stderr}",
        reply.status,
        reply.body
    );
    if reply.status < 300 {
        return;
    }
    let json: Value = serde_json::from_str(&reply.body).unwrap_or_else(|e| {
        panic!(
            "{what}: {} body is not JSON ({e}): {}",
            reply.status, reply.body
        )
    });
    let message = json["message"].as_str().unwrap_or_default();
    assert!(
        names_the_problem(message),
        "{what}: {} message names nothing: {:?}",
        reply.status,
        reply.body
    );
    assert!(reply.error_type.is_some(), "{what}: no x-amzn-ErrorType");
}

fn seed_from_env() -> u64 {
    std::env::var("AVIARY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}

#[test]
fn seeded_mutations_of_valid_requests_never_crash_or_change_anything_when_rejected() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let seeds = seeds();
    let seed = seed_from_env();
    let mut rng = fastrand::Rng::with_seed(seed);
    let verbose = std::env::var_os("AVIARY_FUZZ_VERBOSE").is_some();
    let started = Instant::now();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut before = state(url);
    for n in 0..CASES {
        let case = make_case(&mut rng, &seeds);
        let reply = send(control.addr(), &case);
        let what = format!("seed {seed} case {n}: {}", case.what);
        if verbose {
            let shown: String = reply.body.chars().take(300).collect();
            println!("{what} -> {} {shown}", reply.status);
        }
        *by_status.entry(reply.status).or_default() += 1;
        check_reply(&what, &reply, &control.stderr_text());
        let after = state(url);
        if reply.status >= 300 {
            assert_eq!(
                after["revision"], before["revision"],
                "{what}: a rejected request ({}) moved the store revision",
                reply.status
            );
            assert_eq!(after, before, "{what}: a rejected request changed the mesh");
        }
        before = after;
    }
    let (status, _, _) = http_json("GET", &format!("{url}/v20190125/meshes/demomesh"), None);
    assert_eq!(status, 200, "the server still answers");
    println!(
        "fuzz: {CASES} cases (seed {seed}) from {} valid requests in {:.1?}; by status: {by_status:?}",
        seeds.len(),
        started.elapsed()
    );
    // The mutations must reach past the parser: some requests are refused by validation, some
    // find nothing, some still pass.
    for status in [200, 400, 404] {
        assert!(
            by_status.get(&status).is_some_and(|n| *n > 10),
            "few {status}s: {by_status:?}"
        );
    }
}
