//! Two replicas with their own secrets directories on one store: each one's bootstrap token and
//! SigV4 keys are good on the other, and neither retires the other's.

use std::sync::Arc;

use super::secret;
use crate::auth::tokens::{self, Role};
use crate::auth::{Auth, AuthConfig};

fn replica(store: &Arc<dyn store::Store>, dir: &std::path::Path, name: &str) -> Auth {
    let config = AuthConfig {
        secrets_dir: Some(dir.to_path_buf()),
        replica: Some(name.into()),
        ..AuthConfig::default()
    };
    Auth::load(config, store).expect("load secrets")
}

#[test]
fn replicas_accept_each_others_bootstrap_tokens_and_keys() {
    let store: Arc<dyn store::Store> = Arc::new(store::MemoryStore::new());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(&store, dir_a.path(), "http://10.0.0.1:7070");
    let b = replica(&store, dir_b.path(), "http://10.0.0.2:7070");
    assert_ne!(a.admin_token, b.admin_token, "each wrote its own file");
    // B started after A, and A's token was not retired by B's registration.
    for (auth, name) in [
        (&a, "admin.token@http://10.0.0.1:7070"),
        (&b, "admin.token@http://10.0.0.2:7070"),
    ] {
        let record = tokens::lookup(&store, &auth.admin_token)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}'s token is not valid"));
        assert_eq!((record.role, record.name.as_str()), (Role::Admin, name));
    }
    // A's access key is known to B through the store (not from B's own file), and the other
    // way round; an unknown key is not.
    let (a_id, a_secret) = a.keys.iter().next().expect("A has a key");
    let (b_id, b_secret) = b.keys.iter().next().expect("B has a key");
    assert_ne!(a_id, b_id);
    assert_eq!(secret(&b.keys, &store, a_id).as_deref(), Some(a_secret));
    assert_eq!(secret(&a.keys, &store, b_id).as_deref(), Some(b_secret));
    assert_eq!(secret(&a.keys, &store, "AKIANOTAKEY"), None);

    // A restart of A registers nothing new and still leaves B's token valid.
    let revision = store.revision();
    let again = replica(&store, dir_a.path(), "http://10.0.0.1:7070");
    assert_eq!(again.admin_token, a.admin_token);
    assert_eq!(store.revision(), revision, "a restart writes nothing");
    assert!(tokens::lookup(&store, &b.admin_token).unwrap().is_some());
}
