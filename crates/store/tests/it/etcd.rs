//! What only the etcd store promises: writes through a member failure, a clear `Unavailable`
//! without quorum and a watcher that resumes, leases, compaction, and TLS.

use std::time::{Duration, Instant};

use store::{
    Compare, EtcdConfig, EtcdStore, EtcdTls, EventKind, Op, Store, StoreError, Txn, TxnOutcome,
};
use testkit::etcd::{ClientTls, EtcdCluster};

use crate::support::{
    Backend, Etcd, block_on, committed, keys_and_values, next_batch, put, shared_cluster,
};

fn connect(cluster: &EtcdCluster, request_timeout: Duration) -> EtcdStore {
    let config = EtcdConfig {
        request_timeout,
        ..EtcdConfig::new(cluster.client_urls())
    };
    EtcdStore::connect(&config).expect("connect to etcd")
}

/// Puts until one commits or `within` has passed; for the moments after a leader dies, when
/// etcd refuses writes until it has elected another (and those in flight get no answer: the
/// same put again is harmless).
fn put_within(store: &dyn Store, key: &str, value: &[u8], within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        match store.txn(Txn::default().then(Op::Put(key.into(), value.into()))) {
            Ok(TxnOutcome::Committed { revision }) => return revision,
            Err(StoreError::Unavailable(_) | StoreError::Indeterminate(_))
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("expected a commit within {within:?}, got {other:?}"),
        }
    }
}

#[test]
fn the_store_says_what_it_is_and_answers_a_check() {
    let backend = Etcd::new();
    let store = backend.open();
    assert_eq!(store.backend(), "etcd");
    store.check().expect("the shared cluster answers");
    assert!(store.leases().is_some());
}

#[test]
fn a_three_member_cluster_keeps_accepting_writes_with_a_follower_killed() {
    let mut cluster = EtcdCluster::start(3);
    let store = connect(&cluster, Duration::from_secs(3));
    let first = put(&store, "k", b"0");
    let leader = cluster.wait_for_leader();
    let victim = (0..3).find(|&i| i != leader).unwrap();
    let pid = cluster.pid(victim).unwrap();
    cluster.kill(victim);
    assert!(
        !cluster.is_running(victim),
        "member {victim} (pid {pid}) survived SIGKILL"
    );

    let mut last = first;
    for i in 1..=20u64 {
        let revision = put(&store, "k", i.to_string().as_bytes());
        assert!(revision > last, "{revision} after {last}");
        last = revision;
    }
    let k = store.get("k").unwrap().unwrap();
    assert_eq!((k.value.as_slice(), k.version), (&b"20"[..], 21));
}

#[test]
fn writes_resume_after_the_leader_is_killed() {
    let mut cluster = EtcdCluster::start(3);
    let store = connect(&cluster, Duration::from_secs(3));
    put(&store, "k", b"0");
    let leader = cluster.wait_for_leader();
    cluster.kill(leader);
    let started = Instant::now();
    put_within(&store, "k", b"1", Duration::from_secs(10));
    let new_leader = cluster.wait_for_leader();
    assert_ne!(new_leader, leader);
    for i in 2..=10u64 {
        put(&store, "k", i.to_string().as_bytes());
    }
    assert_eq!(store.get("k").unwrap().unwrap().version, 11);
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Two of three members down: the survivor is a follower, so no write can commit anywhere.
/// The leader is SIGKILLed, not stopped: a stopping etcd leader hands its leadership over, maybe
/// to the survivor, which would then take the write into its log and commit it on recovery.
/// A write sent while the survivor still follows the dead leader gets no answer within about
/// the request timeout (`Indeterminate`: it was proposed, if only to a dead leader); once the
/// survivor knows it has no leader, a write is `Unavailable` at once. Neither leaves anything;
/// once the members are back, writes commit and a watcher started before the outage has seen
/// each committed revision exactly once.
#[test]
fn without_a_quorum_a_write_is_unavailable_and_a_watcher_resumes_after_it() {
    let mut cluster = EtcdCluster::start(3);
    let timeout = Duration::from_secs(2);
    let store = connect(&cluster, timeout);
    let r = store.revision();
    let mut watcher = store.watch("", r).unwrap();
    let mut acked = vec![put(&store, "before/1", b"1"), put(&store, "before/2", b"2")];

    let leader = cluster.wait_for_leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    cluster.stop(follower);
    cluster.kill(leader);
    let started = Instant::now();
    let refused = loop {
        let attempt = store.txn(Txn::default().then(Op::Put("during".into(), b"x".to_vec())));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "took {took:?}");
        match attempt {
            Err(StoreError::Unavailable(message)) => break message,
            Err(StoreError::Indeterminate(message)) => {
                assert!(message.contains(&cluster.endpoints()), "{message}")
            }
            other => panic!("expected Unavailable or Indeterminate, got {other:?}"),
        }
    };
    assert!(refused.contains(&cluster.endpoints()), "{refused}");
    assert!(matches!(store.check(), Err(StoreError::Unavailable(_))));
    // The revision is answered from what the store saw, not by waiting on the lost quorum.
    let asked = Instant::now();
    assert_eq!(store.revision(), acked[1]);
    assert!(
        asked.elapsed() < Duration::from_millis(100),
        "took {:?}",
        asked.elapsed()
    );

    cluster.restart(leader);
    cluster.restart(follower);
    acked.push(put_within(&store, "after/1", b"3", Duration::from_secs(10)));
    acked.push(put(&store, "after/2", b"4"));
    assert_eq!(
        store.get("during").unwrap(),
        None,
        "the refused write left nothing"
    );
    assert_eq!(store.get("after/2").unwrap().unwrap().value, b"4");

    let last = *acked.last().unwrap();
    let seen = block_on(async {
        let mut seen = Vec::new();
        while seen.last().is_none_or(|&revision| revision < last) {
            seen.push(next_batch(&mut watcher).await.0);
        }
        seen
    });
    assert_eq!(seen, acked, "every committed revision once, in order");
}

