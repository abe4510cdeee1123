//! Tests of the schema walker, request-body validation, relaxations and problem rendering.

use serde_json::{Value, json};

use crate::{OverrideTarget, Problem, Problems, RELAXATIONS, service_model};
use crate::{validate_input_body, validate_shape};

/// Validate `value` against `shape` under path `at` and compare the rendered problems.
fn check(shape: &str, value: Value, expected: &[&str]) {
    let got: Vec<String> = validate_shape(shape, &value, "at")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got, expected, "{shape}: {value}");
}

#[test]
fn scalar_rules() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("TagKey", json!("team"), vec![]),
        (
            "TagKey",
            json!(""),
            vec!["at: must have at least 1 character"],
        ),
        (
            "TagKey",
            json!("k".repeat(129)),
            vec!["at: must have at most 128 characters"],
        ),
        // Length counts characters, not bytes.
        ("TagKey", json!("é".repeat(128)), vec![]),
        (
            "TagKey",
            json!(5),
            vec!["at: must be a string, not a number"],
        ),
        ("DurationUnit", json!("ms"), vec![]),
        (
            "DurationUnit",
            json!("min"),
            vec!["at: must be one of: s, ms"],
        ),
        ("AwsCloudMapInstanceAttributeKey", json!("stage"), vec![]),
        (
            "AwsCloudMapInstanceAttributeKey",
            json!("a key"),
            vec!["at: must match the pattern ^[a-zA-Z0-9!-~]+$"],
        ),
        (
            "AwsCloudMapInstanceAttributeValue",
            json!("a value"),
            vec![],
        ),
        (
            "AwsCloudMapInstanceAttributeValue",
            json!("tab\there"),
            vec![
                "at: must match the pattern ^([a-zA-Z0-9!-~][  a-zA-Z0-9!-~]*){0,1}[a-zA-Z0-9!-~]{0,1}$",
            ],
        ),
        ("PortNumber", json!(1), vec![]),
        ("PortNumber", json!(0), vec!["at: must be at least 1"]),
        (
            "PortNumber",
            json!("80"),
            vec!["at: must be an integer, not a string"],
        ),
        (
            "PortNumber",
            json!(80.0),
            vec!["at: must be an integer, not a number with a fraction"],
        ),
        (
            "PortNumber",
            json!(null),
            vec!["at: must be an integer, not null"],
        ),
        // An `integer` shape is 32-bit even where the model sets no max.
        ("MaxConnections", json!(2_147_483_647), vec![]),
        (
            "MaxConnections",
            json!(3_000_000_000u64),
            vec!["at: must be between -2147483648 and 2147483647"],
        ),
        ("DurationValue", json!(3_000_000_000u64), vec![]),
        (
            "DurationValue",
            json!(u64::MAX),
            vec!["at: must be between -9223372036854775808 and 9223372036854775807"],
        ),
        ("Boolean", json!(true), vec![]),
        (
            "Boolean",
            json!("true"),
            vec!["at: must be a boolean, not a string"],
        ),
        ("Timestamp", json!(1_700_000_000.5), vec![]),
        (
            "Timestamp",
            json!("2024-01-01"),
            vec!["at: must be a timestamp (seconds since the epoch), not a string"],
        ),
    ];
    for (shape, value, expected) in cases {
        check(shape, value, &expected);
    }
}

#[test]
fn structure_and_list_rules() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("TagRef", json!({"key": "a", "value": ""}), vec![]),
        ("TagRef", json!({"value": "x"}), vec!["at.key: is required"]),
        // `null` is absent, as the SDKs never send it.
        (
            "TagRef",
            json!({"key": null, "value": "x"}),
            vec!["at.key: is required"],
        ),
        (
            "TagRef",
            json!({"key": "a", "value": "b", "kye": 1}),
            vec!["at: unknown field 'kye' (did you mean 'key'?)"],
        ),
        (
            "TagRef",
            json!({"key": "a", "value": "b", "owner": "me"}),
            vec!["at: unknown field 'owner'"],
        ),
        (
            "TagRef",
            json!("a=b"),
            vec!["at: must be an object, not a string"],
        ),
        ("TagList", json!([]), vec![]),
        (
            "TagList",
            json!({}),
            vec!["at: must be an array, not an object"],
        ),
        (
            "TagList",
            json!([{"key": "a", "value": "b"}, {"key": ""}]),
            vec![
                "at[1].key: must have at least 1 character",
                "at[1].value: is required",
            ],
        ),
        (
            "HttpRetryPolicyEvents",
            json!([]),
            vec!["at: must have at least 1 item"],
        ),
        ("HeaderMatchMethod", json!({"exact": "x"}), vec![]),
        (
            "HeaderMatchMethod",
            json!({"exact": "x", "prefix": "y"}),
            vec![
                "at: must set exactly one of: exact, prefix, range, regex, suffix (found exact, prefix)",
            ],
        ),
        (
            "HeaderMatchMethod",
            json!({}),
            vec!["at: must set exactly one of: exact, prefix, range, regex, suffix"],
        ),
        (
            "NoSuchShape",
            json!({}),
            vec!["at: unknown shape 'NoSuchShape'"],
        ),
    ];
    for (shape, value, expected) in cases {
        check(shape, value, &expected);
    }
}

