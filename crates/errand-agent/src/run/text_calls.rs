//! Tool calls the model wrote as text, when its turn had no real one (`recover.rs` finds them
//! and says what counts). Each runs exactly like a real call of its tool, after a
//! `tool_call_recovered` event that marks it; a call-shaped text that may not run gets a note
//! saying what is wrong instead.
//!
//! Wire validity: the model's message is already in the conversation as the assistant's text,
//! and the results follow as one user message, never as `function_call` and output items the
//! endpoint did not produce. A made-up call item would carry an id the provider never issued
//! (Responses and Anthropic check that each output answers one of their calls) and would show
//! the model, in its own history, calls it did not make that way. An assistant message then a
//! user message is valid on Responses, Chat Completions and Anthropic alike (the Anthropic
//! client merges consecutive user blocks, e.g. with a message the user sends next).

use super::*;
use crate::recover::{Recovery, recover};

/// Notes about call-shaped text that could not run, per attempt. After that, such a message
/// stands as the model's final answer, so a model that never gets a call right still ends.
const MAX_NOTES: u32 = 3;

/// Runs the calls written in `message`. `Ok(true)`: calls ran or a note went back, and the loop
/// goes on; `Ok(false)`: the message is the model's final answer.
pub(super) async fn run_text_calls(
    ctx: &ToolContext<'_>,
    turn: u32,
    message: &str,
    offered: &[&str],
    sink: &mut dyn EventSink,
    state: &mut LoopState,
) -> Result<bool, LoopEnd> {
    // The system prompt asks for bash blocks exactly when recovery is on.
    let calls = match recover(message, offered, ctx.config.recover_tool_calls) {
        Recovery::None => return Ok(false),
        Recovery::NearMiss { tool, why } => {
            if state.text_notes >= MAX_NOTES {
                return Ok(false);
            }
            state.text_notes += 1;
            tool_error(sink, &format!("text_{turn}"), &tool, why.clone()).await;
            let text = format!(
                "Your message holds a tool call written as text, and Errand did not run it: \
                 {why}\nCall the tool with valid arguments, or, if you are done, reply with your \
                 final message and no tool call."
            );
            state.input.push(Item::Message { role: Role::User, text });
            return Ok(true);
        }
        Recovery::Calls(calls) => calls,
    };
    let mut told = String::new();
    for (i, call) in calls.into_iter().enumerate() {
        let call_id = format!("text_{turn}_{}", i + 1);
        sink.record(EventKind::ToolCallRecovered {
            call_id: call_id.clone(),
            tool: call.tool.clone(),
            form: call.form.name().into(),
        })
        .await;
        let output =
            handle_function(ctx, &call_id, &call.tool, &call.arguments, sink, state).await?;
        state.repeats.observe(&call.tool, &call.arguments, &output);
        if !told.is_empty() {
            told.push_str("\n\n");
        }
        told.push_str(&format!("Errand ran the {} call in your message.\n{output}", call.tool));
    }
    state.input.push(Item::Message { role: Role::User, text: told });
    Ok(true)
}
