//! The etcd backend: the store contract mapped onto an etcd v3 cluster, for high availability.

mod watch;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions, TlsOptions,
    TxnOp, TxnOpResponse,
};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use watch::EtcdWatcher;

use crate::{
    Compare, EtcdConfig, HistoryUsage, KeyValue, LeaseId, Leases, Op, Store, StoreError, Txn,
    TxnOutcome, Watcher,
};

/// The largest response we accept: a range over every aviary key can pass tonic's 4 MiB
/// default long before etcd's own limits.
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

/// A [`Store`] in an etcd cluster, under one key prefix.
///
/// The store API is synchronous and is called from inside async code too, so `EtcdStore` never
/// blocks on a caller's runtime: it owns a small tokio runtime, runs each request there, and
/// waits for the answer on a `std::sync::mpsc` channel, which works from any thread. Every
/// request is bounded by [`EtcdConfig::request_timeout`].
///
/// Revisions are etcd's; reads are linearizable, except [`Store::revision`], which answers from
/// what the store has seen (see there). The watch history is etcd's own (bounded by
/// its compaction), so [`Store::history_usage`] reports nothing held here.
pub struct EtcdStore {
    client: Client,
    /// `Some` until drop hands it to the thread that lets watchers drain.
    runtime: Option<Runtime>,
    prefix: String,
    timeout: Duration,
    /// Named in every error, so an operator sees which cluster did not answer.
    endpoints: String,
    /// The highest revision any response showed, this store's own and those of the watch that
    /// [`watch::follow_revision`] keeps on the prefix: what [`Store::revision`] answers without a
    /// round trip, and how far watchers drain when the store is dropped.
    seen: Arc<AtomicU64>,
    /// Cancelled on drop; watchers then drain up to `seen` and end.
    shutdown: CancellationToken,
    watchers: TaskTracker,
}

/// What a watch task needs of its store, without keeping the store alive.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) timeout: Duration,
    pub(crate) endpoints: Arc<str>,
    pub(crate) seen: Arc<AtomicU64>,
    pub(crate) shutdown: CancellationToken,
}

