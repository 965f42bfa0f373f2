//! An environment's preparation as events: the sandbox reports setup and maintenance runs through
//! a synchronous callback; this turns them into `setup_*` events whose output chunks end on line
//! boundaries, and records them in the attempt's sink as they arrive.

use std::path::Path;

use std::collections::BTreeMap;

use errand_agent::EventSink;
use errand_protocol::{Event, EventKind};
use errand_sandbox::{
    EnvironmentSpec, LocalSandbox, LocalSandboxConfig, PrepareError, PrepareOptions, Redactor,
    SetupEvent, SnapshotRef,
};
use errand_store::NewEnvironmentLog;

/// A stored setup log keeps this much of the end of the output (where failures are).
const MAX_LOG_BYTES: usize = 256 << 10;

/// The environment's logs of the setup and maintenance runs among `events` (one per run, in
/// order), each redacted once more with the environment's `secrets` and cut to its last
/// [`MAX_LOG_BYTES`]: what `errand exec` and the workers store with
/// `Store::add_environment_log`.
pub fn environment_logs(
    events: &[Event],
    secrets: &BTreeMap<String, String>,
) -> Vec<NewEnvironmentLog> {
    setup_logs(events)
        .into_iter()
        .map(|log| {
            let content = Redactor::redact_all(secrets, log.content.as_bytes());
            NewEnvironmentLog { content: tail(&String::from_utf8_lossy(&content)), ..log }
        })
        .collect()
}

/// Prepares the environment, recording the setup log as events as it arrives (the sandbox calls
/// back synchronously; the sink is async, so the events travel through a channel). Every event
/// recorded is also pushed to `recorded`, for the environment's own logs.
pub(crate) async fn prepare_recorded(
    config: &LocalSandboxConfig,
    repo: &Path,
    commit: &str,
    spec: &EnvironmentSpec,
    options: &PrepareOptions,
    sink: &mut dyn EventSink,
    recorded: &mut Vec<Event>,
) -> Result<Option<SnapshotRef>, PrepareError> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<EventKind>();
    let preparing = async move {
        let mut lines = SetupLines::default();
        let mut forward = |event: SetupEvent<'_>| {
            for kind in lines.events(event) {
                let _ = sender.send(kind);
            }
        };
        let result =
            LocalSandbox::prepare_environment(config, repo, commit, spec, options, &mut forward)
                .await;
        if let Ok(Some(snapshot)) = &result {
            let _ = sender.send(EventKind::SnapshotReady {
                snapshot: snapshot.id().to_string(),
                reused: snapshot.reused(),
                maintenance_ran: snapshot.maintenance_ran(),
            });
        }
        result
    };
    let recording = async {
        while let Some(kind) = receiver.recv().await {
            recorded.push(sink.record(kind).await);
        }
    };
    let (result, ()) = tokio::join!(preparing, recording);
    result
}

/// Turns the sandbox's setup callbacks into events whose output chunks end on line boundaries.
#[derive(Default)]
struct SetupLines {
    pending: Vec<u8>,
}

