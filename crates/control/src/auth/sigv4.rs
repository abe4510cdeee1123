//! AWS Signature Version 4 on the App Mesh API: the keys (an AWS shared-credentials file) and the
//! check of a request's signature, header form and presigned query form. The canonical request
//! and the signature are computed by the AWS SDK's own signer (`aws-sigv4`) from exactly the
//! headers the client says it signed; this file only parses, looks up and compares.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use axum::http::HeaderMap;

use model::civil::{civil_from_days, days_from_civil};

use super::tokens::{constant_time_eq, random_hex};
use crate::appmesh::percent_decode;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name clients scope their signatures to.
pub const SERVICE: &str = "appmesh";
/// How far a request's time may be from ours, as AWS allows.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest a presigned URL may be valid, as AWS allows (7 days).
const MAX_EXPIRES: u64 = 7 * 24 * 3600;

/// Why a request's signature was refused, as AWS names it (`x-amzn-ErrorType`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("The security token included in the request is invalid: unknown access key '{0}'")]
    UnknownKey(String),
    #[error("{0}")]
    Invalid(String),
}

impl SigError {
    pub fn error_type(&self) -> &'static str {
        match self {
            SigError::Missing => "MissingAuthenticationTokenException",
            SigError::UnknownKey(_) => "UnrecognizedClientException",
            SigError::Invalid(_) => "InvalidSignatureException",
        }
    }
}

/// Access key id → secret, from every profile of an AWS shared-credentials file.
#[derive(Debug, Clone, Default)]
pub struct Keys(HashMap<String, String>);

impl Keys {
    /// Parses the INI of `~/.aws/credentials`: `[profile]` sections with `aws_access_key_id`
    /// and `aws_secret_access_key`. A section missing either is an error naming it.
    pub fn parse(text: &str) -> Result<Keys, String> {
        let mut keys = HashMap::new();
        let mut sections: Vec<(String, Option<String>, Option<String>)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                sections.push((name.trim().to_string(), None, None));
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("line {}: expected `key = value`", n + 1));
            };
            let Some(section) = sections.last_mut() else {
                return Err(format!("line {}: a key before any [profile]", n + 1));
            };
            match key.trim() {
                "aws_access_key_id" => section.1 = Some(value.trim().to_string()),
                "aws_secret_access_key" => section.2 = Some(value.trim().to_string()),
                _ => {}
            }
        }
        for (name, id, secret) in sections {
            match (id, secret) {
                (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                    keys.insert(id, secret);
                }
                _ => {
                    return Err(format!(
                        "profile [{name}]: needs aws_access_key_id and aws_secret_access_key"
                    ));
                }
            }
        }
        Ok(Keys(keys))
    }

    /// A new `[default]` profile with a random key, in the file's format.
    pub fn generate_file() -> String {
        format!(
            "# Written by aviary control on first start: the App Mesh API's SigV4 keys.\n\
             [default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}\n",
            random_hex(16).to_uppercase(),
            random_hex(40)
        )
    }

    /// The secret of access key `id`.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.0.get(id).map(String::as_str)
    }

    /// Access key id and secret of every key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(id, secret)| (id.as_str(), secret.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the signature check needs of a request.
