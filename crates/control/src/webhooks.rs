//! Canary webhooks: which URLs the control plane may POST to (`--webhook-allow`), and the one
//! HTTP client that calls them, with a timeout and without following redirects.

use std::time::Duration;

use reqwest::Url;
use rollout::{Webhook, WebhookResult};
use serde_json::Value;

/// The longest a webhook call may take, whatever its spec says: a call holds a task and a
/// connection, and a canary step calls its webhooks again on every restart.
pub const MAX_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// An `--webhook-allow` value that is not an http(s) URL prefix.
#[derive(Debug, thiserror::Error)]
#[error("--webhook-allow '{prefix}': {reason}")]
pub struct InvalidPrefix {
    pub prefix: String,
    pub reason: String,
}

/// Where webhooks may go, and the client that takes them there.
pub struct WebhookPolicy {
    /// Empty: any http(s) URL.
    allowed: Vec<Prefix>,
    client: reqwest::Client,
}

/// One allowed prefix, compared by parsed parts rather than as text, so that
/// `http://127.0.0.1:9000@evil.example/` or `/hooks/../admin` cannot pass for it.
struct Prefix {
    text: String,
    url: Url,
}

impl WebhookPolicy {
    pub fn new(prefixes: &[String]) -> Result<WebhookPolicy, InvalidPrefix> {
        let allowed = prefixes
            .iter()
            .map(|text| parse_prefix(text))
            .collect::<Result<Vec<_>, _>>()?;
        let client = crate::tls::http_client(MAX_WEBHOOK_TIMEOUT).map_err(|e| InvalidPrefix {
            prefix: String::new(),
            reason: format!("cannot build the webhook HTTP client: {e}"),
        })?;
        Ok(WebhookPolicy { allowed, client })
    }

    /// Whether `url` may be called; the error says why not, naming the allowed prefixes.
    pub fn check(&self, url: &str) -> Result<(), String> {
        if self.allowed.is_empty() {
            return Ok(());
        }
        let allowed = || {
            let list: Vec<&str> = self.allowed.iter().map(|p| p.text.as_str()).collect();
            format!(
                "this control plane calls webhooks only under {} (--webhook-allow)",
                list.join(", ")
            )
        };
        let parsed =
            Url::parse(url).map_err(|e| format!("'{url}' is not a URL ({e}); {}", allowed()))?;
        if self.allowed.iter().any(|prefix| prefix.matches(&parsed)) {
            Ok(())
        } else {
            Err(format!("'{url}' is not allowed: {}", allowed()))
        }
    }

    /// POSTs `payload` to the hook, unless the policy forbids it (a canary stored before the
    /// list was set is refused here, with the reason, instead of being sent).
    pub async fn call(&self, hook: &Webhook, payload: &Value) -> WebhookResult {
        let outcome = match self.check(&hook.url) {
            Ok(()) => self.send(hook, payload).await,
            Err(reason) => Err(format!("not sent: {reason}")),
        };
        WebhookResult {
            name: hook.name.clone(),
            outcome,
        }
    }

    /// GETs `url` with `query` parameters and reads its JSON answer (a Prometheus query), unless
    /// the policy forbids the URL.
    pub async fn get_json(
        &self,
        url: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Value, String> {
        self.check(url)
            .map_err(|reason| format!("not sent: {reason}"))?;
        let mut url = Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
        url.query_pairs_mut().extend_pairs(query);
        let sent = self
            .client
            .get(url)
            .timeout(timeout.min(MAX_WEBHOOK_TIMEOUT))
            .send()
            .await;
        match sent {
            Ok(answer) => {
                let status = answer.status();
                let body: Value = answer
                    .json()
                    .await
                    .map_err(|e| format!("answered {status} without JSON: {e}"))?;
                Ok(body)
            }
            Err(e) if e.is_timeout() => Err(format!("no answer within {timeout:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// GETs `url` (with `host` as its `Host` header, when given) and reads and discards the
    /// answer, unless the policy forbids the URL: one request of a canary's synthetic load.
    /// A transport failure or a 5xx is an error.
    pub async fn get_discard(
        &self,
        url: &str,
        host: Option<&str>,
        timeout: Duration,
    ) -> Result<reqwest::StatusCode, String> {
        self.check(url)
            .map_err(|reason| format!("not sent: {reason}"))?;
        let mut request = self
            .client
            .get(url)
            .timeout(timeout.min(MAX_WEBHOOK_TIMEOUT));
        if let Some(host) = host {
            request = request.header(reqwest::header::HOST, host);
        }
        let mut answer = request.send().await.map_err(|e| e.to_string())?;
        let status = answer.status();
        // Read to the end, so the connection is reused, without keeping it.
        while answer.chunk().await.map_err(|e| e.to_string())?.is_some() {}
        if status.is_server_error() {
            return Err(format!("answered {status}"));
        }
        Ok(status)
    }

    async fn send(&self, hook: &Webhook, payload: &Value) -> Result<(), String> {
        let timeout = hook.timeout.min(MAX_WEBHOOK_TIMEOUT);
        let sent = self
            .client
            .post(&hook.url)
            .timeout(timeout)
            .json(payload)
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) if answer.status().is_redirection() => Err(format!(
                "answered {} (redirects are not followed)",
                answer.status()
            )),
            Ok(answer) => Err(format!("answered {}", answer.status())),
            Err(e) if e.is_timeout() => Err(format!("no answer within {timeout:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn parse_prefix(text: &str) -> Result<Prefix, InvalidPrefix> {
    let invalid = |reason: &str| InvalidPrefix {
        prefix: text.to_string(),
        reason: reason.to_string(),
    };
    let url = Url::parse(text).map_err(|e| invalid(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid(
            "must be scheme, host, port and path only (no query, fragment or user)",
        ));
    }
    Ok(Prefix {
        text: text.to_string(),
        url,
    })
}

impl Prefix {
    /// Same scheme, host and port, and a path at or below the prefix's path (whole segments:
    /// `/hooks` allows `/hooks` and `/hooks/x`, not `/hooksx`).
    fn matches(&self, url: &Url) -> bool {
        if url.scheme() != self.url.scheme()
            || url.host_str() != self.url.host_str()
            || url.port_or_known_default() != self.url.port_or_known_default()
        {
            return false;
        }
        let base = self.url.path();
        let path = url.path();
        match path.strip_prefix(base) {
            None => false,
            Some(rest) => base.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        }
    }
}

#[cfg(test)]
mod tests;
