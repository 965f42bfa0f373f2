//! How Errand proves who it is to a remote, and how that proof stays out of sight.
//!
//! Invariant: a token never appears in a process's arguments (anyone on the host can read
//! those in `ps`), in a repository's files, in an error or in a log. It reaches git only as
//! `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` environment variables (readable
//! only by our own uid and root) setting an `Authorization` header scoped to the one remote URL,
//! and whatever git prints is scrubbed of it before it becomes a [`crate::GitError`].

use std::fmt;

use crate::remote::{RemoteUrl, Transport};

/// The login git uses with a token when none is configured: GitHub, Gitea/Forgejo and GitLab
/// all accept any user name with a token, and this one is GitHub's documented choice.
pub const DEFAULT_TOKEN_USER: &str = "x-access-token";

/// Credentials for one remote, chosen by the caller (per [`RemoteUrl::host`], say).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// Anonymous: public repositories, `file://`, SSH with the default `ssh`.
    #[default]
    None,
    /// HTTP(S) Basic authentication with a token (a personal access token, an installation
    /// token, a Gitea/Forgejo application token). Sent pre-emptively, only to the remote URL.
    Token { user: String, token: String },
    /// SSH through this command (it becomes `GIT_SSH_COMMAND`, run by a shell), e.g.
    /// `ssh -i /etc/errand/deploy_key -o IdentitiesOnly=yes -o UserKnownHostsFile=/etc/errand/known_hosts -o BatchMode=yes`.
    /// git runs with `HOME=/nonexistent` and no `SSH_AUTH_SOCK`, so the command must name its
    /// key and known-hosts file itself; `BatchMode=yes` keeps ssh from ever asking a question.
    Ssh { command: String },
}

/// The `GIT_SSH_COMMAND` when none is configured: never prompt for a password or a host key.
const DEFAULT_SSH_COMMAND: &str = "ssh -o BatchMode=yes";

/// Protocols a remote-facing git call may use, whatever the URL or a redirect asks for
/// (`protocol.allow` in git-config(1)); every other transport, `ext::` and `fd::` included,
/// is off.
const PROTOCOL_ALLOW_LIST: &[(&str, &str)] = &[
    ("protocol.allow", "never"),
    ("protocol.https.allow", "always"),
    ("protocol.http.allow", "always"),
    ("protocol.ssh.allow", "always"),
    ("protocol.file.allow", "always"),
];

impl Credentials {
    /// A token with the default user name ([`DEFAULT_TOKEN_USER`]).
    pub fn token(token: impl Into<String>) -> Credentials {
        Credentials::Token { user: DEFAULT_TOKEN_USER.into(), token: token.into() }
    }

    /// Why these credentials cannot be used for `url`, as a sentence for the user; `None`
    /// when they can. A token that could end a header line would let it add headers of its own.
    pub(crate) fn problem_with(&self, url: &RemoteUrl) -> Option<String> {
        let host = url.host().unwrap_or("this machine");
        match self {
            Credentials::None => None,
            Credentials::Token { user, token } => {
                if !matches!(url.transport(), Transport::Https | Transport::Http) {
                    Some(format!(
                        "a token works only over HTTP(S), and {url} is not an http(s):// URL; configure an SSH command for {host} instead"
                    ))
                } else if token.is_empty() {
                    Some(format!("the token configured for {host} is empty"))
                } else if token.chars().chain(user.chars()).any(char::is_control) {
                    Some(format!(
                        "the token or user name configured for {host} contains a control character or line break; copy it again"
                    ))
                } else if user.is_empty() || user.contains(':') {
                    Some(format!(
                        "the user name configured for the token for {host} must be non-empty and hold no `:`"
                    ))
                } else {
                    None
                }
            }
            Credentials::Ssh { command } => {
                if !matches!(url.transport(), Transport::Ssh | Transport::ScpLike) {
                    Some(format!(
                        "an SSH command works only with ssh:// or user@host:path URLs, and {url} is neither"
                    ))
                } else if command.trim().is_empty() || command.chars().any(char::is_control) {
                    Some(format!(
                        "the SSH command configured for {host} is empty or contains a control character"
                    ))
                } else {
                    None
                }
            }
        }
    }

    /// The environment for a git process that talks to `url`: the protocol allow-list and,
    /// with a token, the header; with SSH, the command. All configuration goes through
    /// `GIT_CONFIG_*` variables, never `-c` arguments.
    pub(crate) fn git_env(&self, url: &RemoteUrl) -> Vec<(String, String)> {
        let mut config: Vec<(String, String)> =
            PROTOCOL_ALLOW_LIST.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut env = Vec::new();
        match self {
            Credentials::Token { user, token } => {
                // `http.<url>.*` applies to that URL only (git-config(1), "http.<url>.*"), so
                // the header is not sent anywhere else.
                config.push((
                    format!("http.{}.extraHeader", url.display()),
                    format!("Authorization: Basic {}", basic_value(user, token)),
                ));
            }
            Credentials::Ssh { command } => env.push(("GIT_SSH_COMMAND".into(), command.clone())),
            Credentials::None => {
                if matches!(url.transport(), Transport::Ssh | Transport::ScpLike) {
                    env.push(("GIT_SSH_COMMAND".into(), DEFAULT_SSH_COMMAND.into()));
                }
            }
        }
        env.push(("GIT_CONFIG_COUNT".into(), config.len().to_string()));
        for (n, (key, value)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{n}"), key));
            env.push((format!("GIT_CONFIG_VALUE_{n}"), value));
        }
        env
    }

