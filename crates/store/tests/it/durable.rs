//! What only the redb backend promises: data, metadata and revision survive a reopen and a kill -9.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use store::{DATA_FILE, KeyValue, RedbStore, Store, StoreError};

use crate::support::{block_on, delete, keys_and_values, next_batch, put};

const CRASH_DIR: &str = "STORE_TEST_CRASH_DIR";

#[test]
fn a_reopened_store_keeps_keys_metadata_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let before = {
        let store = RedbStore::open(&path).unwrap();
        put(&store, "a", b"1");
        put(&store, "a", b"2");
        put(&store, "b", b"1");
        delete(&store, "b");
        store.range("").unwrap()
    };
    assert_eq!(before.1, 4);

    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.revision(), 4);
    assert_eq!(store.range("").unwrap(), before);
    assert_eq!(
        put(&store, "a", b"3"),
        5,
        "the revision continues, never repeats"
    );
    assert_eq!(
        store.get("a").unwrap(),
        Some(KeyValue {
            key: "a".into(),
            value: b"3".to_vec(),
            create_revision: 1,
            mod_revision: 5,
            version: 3
        })
    );
}

#[test]
fn after_a_reopen_the_history_starts_at_the_persisted_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    for key in ["a", "b", "c"] {
        put(&RedbStore::open(&path).unwrap(), key, b"1");
    }
    let store = RedbStore::open(&path).unwrap();
    match store.watch("", 2) {
        Err(StoreError::Compacted { requested, oldest }) => assert_eq!((requested, oldest), (2, 3)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut watcher = store.watch("", 3).unwrap();
    put(&store, "d", b"1");
    let batch = block_on(next_batch(&mut watcher));
    assert_eq!(keys_and_values(&batch), (4, vec![("d", &b"1"[..])]));
}

#[test]
fn open_dir_creates_the_directory_and_its_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested").join("data");
    put(&store::open_dir(&data_dir).unwrap(), "k", b"v");
    assert!(data_dir.join(DATA_FILE).is_file());
    let store = store::open_dir(&data_dir).unwrap();
    assert_eq!(store.get("k").unwrap().unwrap().value, b"v");
    assert_eq!(store.path(), data_dir.join(DATA_FILE));
}

#[test]
fn a_file_already_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let _first = RedbStore::open(&path).unwrap();
    assert!(matches!(
        RedbStore::open(&path),
        Err(StoreError::Backend(_))
    ));
}

/// Runs [`crash_child`] in a child process, SIGKILLs it mid-stream, and checks that every write
/// it acknowledged is in the file.
#[test]
fn acknowledged_writes_survive_kill_9() {
    const ACKS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "durable::crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CRASH_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(ack) = line.strip_prefix("acked ") {
            let (revision, key) = ack.split_once(' ').unwrap();
            acked.push((revision.parse::<u64>().unwrap(), key.to_owned()));
            if acked.len() == ACKS {
                break;
            }
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    assert_eq!(acked.len(), ACKS, "the child acknowledged too few writes");

    let store = store::open_dir(dir.path()).unwrap();
    assert!(store.revision() >= ACKS as u64);
    for (revision, key) in acked {
        let kv = store
            .get(&key)
            .unwrap()
            .unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!((kv.mod_revision, kv.value), (revision, key.into_bytes()));
    }
}

/// Writes until killed, printing each write once the store acknowledged it.
#[test]
#[ignore = "child process of acknowledged_writes_survive_kill_9"]
fn crash_child() {
    let dir = std::env::var_os(CRASH_DIR).expect("run by acknowledged_writes_survive_kill_9");
    let store = store::open_dir(Path::new(&dir)).unwrap();
    for i in 0..10_000 {
        let key = format!("k{i}");
        let revision = put(&store, &key, key.as_bytes());
        println!("acked {revision} {key}");
    }
    panic!("not killed after 10000 writes");
}
