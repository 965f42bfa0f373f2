//! An attempt's egress: the proxy on its socket, what each agent command adds to bwrap, and the
//! proxy's records turned into work-log events.
//!
//! Events leave through [`crate::Sandbox::drain_events`]: the sandbox cannot write to the work
//! log (it knows nothing of stores or sinks), and the agent must not know proxies exist, so
//! whoever records the attempt's events (`errand exec`, the worker) drains the sandbox before
//! each event it records. [`AttemptEgress::settle`] after each command makes the records of the
//! connections a command made available before its `command_finished` is recorded.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use errand_protocol::{EgressDecision as Decision, EventKind};

use super::{
    EgressActivity, EgressDecision, EgressPolicy, EgressProxy, EgressRecord, Methods,
    SandboxEgress, sandbox_egress,
};
use crate::SandboxError;

/// The socket's name in the attempt's directory: `exec.rs` mounts that directory at its stage
/// before bwrap starts, so bwrap (already the sandbox's uid) reaches the socket even when the
/// data directory lies below one only root may enter.
pub(crate) const SOCKET_NAME: &str = "egress.sock";
/// How long, after a command ends, its connections get to end and report. They normally end
/// at once (the bridge dies with the command's pid namespace); an origin that holds a tunnel
/// open costs at most this, and its record then comes with a later event.
const SETTLE: Duration = Duration::from_secs(1);

/// An attempt's running proxy and the additions for its agent commands.
pub(crate) struct AttemptEgress {
    /// `None` once shut down. Locked only to read records, never across an await.
    proxy: Mutex<Option<EgressProxy>>,
    activity: EgressActivity,
    socket: PathBuf,
    pub(crate) additions: SandboxEgress,
    /// The `network: …` line of the sandbox's isolation facts.
    pub(crate) isolation: String,
    /// Records the proxy dropped that an event already reported.
    reported_dropped: AtomicU64,
}

impl std::fmt::Debug for AttemptEgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptEgress").field("socket", &self.socket).finish_non_exhaustive()
    }
}

impl AttemptEgress {
    /// Starts the proxy on `<attempt_root>/egress.sock`; `stage` is where `exec.rs` shows the
    /// attempt's directory to bwrap and `helper` the `errand` binary inside the sandbox.
    pub(crate) fn start(
        policy: EgressPolicy,
        attempt_root: &Path,
        stage: &Path,
        helper: &str,
    ) -> Result<AttemptEgress, SandboxError> {
        let mut facts = vec![format!("{} allowed domains", policy.allow.len())];
        if policy.methods == Methods::ReadOnly {
            facts.push("read-only".into());
        }
        if policy.allow_private {
            facts.push("private addresses allowed".into());
        }
        let socket = attempt_root.join(SOCKET_NAME);
        let proxy = EgressProxy::start(policy, &socket).map_err(|error| {
            // sockaddr_un holds 108 bytes: the one limit a long data_dir can hit here.
            SandboxError::Setup(format!(
                "{error} (a unix socket path has at most 107 bytes; a shorter data_dir helps if \
                 this one is long)"
            ))
        })?;
        Ok(AttemptEgress {
            activity: proxy.activity(),
            proxy: Mutex::new(Some(proxy)),
            additions: sandbox_egress(&stage.join(SOCKET_NAME), helper),
            isolation: format!("network: egress proxy ({})", facts.join(", ")),
            socket,
            reported_dropped: AtomicU64::new(0),
        })
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Waits (bounded) for open connections to end and report (see [`SETTLE`]).
    pub(crate) async fn settle(&self) {
        if self.activity.open() > 0 && !self.activity.settle(SETTLE).await {
            tracing::debug!("egress: connections still open {SETTLE:?} after a command ended");
        }
    }

    /// The records that arrived since the last call, as events, oldest first.
    pub(crate) fn drain(&self) -> Vec<EventKind> {
        let mut events = Vec::new();
        let Ok(mut proxy) = self.proxy.lock() else { return events };
        let Some(proxy) = proxy.as_mut() else { return events };
        while let Ok(record) = proxy.records().try_recv() {
            events.extend(event(record));
        }
        let dropped = proxy.dropped_records();
        let reported = self.reported_dropped.swap(dropped, Ordering::Relaxed);
        if dropped > reported {
            events.push(EventKind::LimitReached {
                limit: "egress_records".into(),
                detail: format!(
                    "{} connections through the egress proxy went unlogged: too many at once",
                    dropped - reported
                ),
            });
        }
        events
    }

    /// Stops the proxy (ending open connections) and removes its socket.
    pub(crate) async fn shutdown(self) {
        let proxy = self.proxy.into_inner().ok().flatten();
        if let Some(proxy) = proxy {
            proxy.shutdown().await;
        }
    }
}

/// One record as an event; `None` for a connection closed before it asked for anything (a port
/// probe, or a command that died mid-request), which says nothing about where the agent went.
fn event(record: EgressRecord) -> Option<EventKind> {
    let (decision, address, status, reason) = match record.decision {
        EgressDecision::Allowed { address } => {
            (Decision::Allowed, Some(address.to_string()), None, None)
        }
        EgressDecision::Refused { status: 0, .. } => return None,
        EgressDecision::Refused { status, reason } => {
            (Decision::Denied, None, Some(status), Some(reason))
        }
        EgressDecision::Failed { status, reason } => {
            (Decision::Failed, None, (status != 0).then_some(status), Some(reason))
        }
    };
    Some(EventKind::EgressConnection {
        host: record.host,
        port: record.port,
        method: record.method,
        decision,
        address,
        status,
        reason,
        bytes_sent: record.bytes_sent,
        bytes_received: record.bytes_received,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(decision: EgressDecision) -> EgressRecord {
        EgressRecord {
            host: "pypi.org".into(),
            port: 443,
            method: "CONNECT".into(),
            decision,
            bytes_sent: 3,
            bytes_received: 4,
        }
    }

    #[test]
    fn records_become_events_and_empty_connections_none() {
        let allowed =
            event(record(EgressDecision::Allowed { address: "1.2.3.4:443".parse().unwrap() }));
        assert_eq!(
            allowed,
            Some(EventKind::EgressConnection {
                host: "pypi.org".into(),
                port: 443,
                method: "CONNECT".into(),
                decision: Decision::Allowed,
                address: Some("1.2.3.4:443".into()),
                status: None,
                reason: None,
                bytes_sent: 3,
                bytes_received: 4,
            })
        );
        let denied = event(record(EgressDecision::Refused { status: 403, reason: "no".into() }));
        assert!(matches!(
            denied,
            Some(EventKind::EgressConnection {
                decision: Decision::Denied, status: Some(403), reason: Some(ref r), ..
            }) if r == "no"
        ));
        let failed = event(record(EgressDecision::Failed { status: 502, reason: "down".into() }));
        assert!(matches!(
            failed,
            Some(EventKind::EgressConnection { decision: Decision::Failed, status: Some(502), .. })
        ));
        assert_eq!(event(record(EgressDecision::Refused { status: 0, reason: "x".into() })), None);
    }
}
