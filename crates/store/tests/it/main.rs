//! The store's one integration test binary: a conformance suite run against every backend.

/// Instantiates each listed `fn(&dyn Backend)` as a `#[test]` once per backend, as
/// `<module>::memory::<test>`, `<module>::redb::<test>` and, with the `etcd` feature,
/// `<module>::etcd::<test>`. Tests after `local:` are about what only the local backends have
/// (our in-memory watch history), and skip etcd.
macro_rules! conformance {
    ($($test:ident),+ $(,)?) => {
        conformance!($($test),+; local:);
    };
    ($($test:ident),*; local: $($local:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $test() {
                    super::$test(&crate::support::Memory);
                }
            )*
            $(
                #[test]
                fn $local() {
                    super::$local(&crate::support::Memory);
                }
            )*
        }
        mod redb {
            $(
                #[test]
                fn $test() {
                    super::$test(&crate::support::Redb::new());
                }
            )*
            $(
                #[test]
                fn $local() {
                    super::$local(&crate::support::Redb::new());
                }
            )*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            $(
                #[test]
                fn $test() {
                    super::$test(&crate::support::Etcd::new());
                }
            )*
        }
    };
}

mod concurrency;
mod durable;
#[cfg(feature = "etcd")]
mod etcd;
mod history;
mod kv;
mod support;
mod txn;
mod watch;

/// Without the `etcd` feature, asking for etcd says how to get it.
#[cfg(not(feature = "etcd"))]
#[test]
fn open_etcd_without_the_feature_says_to_rebuild_with_it() {
    let config = store::EtcdConfig::new(vec!["http://127.0.0.1:2379".to_owned()]);
    match store::open_etcd(&config) {
        Err(store::StoreError::Unsupported(message)) => {
            assert!(message.contains("--features etcd"), "{message}")
        }
        Err(other) => panic!("expected Unsupported, got {other:?}"),
        Ok(store) => panic!("opened a {} store", store.backend()),
    }
}
