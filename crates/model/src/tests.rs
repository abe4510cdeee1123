//! Crate-wide tests: the README and the crate doc agree with the code.

use std::path::Path;

use crate::{OverrideTarget, RELAXATIONS};

#[test]
fn readme_and_crate_doc_list_every_relaxation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    assert!(
        readme.contains("Apache"),
        "README notes the service model's license"
    );
    for relaxation in RELAXATIONS {
        let name = match relaxation.target {
            OverrideTarget::Member { structure, member } => format!("`{structure}.{member}`"),
            OverrideTarget::Shape(shape) => format!("`{shape}`"),
        };
        let range = format!(
            "{}..={}",
            relaxation.min.unwrap_or_default(),
            relaxation.max.unwrap_or_default()
        );
        for (file, text) in [("README.md", &readme), ("lib.rs", &lib)] {
            let row = text
                .lines()
                .map(|l| l.trim_start_matches("//!").trim_start())
                .find(|l| l.starts_with(&format!("| {name}")))
                .unwrap_or_else(|| panic!("{file} has no row for {name}"));
            let aviary_column = row.split('|').nth(3).map(str::trim);
            assert_eq!(aviary_column, Some(range.as_str()), "{file}: {row}");
        }
    }
}
