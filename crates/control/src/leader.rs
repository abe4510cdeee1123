//! Leadership: which replica drives canaries, and the fence every one of its canary writes carries.
//!
//! Any replica serves every API; exactly one, the leader, ticks canaries and carries out their
//! actions (route weights, removing the loser). On a store without leases (memory, redb) there
//! is one process, and it leads from the start with an empty fence. On etcd a replica leads
//! while it holds the leader key, put with its lease (see `campaign`); its term's fence is a
//! compare on that key's mod revision, so once the lease expired or another replica took the
//! key, every write the old leader still tries fails in the store, whatever it believes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rollout::Millis;
use serde::{Deserialize, Serialize};
use store::{Compare, LeaseId, Op, Store, Txn, TxnOutcome};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::now_millis;
use crate::error::ApiError;
use crate::resources::blocking;

/// One replica's time as leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Compares every leader write carries; empty with one process.
    pub fence: Vec<Compare>,
    /// When the term began: what the replica's stats can cover at most.
    pub since: Millis,
}

/// Who leads, as this replica knows it.
pub struct Leadership {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    term: Option<Arc<Term>>,
    /// The leader's URL, for forwarding stats to it; `None` while unknown or when this
    /// replica leads.
    leader_url: Option<String>,
}

impl Leadership {
    /// A process that leads from the start (`since`, on its clock): the only one on its store.
    pub fn sole(since: Millis) -> Leadership {
        let leadership = Leadership::follower();
        leadership.begin(Term {
            fence: Vec::new(),
            since,
        });
        leadership
    }

    /// A replica that does not lead (yet).
    pub fn follower() -> Leadership {
        Leadership {
            state: Mutex::new(State::default()),
        }
    }

    /// This replica's current term, if it leads.
    pub fn term(&self) -> Option<Arc<Term>> {
        self.lock().term.clone()
    }

    /// Where another replica leads, if one is known to.
    pub fn leader_url(&self) -> Option<String> {
        self.lock().leader_url.clone()
    }

    pub(crate) fn begin(&self, term: Term) {
        let mut state = self.lock();
        state.term = Some(Arc::new(term));
        state.leader_url = None;
    }

    /// Ends this replica's term (if any); `leader` is who leads now, as far as it is known.
    pub(crate) fn follow(&self, leader: Option<String>) {
        let mut state = self.lock();
        let ended = state.term.take().is_some();
        state.leader_url = leader;
        drop(state);
        if ended {
            tracing::warn!("this replica no longer leads");
        }
    }

    /// Nothing under the lock can panic half-way, so a poisoned one is consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The key a leader holds with its lease (under the store's own prefix on etcd).
pub const LEADER_KEY: &str = "leader";

/// How long a leader's lease lives without a renewal: the longest a dead leader's canaries wait
/// before another replica takes over (plus one `POLL`).
pub const LEASE_TTL: Duration = Duration::from_secs(2);

/// How often a leader renews its lease, and a follower looks for a vacant leader key.
const POLL: Duration = Duration::from_millis(250);

/// What a leader writes into the leader key: where its API is, which is also the replica's
/// name (`AuthConfig::replica`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaderRecord {
    pub url: String,
}

/// Keeps `leadership` true for this replica until shutdown: leads at once on a store without
/// leases; on etcd campaigns for the leader key whenever it is vacant, renews the lease while
/// leading, and steps down (before the lease can have expired in etcd) when renewals fail.
/// A graceful stop revokes the lease, so the next replica takes over without waiting for it.
pub async fn run(
    store: Arc<dyn Store>,
    leadership: Arc<Leadership>,
    me: LeaderRecord,
    shutdown: CancellationToken,
) {
    if store.leases().is_none() {
        return;
    }
    let value = match serde_json::to_vec(&me) {
        Ok(value) => value,
        Err(_) => return,
    };
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match vacant(&store).await {
            Ok(None) => {}
            Ok(Some(leader)) => {
                leadership.follow(Some(leader.url));
                sleep_or_stop(POLL, &shutdown).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the leader key");
                leadership.follow(None);
                sleep_or_stop(POLL, &shutdown).await;
                continue;
            }
        }
        match campaign(&store, &value).await {
            Ok(Some((lease, revision))) => {
                tracing::info!(replica = %me.url, revision, "leading");
                lead(&store, &leadership, lease, revision, &shutdown).await;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "campaign for leadership failed"),
        }
        sleep_or_stop(POLL, &shutdown).await;
    }
}

