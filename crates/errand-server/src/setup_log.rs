//! An environment's preparation as events: the sandbox reports setup and maintenance runs through
//! a synchronous callback; this turns them into `setup_*` events whose output chunks end on line
//! boundaries, and records them in the attempt's sink as they arrive.

use std::path::Path;

use errand_agent::EventSink;
use errand_protocol::{Event, EventKind};
use errand_sandbox::{
    EnvironmentSpec, LocalSandbox, LocalSandboxConfig, PrepareError, PrepareOptions, SetupEvent,
    SnapshotRef,
};

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
