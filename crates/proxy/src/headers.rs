//! Header rules of a forwarding proxy: hop-by-hop headers (RFC 9110 section 7.6.1) stay on
//! their hop, `X-Forwarded-For` grows by the caller's address, everything else passes through.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message; never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Not registered with IANA but sent by old clients and proxies; hop-by-hop in practice.
const LEGACY_HOP_BY_HOP: [&str; 2] = ["keep-alive", "proxy-connection"];

pub fn x_forwarded_for() -> HeaderName {
    HeaderName::from_static("x-forwarded-for")
}

/// Removes the hop-by-hop headers and every header `Connection` names. `TE: trailers` is kept
/// when `keep_te_trailers` (an HTTP/2 upstream: gRPC needs it, and it is the only TE value
/// HTTP/2 allows).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    let te_trailers = keep_te_trailers
        && headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    for name in LEGACY_HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends the caller's address to `X-Forwarded-For`, joining earlier values into one field.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let name = x_forwarded_for();
    let mut value = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    if !value.is_empty() {
        value.push_str(", ");
    }
    value.push_str(&client.to_string());
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests;
