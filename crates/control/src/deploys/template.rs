//! The deploy template (`config_file`, base64): the AWS pipeline's `kubernetes_template.yml`
//! idea, written as aviary manifests, with the pipeline's five variables.

use base64::Engine;
use model::manifest::{Manifest, ManifestKind};
use model::wire::DeploySpec;

/// The values of `${NAME}` in a template.
pub struct Vars {
    values: Vec<(&'static str, String)>,
}

impl Vars {
    pub fn new(spec: &DeploySpec, version: u64, node: &str, stable: Option<&str>) -> Vars {
        // New version first, as the reference pipeline writes them; at weight 0 until the
        // canary moves traffic (a first deploy takes it all at once).
        let routes = match stable {
            Some(stable) => format!(
                r#"{{"virtualNode":"{node}","weight":0}},{{"virtualNode":"{stable}","weight":100}}"#
            ),
            None => format!(r#"{{"virtualNode":"{node}","weight":100}}"#),
        };
        let image = match &spec.container_image {
            Some(serde_json::Value::String(line)) => line.clone(),
            Some(other) => other.to_string(),
            None => serde_json::Value::from(spec.command.clone()).to_string(),
        };
        let namespace = match &spec.kubernetes_namespace {
            Some(serde_json::Value::String(ns)) => ns.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        Vars {
            values: vec![
                ("MICROSERVICE_NAME", spec.microservice_name.clone()),
                ("CONTAINER_IMAGE", image),
                ("CANARY_VERSION", version.to_string()),
                ("CANARY_ROUTES", routes),
                ("KUBERNETES_NAMESPACE", namespace),
            ],
        }
    }
}

/// Decodes, substitutes and parses the template; every document must be in `mesh`, of an
/// App Mesh kind or a Workload (a template without the new version's node or workload leaves
/// them to the deploy, modelled on the serving version). Errors name `config_file`, the document and the problem.
pub fn render(base64_text: &str, vars: &Vars, mesh: &str) -> Result<Vec<Manifest>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text.trim())
        .map_err(|e| format!("config_file: not base64: {e}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| "config_file: the template is not UTF-8".to_string())?;
    let rendered = substitute(&text, vars)?;
    let manifests = model::manifest::parse_manifests(&rendered, "config_file")
        .map_err(|problems| problems.to_string())?;
    let mut problems = Vec::new();
    for manifest in &manifests {
        if manifest.metadata.mesh != mesh {
            problems.push(format!(
                "{}: {} is in mesh '{}', the deploy in '{mesh}'",
                manifest.source,
                manifest.describe(),
                manifest.metadata.mesh
            ));
        }
        match &manifest.kind {
            ManifestKind::AppMesh(_) => {}
            ManifestKind::Other(kind) if kind == "Workload" => {}
            ManifestKind::Other(kind) => problems.push(format!(
                "{}: kind {kind} has no place in a deploy template (App Mesh kinds and Workload)",
                manifest.source
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let mut manifests = manifests;
    // Parents and referenced resources first, as `aviary apply` orders them.
    manifests.sort_by_key(|m| match &m.kind {
        ManifestKind::AppMesh(kind) => (0, Some(*kind)),
        ManifestKind::Other(_) => (1, None),
    });
    Ok(manifests)
}

/// `${NAME}` replaced by its value; an unknown name or an unclosed `${` is an error.
fn substitute(text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "config_file: '${' without a closing '}'".to_string())?;
        let name = &after[..end];
        let value = vars
            .values
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value)
            .ok_or_else(|| {
                let known: Vec<&str> = vars.values.iter().map(|(k, _)| *k).collect();
                format!(
                    "config_file: unknown variable ${{{name}}} (known: {})",
                    known.join(", ")
                )
            })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DeploySpec {
        serde_json::from_value(serde_json::json!({
            "microservice_name": "yelb-appserver", "percentage_step": 10, "wait_time": 5,
            "container_image": ["python3", "/a/app.py"], "kubernetes_namespace": "yelb",
        }))
        .unwrap()
    }

    #[test]
    fn substitutes_the_five_variables_new_version_first() {
        let vars = Vars::new(&spec(), 2, "yelb-appserver-2", Some("yelb-appserver-1"));
        let out = substitute(
            "${MICROSERVICE_NAME}-${CANARY_VERSION} [${CANARY_ROUTES}] ${CONTAINER_IMAGE} ${KUBERNETES_NAMESPACE}",
            &vars,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"yelb-appserver-2 [{"virtualNode":"yelb-appserver-2","weight":0},{"virtualNode":"yelb-appserver-1","weight":100}] ["python3","/a/app.py"] yelb"#
        );
    }

    #[test]
    fn names_an_unknown_variable_and_an_unclosed_one() {
        let vars = Vars::new(&spec(), 1, "yelb-appserver-1", None);
        let unknown = substitute("a ${IMAGE} b", &vars).unwrap_err();
        assert!(unknown.contains("unknown variable ${IMAGE}"), "{unknown}");
        assert!(unknown.contains("CANARY_ROUTES"), "{unknown}");
        assert!(
            substitute("a ${CANARY", &vars)
                .unwrap_err()
                .contains("closing")
        );
    }

    #[test]
    fn refuses_another_mesh_and_foreign_kinds() {
        let template = "kind: Canary\nmetadata: {name: c, mesh: other}\nspec: {}\n";
        let text = base64::engine::general_purpose::STANDARD.encode(template);
        let vars = Vars::new(&spec(), 1, "n", None);
        let error = render(&text, &vars, "yelb").unwrap_err();
        assert!(error.contains("is in mesh 'other'"), "{error}");
        assert!(error.contains("kind Canary has no place"), "{error}");
        assert!(
            render("not base64!", &vars, "yelb")
                .unwrap_err()
                .contains("not base64")
        );
    }
}
