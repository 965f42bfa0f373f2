//! What a user types as a repository that lives elsewhere: a URL git may fetch from, checked
//! before any git process sees it.
//!
//! Accepted forms, and only these:
//!
//! | form | example |
//! |---|---|
//! | HTTPS | `https://github.com/owner/repo.git` |
//! | HTTP (a forge on the LAN, tests on loopback: nothing is encrypted) | `http://forge.lan:3000/owner/repo` |
//! | SSH | `ssh://git@host:2222/owner/repo.git` |
//! | scp-like SSH | `git@github.com:owner/repo.git` |
//! | a repository on this machine | `file:///srv/git/repo.git` |
//!
//! Invariant: a [`RemoteUrl`] never holds a secret. A password or token inside the URL is
//! refused (credentials come from the configuration, see [`crate::Credentials`]), so the URL may
//! be logged, shown and stored as it is. Every other transport git knows (`git://`, `ext::`,
//! `fd::`, remote helpers) is refused here; `protocol.allow` is the backstop in git itself.

use std::fmt;

/// A repository URL Errand may fetch from. See the module documentation for the forms.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RemoteUrl {
    transport: Transport,
    /// The login for SSH (`git` in `git@github.com:…`); never set for HTTP(S) or files.
    user: Option<String>,
    /// Lower-cased; empty for `file://`. IPv6 addresses keep their brackets.
    host: String,
    port: Option<u16>,
    /// As typed: starts with `/` except in the scp-like form, where it is relative to the
    /// login's home directory.
    path: String,
}

/// How git reaches a [`RemoteUrl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Https,
    /// Plain HTTP: allowed for forges on a trusted network and for tests; nothing is encrypted.
    Http,
    /// `ssh://[user@]host[:port]/path`.
    Ssh,
    /// `[user@]host:path`: SSH, the path relative to the login's home directory.
    ScpLike,
    File,
}

/// Why a repository URL was refused. `Display` says what to do instead; it never repeats a
/// secret the URL carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteUrlError {
    #[error(
        "`{redacted}` carries credentials; put the token in the configuration, not the URL, and use `{redacted_without}`"
    )]
    CredentialsInUrl { redacted: String, redacted_without: String },
    #[error(
        "`{url}`: the `{scheme}` transport is not supported; use an https://, http://, ssh://, user@host:path or file:/// URL"
    )]
    UnsupportedTransport { url: String, scheme: String },
    #[error("the repository URL contains a control character; retype it")]
    ControlCharacter,
    #[error(
        "no repository URL given; use https://host/owner/repo, ssh://user@host/path, user@host:path or file:///absolute/path"
    )]
    Empty,
    #[error("`{url}`: {part} is empty; a repository URL looks like https://host/owner/repo.git")]
    EmptyPart { url: String, part: &'static str },
    #[error("`{url}`: {part} may not start with `-` (git would read it as an option)")]
    LeadingDash { url: String, part: &'static str },
    #[error("`{url}`: {problem}")]
    Invalid { url: String, problem: String },
}

const FORMS_HINT: &str =
    "use https://host/owner/repo, ssh://user@host/path, user@host:path or file:///absolute/path";

impl RemoteUrl {
    /// Parses and checks a repository URL as a user typed it (surrounding spaces are ignored).
    pub fn parse(input: &str) -> Result<RemoteUrl, RemoteUrlError> {
        let input = input.trim();
        if input.chars().any(char::is_control) {
            return Err(RemoteUrlError::ControlCharacter);
        }
        if input.is_empty() {
            return Err(RemoteUrlError::Empty);
        }
        if let Some((scheme, rest)) = input.split_once("://").filter(|(s, _)| is_scheme(s)) {
            return parse_with_scheme(input, &scheme.to_ascii_lowercase(), rest);
        }
        // git's own rule (transport.c): `<helper>::<address>` runs git-remote-<helper>.
        if let Some((helper, _)) = input.split_once("::").filter(|(h, _)| is_scheme(h)) {
            return Err(RemoteUrlError::UnsupportedTransport {
                url: redact(input),
                scheme: format!("{helper}::"),
            });
        }
        if input.starts_with('/') || input.starts_with('.') || input.starts_with('~') {
            return Err(invalid(
                input,
                "a path is not a URL; for a bare repository on this machine use file:///absolute/path",
            ));
        }
        parse_scp_like(input)
    }

    /// The URL as git is given it, safe to log and show (it can hold no secret).
    pub fn display(&self) -> String {
        let port = self.port.map(|port| format!(":{port}")).unwrap_or_default();
        let user = self.user.as_ref().map(|user| format!("{user}@")).unwrap_or_default();
        match self.transport {
            Transport::Https => format!("https://{}{port}{}", self.host, self.path),
            Transport::Http => format!("http://{}{port}{}", self.host, self.path),
            Transport::Ssh => format!("ssh://{user}{}{port}{}", self.host, self.path),
            Transport::ScpLike => format!("{user}{}:{}", self.host, self.path),
            Transport::File => format!("file://{}", self.path),
        }
    }

    /// One spelling per repository, for naming its mirror: the host is already lower-cased
    /// and default ports dropped; trailing slashes are dropped here. `repo` and `repo.git` stay
    /// distinct: a plain git server may hold both.
    pub fn normalized(&self) -> String {
        // The path is never only slashes (`check_path`), so something is left after the trim.
        self.display().trim_end_matches('/').to_string()
    }

    /// The host name, lower-cased, for picking credentials; `None` for `file://`.
    pub fn host(&self) -> Option<&str> {
        (self.transport != Transport::File).then_some(self.host.as_str())
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The SSH login, if the URL names one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteUrl({})", self.display())
    }
}

impl std::str::FromStr for RemoteUrl {
    type Err = RemoteUrlError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        RemoteUrl::parse(input)
    }
}

