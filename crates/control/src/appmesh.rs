//! The App Mesh 2019-01-25 REST API: maps each of the 38 operations' method and path onto
//! `Resources`, and answers the payload shapes of the service model.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use model::Kind;
use serde_json::{Value, json};

use crate::App;
use crate::body;
use crate::error::ApiError;
use crate::telemetry::ApiRequest;
use model::ResourcePath;

pub const PREFIX: &str = "/v20190125/";

/// What a path names: one resource, a collection of one kind in a scope, or a tag operation.
enum Target {
    Item(ResourcePath),
    Collection(ResourcePath),
    Tag,
    Untag,
    Tags,
}

pub async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = tokio::time::Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let (operation, result) = match parse_target(uri.path()) {
        Some(target) => {
            let operation = operation_name(&method, &target);
            let result = match body::read_json(request, body::MAX_BODY_BYTES).await {
                Ok(body) => dispatch(&app, &method, &uri, target, body).await,
                Err(err) => Err(err),
            };
            (operation, result)
        }
        None => (
            "Unknown".to_string(),
            Err(ApiError::NotFound(format!(
                "no App Mesh operation at path {}",
                uri.path()
            ))),
        ),
    };
    let response = match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(err) => err.into_response(),
    };
    ApiRequest {
        operation: &operation,
        method: method.as_str(),
        status: response.status().as_u16(),
        elapsed: started.elapsed(),
    }
    .emit(&app.telemetry);
    response
}

async fn dispatch(
    app: &App,
    method: &Method,
    uri: &Uri,
    target: Target,
    body: Value,
) -> Result<Value, ApiError> {
    let resources = &app.resources;
    let query = query_of(uri)?;
    let not_allowed = || ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    };
    match target {
        // Create, describe, update and delete outputs have a `payload` in the service model:
        // the body is the `*Data` itself, not an object wrapping it.
        Target::Item(id) => match *method {
            Method::GET => resources.describe(&id).await,
            Method::PUT => resources.update(&id, &body).await,
            Method::DELETE => resources.delete(&id).await,
            _ => Err(not_allowed()),
        },
        Target::Collection(mut id) => match *method {
            Method::GET => {
                let limit = parse_limit(&query)?;
                let page = resources
                    .list(&id, limit, query.get("nextToken").map(String::as_str))
                    .await?;
                let mut out = json!({ id.kind.plural(): page.items });
                if let Some(token) = page.next_token {
                    out["nextToken"] = json!(token);
                }
                Ok(out)
            }
            Method::PUT => {
                id.name = body[id.kind.name_field()]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if id.kind == Kind::Mesh {
                    id.mesh = id.name.clone();
                }
                resources.create(&id, &body).await
            }
            _ => Err(not_allowed()),
        },
        Target::Tags if *method == Method::GET => {
            let tags = resources.list_tags(resource_arn(&query)?).await?;
            let limit = parse_limit(&query)?.unwrap_or(usize::MAX);
            let start = match query.get("nextToken") {
                Some(token) => token.parse::<usize>().map_err(|_| {
                    ApiError::BadRequest(format!("nextToken: '{token}' is not a valid token"))
                })?,
                None => 0,
            };
            let page: Vec<_> = tags.iter().skip(start).take(limit).collect();
            let mut out = json!({ "tags": page });
            if start + page.len() < tags.len() {
                out["nextToken"] = json!((start + page.len()).to_string());
            }
            Ok(out)
        }
        Target::Tag if *method == Method::PUT => {
            resources.tag(resource_arn(&query)?, &body).await?;
            Ok(json!({}))
        }
        Target::Untag if *method == Method::PUT => {
            resources.untag(resource_arn(&query)?, &body).await?;
            Ok(json!({}))
        }
        Target::Tags | Target::Tag | Target::Untag => Err(not_allowed()),
    }
}

