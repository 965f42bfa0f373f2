//! The agent loop: model turn, tool calls, repeat, until the model answers without a tool call
//! (its final message) or a limit bites; then the diff and the checked report. Messages the user
//! sends meanwhile join the conversation at turn boundaries (see `inbox.rs`); a follow-up
//! continues an earlier attempt's conversation instead of starting one.

mod gate;
mod text_calls;
mod tool_calls;

use std::time::Duration;

use errand_model::{Item, ModelError, ModelRequest, Role, ToolSpec};
use errand_protocol::{
    AttemptOutcome, AttemptState, EventKind, PlanItem, Prices, Report, TokenUsage,
};
use errand_sandbox::{Sandbox, WorkspaceDiff};

use crate::compact::{
    CompactError, CompactRequest, compact, estimate_fixed, estimate_item, estimate_items,
};
use crate::conversation::Conversation;
use crate::events::EventSink;
use crate::inbox::{Inbox, deliver};
use crate::instructions::load_chain;
use crate::malformed::unknown_tool;
use crate::model::{Model, turn_recording_retries};
use crate::prompt::{BASH_BLOCK_FORM, context_message, followup_message, system_prompt_for};
use crate::repetition::{RepeatWatch, Verdict};
use crate::report::{CommandRecord, build_report};
use crate::tools::{self, ShellArgs};
use tool_calls::{handle_function, run_patch, run_shell, tool_error};

/// How `apply_patch` is offered: as a freeform tool (Responses API custom tools) or as a JSON
/// function with one `input` string, for providers without freeform tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchToolMode {
    Freeform,
    Function,
}

/// The repeats the configuration allows by default (`AgentConfig::repeat_limit`): three runs of
/// one command with one result are already a loop for the small models that fall into them.
pub const DEFAULT_REPEAT_LIMIT: u32 = 3;

/// Limits and knobs of one attempt.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub max_turns: u32,
    /// Timeout of a command when the model gives none.
    pub command_timeout: Duration,
    /// The most a model may ask for with `timeout_ms`.
    pub max_command_timeout: Duration,
    /// Wall clock for the whole agent phase (hard).
    pub attempt_timeout: Duration,
    /// Output kept per command; beyond it, bytes are counted and dropped.
    pub max_output_bytes: u64,
    /// How much of a command's output the model sees (head and tail).
    pub model_output_lines: usize,
    pub model_output_bytes: usize,
    /// Bytes of AGENTS.md text given to the model.
    pub instructions_budget: usize,
    pub patch_tool: PatchToolMode,
    /// The model's prices; without them no cost is computed.
    pub prices: Option<Prices>,
    /// Stop once the attempt has used more tokens than this (input + output, all turns).
    pub token_budget: Option<u64>,
    /// Stop once the attempt has cost more than this many US dollars (needs `prices`).
    pub cost_budget_usd: Option<f64>,
    /// The model's context window in tokens. When known, the conversation is compacted once it
    /// reaches `auto_compact_ratio` of it; either way, a request the endpoint refuses as too long
    /// is compacted and retried once.
    pub context_window: Option<u64>,
    pub auto_compact_ratio: f64,
    /// Checks Errand runs when the agent says it is done (besides those AGENTS.md names under
    /// `Checks`); see `run/gate.rs`.
    pub gate_checks: Vec<String>,
    /// Times failing checks go back to the model before the attempt ends failed.
    pub gate_rounds: u32,
    /// Run tool calls the model wrote as text when its endpoint returned none (`recover.rs`),
    /// and tell the model in the system prompt that a bare ```bash block is a shell call. A
    /// per-model setting: off for a model whose messages quote tool calls on purpose.
    pub recover_tool_calls: bool,
    /// The same call with the same result this many times in a row gets a steering message, once
    /// more ends the attempt (`repetition.rs`); 0: never. Off in `default()`, which embedders
    /// and fixtures that run one command many times start from; the configuration's default
    /// (`[agent] repeat_limit`) is [`DEFAULT_REPEAT_LIMIT`].
    pub repeat_limit: u32,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            max_turns: 80,
            command_timeout: Duration::from_secs(300),
            max_command_timeout: Duration::from_secs(1800),
            attempt_timeout: Duration::from_secs(3600),
            max_output_bytes: 4 << 20,
            model_output_lines: 256,
            model_output_bytes: 10 << 10,
            instructions_budget: 32 << 10,
            patch_tool: PatchToolMode::Freeform,
            prices: None,
            token_budget: None,
            cost_budget_usd: None,
            context_window: None,
            auto_compact_ratio: 0.8,
            gate_checks: Vec::new(),
            gate_rounds: 2,
            recover_tool_calls: true,
            repeat_limit: 0,
        }
    }
}

