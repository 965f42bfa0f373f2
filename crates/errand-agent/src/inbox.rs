//! Messages a person sends to an attempt while it runs (design: "user messages sent mid-run are
//! delivered at the next turn boundary"). The agent asks its [`Inbox`] before every model request
//! and, when the model gives its final answer, once more: a message that arrived meanwhile is
//! delivered and the model gets another turn instead of the attempt finishing over it.

use errand_model::{Item, Role};
use errand_protocol::EventKind;

use crate::events::EventSink;

/// Where the agent takes the messages sent to its attempt from (the store's queue for the
/// service, nothing for `errand exec`).
#[async_trait::async_trait]
pub trait Inbox: Send + Sync {
    /// The messages sent since the last call, oldest first; each is returned exactly once. An
    /// inbox that cannot be read answers with none: a message delivered late beats an attempt
    /// stopped for it.
    async fn take(&self) -> Vec<String>;
}

/// An inbox nobody writes to: `errand exec` runs in the foreground with no way to send one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMessages;

#[async_trait::async_trait]
impl Inbox for NoMessages {
    async fn take(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Records one `user_message` event per message and adds each to the conversation as a user
/// message, in the order they were sent.
pub(crate) async fn deliver(
    messages: Vec<String>,
    input: &mut Vec<Item>,
    sink: &mut dyn EventSink,
) {
    for text in messages {
        sink.record(EventKind::UserMessage { text: text.clone() }).await;
        input.push(Item::Message { role: Role::User, text });
    }
}
