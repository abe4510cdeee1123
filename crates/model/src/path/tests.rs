//! Tests of resource paths against the service model's URIs.

use crate::{Kind, ResourcePath, service_model};

fn path(kind: Kind, parent: Option<&str>, name: &str) -> ResourcePath {
    ResourcePath::new(kind, "demomesh", parent.map(str::to_owned), name)
}

#[test]
fn urls_of_every_kind() {
    let cases: Vec<(ResourcePath, &str, &str)> = vec![
        (
            ResourcePath::meshes(),
            "/v20190125/meshes",
            "/v20190125/meshes/",
        ),
        (
            ResourcePath::mesh("demomesh"),
            "/v20190125/meshes",
            "/v20190125/meshes/demomesh",
        ),
        (
            path(Kind::VirtualNode, None, "product-vn"),
            "/v20190125/meshes/demomesh/virtualNodes",
            "/v20190125/meshes/demomesh/virtualNodes/product-vn",
        ),
        (
            path(Kind::VirtualRouter, None, "product-vr"),
            "/v20190125/meshes/demomesh/virtualRouters",
            "/v20190125/meshes/demomesh/virtualRouters/product-vr",
        ),
        (
            path(Kind::Route, Some("product-vr"), "product-r"),
            "/v20190125/meshes/demomesh/virtualRouter/product-vr/routes",
            "/v20190125/meshes/demomesh/virtualRouter/product-vr/routes/product-r",
        ),
        (
            path(Kind::VirtualService, None, "product.demomesh.local"),
            "/v20190125/meshes/demomesh/virtualServices",
            "/v20190125/meshes/demomesh/virtualServices/product.demomesh.local",
        ),
        (
            path(Kind::VirtualGateway, None, "gateway-vg"),
            "/v20190125/meshes/demomesh/virtualGateways",
            "/v20190125/meshes/demomesh/virtualGateways/gateway-vg",
        ),
        (
            path(Kind::GatewayRoute, Some("gateway-vg"), "order-gr"),
            "/v20190125/meshes/demomesh/virtualGateway/gateway-vg/gatewayRoutes",
            "/v20190125/meshes/demomesh/virtualGateway/gateway-vg/gatewayRoutes/order-gr",
        ),
        // Names that were never validated still make one path segment each.
        (
            path(Kind::VirtualNode, None, "a/b c"),
            "/v20190125/meshes/demomesh/virtualNodes",
            "/v20190125/meshes/demomesh/virtualNodes/a%2Fb%20c",
        ),
    ];
    for (path, collection, url) in cases {
        assert_eq!(path.collection_path(), collection, "{path:?}");
        assert_eq!(path.url_path(), url, "{path:?}");
    }
}

#[test]
fn crud_operations_share_the_paths() {
    let model = service_model();
    for kind in Kind::ALL {
        let uri = |verb: &str| {
            let op = model
                .operation(&kind.operation(verb))
                .unwrap_or_else(|| panic!("no {verb} for {kind}"));
            (op.http_method.clone(), op.request_uri.clone())
        };
        let (describe, update, delete) = (uri("Describe"), uri("Update"), uri("Delete"));
        assert_eq!(describe.0, "GET");
        assert_eq!(
            (update.0.as_str(), &update.1),
            ("PUT", &describe.1),
            "{kind}"
        );
        assert_eq!(
            (delete.0.as_str(), &delete.1),
            ("DELETE", &describe.1),
            "{kind}"
        );
        let (create, list) = (uri("Create"), uri("List"));
        assert_eq!(
            (create.0.as_str(), list.0.as_str()),
            ("PUT", "GET"),
            "{kind}"
        );
        assert_eq!(create.1, list.1, "{kind}");
        assert_eq!(
            format!("{}/{{{}}}", list.1, kind.name_field()),
            describe.1,
            "{kind}"
        );
    }
}

#[test]
fn validate_and_display() {
    let route = path(Kind::Route, Some("product-vr"), "product-r");
    assert_eq!(route.validate(), vec![]);
    assert_eq!(
        route.to_string(),
        "route 'product-r' of virtual router 'product-vr' in mesh 'demomesh'"
    );
    assert_eq!(
        ResourcePath::mesh("demomesh").to_string(),
        "mesh 'demomesh'"
    );
    let rendered =
        |p: ResourcePath| -> Vec<String> { p.validate().iter().map(ToString::to_string).collect() };
    assert_eq!(
        rendered(path(Kind::Route, None, "r")),
        ["virtualRouterName: is required"]
    );
    assert_eq!(
        rendered(path(Kind::VirtualNode, Some("vr"), "-n")),
        [
            "parent: a virtual node has no parent but its mesh",
            "virtualNodeName: must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
        ]
    );
    assert_eq!(
        rendered(ResourcePath::mesh("")),
        ["meshName: must have at least 1 character"]
    );
}
