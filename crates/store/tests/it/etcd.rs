//! What only the etcd store promises: surviving member failures, leases, TLS.
