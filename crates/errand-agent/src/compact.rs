//! Context compaction. A long attempt outgrows the model's context window; before it does (or
//! when the endpoint refuses a request as too long), the model writes a hand-off summary of its
//! older turns, and the summary replaces them.
//!
//! What survives verbatim: the head of the conversation (the environment, the AGENTS.md chain and
//! the task), the plan, and the most recent whole turns that fit `keep_budget`. Turns are kept or
//! summarised whole, so a tool call is never separated from its output (every provider rejects
//! that) and a turn's reasoning stays with its calls (Anthropic requires the thinking block that
//! precedes a tool call to be sent back with it).
//!
//! The summary request is the ordinary conversation with one more user message, under the same
//! instructions and tools, so the provider's prompt cache covers everything but that message.

use errand_model::{Item, ModelError, ModelRequest, Role, ToolSpec};
use errand_protocol::{PlanItem, PlanStatus, TokenUsage};

use crate::events::EventSink;
use crate::model::{Model, turn_recording_retries};
use crate::truncate::truncate_for_model;

/// What the model is asked when its conversation is compacted.
pub(crate) const SUMMARY_REQUEST: &str = "Your conversation is about to be compacted to fit the \
context window: everything after the task above, except your most recent turns, will be replaced \
by the summary you write now. Write it for yourself, as a hand-off to continue the task without \
the details. Do not call a tool; answer with the summary only, in Markdown, with these parts:
1. Progress: what you did and found, and what is still to do.
2. Files: each file you read or changed that matters, with the lines that matter (`path:L10-L20`) \
and what you changed in it.
3. Checks: each command that proved something, with its log citation (`log:17#L3-L9`, exactly as \
the results gave them) and its result. Your final message will need these citations.
4. Facts: errors, names, values, decisions and assumptions you would otherwise have to find again.";

/// Tokens of a text, roughly: about 4 bytes a token for English and code with OpenAI's and
/// Anthropic's tokenizers. Used only to decide when to compact, never to bill.
pub(crate) fn estimate_text(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Tokens of one conversation item, roughly, with a few for its framing.
pub(crate) fn estimate_item(item: &Item) -> u64 {
    const FRAMING: u64 = 4;
    FRAMING
        + match item {
            Item::Message { text, .. } => estimate_text(text),
            Item::FunctionCall { name, arguments, .. } => {
                estimate_text(name) + estimate_text(arguments)
            }
            Item::CustomToolCall { name, input, .. } => estimate_text(name) + estimate_text(input),
            Item::FunctionCallOutput { output, .. } | Item::CustomToolCallOutput { output, .. } => {
                estimate_text(output)
            }
            Item::Reasoning { summary, encrypted_content, .. } => {
                summary.iter().map(|s| estimate_text(s)).sum::<u64>()
                    + encrypted_content.as_deref().map_or(0, estimate_text)
            }
        }
}

pub(crate) fn estimate_items(items: &[Item]) -> u64 {
    items.iter().map(estimate_item).sum()
}

/// Tokens of the instructions and tool definitions sent with every request.
pub(crate) fn estimate_fixed(instructions: &str, tools: &[ToolSpec]) -> u64 {
    estimate_text(instructions)
        + tools
            .iter()
            .map(|t| estimate_text(&serde_json::to_string(t).unwrap_or_default()))
            .sum::<u64>()
}

/// The index of the first turn kept verbatim: the most recent whole turns whose items fit
/// `keep_budget` tokens. `items.len()` when not even the last turn fits.
pub(crate) fn split_point(items: &[Item], turn_starts: &[usize], keep_budget: u64) -> usize {
    let mut split = items.len();
    for &start in turn_starts.iter().rev() {
        if estimate_items(&items[start..]) > keep_budget {
            break;
        }
        split = start;
    }
    split
}

/// The message that stands for the summarised turns.
pub(crate) fn bridge_message(summary: &str, plan: &[PlanItem]) -> String {
    let mut text = String::from(
        "The conversation was compacted to fit the context window. The summary below is the one \
you wrote of your earlier turns; the environment, instructions and task above still stand, and \
your most recent turns follow as they were.\n\n<summary>\n",
    );
    text.push_str(summary.trim());
    text.push_str("\n</summary>\n");
    if !plan.is_empty() {
        text.push_str("\nYour plan, as you last updated it:\n");
        for item in plan {
            let mark = match item.status {
                PlanStatus::Pending => "[ ]",
                PlanStatus::InProgress => "[~]",
                PlanStatus::Completed => "[x]",
            };
            text.push_str(&format!("- {mark} {}\n", item.step));
        }
    }
    text
}

/// Everything a compaction reads.
pub(crate) struct CompactRequest<'a> {
    pub model: &'a dyn Model,
    pub instructions: &'a str,
    pub tools: &'a [ToolSpec],
    pub items: &'a [Item],
    /// Items at the start that are always kept (environment + AGENTS.md, the task).
    pub head_len: usize,
    /// Where each model turn's items start, ascending, all at or after `head_len`.
    pub turn_starts: &'a [usize],
    pub keep_budget: u64,
    pub plan: &'a [PlanItem],
}

/// The compacted conversation.
#[derive(Debug)]
pub(crate) struct Compacted {
    pub items: Vec<Item>,
    pub turn_starts: Vec<usize>,
    pub summary: String,
    pub usage: TokenUsage,
    pub turns_summarized: u32,
    pub turns_kept: u32,
    pub turns_dropped: u32,
}