/// Another replica's write under the prefix reaches `revision()`, which makes no round trip,
/// through the store's own watch of the prefix.
#[test]
fn another_replicas_write_reaches_revision() {
    let _turn = Etcd::new();
    let config = EtcdConfig {
        prefix: format!("replicas/{}/", std::process::id()),
        request_timeout: Duration::from_secs(5),
        ..EtcdConfig::new(shared_cluster().client_urls())
    };
    let connect = || EtcdStore::connect(&config).expect("connect to the shared etcd");
    let (writer, reader) = (connect(), connect());
    let before = reader.revision();
    let written = put(&writer, "k", b"1");
    assert!(written > before);
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.revision() < written {
        assert!(
            Instant::now() < deadline,
            "revision stayed at {}",
            reader.revision()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        reader.revision(),
        written,
        "nothing else wrote on this turn"
    );
}

/// A leased key stays while its lease is kept alive, and vanishes (a delete event) once its
/// lease expires; a txn that counted on it then fails.
#[test]
fn a_leased_key_lives_while_kept_alive_and_vanishes_when_its_lease_expires() {
    let backend = Etcd::new();
    let store = backend.open();
    let leases = store.leases().expect("etcd has leases");
    let r = store.revision();
    let mut watcher = store.watch("", r).unwrap();
    let lapsing = leases.grant(Duration::from_secs(2)).unwrap();
    let kept = leases.grant(Duration::from_secs(2)).unwrap();
    let txn = Txn::default()
        .then(Op::PutLeased("lapsing".into(), b"1".to_vec(), lapsing))
        .then(Op::PutLeased("kept".into(), b"1".to_vec(), kept));
    let written = committed(store.txn(txn));

    // Keeps one lease alive, twice a second, while the other lapses.
    let keep_alive = || async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                leases.keep_alive(kept).unwrap(),
                "the kept lease is renewed"
            );
        }
    };
    let started = Instant::now();
    let (deleted_at, events) = block_on(async {
        let batch = next_batch(&mut watcher).await;
        assert_eq!(batch.0, written);
        tokio::select! {
            batch = next_batch(&mut watcher) => batch,
            () = keep_alive() => unreachable!("keep_alive never returns"),
        }
    });
    let lapsed_after = started.elapsed();
    assert!(
        lapsed_after >= Duration::from_millis(1500) && lapsed_after < Duration::from_secs(10),
        "a 2 s lease lapsed after {lapsed_after:?}"
    );
    // Longer than its TTL again, still kept alive.
    block_on(async {
        let _ = tokio::time::timeout(Duration::from_millis(2500), keep_alive()).await;
    });
    let events: Vec<_> = events.iter().map(|e| (e.kind, e.kv.key.as_str())).collect();
    assert_eq!(events, [(EventKind::Delete, "lapsing")]);
    assert!(deleted_at > written);
    assert_eq!(store.get("lapsing").unwrap(), None);
    assert_eq!(store.get("kept").unwrap().unwrap().value, b"1");
    assert!(
        !leases.keep_alive(lapsing).unwrap(),
        "an expired lease is not renewed"
    );

    let counting_on_it = Txn::default()
        .when(Compare::ModRevision("lapsing".into(), written))
        .then(Op::Put("lapsing".into(), b"2".to_vec()));
    assert_eq!(
        store.txn(counting_on_it).unwrap(),
        TxnOutcome::Failed {
            key: "lapsing".into(),
            actual_mod_revision: 0
        }
    );

    leases.revoke(kept).unwrap();
    assert_eq!(store.get("kept").unwrap(), None, "revoking deletes the key");
    assert!(!leases.keep_alive(kept).unwrap());
    leases.revoke(kept).expect("revoking twice is fine");
}