/// RFC 3986: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn parse_with_scheme(input: &str, scheme: &str, rest: &str) -> Result<RemoteUrl, RemoteUrlError> {
    let transport = match scheme {
        "https" => Transport::Https,
        "http" => Transport::Http,
        "ssh" => Transport::Ssh,
        "file" => Transport::File,
        _ => {
            return Err(RemoteUrlError::UnsupportedTransport {
                url: redact(input),
                scheme: format!("{scheme}://"),
            });
        }
    };
    if transport == Transport::File {
        return parse_file(input, rest);
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            if userinfo.contains(':') || transport != Transport::Ssh {
                // A user name alone is how some forges take a token (GitHub accepts the token
                // as the user), so over HTTP(S) any user part counts as a credential.
                return Err(credentials_error(input, scheme, host_port, path));
            }
            (Some(userinfo), host_port)
        }
        None => (None, authority),
    };
    if let Some(user) = user {
        check_user(input, user)?;
    }
    let (host, port) = split_port(input, host_port)?;
    let host = check_host(input, host)?;
    let default_port = match transport {
        Transport::Https => 443,
        Transport::Http => 80,
        _ => 22,
    };
    let path = path.to_string();
    check_path(input, &path, transport)?;
    Ok(RemoteUrl {
        transport,
        user: user.map(str::to_string),
        host,
        port: port.filter(|&port| port != default_port),
        path,
    })
}

fn parse_file(input: &str, rest: &str) -> Result<RemoteUrl, RemoteUrlError> {
    let path = match rest.strip_prefix("localhost") {
        Some(path) if path.starts_with('/') => path,
        _ => rest,
    };
    if path.is_empty() || path == "/" {
        return Err(RemoteUrlError::EmptyPart { url: input.into(), part: "the path" });
    }
    if !path.starts_with('/') {
        return Err(invalid(
            input,
            "a file:// URL names a repository on this machine: file:///absolute/path (three slashes)",
        ));
    }
    check_path(input, path, Transport::File)?;
    Ok(RemoteUrl {
        transport: Transport::File,
        user: None,
        host: String::new(),
        port: None,
        path: path.to_string(),
    })
}

