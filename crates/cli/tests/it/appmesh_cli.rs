//! The reference walkthrough through the real AWS CLI: create, describe, update, list, tag, delete.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use testkit::{aws, aws_json, aws_ok};

use crate::{
    STEP1, Write, apply_raw, assert_contains, cli_input, create_step1_raw, create_with_script,
    example, start,
};

/// How `aws appmesh` addresses one resource described by a CLI input file.
struct Resource {
    /// `mesh`, `virtual-node`, ...: the suffix of `describe-`, `update-`, `delete-`.
    op: &'static str,
    /// The key the CLI prints the resource under: `mesh`, `virtualNode`, ...
    key: &'static str,
    /// `--mesh-name demomesh --virtual-node-name product-vn` and so on.
    args: Vec<String>,
    /// The ARN after `arn:aws:appmesh:REGION:ACCOUNT:`.
    arn_path: String,
}

fn resource(input: &Value) -> Resource {
    let name = |key: &str| input[key].as_str().unwrap_or_default().to_string();
    let mesh = name("meshName");
    let mut args = vec!["--mesh-name".to_string(), mesh.clone()];
    let mut flag = |flag: &str, value: &str| {
        args.push(flag.to_string());
        args.push(value.to_string());
    };
    let (op, key, arn_path) = if input.get("gatewayRouteName").is_some() {
        let (gw, gr) = (name("virtualGatewayName"), name("gatewayRouteName"));
        flag("--virtual-gateway-name", &gw);
        flag("--gateway-route-name", &gr);
        (
            "gateway-route",
            "gatewayRoute",
            format!("mesh/{mesh}/virtualGateway/{gw}/gatewayRoute/{gr}"),
        )
    } else if input.get("routeName").is_some() {
        let (vr, r) = (name("virtualRouterName"), name("routeName"));
        flag("--virtual-router-name", &vr);
        flag("--route-name", &r);
        (
            "route",
            "route",
            format!("mesh/{mesh}/virtualRouter/{vr}/route/{r}"),
        )
    } else if input.get("virtualNodeName").is_some() {
        let vn = name("virtualNodeName");
        flag("--virtual-node-name", &vn);
        (
            "virtual-node",
            "virtualNode",
            format!("mesh/{mesh}/virtualNode/{vn}"),
        )
    } else if input.get("virtualRouterName").is_some() {
        let vr = name("virtualRouterName");
        flag("--virtual-router-name", &vr);
        (
            "virtual-router",
            "virtualRouter",
            format!("mesh/{mesh}/virtualRouter/{vr}"),
        )
    } else if input.get("virtualServiceName").is_some() {
        let vs = name("virtualServiceName");
        flag("--virtual-service-name", &vs);
        (
            "virtual-service",
            "virtualService",
            format!("mesh/{mesh}/virtualService/{vs}"),
        )
    } else if input.get("virtualGatewayName").is_some() {
        let gw = name("virtualGatewayName");
        flag("--virtual-gateway-name", &gw);
        (
            "virtual-gateway",
            "virtualGateway",
            format!("mesh/{mesh}/virtualGateway/{gw}"),
        )
    } else {
        ("mesh", "mesh", format!("mesh/{mesh}"))
    };
    Resource {
        op,
        key,
        args,
        arn_path,
    }
}

impl Resource {
    /// `aws appmesh VERB-OP ARGS... EXTRA...` as an argument list.
    fn call(&self, verb: &str, extra: &[&str]) -> Vec<String> {
        let mut all = vec![format!("{verb}-{}", self.op)];
        all.extend(self.args.iter().cloned());
        all.extend(extra.iter().map(|s| s.to_string()));
        all
    }

