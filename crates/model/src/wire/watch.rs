//! The watch stream (`GET /v1/meshes/{mesh}/watch`, server-sent events): one `Change` per put or delete, and `relist`.
//!
//! Every change is one SSE event: `id: <revision>`, `event: put|delete`, and `data:` the
//! change's JSON `{"revision", "type", "kind", "mesh", "name", "resource", "parent"?}`, where
//! `resource` is the put's object (`null` for a delete) and `parent` the router, gateway or
//! virtual node an object lives under. `event: relist` ends a stream whose history is gone.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CanaryRecord, Endpoint, Raw, Workload};
use crate::Kind;

/// aviary's own kinds, kept in the store beside the App Mesh resources of their mesh so that
/// snapshots and watch streams carry them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AviaryKind {
    /// A registered instance of a virtual node; lives under the node.
    Endpoint,
    Workload,
    Canary,
}

impl AviaryKind {
    pub const ALL: [AviaryKind; 3] = [
        AviaryKind::Endpoint,
        AviaryKind::Workload,
        AviaryKind::Canary,
    ];

    /// As a change's `kind` and in store keys: `Endpoint`.
    pub fn as_str(self) -> &'static str {
        match self {
            AviaryKind::Endpoint => "Endpoint",
            AviaryKind::Workload => "Workload",
            AviaryKind::Canary => "Canary",
        }
    }

    /// The collection's name in `/v1` paths and snapshots: `endpoints`.
    pub fn plural(self) -> &'static str {
        match self {
            AviaryKind::Endpoint => "endpoints",
            AviaryKind::Workload => "workloads",
            AviaryKind::Canary => "canaries",
        }
    }
}

/// The kind a change names: one of App Mesh's or one of aviary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    AppMesh(Kind),
    Aviary(AviaryKind),
}

impl ObjectKind {
    /// As a change's `kind`: `VirtualNode`, `Endpoint`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::AppMesh(kind) => kind.as_str(),
            ObjectKind::Aviary(kind) => kind.as_str(),
        }
    }

    /// The exact spelling of [`ObjectKind::as_str`]; `None` for any other.
    pub fn parse(text: &str) -> Option<ObjectKind> {
        let app_mesh = Kind::ALL.into_iter().find(|k| k.as_str() == text);
        let aviary = AviaryKind::ALL.into_iter().find(|k| k.as_str() == text);
        app_mesh
            .map(ObjectKind::AppMesh)
            .or(aviary.map(ObjectKind::Aviary))
    }
}

/// What a put stored: one variant per kind. App Mesh resources are their `*Data` JSON (read
/// them through `model::typed`); canaries stay [`Raw`] until someone needs one.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Mesh(Value),
    VirtualNode(Value),
    VirtualRouter(Value),
    Route(Value),
    VirtualService(Value),
    VirtualGateway(Value),
    GatewayRoute(Value),
    Endpoint(Endpoint),
    Workload(Workload),
    Canary(Raw<CanaryRecord>),
}

impl Object {
    pub fn kind(&self) -> ObjectKind {
        match self {
            Object::Endpoint(_) => ObjectKind::Aviary(AviaryKind::Endpoint),
            Object::Workload(_) => ObjectKind::Aviary(AviaryKind::Workload),
            Object::Canary(_) => ObjectKind::Aviary(AviaryKind::Canary),
            _ => match self.app_mesh() {
                Some((kind, _)) => ObjectKind::AppMesh(kind),
                None => unreachable!("every other variant is an App Mesh kind"),
            },
        }
    }

    /// An App Mesh resource's kind and `*Data`; `None` for aviary's own objects.
    pub fn app_mesh(&self) -> Option<(Kind, &Value)> {
        match self {
            Object::Mesh(data) => Some((Kind::Mesh, data)),
            Object::VirtualNode(data) => Some((Kind::VirtualNode, data)),
            Object::VirtualRouter(data) => Some((Kind::VirtualRouter, data)),
            Object::Route(data) => Some((Kind::Route, data)),
            Object::VirtualService(data) => Some((Kind::VirtualService, data)),
            Object::VirtualGateway(data) => Some((Kind::VirtualGateway, data)),
            Object::GatewayRoute(data) => Some((Kind::GatewayRoute, data)),
            Object::Endpoint(_) | Object::Workload(_) | Object::Canary(_) => None,
        }
    }

    /// An App Mesh resource of `kind` with its `*Data`.
    pub fn of_app_mesh(kind: Kind, data: Value) -> Object {
        match kind {
            Kind::Mesh => Object::Mesh(data),
            Kind::VirtualNode => Object::VirtualNode(data),
            Kind::VirtualRouter => Object::VirtualRouter(data),
            Kind::Route => Object::Route(data),
            Kind::VirtualService => Object::VirtualService(data),
            Kind::VirtualGateway => Object::VirtualGateway(data),
            Kind::GatewayRoute => Object::GatewayRoute(data),
        }
    }

    fn decode(kind: ObjectKind, resource: Value) -> Result<Object, serde_json::Error> {
        Ok(match kind {
            ObjectKind::AppMesh(kind) => Object::of_app_mesh(kind, resource),
            ObjectKind::Aviary(AviaryKind::Endpoint) => {
                Object::Endpoint(serde_json::from_value(resource)?)
            }
            ObjectKind::Aviary(AviaryKind::Workload) => {
                Object::Workload(serde_json::from_value(resource)?)
            }
            ObjectKind::Aviary(AviaryKind::Canary) => Object::Canary(Raw::from_value(resource)),
        })
    }
}

