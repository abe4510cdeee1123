//! Canary exposure on the request path: what a live canary asks of proxies besides its route's
//! weights (a share of requests mirrored to it, requests matching A/B rules sent to it, a
//! cookie that keeps a caller on it), as read off its record ([`Exposure`]) and as compiled onto
//! the route it drives ([`Overlay`]).
//!
//! The rules themselves are `rollout`'s ([`rollout::exposure`]); this module only carries them
//! out. An overlay is built once per configuration, so a request of a route without one pays a
//! single `Option` check, and one with one a few header lookups.

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};
use model::wire::CanaryRecord;
use rollout::{RequestMatch, Sticky};

use crate::matching::{ValueMatch, full_regex};
use crate::weighted::WeightedChoice;

/// What one canary asks of proxies now, beyond weights: [`rollout::Exposure`] owned, with the
/// route it applies to, so two versions of a record can be compared (a record is rewritten on
/// every state change and evidence window; most rewrites change nothing here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// The canary record's name, for messages.
    pub canary: String,
    pub router: String,
    pub route: String,
    /// The canary's virtual node: a weighted target of the route.
    pub canary_node: String,
    /// Percent (1..=100) of the route's requests copied to the canary node.
    pub mirror_percent: Option<u32>,
    /// Requests matching any of these go to the canary node.
    pub matches: Vec<RequestMatch>,
    /// Keeps callers the weighted choice sent to the canary there.
    pub sticky: Option<Sticky>,
}

impl Exposure {
    /// The record's exposure now; `None` when the canary ended or exposes itself only by weight.
    pub fn of(record: &CanaryRecord) -> Option<Exposure> {
        let spec = &record.spec;
        let exposure = rollout::exposure(spec, &record.state)?;
        Some(Exposure {
            canary: record.name.clone(),
            router: spec.router.clone(),
            route: spec.route.clone(),
            canary_node: spec.canary_node.clone(),
            mirror_percent: exposure
                .mirror_percent
                .map(|p| p.min(100))
                .filter(|&p| p > 0),
            matches: exposure.matches.to_vec(),
            sticky: exposure.sticky.cloned(),
        })
    }
}

/// One canary's exposure compiled onto one route: what [`crate::forward`] consults per request.
#[derive(Debug)]
pub struct Overlay {
    /// The canary record's name, for logs.
    pub canary: String,
    /// The index of the canary node among the route's targets.
    pub target: usize,
    rules: Vec<Rule>,
    sticky: Option<StickyCookie>,
    /// 1..=100.
    mirror_percent: Option<u32>,
}

/// One A/B rule, compiled: where the value is read, and how it must read.
#[derive(Debug)]
struct Rule {
    source: Source,
    test: ValueMatch,
}

#[derive(Debug)]
enum Source {
    /// A header (its name lowercase, so matched case-insensitively); any of its values.
    Header(HeaderName),
    /// A cookie of the `Cookie` header(s), by exact name; any cookie of that name.
    Cookie(String),
}

/// The sticky cookie: its name, the value that means "the canary" (the canary node's name),
/// and the `Set-Cookie` that hands it out, built once.
#[derive(Debug)]
struct StickyCookie {
    name: String,
    value: String,
    set_cookie: HeaderValue,
}

/// What the overlay makes of one request, before its first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The target of the first attempt, instead of the weighted choice's (a rule matched, or
    /// the request carries the sticky cookie while the canary has weight).
    pub first: Option<usize>,
    /// Hand out the sticky cookie if the weighted choice picks the canary: sticky is on and
    /// the request did not come with a valid one.
    pub offer_cookie: bool,
    /// Send a copy of the request to the canary.
    pub mirror: bool,
}

