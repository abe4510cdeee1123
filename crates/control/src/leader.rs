//! Leadership: which replica drives canaries, and the fence every one of its canary writes carries.
//!
//! Any replica serves every API; exactly one, the leader, ticks canaries and carries out their
//! actions (route weights, removing the loser). On a store without leases (memory, redb) there
//! is one process, and it leads from the start with an empty fence. On etcd a replica leads
//! while it holds the leader key, put with its lease (see `campaign`); its term's fence is a
//! compare on that key's mod revision, so once the lease expired or another replica took the
//! key, every write the old leader still tries fails in the store, whatever it believes.

use std::sync::{Arc, Mutex, PoisonError};

use rollout::Millis;
use store::Compare;

use crate::canaries::now_millis;

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
    /// A process that leads from the start: the only one on its store.
    pub fn sole() -> Leadership {
        let leadership = Leadership::follower();
        leadership.begin(Term {
            fence: Vec::new(),
            since: now_millis(),
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