    fn run(&self, url: &str, verb: &str, extra: &[&str]) -> Value {
        let args = self.call(verb, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = aws_json(url, &args);
        out.get(self.key)
            .cloned()
            .unwrap_or_else(|| panic!("no `{}` in {out:#}", self.key))
    }

    fn describe(&self, url: &str) -> Value {
        self.run(url, "describe", &[])
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The metadata App Mesh promises: an ARN of the right shape naming this resource, owners equal
/// to the ARN's account, a uid, and Unix-epoch-seconds timestamps (JSON numbers, as the
/// rest-json protocol encodes them; SDKs reject strings).
#[track_caller]
fn assert_metadata(data: &Value, arn_path: &str, version: u64) {
    let md = &data["metadata"];
    let arn = md["arn"]
        .as_str()
        .unwrap_or_else(|| panic!("no metadata.arn: {data:#}"));
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    assert_eq!(parts.len(), 6, "{arn}");
    assert_eq!(&parts[..3], ["arn", "aws", "appmesh"], "{arn}");
    let (region, account) = (parts[3], parts[4]);
    assert!(
        !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "region in {arn}"
    );
    assert!(
        account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()),
        "account in {arn}"
    );
    assert_eq!(parts[5], arn_path, "{arn}");
    assert_eq!(md["meshOwner"], json!(account), "{data:#}");
    assert_eq!(md["resourceOwner"], json!(account), "{data:#}");
    assert!(
        md["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "uid: {data:#}"
    );
    assert_eq!(md["version"], json!(version), "{data:#}");
    let created = md["createdAt"]
        .as_f64()
        .unwrap_or_else(|| panic!("createdAt: {data:#}"));
    let updated = md["lastUpdatedAt"]
        .as_f64()
        .unwrap_or_else(|| panic!("lastUpdatedAt: {data:#}"));
    assert!(
        (created - now()).abs() < 3600.0,
        "createdAt {created} is not near now (epoch seconds)"
    );
    assert!(
        updated >= created,
        "lastUpdatedAt {updated} < createdAt {created}"
    );
}

#[track_caller]
fn assert_active(data: &Value) {
    assert_eq!(data["status"]["status"], "ACTIVE", "{data:#}");
}

#[track_caller]
fn targets(route: &Value) -> Value {
    route["spec"]["httpRoute"]["action"]["weightedTargets"].clone()
}

#[test]
fn walkthrough_step1_creates_every_resource_as_described() {
    let control = start();
    let url = control.url();
    let printed = create_with_script(url);
    let arns: Vec<&str> = printed.lines().collect();
    assert_eq!(
        arns.len(),
        STEP1.len(),
        "create.sh prints one ARN per resource:\n{printed}"
    );

    for (name, printed_arn) in STEP1.iter().zip(&arns) {
        let input = example(name);
        let res = resource(&input);
        let data = res.describe(url);
        assert_active(&data);
        assert_metadata(&data, &res.arn_path, 1);
        assert_eq!(data["metadata"]["arn"], json!(printed_arn), "{name}");
        assert_contains(&data["spec"], &input["spec"]);
        for (key, value) in input.as_object().unwrap() {
            if key != "spec" {
                assert_eq!(&data[key], value, "{name}: {key}");
            }
        }
    }

    // Spot checks in the walkthrough's own words, beyond "what went in came out".
    let product = resource(&example("product-vn")).describe(url);
    let listener = &product["spec"]["listeners"][0];
    assert_eq!(
        listener["portMapping"],
        json!({"port": 8080, "protocol": "http"})
    );
    assert_eq!(listener["healthCheck"]["path"], "/health");
    assert_eq!(
        product["spec"]["serviceDiscovery"]["dns"]["hostname"],
        "product.demomesh.local"
    );
    let order = resource(&example("order-vn")).describe(url);
    let backends: Vec<&Value> = order["spec"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["virtualService"]["virtualServiceName"])
        .collect();
    assert_eq!(
        backends,
        [
            &json!("product.demomesh.local"),
            &json!("customer.demomesh.local")
        ]
    );
    for svc in ["order", "product", "customer"] {
        let route = resource(&example(&format!("{svc}-r"))).describe(url);
        assert_eq!(
            targets(&route),
            json!([{"virtualNode": format!("{svc}-vn"), "weight": 100}])
        );
        let vs = resource(&example(&format!("vs-{svc}"))).describe(url);
        assert_eq!(
            vs["spec"]["provider"]["virtualRouter"]["virtualRouterName"],
            format!("{svc}-vr")
        );
    }
    let gw = resource(&example("demo-gw")).describe(url);
    assert_eq!(
        gw["spec"]["listeners"][0]["portMapping"],
        json!({"port": 9080, "protocol": "http"})
    );
    let gr = resource(&example("order-gr")).describe(url);
    assert_eq!(
        gr["spec"]["httpRoute"]["action"]["target"]["virtualService"]["virtualServiceName"],
        "order.demomesh.local"
    );
}

#[test]
fn walkthrough_step3_shifts_traffic_and_rolls_back() {
    let control = start();
    let url = control.url();
    create_with_script(url);
    for node in ["product-v15-vn", "customer-v2-vn"] {
        let created = aws_json(
            url,
            &["create-virtual-node", "--cli-input-json", &cli_input(node)],
        );
        assert_metadata(
            &created["virtualNode"],
            &format!("mesh/demomesh/virtualNode/{node}"),
            1,
        );
    }
    let product_r = resource(&example("product-r"));
    let before = product_r.describe(url);

    // (file, route, expected version, expected targets)
    let steps: [(&str, &str, u64, Value); 6] = [
        (
            "product-r-75-25",
            "product-r",
            2,
            json!([["product-vn", 75], ["product-v15-vn", 25]]),
        ),
        (
            "product-r-v15",
            "product-r",
            3,
            json!([["product-vn", 0], ["product-v15-vn", 100]]),
        ),
        (
            "customer-r-50-50",
            "customer-r",
            2,
            json!([["customer-vn", 50], ["customer-v2-vn", 50]]),
        ),
        (
            "customer-r-v2",
            "customer-r",
            3,
            json!([["customer-vn", 0], ["customer-v2-vn", 100]]),
        ),
        (
            "product-r-v1",
            "product-r",
            4,
            json!([["product-vn", 100], ["product-v15-vn", 0]]),
        ),
        (
            "customer-r-v1",
            "customer-r",
            4,
            json!([["customer-vn", 100], ["customer-v2-vn", 0]]),
        ),
    ];
    for (file, route, version, want) in steps {
        let updated =
            aws_json(url, &["update-route", "--cli-input-json", &cli_input(file)])["route"].clone();
        let router = route.replace("-r", "-vr");
        assert_metadata(
            &updated,
            &format!("mesh/demomesh/virtualRouter/{router}/route/{route}"),
            version,
        );
        assert_active(&updated);
        let want: Vec<Value> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"virtualNode": t[0], "weight": t[1]}))
            .collect();
        assert_eq!(targets(&updated), json!(want), "{file}");
        let described = resource(&example(file)).describe(url);
        assert_eq!(described, updated, "describe-route after {file}");

        if file == "product-r-75-25" {
            assert_eq!(updated["metadata"]["uid"], before["metadata"]["uid"]);
            assert_eq!(
                updated["metadata"]["createdAt"],
                before["metadata"]["createdAt"]
            );
            assert_seed_table(url);
        }
    }
}

/// The seed's `watch -n1 aws appmesh describe-route ... --output table` view of a 75/25 split.
fn assert_seed_table(url: &str) {
    let table = aws_ok(
        url,
        &[
            "describe-route",
            "--mesh-name",
            "demomesh",
            "--route-name",
            "product-r",
            "--virtual-router-name",
            "product-vr",
            "--query",
            "route.spec.httpRoute.action.weightedTargets",
            "--output",
            "table",
        ],
    );
    assert!(table.contains("DescribeRoute"), "{table}");
    let row = |node: &str| {
        table
            .lines()
            .find(|l| l.split('|').any(|cell| cell.trim() == node))
            .unwrap_or_else(|| panic!("no row for {node}:\n{table}"))
    };
    assert!(
        row("product-vn").split('|').any(|c| c.trim() == "75"),
        "{table}"
    );
    assert!(
        row("product-v15-vn").split('|').any(|c| c.trim() == "25"),
        "{table}"
    );
}

#[test]
fn every_update_bumps_the_version_and_keeps_identity() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    for name in STEP1 {
        let input = example(name);
        let res = resource(&input);
        let before = res.describe(url);
        let after = res.run(url, "update", &["--cli-input-json", &cli_input(name)]);
        assert_metadata(&after, &res.arn_path, 2);
        assert_active(&after);
        assert_eq!(
            after["metadata"]["uid"], before["metadata"]["uid"],
            "{name}"
        );
        assert_eq!(
            after["metadata"]["createdAt"], before["metadata"]["createdAt"],
            "{name}"
        );
        assert_contains(&after["spec"], &input["spec"]);
        assert_eq!(res.describe(url), after, "{name}");
    }
}