impl EtcdStore {
    /// Connects to `config.endpoints` and checks that the cluster answers (see
    /// [`Store::check`]), so a wrong address or certificate fails here, clearly.
    pub fn connect(config: &EtcdConfig) -> Result<Self, StoreError> {
        let endpoints = config.endpoints.join(",");
        if config.endpoints.is_empty() {
            return Err(StoreError::Unavailable(
                "no etcd endpoints configured".to_owned(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store-etcd")
            .enable_all()
            .build()?;
        let options = connect_options(config)?;
        let urls = config.endpoints.clone();
        let timeout = config.request_timeout;
        let client = run(&runtime, Client::connect(urls, Some(options)))?
            .map_err(|e| error(&endpoints, e))?;
        let store = EtcdStore {
            client,
            runtime: Some(runtime),
            prefix: config.prefix.clone(),
            timeout,
            endpoints,
            seen: Arc::new(AtomicU64::new(0)),
            shutdown: CancellationToken::new(),
            watchers: TaskTracker::new(),
        };
        match store.check() {
            Ok(()) => {
                // From the revision `check` just read, so no write in between is missed.
                let follow = watch::follow_revision(store.shared(), store.prefix.clone());
                store.watchers.spawn_on(follow, store.runtime().handle());
                Ok(store)
            }
            // With TLS 1.3 a refused client certificate reaches the client after its handshake,
            // often only as a closed connection; say what may be missing.
            Err(StoreError::Unavailable(message))
                if config.tls.as_ref().is_some_and(|tls| tls.cert.is_none()) =>
            {
                Err(StoreError::Unavailable(format!(
                    "{message} (if the members require client certificates, set the TLS cert \
                     and key)"
                )))
            }
            Err(other) => Err(other),
        }
    }

    fn runtime(&self) -> &Runtime {
        // Taken only in drop.
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    /// Runs `request` on the store's runtime within the request timeout and waits for it;
    /// see [`bounded`].
    fn call<T, F>(&self, request: impl Fn(Client) -> F + Send + 'static) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let (client, timeout) = (self.client.clone(), self.timeout);
        let answer = run(
            self.runtime(),
            bounded(timeout, move || request(client.clone())),
        )?;
        answer.map_err(|failed| failed.into_error(&self.endpoints, timeout))
    }

    /// Records a response's revision, returning it.
    fn saw(&self, header: Option<&etcd_client::ResponseHeader>) -> u64 {
        let revision = header.map_or(0, |h| h.revision().max(0) as u64);
        self.seen.fetch_max(revision, Ordering::Relaxed);
        revision
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn shared(&self) -> Shared {
        Shared {
            client: self.client.clone(),
            timeout: self.timeout,
            endpoints: self.endpoints.as_str().into(),
            seen: Arc::clone(&self.seen),
            shutdown: self.shutdown.clone(),
        }
    }

    /// One linearizable read of the key `key` under the prefix, for the cluster's revision.
    fn read_revision(&self) -> Result<u64, StoreError> {
        let key = self.prefix.clone();
        let response = self.call(move |mut client| {
            let key = key.clone();
            async move {
                let options = GetOptions::new().with_keys_only().with_limit(1);
                client.get(key, Some(options)).await
            }
        })?;
        Ok(self.saw(response.header()))
    }
}

/// How long to wait before sending again a request that could not connect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// Why [`bounded`] got no answer.
pub(crate) struct Unanswered {
    /// The last error, if there was one before time ran out.
    pub(crate) error: Option<etcd_client::Error>,
    /// Whether the last attempt may have reached a member: for a write, its outcome is unknown.
    pub(crate) maybe_sent: bool,
}

/// `request()` within `timeout`, sent again while it fails without having reached any member
/// (a refused connection to a dead member: the balanced channel may pick it until it has
/// noticed), which is safe even for writes.
pub(crate) async fn bounded<T, F>(
    timeout: Duration,
    request: impl Fn() -> F,
) -> Result<T, Unanswered>
where
    F: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, request()).await {
            Ok(Err(e)) if never_sent(&e) => {
                if tokio::time::timeout_at(deadline, tokio::time::sleep(RECONNECT_PAUSE))
                    .await
                    .is_err()
                {
                    return Err(Unanswered {
                        error: Some(e),
                        maybe_sent: false,
                    });
                }
            }
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => {
                let maybe_sent = !refused_unproposed(&e);
                return Err(Unanswered {
                    error: Some(e),
                    maybe_sent,
                });
            }
            // The request was on its way when time ran out.
            Err(_elapsed) => {
                return Err(Unanswered {
                    error: None,
                    maybe_sent: true,
                });
            }
        }
    }
}

/// Whether a member refused the request before proposing it: without a leader, every request
/// carries etcd's require-leader flag, so a member that knows it has none says so at once.
fn refused_unproposed(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable && status.message().contains("no leader")
        }
        _ => false,
    }
}

/// Whether the request failed connecting, so no member can have seen it.
fn never_sent(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable
                && status.message().contains("tcp connect error")
        }
        _ => false,
    }
}

/// Runs `future` on `runtime` and waits for it on this thread, which may be any thread, even one
/// inside another runtime's task: only a std channel blocks here, never a runtime.
fn run<T: Send + 'static>(
    runtime: &Runtime,
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().map_err(|_| stopped())
}

fn connect_options(config: &EtcdConfig) -> Result<ConnectOptions, StoreError> {
    let timeout = config.request_timeout;
    let mut options = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_keep_alive(timeout, timeout)
        .with_keep_alive_while_idle(true)
        // A member cut off from the quorum refuses instead of serving (and watching) stale data.
        .with_require_leader(true);
    if let Some(tls) = &config.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                StoreError::Io(std::io::Error::new(
                    e.kind(),
                    format!("etcd TLS file {}: {e}", path.display()),
                ))
            })
        };
        let mut settings = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
        match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                settings = settings.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::Unsupported(
                    "an etcd client certificate needs both `cert` and `key`".to_owned(),
                ));
            }
        }
        options = options.with_tls(settings);
    }
    Ok(options)
}