pub struct Signed<'a> {
    pub method: &'a str,
    /// Path and query exactly as received (still percent-encoded).
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks `request`'s SigV4 signature (in the `Authorization` header, or in the query as a
/// presigned URL has it) at time `now`, with the secret of an access key looked up by
/// `secret_of` (the keys of every replica, in the store). Returns the access key that signed it.
pub fn verify(
    request: &Signed<'_>,
    secret_of: impl Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<String, SigError> {
    let (path, query) = match request.path_and_query.split_once('?') {
        Some((path, query)) => (path, query),
        None => (request.path_and_query, ""),
    };
    let params = query_params(query);
    let presigned = params.iter().any(|(k, _)| k == "X-Amz-Algorithm");
    let claim = if presigned {
        Claim::from_query(&params, now)?
    } else {
        Claim::from_headers(request.headers, now)?
    };
    let secret = secret_of(&claim.access_key)
        .ok_or_else(|| SigError::UnknownKey(claim.access_key.clone()))?;

    // Exactly the headers the client signed; the signer adds x-amz-date itself (header form).
    let mut headers = Vec::new();
    for name in claim.signed_headers.split(';') {
        if name == "x-amz-date" && !presigned {
            continue;
        }
        let values: Vec<&str> = request
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(SigError::Invalid(format!(
                "The request signature we calculated does not match the signature you provided: \
                 signed header '{name}' is missing from the request"
            )));
        }
        headers.push((name.to_string(), values.join(",")));
    }
    if !headers.iter().any(|(name, _)| name == "host") {
        return Err(SigError::Invalid(
            "'Host' must be a signed header".to_string(),
        ));
    }
    let uri = if presigned {
        let rest: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("X-Amz-"))
            .map(str::to_string)
            .collect();
        if rest.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", rest.join("&"))
        }
    } else {
        request.path_and_query.to_string()
    };
    // Header signatures cover the body's hash. Presigned URLs cover it too in botocore's
    // generic signer, but `UNSIGNED-PAYLOAD` in S3-style signers: try both for those.
    let mut expected = compute(
        &claim,
        &secret,
        request.method,
        &uri,
        &headers,
        SignableBody::Bytes(request.body),
    )?;
    if presigned && !constant_time_eq(expected.as_bytes(), claim.signature.as_bytes()) {
        expected = compute(
            &claim,
            &secret,
            request.method,
            &uri,
            &headers,
            SignableBody::UnsignedPayload,
        )?;
    }
    if constant_time_eq(expected.as_bytes(), claim.signature.as_bytes()) {
        Ok(claim.access_key)
    } else {
        Err(SigError::Invalid(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method."
                .to_string(),
        ))
    }
}

