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
//!
//! No SOCKS5: every tool Errand cares about (curl, pip, npm, cargo, git over https) speaks
//! HTTP CONNECT through `HTTPS_PROXY`, and one protocol is one parser less to harden. `git`
//! over ssh and other raw TCP are therefore not proxied.
//!
//! # Wiring it into the local sandbox (not done yet: `exec.rs` is being changed)
//!
//! 1. `LocalSandbox::create`, when the environment has an egress policy: start
//!    `EgressProxy::start(policy, &attempt_root.join("egress.sock"))` (the attempt directory is
//!    what `exec.rs` mounts at `STAGE`, so bwrap, already running as the sandbox uid, can reach
//!    the socket even when `data_dir` is below `/root`). Keep the handle in the sandbox; drain
//!    [`EgressProxy::records`] into the attempt's events; call [`EgressProxy::shutdown`] in
//!    `destroy` (dropping it also stops it and removes the socket).
//! 2. `exec.rs`, `bwrap_args`: with `let egress = sandbox_egress(&Path::new(STAGE)
//!    .join("egress.sock"), HELPER)`,
//!    - push `egress.bwrap_args` (`--bind STAGE/egress.sock /run/errand-egress.sock`) next to
//!      the other binds, before `--chdir … --`;
//!    - add `egress.env` to the `--setenv` pairs, after the defaults and before the request's
//!      own variables (an agent overriding them only loses its own way out);
//!    - replace `request.command` by `egress.wrap(&request.command)` where it is appended after
//!      the `WRAPPER` arguments, so the wrapper's `exec "$@"` runs the bridge, which binds
//!      127.0.0.1:3128, forks itself into the background and execs the command;
//!    - helper invocations (`apply-patch`) need none of this.
//! 3. Nothing else changes: `--unshare-all` stays (the bridge listens on the sandbox's own
//!    loopback), and bwrap's pid namespace ends the bridge with the command.
//!
//! `crates/errand-cli/tests/egress.rs` runs exactly this shape with real bwrap.

pub mod addr;
pub mod bridge;
mod http;
pub mod policy;
mod proxy;
mod wiring;

pub use http::{DEFAULT_MAX_HEAD_BYTES, MAX_HEADERS};
pub use policy::{DomainPattern, EgressPolicy, Host, Methods, PolicyError};
pub use proxy::{EgressDecision, EgressError, EgressLimits, EgressProxy, EgressRecord};
pub use wiring::{BRIDGE_LISTEN, SOCKET_IN_SANDBOX, SandboxEgress, sandbox_egress};