#[test]
fn relaxations_apply_only_where_declared() {
    // Through WeightedTarget.weight the relaxed range applies ...
    check(
        "WeightedTarget",
        json!({"virtualNode": "a", "weight": 10000}),
        &[],
    );
    check(
        "WeightedTarget",
        json!({"virtualNode": "a", "weight": 10001}),
        &["at.weight: must be at most 10000"],
    );
    // ... while the PercentInt shape itself keeps App Mesh's range.
    check("PercentInt", json!(100), &[]);
    check("PercentInt", json!(101), &["at: must be at most 100"]);
}

#[test]
fn relaxations_name_real_targets_and_really_differ() {
    let model = service_model();
    for relaxation in RELAXATIONS {
        let shape = match relaxation.target {
            OverrideTarget::Member { structure, member } => {
                let structure = model.shape(structure).expect("structure exists");
                let member = structure.members.get(member).expect("member exists");
                model.shape(&member.shape).expect("member shape exists")
            }
            OverrideTarget::Shape(name) => model.shape(name).expect("shape exists"),
        };
        assert!(
            (shape.min, shape.max) != (relaxation.min, relaxation.max),
            "{relaxation:?} does not differ from the model"
        );
    }
}

#[test]
fn input_bodies_exclude_uri_and_query_members() {
    let route_body = json!({
        "routeName": "product-r",
        "spec": {"tcpRoute": {"action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]}}},
        "clientToken": "t-1",
        "tags": []
    });
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("CreateRoute", route_body.clone(), vec![]),
        (
            "CreateRoute",
            json!({"routeName": "r", "spec": {}, "meshName": "m", "meshOwner": "123456789012"}),
            vec!["unknown field 'meshName'", "unknown field 'meshOwner'"],
        ),
        (
            "CreateRoute",
            json!({"spec": {}}),
            vec!["routeName: is required"],
        ),
        (
            "CreateRoute",
            json!([]),
            vec!["must be an object, not an array"],
        ),
        (
            "CreateRoute",
            json!(null),
            vec!["routeName: is required", "spec: is required"],
        ),
        ("CreateMesh", json!({"meshName": "demomesh"}), vec![]),
        ("DeleteRoute", json!({}), vec![]),
        ("DeleteRoute", json!(null), vec![]),
        (
            "DeleteRoute",
            json!({"routeName": "r"}),
            vec!["unknown field 'routeName'"],
        ),
        (
            "Frobnicate",
            json!({}),
            vec!["unknown operation 'Frobnicate'"],
        ),
    ];
    for (op, body, expected) in cases {
        let got: Vec<String> = validate_input_body(op, &body)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected, "{op}: {body}");
    }
}

#[test]
fn problems_display_like_aws() {
    let one = Problems(vec![Problem::new("spec.priority", "must be at most 1000")]);
    assert_eq!(
        one.to_string(),
        "1 validation error detected: spec.priority: must be at most 1000"
    );
    let three = Problems(vec![
        Problem::new("a", "is required"),
        Problem::new("b", "must be at least 1"),
        Problem::new("", "unknown field 'x'"),
    ]);
    assert_eq!(
        three.to_string(),
        "3 validation errors detected: a: is required; b: must be at least 1; unknown field 'x'"
    );
    assert_eq!(Problems::check(vec![]), Ok(()));
    assert_eq!(Problems::check(three.0.clone()), Err(three.clone()));
    let as_error: Box<dyn std::error::Error> = Box::new(three);
    assert!(as_error.to_string().starts_with("3 validation errors"));
}