impl SetupLines {
    fn events(&mut self, event: SetupEvent<'_>) -> Vec<EventKind> {
        match event {
            SetupEvent::Started { phase, snapshot } => vec![EventKind::SetupStarted {
                phase: phase.name().into(),
                snapshot: snapshot.into(),
            }],
            SetupEvent::Output { phase, bytes } => {
                self.pending.extend_from_slice(bytes);
                match self.pending.iter().rposition(|&b| b == b'\n') {
                    Some(end) => {
                        let lines: Vec<u8> = self.pending.drain(..=end).collect();
                        vec![EventKind::SetupOutput {
                            phase: phase.name().into(),
                            text: String::from_utf8_lossy(&lines).into_owned(),
                        }]
                    }
                    None => Vec::new(),
                }
            }
            SetupEvent::Finished { phase, exit_code, duration } => {
                let mut events = Vec::new();
                if !self.pending.is_empty() {
                    let rest = std::mem::take(&mut self.pending);
                    events.push(EventKind::SetupOutput {
                        phase: phase.name().into(),
                        text: String::from_utf8_lossy(&rest).into_owned(),
                    });
                }
                events.push(EventKind::SetupFinished {
                    phase: phase.name().into(),
                    exit_code,
                    duration_ms: duration.as_millis() as u64,
                });
                events
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_output_events_end_on_line_boundaries() {
        use errand_sandbox::ScriptPhase;
        let mut lines = SetupLines::default();
        let phase = ScriptPhase::Setup;
        assert!(lines.events(SetupEvent::Output { phase, bytes: b"par" }).is_empty());
        let events = lines.events(SetupEvent::Output { phase, bytes: b"tial\nnext" });
        assert_eq!(
            events,
            [EventKind::SetupOutput { phase: "setup".into(), text: "partial\n".into() }]
        );
        let events = lines.events(SetupEvent::Finished {
            phase,
            exit_code: Some(0),
            duration: std::time::Duration::from_millis(5),
        });
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0],
            EventKind::SetupOutput { phase: "setup".into(), text: "next".into() }
        );
    }
}

/// One log per setup or maintenance run in the events, in order. A run whose end is missing (the
/// preparation failed around it) is kept with no exit code.
fn setup_logs(events: &[Event]) -> Vec<NewEnvironmentLog> {
    let mut logs = Vec::new();
    let mut current: Option<NewEnvironmentLog> = None;
    for event in events {
        match &event.kind {
            EventKind::SetupStarted { phase, snapshot } => {
                logs.extend(current.take());
                current = Some(NewEnvironmentLog {
                    phase: phase.clone(),
                    snapshot: Some(snapshot.clone()),
                    exit_code: None,
                    duration_ms: 0,
                    content: String::new(),
                });
            }
            EventKind::SetupOutput { text, .. } => {
                if let Some(log) = &mut current {
                    log.content.push_str(text);
                }
            }
            EventKind::SetupFinished { exit_code, duration_ms, .. } => {
                if let Some(mut log) = current.take() {
                    log.exit_code = *exit_code;
                    log.duration_ms = i64::try_from(*duration_ms).unwrap_or(i64::MAX);
                    logs.push(log);
                }
            }
            _ => {}
        }
    }
    logs.extend(current);
    logs
}

/// The last [`MAX_LOG_BYTES`] of a log, cut at a line start, saying how much was left out.
fn tail(content: &str) -> String {
    if content.len() <= MAX_LOG_BYTES {
        return content.to_string();
    }
    let mut start = content.len() - MAX_LOG_BYTES;
    while !content.is_char_boundary(start) {
        start += 1;
    }
    let start = content[start..].find('\n').map_or(start, |n| start + n + 1);
    format!("[… {start} earlier bytes not kept]\n{}", &content[start..])
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn setup_runs_become_logs() {
        let event = |kind| Event { seq: 0, at_ms: 0, kind };
        let events = [
            event(EventKind::SetupStarted { phase: "setup".into(), snapshot: "s1".into() }),
            event(EventKind::SetupOutput { phase: "setup".into(), text: "a\n".into() }),
            event(EventKind::SetupOutput { phase: "setup".into(), text: "b\n".into() }),
            event(EventKind::SetupFinished {
                phase: "setup".into(),
                exit_code: Some(3),
                duration_ms: 12,
            }),
            event(EventKind::SetupStarted { phase: "maintenance".into(), snapshot: "s1".into() }),
        ];
        let logs = setup_logs(&events);
        assert_eq!(logs.len(), 2);
        assert_eq!((logs[0].content.as_str(), logs[0].exit_code), ("a\nb\n", Some(3)));
        assert_eq!((logs[1].phase.as_str(), logs[1].exit_code), ("maintenance", None));
    }

    #[test]
    fn long_logs_keep_their_end_and_secrets_are_redacted() {
        let long = "line\n".repeat(MAX_LOG_BYTES / 5 + 10);
        let kept = tail(&long);
        assert!(kept.starts_with("[… 50 earlier bytes not kept]\nline\n"), "{}", &kept[..40]);
        assert_eq!(tail("short"), "short");
        let event = |kind| Event { seq: 0, at_ms: 0, kind };
        let events = [
            event(EventKind::SetupStarted { phase: "setup".into(), snapshot: "s1".into() }),
            event(EventKind::SetupOutput {
                phase: "setup".into(),
                text: "token hunter2hunter2\n".into(),
            }),
        ];
        let secrets = BTreeMap::from([("TOKEN".to_string(), "hunter2hunter2".to_string())]);
        let logs = environment_logs(&events, &secrets);
        assert!(!logs[0].content.contains("hunter2hunter2"), "{}", logs[0].content);
    }
}
