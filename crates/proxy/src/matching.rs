//! Request matching of routes and gateway routes: path prefix, exact path or regex, method,
//! headers, query parameters, port and (gateway routes) hostname, as App Mesh defines them.

use http::{HeaderMap, Method};
use model::typed;
use regex::Regex;

/// What a match looks at, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// The path without the query string.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The host the request names, without a port, lowercase.
    pub host: &'a str,
    /// The port the request came in on (gateway) or names (egress), when known.
    pub port: Option<u16>,
}

/// One route's match, compiled (regexes built once per configuration).
#[derive(Debug, Clone, Default)]
pub struct HttpMatch {
    prefix: Option<String>,
    path: Option<PathMatch>,
    method: Option<Method>,
    headers: Vec<HeaderCondition>,
    query: Vec<QueryCondition>,
    port: Option<u16>,
    hostname: Option<HostnameMatch>,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Exact(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct HeaderCondition {
    name: http::HeaderName,
    invert: bool,
    value: Option<ValueMatch>,
}

/// How a header's (or a canary rule's cookie's) value must read.
#[derive(Debug, Clone)]
pub(crate) enum ValueMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(Regex),
    /// `start <= value < end`, as Envoy's range match.
    Range(i64, i64),
}

#[derive(Debug, Clone)]
struct QueryCondition {
    name: String,
    exact: Option<String>,
}

#[derive(Debug, Clone)]
enum HostnameMatch {
    Exact(String),
    Suffix(String),
}

fn http_method(method: typed::HttpMethod) -> Method {
    use typed::HttpMethod as M;
    match method {
        M::Get => Method::GET,
        M::Head => Method::HEAD,
        M::Post => Method::POST,
        M::Put => Method::PUT,
        M::Delete => Method::DELETE,
        M::Connect => Method::CONNECT,
        M::Options => Method::OPTIONS,
        M::Trace => Method::TRACE,
        M::Patch => Method::PATCH,
    }
}

/// Regexes match the whole value, as Envoy's `safe_regex` does.
pub(crate) fn full_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("regex '{pattern}': {e}"))
}

impl HttpMatch {
    /// Compiles an HTTP route's `match`. Its `scheme` is not matched on.
    pub fn from_route(m: &typed::HttpRouteMatch) -> Result<HttpMatch, String> {
        HttpMatch::common(
            &m.prefix,
            &m.path,
            m.method,
            &m.headers,
            &m.query_parameters,
            m.port,
        )
    }

    /// Compiles an HTTP gateway route's `match`.
    pub fn from_gateway(m: &typed::HttpGatewayRouteMatch) -> Result<HttpMatch, String> {
        let mut matcher = HttpMatch::common(
            &m.prefix,
            &m.path,
            m.method,
            &m.headers,
            &m.query_parameters,
            m.port,
        )?;
        matcher.hostname = m
            .hostname
            .as_ref()
            .and_then(|h| match (&h.exact, &h.suffix) {
                (Some(exact), _) => Some(HostnameMatch::Exact(exact.to_ascii_lowercase())),
                (None, Some(suffix)) => Some(HostnameMatch::Suffix(suffix.to_ascii_lowercase())),
                (None, None) => None,
            });
        Ok(matcher)
    }