/// Maps a path onto what it names. Path segments are percent-decoded so that a name like
/// `a%2Fb` reaches validation as `a/b` and is refused there with a clear message. A trailing
/// slash after a collection (`.../virtualNodes/`) leaves an empty name: it parses as an item
/// named '' and `Resources` refuses it (400 naming the field), never a resource ''; a trailing
/// slash after an item's name matches no operation (404).
fn parse_target(path: &str) -> Option<Target> {
    let rest = path.strip_prefix(PREFIX)?;
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let id = |kind: Kind, mesh: &str, parent: Option<&str>, name: &str| ResourcePath {
        kind,
        mesh: mesh.to_string(),
        parent: parent.map(str::to_string),
        name: name.to_string(),
    };
    let mesh_child = |collection: &str| {
        [
            Kind::VirtualNode,
            Kind::VirtualRouter,
            Kind::VirtualService,
            Kind::VirtualGateway,
        ]
        .into_iter()
        .find(|k| k.plural() == collection)
    };
    let target = match s.as_slice() {
        ["tag"] => Target::Tag,
        ["untag"] => Target::Untag,
        ["tags"] => Target::Tags,
        ["meshes"] => Target::Collection(id(Kind::Mesh, "", None, "")),
        ["meshes", mesh] => Target::Item(ResourcePath::mesh(*mesh)),
        ["meshes", mesh, collection] => {
            Target::Collection(id(mesh_child(collection)?, mesh, None, ""))
        }
        ["meshes", mesh, collection, name] => {
            Target::Item(id(mesh_child(collection)?, mesh, None, name))
        }
        ["meshes", mesh, "virtualRouter", router, "routes"] => {
            Target::Collection(id(Kind::Route, mesh, Some(router), ""))
        }
        ["meshes", mesh, "virtualRouter", router, "routes", name] => {
            Target::Item(id(Kind::Route, mesh, Some(router), name))
        }
        ["meshes", mesh, "virtualGateway", gateway, "gatewayRoutes"] => {
            Target::Collection(id(Kind::GatewayRoute, mesh, Some(gateway), ""))
        }
        [
            "meshes",
            mesh,
            "virtualGateway",
            gateway,
            "gatewayRoutes",
            name,
        ] => Target::Item(id(Kind::GatewayRoute, mesh, Some(gateway), name)),
        _ => return None,
    };
    Some(target)
}

/// The service model's name for this request, for metrics and logs.
fn operation_name(method: &Method, target: &Target) -> String {
    let verb = match (target, method.as_str()) {
        (Target::Tag, _) => return "TagResource".into(),
        (Target::Untag, _) => return "UntagResource".into(),
        (Target::Tags, _) => return "ListTagsForResource".into(),
        (Target::Item(_), "GET") => "Describe",
        (Target::Item(_), "PUT") => "Update",
        (Target::Item(_), "DELETE") => "Delete",
        (Target::Collection(_), "GET") => "List",
        (Target::Collection(_), "PUT") => "Create",
        _ => return "MethodNotAllowed".into(),
    };
    let kind = match target {
        Target::Item(id) | Target::Collection(id) => id.kind,
        _ => unreachable!("tag targets returned above"),
    };
    kind.operation(verb)
}

fn query_of(uri: &Uri) -> Result<HashMap<String, String>, ApiError> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::BadRequest(format!("query string: {e}")))
}

fn parse_limit(query: &HashMap<String, String>) -> Result<Option<usize>, ApiError> {
    let Some(raw) = query.get("limit") else {
        return Ok(None);
    };
    match raw.parse::<usize>() {
        Ok(limit) if (1..=100).contains(&limit) => Ok(Some(limit)),
        _ => Err(ApiError::BadRequest(format!(
            "limit: must be an integer from 1 to 100, got '{raw}'"
        ))),
    }
}

fn resource_arn(query: &HashMap<String, String>) -> Result<&str, ApiError> {
    query
        .get("resourceArn")
        .map(String::as_str)
        .ok_or_else(|| ApiError::BadRequest("resourceArn: is required".into()))
}

pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `body` as JSON: a `Value`, or a `model::wire` type.
pub fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    let Ok(text) = serde_json::to_string(body) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(text))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
