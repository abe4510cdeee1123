//! Crate-wide tests: every file explains itself, and the README agrees with the code.

use std::path::{Path, PathBuf};

use crate::{OverrideTarget, RELAXATIONS};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_file_starts_with_module_docs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.iter().any(|f| f.ends_with("lib.rs")));
    assert!(files.len() >= 13, "found only {files:?}");
    let missing: Vec<&PathBuf> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("read file");
            !text.starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! line first: {missing:?}"
    );
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let doc_lines = lib.lines().take_while(|l| l.starts_with("//!")).count();
    assert!(
        doc_lines >= 5,
        "lib.rs needs a real crate doc, has {doc_lines} lines"
    );
}

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
