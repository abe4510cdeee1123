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