/// Maps etcd-client's errors: whatever says the cluster could not be reached or did not decide
/// in time is `Unavailable`, the rest is the backend's own message.
pub(crate) fn error(endpoints: &str, error: etcd_client::Error) -> StoreError {
    use tonic::Code;
    let unavailable = match &error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
        ),
        _ => false,
    };
    let message = format!("etcd at {endpoints}: {}", describe(&error));
    if unavailable {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

/// An error with its causes, which is where tonic keeps the interesting part (refused
/// connection, unknown certificate issuer, a certificate the server wanted).
fn describe(error: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let mut text = match error {
        etcd_client::Error::GRpcStatus(status) => {
            format!("{:?}: {}", status.code(), status.message())
        }
        other => other.to_string(),
    };
    // etcd-client's own error type reports no source; its payloads do.
    let mut source: Option<&(dyn std::error::Error + 'static)> = match error {
        etcd_client::Error::GRpcStatus(status) => status.source(),
        etcd_client::Error::TransportError(e) => e.source(),
        etcd_client::Error::IoError(e) => e.source(),
        _ => None,
    };
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

impl Unanswered {
    /// The store's error for a request that got no answer: `Unavailable`, which says nothing
    /// was done. A txn whose attempt may have reached etcd turns that into `Indeterminate`
    /// itself ([`Store::txn`]), since only a write has an outcome to be unsure of.
    pub(crate) fn into_error(self, endpoints: &str, timeout: Duration) -> StoreError {
        match self.error {
            Some(e) => error(endpoints, e),
            None => timed_out(endpoints, timeout),
        }
    }
}

pub(crate) fn timed_out(endpoints: &str, timeout: Duration) -> StoreError {
    StoreError::Unavailable(format!(
        "etcd at {endpoints} did not answer within {timeout:?}"
    ))
}

fn stopped() -> StoreError {
    StoreError::Backend("the etcd store's runtime has stopped".to_owned())
}

/// An etcd key under `prefix` as the store's key.
pub(crate) fn strip(prefix: &str, key: &[u8]) -> Result<String, StoreError> {
    let shown = || String::from_utf8_lossy(key).into_owned();
    let Some(rest) = key.strip_prefix(prefix.as_bytes()) else {
        return Err(StoreError::Corrupt {
            key: shown(),
            reason: format!("outside the store's prefix {prefix:?}"),
        });
    };
    String::from_utf8(rest.to_vec()).map_err(|_| StoreError::Corrupt {
        key: shown(),
        reason: "not UTF-8".to_owned(),
    })
}

pub(crate) fn key_value(prefix: &str, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    Ok(KeyValue {
        key: strip(prefix, kv.key())?,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision().max(0) as u64,
        mod_revision: kv.mod_revision().max(0) as u64,
        version: kv.version().max(0) as u64,
    })
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let full = self.full_key(key);
        let response = self.call(move |mut client| {
            let full = full.clone();
            async move { client.get(full, None).await }
        })?;
        self.saw(response.header());
        response
            .kvs()
            .first()
            .map(|kv| key_value(&self.prefix, kv))
            .transpose()
    }

    fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        let full = self.full_key(prefix);
        let response = self.call(move |client| {
            let full = full.clone();
            async move {
                let mut kv = client.kv_client().max_decoding_message_size(MAX_RESPONSE);
                // etcd answers sorted by key, bytewise, as the local stores do.
                kv.get(full, Some(GetOptions::new().with_prefix())).await
            }
        })?;
        let revision = self.saw(response.header());
        let kvs = response
            .kvs()
            .iter()
            .map(|kv| key_value(&self.prefix, kv))
            .collect::<Result<_, _>>()?;
        Ok((kvs, revision))
    }

    fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        crate::txn::validate(&txn.ops)?;
        let compares: Vec<_> = txn
            .compares
            .iter()
            .map(|Compare::ModRevision(key, revision)| {
                // A missing key's mod_revision compares as 0 in etcd too.
                etcd_client::Compare::mod_revision(
                    self.full_key(key),
                    CompareOp::Equal,
                    *revision as i64,
                )
            })
            .collect();
        let ops: Vec<_> = txn
            .ops
            .into_iter()
            .map(|op| match op {
                Op::Put(key, value) => TxnOp::put(self.full_key(&key), value, None),
                Op::PutLeased(key, value, lease) => TxnOp::put(
                    self.full_key(&key),
                    value,
                    Some(PutOptions::new().with_lease(lease)),
                ),
                Op::Delete(key) => TxnOp::delete(self.full_key(&key), None),
            })
            .collect();
        // On failure, read every compared key in the same txn, to say which compare failed.
        let mut compared: Vec<String> = txn.compares.iter().map(compare_key).cloned().collect();
        compared.sort_unstable();
        compared.dedup();
        let reads: Vec<_> = compared
            .iter()
            .map(|key| TxnOp::get(self.full_key(key), None))
            .collect();
        let request = etcd_client::Txn::new()
            .when(compares)
            .and_then(ops)
            .or_else(reads);
        let (client, timeout) = (self.client.clone(), self.timeout);
        let answer = run(
            self.runtime(),
            bounded(timeout, move || {
                let (mut client, request) = (client.clone(), request.clone());
                async move { client.txn(request).await }
            }),
        )?;
        let response = answer.map_err(|failed| {
            let maybe_sent = failed.maybe_sent;
            match failed.into_error(&self.endpoints, timeout) {
                StoreError::Unavailable(why) if maybe_sent => StoreError::Indeterminate(why),
                other => other,
            }
        })?;
        let revision = self.saw(response.header());
        if response.succeeded() {
            return Ok(TxnOutcome::Committed { revision });
        }
        let mut actual = HashMap::new();
        for (key, read) in compared.iter().zip(response.op_responses()) {
            if let TxnOpResponse::Get(read) = read {
                let mod_revision = read.kvs().first().map_or(0, |kv| kv.mod_revision());
                actual.insert(key.as_str(), mod_revision.max(0) as u64);
            }
        }
        for Compare::ModRevision(key, expected) in &txn.compares {
            let found = actual.get(key.as_str()).copied().unwrap_or(0);
            if found != *expected {
                return Ok(TxnOutcome::Failed {
                    key: key.clone(),
                    actual_mod_revision: found,
                });
            }
        }
        Err(StoreError::Backend(format!(
            "etcd at {} failed a txn whose compares all held at revision {revision}",
            self.endpoints
        )))
    }

    /// From memory: callers ask per request (the control plane's stats cache, watch starts,
    /// `/metrics`), often inside async code, so a round trip here would block a runtime thread
    /// for up to the request timeout each time.
    fn revision(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, StoreError> {
        let start = watch::EtcdWatcher::start(
            self.shared(),
            self.watchers.clone(),
            self.full_key(prefix),
            self.prefix.clone(),
            from_revision,
        );
        run(self.runtime(), start)?.map(Watcher::etcd)
    }

    /// etcd keeps the history (until it compacts), not this process: nothing is held here, and
    /// `oldest` is 0 because how far back etcd can serve is etcd's to say; a watch from a
    /// compacted revision reports [`StoreError::Compacted`] with etcd's compaction revision.
    fn history_usage(&self) -> HistoryUsage {
        HistoryUsage {
            oldest: 0,
            revisions: 0,
            bytes: 0,
        }
    }

    fn leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }

    fn check(&self) -> Result<(), StoreError> {
        self.read_revision().map(drop)
    }

    fn backend(&self) -> &'static str {
        "etcd"
    }
}

