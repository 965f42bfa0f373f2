//! One attempt's events to many SSE clients: the delay from an event being stored to each
//! client reading it.
//!
//! The service starts in a scratch directory (store, API on loopback; no worker). Per round, a
//! task with one attempt is created through `POST /api/tasks`, leased and set running directly
//! in the store, and the clients connect to `GET /api/attempts/{id}/events/stream` over loopback
//! TCP. Once every client has read a first, untimed event, events are appended through the
//! API's store (the [`crate::api::NotifyingStore`] in-process workers append through) one every
//! `interval`; the delay of an event to a client runs from the append returning (the event is
//! stored) to the client reading the frame from its socket. Then the attempt succeeds and its
//! `finished` event ends every stream. A client is complete when it read every event of the log
//! (1, 2, 3… with no gap or duplicate) and the stream ended cleanly. The baseline is the same
//! round with one client, in the same run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use errand_agent::bench::Percentiles;
use errand_protocol::{AttemptOutcome, AttemptState, EventKind};
use tokio::task::JoinSet;

use super::attempts::generated_repo;
use super::{BenchService, http};

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// Where the store and a small repository go; removed by the caller.
    pub scratch: PathBuf,
    pub clients: usize,
    /// Timed events per round.
    pub events: usize,
    /// Time between two timed events.
    pub interval: Duration,
    /// Give up on a round after this long.
    pub timeout: Duration,
}

/// One round: `clients` clients on one attempt.
#[derive(Debug, Clone)]
pub struct FanoutRound {
    pub clients: usize,
    pub events: usize,
    /// Every (timed event, client) pair: from the append returning to the client reading it.
    pub delay: Percentiles,
    pub deliveries: usize,
    /// Clients that read every event of the log exactly once, in order, and saw the stream end.
    pub complete_clients: usize,
    /// How long storing one event took (the append call), for scale.
    pub append: Percentiles,
    /// From starting to connect the clients to every one of them reading the first event.
    pub connected_in: Duration,
    /// The first few problems of clients that were not complete.
    pub problems: Vec<String>,
}

/// What [`fanout`] measured.
#[derive(Debug, Clone)]
pub struct FanoutBench {
    /// The baseline: one client.
    pub one: FanoutRound,
    pub many: FanoutRound,
}

/// Runs the baseline round (one client), then the round with `options.clients` clients.
pub async fn fanout(options: &FanoutOptions) -> Result<FanoutBench, String> {
    let repo = options.scratch.join("repo");
    generated_repo(&repo).await?;
    let service = BenchService::start(&options.scratch).await?;
    let rounds = async {
        let one = round(&service, &repo, 1, options).await?;
        let many = round(&service, &repo, options.clients.max(1), options).await?;
        Ok(FanoutBench { one, many })
    }
    .await;
    service.stop().await;
    rounds
}

async fn round(
    service: &BenchService,
    repo: &std::path::Path,
    clients: usize,
    options: &FanoutOptions,
) -> Result<FanoutRound, String> {
    let store = service.state.store.clone();
    let err = |e: errand_store::StoreError| e.to_string();
    let task = service.create_task(repo, 1).await?;
    let attempt = task.attempts.first().ok_or("the task has no attempt")?.id;
    let leased = store.lease_next("bench-fanout", Duration::from_secs(3600)).await.map_err(err)?;
    match leased {
        Some((leased, _)) if leased.id == attempt => {}
        _ => return Err(format!("expected to lease {attempt}, the only queued attempt")),
    }
    store.transition(attempt, AttemptState::Running, None).await.map_err(err)?;

    let path = Arc::new(format!("/api/attempts/{attempt}/events/stream"));
    let token = Arc::new(service.token.clone());
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
    let connecting = Instant::now();
    let mut followers = JoinSet::new();
    for client in 0..clients {
        let (path, token, seen, addr) = (path.clone(), token.clone(), seen.clone(), service.addr);
        followers.spawn(async move {
            (client, http::follow_sse(addr, &path, &token, &seen[client]).await)
        });
    }
    let message = |text: String| EventKind::AgentMessage { text };
    let first = store.append_event(attempt, &message("first".into())).await.map_err(err)?;
    let deadline = Instant::now() + options.timeout;
    while seen.iter().any(|seq| seq.load(Ordering::Acquire) < first.seq) {
        if Instant::now() > deadline || followers.try_join_next().is_some() {
            // A client that already ended has failed; the rest would wait forever.
            followers.abort_all();
            let caught_up = seen.iter().filter(|s| s.load(Ordering::Acquire) >= first.seq).count();
            return Err(format!(
                "only {caught_up} of {clients} clients read the first event; is the limit on \
                 open files high enough (`ulimit -n`)?"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let connected_in = connecting.elapsed();

    let mut stored = HashMap::with_capacity(options.events);
    let mut append_times = Vec::with_capacity(options.events);
    for n in 0..options.events {
        tokio::time::sleep(options.interval).await;
        // About what a line of agent commentary weighs.
        let text = format!("event {n}: {}", "the agent explains what it does next. ".repeat(4));
        let before = Instant::now();
        let event = store.append_event(attempt, &message(text)).await.map_err(err)?;
        let at = Instant::now();
        stored.insert(event.seq, at);
        append_times.push(at - before);
    }
    store.transition(attempt, AttemptState::Succeeded, Some("bench")).await.map_err(err)?;
    let outcome = AttemptOutcome { state: AttemptState::Succeeded, reason: "bench".into() };
    let last = store.append_event(attempt, &EventKind::Finished { outcome }).await.map_err(err)?;

    let mut delays = Vec::with_capacity(options.events * clients);
    let mut complete_clients = 0;
    let mut problems = Vec::new();
    let joined = tokio::time::timeout(options.timeout, async {
        while let Some(joined) = followers.join_next().await {
            let (client, log) = joined.map_err(|e| format!("a client task failed: {e}"))?;
            let log = match log {
                Ok(log) => log,
                Err(e) => {
                    problems.push(format!("client {client}: {e}"));
                    continue;
                }
            };
            for (seq, read_at) in &log.received {
                if let Some(stored_at) = stored.get(seq) {
                    delays.push(read_at.saturating_duration_since(*stored_at));
                }
            }
            let seqs: Vec<u64> = log.received.iter().map(|(seq, _)| *seq).collect();
            if log.ended && seqs.iter().copied().eq(1..=last.seq) {
                complete_clients += 1;
            } else if problems.len() < 5 {
                problems.push(format!(
                    "client {client}: read {} events of {} (ended cleanly: {})",
                    seqs.len(),
                    last.seq,
                    log.ended
                ));
            }
        }
        Ok::<_, String>(())
    })
    .await;
    match joined {
        Ok(result) => result?,
        Err(_) => {
            followers.abort_all();
            return Err(format!("the streams did not end within {} s", options.timeout.as_secs()));
        }
    }
    let none = || format!("no event reached any of the {clients} clients");
    Ok(FanoutRound {
        clients,
        events: options.events,
        deliveries: delays.len(),
        delay: Percentiles::of(&delays).ok_or_else(none)?,
        complete_clients,
        append: Percentiles::of(&append_times).ok_or("no events were appended")?,
        connected_in,
        problems,
    })
}