impl AgentConfig {
    /// Conversation tokens at which the agent compacts before the next turn.
    fn auto_compact_limit(&self) -> Option<u64> {
        self.context_window
            .map(|window| (window as f64 * self.auto_compact_ratio.clamp(0.1, 1.0)) as u64)
    }

    /// Tokens of recent turns kept verbatim by a compaction: a quarter of the window, at most
    /// 32k (enough for the last few commands and edits), and 8k when the window is unknown.
    fn keep_budget(&self) -> u64 {
        self.context_window.map_or(8_000, |window| (window / 4).min(32_000))
    }
}

/// The task as the agent receives it.
#[derive(Debug, Clone)]
pub struct AttemptSpec {
    pub prompt: String,
    /// The working directory relative to the repository root (`""` for the root).
    pub workdir: String,
    /// For a follow-up: the earlier attempt's conversation, which this attempt continues with
    /// `prompt` as its next user message. Its environment message and AGENTS.md chain still
    /// stand, so they are not loaded again.
    pub continues: Option<Conversation>,
    /// Run the finish checks when the agent says it is done (off for questions: an `ask` task
    /// changes nothing to check).
    pub finish_checks: bool,
}

/// How an attempt ended and what it produced.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub outcome: AttemptOutcome,
    pub report: Option<Report>,
    pub diff: Option<WorkspaceDiff>,
    pub usage: TokenUsage,
    pub turns: u32,
    /// US dollars, when the model has prices.
    pub cost_usd: Option<f64>,
    /// What a follow-up continues from.
    pub conversation: Conversation,
}

/// Conversation and records that outlive a loop cut short by the wall clock.
struct LoopState {
    input: Vec<Item>,
    /// Items at the start of `input` that compaction always keeps: environment + AGENTS.md, task.
    head_len: usize,
    /// Where each model turn's items start in `input` (since the last compaction).
    turn_starts: Vec<usize>,
    /// The conversation's size as the endpoint last measured it: `(items, tokens)`.
    measured: Option<(usize, u64)>,
    /// The plan as last updated, kept through compactions.
    plan: Vec<PlanItem>,
    commands: Vec<CommandRecord>,
    usage: TokenUsage,
    cost_usd: Option<f64>,
    turns: u32,
    repeats: RepeatWatch,
    /// Notes sent about tool calls written as text that could not run (`run/text_calls.rs`).
    text_notes: u32,
}

impl LoopState {
    /// Tokens the next request will carry: the endpoint's last count plus an estimate of what
    /// was added since, or an estimate of everything when the endpoint reports no usage.
    fn conversation_tokens(&self, fixed: u64) -> u64 {
        match self.measured {
            Some((len, tokens)) if len <= self.input.len() => {
                tokens + estimate_items(&self.input[len..])
            }
            _ => fixed + estimate_items(&self.input),
        }
    }

    /// Adds a turn's (or a summary request's) tokens and cost to the attempt's totals.
    fn account(&mut self, usage: &TokenUsage, prices: Option<Prices>) -> Option<f64> {
        self.usage.add(usage);
        let cost = prices.map(|p| p.cost_usd(usage));
        if let Some(cost) = cost {
            self.cost_usd = Some(self.cost_usd.unwrap_or(0.0) + cost);
        }
        cost
    }
}

/// What every tool call needs and never changes during an attempt.
struct ToolContext<'a> {
    spec: &'a AttemptSpec,
    sandbox: &'a dyn Sandbox,
    config: &'a AgentConfig,
}

enum LoopEnd {
    /// The agent gave its final answer; `gate_failed` says which finish checks still failed
    /// when no rounds were left.
    Finished {
        message: String,
        gate_failed: Option<String>,
    },
    Failed {
        state: AttemptState,
        reason: String,
    },
}