fn compute(
    claim: &Claim,
    secret: &str,
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: SignableBody<'_>,
) -> Result<String, SigError> {
    let identity = aws_credential_types::Credentials::new(
        &claim.access_key,
        secret,
        None,
        None,
        "aviary-credentials-file",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
    // We pass only what the client signed: nothing to exclude.
    settings.excluded_headers = None;
    if let Some(expires) = claim.expires {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&claim.region)
        .name(SERVICE)
        .time(claim.time)
        .settings(settings)
        .build()
        .map_err(|e| SigError::Invalid(format!("cannot check the signature: {e}")))?
        .into();
    let signable = SignableRequest::new(
        method,
        uri,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    )
    .map_err(|e| SigError::Invalid(format!("cannot check the signature: {e}")))?;
    let output = sign(signable, &params)
        .map_err(|e| SigError::Invalid(format!("cannot check the signature: {e}")))?;
    Ok(output.signature().to_string())
}

/// What a request says about its signature.
#[derive(Debug)]
struct Claim {
    access_key: String,
    region: String,
    signed_headers: String,
    signature: String,
    time: SystemTime,
    /// Set for a presigned URL.
    expires: Option<Duration>,
}

impl Claim {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261201/us-west-2/appmesh/aws4_request,
    /// SignedHeaders=host;x-amz-date, Signature=...` and `X-Amz-Date`.
    fn from_headers(headers: &HeaderMap, now: SystemTime) -> Result<Claim, SigError> {
        let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return Err(SigError::Missing);
        };
        let Some(fields) = auth.strip_prefix(ALGORITHM) else {
            return Err(SigError::Missing);
        };
        let mut parts: HashMap<&str, &str> = HashMap::new();
        for part in fields.split(',') {
            if let Some((k, v)) = part.trim().split_once('=') {
                parts.insert(k, v);
            }
        }
        let field = |name: &str| {
            parts.get(name).map(|v| v.to_string()).ok_or_else(|| {
                SigError::Invalid(format!("Authorization header requires '{name}' parameter"))
            })
        };
        let (credential, signed_headers, signature) = (
            field("Credential")?,
            field("SignedHeaders")?,
            field("Signature")?,
        );
        let date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                SigError::Invalid("Authorization header requires existence of 'X-Amz-Date'".into())
            })?;
        let time = parse_amz_date(date)?;
        check_skew(time, now, date)?;
        Claim::build(&credential, signed_headers, signature, time, None)
    }

    /// `?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=...&X-Amz-Date=...&X-Amz-Expires=N
    /// &X-Amz-SignedHeaders=host&X-Amz-Signature=...`.
    fn from_query(params: &[(String, String)], now: SystemTime) -> Result<Claim, SigError> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| SigError::Invalid(format!("presigned URL requires '{name}'")))
        };
        if get("X-Amz-Algorithm")? != ALGORITHM {
            return Err(SigError::Invalid(format!(
                "X-Amz-Algorithm: only {ALGORITHM} is supported"
            )));
        }
        let date = get("X-Amz-Date")?;
        let time = parse_amz_date(&date)?;
        let expires: u64 = get("X-Amz-Expires")?
            .parse()
            .ok()
            .filter(|s| (1..=MAX_EXPIRES).contains(s))
            .ok_or_else(|| {
                SigError::Invalid(format!(
                    "X-Amz-Expires must be a number of seconds from 1 to {MAX_EXPIRES}"
                ))
            })?;
        if time > now + MAX_SKEW {
            return Err(SigError::Invalid(format!(
                "Signature not yet current: {date} is later than now + 15 min"
            )));
        }
        if time + Duration::from_secs(expires) < now {
            return Err(SigError::Invalid(format!(
                "Signature expired: {date} + {expires} s is earlier than now"
            )));
        }
        Claim::build(
            &get("X-Amz-Credential")?,
            get("X-Amz-SignedHeaders")?,
            get("X-Amz-Signature")?,
            time,
            Some(Duration::from_secs(expires)),
        )
    }

    fn build(
        credential: &str,
        signed_headers: String,
        signature: String,
        time: SystemTime,
        expires: Option<Duration>,
    ) -> Result<Claim, SigError> {
        // AKID/date/region/service/aws4_request
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, "aws4_request"] = scope[..] else {
            return Err(SigError::Invalid(format!(
                "Credential '{credential}' is not AKID/date/region/service/aws4_request"
            )));
        };
        if service != SERVICE {
            return Err(SigError::Invalid(format!(
                "Credential should be scoped to correct service: '{SERVICE}', not '{service}'"
            )));
        }
        if !format_amz_date(time).starts_with(date) {
            return Err(SigError::Invalid(format!(
                "Credential should be scoped to a valid date: '{date}' is not the request's"
            )));
        }
        Ok(Claim {
            access_key: access_key.to_string(),
            region: region.to_string(),
            signed_headers: signed_headers.to_ascii_lowercase(),
            signature,
            time,
            expires,
        })
    }
}

fn check_skew(time: SystemTime, now: SystemTime, date: &str) -> Result<(), SigError> {
    let skew = match now.duration_since(time) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > MAX_SKEW {
        return Err(SigError::Invalid(format!(
            "Signature expired: {date} is more than 15 min away from the server's time {}",
            format_amz_date(now)
        )));
    }
    Ok(())
}

/// `key=value` pairs of a query, percent-decoded.
fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `20261201T203000Z` → a time.
pub fn parse_amz_date(text: &str) -> Result<SystemTime, SigError> {
    let bad = || {
        SigError::Invalid(format!(
            "X-Amz-Date '{text}' is not in the ISO 8601 basic format YYYYMMDD'T'HHMMSS'Z'"
        ))
    };
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, SigError> {
        text.get(range)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
    let secs = u64::try_from(secs).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

pub fn format_amz_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
