//! Tests of the typed views over the walkthrough's specs.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Kind;
use crate::spec::tests as walkthrough;
use crate::typed::*;

fn target(node: &str, weight: u32, port: Option<u16>) -> WeightedTarget {
    WeightedTarget {
        virtual_node: node.to_owned(),
        weight,
        port,
    }
}

#[test]
fn route_targets_of_every_route_type() {
    let tcp = json!({"tcpRoute": {"action": {"weightedTargets": [{"virtualNode": "db", "weight": 9000, "port": 5432}]}}});
    let grpc = json!({"grpcRoute": {"match": {"serviceName": "shop.Orders"}, "action": {"weightedTargets": [{"virtualNode": "g", "weight": 1}]}}});
    let http2 = json!({"http2Route": {"match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "h2", "weight": 0}]}}});
    let cases: Vec<(Value, Vec<WeightedTarget>)> = vec![
        (
            walkthrough::route(),
            vec![
                target("product-vn", 75, None),
                target("product-v15-vn", 25, None),
            ],
        ),
        (tcp, vec![target("db", 9000, Some(5432))]),
        (grpc, vec![target("g", 1, None)]),
        (http2, vec![target("h2", 0, None)]),
        (json!({}), vec![]),
        (json!("garbage"), vec![]),
    ];
    for (spec, expected) in cases {
        assert_eq!(route_targets(&spec), expected, "{spec}");
    }
}

#[test]
fn http_route_details() {
    let mut spec = walkthrough::route();
    spec["httpRoute"]["match"]["headers"] = json!([{"name": "x-canary", "match": {"exact": "1"}}, {"name": "x-v", "invert": true, "match": {"range": {"start": 1, "end": 5}}}]);
    spec["httpRoute"]["timeout"] = json!({"perRequest": {"unit": "s", "value": 15}});
    let route: RouteSpec = view(&spec).expect("route view");
    let http = route.http_route.expect("http route");
    assert_eq!(http.r#match.prefix.as_deref(), Some("/"));
    assert_eq!(
        http.r#match.headers[0].r#match,
        Some(HeaderMatch::Exact("1".into()))
    );
    assert!(http.r#match.headers[1].invert);
    assert_eq!(
        http.r#match.headers[1].r#match,
        Some(HeaderMatch::Range { start: 1, end: 5 })
    );
    let retry = http.retry_policy.expect("retry policy");
    assert_eq!(retry.max_retries, 2);
    assert_eq!(retry.per_retry_timeout.unit, DurationUnit::Millis);
    assert_eq!(
        retry.per_retry_timeout.to_std(),
        std::time::Duration::from_millis(1000)
    );
    assert_eq!(
        retry.http_retry_events,
        [HttpRetryEvent::ServerError, HttpRetryEvent::GatewayError]
    );
    let per_request = http.timeout.and_then(|t| t.per_request).expect("timeout");
    assert_eq!(per_request.to_std(), std::time::Duration::from_secs(15));
}

#[test]
fn other_kinds_views() {
    let vs: VirtualServiceSpec = view(&walkthrough::virtual_service()).unwrap();
    assert_eq!(
        vs.provider,
        Some(VirtualServiceProvider::VirtualRouter {
            virtual_router_name: "product-vr".into()
        })
    );
    let node: VirtualNodeSpec = view(&walkthrough::virtual_node()).unwrap();
    assert_eq!(node.listeners[0].port_mapping.port, 8080);
    let health = node.listeners[0].health_check.as_ref().unwrap();
    assert_eq!(
        (health.interval_millis, health.path.as_deref()),
        (5000, Some("/ping"))
    );
    assert_eq!(
        node.service_discovery
            .and_then(|d| d.dns)
            .map(|d| d.hostname)
            .as_deref(),
        Some("product-v1.demomesh.local")
    );
    assert_eq!(
        node.backends[0]
            .virtual_service
            .as_ref()
            .unwrap()
            .virtual_service_name,
        "customer.demomesh.local"
    );
    let gateway: ListenersSpec = view(&walkthrough::virtual_gateway()).unwrap();
    assert_eq!(gateway.listeners[0].port_mapping.port, 9080);
    let router: ListenersSpec = view(&walkthrough::virtual_router()).unwrap();
    assert_eq!(
        router.listeners[0].port_mapping.protocol,
        PortProtocol::Http
    );
    let gateway_route: GatewayRouteSpec = view(&walkthrough::gateway_route()).unwrap();
    assert_eq!(
        gateway_route
            .target()
            .map(|t| t.virtual_service.virtual_service_name.as_str()),
        Some("order.demomesh.local")
    );
    assert!(view::<VirtualNodeSpec>(&json!({"listeners": "no"})).is_none());
}

/// App Mesh's own examples of listener TLS (its user guide's "Transport Layer Security" and
/// "Mutual TLS authentication" pages), each decoded into the view.
#[test]
fn listener_tls_of_the_app_mesh_examples() {
    fn check(tls: Value, expected: Option<ListenerTls>) {
        let mut spec = walkthrough::virtual_node();
        spec["listeners"][0]["tls"] = tls.clone();
        assert_eq!(
            crate::validate_spec(Kind::VirtualNode, &spec),
            vec![],
            "{tls} is a valid App Mesh spec"
        );
        let node: Option<VirtualNodeSpec> = view(&spec);
        assert_eq!(
            node.map(|n| n.listeners[0].tls.clone()),
            Some(expected),
            "{tls}"
        );
    }
    let file = |chain: &str, key: &str| TlsCertificate::File {
        certificate_chain: chain.into(),
        private_key: key.into(),
    };
    check(
        json!({"mode": "STRICT", "certificate": {"file": {"certificateChain": "/keys/chain.pem", "privateKey": "/keys/key.pem"}}}),
        Some(ListenerTls {
            mode: TlsMode::Strict,
            certificate: file("/keys/chain.pem", "/keys/key.pem"),
            validation: None,
        }),
    );
    check(
        json!({"mode": "PERMISSIVE",
               "certificate": {"file": {"certificateChain": "/c.pem", "privateKey": "/k.pem"}},
               "validation": {"trust": {"file": {"certificateChain": "/ca.pem"}},
                              "subjectAlternativeNames": {"match": {"exact": ["spiffe://m/virtualNode/a", "b.local"]}}}}),
        Some(ListenerTls {
            mode: TlsMode::Permissive,
            certificate: file("/c.pem", "/k.pem"),
            validation: Some(ListenerTlsValidation {
                trust: TlsTrust::File {
                    certificate_chain: "/ca.pem".into(),
                },
                subject_alternative_names: Some(SanMatch {
                    exact: vec!["spiffe://m/virtualNode/a".into(), "b.local".into()],
                }),
            }),
        }),
    );
    check(
        json!({"mode": "DISABLED", "certificate": {"sds": {"secretName": "spiffe://m/svc"}},
               "validation": {"trust": {"sds": {"secretName": "bundle"}}}}),
        Some(ListenerTls {
            mode: TlsMode::Disabled,
            certificate: TlsCertificate::Sds {
                secret_name: "spiffe://m/svc".into(),
            },
            validation: Some(ListenerTlsValidation {
                trust: TlsTrust::Sds {
                    secret_name: "bundle".into(),
                },
                subject_alternative_names: None,
            }),
        }),
    );
    let arn = "arn:aws:acm:us-west-2:111122223333:certificate/abc";
    check(
        json!({"mode": "STRICT", "certificate": {"acm": {"certificateArn": arn}}}),
        Some(ListenerTls {
            mode: TlsMode::Strict,
            certificate: TlsCertificate::Acm {
                certificate_arn: arn.into(),
            },
            validation: None,
        }),
    );
}

#[test]
fn client_policies_of_the_app_mesh_examples() {
    let policy = json!({"tls": {
        "enforce": false, "ports": [8080, 8443],
        "certificate": {"file": {"certificateChain": "/c.pem", "privateKey": "/k.pem"}},
        "validation": {"trust": {"acm": {"certificateAuthorityArns": ["arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/ca"]}},
                       "subjectAlternativeNames": {"match": {"exact": ["product.local"]}}}}});
    let mut spec = walkthrough::virtual_node();
    spec["backendDefaults"] = json!({"clientPolicy": policy});
    spec["backends"][0]["virtualService"]["clientPolicy"] =
        json!({"tls": {"validation": {"trust": {"file": {"certificateChain": "/ca.pem"}}}}});
    assert_eq!(crate::validate_spec(Kind::VirtualNode, &spec), vec![]);
    let node: VirtualNodeSpec = view(&spec).expect("node view");
    let defaults = ClientPolicyTls {
        enforce: Some(false),
        ports: vec![8080, 8443],
        certificate: Some(ClientTlsCertificate::File {
            certificate_chain: "/c.pem".into(),
            private_key: "/k.pem".into(),
        }),
        validation: TlsValidationContext {
            trust: TlsTrust::Acm {
                certificate_authority_arns: vec![
                    "arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/ca".into(),
                ],
            },
            subject_alternative_names: Some(SanMatch {
                exact: vec!["product.local".into()],
            }),
        },
    };
    assert_eq!(
        node.backend_defaults,
        Some(BackendDefaults {
            client_policy: Some(ClientPolicy {
                tls: Some(defaults.clone())
            })
        })
    );
    let own = node.backends[0].virtual_service.as_ref().unwrap();
    let own = own
        .client_policy
        .as_ref()
        .and_then(|p| p.tls.clone())
        .unwrap();
    assert_eq!(
        own.validation.trust,
        TlsTrust::File {
            certificate_chain: "/ca.pem".into()
        }
    );
    // `enforce` defaults to true; `ports` to every port.
    let cases = [
        (&own, 80, true),
        (&own, 8080, true),
        (&defaults, 8080, false),
    ];
    for (policy, port, expected) in cases {
        assert_eq!(policy.applies_to(port), expected, "{policy:?} {port}");
    }
    let enforced_on_8443 = ClientPolicyTls {
        enforce: None,
        ..defaults
    };
    assert!(enforced_on_8443.applies_to(8443));
    assert!(!enforced_on_8443.applies_to(80));
}

/// A gateway listener's TLS (`VirtualGatewayListenerTls`) reads through the same view.
#[test]
fn gateway_listener_tls() {
    let mut spec = walkthrough::virtual_gateway();
    spec["listeners"][0]["tls"] = json!({"mode": "STRICT",
        "certificate": {"file": {"certificateChain": "/c.pem", "privateKey": "/k.pem"}},
        "validation": {"trust": {"file": {"certificateChain": "/ca.pem"}}}});
    assert_eq!(crate::validate_spec(Kind::VirtualGateway, &spec), vec![]);
    let gateway: ListenersSpec = view(&spec).expect("gateway view");
    let tls = gateway.listeners[0].tls.as_ref().expect("tls");
    assert_eq!(tls.mode, TlsMode::Strict);
    assert_eq!(tls.mode.as_str(), "STRICT");
}

/// A valid App Mesh `kind` spec, read through the view `T`.
fn valid<T: DeserializeOwned>(kind: Kind, spec: &Value) -> T {
    assert_eq!(
        crate::validate_spec(kind, spec),
        vec![],
        "{spec} is a valid App Mesh spec"
    );
    view(spec).unwrap_or_else(|| panic!("{spec} fits the view"))
}

fn duration(unit: DurationUnit, value: u64) -> Duration {
    Duration { unit, value }
}

fn order_service(port: Option<u16>) -> GatewayRouteTarget {
    GatewayRouteTarget {
        virtual_service: GatewayRouteVirtualService {
            virtual_service_name: "order.demomesh.local".into(),
        },
        port,
    }
}

#[test]
fn mesh_egress_filter_defaults_to_drop_all() {
    let check = |spec: Value, filter: Option<EgressFilterType>, expected: EgressFilterType| {
        let mesh: MeshSpec = valid(Kind::Mesh, &spec);
        assert_eq!(
            mesh,
            MeshSpec {
                egress_filter: filter.map(|r#type| EgressFilter { r#type })
            },
            "{spec}"
        );
        assert_eq!(mesh.egress_filter_type(), expected, "{spec}");
    };
    use EgressFilterType::{AllowAll, DropAll};
    check(walkthrough::mesh(), Some(AllowAll), AllowAll);
    check(
        json!({"egressFilter": {"type": "DROP_ALL"}}),
        Some(DropAll),
        DropAll,
    );
    check(json!({}), None, DropAll);
}

#[test]
fn retry_events_are_enums_and_undocumented_http_events_decode() {
    let check = |events: Value, expected: &[HttpRetryEvent]| {
        let spec = walkthrough::with(
            walkthrough::route(),
            "/httpRoute/retryPolicy/httpRetryEvents",
            events.clone(),
        );
        let route: RouteSpec = valid(Kind::Route, &spec);
        let retry = route
            .http_route
            .and_then(|r| r.retry_policy)
            .expect("retry");
        assert_eq!(retry.http_retry_events, expected, "{events}");
        assert_eq!(retry.tcp_retry_events, [TcpRetryEvent::ConnectionError]);
    };
    use HttpRetryEvent::*;
    check(
        json!([
            "server-error",
            "gateway-error",
            "client-error",
            "stream-error"
        ]),
        &[ServerError, GatewayError, ClientError, StreamError],
    );
    // The model types an HTTP retry event as any string of 1 to 25 characters.
    check(json!(["gateway-error", "reset"]), &[GatewayError, Unknown]);
}

#[test]
fn listener_protocols_and_outlier_detection() {
    let check = |protocol: &str, expected: PortProtocol, http2: bool| {
        let spec = walkthrough::with(
            walkthrough::virtual_node(),
            "/listeners/0/portMapping/protocol",
            json!(protocol),
        );
        let node: VirtualNodeSpec = valid(Kind::VirtualNode, &spec);
        let protocol = node.listeners[0].port_mapping.protocol;
        assert_eq!((protocol, protocol.speaks_http2()), (expected, http2));
    };
    check("http", PortProtocol::Http, false);
    check("http2", PortProtocol::Http2, true);
    check("grpc", PortProtocol::Grpc, true);
    check("tcp", PortProtocol::Tcp, false);

    let node: VirtualNodeSpec = valid(Kind::VirtualNode, &walkthrough::virtual_node());
    assert_eq!(node.listeners[0].outlier_detection, None);
    let spec = walkthrough::with(
        walkthrough::virtual_node(),
        "/listeners/0/outlierDetection",
        json!({"maxServerErrors": 5, "interval": {"unit": "s", "value": 10},
               "baseEjectionDuration": {"unit": "ms", "value": 30000}, "maxEjectionPercent": 50}),
    );
    let node: VirtualNodeSpec = valid(Kind::VirtualNode, &spec);
    assert_eq!(
        node.listeners[0].outlier_detection,
        Some(OutlierDetection {
            max_server_errors: 5,
            interval: duration(DurationUnit::Seconds, 10),
            base_ejection_duration: duration(DurationUnit::Millis, 30000),
            max_ejection_percent: 50,
        })
    );
}

#[test]
fn http_route_match_method_scheme_and_query() {
    let spec = walkthrough::with(
        walkthrough::route(),
        "/httpRoute/match",
        json!({"prefix": "/", "method": "POST", "scheme": "https",
               "queryParameters": [{"name": "v", "match": {"exact": "2"}}, {"name": "debug"}]}),
    );
    let route: RouteSpec = valid(Kind::Route, &spec);
    assert_eq!(
        route.http_route.map(|r| r.r#match),
        Some(HttpRouteMatch {
            prefix: Some("/".into()),
            path: None,
            method: Some(HttpMethod::Post),
            scheme: Some(HttpScheme::Https),
            port: None,
            headers: vec![],
            query_parameters: vec![
                HttpQueryParameter {
                    name: "v".into(),
                    r#match: Some(QueryParameterMatch {
                        exact: Some("2".into())
                    }),
                },
                HttpQueryParameter {
                    name: "debug".into(),
                    r#match: None,
                },
            ],
        })
    );
    assert_eq!(HttpMethod::Post.as_str(), "POST");
}

#[test]
fn grpc_route_retries_and_timeout() {
    let spec = json!({"grpcRoute": {
        "match": {"serviceName": "shop.Orders", "methodName": "Get"},
        "action": {"weightedTargets": [{"virtualNode": "orders-vn", "weight": 1}]},
        "retryPolicy": {"maxRetries": 3, "perRetryTimeout": {"unit": "ms", "value": 250},
                        "grpcRetryEvents": ["unavailable", "deadline-exceeded"],
                        "httpRetryEvents": ["stream-error"], "tcpRetryEvents": ["connection-error"]},
        "timeout": {"perRequest": {"unit": "s", "value": 5}}}});
    let route: RouteSpec = valid(Kind::Route, &spec);
    let grpc = route.grpc_route.expect("grpc route");
    assert_eq!(
        grpc.r#match,
        GrpcRouteMatch {
            service_name: Some("shop.Orders".into()),
            method_name: Some("Get".into()),
            port: None,
        }
    );
    assert_eq!(
        grpc.retry_policy,
        Some(GrpcRetryPolicy {
            max_retries: 3,
            per_retry_timeout: duration(DurationUnit::Millis, 250),
            grpc_retry_events: vec![
                GrpcRetryEvent::Unavailable,
                GrpcRetryEvent::DeadlineExceeded
            ],
            http_retry_events: vec![HttpRetryEvent::StreamError],
            tcp_retry_events: vec![TcpRetryEvent::ConnectionError],
        })
    );
    assert_eq!(
        grpc.timeout,
        Some(HttpTimeout {
            per_request: Some(duration(DurationUnit::Seconds, 5)),
            idle: None,
        })
    );
}

/// Gateway routes with the rewrites of App Mesh's user guide ("Gateway routes").
#[test]
fn gateway_routes_with_matches_and_rewrites() {
    let check = |spec: Value, expected: GatewayRouteSpec| {
        assert_eq!(
            valid::<GatewayRouteSpec>(Kind::GatewayRoute, &spec),
            expected,
            "{spec}"
        );
    };
    let target = json!({"virtualService": {"virtualServiceName": "order.demomesh.local"}});
    let http = |r#match: HttpGatewayRouteMatch, rewrite: Option<HttpGatewayRouteRewrite>| {
        Some(HttpGatewayRoute {
            r#match,
            action: HttpGatewayRouteAction {
                target: order_service(None),
                rewrite,
            },
        })
    };
    let none = GatewayRouteSpec {
        priority: None,
        http_route: None,
        http2_route: None,
        grpc_route: None,
    };
    check(
        json!({"priority": 10, "httpRoute": {
            "match": {"prefix": "/old/", "method": "GET", "hostname": {"suffix": ".example.com"},
                      "headers": [{"name": "x-canary", "match": {"exact": "1"}}],
                      "queryParameters": [{"name": "v"}]},
            "action": {"target": target, "rewrite": {
                "prefix": {"value": "/new/"},
                "hostname": {"defaultTargetHostname": "DISABLED"}}}}}),
        GatewayRouteSpec {
            priority: Some(10),
            http_route: http(
                HttpGatewayRouteMatch {
                    prefix: Some("/old/".into()),
                    method: Some(HttpMethod::Get),
                    hostname: Some(GatewayRouteHostnameMatch {
                        exact: None,
                        suffix: Some(".example.com".into()),
                    }),
                    headers: vec![HttpRouteHeader {
                        name: "x-canary".into(),
                        invert: false,
                        r#match: Some(HeaderMatch::Exact("1".into())),
                    }],
                    query_parameters: vec![HttpQueryParameter {
                        name: "v".into(),
                        r#match: None,
                    }],
                    ..HttpGatewayRouteMatch::default()
                },
                Some(HttpGatewayRouteRewrite {
                    prefix: Some(HttpGatewayRoutePrefixRewrite {
                        default_prefix: None,
                        value: Some("/new/".into()),
                    }),
                    path: None,
                    hostname: Some(GatewayRouteHostnameRewrite {
                        default_target_hostname: Some(DefaultGatewayRouteRewrite::Disabled),
                    }),
                }),
            ),
            ..none.clone()
        },
    );
    check(
        json!({"httpRoute": {"match": {"prefix": "/keep/"}, "action": {"target": target,
            "rewrite": {"prefix": {"defaultPrefix": "DISABLED"}}}}}),
        GatewayRouteSpec {
            http_route: http(
                HttpGatewayRouteMatch {
                    prefix: Some("/keep/".into()),
                    ..HttpGatewayRouteMatch::default()
                },
                Some(HttpGatewayRouteRewrite {
                    prefix: Some(HttpGatewayRoutePrefixRewrite {
                        default_prefix: Some(DefaultGatewayRouteRewrite::Disabled),
                        value: None,
                    }),
                    ..HttpGatewayRouteRewrite::default()
                }),
            ),
            ..none.clone()
        },
    );
    check(
        json!({"http2Route": {"match": {"path": {"exact": "/status"}}, "action": {"target": target,
            "rewrite": {"path": {"exact": "/health"}}}}}),
        GatewayRouteSpec {
            http2_route: http(
                HttpGatewayRouteMatch {
                    path: Some(HttpPathMatch {
                        exact: Some("/status".into()),
                        regex: None,
                    }),
                    ..HttpGatewayRouteMatch::default()
                },
                Some(HttpGatewayRouteRewrite {
                    path: Some(HttpGatewayRoutePathRewrite {
                        exact: Some("/health".into()),
                    }),
                    ..HttpGatewayRouteRewrite::default()
                }),
            ),
            ..none.clone()
        },
    );
    check(
        json!({"grpcRoute": {"match": {"serviceName": "shop.Orders", "port": 9080},
            "action": {"target": {"virtualService": {"virtualServiceName": "order.demomesh.local"}, "port": 8080},
                       "rewrite": {"hostname": {"defaultTargetHostname": "ENABLED"}}}}}),
        GatewayRouteSpec {
            grpc_route: Some(GrpcGatewayRoute {
                r#match: GrpcGatewayRouteMatch {
                    service_name: Some("shop.Orders".into()),
                    port: Some(9080),
                },
                action: GrpcGatewayRouteAction {
                    target: order_service(Some(8080)),
                    rewrite: Some(GrpcGatewayRouteRewrite {
                        hostname: Some(GatewayRouteHostnameRewrite {
                            default_target_hostname: Some(DefaultGatewayRouteRewrite::Enabled),
                        }),
                    }),
                },
            }),
            ..none
        },
    );
}