/// One `list-*` operation: its arguments, the list's key and each item's name field.
struct Listing<'a> {
    args: Vec<&'a str>,
    key: &'a str,
    name: &'a str,
    want: Vec<&'a str>,
}

fn names(items: &Value, name: &str) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {items}"))
        .iter()
        .map(|i| {
            i[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {i}"))
                .to_string()
        })
        .collect()
}

#[test]
fn every_list_operation_pages_through_everything() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    // A second item wherever step 1 has only one, so that pages of one are pages.
    let extra = [
        json!({"meshName": "othermesh"}),
        json!({"meshName": "demomesh", "virtualRouterName": "product-vr", "routeName": "product-r2",
               "spec": {"priority": 10, "httpRoute": {"match": {"prefix": "/beta"},
                        "action": {"weightedTargets": [{"virtualNode": "product-vn", "weight": 1}]}}}}),
        json!({"meshName": "demomesh", "virtualGatewayName": "admin-gw",
               "spec": {"listeners": [{"portMapping": {"port": 9081, "protocol": "http"}}]}}),
        json!({"meshName": "demomesh", "virtualGatewayName": "demo-gw", "gatewayRouteName": "product-gr",
               "spec": {"httpRoute": {"match": {"prefix": "/product/"}, "action": {"target":
                        {"virtualService": {"virtualServiceName": "product.demomesh.local"}}}}}}),
    ];
    for input in &extra {
        let (status, body) = apply_raw(url, input, Write::Create);
        assert_eq!(status, 200, "{input}: {body}");
    }
    let mesh_arn = resource(&example("mesh")).describe(url)["metadata"]["arn"]
        .as_str()
        .unwrap()
        .to_string();
    aws_ok(
        url,
        &[
            "tag-resource",
            "--resource-arn",
            &mesh_arn,
            "--tags",
            "key=team,value=shop",
            "key=tier,value=demo",
            "key=env,value=test",
        ],
    );
    let mesh_arn = mesh_arn.as_str();

    let listings = [
        Listing {
            args: vec!["list-meshes"],
            key: "meshes",
            name: "meshName",
            want: vec!["demomesh", "othermesh"],
        },
        Listing {
            args: vec!["list-virtual-nodes", "--mesh-name", "demomesh"],
            key: "virtualNodes",
            name: "virtualNodeName",
            want: vec!["customer-vn", "order-vn", "product-vn"],
        },
        Listing {
            args: vec!["list-virtual-routers", "--mesh-name", "demomesh"],
            key: "virtualRouters",
            name: "virtualRouterName",
            want: vec!["customer-vr", "order-vr", "product-vr"],
        },
        Listing {
            args: vec![
                "list-routes",
                "--mesh-name",
                "demomesh",
                "--virtual-router-name",
                "product-vr",
            ],
            key: "routes",
            name: "routeName",
            want: vec!["product-r", "product-r2"],
        },
        Listing {
            args: vec!["list-virtual-services", "--mesh-name", "demomesh"],
            key: "virtualServices",
            name: "virtualServiceName",
            want: vec![
                "customer.demomesh.local",
                "order.demomesh.local",
                "product.demomesh.local",
            ],
        },
        Listing {
            args: vec!["list-virtual-gateways", "--mesh-name", "demomesh"],
            key: "virtualGateways",
            name: "virtualGatewayName",
            want: vec!["admin-gw", "demo-gw"],
        },
        Listing {
            args: vec![
                "list-gateway-routes",
                "--mesh-name",
                "demomesh",
                "--virtual-gateway-name",
                "demo-gw",
            ],
            key: "gatewayRoutes",
            name: "gatewayRouteName",
            want: vec!["order-gr", "product-gr"],
        },
        Listing {
            args: vec!["list-tags-for-resource", "--resource-arn", mesh_arn],
            key: "tags",
            name: "key",
            want: vec!["env", "team", "tier"],
        },
    ];

    for l in &listings {
        let with = |more: &[&str]| -> Value {
            let mut args = l.args.clone();
            args.extend_from_slice(more);
            aws_json(url, &args)
        };
        let what = l.args.join(" ");

        // Everything, as the CLI pages through by itself.
        let all = with(&[]);
        assert!(
            all.get("nextToken").is_none() && all.get("NextToken").is_none(),
            "{what}: {all:#}"
        );
        let everything = names(&all[l.key], l.name);
        let mut sorted = everything.clone();
        sorted.sort();
        assert_eq!(sorted, l.want, "{what}");
        if l.key != "tags" {
            for item in all[l.key].as_array().unwrap() {
                for field in [
                    "arn",
                    "meshName",
                    "meshOwner",
                    "resourceOwner",
                    "version",
                    "createdAt",
                    "lastUpdatedAt",
                ] {
                    assert!(
                        item.get(field).is_some(),
                        "{what}: {field} missing in {item}"
                    );
                }
            }
        }

        // The server's own pages of one (`limit=1`), followed by the CLI.
        assert_eq!(
            names(&with(&["--page-size", "1"])[l.key], l.name),
            everything,
            "{what} --page-size 1"
        );

        // The CLI's resumable paging, which wraps the server's nextToken.
        let first = with(&["--max-items", "1"]);
        assert_eq!(
            first[l.key].as_array().map(Vec::len),
            Some(1),
            "{what} --max-items 1: {first:#}"
        );
        let token = first["NextToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no NextToken in {first:#}"));
        let rest = with(&["--starting-token", token]);
        let mut resumed = names(&first[l.key], l.name);
        resumed.extend(names(&rest[l.key], l.name));
        assert_eq!(
            resumed, everything,
            "{what} --max-items 1, then --starting-token"
        );

        // The raw API: --limit and --next-token as they go over the wire.
        let mut raw = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..=l.want.len() {
            let mut more = vec!["--no-paginate", "--limit", "1"];
            if let Some(t) = &token {
                more.extend(["--next-token", t.as_str()]);
            }
            let page = with(&more);
            let items = names(&page[l.key], l.name);
            assert!(items.len() <= 1, "{what} --limit 1 gave {items:?}");
            raw.extend(items);
            token = page["nextToken"].as_str().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        assert!(token.is_none(), "{what}: nextToken after the last item");
        assert_eq!(raw, everything, "{what} --limit 1 --next-token ...");
    }
}

