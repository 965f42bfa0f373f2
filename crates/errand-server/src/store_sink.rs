//! The worker's event sink: every event goes into the store's log (`Store::append_event`)
//! before anything else may see it, so a client streaming from the store never sees an event
//! that could be lost.
//!
//! [`errand_agent::EventSink::record`] cannot fail (the agent has nothing sensible to do about
//! storage), so a refusal travels another way: the sink raises the attempt's [`StopSignal`], the
//! runtime's stop future resolves, and the attempt stops at once. From then on the sink stores
//! nothing more (an event after a refused one would leave a hole in what the user sees).
//!
//! The attempt's results (diff, report, conversation) are stored as artifacts when the agent
//! hands them over, before its terminal state and `finished`: a client that sees `finished`
//! finds them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use errand_agent::{AttemptResult, EventSink};
use errand_protocol::{AttemptId, Event, EventKind};
use errand_store::{ArtifactKind, Store, StoreError};
use tokio::sync::watch;

use crate::Stop;

/// A one-shot "stop this attempt", raised by whoever learns first (the heartbeat, the sink, the
/// worker's shutdown) and awaited by the attempt. The first [`Stop`] raised wins.
#[derive(Clone, Debug)]
pub struct StopSignal {
    sender: Arc<watch::Sender<Option<Stop>>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl StopSignal {
    pub fn new() -> Self {
        Self { sender: Arc::new(watch::Sender::new(None)) }
    }

    /// Raises `stop` unless a stop was raised already; returns whether this one counted.
    pub fn raise(&self, stop: Stop) -> bool {
        self.sender.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(stop);
            true
        })
    }

    /// The stop raised so far, if any.
    pub fn raised(&self) -> Option<Stop> {
        self.sender.borrow().clone()
    }

    /// Resolves with the first stop raised (at once if one was).
    pub async fn wait(&self) -> Stop {
        let mut receiver = self.sender.subscribe();
        let raised = receiver.wait_for(Option::is_some).await.ok().and_then(|stop| stop.clone());
        match raised {
            Some(stop) => stop,
            // The sender lives in `self`, so it cannot be gone while this borrows it.
            None => std::future::pending().await,
        }
    }
}

/// Appends an attempt's events to the store. See the module docs for what happens when the
/// store refuses one.
pub struct StoreSink {
    store: Arc<dyn Store>,
    attempt: AttemptId,
    stop: StopSignal,
    refused: Option<String>,
    ending: Arc<AtomicBool>,
    keep_diff: bool,
}

impl StoreSink {
    pub fn new(store: Arc<dyn Store>, attempt: AttemptId, stop: StopSignal) -> Self {
        Self {
            store,
            attempt,
            stop,
            refused: None,
            ending: Arc::new(AtomicBool::new(false)),
            keep_diff: true,
        }
    }

    /// Stores no diff artifact: an ask-mode task's answer is its report, not a change.
    pub fn without_diff(mut self) -> Self {
        self.keep_diff = false;
        self
    }

    /// Becomes true when the attempt starts recording its own terminal state (set before the
    /// append, so it is never late): from then on the store dropping the lease is the attempt
    /// finishing, not the attempt being taken away.
    pub fn ending(&self) -> Arc<AtomicBool> {
        self.ending.clone()
    }

    /// Why the store refused an event, once it has.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }
}

#[async_trait::async_trait]
impl EventSink for StoreSink {
    /// The event as stored; once the store has refused one, the event as it would have been
    /// (seq 0: it exists nowhere else).
    async fn record(&mut self, kind: EventKind) -> Event {
        if self.refused.is_none() {
            if matches!(&kind, EventKind::StateChanged { state, .. } if state.is_terminal()) {
                self.ending.store(true, Ordering::SeqCst);
            }
            match self.store.append_event(self.attempt, &kind).await {
                Ok(event) => return event,
                Err(error) => {
                    let reason = format!("the store refused the attempt's event: {error}");
                    tracing::warn!(attempt_id = %self.attempt, "{reason}");
                    self.stop.raise(stop_for(&error, reason.clone()));
                    self.refused = Some(reason);
                }
            }
        }
        Event { seq: 0, at_ms: errand_store::now_ms(), kind }
    }

    /// Stores the results as artifacts. One that cannot be stored is logged and the attempt
    /// still ends: its events are the record, and the artifacts can be missing (a follow-up of
    /// an attempt without a conversation starts a new one).
    async fn results_ready(&mut self, result: &AttemptResult) {
        if self.refused.is_some() {
            return;
        }
        if self.keep_diff
            && let Some(diff) = &result.diff
        {
            self.put_artifact(ArtifactKind::Diff, Ok(diff.patch.clone())).await;
        }
        if let Some(report) = &result.report {
            self.put_artifact(ArtifactKind::Report, serde_json::to_string(report)).await;
        }
        let conversation = serde_json::to_string(&result.conversation);
        self.put_artifact(ArtifactKind::Conversation, conversation).await;
    }
}

impl StoreSink {
    async fn put_artifact(&self, kind: ArtifactKind, content: serde_json::Result<String>) {
        let stored = match content {
            Ok(content) => self.store.put_artifact(self.attempt, kind, &content).await,
            Err(e) => {
                tracing::warn!(attempt_id = %self.attempt, "cannot serialize the {kind:?}: {e}");
                return;
            }
        };
        if let Err(e) = stored {
            tracing::warn!(attempt_id = %self.attempt, "cannot store the {kind:?} artifact: {e}");
        }
    }
}

/// A conflict (log closed, a transition the attempt's stored state forbids) means the attempt
/// is no longer this worker's to write; anything else is the store failing, which ends the
/// attempt like a shutdown would.
fn stop_for(error: &StoreError, reason: String) -> Stop {
    match error {
        StoreError::Conflict { .. } | StoreError::NotFound(_) => Stop::Abandon(reason),
        StoreError::Invalid(_) | StoreError::Backend(_) => Stop::Interrupt(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_stop_wins_and_waiters_see_it() {
        let signal = StopSignal::new();
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move { signal.wait().await }
        });
        assert!(signal.raised().is_none());
        assert!(signal.raise(Stop::Cancel("user".into())));
        assert!(!signal.raise(Stop::Abandon("late".into())));
        assert_eq!(waiter.await.unwrap(), Stop::Cancel("user".into()));
        assert_eq!(signal.wait().await, Stop::Cancel("user".into()));
    }
}
