//! The conversation an attempt leaves behind, in the agent's own format, so a follow-up can
//! continue it: the same items the model saw (after any compaction), stored as JSON (the
//! store's `conversation` artifact) and handed back in [`crate::AttemptSpec::continues`].

use std::collections::HashSet;

use errand_model::Item;
use serde::{Deserialize, Serialize};

/// An attempt's conversation, ready to be continued. The system prompt is not part of it (every
/// request gets it anew); the environment message with the AGENTS.md chain and the task are its
/// first items.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub items: Vec<Item>,
}

impl Conversation {
    /// The conversation as the loop left it, with every tool call answered: an attempt cut short
    /// (wall clock, a fatal tool error) can end between a call and its output, and every
    /// provider refuses a call without one. The missing outputs go at the end, where the
    /// interrupted turn's outputs belong.
    pub(crate) fn closed(mut items: Vec<Item>) -> Conversation {
        let answered: HashSet<String> = items
            .iter()
            .filter_map(|item| match item {
                Item::FunctionCallOutput { call_id, .. }
                | Item::CustomToolCallOutput { call_id, .. } => Some(call_id.clone()),
                _ => None,
            })
            .collect();
        let unanswered: Vec<Item> = items
            .iter()
            .filter_map(|item| match item {
                Item::FunctionCall { call_id, .. } if !answered.contains(call_id) => {
                    Some(Item::FunctionCallOutput {
                        call_id: call_id.clone(),
                        output: NOT_RUN.into(),
                    })
                }
                Item::CustomToolCall { call_id, .. } if !answered.contains(call_id) => {
                    Some(Item::CustomToolCallOutput {
                        call_id: call_id.clone(),
                        output: NOT_RUN.into(),
                    })
                }
                _ => None,
            })
            .collect();
        items.extend(unanswered);
        Conversation { items }
    }
}

/// The output given to a call the attempt ended before answering.
const NOT_RUN: &str = "The attempt ended before this call was carried out; it had no effect.";

#[cfg(test)]
mod tests {
    use super::*;
    use errand_model::Role;

    #[test]
    fn calls_left_unanswered_get_an_output_and_answered_ones_keep_theirs() {
        let items = vec![
            Item::Message { role: Role::User, text: "task".into() },
            Item::FunctionCall {
                call_id: "a".into(),
                name: "shell".into(),
                arguments: "{}".into(),
            },
            Item::CustomToolCall {
                call_id: "b".into(),
                name: "apply_patch".into(),
                input: "p".into(),
            },
            Item::FunctionCall {
                call_id: "c".into(),
                name: "shell".into(),
                arguments: "{}".into(),
            },
            Item::FunctionCallOutput { call_id: "a".into(), output: "ran".into() },
        ];
        let closed = Conversation::closed(items.clone());
        assert_eq!(closed.items[..5], items[..]);
        assert_eq!(
            closed.items[5..],
            [
                Item::CustomToolCallOutput { call_id: "b".into(), output: NOT_RUN.into() },
                Item::FunctionCallOutput { call_id: "c".into(), output: NOT_RUN.into() },
            ]
        );
        let complete = Conversation::closed(closed.items.clone());
        assert_eq!(complete, closed, "nothing more to close");
    }

    #[test]
    fn it_reads_back_what_it_wrote() {
        let conversation = Conversation::closed(vec![
            Item::Message { role: Role::Developer, text: "env".into() },
            Item::Message { role: Role::User, text: "task".into() },
        ]);
        let json = serde_json::to_string(&conversation).unwrap();
        assert_eq!(serde_json::from_str::<Conversation>(&json).unwrap(), conversation);
    }
}
