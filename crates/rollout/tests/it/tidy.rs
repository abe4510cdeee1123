//! Checks on the crate's own sources: it stays sans-IO with few dependencies, and says so.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn sources(under: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(under),
        &mut files,
    );
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

#[test]
fn the_crate_doc_says_what_it_must_never_know() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let paragraph: Vec<&str> = lib.lines().take_while(|l| l.starts_with("//!")).collect();
    for word in ["owns", "never", "clock", "socket", "tokio", "store"] {
        assert!(
            paragraph.join(" ").contains(word),
            "lib.rs's paragraph does not say {word:?}"
        );
    }
}

#[test]
fn the_library_reads_no_clock_socket_file_or_environment() {
    let forbidden = [
        "SystemTime",
        "Instant",
        "std::net",
        "std::fs",
        "std::env",
        "std::process",
        "std::thread",
        "tokio",
        "async ",
        ".await",
        "rand",
    ];
    for (file, text) in sources("src") {
        if file.ends_with("tests.rs") {
            continue;
        }
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for word in forbidden {
            assert!(!code.contains(word), "{} uses {word}", file.display());
        }
    }
}

#[test]
fn depends_on_serde_and_thiserror_only() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split(['.', '=', ' ']).next())
        .filter(|name| !name.is_empty())
        .collect();
    assert_eq!(deps, vec!["serde", "thiserror"]);
}
