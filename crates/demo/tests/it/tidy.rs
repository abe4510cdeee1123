//! Checks on the crate's own sources: it depends on no aviary crate (every file explaining
//! itself is checked once for the workspace, in `testkit`).

use std::path::Path;

#[test]
fn depends_on_no_aviary_crate() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let crates = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "demo")
        .collect::<Vec<_>>();
    assert!(crates.len() >= 3, "found only {crates:?}");
    for line in manifest.lines() {
        let key = line.split(['=', '.', ' ']).next().unwrap_or_default();
        assert!(
            !crates.iter().any(|c| c == key),
            "demo depends on aviary crate `{key}`: {line}"
        );
    }
}
