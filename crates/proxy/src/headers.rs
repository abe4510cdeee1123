//! Header rules of a forwarding proxy: hop-by-hop headers (RFC 9110 section 7.6.1) stay on
//! their hop, `X-Forwarded-For` grows by the caller's address, everything else passes through.

use std::net::IpAddr;

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Headers that describe one connection, not the message; never forwarded. `keep-alive` and
/// `proxy-connection` are not registered with IANA but sent by old clients and proxies;
/// hop-by-hop in practice.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "keep-alive",
    "proxy-connection",
];

/// By length first, then text: cheaper than comparing `HeaderName`s, and every message passes
/// through here twice. The same names as [`HOP_BY_HOP`].
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "keep-alive"
            | "proxy-connection"
    )
}

/// A `Connection` token that names a header [`is_hop_by_hop`] already removes (`keep-alive`),
/// or none.
fn names_hop_by_hop(token: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(token))
}

/// Whether a `Connection` value names no header beyond the hop-by-hop ones (a value that is
/// not text names none).
fn names_only_hop_by_hop(value: &HeaderValue) -> bool {
    // By far the most common value, checked before splitting.
    value.as_bytes().eq_ignore_ascii_case(b"keep-alive")
        || value
            .to_str()
            .map_or(true, |v| v.split(',').map(str::trim).all(names_hop_by_hop))
}

/// The tokens of the `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Removes the hop-by-hop headers and every header `Connection` names. `TE: trailers` is kept
/// when `keep_te_trailers` (an HTTP/2 upstream: gRPC needs it, and it is the only TE value
/// HTTP/2 allows).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    // Most messages have none, or only `Connection: keep-alive`: found in one pass, without
    // allocating.
    let mut found: Option<&HeaderName> = None;
    let mut lone = !keep_te_trailers;
    for (name, value) in &*headers {
        if !is_hop_by_hop(name) {
            continue;
        }
        match found {
            None => found = Some(name),
            Some(first) if first != name => lone = false,
            Some(_) => {}
        }
        if name == header::CONNECTION && !names_only_hop_by_hop(value) {
            lone = false;
        }
    }
    let Some(found) = found else {
        return;
    };
    if lone {
        let found = found.clone();
        headers.remove(found);
        return;
    }
    let te_trailers = keep_te_trailers
        && headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    // What `Connection` names beyond the hop-by-hop headers.
    let named: Vec<&str> = connection_tokens(headers)
        .filter(|token| !names_hop_by_hop(token))
        .collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            is_hop_by_hop(name) || named.iter().any(|t| t.eq_ignore_ascii_case(name.as_str()))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// The caller's address as an `X-Forwarded-For` entry: formatted once per connection, not
/// once per request.
pub fn forwarded_for(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).expect("an IP address is a valid header value")
}

/// Appends the caller's entry ([`forwarded_for`]) to `X-Forwarded-For`, joining earlier values
/// into one field.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: &HeaderValue) {
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Vacant(entry) => {
            entry.insert(client.clone());
        }
        Entry::Occupied(mut entry) => {
            let mut value = entry
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            if !value.is_empty() {
                value.push_str(", ");
            }
            value.push_str(client.to_str().unwrap_or_default());
            if let Ok(value) = HeaderValue::from_str(&value) {
                entry.insert(value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