impl Overlay {
    /// Compiles `exposure` for a route whose targets are `targets` (node names, in order).
    /// `None` when the canary node is not a target or nothing of the exposure compiles; each
    /// rule or cookie that cannot be compiled is a problem, and is left out.
    pub fn compile<'a>(
        exposure: &Exposure,
        targets: impl IntoIterator<Item = &'a str>,
        problems: &mut Vec<String>,
    ) -> Option<Overlay> {
        let target = targets
            .into_iter()
            .position(|node| node == exposure.canary_node)?;
        let what = |detail: String| format!("canary '{}': {detail}", exposure.canary);
        let mut rules = Vec::new();
        for rule in &exposure.matches {
            match Rule::compile(rule) {
                Ok(rule) => rules.push(rule),
                Err(problem) => problems.push(what(format!("match rule {rule}: {problem}"))),
            }
        }
        let sticky = exposure.sticky.as_ref().and_then(|sticky| {
            StickyCookie::new(sticky, &exposure.canary_node)
                .map_err(|problem| problems.push(what(problem)))
                .ok()
        });
        let overlay = Overlay {
            canary: exposure.canary.clone(),
            target,
            rules,
            sticky,
            mirror_percent: exposure.mirror_percent,
        };
        let acts = !overlay.rules.is_empty()
            || overlay.sticky.is_some()
            || overlay.mirror_percent.is_some();
        acts.then_some(overlay)
    }

    /// What to do with a request carrying `headers` on a route choosing by `choice`. The mirror
    /// draw uses the same random source as the weighted choice's retries.
    pub fn decide(&self, headers: &HeaderMap, choice: &WeightedChoice) -> Decision {
        let mut decision = Decision {
            first: None,
            offer_cookie: false,
            mirror: false,
        };
        if self.rules.iter().any(|rule| rule.matches(headers)) {
            decision.first = Some(self.target);
        } else if let Some(sticky) = &self.sticky {
            if sticky.carried(headers) {
                // Weight 0 (the route not yet moved, or moved back): the cookie means nothing.
                if choice.weight(self.target) > 0 {
                    decision.first = Some(self.target);
                }
            } else {
                decision.offer_cookie = true;
            }
        }
        // A request already bound for the canary is not sent there twice.
        decision.mirror = decision.first.is_none()
            && self
                .mirror_percent
                .is_some_and(|p| p >= 100 || fastrand::u32(0..100) < p);
        decision
    }

    /// The `Set-Cookie` value that keeps a caller on the canary, when sticky is on.
    pub fn set_cookie(&self) -> Option<&HeaderValue> {
        self.sticky.as_ref().map(|s| &s.set_cookie)
    }
}

impl Rule {
    fn compile(rule: &RequestMatch) -> Result<Rule, String> {
        let source = match (&rule.header, &rule.cookie) {
            (Some(name), None) => HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map(Source::Header)
                .map_err(|e| format!("header name: {e}"))?,
            (None, Some(name)) => Source::Cookie(name.clone()),
            _ => return Err("needs exactly one of header and cookie".into()),
        };
        let test = match (&rule.exact, &rule.prefix, &rule.suffix, &rule.regex) {
            (Some(v), None, None, None) => ValueMatch::Exact(v.clone()),
            (None, Some(v), None, None) => ValueMatch::Prefix(v.clone()),
            (None, None, Some(v), None) => ValueMatch::Suffix(v.clone()),
            (None, None, None, Some(pattern)) => ValueMatch::Regex(full_regex(pattern)?),
            _ => return Err("needs exactly one of exact, prefix, suffix and regex".into()),
        };
        Ok(Rule { source, test })
    }

    fn matches(&self, headers: &HeaderMap) -> bool {
        match &self.source {
            Source::Header(name) => headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| self.test.matches(v)),
            Source::Cookie(name) => cookies(headers)
                .filter(|(n, _)| n == name)
                .any(|(_, v)| self.test.matches(v)),
        }
    }
}

impl StickyCookie {
    fn new(sticky: &Sticky, node: &str) -> Result<StickyCookie, String> {
        let name = &sticky.cookie;
        if !rollout::http_token(name) {
            return Err(format!("sticky cookie name {name:?} is not a cookie name"));
        }
        if !node.bytes().all(is_cookie_octet) {
            return Err(format!("node name {node:?} cannot be a cookie value"));
        }
        // A Max-Age below a second would be 0, which deletes the cookie: keep it a second.
        let max_age = sticky.max_age.as_secs().max(1);
        let text = format!("{name}={node}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
        let set_cookie = HeaderValue::from_str(&text).map_err(|e| format!("Set-Cookie: {e}"))?;
        Ok(StickyCookie {
            name: name.clone(),
            value: node.to_string(),
            set_cookie,
        })
    }

    /// Whether the request carries this cookie with the canary's value.
    fn carried(&self, headers: &HeaderMap) -> bool {
        cookies(headers).any(|(n, v)| n == self.name && v == self.value)
    }
}

/// The `name=value` pairs of every `Cookie` header (HTTP/2 sends one per cookie), in order:
/// pairs split on `;`, blanks around names and values trimmed, a value's double quotes
/// removed, and pieces without `=` or with an empty name skipped (RFC 6265 §5.4, §4.2.1). A
/// header that is not visible ASCII is skipped whole.
pub fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (!name.is_empty()).then_some((name, value))
        })
}

/// RFC 6265 `cookie-octet`: what a cookie value may be made of.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests;