/// `[user@]host:path`, which git reads as SSH when the colon comes before any slash.
fn parse_scp_like(input: &str) -> Result<RemoteUrl, RemoteUrlError> {
    // The login ends at the last `@` before any `/`, so `user:password@host:path` is read as
    // the credentials it is meant to be (git would take `user` for the host).
    let head = &input[..input.find('/').unwrap_or(input.len())];
    let (user, rest) = match head.rfind('@') {
        Some(at) => (Some(&input[..at]), &input[at + 1..]),
        None => (None, input),
    };
    let Some((host, path)) = rest.split_once(':') else {
        return Err(invalid(input, format!("not a repository URL; {FORMS_HINT}")));
    };
    if host.contains('/') {
        return Err(invalid(input, format!("not a repository URL; {FORMS_HINT}")));
    }
    if let Some(user) = user {
        if user.contains(':') {
            return Err(credentials_error(input, "ssh", host, path));
        }
        check_user(input, user)?;
    }
    if host.starts_with('[') {
        return Err(invalid(input, "for an IPv6 host or a port, use ssh://user@[host]:port/path"));
    }
    let host = check_host(input, host)?;
    if path.is_empty() {
        return Err(RemoteUrlError::EmptyPart { url: input.into(), part: "the path" });
    }
    if path.starts_with('-') {
        return Err(RemoteUrlError::LeadingDash { url: input.into(), part: "the path" });
    }
    check_path(input, path, Transport::ScpLike)?;
    Ok(RemoteUrl {
        transport: Transport::ScpLike,
        user: user.map(str::to_string),
        host,
        port: None,
        path: path.to_string(),
    })
}

fn check_user(input: &str, user: &str) -> Result<(), RemoteUrlError> {
    if user.is_empty() {
        return Err(RemoteUrlError::EmptyPart { url: input.into(), part: "the user name" });
    }
    if user.starts_with('-') {
        return Err(RemoteUrlError::LeadingDash { url: input.into(), part: "the user name" });
    }
    if !user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(invalid(
            input,
            "the user name may hold only letters, digits, `-`, `_` and `.`",
        ));
    }
    Ok(())
}

/// Splits `host[:port]` (`[v6]:port` for IPv6). An empty port is refused.
fn split_port<'a>(
    input: &str,
    host_port: &'a str,
) -> Result<(&'a str, Option<u16>), RemoteUrlError> {
    let (host, port) = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(end) => {
                let (host, after) = host_port.split_at(end + 1);
                match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None if after.is_empty() => (host, None),
                    None => return Err(invalid(input, "unexpected text after the IPv6 address")),
                }
            }
            None => return Err(invalid(input, "the IPv6 address has no closing `]`")),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None => None,
        Some("") => return Err(RemoteUrlError::EmptyPart { url: input.into(), part: "the port" }),
        Some(text) => match text.parse::<u16>() {
            // `parse` takes a leading `+`, which git would not.
            Ok(port) if port > 0 && text.chars().all(|c| c.is_ascii_digit()) => Some(port),
            _ => return Err(invalid(input, format!("`{text}` is not a port number (1-65535)"))),
        },
    };
    Ok((host, port))
}

/// Host names in ASCII (a punycode `xn--` name for an international one), or a bracketed
/// IPv6 address. Returned lower-cased: host names are case-insensitive.
fn check_host(input: &str, host: &str) -> Result<String, RemoteUrlError> {
    if host.is_empty() || host == "[]" {
        return Err(RemoteUrlError::EmptyPart { url: input.into(), part: "the host" });
    }
    if host.starts_with('-') {
        return Err(RemoteUrlError::LeadingDash { url: input.into(), part: "the host" });
    }
    let valid = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.')),
        None => host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')),
    };
    if !valid {
        return Err(invalid(
            input,
            format!("`{host}` is not a host name (letters, digits, `-`, `.`; punycode for others)"),
        ));
    }
    Ok(host.to_ascii_lowercase())
}

fn check_path(input: &str, path: &str, transport: Transport) -> Result<(), RemoteUrlError> {
    let repository = path.trim_matches('/');
    if repository.is_empty() {
        return Err(RemoteUrlError::EmptyPart { url: input.into(), part: "the repository path" });
    }
    if repository.starts_with('-') {
        return Err(RemoteUrlError::LeadingDash { url: input.into(), part: "the path" });
    }
    if matches!(transport, Transport::Https | Transport::Http) && path.contains(['?', '#']) {
        return Err(invalid(input, "drop the `?…` or `#…` part: git adds its own to the URL"));
    }
    Ok(())
}

fn invalid(input: &str, problem: impl Into<String>) -> RemoteUrlError {
    RemoteUrlError::Invalid { url: input.into(), problem: problem.into() }
}

