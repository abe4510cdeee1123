//! The seven App Mesh resource kinds and the names that go with each.

use std::fmt;
use std::str::FromStr;

/// An App Mesh resource kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Mesh,
    VirtualNode,
    VirtualRouter,
    Route,
    VirtualService,
    VirtualGateway,
    GatewayRoute,
}

impl Kind {
    /// Every kind, parents before children.
    pub const ALL: [Kind; 7] = [
        Kind::Mesh,
        Kind::VirtualNode,
        Kind::VirtualRouter,
        Kind::Route,
        Kind::VirtualService,
        Kind::VirtualGateway,
        Kind::GatewayRoute,
    ];

    /// The canonical name, as in manifests' `kind`: `VirtualNode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mesh => "Mesh",
            Kind::VirtualNode => "VirtualNode",
            Kind::VirtualRouter => "VirtualRouter",
            Kind::Route => "Route",
            Kind::VirtualService => "VirtualService",
            Kind::VirtualGateway => "VirtualGateway",
            Kind::GatewayRoute => "GatewayRoute",
        }
    }

    /// Parse the canonical name or a CLI-style alias, ignoring case, `-` and `_`:
    /// `VirtualNode`, `virtual-node`, `virtualnodes`, `vn`, `vns`; short names are
    /// `mesh`, `vn`, `vr`, `route`, `vs`, `vg`, `gr`.
    pub fn parse(s: &str) -> Option<Kind> {
        let norm: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let kind = match norm.as_str() {
            "mesh" | "meshes" => Kind::Mesh,
            "virtualnode" | "virtualnodes" | "vn" | "vns" => Kind::VirtualNode,
            "virtualrouter" | "virtualrouters" | "vr" | "vrs" => Kind::VirtualRouter,
            "route" | "routes" => Kind::Route,
            "virtualservice" | "virtualservices" | "vs" => Kind::VirtualService,
            "virtualgateway" | "virtualgateways" | "vg" | "vgs" => Kind::VirtualGateway,
            "gatewayroute" | "gatewayroutes" | "gr" | "grs" => Kind::GatewayRoute,
            _ => return None,
        };
        Some(kind)
    }

    /// The service-model shape of this kind's `spec`: `VirtualNodeSpec`.
    pub fn spec_shape(self) -> &'static str {
        match self {
            Kind::Mesh => "MeshSpec",
            Kind::VirtualNode => "VirtualNodeSpec",
            Kind::VirtualRouter => "VirtualRouterSpec",
            Kind::Route => "RouteSpec",
            Kind::VirtualService => "VirtualServiceSpec",
            Kind::VirtualGateway => "VirtualGatewaySpec",
            Kind::GatewayRoute => "GatewayRouteSpec",
        }
    }

    /// The service-model shape of a described resource (`spec`, `metadata`, `status`, name
    /// fields): `VirtualNodeData`.
    pub fn data_shape(self) -> &'static str {
        match self {
            Kind::Mesh => "MeshData",
            Kind::VirtualNode => "VirtualNodeData",
            Kind::VirtualRouter => "VirtualRouterData",
            Kind::Route => "RouteData",
            Kind::VirtualService => "VirtualServiceData",
            Kind::VirtualGateway => "VirtualGatewayData",
            Kind::GatewayRoute => "GatewayRouteData",
        }
    }

    /// The JSON field holding the resource's own name: `virtualNodeName`.
    pub fn name_field(self) -> &'static str {
        match self {
            Kind::Mesh => "meshName",
            Kind::VirtualNode => "virtualNodeName",
            Kind::VirtualRouter => "virtualRouterName",
            Kind::Route => "routeName",
            Kind::VirtualService => "virtualServiceName",
            Kind::VirtualGateway => "virtualGatewayName",
            Kind::GatewayRoute => "gatewayRouteName",
        }
    }

    /// The kind in App Mesh payload keys and ARNs: `{"virtualNode": {...}}`.
    pub fn camel(self) -> &'static str {
        match self {
            Kind::Mesh => "mesh",
            Kind::VirtualNode => "virtualNode",
            Kind::VirtualRouter => "virtualRouter",
            Kind::Route => "route",
            Kind::VirtualService => "virtualService",
            Kind::VirtualGateway => "virtualGateway",
            Kind::GatewayRoute => "gatewayRoute",
        }
    }

    /// The collection's name in REST paths and list outputs: `virtualNodes`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Mesh => "meshes",
            Kind::VirtualNode => "virtualNodes",
            Kind::VirtualRouter => "virtualRouters",
            Kind::Route => "routes",
            Kind::VirtualService => "virtualServices",
            Kind::VirtualGateway => "virtualGateways",
            Kind::GatewayRoute => "gatewayRoutes",
        }
    }

    /// The kind in prose: `virtual node`.
    pub fn human(self) -> &'static str {
        match self {
            Kind::Mesh => "mesh",
            Kind::VirtualNode => "virtual node",
            Kind::VirtualRouter => "virtual router",
            Kind::Route => "route",
            Kind::VirtualService => "virtual service",
            Kind::VirtualGateway => "virtual gateway",
            Kind::GatewayRoute => "gateway route",
        }
    }

    /// The service model's operation for `verb` on this kind: `("Create", VirtualNode)` →
    /// `CreateVirtualNode`, `("List", Mesh)` → `ListMeshes`.
    pub fn operation(self, verb: &str) -> String {
        if verb == "List" {
            let mut plural = self.plural().chars();
            let first = plural.next().map(|c| c.to_ascii_uppercase());
            format!(
                "List{}{}",
                first.into_iter().collect::<String>(),
                plural.as_str()
            )
        } else {
            format!("{verb}{}", self.as_str())
        }
    }

    /// The resource kind this kind is nested under inside its mesh: a route under a virtual
    /// router, a gateway route under a virtual gateway; `None` for kinds that live directly in
    /// a mesh, and for the mesh itself.
    pub fn parent(self) -> Option<Kind> {
        match self {
            Kind::Route => Some(Kind::VirtualRouter),
            Kind::GatewayRoute => Some(Kind::VirtualGateway),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Kind::from_str`]: the text named no kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        write!(
            f,
            "unknown kind '{}'; expected one of: {}",
            self.0,
            all.join(", ")
        )
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::parse(s).ok_or_else(|| UnknownKind(s.to_owned()))
    }
}