fn compare_key(compare: &Compare) -> &String {
    let Compare::ModRevision(key, _) = compare;
    key
}

impl Leases for EtcdStore {
    fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        // etcd counts whole seconds; round up so a lease never lives shorter than asked.
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let seconds = seconds.max(1) as i64;
        let response =
            self.call(move |mut client| async move { client.lease_grant(seconds, None).await })?;
        self.saw(response.header());
        Ok(response.id())
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<bool, StoreError> {
        let renewed = self.call(move |mut client| async move {
            match client.lease_keep_alive(lease).await {
                Ok(_) => Ok(true),
                // etcd-client's word for a keep-alive answered with TTL 0.
                Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                Err(other) => Err(other),
            }
        })?;
        Ok(renewed)
    }

    fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.call(move |mut client| async move {
            match client.lease_revoke(lease).await {
                Ok(_) => Ok(()),
                // Already expired or revoked: what revoke wanted.
                Err(etcd_client::Error::GRpcStatus(status))
                    if status.code() == tonic::Code::NotFound =>
                {
                    Ok(())
                }
                Err(other) => Err(other),
            }
        })
    }
}

impl Drop for EtcdStore {
    /// Watchers drain what the store saw committed, then end; the runtime goes once they have,
    /// on a thread of its own, because a runtime cannot be dropped inside async code, where the
    /// last handle to a store may well be.
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.watchers.close();
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let watchers = self.watchers.clone();
        let grace = self.timeout;
        // Should no thread be had, the closure and the runtime drop here: watchers end at once,
        // undrained, which is still an end.
        let _ = std::thread::Builder::new()
            .name("store-etcd-drop".to_owned())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = tokio::time::timeout(grace, watchers.wait()).await;
                });
                runtime.shutdown_background();
            });
    }
}