/// Why a compaction did not happen.
#[derive(Debug)]
pub(crate) enum CompactError {
    /// No turn is old enough to summarise: every turn is among the kept ones, or there is none.
    NothingToSummarize,
    /// Even the summary request of the newest summarisable turn does not fit.
    TooLong,
    /// The model answered with tool calls only.
    NoSummary,
    Model(ModelError),
}

impl std::fmt::Display for CompactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NothingToSummarize => f.write_str("there are no older turns to summarise"),
            Self::TooLong => {
                f.write_str("even a summary request of one turn exceeds the context window")
            }
            Self::NoSummary => f.write_str("the model answered the summary request without text"),
            Self::Model(e) => write!(f, "the summary request failed: {e}"),
        }
    }
}

/// Asks the model for a summary of the turns before the kept ones and builds the new
/// conversation. Retries of the summary request are recorded in `sink` as they happen. When
/// the summary request itself is too long, the oldest turns are left out of it one by one.
pub(crate) async fn compact(
    request: CompactRequest<'_>,
    sink: &mut dyn EventSink,
) -> Result<Compacted, CompactError> {
    let CompactRequest {
        model,
        instructions,
        tools,
        items,
        head_len,
        turn_starts,
        keep_budget,
        plan,
    } = request;
    let split = split_point(items, turn_starts, keep_budget);
    let summarized: Vec<usize> = turn_starts.iter().copied().filter(|&s| s < split).collect();
    if summarized.is_empty() {
        return Err(CompactError::NothingToSummarize);
    }
    // What came before the first turn and after the head: an earlier compaction's summary.
    let first_turn = summarized[0];
    let mut dropped = 0;
    let (summary, usage) = loop {
        if dropped >= summarized.len() {
            return Err(CompactError::TooLong);
        }
        let mut input = items[..first_turn].to_vec();
        input.extend_from_slice(&items[summarized[dropped]..split]);
        input.push(Item::Message { role: Role::User, text: SUMMARY_REQUEST.into() });
        let request = ModelRequest {
            instructions: instructions.to_string(),
            input,
            tools: tools.to_vec(),
            parallel_tool_calls: false,
        };
        match turn_recording_retries(model, &request, sink).await {
            Ok(turn) => {
                let text = turn
                    .items
                    .iter()
                    .filter_map(|item| match item {
                        Item::Message { role: Role::Assistant, text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n\n");
                if text.trim().is_empty() {
                    return Err(CompactError::NoSummary);
                }
                // A summary longer than what it replaces' share of the window would defeat the
                // compaction (and a hostile or confused model could make every turn compact).
                let cap = keep_budget.clamp(500, 8_000) as usize * 4;
                break (truncate_for_model(&text, usize::MAX, cap), turn.usage);
            }
            Err(ModelError::ContextLengthExceeded { .. }) => dropped += 1,
            Err(e) => return Err(CompactError::Model(e)),
        }
    };

    let mut new_items = items[..head_len].to_vec();
    new_items.push(Item::Message { role: Role::User, text: bridge_message(&summary, plan) });
    let offset = new_items.len();
    new_items.extend_from_slice(&items[split..]);
    let kept: Vec<usize> =
        turn_starts.iter().filter(|&&s| s >= split).map(|&s| s - split + offset).collect();
    Ok(Compacted {
        items: new_items,
        turns_summarized: (summarized.len() - dropped) as u32,
        turns_kept: kept.len() as u32,
        turns_dropped: dropped as u32,
        turn_starts: kept,
        summary,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(role: Role, n: usize) -> Item {
        Item::Message { role, text: "x".repeat(n) }
    }

    #[test]
    fn whole_recent_turns_are_kept_within_the_budget() {
        // head (2 items), then three turns of ~100, ~100 and ~25 tokens.
        let items = vec![
            text(Role::Developer, 40),
            text(Role::User, 40),
            Item::FunctionCall {
                call_id: "a".into(),
                name: "shell".into(),
                arguments: "{}".into(),
            },
            Item::FunctionCallOutput { call_id: "a".into(), output: "o".repeat(400) },
            Item::FunctionCall {
                call_id: "b".into(),
                name: "shell".into(),
                arguments: "{}".into(),
            },
            Item::FunctionCallOutput { call_id: "b".into(), output: "o".repeat(400) },
            text(Role::Assistant, 80),
        ];
        let starts = [2, 4, 6];
        assert_eq!(split_point(&items, &starts, 10), items.len(), "nothing fits");
        assert_eq!(split_point(&items, &starts, 30), 6);
        assert_eq!(split_point(&items, &starts, 150), 4, "a call never leaves its output");
        assert_eq!(split_point(&items, &starts, 10_000), 2);
    }

    #[test]
    fn the_bridge_carries_the_summary_and_the_plan() {
        let plan = vec![
            PlanItem { step: "find the bug".into(), status: PlanStatus::Completed },
            PlanItem { step: "fix it".into(), status: PlanStatus::InProgress },
        ];
        let text = bridge_message("  did things  ", &plan);
        assert!(text.contains("<summary>\ndid things\n</summary>"), "{text}");
        assert!(text.contains("- [x] find the bug\n- [~] fix it\n"), "{text}");
        assert!(!bridge_message("s", &[]).contains("plan"));
    }

    #[test]
    fn estimates_count_every_kind_of_item() {
        assert_eq!(estimate_text(""), 0);
        assert_eq!(estimate_text("abcde"), 2);
        let reasoning = Item::Reasoning {
            id: "r".into(),
            summary: vec!["x".repeat(40)],
            encrypted_content: Some("e".repeat(40)),
        };
        assert_eq!(estimate_item(&reasoning), 4 + 10 + 10);
    }
}
