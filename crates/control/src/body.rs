//! Request bodies read with a size limit, drained when too big so the client reads its 413.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::error::ApiError;

/// Bodies larger than this are refused before parsing; the largest App Mesh spec is a few KiB
/// and aviary's limit on one is 64 KiB (`model::MAX_SPEC_BYTES`).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How much of an oversize body is read and thrown away before answering 413. A client that
/// writes its whole body before reading (curl, urllib, most SDKs) only sees the answer if we
/// read what it sends: closing with unread bytes makes the kernel reset the connection, and
/// the reset destroys the 413 before the client reads it. Past this we stop paying for a
/// client's mistake and close.
pub const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// How long a request's whole body may take to arrive: 8 MiB at 300 KiB/s, far more than any
/// real client needs, and a bound on what a client that trickles its body can hold.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads a JSON object of at most `limit` bytes; an empty body is `{}` (GET and DELETE carry
/// none).
pub async fn read_json(request: Request, limit: usize) -> Result<Value, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_bounded(&parts.headers, body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    Ok(body)
}

/// The whole body if it is at most `limit` bytes; otherwise `PayloadTooLarge`, after draining
/// what the client sends up to `MAX_DRAIN_BYTES`.
pub async fn read_bounded(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = |drained| ApiError::PayloadTooLarge { limit, drained };
    if let Some(declared) = declared_length(headers).filter(|len| *len > limit) {
        // A client waiting for `100 Continue` sends nothing until we read, and hyper sends it
        // only then: answering now costs it nothing. A declared body beyond the drain is not
        // worth reading at all.
        if expects_continue(headers) || declared > MAX_DRAIN_BYTES {
            return Err(too_large(false));
        }
    }
    // The header-read timeout ends with the head; this bounds what a slow body may hold.
    tokio::time::timeout(BODY_READ_TIMEOUT, collect(body, limit))
        .await
        .unwrap_or(Err(ApiError::BodyTimeout {
            seconds: BODY_READ_TIMEOUT.as_secs(),
        }))
}

/// Reads the body to its end, keeping at most `limit` bytes and reading at most the drain.
async fn collect(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = |drained| ApiError::PayloadTooLarge { limit, drained };
    let mut body = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("request body: {e}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen > MAX_DRAIN_BYTES {
            return Err(too_large(false));
        }
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(too_large(true));
    }
    Ok(Bytes::from(kept))
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

#[cfg(test)]
mod tests;