#[test]
fn tags_are_added_listed_replaced_and_removed() {
    let control = start();
    let url = control.url();
    aws_ok(
        url,
        &["create-mesh", "--cli-input-json", &cli_input("mesh")],
    );
    let created = aws_json(
        url,
        &[
            "create-virtual-node",
            "--cli-input-json",
            &cli_input("product-vn"),
            "--tags",
            "key=release,value=1.0",
        ],
    );
    let arn = created["virtualNode"]["metadata"]["arn"]
        .as_str()
        .unwrap()
        .to_string();
    let tags = |url: &str| -> Value {
        let mut tags =
            aws_json(url, &["list-tags-for-resource", "--resource-arn", &arn])["tags"].clone();
        tags.as_array_mut()
            .unwrap()
            .sort_by_key(|t| t["key"].as_str().unwrap().to_string());
        tags
    };
    assert_eq!(tags(url), json!([{"key": "release", "value": "1.0"}]));

    let out = aws(
        url,
        &[
            "tag-resource",
            "--resource-arn",
            &arn,
            "--tags",
            "key=team,value=catalog",
            "key=release,value=1.5",
        ],
    );
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(
        tags(url),
        json!([{"key": "release", "value": "1.5"}, {"key": "team", "value": "catalog"}])
    );

    aws_ok(
        url,
        &[
            "untag-resource",
            "--resource-arn",
            &arn,
            "--tag-keys",
            "release",
        ],
    );
    assert_eq!(tags(url), json!([{"key": "team", "value": "catalog"}]));

    // Tags are not spec: the node itself did not change.
    let node = aws_json(
        url,
        &[
            "describe-virtual-node",
            "--mesh-name",
            "demomesh",
            "--virtual-node-name",
            "product-vn",
        ],
    );
    assert_eq!(node["virtualNode"]["metadata"]["version"], 1);

    let missing = arn.replace("product-vn", "ghost-vn");
    aws(
        url,
        &[
            "tag-resource",
            "--resource-arn",
            &missing,
            "--tags",
            "key=a,value=b",
        ],
    )
    .expect_error("NotFoundException");
    aws(url, &["list-tags-for-resource", "--resource-arn", &missing])
        .expect_error("NotFoundException");
}

