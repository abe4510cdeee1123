//! aviary's resource model: the AWS App Mesh 2019-01-25 resource shapes, validation that
//! returns every problem at once, and YAML/JSON manifests. It owns what a valid resource is;
//! it must never do IO or async, and knows nothing of storage, HTTP or the proxy.
//!
//! Validation is driven by the App Mesh service model itself: botocore's
//! `appmesh/2019-01-25/service-2.json` with its documentation stripped, embedded as
//! `src/appmesh-2019-01-25.json` and parsed once ([`service_model`]). That file comes from
//! botocore (Copyright Amazon.com, Inc. or its affiliates) under the Apache License 2.0;
//! `tools/extract-service-model.py` regenerates it.
//!
//! - [`validate_shape`] walks any JSON value against any shape: unknown fields, required
//!   members, unions (exactly one member), types, lengths, ranges, item counts, enums and
//!   patterns. A `null` member counts as absent.
//! - [`validate_input_body`] checks a REST request body against an operation's input shape;
//!   members carried in the URI, query string or headers are not body fields.
//! - [`validate_spec`] is the full check of a resource spec: the model's rules plus aviary's.
//! - [`references`] lists the resources a spec names, for existence checks by the control plane;
//!   [`reference_sites`] says where in the spec each one is named.
//! - [`Kind`] names the seven kinds every way the API spells them; [`ResourcePath`] gives a
//!   resource's REST paths, filled in from the model's URI templates.
//! - [`manifest`] parses and validates manifests; [`typed`] gives read-only typed views.
//! - [`wire`] is aviary's `/v1` contract: one type per payload, shared by server and clients.
//!
//! # Where aviary differs from App Mesh
//!
//! The same table is in the crate's README.md; the limit overrides live in [`RELAXATIONS`].
//!
//! | what | App Mesh | aviary | why |
//! |---|---|---|---|
//! | `WeightedTarget.weight` | 0..=100 | 0..=10000 | finer traffic splits |
//! | `WeightedTargets` (targets per route action) | 1..=10 | 1..=100 | more targets |
//! | sum of a route action's weights | at most 100 (per the model's documentation) | not limited (at most 100 × 10000) | weights are relative |
//! | the same (virtualNode, port) twice in one route action | not checked | rejected: "virtual node 'x' is listed twice" | a target listed twice is a mistake |
//! | every weight of a route action is 0 | accepted | rejected: "all weights are zero" | such a route can send traffic nowhere |
//! | route type of a `RouteSpec` | exactly one (not expressed in the model) | exactly one of grpcRoute, http2Route, httpRoute, tcpRoute | same rule, now checked |
//! | route type of a `GatewayRouteSpec` | exactly one (not expressed in the model) | exactly one of grpcRoute, http2Route, httpRoute | same rule, now checked |
//! | resource names (metadata and names a spec refers to, backends included) | 1..=255 characters | also `^[A-Za-z0-9][A-Za-z0-9._-]*$` | names go into URL paths and DNS-like service names |
//! | size of one resource's `spec` (serialized JSON; also `/v1` workloads and canary specs) | no documented limit | at most 65536 bytes (64 KiB) ([`MAX_SPEC_BYTES`]) | bounds what one write costs the store, its watch history and every watcher |

pub mod civil;
mod kind;
pub mod manifest;
mod path;
mod problem;
mod service_model;
mod spec;
pub mod typed;
mod validate;
pub mod wire;

pub use kind::{Kind, UnknownKind};
pub use path::ResourcePath;
pub use problem::{Problem, Problems};
pub use service_model::{
    ErrorInfo, Location, Member, Metadata, Operation, Retryable, ServiceModel, Shape, ShapeRef,
    ShapeType, service_model,
};
pub use spec::{
    MAX_SPEC_BYTES, Reference, reference_sites, references, size_problem, validate_name,
    validate_spec,
};
pub use validate::{OverrideTarget, RELAXATIONS, Relaxation, validate_input_body, validate_shape};

#[cfg(test)]
mod tests;
