//! The admin listener: `/metrics` (Prometheus text), `/healthz`, `/config` (the snapshot in use).

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::ResponseBody;
use crate::forward::text_response;
use crate::{Role, Shared};

pub async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<ResponseBody> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => text_response(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.telemetry.render(),
        ),
        "/healthz" => text_response(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        "/config" => {
            let table = shared.table.load();
            let role = match &shared.role {
                Role::Gateway(name) => json!({ "virtualGateway": name }),
                Role::Node(name) => json!({ "virtualNode": name }),
                Role::Mesh => json!({ "mesh": true }),
                Role::Agent { host } => json!({ "agent": host }),
            };
            let body = json!({
                "mesh": table.mesh(),
                "role": role,
                "revision": table.revision,
                "appliedAtUnixMicros": shared.applied_at.load(std::sync::atomic::Ordering::Relaxed),
                "source": table.source.map(|s| s.as_str()),
                "problems": table.problems,
                "snapshot": table.snapshot.to_wire(),
            });
            text_response(StatusCode::OK, "application/json", format!("{body}\n"))
        }
        other => text_response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            format!("no admin endpoint {other}; try /metrics, /healthz or /config\n"),
        ),
    }
}
