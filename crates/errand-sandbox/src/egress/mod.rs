//! Errand's egress proxy: the agent phase's only way out, to the domains an environment allows.
//!
//! The agent phase has no network (design: "Two phases, two network policies"). An environment
//! may allow a list of domains; then each command of the attempt reaches them through:
//!
//! ```text
//!  sandbox (netns with only lo)                      host
//!  curl ── HTTPS_PROXY=http://127.0.0.1:3128 ──▶ bridge ══ unix socket ══▶ EgressProxy ──▶ origin
//!          (errand sandbox-bridge, in the sandbox)        (bind-mounted)   (policy, DNS, connect)
//! ```
//!
//! - [`policy`]: [`EgressPolicy`]: allowed domains (`example.com`, `*.example.com`, optional
//!   `:port`), methods ([`Methods::ReadOnly`] = GET/HEAD/OPTIONS over plain HTTP, and no
//!   CONNECT at all, since inside TLS the proxy cannot see the method), `allow_private`.
//! - [`addr`]: which addresses count as private, loopback, link-local, CGNAT and so on.
//! - `http.rs`: the bounded, strict HTTP/1.1 request-head reader and the forwarded head.
//! - `proxy.rs`: [`EgressProxy`]: the unix-socket listener; one [`EgressRecord`] per
//!   connection on a channel, for the attempt's events.
//! - [`bridge`]: `errand sandbox-bridge`, TCP on the sandbox's loopback to the socket.
//! - `wiring.rs`: [`sandbox_egress`]: the bwrap arguments, environment and command prefix.
//! - `attempt.rs`: an attempt's proxy, its command additions, its records as events.
//!
//! No SOCKS5: every tool Errand cares about (curl, pip, npm, cargo, git over https) speaks
//! HTTP CONNECT through `HTTPS_PROXY`, and one protocol is one parser less to harden. `git`
//! over ssh and other raw TCP are therefore not proxied.
//!
//! # How the local sandbox uses it
//!
//! 1. An environment's `agent_network` ([`crate::AgentNetwork`]) becomes an [`EgressPolicy`];
//!    the caller hands it to [`crate::LocalSandbox::start_egress`], which starts the proxy on
//!    `<attempt dir>/egress.sock` (`attempt.rs`; the attempt directory is what `exec.rs`
//!    mounts at its stage, so bwrap, already the sandbox's uid, can reach the socket even when
//!    `data_dir` is below `/root`) and says `network: egress proxy (N allowed domains)` among
//!    the isolation facts. `destroy` shuts the proxy down and removes the socket.
//! 2. `exec.rs`, `bwrap_args`, for the agent's commands only (not the sandbox's own helper
//!    calls such as `apply-patch` or `read_file`): the socket's bind next to the other binds;
//!    the proxy variables after the environment's and before the request's own (an agent
//!    overriding them only loses its own way out); and the command behind the bridge, so the
//!    wrapper's `exec "$@"` runs the bridge, which binds 127.0.0.1:3128, forks itself into the
//!    background and execs the command. `--unshare-all` stays, and bwrap's pid namespace ends
//!    the bridge with the command.
//! 3. Each connection's [`EgressRecord`] becomes an `egress_connection` event, handed out by
//!    [`crate::Sandbox::drain_events`] (see `attempt.rs` for why a drain and not a sink).
//!
//! `crates/errand-cli/tests/egress.rs` runs this shape with hand-made bwrap arguments;
//! `crates/errand-cli/tests/egress_exec.rs` the whole path through `errand exec --env`.

pub mod addr;
mod attempt;
pub mod bridge;
mod http;
pub mod policy;
mod proxy;
mod wiring;

pub(crate) use attempt::AttemptEgress;
pub use http::{DEFAULT_MAX_HEAD_BYTES, MAX_HEADERS};
pub use policy::{DomainPattern, EgressPolicy, Host, Methods, PolicyError};
pub use proxy::{
    EgressActivity, EgressDecision, EgressError, EgressLimits, EgressProxy, EgressRecord,
};
pub use wiring::{BRIDGE_LISTEN, SOCKET_IN_SANDBOX, SandboxEgress, sandbox_egress};