/// Runs one attempt to the end, taking the user's messages from `inbox` at every turn boundary.
/// Never panics on bad model output: every problem becomes an event and, if it is fatal, the
/// outcome's reason.
pub async fn run_attempt(
    spec: &AttemptSpec,
    sandbox: &dyn Sandbox,
    model: &dyn Model,
    config: &AgentConfig,
    sink: &mut dyn EventSink,
    inbox: &dyn Inbox,
) -> AttemptResult {
    sink.record(EventKind::StateChanged { state: AttemptState::Running, reason: None }).await;
    let mut state = LoopState {
        input: Vec::new(),
        head_len: 0,
        turn_starts: Vec::new(),
        measured: None,
        plan: Vec::new(),
        commands: Vec::new(),
        usage: TokenUsage::default(),
        cost_usd: None,
        turns: 0,
        repeats: RepeatWatch::new(config.repeat_limit),
        text_notes: 0,
    };
    let end = match tokio::time::timeout(
        config.attempt_timeout,
        agent_loop(spec, sandbox, model, config, sink, inbox, &mut state),
    )
    .await
    {
        Ok(end) => end,
        Err(_) => {
            let detail = format!(
                "the attempt ran for its whole {} s wall clock",
                config.attempt_timeout.as_secs()
            );
            sink.record(EventKind::LimitReached {
                limit: "attempt_wall_clock".into(),
                detail: detail.clone(),
            })
            .await;
            LoopEnd::Failed { state: AttemptState::TimedOut, reason: detail }
        }
    };

    let diff = match sandbox.diff().await {
        Ok(diff) => {
            sink.record(EventKind::DiffReady { files: diff.files.clone() }).await;
            Some(diff)
        }
        Err(e) => {
            let reason = format!("could not compute the diff: {e}");
            return finish(sink, state, AttemptState::Failed, reason, None, None).await;
        }
    };
    match end {
        LoopEnd::Finished { message, gate_failed } => {
            let files = diff.as_ref().map(|d| d.files.as_slice()).unwrap_or(&[]);
            match build_report(&message, sandbox, &state.commands, files).await {
                Ok(report) => {
                    sink.record(EventKind::ReportReady { report: report.clone() }).await;
                    let (end, reason) = match gate_failed {
                        None => (
                            AttemptState::Succeeded,
                            format!("finished after {} turns", state.turns),
                        ),
                        Some(failed) => (
                            AttemptState::Failed,
                            format!("the finish checks still fail: {failed}"),
                        ),
                    };
                    finish(sink, state, end, reason, Some(report), diff).await
                }
                Err(e) => {
                    let reason = format!("could not check the report's citations: {e}");
                    finish(sink, state, AttemptState::Failed, reason, None, diff).await
                }
            }
        }
        LoopEnd::Failed { state: end_state, reason } => {
            finish(sink, state, end_state, reason, None, diff).await
        }
    }
}

async fn finish(
    sink: &mut dyn EventSink,
    state: LoopState,
    end_state: AttemptState,
    reason: String,
    report: Option<Report>,
    diff: Option<WorkspaceDiff>,
) -> AttemptResult {
    let outcome = AttemptOutcome { state: end_state, reason };
    let result = AttemptResult {
        outcome: outcome.clone(),
        report,
        diff,
        usage: state.usage,
        turns: state.turns,
        cost_usd: state.cost_usd,
        conversation: Conversation::closed(state.input),
    };
    // Results first: whoever reacts to `finished` must find them.
    sink.results_ready(&result).await;
    sink.record(EventKind::StateChanged { state: end_state, reason: Some(outcome.reason.clone()) })
        .await;
    sink.record(EventKind::Finished { outcome }).await;
    result
}

