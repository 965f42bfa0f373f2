//! A store that notes, at the moment an attempt's `finished` event is appended, which artifacts
//! the attempt has: what a client reacting to `finished` could find. Everything else is the
//! wrapped store's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use errand_protocol::{AttemptId, EventKind};
use errand_store::{AppendObserver, ArtifactKind, ObservedStore, Scope, Store};

pub type WatchedStore = ObservedStore<FinishedWatcher>;

/// `inner`, watched.
pub fn watched(inner: Arc<dyn Store>) -> WatchedStore {
    ObservedStore::new(inner, FinishedWatcher::default())
}

#[derive(Default)]
pub struct FinishedWatcher {
    at_finished: Mutex<HashMap<AttemptId, Vec<ArtifactKind>>>,
}

impl FinishedWatcher {
    /// The artifacts `attempt` had when its `finished` was appended; `None` before that.
    pub fn artifacts_at_finished(&self, attempt: AttemptId) -> Option<Vec<ArtifactKind>> {
        self.at_finished.lock().unwrap().get(&attempt).cloned()
    }
}

#[async_trait::async_trait]
impl AppendObserver for FinishedWatcher {
    async fn before_append(&self, store: &dyn Store, attempt: AttemptId, kind: &EventKind) {
        if !matches!(kind, EventKind::Finished { .. }) {
            return;
        }
        let mut stored = Vec::new();
        for artifact in [ArtifactKind::Diff, ArtifactKind::Report, ArtifactKind::Conversation] {
            if let Ok(Some(_)) = store.get_artifact(Scope::System, attempt, artifact).await {
                stored.push(artifact);
            }
        }
        self.at_finished.lock().unwrap().insert(attempt, stored);
    }
}