    /// What routes and gateway routes match alike.
    fn common(
        prefix: &Option<String>,
        path: &Option<typed::HttpPathMatch>,
        method: Option<typed::HttpMethod>,
        headers: &[typed::HttpRouteHeader],
        query: &[typed::HttpQueryParameter],
        port: Option<u16>,
    ) -> Result<HttpMatch, String> {
        let path = match path {
            Some(typed::HttpPathMatch {
                exact: Some(exact), ..
            }) => Some(PathMatch::Exact(exact.clone())),
            Some(typed::HttpPathMatch {
                regex: Some(regex), ..
            }) => Some(PathMatch::Regex(full_regex(regex)?)),
            _ => None,
        };
        let mut conditions = Vec::new();
        for header in headers {
            let name = http::HeaderName::from_bytes(header.name.to_ascii_lowercase().as_bytes())
                .map_err(|e| format!("header '{}': {e}", header.name))?;
            use typed::HeaderMatch as H;
            let value = match &header.r#match {
                None => None,
                Some(H::Exact(v)) => Some(ValueMatch::Exact(v.clone())),
                Some(H::Prefix(v)) => Some(ValueMatch::Prefix(v.clone())),
                Some(H::Suffix(v)) => Some(ValueMatch::Suffix(v.clone())),
                Some(H::Regex(v)) => Some(ValueMatch::Regex(full_regex(v)?)),
                Some(H::Range { start, end }) => Some(ValueMatch::Range(*start, *end)),
            };
            conditions.push(HeaderCondition {
                name,
                invert: header.invert,
                value,
            });
        }
        let query = query
            .iter()
            .map(|q| QueryCondition {
                name: q.name.clone(),
                exact: q.r#match.as_ref().and_then(|m| m.exact.clone()),
            })
            .collect();
        Ok(HttpMatch {
            prefix: prefix.clone(),
            path,
            method: method.map(http_method),
            headers: conditions,
            query,
            port,
            hostname: None,
        })
    }

    /// A match on a path prefix only (a gRPC service's methods, a node provider's catch-all).
    pub fn prefix(prefix: impl Into<String>) -> HttpMatch {
        HttpMatch {
            prefix: Some(prefix.into()),
            ..HttpMatch::default()
        }
    }

    pub fn exact_path(path: impl Into<String>) -> HttpMatch {
        HttpMatch {
            path: Some(PathMatch::Exact(path.into())),
            ..HttpMatch::default()
        }
    }

    pub fn with_port(mut self, port: Option<u16>) -> HttpMatch {
        self.port = port;
        self
    }

    /// The prefix this match requires, for prefix rewrites.
    pub fn matched_prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// Whether the match looks at the request's hostname.
    pub fn matches_hostname(&self) -> bool {
        self.hostname.is_some()
    }

    pub fn is_exact_path(&self) -> bool {
        matches!(self.path, Some(PathMatch::Exact(_)))
    }

    /// How specific the match is, for ordering routes of equal priority: an exact path first,
    /// then a regex, then the longest prefix; more conditions break ties.
    pub fn specificity(&self) -> (u8, usize, usize) {
        let conditions = self.headers.len()
            + self.query.len()
            + usize::from(self.method.is_some())
            + usize::from(self.hostname.is_some());
        match (&self.path, &self.prefix) {
            (Some(PathMatch::Exact(p)), _) => (2, p.len(), conditions),
            (Some(PathMatch::Regex(_)), _) => (1, 0, conditions),
            (None, Some(prefix)) => (0, prefix.len(), conditions),
            (None, None) => (0, 0, conditions),
        }
    }

    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        if let Some(prefix) = &self.prefix
            && !request.path.starts_with(prefix.as_str())
        {
            return false;
        }
        match &self.path {
            Some(PathMatch::Exact(exact)) if request.path != exact => return false,
            Some(PathMatch::Regex(regex)) if !regex.is_match(request.path) => return false,
            _ => {}
        }
        if let Some(method) = &self.method
            && request.method != method
        {
            return false;
        }
        if let (Some(want), Some(port)) = (self.port, request.port)
            && want != port
        {
            return false;
        }
        if let Some(hostname) = &self.hostname {
            let ok = match hostname {
                HostnameMatch::Exact(exact) => request.host == exact,
                HostnameMatch::Suffix(suffix) => request.host.ends_with(suffix.as_str()),
            };
            if !ok {
                return false;
            }
        }
        self.headers.iter().all(|h| h.matches(request.headers))
            && self.query.iter().all(|q| q.matches(request.query))
    }
}

impl HeaderCondition {
    fn matches(&self, headers: &HeaderMap) -> bool {
        let found = match &self.value {
            None => headers.contains_key(&self.name),
            Some(want) => headers
                .get_all(&self.name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| want.matches(v)),
        };
        found != self.invert
    }
}

impl ValueMatch {
    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(want) => value == want,
            ValueMatch::Prefix(want) => value.starts_with(want.as_str()),
            ValueMatch::Suffix(want) => value.ends_with(want.as_str()),
            ValueMatch::Regex(regex) => regex.is_match(value),
            ValueMatch::Range(start, end) => value
                .trim()
                .parse::<i64>()
                .is_ok_and(|n| *start <= n && n < *end),
        }
    }
}

impl QueryCondition {
    fn matches(&self, query: Option<&str>) -> bool {
        let mut pairs = query.unwrap_or("").split('&').filter(|p| !p.is_empty());
        pairs.any(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            name == self.name && self.exact.as_deref().is_none_or(|want| want == value)
        })
    }
}

#[cfg(test)]
mod tests;
