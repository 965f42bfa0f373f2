//! Where the agent's events go. The agent records an event and learns its `seq` (needed for log
//! citations); the sink decides where it is kept (memory and a printer for `errand exec`, the
//! store for the service).

use errand_protocol::{Event, EventKind};

use crate::AttemptResult;

#[async_trait::async_trait]
pub trait EventSink: Send {
    /// Records an event durably (as far as the sink goes) and returns it with its `seq`.
    async fn record(&mut self, kind: EventKind) -> Event;

    /// Called once with the attempt's results (diff, report, conversation) just before its
    /// terminal `state_changed` and `finished` are recorded, so a sink that keeps results
    /// elsewhere has them there by the time anyone sees `finished`. Nothing by default.
    async fn results_ready(&mut self, _result: &AttemptResult) {}
}

/// Keeps events in memory and shows each one to an observer as it is recorded.
pub struct MemoryLog {
    events: Vec<Event>,
    observer: Box<dyn FnMut(&Event) + Send>,
}

impl MemoryLog {
    pub fn new(observer: impl FnMut(&Event) + Send + 'static) -> Self {
        Self { events: Vec::new(), observer: Box::new(observer) }
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn into_events(self) -> Vec<Event> {
        self.events
    }
}

impl Default for MemoryLog {
    fn default() -> Self {
        Self::new(|_| {})
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl EventSink for MemoryLog {
    async fn record(&mut self, kind: EventKind) -> Event {
        let event = Event { seq: self.events.len() as u64 + 1, at_ms: now_ms(), kind };
        (self.observer)(&event);
        self.events.push(event.clone());
        event
    }
}
