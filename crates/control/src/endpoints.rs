//! Registered endpoints: running instances of a virtual node, kept in the store under
//! `meshes/{mesh}/Endpoint/{node}/{id}` so that proxies learn them from the same watch stream.

use model::wire::Endpoint;
use model::{Kind, Problem, Problems, ResourcePath};
use serde_json::Value;
use store::{Op, Txn};

use crate::error::ApiError;
use crate::objects::{self, ObjectKind};
use crate::resources::Resources;

/// Every endpoint of one virtual node.
pub fn node_prefix(mesh: &str, node: &str) -> String {
    objects::prefix(ObjectKind::Endpoint, mesh, Some(node))
}

fn key(mesh: &str, node: &str, id: &str) -> String {
    objects::key(ObjectKind::Endpoint, mesh, Some(node), id)
}

impl Resources {
    /// Registers (or replaces) one endpoint of an existing virtual node.
    pub async fn put_endpoint(
        &self,
        mesh: &str,
        node: &str,
        id: &str,
        body: &Value,
    ) -> Result<Endpoint, ApiError> {
        let mut problems = model::validate_name("id", id);
        let mut body = body.clone();
        if let Some(fields) = body.as_object_mut() {
            for (field, from_path) in [("virtualNode", node), ("id", id)] {
                match fields.get(field).and_then(Value::as_str) {
                    Some(given) if given != from_path => problems.push(Problem::new(
                        field,
                        format!("'{given}' does not match the path's '{from_path}'"),
                    )),
                    _ => {
                        fields.insert(field.into(), from_path.into());
                    }
                }
            }
        }
        let endpoint: Option<Endpoint> = match model::wire::strict(body) {
            Ok(endpoint) => Some(endpoint),
            Err(e) => {
                problems.push(Problem::new("body", e.to_string()));
                None
            }
        };
        if let Some(endpoint) = &endpoint {
            if endpoint.address.parse::<std::net::IpAddr>().is_err() {
                problems.push(Problem::new(
                    "address",
                    format!("'{}' is not an IP address", endpoint.address),
                ));
            }
            if endpoint.port == 0 {
                problems.push(Problem::new("port", "must be from 1 to 65535"));
            }
            if let Some(workload) = &endpoint.workload {
                problems.extend(model::validate_name("workload", workload));
            }
        }
        let endpoint = match endpoint {
            Some(endpoint) if problems.is_empty() => endpoint,
            _ => return Err(ApiError::BadRequest(Problems(problems).to_string())),
        };
        let node_path = ResourcePath::new(Kind::VirtualNode, mesh, None, node);
        crate::resources::validate_names(&node_path)?;
        let value = serde_json::to_vec(&endpoint).map_err(|e| ApiError::Internal(e.to_string()))?;
        let (node_path, value) = (&node_path, &value);
        self.guarded(mesh, &[], |guard| async move {
            self.check_scope(node_path).await?;
            self.require(node_path).await?;
            let txn = Txn::default().then(Op::Put(key(mesh, node, id), value.clone()));
            self.commit_guarded(&guard, txn).await
        })
        .await?;
        Ok(endpoint)
    }

    pub async fn delete_endpoint(&self, mesh: &str, node: &str, id: &str) -> Result<(), ApiError> {
        let key = &key(mesh, node, id);
        self.guarded(mesh, &[], |guard| async move {
            if self.get_raw(key).await?.is_none() {
                return Err(ApiError::NotFound(format!(
                    "endpoint '{id}' of virtual node '{node}' in mesh '{mesh}' not found"
                )));
            }
            let txn = Txn::default().then(Op::Delete(key.clone()));
            self.commit_guarded(&guard, txn).await.map(drop)
        })
        .await
    }

    pub async fn list_endpoints(&self, mesh: &str) -> Result<Vec<Endpoint>, ApiError> {
        self.require(&ResourcePath::mesh(mesh)).await?;
        let (kvs, _) = self
            .range(&objects::prefix(ObjectKind::Endpoint, mesh, None))
            .await?;
        kvs.iter().map(|kv| objects::decode(&kv.value)).collect()
    }
}