async fn agent_loop(
    spec: &AttemptSpec,
    sandbox: &dyn Sandbox,
    model: &dyn Model,
    config: &AgentConfig,
    sink: &mut dyn EventSink,
    inbox: &dyn Inbox,
    state: &mut LoopState,
) -> LoopEnd {
    let workspace = sandbox.workspace_dir().to_string();
    if let Err(end) = start_conversation(spec, sandbox, config, sink, state).await {
        return end;
    }

    let mut instructions = system_prompt_for(&workspace, config.context_window);
    if config.recover_tool_calls {
        instructions.push_str(BASH_BLOCK_FORM);
    }
    let tool_specs = tools::specs(config.patch_tool);
    let offered: Vec<&str> = tool_specs.iter().map(|tool| tool.name()).collect();
    let fixed_tokens = estimate_fixed(&instructions, &tool_specs);
    let ctx = ToolContext { spec, sandbox, config };
    // Rounds of finish checks run so far.
    let mut gate_round = 0u32;
    let compaction = Compaction { model, instructions: &instructions, tools: &tool_specs };

    loop {
        if state.turns >= config.max_turns {
            let detail = format!("the agent used all {} turns without finishing", config.max_turns);
            sink.record(EventKind::LimitReached {
                limit: "max_turns".into(),
                detail: detail.clone(),
            })
            .await;
            return LoopEnd::Failed { state: AttemptState::Failed, reason: detail };
        }
        state.turns += 1;
        let turn = state.turns;
        sink.record(EventKind::TurnStarted { turn }).await;
        deliver(inbox.take().await, &mut state.input, sink).await;

        if let Some(limit) = config.auto_compact_limit()
            && state.conversation_tokens(fixed_tokens) >= limit
        {
            match compaction.run(state, config, sink, "auto", fixed_tokens).await {
                Ok(()) => {}
                // Nothing old enough to summarise, or the model would not: carry on, and let
                // the endpoint say if the conversation really is too long.
                Err(CompactFailure::Compact(e)) => {
                    tracing::warn!(turn, error = %e, "could not compact the conversation");
                }
                Err(CompactFailure::End(end)) => return end,
            }
        }

        let mut compacted_for_overflow = false;
        let response = loop {
            let request = ModelRequest {
                instructions: instructions.clone(),
                input: state.input.clone(),
                tools: tool_specs.clone(),
                parallel_tool_calls: true,
            };
            match turn_recording_retries(model, &request, sink).await {
                Ok(response) => break response,
                Err(ModelError::ContextLengthExceeded { .. }) if !compacted_for_overflow => {
                    compacted_for_overflow = true;
                    match compaction
                        .run(state, config, sink, "context_length_exceeded", fixed_tokens)
                        .await
                    {
                        Ok(()) => continue,
                        Err(CompactFailure::End(end)) => return end,
                        Err(CompactFailure::Compact(e)) => {
                            return LoopEnd::Failed {
                                state: AttemptState::Failed,
                                reason: format!(
                                    "the conversation exceeds the model's context window and \
                                     could not be compacted: {e}"
                                ),
                            };
                        }
                    }
                }
                Err(e) => {
                    let after = if compacted_for_overflow { " (after compacting it)" } else { "" };
                    return LoopEnd::Failed {
                        state: AttemptState::Failed,
                        reason: format!("the model request failed{after}: {e}"),
                    };
                }
            }
        };
        let cost_usd = state.account(&response.usage, config.prices);
        sink.record(EventKind::TokenUsage {
            turn,
            usage: response.usage,
            total: state.usage,
            cost_usd,
            total_cost_usd: state.cost_usd,
        })
        .await;
        // Budgets hold to the turn: the turn that crosses one is the last, and its tool calls
        // are not carried out.
        if let Some(end) = check_budgets(config, state, sink).await {
            return end;
        }

        let turn_start = state.input.len();
        state.turn_starts.push(turn_start);
        let mut message = String::new();
        let mut called_tool = false;
        // The turn goes into the conversation as the model produced it, then the results of its
        // calls in order: one assistant message with several calls replays as exactly that
        // message on every wire, so providers' prompt caches (and vLLM's prefix cache) keep
        // hitting.
        state.input.extend(response.items.iter().cloned());
        for item in response.items {
            match item {
                Item::Message { role: Role::Assistant, text } => {
                    sink.record(EventKind::AgentMessage { text: text.clone() }).await;
                    if !message.is_empty() {
                        message.push_str("\n\n");
                    }
                    message.push_str(&text);
                }
                Item::Reasoning { summary, .. } if !summary.is_empty() => {
                    sink.record(EventKind::Reasoning { text: summary.join("\n\n") }).await;
                }
                Item::FunctionCall { call_id, name, arguments } => {
                    called_tool = true;
                    let output =
                        match handle_function(&ctx, &call_id, &name, &arguments, sink, state).await
                        {
                            Ok(output) => output,
                            Err(fatal) => return fatal,
                        };
                    state.repeats.observe(&name, &arguments, &output);
                    state.input.push(Item::FunctionCallOutput { call_id, output });
                }
                Item::CustomToolCall { call_id, name, input } => {
                    called_tool = true;
                    let output = if name == tools::APPLY_PATCH {
                        match run_patch(&ctx, &call_id, &input, None, sink).await {
                            Ok(output) => output,
                            Err(fatal) => return fatal,
                        }
                    } else {
                        tool_error(sink, &call_id, &name, unknown_tool(&name)).await
                    };
                    state.repeats.observe(&name, &input, &output);
                    state.input.push(Item::CustomToolCallOutput { call_id, output });
                }
                _ => {}
            }
        }
        // The endpoint counted the request and the answer; what the tools added is estimated.
        let measured = response.usage.input + response.usage.output;
        state.measured = (measured > 0).then(|| {
            let outputs: u64 = state.input[turn_start..]
                .iter()
                .filter(|item| {
                    matches!(
                        item,
                        Item::FunctionCallOutput { .. } | Item::CustomToolCallOutput { .. }
                    )
                })
                .map(estimate_item)
                .sum();
            (state.input.len(), measured + outputs)
        });
        if !called_tool && config.recover_tool_calls {
            match text_calls::run_text_calls(&ctx, turn, &message, &offered, sink, state).await {
                Ok(ran) => called_tool = ran,
                Err(end) => return end,
            }
        }
        if let Some(end) = check_repetition(state, sink).await {
            return end;
        }
        if !called_tool {
            if message.trim().is_empty() {
                return LoopEnd::Failed {
                    state: AttemptState::Failed,
                    reason: "the model ended its turn with neither a tool call nor a final message"
                        .into(),
                };
            }
            // A message that came while the model was answering would be lost on an attempt
            // that ends now: the model gets it and another turn instead.
            let late = inbox.take().await;
            if !late.is_empty() {
                deliver(late, &mut state.input, sink).await;
                continue;
            }
            let checks = if spec.finish_checks {
                gate::gate_checks(config, sandbox).await
            } else {
                Vec::new()
            };
            if checks.is_empty() {
                return LoopEnd::Finished { message, gate_failed: None };
            }
            gate_round += 1;
            let failed = match gate::run_checks(&ctx, &checks, gate_round, sink, state).await {
                Ok(failed) => failed,
                Err(end) => return end,
            };
            let rounds_left = (config.gate_rounds + 1).saturating_sub(gate_round);
            let names: Vec<String> = failed.iter().map(|(check, _)| check.clone()).collect();
            sink.record(EventKind::FinishChecks {
                round: gate_round,
                passed: failed.is_empty(),
                failed: names.clone(),
                rounds_left: if failed.is_empty() { 0 } else { rounds_left },
            })
            .await;
            if failed.is_empty() {
                return LoopEnd::Finished { message, gate_failed: None };
            }
            if rounds_left == 0 {
                return LoopEnd::Finished { message, gate_failed: Some(names.join(", ")) };
            }
            state.input.push(Item::Message {
                role: Role::User,
                text: gate::failure_message(&failed, rounds_left),
            });
        }
    }
}