#[test]
fn deletes_refuse_what_is_in_use_and_report_what_is_missing() {
    let control = start();
    let url = control.url();
    create_with_script(url);

    let in_use = [
        vec!["delete-mesh", "--mesh-name", "demomesh"],
        vec![
            "delete-virtual-router",
            "--mesh-name",
            "demomesh",
            "--virtual-router-name",
            "product-vr",
        ],
        vec![
            "delete-virtual-gateway",
            "--mesh-name",
            "demomesh",
            "--virtual-gateway-name",
            "demo-gw",
        ],
    ];
    for args in &in_use {
        let out = aws(url, args);
        out.expect_error("ResourceInUseException");
        let message = out.error_message().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "{} gave no message: {}",
            args[0],
            out.stderr
        );
    }

    let missing = [
        vec!["describe-mesh", "--mesh-name", "ghostmesh"],
        vec!["delete-mesh", "--mesh-name", "ghostmesh"],
        vec![
            "describe-virtual-node",
            "--mesh-name",
            "demomesh",
            "--virtual-node-name",
            "ghost-vn",
        ],
        vec![
            "delete-virtual-node",
            "--mesh-name",
            "demomesh",
            "--virtual-node-name",
            "ghost-vn",
        ],
        vec![
            "describe-route",
            "--mesh-name",
            "demomesh",
            "--virtual-router-name",
            "ghost-vr",
            "--route-name",
            "product-r",
        ],
        vec![
            "delete-route",
            "--mesh-name",
            "demomesh",
            "--virtual-router-name",
            "product-vr",
            "--route-name",
            "ghost-r",
        ],
        vec![
            "list-routes",
            "--mesh-name",
            "demomesh",
            "--virtual-router-name",
            "ghost-vr",
        ],
        vec!["list-virtual-nodes", "--mesh-name", "ghostmesh"],
        vec![
            "delete-gateway-route",
            "--mesh-name",
            "demomesh",
            "--virtual-gateway-name",
            "demo-gw",
            "--gateway-route-name",
            "ghost-gr",
        ],
    ];
    for args in &missing {
        aws(url, args).expect_error("NotFoundException");
    }

    // Nothing above changed anything: still all there, all at version 1.
    for name in STEP1 {
        let res = resource(&example(name));
        assert_eq!(res.describe(url)["metadata"]["version"], 1, "{name}");
    }

    // Every delete-*, children before parents: the reverse of creation.
    for name in STEP1.iter().rev() {
        let res = resource(&example(name));
        let deleted = res.run(url, "delete", &[]);
        assert_eq!(
            deleted["status"]["status"], "DELETED",
            "{name}: {deleted:#}"
        );
        assert!(
            deleted["metadata"]["arn"]
                .as_str()
                .is_some_and(|a| a.ends_with(&res.arn_path)),
            "{name}"
        );
        let args = res.call("describe", &[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        aws(url, &args).expect_error("NotFoundException");
    }
    let meshes = aws_json(url, &["list-meshes"]);
    assert_eq!(meshes["meshes"], json!([]), "{meshes:#}");
}

#[test]
fn creating_an_existing_name_conflicts_and_changes_nothing() {
    let control = start();
    let url = control.url();
    aws_ok(
        url,
        &["create-mesh", "--cli-input-json", &cli_input("mesh")],
    );
    let first = aws_json(
        url,
        &[
            "create-virtual-node",
            "--cli-input-json",
            &cli_input("product-vn"),
        ],
    );

    aws(url, &["create-mesh", "--mesh-name", "demomesh"]).expect_error("ConflictException");
    // The same name with another spec (customer-vn's), and a fresh client token from the CLI.
    let other_spec = example("customer-vn")["spec"].to_string();
    aws(
        url,
        &[
            "create-virtual-node",
            "--mesh-name",
            "demomesh",
            "--virtual-node-name",
            "product-vn",
            "--spec",
            &other_spec,
        ],
    )
    .expect_error("ConflictException");

    let now = aws_json(
        url,
        &[
            "describe-virtual-node",
            "--mesh-name",
            "demomesh",
            "--virtual-node-name",
            "product-vn",
        ],
    );
    assert_eq!(now["virtualNode"], first["virtualNode"]);
}

#[test]
fn a_create_retried_with_its_client_token_returns_the_same_resource() {
    let control = start();
    let url = control.url();
    aws_ok(
        url,
        &[
            "create-mesh",
            "--cli-input-json",
            &cli_input("mesh"),
            "--client-token",
            "mesh-token-1",
        ],
    );
    let again = aws_json(
        url,
        &[
            "create-mesh",
            "--cli-input-json",
            &cli_input("mesh"),
            "--client-token",
            "mesh-token-1",
        ],
    );
    assert_eq!(again["mesh"]["metadata"]["version"], 1);

    let create = [
        "create-virtual-node",
        "--cli-input-json",
        &cli_input("product-vn"),
        "--client-token",
        "vn-token-1",
    ];
    let first = aws_json(url, &create)["virtualNode"].clone();
    let second = aws_json(url, &create)["virtualNode"].clone();
    assert_eq!(second["metadata"]["uid"], first["metadata"]["uid"]);
    assert_eq!(second["metadata"]["version"], 1);
    assert_eq!(second["spec"], first["spec"]);

    let listed = aws_json(url, &["list-virtual-nodes", "--mesh-name", "demomesh"]);
    assert_eq!(
        names(&listed["virtualNodes"], "virtualNodeName"),
        ["product-vn"]
    );
}

/// The service model's ConflictException: "a client token that was used for a previous ...
/// call with different specifications".
#[test]
fn a_client_token_reused_for_a_different_spec_conflicts() {
    let control = start();
    let url = control.url();
    aws_ok(
        url,
        &["create-mesh", "--cli-input-json", &cli_input("mesh")],
    );
    let first = aws_json(
        url,
        &[
            "create-virtual-node",
            "--cli-input-json",
            &cli_input("product-vn"),
            "--client-token",
            "tok-a",
        ],
    );
    let other_spec = example("customer-vn")["spec"].to_string();
    aws(
        url,
        &[
            "create-virtual-node",
            "--mesh-name",
            "demomesh",
            "--virtual-node-name",
            "product-vn",
            "--spec",
            &other_spec,
            "--client-token",
            "tok-a",
        ],
    )
    .expect_error("ConflictException");
    let now = aws_json(
        url,
        &[
            "describe-virtual-node",
            "--mesh-name",
            "demomesh",
            "--virtual-node-name",
            "product-vn",
        ],
    );
    assert_eq!(now["virtualNode"], first["virtualNode"]);
}
