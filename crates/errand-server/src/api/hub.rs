//! Fan-out of attempts' events to live streams.
//!
//! One reader per watched attempt pulls new events from the store and broadcasts each, already
//! serialized, to every stream of that attempt: a thousand clients cost one store query per wake,
//! not a thousand. The reader wakes at once when this process appends an event (through
//! [`NotifyingStore`], which the in-process workers use) and every `poll` otherwise, for events
//! that workers in other processes append.
//!
//! Streams never trust the broadcast alone: they read their backlog from the store, drop what
//! they already sent (by `seq`), and go back to the store whenever the broadcast skips ahead or
//! they lag behind it, so a stream has no gap and no duplicate whatever the timing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use errand_protocol::{AttemptId, Event, EventKind};
use errand_store::{AppendObserver, ObservedStore, Scope, Store};
use tokio::sync::{Notify, broadcast};

/// An event as streams send it: the event and its JSON, serialized once for every client.
#[derive(Debug)]
pub struct Published {
    pub event: Event,
    pub json: Arc<str>,
}

/// Events buffered per attempt for slow clients; one that falls further behind re-reads the
/// store.
const CHANNEL_CAPACITY: usize = 1024;

struct Watch {
    sender: broadcast::Sender<Arc<Published>>,
    wake: Notify,
}

/// The attempts being watched by streams of this process, each with its reader.
pub struct EventHub {
    store: Arc<dyn Store>,
    poll: Duration,
    watches: Mutex<HashMap<AttemptId, Arc<Watch>>>,
    myself: Weak<EventHub>,
}

impl EventHub {
    /// A hub reading from `store` (the plain one: the hub itself must not be notified of its
    /// own reads).
    pub fn new(store: Arc<dyn Store>, poll: Duration) -> Arc<EventHub> {
        Arc::new_cyclic(|myself| EventHub {
            store,
            poll,
            watches: Mutex::new(HashMap::new()),
            myself: myself.clone(),
        })
    }

    /// Events of `attempt` stored from now on; the reader starts with the first subscriber.
    pub fn subscribe(&self, attempt: AttemptId) -> broadcast::Receiver<Arc<Published>> {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watch) = watches.get(&attempt) {
            return watch.sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(CHANNEL_CAPACITY);
        let watch = Arc::new(Watch { sender, wake: Notify::new() });
        watches.insert(attempt, watch.clone());
        if let Some(hub) = self.myself.upgrade() {
            tokio::spawn(async move { hub.read(attempt, watch).await });
        }
        receiver
    }

    /// Somebody in this process appended to `attempt`'s log: its reader (if any) reads now.
    pub fn notify(&self, attempt: AttemptId) {
        let watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watch) = watches.get(&attempt) {
            // A permit is kept if the reader is busy, so no append goes unnoticed.
            watch.wake.notify_one();
        }
    }

    /// Streams currently following some attempt.
    pub fn streams(&self) -> usize {
        let watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches.values().map(|w| w.sender.receiver_count()).sum()
    }

    /// The reader of one attempt: from the log's end when it started, every new event, once,
    /// in order, until the log closes or nobody listens.
    async fn read(&self, attempt: AttemptId, watch: Arc<Watch>) {
        let mut cursor = match self.store.get_attempt(Scope::System, attempt).await {
            Ok(stored) => stored.last_seq,
            Err(e) => {
                tracing::warn!(attempt_id = %attempt, "cannot watch the attempt: {e}");
                self.unwatch(attempt, &watch, true);
                return;
            }
        };
        loop {
            tokio::select! {
                () = watch.wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
            if self.unwatch(attempt, &watch, false) {
                return;
            }
            let events = match self.store.events_after(Scope::System, attempt, cursor, 1000).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(attempt_id = %attempt, "cannot read events to stream: {e}");
                    continue;
                }
            };
            let mut closed = false;
            for event in events {
                cursor = event.seq;
                closed |= matches!(event.kind, EventKind::Finished { .. });
                let json = match serde_json::to_string(&event) {
                    Ok(json) => json.into(),
                    Err(e) => {
                        tracing::error!("cannot serialize event {}: {e}", event.seq);
                        continue;
                    }
                };
                // No receiver is fine: they may all have left between two events.
                let _ = watch.sender.send(Arc::new(Published { event, json }));
            }
            if closed {
                self.unwatch(attempt, &watch, true);
                return;
            }
        }
    }

    /// Stops watching `attempt` when `always` or when nobody listens any more; whether it did.
    /// Under the map's lock, so a subscriber either gets this watch before it goes or starts a
    /// new one.
    fn unwatch(&self, attempt: AttemptId, watch: &Arc<Watch>, always: bool) -> bool {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if !always && watch.sender.receiver_count() > 0 {
            return false;
        }
        if watches.get(&attempt).is_some_and(|current| Arc::ptr_eq(current, watch)) {
            watches.remove(&attempt);
        }
        true
    }
}

/// Tells the hub whenever this process appends to a log, so its streams see events at once.
pub struct HubNotifier(pub Arc<EventHub>);

impl AppendObserver for HubNotifier {
    fn appended(&self, attempt: AttemptId) {
        self.0.notify(attempt);
    }
}

/// The store the API and its in-process workers share: appends wake the hub's readers.
pub type NotifyingStore = ObservedStore<HubNotifier>;