/// The conversation's head: for a new attempt the environment with the AGENTS.md chain and the
/// task; for a follow-up the conversation it continues and the follow-up request. Compaction
/// always keeps the head, so a follow-up's compactions summarise only its own turns (a parent
/// that filled the context window leaves it little room; its own compactions made it smaller).
async fn start_conversation(
    spec: &AttemptSpec,
    sandbox: &dyn Sandbox,
    config: &AgentConfig,
    sink: &mut dyn EventSink,
    state: &mut LoopState,
) -> Result<(), LoopEnd> {
    if let Some(conversation) = &spec.continues {
        state.input = conversation.items.clone();
        state.input.push(Item::Message { role: Role::User, text: followup_message(&spec.prompt) });
        state.head_len = state.input.len();
        return Ok(());
    }
    let chain = match load_chain(sandbox, &spec.workdir, config.instructions_budget).await {
        Ok(chain) => chain,
        Err(e) => {
            return Err(LoopEnd::Failed {
                state: AttemptState::Failed,
                reason: format!("could not read AGENTS.md: {e}"),
            });
        }
    };
    if !chain.files.is_empty() {
        sink.record(EventKind::InstructionsLoaded {
            files: chain.files.clone(),
            bytes: chain.text.len() as u64,
            truncated: chain.truncated,
        })
        .await;
    }
    state.input.push(Item::Message {
        role: Role::Developer,
        text: context_message(sandbox.workspace_dir(), &spec.workdir, &chain.text),
    });
    state.input.push(Item::Message { role: Role::User, text: spec.prompt.clone() });
    state.head_len = state.input.len();
    Ok(())
}