    /// `text` with the token, and the Basic value carrying it, replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let Credentials::Token { user, token } = self else {
            return text.to_string();
        };
        if token.is_empty() {
            return text.to_string();
        }
        text.replace(&basic_value(user, token), "***")
            .replace(&base64(token.as_bytes()), "***")
            .replace(token.as_str(), "***")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Token { user, .. } => {
                f.debug_struct("Token").field("user", user).field("token", &"***").finish()
            }
            // The command names a key file, not a secret, but a command line may carry more
            // than its author meant to show.
            Credentials::Ssh { .. } => f.debug_struct("Ssh").field("command", &"***").finish(),
        }
    }
}

/// The credentials part of `Authorization: Basic …` (RFC 7617).
fn basic_value(user: &str, token: &str) -> String {
    base64(format!("{user}:{token}").as_bytes())
}

/// Standard base64 with padding (RFC 4648 §4). Hand-written: it is the only encoding we need.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let group = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(group >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("x-access-token:ghp_abc", "eC1hY2Nlc3MtdG9rZW46Z2hwX2FiYw=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = Credentials::token("ghp_SECRET");
        let shown = format!("{token:?} {:#?}", token);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("***") && shown.contains("x-access-token"), "{shown}");
        let ssh = Credentials::Ssh { command: "ssh -i /k".into() };
        assert_eq!(format!("{ssh:?}"), "Ssh { command: \"***\" }");
    }

    #[test]
    fn the_header_is_scoped_to_the_url_and_only_in_the_environment() {
        let url = RemoteUrl::parse("https://git.example.com/o/r.git").unwrap();
        let env = Credentials::token("tok").git_env(&url);
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("GIT_CONFIG_COUNT"), Some("6"));
        assert_eq!(get("GIT_CONFIG_KEY_0"), Some("protocol.allow"));
        assert_eq!(get("GIT_CONFIG_VALUE_0"), Some("never"));
        assert_eq!(
            get("GIT_CONFIG_KEY_5"),
            Some("http.https://git.example.com/o/r.git.extraHeader")
        );
        assert_eq!(
            get("GIT_CONFIG_VALUE_5"),
            Some(format!("Authorization: Basic {}", base64(b"x-access-token:tok")).as_str())
        );
        assert_eq!(get("GIT_SSH_COMMAND"), None);
    }

    #[test]
    fn ssh_gets_a_command_that_never_prompts() {
        let url = RemoteUrl::parse("git@h:o/r").unwrap();
        let env = Credentials::None.git_env(&url);
        assert!(env.contains(&("GIT_SSH_COMMAND".into(), "ssh -o BatchMode=yes".into())));
        let custom = Credentials::Ssh { command: "ssh -i /k".into() }.git_env(&url);
        assert!(custom.contains(&("GIT_SSH_COMMAND".into(), "ssh -i /k".into())));
        assert!(custom.contains(&("GIT_CONFIG_COUNT".into(), "5".into())));
    }

    #[test]
    fn scrub_removes_the_token_in_every_form() {
        let creds = Credentials::Token { user: "bot".into(), token: "s3cr3t".into() };
        let text = format!(
            "fatal: s3cr3t; header Basic {}; alone {}",
            base64(b"bot:s3cr3t"),
            base64(b"s3cr3t")
        );
        assert_eq!(creds.scrub(&text), "fatal: ***; header Basic ***; alone ***");
        assert_eq!(Credentials::None.scrub("s3cr3t"), "s3cr3t");
    }

    #[test]
    fn unusable_credentials_are_named() {
        let https = RemoteUrl::parse("https://h/o/r").unwrap();
        let ssh = RemoteUrl::parse("ssh://h/o/r").unwrap();
        let token =
            |user: &str, token: &str| Credentials::Token { user: user.into(), token: token.into() };
        let cases: &[(Credentials, &RemoteUrl, Option<&str>)] = &[
            (Credentials::None, &https, None),
            (Credentials::token("t"), &https, None),
            (Credentials::token(""), &https, Some("is empty")),
            (Credentials::token("t\r\nX-Evil: 1"), &https, Some("line break")),
            (token("a:b", "t"), &https, Some("no `:`")),
            (token("", "t"), &https, Some("non-empty")),
            (Credentials::token("t"), &ssh, Some("only over HTTP(S)")),
            (Credentials::Ssh { command: "ssh".into() }, &ssh, None),
            (Credentials::Ssh { command: "ssh".into() }, &https, Some("only with ssh://")),
            (Credentials::Ssh { command: " ".into() }, &ssh, Some("empty")),
        ];
        for (creds, url, expected) in cases {
            let problem = creds.problem_with(url);
            match expected {
                None => assert_eq!(problem, None, "{creds:?} {url}"),
                Some(fragment) => {
                    let problem = problem.unwrap_or_else(|| panic!("{creds:?} {url}"));
                    assert!(problem.contains(fragment), "{problem}");
                    assert!(!problem.contains("X-Evil"), "{problem}");
                }
            }
        }
    }
}
