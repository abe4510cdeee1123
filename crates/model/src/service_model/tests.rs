//! Tests that the embedded service model is complete and self-consistent.

use std::collections::BTreeSet;

use regex::Regex;

use crate::{Location, ShapeType, service_model};

/// Every shape reachable from `root` through members and list items.
fn reachable(root: &str, seen: &mut BTreeSet<String>, dangling: &mut Vec<String>) {
    if !seen.insert(root.to_owned()) {
        return;
    }
    let Some(shape) = service_model().shape(root) else {
        dangling.push(root.to_owned());
        return;
    };
    for member in shape.members.values() {
        reachable(&member.shape, seen, dangling);
    }
    if let Some(item) = &shape.member {
        reachable(&item.shape, seen, dangling);
    }
}

#[test]
fn the_model_is_app_mesh_2019_01_25() {
    let model = service_model();
    assert_eq!(model.metadata.api_version, "2019-01-25");
    assert_eq!(model.metadata.protocol, "rest-json");
    assert_eq!(model.metadata.uid, "appmesh-2019-01-25");
    assert_eq!(model.operations.len(), 38);
    assert!(model.shapes.len() > 300, "{} shapes", model.shapes.len());
    let create_route = model.operation("CreateRoute").expect("CreateRoute");
    assert_eq!(create_route.http_method, "PUT");
    assert_eq!(
        create_route.request_uri,
        "/v20190125/meshes/{meshName}/virtualRouter/{virtualRouterName}/routes"
    );
    assert_eq!(create_route.input.as_deref(), Some("CreateRouteInput"));
    assert!(create_route.errors.iter().any(|e| e == "ConflictException"));
    let token = &model.shape("CreateRouteInput").unwrap().members["clientToken"];
    assert!(token.idempotency_token);
    let mesh_name = &model.shape("CreateRouteInput").unwrap().members["meshName"];
    assert_eq!(mesh_name.location, Some(Location::Uri));
    assert_eq!(mesh_name.location_name.as_deref(), Some("meshName"));
    let output = model.shape("CreateRouteOutput").unwrap();
    assert_eq!(output.payload.as_deref(), Some("route"));
}

#[test]
fn every_operation_resolves_without_dangling_shapes() {
    let model = service_model();
    let mut seen = BTreeSet::new();
    let mut dangling = Vec::new();
    for (name, op) in &model.operations {
        assert_eq!(&op.name, name);
        assert!(op.request_uri.starts_with("/v20190125/"), "{name}");
        let input = op
            .input
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no input"));
        let output = op
            .output
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no output"));
        for root in [input, output] {
            reachable(root, &mut seen, &mut dangling);
        }
        for error in &op.errors {
            let shape = model
                .shape(error)
                .unwrap_or_else(|| panic!("{name}: no {error}"));
            assert!(shape.exception, "{error} is not an exception");
            assert!(shape.error.is_some(), "{error} has no status code");
        }
        // Every `{label}` of the URI is a uri member of the input, and vice versa.
        let shape = model.shape(input).unwrap();
        let uri_members: BTreeSet<&str> = shape
            .members
            .values()
            .filter(|m| m.location == Some(Location::Uri))
            .filter_map(|m| m.location_name.as_deref())
            .collect();
        let labels: BTreeSet<&str> = op
            .request_uri
            .split('{')
            .skip(1)
            .filter_map(|s| s.split('}').next())
            .collect();
        assert_eq!(labels, uri_members, "{name}");
    }
    assert_eq!(dangling, Vec::<String>::new());
    assert!(seen.contains("WeightedTarget"));
}

#[test]
fn shapes_are_well_formed() {
    let model = service_model();
    for (name, shape) in &model.shapes {
        for required in &shape.required {
            assert!(shape.members.contains_key(required), "{name}.{required}");
        }
        match shape.kind {
            ShapeType::List => assert!(shape.member.is_some(), "{name} has no item shape"),
            ShapeType::Structure => assert!(shape.member.is_none(), "{name}"),
            _ => assert!(shape.members.is_empty(), "{name} is scalar with members"),
        }
        if let (Some(min), Some(max)) = (shape.min, shape.max) {
            assert!(min <= max, "{name}: min {min} > max {max}");
        }
        if let Some(payload) = &shape.payload {
            assert!(
                shape.members.contains_key(payload),
                "{name} payload {payload}"
            );
        }
    }
}

#[test]
fn every_pattern_compiles_and_means_what_it_says() {
    let model = service_model();
    let patterns: Vec<(&String, &String)> = model
        .shapes
        .iter()
        .filter_map(|(name, shape)| Some((name, shape.pattern.as_ref()?)))
        .collect();
    assert_eq!(patterns.len(), 2, "{patterns:?}");
    for (name, pattern) in patterns {
        let regex = Regex::new(pattern).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(regex.is_match("env"), "{name}");
        assert!(!regex.is_match("tab\tinside"), "{name}");
        assert!(super::shape_pattern(name).is_some(), "{name} not compiled");
    }
}

#[test]
fn exceptions_carry_status_codes() {
    let model = service_model();
    let status = |name: &str| {
        model
            .shape(name)
            .and_then(|s| s.error)
            .map(|e| e.http_status_code)
    };
    assert_eq!(status("BadRequestException"), Some(400));
    assert_eq!(status("NotFoundException"), Some(404));
    assert_eq!(status("ConflictException"), Some(409));
    assert_eq!(status("ResourceInUseException"), Some(409));
    assert_eq!(status("TooManyRequestsException"), Some(429));
    let throttle = model.shape("TooManyRequestsException").unwrap();
    assert_eq!(throttle.retryable.map(|r| r.throttling), Some(true));
    assert!(model.shape("InternalServerErrorException").unwrap().fault);
}
