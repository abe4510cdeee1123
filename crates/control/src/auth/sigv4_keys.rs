//! The SigV4 keys of every replica, shared through the store so any replica checks any signature.
//!
//! A signature can only be checked with the secret itself, so the store holds secrets here (as
//! it holds everything else the mesh trusts; whoever reads the store owns the mesh anyway).
//! Each replica registers the keys of its own `credentials` file at start; a key already
//! registered keeps its secret.

use std::sync::Arc;

use store::{Compare, Op, Store, Txn};

use super::sigv4::Keys;

/// Where access keys live; outside `meshes/`, so no snapshot or watch shows them.
const KEY_PREFIX: &str = "auth/keys/";

/// Registers every key of `keys` that the store does not have yet.
pub fn register(store: &Arc<dyn Store>, keys: &Keys) -> Result<(), store::StoreError> {
    for (id, secret) in keys.iter() {
        let key = format!("{KEY_PREFIX}{id}");
        // Absent only: a replica with an older copy of a file never overwrites a key.
        store.txn(
            Txn::default()
                .when(Compare::ModRevision(key.clone(), 0))
                .then(Op::Put(key, secret.as_bytes().to_vec())),
        )?;
    }
    Ok(())
}

/// The secret of access key `id`: this replica's own file first, then the store.
pub fn secret(local: &Keys, store: &Arc<dyn Store>, id: &str) -> Option<String> {
    if let Some(secret) = local.get(id) {
        return Some(secret.to_string());
    }
    let kv = store.get(&format!("{KEY_PREFIX}{id}")).ok()??;
    String::from_utf8(kv.value).ok()
}

#[cfg(test)]
mod tests;