/// The error for a URL with a password, token or (over HTTP) any user part. The message shows
/// the URL with that part replaced by `***`, and the URL to use instead.
fn credentials_error(input: &str, scheme: &str, host: &str, path: &str) -> RemoteUrlError {
    let redacted = redact(input);
    let redacted_without = match input.split_once("://") {
        Some(_) => format!("{scheme}://{host}{path}"),
        None => format!("{host}:{path}"),
    };
    RemoteUrlError::CredentialsInUrl { redacted, redacted_without: redact(&redacted_without) }
}

/// `input` with everything between `://` (or the start) and the last `@` of the authority
/// replaced by `***`, so an error message never repeats a secret.
fn redact(input: &str) -> String {
    let (prefix, rest) = match input.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), input),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{prefix}***{}", &rest[at..]),
        None => input.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms_display_and_host() {
        // (input, display, host, transport)
        let cases: &[(&str, &str, Option<&str>, Transport)] = &[
            (
                "https://github.com/owner/repo.git",
                "https://github.com/owner/repo.git",
                Some("github.com"),
                Transport::Https,
            ),
            (
                "https://GitHub.COM/owner/repo",
                "https://github.com/owner/repo",
                Some("github.com"),
                Transport::Https,
            ),
            (
                "HTTPS://github.com:443/owner/repo",
                "https://github.com/owner/repo",
                Some("github.com"),
                Transport::Https,
            ),
            (
                "https://ghe.example.com:8443/org/team/repo.git",
                "https://ghe.example.com:8443/org/team/repo.git",
                Some("ghe.example.com"),
                Transport::Https,
            ),
            (
                "http://127.0.0.1:3000/owner/repo.git",
                "http://127.0.0.1:3000/owner/repo.git",
                Some("127.0.0.1"),
                Transport::Http,
            ),
            ("http://[::1]:8080/r", "http://[::1]:8080/r", Some("[::1]"), Transport::Http),
            ("http://forge.lan:80/r", "http://forge.lan/r", Some("forge.lan"), Transport::Http),
            (
                "ssh://git@github.com/owner/repo.git",
                "ssh://git@github.com/owner/repo.git",
                Some("github.com"),
                Transport::Ssh,
            ),
            (
                "ssh://host.example:2222/srv/repo",
                "ssh://host.example:2222/srv/repo",
                Some("host.example"),
                Transport::Ssh,
            ),
            ("ssh://git@h:22/r", "ssh://git@h/r", Some("h"), Transport::Ssh),
            (
                "git@github.com:owner/repo.git",
                "git@github.com:owner/repo.git",
                Some("github.com"),
                Transport::ScpLike,
            ),
            ("example.org:repo", "example.org:repo", Some("example.org"), Transport::ScpLike),
            ("file:///srv/git/repo.git", "file:///srv/git/repo.git", None, Transport::File),
            ("file://localhost/srv/r", "file:///srv/r", None, Transport::File),
            ("file:///srv/with space/r", "file:///srv/with space/r", None, Transport::File),
            ("  https://h/o/r  ", "https://h/o/r", Some("h"), Transport::Https),
        ];
        for (input, display, host, transport) in cases {
            let url = RemoteUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(url.display(), *display, "{input}");
            assert_eq!(url.to_string(), *display, "{input}");
            assert_eq!(url.host(), *host, "{input}");
            assert_eq!(url.transport(), *transport, "{input}");
            // What we show parses back to the same URL.
            assert_eq!(RemoteUrl::parse(&url.display()).unwrap(), url, "{input}");
        }
    }

    #[test]
    fn refused_forms_say_what_to_do() {
        // (input, a fragment the message must contain)
        let cases: &[(&str, &str)] = &[
            ("", "no repository URL given"),
            ("   ", "no repository URL given"),
            ("git://github.com/o/r", "`git://` transport is not supported"),
            ("ftp://h/r", "`ftp://` transport"),
            ("persistent-https://h/r", "`persistent-https://` transport"),
            ("ext::sh -c touch% /tmp/pwned", "`ext::` transport"),
            ("fd::7", "`fd::` transport"),
            ("hg::https://h/r", "`hg::` transport"),
            ("https://", "the host is empty"),
            ("https:///o/r", "the host is empty"),
            ("https://github.com", "the repository path is empty"),
            ("https://github.com/", "the repository path is empty"),
            ("https://github.com:/o/r", "the port is empty"),
            ("https://github.com:0/o/r", "not a port number"),
            ("https://github.com:99999/o/r", "not a port number"),
            ("https://github.com:+443/o/r", "not a port number"),
            ("https://-oProxyCommand=x/o/r", "may not start with `-`"),
            ("ssh://-oProxyCommand=touch%20x/r", "may not start with `-`"),
            ("ssh://-l@host/r", "may not start with `-`"),
            ("ssh://@host/r", "the user name is empty"),
            ("ssh://host/-r", "may not start with `-`"),
            ("host:-oProxyCommand=x", "may not start with `-`"),
            ("-host:path", "may not start with `-`"),
            ("git@:owner/repo", "the host is empty"),
            ("git@host:", "the path is empty"),
            ("@host:path", "the user name is empty"),
            ("[::1]:repo", "use ssh://"),
            ("https://h/o/r?x=1", "drop the"),
            ("https://h/o/r#frag", "drop the"),
            ("https://exa mple.com/r", "not a host name"),
            ("https://bücher.de/r", "punycode"),
            ("http://[::1/r", "no closing"),
            ("https://h/o\u{7}/r", "control character"),
            ("https://h/\u{0}r", "control character"),
            ("file://host/srv/r", "three slashes"),
            ("file://", "the path is empty"),
            ("file:///", "the path is empty"),
            ("file:///-r", "may not start with `-`"),
            ("https://h/-o/r", "may not start with `-`"),
            ("/srv/git/repo", "file:///absolute/path"),
            ("./repo", "file:///absolute/path"),
            ("~/repo", "file:///absolute/path"),
            ("github.com/owner/repo", "not a repository URL"),
            ("repo", "not a repository URL"),
        ];
        for (input, expected) in cases {
            let error = RemoteUrl::parse(input).expect_err(input).to_string();
            assert!(error.contains(expected), "{input:?}: {error}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_echoed() {
        // (input, secret that must not appear, what the message suggests instead)
        let cases: &[(&str, &str, &str)] = &[
            (
                "https://x-access-token:ghp_SECRET1@github.com/o/r.git",
                "ghp_SECRET1",
                "https://github.com/o/r.git",
            ),
            ("https://ghp_SECRET2@github.com/o/r", "ghp_SECRET2", "https://github.com/o/r"),
            ("http://user:SECRET3@127.0.0.1:3000/r", "SECRET3", "http://127.0.0.1:3000/r"),
            ("ssh://git:SECRET4@host/r", "SECRET4", "ssh://host/r"),
            ("git:SECRET5@host:owner/r", "SECRET5", "host:owner/r"),
            ("https://a:b@c:SECRET6@h/r", "SECRET6", "https://h/r"),
        ];
        for (input, secret, instead) in cases {
            let error = RemoteUrl::parse(input).expect_err(input);
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(secret), "{input}: {shown}");
            assert!(shown.contains("put the token in the configuration"), "{shown}");
            assert!(shown.contains("***@"), "{shown}");
            assert!(shown.contains(instead), "{input}: {shown}");
        }
    }

    #[test]
    fn an_ssh_login_is_not_a_credential() {
        let url = RemoteUrl::parse("ssh://deploy_bot@host/r").unwrap();
        assert_eq!(url.user(), Some("deploy_bot"));
        assert!(RemoteUrl::parse("ssh://a;b@host/r").unwrap_err().to_string().contains("user"));
    }

    #[test]
    fn normalized_merges_only_spellings_of_the_same_url() {
        let same = [
            ("https://GitHub.com/o/r", "https://github.com:443/o/r/"),
            ("ssh://git@h:22/r", "ssh://git@h/r"),
            ("file:///srv/r/", "file:///srv/r"),
        ];
        for (a, b) in same {
            let (a, b) = (RemoteUrl::parse(a).unwrap(), RemoteUrl::parse(b).unwrap());
            assert_eq!(a.normalized(), b.normalized());
        }
        let different = [
            ("https://h/o/r", "https://h/o/r.git"),
            ("https://h/o/r", "http://h/o/r"),
            ("https://h/o/r", "https://h:8443/o/r"),
            ("https://h/O/r", "https://h/o/r"),
            ("git@h:r", "ssh://git@h/r"),
        ];
        for (a, b) in different {
            let (a, b) = (RemoteUrl::parse(a).unwrap(), RemoteUrl::parse(b).unwrap());
            assert_ne!(a.normalized(), b.normalized());
        }
    }
}