/// The current leader, or `None` when the key is vacant.
async fn vacant(store: &Arc<dyn Store>) -> Result<Option<LeaderRecord>, ApiError> {
    let store = store.clone();
    let kv = blocking(move || store.get(LEADER_KEY)).await??;
    Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

/// Takes the leader key if it is still vacant: `(lease, revision of the put)`.
async fn campaign(
    store: &Arc<dyn Store>,
    value: &[u8],
) -> Result<Option<(LeaseId, u64)>, ApiError> {
    let (store, value) = (store.clone(), value.to_vec());
    blocking(
        move || -> Result<Option<(LeaseId, u64)>, store::StoreError> {
            let leases = store.leases().expect("checked by run");
            let lease = leases.grant(LEASE_TTL)?;
            let txn = Txn::default()
                .when(Compare::ModRevision(LEADER_KEY.into(), 0))
                .then(Op::PutLeased(LEADER_KEY.into(), value, lease));
            match store.txn(txn) {
                Ok(TxnOutcome::Committed { revision }) => Ok(Some((lease, revision))),
                outcome => {
                    // Someone was quicker (or we cannot tell): the lease is of no use.
                    let _ = leases.revoke(lease);
                    outcome.map(|_| None)
                }
            }
        },
    )
    .await?
    .map_err(ApiError::from)
}

/// One term: renew every `POLL` until a renewal says the lease is gone, no renewal succeeded
/// for most of the TTL, or shutdown (which revokes the lease).
async fn lead(
    store: &Arc<dyn Store>,
    leadership: &Leadership,
    lease: LeaseId,
    revision: u64,
    shutdown: &CancellationToken,
) {
    // Proxies push to any replica and followers forward to the leader once they have seen the
    // new leader key (within a `POLL` or two): stats from before then may be missing, so the
    // term's stats count from a little later.
    leadership.begin(Term {
        fence: vec![Compare::ModRevision(LEADER_KEY.into(), revision)],
        since: now_millis() + 2 * POLL.as_millis() as Millis,
    });
    // Sent-at time of the last renewal that succeeded: etcd's lease runs from when it got it,
    // so counting from the send errs on the side of stepping down early.
    let mut renewed = Instant::now();
    let give_up = LEASE_TTL * 3 / 4;
    loop {
        if sleep_or_stop(POLL, shutdown).await {
            let store = store.clone();
            let _ = blocking(move || store.leases().map(|l| l.revoke(lease))).await;
            leadership.follow(None);
            return;
        }
        let sent = Instant::now();
        let left = give_up.saturating_sub(sent - renewed);
        let store2 = store.clone();
        let renewal = tokio::time::timeout(
            left,
            blocking(move || store2.leases().map(|l| l.keep_alive(lease))),
        )
        .await;
        match renewal {
            Ok(Ok(Some(Ok(true)))) => renewed = sent,
            Ok(Ok(Some(Ok(false)))) => {
                tracing::warn!("the leader lease expired");
                leadership.follow(None);
                return;
            }
            other => {
                if Instant::now() - renewed >= give_up {
                    tracing::warn!(?other, "cannot renew the leader lease; stepping down");
                    leadership.follow(None);
                    return;
                }
            }
        }
    }
}

/// Sleeps for `how_long`; true if shutdown came first.
async fn sleep_or_stop(how_long: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(how_long) => false,
    }
}
