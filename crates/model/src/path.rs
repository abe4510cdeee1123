//! Where a resource lives in the App Mesh REST API, with URLs taken from the service model.

use std::fmt;

use crate::kind::Kind;
use crate::problem::Problem;
use crate::service_model::service_model;
use crate::spec::validate_name;

/// One resource (or, ignoring `name`, one collection) of the App Mesh REST API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePath {
    pub kind: Kind,
    /// The mesh; for a Mesh, its own name.
    pub mesh: String,
    /// The virtual router of a Route or the virtual gateway of a GatewayRoute; else `None`.
    pub parent: Option<String>,
    pub name: String,
}

impl ResourcePath {
    /// The collection of all meshes (for `ListMeshes`).
    pub fn meshes() -> ResourcePath {
        ResourcePath::mesh("")
    }

    /// The mesh `name`.
    pub fn mesh(name: impl Into<String>) -> ResourcePath {
        let name = name.into();
        ResourcePath {
            kind: Kind::Mesh,
            mesh: name.clone(),
            parent: None,
            name,
        }
    }

    /// A resource inside a mesh; `parent` is the router or gateway of a (gateway) route.
    pub fn new(
        kind: Kind,
        mesh: impl Into<String>,
        parent: Option<String>,
        name: impl Into<String>,
    ) -> ResourcePath {
        ResourcePath {
            kind,
            mesh: mesh.into(),
            parent,
            name: name.into(),
        }
    }

    /// The path of `Describe*`, `Update*` and `Delete*`:
    /// `/v20190125/meshes/demomesh/virtualRouter/product-vr/routes/product-r`.
    pub fn url_path(&self) -> String {
        self.fill(&self.kind.operation("Describe"))
    }

    /// The path of `Create*` and `List*`: `/v20190125/meshes/demomesh/virtualRouter/product-vr/routes`.
    pub fn collection_path(&self) -> String {
        self.fill(&self.kind.operation("List"))
    }

    /// Problems with the names: each well-formed, and a parent exactly for (gateway) routes.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = validate_name("meshName", &self.mesh);
        match (self.parent_kind(), &self.parent) {
            (Some(kind), Some(parent)) => problems.extend(validate_name(kind.name_field(), parent)),
            (Some(kind), None) => problems.push(Problem::new(kind.name_field(), "is required")),
            (None, Some(_)) => problems.push(Problem::new(
                "parent",
                format!("a {} has no parent but its mesh", self.kind.human()),
            )),
            (None, None) => {}
        }
        if self.kind != Kind::Mesh {
            problems.extend(validate_name(self.kind.name_field(), &self.name));
        }
        problems
    }

    /// The virtual router or virtual gateway kind this path's `parent` names, if any.
    pub fn parent_kind(&self) -> Option<Kind> {
        self.kind.parent()
    }

    /// The operation's URI template with this path's names filled in (percent-encoded).
    fn fill(&self, operation: &str) -> String {
        let op = service_model()
            .operation(operation)
            .expect("every kind has Describe and List operations (unit-tested)");
        let mut uri = op.request_uri.replace("{meshName}", &encode(&self.mesh));
        if let Some(kind) = self.parent_kind() {
            let label = format!("{{{}}}", kind.name_field());
            uri = uri.replace(&label, &encode(self.parent.as_deref().unwrap_or_default()));
        }
        let label = format!("{{{}}}", self.kind.name_field());
        uri.replace(&label, &encode(&self.name))
    }
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.kind.human(), self.name)?;
        if let (Some(kind), Some(parent)) = (self.parent_kind(), &self.parent) {
            write!(f, " of {} '{parent}'", kind.human())?;
        }
        if self.kind != Kind::Mesh {
            write!(f, " in mesh '{}'", self.mesh)?;
        }
        Ok(())
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters; valid names pass unchanged.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