/// A change's `type`, and its SSE event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    Put,
    Delete,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Put => "put",
            ChangeType::Delete => "delete",
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Created or replaced; the object as stored now.
    Put(Object),
    Delete(ObjectKind),
    /// A kind this build does not know, from a newer control plane: only its revision matters
    /// here.
    Unknown {
        kind: String,
        change: ChangeType,
        resource: Value,
    },
}

/// One put or delete, at the store revision that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ChangeJson", into = "ChangeJson")]
pub struct Change {
    pub revision: u64,
    pub mesh: String,
    /// The router of a route, the gateway of a gateway route, the virtual node of an endpoint.
    pub parent: Option<String>,
    /// An endpoint's name is its id.
    pub name: String,
    pub op: Op,
}

impl Change {
    pub fn change_type(&self) -> ChangeType {
        match &self.op {
            Op::Put(_) => ChangeType::Put,
            Op::Delete(_) => ChangeType::Delete,
            Op::Unknown { change, .. } => *change,
        }
    }

    /// The kind, as the JSON spells it.
    pub fn kind_name(&self) -> &str {
        match &self.op {
            Op::Put(object) => object.kind().as_str(),
            Op::Delete(kind) => kind.as_str(),
            Op::Unknown { kind, .. } => kind,
        }
    }

    /// The kind, when this build knows it.
    pub fn kind(&self) -> Option<ObjectKind> {
        match &self.op {
            Op::Put(object) => Some(object.kind()),
            Op::Delete(kind) => Some(*kind),
            Op::Unknown { .. } => None,
        }
    }
}

/// A change as its JSON reads: field by field, in the order the stream has always sent them.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeJson {
    revision: u64,
    #[serde(rename = "type")]
    change: ChangeType,
    kind: String,
    mesh: String,
    name: String,
    #[serde(default)]
    resource: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

impl TryFrom<ChangeJson> for Change {
    type Error = String;

    fn try_from(json: ChangeJson) -> Result<Change, String> {
        let op = match (ObjectKind::parse(&json.kind), json.change) {
            (None, change) => Op::Unknown {
                kind: json.kind,
                change,
                resource: json.resource,
            },
            (Some(kind), ChangeType::Delete) => Op::Delete(kind),
            (Some(_), ChangeType::Put) if json.resource.is_null() => {
                return Err(format!(
                    "a put of {} '{}' without a resource",
                    json.kind, json.name
                ));
            }
            (Some(kind), ChangeType::Put) => Op::Put(
                Object::decode(kind, json.resource)
                    .map_err(|e| format!("{} '{}': {e}", json.kind, json.name))?,
            ),
        };
        Ok(Change {
            revision: json.revision,
            mesh: json.mesh,
            parent: json.parent,
            name: json.name,
            op,
        })
    }
}

impl From<Change> for ChangeJson {
    fn from(change: Change) -> ChangeJson {
        let (kind, kind_of_change) = (change.kind_name().to_string(), change.change_type());
        let resource = match change.op {
            Op::Put(object) => match object {
                Object::Mesh(data)
                | Object::VirtualNode(data)
                | Object::VirtualRouter(data)
                | Object::Route(data)
                | Object::VirtualService(data)
                | Object::VirtualGateway(data)
                | Object::GatewayRoute(data) => data,
                Object::Endpoint(endpoint) => to_value(&endpoint),
                Object::Workload(workload) => to_value(&workload),
                Object::Canary(raw) => raw.as_value().clone(),
            },
            Op::Delete(_) => Value::Null,
            Op::Unknown { resource, .. } => resource,
        };
        ChangeJson {
            revision: change.revision,
            change: kind_of_change,
            kind,
            mesh: change.mesh,
            name: change.name,
            resource,
            parent: change.parent,
        }
    }
}

/// A derived `Serialize` of plain structs with string keys cannot fail.
fn to_value<T: Serialize>(typed: &T) -> Value {
    serde_json::to_value(typed).unwrap_or(Value::Null)
}

/// `event: relist`: the history after `requested` is gone (the oldest kept is `oldest`); fetch
/// a new snapshot and watch from its revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Relist {
    pub requested: u64,
    pub oldest: u64,
    pub message: String,
}

impl Relist {
    pub fn new(requested: u64, oldest: u64) -> Relist {
        Relist {
            requested,
            oldest,
            message: "history before this revision is gone; fetch a new snapshot".into(),
        }
    }
}

/// One event of the watch stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    Change(Change),
    Relist(Relist),
}

/// The SSE event name of [`WatchEvent::Relist`].
pub const RELIST: &str = "relist";

impl WatchEvent {
    /// The event as one SSE block, blank line included.
    pub fn to_sse(&self) -> String {
        match self {
            WatchEvent::Change(change) => format!(
                "id: {}\nevent: {}\ndata: {}\n\n",
                change.revision,
                change.change_type().as_str(),
                json_text(change)
            ),
            WatchEvent::Relist(relist) => {
                format!("event: {RELIST}\ndata: {}\n\n", json_text(relist))
            }
        }
    }

    /// An SSE event's name and data, as [`WatchEvent::to_sse`] wrote them.
    pub fn from_sse(event: &str, data: &str) -> Result<WatchEvent, serde_json::Error> {
        if event == RELIST {
            serde_json::from_str(data).map(WatchEvent::Relist)
        } else {
            serde_json::from_str(data).map(WatchEvent::Change)
        }
    }
}

/// As [`to_value`]: a derived `Serialize` of these types cannot fail.
fn json_text<T: Serialize>(typed: &T) -> String {
    serde_json::to_string(typed).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod tests;
