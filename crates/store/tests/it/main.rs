//! The store's one integration test binary: a conformance suite run against every backend.

/// Instantiates each listed `fn(&dyn Backend)` as a `#[test]` once per backend, as
/// `<module>::memory::<test>` and `<module>::redb::<test>`.
macro_rules! conformance {
    ($($test:ident),+ $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $test() {
                    super::$test(&crate::support::Memory);
                }
            )+
        }
        mod redb {
            $(
                #[test]
                fn $test() {
                    super::$test(&crate::support::Redb::new());
                }
            )+
        }
    };
}

mod concurrency;
mod durable;
mod history;
mod kv;
mod support;
mod txn;
mod watch;