/// Once etcd has compacted, a watch from before the compaction says so, as the local stores'
/// history does, with etcd's compaction revision.
#[test]
fn a_watch_from_before_etcds_compaction_is_compacted() {
    let backend = Etcd::new();
    let store = backend.open();
    let r = store.revision();
    for i in 1..=5u64 {
        put(&*store, "k", i.to_string().as_bytes());
    }
    let urls = crate::support::shared_cluster().client_urls();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut client = etcd_client::Client::connect(urls, None).await.unwrap();
            client.compact((r + 4) as i64, None).await.unwrap();
        });

    let mut old = store.watch("", r + 1).unwrap();
    let mut current = store.watch("", r + 4).unwrap();
    block_on(async {
        for _ in 0..2 {
            match old.next().await {
                Some(Err(StoreError::Compacted { requested, oldest })) => {
                    assert_eq!((requested, oldest), (r + 1, r + 4))
                }
                other => panic!("expected Compacted, got {other:?}"),
            }
        }
        let batch = next_batch(&mut current).await;
        assert_eq!(keys_and_values(&batch), (r + 5, vec![("k", &b"5"[..])]));
    });
}

fn tls_config(cluster: &EtcdCluster, client_cert: bool) -> EtcdConfig {
    let files = cluster.tls().expect("a TLS cluster");
    EtcdConfig {
        tls: Some(EtcdTls {
            ca: files.ca.clone(),
            cert: client_cert.then(|| files.client_cert.clone()),
            key: client_cert.then(|| files.client_key.clone()),
        }),
        ..EtcdConfig::new(cluster.client_urls())
    }
}

#[test]
fn a_tls_cluster_is_reached_with_its_ca_and_refused_without() {
    let cluster = EtcdCluster::start_tls(1, ClientTls::Server);
    assert!(cluster.endpoints().starts_with("https://"));
    let store = EtcdStore::connect(&tls_config(&cluster, false)).expect("connect over TLS");
    let revision = put(&store, "k", b"secret");
    assert_eq!(store.get("k").unwrap().unwrap().mod_revision, revision);

    let without_ca = EtcdConfig::new(cluster.client_urls());
    match EtcdStore::connect(&without_ca) {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains(&cluster.endpoints()), "{message}");
            assert!(message.to_lowercase().contains("certificate"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn a_cluster_that_requires_client_certificates_lets_in_only_a_client_with_one() {
    let cluster = EtcdCluster::start_tls(1, ClientTls::Mutual);
    let store =
        EtcdStore::connect(&tls_config(&cluster, true)).expect("connect with a client cert");
    put(&store, "k", b"1");
    assert_eq!(store.get("k").unwrap().unwrap().value, b"1");

    match EtcdStore::connect(&tls_config(&cluster, false)) {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains(&cluster.endpoints()), "{message}");
            // TLS 1.3 tells the client after its handshake, as an alert ("BadCertificate") or
            // just a closed connection, so the store adds what may be missing.
            assert!(message.contains("client certificates"), "{message}");
        }
        other => panic!("expected Unavailable without a client certificate, got {other:?}"),
    }
}

#[test]
fn a_cluster_that_is_not_there_is_unavailable_within_the_timeout() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = EtcdConfig {
        request_timeout: Duration::from_secs(1),
        ..EtcdConfig::new(vec![format!("http://127.0.0.1:{port}")])
    };
    let started = Instant::now();
    match store::open_etcd(&config) {
        Err(StoreError::Unavailable(message)) => assert!(message.contains(&port.to_string())),
        other => panic!("expected Unavailable, got {:?}", other.map(|s| s.backend())),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}
