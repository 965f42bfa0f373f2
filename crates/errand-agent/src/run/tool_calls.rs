//! Carrying out the model's tool calls: `shell` in the sandbox with its output recorded as
//! numbered chunks, `apply_patch` through the sandbox's patch engine, `update_plan` into the
//! attempt's state. A call that cannot be carried out (unknown tool, bad arguments, a workdir
//! that does not exist) becomes a `tool_error` event and text the model can act on; only a
//! broken sandbox ends the attempt.

use std::time::Instant;

use errand_sandbox::{ExecRequest, SandboxError};
use tokio::sync::mpsc;

use super::*;
use crate::malformed::unknown_tool;
use crate::output::OutputRecorder;
use crate::tools::{PatchArgs, PlanArgs, ShellArgs, parse_args, patch_in_shell_call};
use crate::truncate::truncate_for_model;

/// Environment for every command the agent runs. Pagers would wait for a keypress that never
/// comes. Python's bytecode cache keys on the source's mtime in whole seconds (and its size), so an
/// edit that keeps the size, made within a second of a test run, would run stale code.
const COMMAND_ENV: &[(&str, &str)] = &[
    ("PAGER", "cat"),
    ("GIT_PAGER", "cat"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("ERRAND_SANDBOX", "1"),
];

pub(super) async fn tool_error(
    sink: &mut dyn EventSink,
    call_id: &str,
    tool: &str,
    message: String,
) -> String {
    sink.record(EventKind::ToolError {
        call_id: call_id.into(),
        tool: tool.into(),
        message: message.clone(),
    })
    .await;
    message
}

pub(super) async fn handle_function(
    ctx: &ToolContext<'_>,
    call_id: &str,
    name: &str,
    arguments: &str,
    sink: &mut dyn EventSink,
    state: &mut LoopState,
) -> Result<String, LoopEnd> {
    match name {
        tools::SHELL => {
            let args: ShellArgs = match parse_args(name, arguments) {
                Ok(args) => args,
                Err(message) => return Ok(tool_error(sink, call_id, name, message).await),
            };
            if args.command.is_empty() {
                let message = crate::malformed::empty_command();
                return Ok(tool_error(sink, call_id, name, message).await);
            }
            if let Some(patch) = patch_in_shell_call(&args.command) {
                return run_patch(ctx, call_id, &patch, args.workdir.as_deref(), sink).await;
            }
            run_shell(ctx, call_id, args, sink, state).await
        }
        tools::APPLY_PATCH => match parse_args::<PatchArgs>(name, arguments) {
            Ok(args) => run_patch(ctx, call_id, &args.input, None, sink).await,
            Err(message) => Ok(tool_error(sink, call_id, name, message).await),
        },
        tools::UPDATE_PLAN => match parse_args::<PlanArgs>(name, arguments) {
            Ok(args) => {
                let (explanation, plan) = args.into_items();
                state.plan = plan.clone();
                sink.record(EventKind::PlanUpdated { explanation, plan }).await;
                Ok("Plan updated.".into())
            }
            Err(message) => Ok(tool_error(sink, call_id, name, message).await),
        },
        other => Ok(tool_error(sink, call_id, other, unknown_tool(other)).await),
    }
}

/// The workdir a tool call names, relative to the repository root, or absolute in the sandbox.
fn resolve_workdir(spec: &AttemptSpec, requested: Option<&str>) -> String {
    match requested {
        Some(dir) if dir.starts_with('/') => dir.to_string(),
        Some(dir) if !spec.workdir.is_empty() => format!("{}/{dir}", spec.workdir),
        Some(dir) => dir.to_string(),
        None => spec.workdir.clone(),
    }
}

/// A sandbox error the model can act on (bad workdir) goes back to it; others end the attempt.
fn sandbox_failure(e: SandboxError) -> Result<String, LoopEnd> {
    match e {
        SandboxError::NoSuchWorkdir(_) | SandboxError::OutsideWorkspace(_) => Ok(e.to_string()),
        other => Err(LoopEnd::Failed {
            state: AttemptState::Failed,
            reason: format!("the sandbox failed: {other}"),
        }),
    }
}

pub(super) async fn run_patch(
    ctx: &ToolContext<'_>,
    call_id: &str,
    patch: &str,
    workdir: Option<&str>,
    sink: &mut dyn EventSink,
) -> Result<String, LoopEnd> {
    let workdir = resolve_workdir(ctx.spec, workdir);
    match ctx.sandbox.apply_patch(patch, &workdir).await {
        Ok(outcome) => {
            sink.record(EventKind::PatchApplied {
                call_id: call_id.into(),
                success: outcome.success,
                changes: outcome.changes,
                output: outcome.output.clone(),
            })
            .await;
            Ok(outcome.output)
        }
        Err(e) => {
            let output = sandbox_failure(e)?;
            Ok(tool_error(sink, call_id, tools::APPLY_PATCH, output).await)
        }
    }
}

pub(super) async fn run_shell(
    ctx: &ToolContext<'_>,
    call_id: &str,
    args: ShellArgs,
    sink: &mut dyn EventSink,
    state: &mut LoopState,
) -> Result<String, LoopEnd> {
    let ToolContext { spec, sandbox, config } = *ctx;
    let workdir = resolve_workdir(spec, args.workdir.as_deref());
    let timeout = args
        .timeout_ms
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .map(|ms| Duration::from_millis(ms as u64))
        .unwrap_or(config.command_timeout)
        .min(config.max_command_timeout);
    let started = sink
        .record(EventKind::CommandStarted {
            call_id: call_id.into(),
            command: args.command.clone(),
            workdir: workdir.clone(),
            timeout_ms: timeout.as_millis() as u64,
        })
        .await;
    let env = COMMAND_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let request = ExecRequest { command: args.command.clone(), workdir, timeout, env, stdin: None };

    // The sandbox hands output to a synchronous callback; events are recorded asynchronously, so
    // chunks cross a channel and are recorded while the command still runs.
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut recorder = OutputRecorder::new(config.max_output_bytes);
    let clock = Instant::now();
    let exec = async move {
        let mut on_output = move |bytes: &[u8]| {
            let _ = tx.send(bytes.to_vec());
        };
        sandbox.exec(request, &mut on_output).await
    };
    let record = async {
        while let Some(bytes) = rx.recv().await {
            if let Some((first_line, text)) = recorder.push(&bytes) {
                sink.record(EventKind::CommandOutput { call_id: call_id.into(), first_line, text })
                    .await;
            }
        }
        if let Some((first_line, text)) = recorder.finish() {
            sink.record(EventKind::CommandOutput { call_id: call_id.into(), first_line, text })
                .await;
        }
    };
    let (result, ()) = tokio::join!(exec, record);
    let duration = clock.elapsed();

    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            let output = sandbox_failure(e)?;
            sink.record(EventKind::CommandFinished {
                call_id: call_id.into(),
                exit_code: None,
                timed_out: false,
                duration_ms: duration.as_millis() as u64,
                output_lines: 0,
                output_bytes: 0,
                dropped_bytes: 0,
            })
            .await;
            return Ok(output);
        }
    };
    sink.record(EventKind::CommandFinished {
        call_id: call_id.into(),
        exit_code: outcome.exit_code,
        timed_out: outcome.timed_out,
        duration_ms: outcome.duration.as_millis() as u64,
        output_lines: recorder.lines(),
        output_bytes: recorder.recorded_bytes(),
        dropped_bytes: recorder.dropped_bytes(),
    })
    .await;
    state.commands.push(CommandRecord {
        event: started.seq,
        command: args.command,
        exit_code: outcome.exit_code,
        output: recorder.text().to_string(),
        output_lines: recorder.lines(),
        gate: false,
    });

    let status = match (outcome.exit_code, outcome.timed_out, outcome.signal) {
        (_, true, _) => format!("none (killed after the {} ms timeout)", timeout.as_millis()),
        (Some(code), _, _) => code.to_string(),
        (None, _, Some(signal)) => format!("none (killed by signal {signal})"),
        (None, _, None) => "none".into(),
    };
    let mut text = format!(
        "Exit code: {status}\nWall time: {:.1} seconds\nLog: log:{} ({} lines)\n",
        outcome.duration.as_secs_f64(),
        started.seq,
        recorder.lines()
    );
    if recorder.dropped_bytes() > 0 {
        text.push_str(&format!(
            "Note: {} more bytes of output were discarded (over the {} byte limit)\n",
            recorder.dropped_bytes(),
            config.max_output_bytes
        ));
    }
    if let Some(hit) = &outcome.limit_hit {
        let (limit, detail) = (hit.limit.clone(), hit.detail.clone());
        sink.record(EventKind::LimitReached { limit, detail }).await;
        text.push_str(&format!("Note: {}\n", hit.detail));
    }
    text.push_str("Output:\n");
    text.push_str(&truncate_for_model(
        recorder.text(),
        config.model_output_lines,
        config.model_output_bytes,
    ));
    Ok(text)
}
