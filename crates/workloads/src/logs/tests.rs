//! Unit tests of finding and following log files.

use std::io::Write;

use super::*;

fn write(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

#[test]
fn find_logs_matches_replica_files_of_exactly_this_workload() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(log_dir(data.path(), "m")).unwrap();
    for name in [
        "web-0.log",
        "web-10.log",
        "web-2.log",
        "web-1-0.log",
        "web-x.log",
        "web-.log",
        "webby-0.log",
    ] {
        write(&log_dir(data.path(), "m").join(name), "x\n");
    }
    let found: Vec<u32> = find_logs(data.path(), "m", "web", None)
        .unwrap()
        .iter()
        .map(|l| l.replica)
        .collect();
    assert_eq!(found, [0, 2, 10]);
    let one = find_logs(data.path(), "m", "web", Some(2)).unwrap();
    assert_eq!(
        one,
        [ReplicaLog {
            replica: 2,
            path: log_path(data.path(), "m", "web", 2)
        }]
    );
    let nested: Vec<u32> = find_logs(data.path(), "m", "web-1", None)
        .unwrap()
        .iter()
        .map(|l| l.replica)
        .collect();
    assert_eq!(nested, [0]);
}

#[test]
fn no_logs_names_the_workload_and_the_directory() {
    let data = tempfile::tempdir().unwrap();
    for replica in [None, Some(3)] {
        let error = find_logs(data.path(), "m", "web", replica)
            .unwrap_err()
            .to_string();
        assert!(error.contains("'web'") && error.contains("'m'"), "{error}");
        assert!(
            error.contains(&log_dir(data.path(), "m").display().to_string()),
            "{error}"
        );
    }
    std::fs::create_dir_all(log_dir(data.path(), "m")).unwrap();
    write(&log_path(data.path(), "m", "web", 0), "x\n");
    assert!(matches!(
        find_logs(data.path(), "m", "web", Some(1)),
        Err(WorkloadsError::NoLogs { .. })
    ));
}

#[test]
fn the_follower_returns_whole_lines_as_they_come_and_new_files_too() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(log_dir(data.path(), "m")).unwrap();
    let web0 = log_path(data.path(), "m", "web", 0);
    write(&web0, "one\ntw");
    let mut follower = LogFollower::new(data.path(), "m", "web", None).unwrap();
    assert_eq!(follower.files(), 1);
    let lines = |batch: Vec<LogLine>| -> Vec<(u32, String)> {
        batch.into_iter().map(|l| (l.replica, l.line)).collect()
    };
    assert_eq!(
        lines(follower.poll(false).unwrap()),
        [(0, "one".to_string())]
    );
    assert!(follower.poll(false).unwrap().is_empty());
    write(&web0, "o\nthree\n");
    write(&log_path(data.path(), "m", "web", 1), "other\n");
    assert_eq!(
        lines(follower.poll(false).unwrap()),
        [
            (0, "two".to_string()),
            (0, "three".to_string()),
            (1, "other".to_string())
        ]
    );
    assert_eq!(follower.files(), 2);
    write(&web0, "no newline");
    assert!(follower.poll(false).unwrap().is_empty());
    assert_eq!(lines(follower.finish()), [(0, "no newline".to_string())]);
}

#[test]
fn reading_to_the_end_returns_a_last_line_without_newline_in_its_place() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(log_dir(data.path(), "m")).unwrap();
    write(&log_path(data.path(), "m", "web", 0), "a\nb");
    write(&log_path(data.path(), "m", "web", 1), "c\n");
    let mut follower = LogFollower::new(data.path(), "m", "web", None).unwrap();
    let lines: Vec<(u32, String)> = follower
        .poll(true)
        .unwrap()
        .into_iter()
        .map(|l| (l.replica, l.line))
        .collect();
    assert_eq!(
        lines,
        [
            (0, "a".to_string()),
            (0, "b".to_string()),
            (1, "c".to_string())
        ]
    );
    assert!(follower.poll(true).unwrap().is_empty());
    assert!(follower.finish().is_empty());
}

#[test]
fn a_truncated_file_is_read_again_from_its_start() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(log_dir(data.path(), "m")).unwrap();
    let web0 = log_path(data.path(), "m", "web", 0);
    write(&web0, "a long first line\n");
    let mut follower = LogFollower::new(data.path(), "m", "web", Some(0)).unwrap();
    assert_eq!(follower.poll(false).unwrap().len(), 1);
    std::fs::write(&web0, "new\n").unwrap();
    let again = follower.poll(false).unwrap();
    assert_eq!(
        again,
        [LogLine {
            replica: 0,
            line: "new".into()
        }]
    );
}

#[test]
fn each_mesh_has_its_own_log_directory() {
    let data = tempfile::tempdir().unwrap();
    assert_eq!(meshes_with_logs(data.path()).unwrap(), Vec::<String>::new());
    for mesh in ["shop", "blog"] {
        std::fs::create_dir_all(log_dir(data.path(), mesh)).unwrap();
        write(&log_path(data.path(), mesh, "web", 0), &format!("{mesh}\n"));
    }
    // A stray file in the root is not a mesh.
    write(&logs_root(data.path()).join("web-0.log"), "old layout\n");
    assert_eq!(meshes_with_logs(data.path()).unwrap(), ["blog", "shop"]);
    assert_eq!(
        log_path(data.path(), "shop", "web", 0),
        data.path().join("logs").join("shop").join("web-0.log")
    );
    for mesh in ["shop", "blog"] {
        let mut follower = LogFollower::new(data.path(), mesh, "web", None).unwrap();
        let lines: Vec<String> = follower
            .poll(true)
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
        assert_eq!(lines, [mesh], "mesh {mesh} reads only its own file");
    }
    assert!(matches!(
        find_logs(data.path(), "other", "web", None),
        Err(WorkloadsError::NoLogs { .. })
    ));
}

#[test]
fn tail_keeps_the_last_lines_of_each_replica_and_no_cut_line() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(log_dir(data.path(), "m")).unwrap();
    write(&log_path(data.path(), "m", "web", 0), "a\nb\nc\n");
    write(&log_path(data.path(), "m", "web", 1), "only\n");
    let tails = tail(data.path(), "m", "web", 2).unwrap();
    assert_eq!(
        tails,
        [
            model::wire::ReplicaLogTail {
                replica: 0,
                lines: vec!["b".to_string(), "c".to_string()]
            },
            model::wire::ReplicaLogTail {
                replica: 1,
                lines: vec!["only".to_string()]
            }
        ]
    );
    // A log larger than what tail reads: the partial first line is dropped, the end is whole.
    let big = log_path(data.path(), "m", "big", 0);
    let line = format!("{}\n", "x".repeat(999));
    write(&big, &line.repeat(200));
    write(&big, "last\n");
    let tails = tail(data.path(), "m", "big", 1000).unwrap();
    let lines = &tails[0].lines;
    assert_eq!(lines.last().map(String::as_str), Some("last"));
    assert!(
        lines[..lines.len() - 1].iter().all(|l| l.len() == 999),
        "no cut line"
    );
    assert!(lines.len() < 70, "read at most 64 KiB: {}", lines.len());
    assert!(tail(data.path(), "m", "nothing", 5).is_err());
}
