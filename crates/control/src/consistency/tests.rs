//! Two replicas over one store race creates against deletes; the mesh's rules hold after every
//! race, because the store, not a process-local lock, decides.

use std::sync::Arc;

use model::{Kind, ResourcePath};
use serde_json::{Value, json};

use crate::records::{mesh_prefix, path_from_key};
use crate::resources::{Identity, Resources};

fn replicas() -> (Arc<Resources>, Arc<Resources>) {
    let store: Arc<dyn store::Store> = Arc::new(store::MemoryStore::new());
    let identity = Identity {
        account: "000000000000".into(),
        region: "local".into(),
    };
    (
        Arc::new(Resources::new(store.clone(), identity.clone())),
        Arc::new(Resources::new(store, identity)),
    )
}

fn path(kind: Kind, parent: Option<&str>, name: &str) -> ResourcePath {
    ResourcePath::new(kind, "m", parent.map(str::to_string), name)
}

fn node_body(name: &str) -> Value {
    json!({ "virtualNodeName": name, "spec": { "listeners": [ { "portMapping": { "port": 80, "protocol": "http" } } ] } })
}

fn router_body(name: &str) -> Value {
    json!({ "virtualRouterName": name, "spec": { "listeners": [ { "portMapping": { "port": 80, "protocol": "http" } } ] } })
}

fn route_body(name: &str, node: &str) -> Value {
    json!({ "routeName": name, "spec": { "httpRoute": {
        "match": { "prefix": "/" },
        "action": { "weightedTargets": [ { "virtualNode": node, "weight": 1 } ] } } } })
}

/// Every child's parent exists and every reference names an existing resource.
async fn broken_rules(resources: &Resources) -> Vec<String> {
    let (kvs, _) = resources.range(&mesh_prefix("m")).await.unwrap();
    let exists = |id: &ResourcePath| {
        kvs.iter()
            .any(|kv| path_from_key(&kv.key).as_ref() == Some(id))
    };
    let mut broken = Vec::new();
    for kv in &kvs {
        let Some(id) = path_from_key(&kv.key) else {
            continue;
        };
        if let (Some(parent_kind), Some(parent)) = (id.kind.parent(), &id.parent)
            && !exists(&path(parent_kind, None, parent))
        {
            broken.push(format!("{id} outlived its parent {parent}"));
        }
        let record = crate::resources::decode(&kv.value).unwrap();
        for site in model::reference_sites(id.kind, &record.spec) {
            if !exists(&path(site.kind, None, &site.name)) {
                broken.push(format!(
                    "{id} names {} '{}', which is gone",
                    site.kind, site.name
                ));
            }
        }
    }
    broken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_racing_deletes_on_two_replicas_never_leave_a_dangling_resource() {
    let (a, b) = replicas();
    a.create(&ResourcePath::mesh("m"), &json!({ "meshName": "m" }))
        .await
        .unwrap();
    a.create(&path(Kind::VirtualNode, None, "keep"), &node_body("keep"))
        .await
        .unwrap();
    let rounds = 150;
    let (mut routes_made, mut parents_deleted, mut nodes_deleted) = (0, 0, 0);
    for i in 0..rounds {
        let (router, node) = (format!("r{i}"), format!("n{i}"));
        a.create(
            &path(Kind::VirtualRouter, None, &router),
            &router_body(&router),
        )
        .await
        .unwrap();
        a.create(&path(Kind::VirtualNode, None, &node), &node_body(&node))
            .await
            .unwrap();
        // Replica A adds a route under the router naming the node; replica B deletes the
        // router and the node at the same moment.
        let route = path(Kind::Route, Some(&router), "rt");
        let (create, delete_router, delete_node) = tokio::join!(
            tokio::spawn({
                let (a, route, body) = (a.clone(), route.clone(), route_body("rt", &node));
                async move { a.create(&route, &body).await }
            }),
            tokio::spawn({
                let (b, id) = (b.clone(), path(Kind::VirtualRouter, None, &router));
                async move { b.delete(&id).await }
            }),
            tokio::spawn({
                let (b, id) = (b.clone(), path(Kind::VirtualNode, None, &node));
                async move { b.delete(&id).await }
            }),
        );
        routes_made += usize::from(create.unwrap().is_ok());
        parents_deleted += usize::from(delete_router.unwrap().is_ok());
        nodes_deleted += usize::from(delete_node.unwrap().is_ok());
        let broken = broken_rules(&a).await;
        assert!(broken.is_empty(), "round {i}: {broken:?}");
    }
    // Both outcomes happened, so the race was real both ways.
    assert!(
        routes_made > 0 && parents_deleted > 0 && nodes_deleted > 0,
        "routes {routes_made}, router deletes {parents_deleted}, node deletes {nodes_deleted} of {rounds}"
    );
    // Wherever the route won, the deletes were refused (in use), and the other way round.
    assert_eq!(
        routes_made + parents_deleted,
        rounds,
        "each round exactly one of create route / delete router wins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mesh_deleted_while_a_replica_creates_in_it_keeps_nothing_behind() {
    let (a, b) = replicas();
    for i in 0..50 {
        let mesh = ResourcePath::mesh("m");
        a.create(&mesh, &json!({ "meshName": "m" })).await.unwrap();
        let node = path(Kind::VirtualNode, None, &format!("n{i}"));
        let (create, delete) = tokio::join!(
            tokio::spawn({
                let (a, node, body) = (a.clone(), node.clone(), node_body(&format!("n{i}")));
                async move { a.create(&node, &body).await }
            }),
            tokio::spawn({
                let b = b.clone();
                async move { b.delete(&ResourcePath::mesh("m")).await }
            }),
        );
        let (created, deleted) = (create.unwrap().is_ok(), delete.unwrap().is_ok());
        assert!(
            created != deleted,
            "round {i}: exactly one wins (created {created}, deleted {deleted})"
        );
        let (left, _) = a.range(&mesh_prefix("m")).await.unwrap();
        if deleted {
            assert!(left.is_empty(), "round {i}: the deleted mesh kept {left:?}");
        } else {
            a.delete(&node).await.unwrap();
            a.delete(&mesh).await.unwrap();
        }
        // The mesh's guard goes with it: guards are bounded by the meshes that exist.
        assert!(a.get_raw(&super::guard_key("m")).await.unwrap().is_none());
    }
}
