//! What an attempt with egress adds to each command's bwrap invocation.

use std::ffi::OsString;
use std::path::Path;

/// Where the proxy's socket appears inside the sandbox.
pub const SOCKET_IN_SANDBOX: &str = "/run/errand-egress.sock";
/// The bridge's address inside the sandbox (its own network namespace, so never a clash).
/// 3128 is the customary proxy port (squid; sandbox-runtime and codex use it too).
pub const BRIDGE_LISTEN: &str = "127.0.0.1:3128";

/// The additions for one command: bwrap arguments (before `--`), environment variables, and a
/// prefix for the command that starts the bridge and then becomes the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxEgress {
    pub bwrap_args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub command_prefix: Vec<String>,
}

impl SandboxEgress {
    /// `command` run behind the bridge.
    pub fn wrap(&self, command: &[String]) -> Vec<String> {
        self.command_prefix.iter().chain(command).cloned().collect()
    }
}

/// The additions for a sandbox whose proxy listens on `host_socket` (the path as bwrap sees
/// it when it starts, i.e. after any mounts made for it) and whose helper binary is at
/// `helper` inside the sandbox.
pub fn sandbox_egress(host_socket: &Path, helper: &str) -> SandboxEgress {
    let url = format!("http://{BRIDGE_LISTEN}");
    // Upper and lower case: curl reads only `http_proxy` in lower case (a CGI defence), while
    // other tools read the upper-case forms. `ALL_PROXY` covers curl's other schemes; the
    // proxy speaks HTTP, which curl accepts there.
    let env = [
        ("HTTP_PROXY", url.as_str()),
        ("HTTPS_PROXY", &url),
        ("http_proxy", &url),
        ("https_proxy", &url),
        ("ALL_PROXY", &url),
        ("all_proxy", &url),
        ("NO_PROXY", "localhost,127.0.0.1"),
        ("no_proxy", "localhost,127.0.0.1"),
    ]
    .iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect();
    SandboxEgress {
        bwrap_args: vec!["--bind".into(), host_socket.into(), SOCKET_IN_SANDBOX.into()],
        env,
        command_prefix: [
            helper,
            "sandbox-bridge",
            "--listen",
            BRIDGE_LISTEN,
            "--socket",
            SOCKET_IN_SANDBOX,
            "--",
        ]
        .map(String::from)
        .to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_bound_the_proxy_variables_set_and_the_command_wrapped() {
        let egress =
            sandbox_egress(Path::new("/run/errand-sandbox/egress.sock"), "/opt/errand/errand");
        assert_eq!(
            egress.bwrap_args,
            ["--bind", "/run/errand-sandbox/egress.sock", "/run/errand-egress.sock"]
                .map(OsString::from)
        );
        for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"] {
            assert!(egress.env.contains(&(key.into(), "http://127.0.0.1:3128".into())), "{key}");
        }
        assert!(egress.env.contains(&("NO_PROXY".into(), "localhost,127.0.0.1".into())));
        let wrapped = egress.wrap(&["curl".into(), "https://x".into()]);
        assert_eq!(
            wrapped.join(" "),
            "/opt/errand/errand sandbox-bridge --listen 127.0.0.1:3128 --socket \
             /run/errand-egress.sock -- curl https://x"
        );
    }
}