/// Records a `limit_reached` event and ends the loop when a budget is exceeded.
async fn check_budgets(
    config: &AgentConfig,
    state: &LoopState,
    sink: &mut dyn EventSink,
) -> Option<LoopEnd> {
    let (limit, detail) = budget_exceeded(config, state)?;
    sink.record(EventKind::LimitReached { limit: limit.into(), detail: detail.clone() }).await;
    Some(LoopEnd::Failed { state: AttemptState::Failed, reason: detail })
}

/// Steers the model when its last calls repeat; records a `limit_reached` event and ends the
/// loop when it went on repeating after that.
async fn check_repetition(state: &mut LoopState, sink: &mut dyn EventSink) -> Option<LoopEnd> {
    match state.repeats.verdict() {
        Verdict::Fine => None,
        Verdict::Steer(text) => {
            state.input.push(Item::Message { role: Role::User, text });
            None
        }
        Verdict::Stop(detail) => {
            let limit = "repetition".to_string();
            sink.record(EventKind::LimitReached { limit, detail: detail.clone() }).await;
            let reason = format!("repetition: {detail}");
            Some(LoopEnd::Failed { state: AttemptState::Failed, reason })
        }
    }
}

/// The model and what it is offered, for a compaction.
struct Compaction<'a> {
    model: &'a dyn Model,
    instructions: &'a str,
    tools: &'a [ToolSpec],
}

enum CompactFailure {
    /// The conversation stays as it was.
    Compact(CompactError),
    /// The attempt must end (a budget ran out paying for the summary).
    End(LoopEnd),
}

impl Compaction<'_> {
    /// Compacts `state`'s conversation and records a `context_compacted` event.
    async fn run(
        &self,
        state: &mut LoopState,
        config: &AgentConfig,
        sink: &mut dyn EventSink,
        trigger: &str,
        fixed_tokens: u64,
    ) -> Result<(), CompactFailure> {
        let tokens_before = state.conversation_tokens(fixed_tokens);
        let result = compact(
            CompactRequest {
                model: self.model,
                instructions: self.instructions,
                tools: self.tools,
                items: &state.input,
                head_len: state.head_len,
                turn_starts: &state.turn_starts,
                // At most a quarter of what is there, so a compaction always frees room.
                keep_budget: config.keep_budget().min(tokens_before / 4),
                plan: &state.plan,
            },
            sink,
        )
        .await;
        let compacted = result.map_err(CompactFailure::Compact)?;
        state.account(&compacted.usage, config.prices);
        state.input = compacted.items;
        state.turn_starts = compacted.turn_starts;
        state.measured = None;
        state.repeats.forget();
        sink.record(EventKind::ContextCompacted {
            turn: state.turns,
            trigger: trigger.into(),
            tokens_before,
            tokens_after: state.conversation_tokens(fixed_tokens),
            turns_summarized: compacted.turns_summarized,
            turns_kept: compacted.turns_kept,
            turns_dropped: compacted.turns_dropped,
            summary: compacted.summary,
            usage: compacted.usage,
        })
        .await;
        match check_budgets(config, state, sink).await {
            Some(end) => Err(CompactFailure::End(end)),
            None => Ok(()),
        }
    }
}

/// The budget the attempt has gone over, if any: `(limit, detail)`.
fn budget_exceeded(config: &AgentConfig, state: &LoopState) -> Option<(&'static str, String)> {
    let tokens = state.usage.input + state.usage.output;
    if let Some(budget) = config.token_budget.filter(|b| tokens > *b) {
        return Some((
            "token_budget",
            format!(
                "the attempt used {tokens} tokens in {} turns, over its budget of {budget}",
                state.turns
            ),
        ));
    }
    let cost = state.cost_usd.unwrap_or(0.0);
    if let Some(budget) = config.cost_budget_usd.filter(|b| cost > *b) {
        return Some((
            "cost_budget",
            format!(
                "the attempt cost ${cost:.4} in {} turns, over its budget of ${budget:.2}",
                state.turns
            ),
        ));
    }
    None
}
