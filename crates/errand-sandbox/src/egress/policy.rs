//! What an environment allows: domain patterns, methods, and whether private addresses count.
//!
//! Patterns are deliberately small: `example.com` (that name only), `*.example.com` (any name
//! below it, not `example.com` itself: list both when both are meant), an IP literal
//! (`203.0.113.7`, `[2001:db8::1]`), each with an optional `:port`. Without a port an entry
//! allows 80 and 443; with one it allows that port only. Names are ASCII and compared without
//! case; internationalized names must be written in their `xn--` form (no IDNA tables here).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// A bad entry in an environment's egress configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("egress: `{entry}` {problem}")]
pub struct PolicyError {
    pub entry: String,
    pub problem: String,
}

fn problem(entry: &str, problem: impl Into<String>) -> PolicyError {
    PolicyError { entry: entry.to_string(), problem: problem.into() }
}

/// A destination host as a client named it: a DNS name (lower case, no trailing dot) or an IP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses a host as it appears in a request target: `name`, `1.2.3.4` or `[v6]`.
    pub fn parse(text: &str) -> Result<Host, String> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or("an IPv6 address lacks its closing `]`")?;
            return inner
                .parse::<std::net::Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| format!("`{inner}` is not an IPv6 address"));
        }
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        check_domain(text).map(Host::Domain)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// Validates and normalizes a DNS name: lower case, one trailing dot dropped, LDH labels
/// (underscores tolerated, some registries' hosts use them) of 1 to 63 bytes, 253 in all.
fn check_domain(text: &str) -> Result<String, String> {
    if !text.is_ascii() {
        return Err("is not ASCII: write internationalized names in their punycode form \
                    (`xn--…`)"
            .into());
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("has an empty label or one longer than 63 characters".into());
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("may contain only letters, digits, `-`, `_` and dots".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a label that starts or ends with `-`".into());
        }
    }
    // `127.1` or `0x7f.1` are IPv4 addresses to inet_aton(3), and so to many resolvers.
    let last = name.rsplit('.').next().unwrap_or_default();
    if last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x") {
        return Err("looks like an IP address but is not a plain dotted quad".into());
    }
    Ok(name)
}

/// Which hosts an entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternHost {
    Exact(String),
    /// The suffix after `*.`: matches names ending in `.suffix`.
    Subdomains(String),
    Ip(IpAddr),
}

/// One allowed destination: `example.com`, `*.example.com`, an IP literal, each with an
/// optional `:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    host: PatternHost,
    port: Option<u16>,
}

/// Ports an entry without a port allows.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

impl DomainPattern {
    /// Whether the entry names `host`, whatever the port.
    pub fn matches_host(&self, host: &Host) -> bool {
        match (&self.host, host) {
            (PatternHost::Exact(want), Host::Domain(name)) => want == name,
            (PatternHost::Subdomains(suffix), Host::Domain(name)) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (PatternHost::Ip(want), Host::Ip(ip)) => want == ip,
            _ => false,
        }
    }

    /// Whether the entry allows `host` on `port`.
    pub fn matches(&self, host: &Host, port: u16) -> bool {
        self.matches_host(host)
            && match self.port {
                Some(allowed) => allowed == port,
                None => DEFAULT_PORTS.contains(&port),
            }
    }
}

impl FromStr for DomainPattern {
    type Err = PolicyError;

    fn from_str(entry: &str) -> Result<DomainPattern, PolicyError> {
        let text = entry.trim();
        if text.is_empty() {
            return Err(problem(entry, "is empty"));
        }
        if text.contains("://") || text.contains('/') {
            return Err(problem(
                entry,
                "is not a domain: write the name alone, e.g. `example.com`",
            ));
        }
        if text == "*" || text == "*.*" {
            return Err(problem(entry, "would allow every domain: list the domains you need"));
        }
        let (host, port) = split_port(text).map_err(|p| problem(entry, p))?;
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(problem(entry, "may use `*` only as its whole first label (`*.x.y`)"));
            }
            PatternHost::Subdomains(check_domain(suffix).map_err(|p| problem(entry, p))?)
        } else if host.contains('*') {
            return Err(problem(entry, "may use `*` only as its whole first label (`*.x.y`)"));
        } else {
            match Host::parse(host).map_err(|p| problem(entry, p))? {
                Host::Domain(name) => PatternHost::Exact(name),
                Host::Ip(ip) => PatternHost::Ip(ip),
            }
        };
        Ok(DomainPattern { host, port })
    }
}

/// `host:port` → (host, Some(port)); `host` → (host, None); `[v6]:port` and `[v6]` likewise.
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if text.starts_with('[') {
        match text.rfind("]:") {
            Some(i) => (&text[..=i], Some(&text[i + 2..])),
            None => (text, None),
        }
    } else if text.matches(':').count() > 1 {
        return Err("looks like an IPv6 address: write it in brackets, e.g. `[2001:db8::1]`".into());
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("has a bad port `{port}` (1 to 65535)")),
            Ok(port) => Some(port),
        },
    };
    Ok((host, port))
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            PatternHost::Exact(name) => f.write_str(name)?,
            PatternHost::Subdomains(suffix) => write!(f, "*.{suffix}")?,
            PatternHost::Ip(ip) => write!(f, "{}", Host::Ip(*ip))?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Which HTTP methods the agent may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Methods {
    /// Anything, including CONNECT tunnels (HTTPS, git over https).
    #[default]
    AllMethods,
    /// GET, HEAD and OPTIONS over plain HTTP only. CONNECT is refused: inside a TLS tunnel the
    /// proxy cannot see the method, so allowing it would make "read-only" a label, not a
    /// limit. (codex's network proxy blocks CONNECT in its "limited" mode unless it can
    /// intercept TLS; Errand does not intercept TLS.)
    ReadOnly,
}

impl Methods {
    /// Whether a plain HTTP request with `method` is allowed.
    pub fn allows(self, method: &str) -> bool {
        match self {
            Methods::AllMethods => true,
            Methods::ReadOnly => matches!(method, "GET" | "HEAD" | "OPTIONS"),
        }
    }
}

impl FromStr for Methods {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Methods, PolicyError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Methods::AllMethods),
            "read-only" | "readonly" => Ok(Methods::ReadOnly),
            _ => Err(problem(text, "is not a method policy: use `all` or `read-only`")),
        }
    }
}

/// An environment's agent-phase network policy.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    pub allow: Vec<DomainPattern>,
    pub methods: Methods,
    /// Allow destinations whose addresses are private, loopback, link-local and the like.
    pub allow_private: bool,
    /// Test-only: host (lower case) → the address it "resolves" to, port included.
    test_resolutions: HashMap<String, SocketAddr>,
}

impl EgressPolicy {
    /// A policy allowing `entries` (see the module docs for their form), all methods, public
    /// addresses only. The error names the first bad entry.
    pub fn parse<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<EgressPolicy, PolicyError> {
        let allow = entries
            .into_iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EgressPolicy { allow, ..EgressPolicy::default() })
    }

    pub fn with_methods(mut self, methods: Methods) -> EgressPolicy {
        self.methods = methods;
        self
    }

    pub fn with_allow_private(mut self, allow_private: bool) -> EgressPolicy {
        self.allow_private = allow_private;
        self
    }

    /// For tests only: `host` connects to `address` (whatever port was asked) without DNS and
    /// without the private-address check, so a test can stand a loopback server in for an
    /// allowed domain. The domain must still be allowed. Never set from configuration.
    #[doc(hidden)]
    pub fn with_test_resolution(mut self, host: &str, address: SocketAddr) -> EgressPolicy {
        self.test_resolutions.insert(host.to_ascii_lowercase(), address);
        self
    }

    pub(crate) fn test_resolution(&self, host: &Host) -> Option<SocketAddr> {
        match host {
            Host::Domain(name) => self.test_resolutions.get(name).copied(),
            Host::Ip(_) => None,
        }
    }

    /// The entry that allows `host:port`, if any.
    pub fn allowing(&self, host: &Host, port: u16) -> Option<&DomainPattern> {
        self.allow.iter().find(|pattern| pattern.matches(host, port))
    }

    /// Whether some entry names `host` on another port (for a precise refusal message).
    pub fn names_host(&self, host: &Host) -> bool {
        self.allow.iter().any(|pattern| pattern.matches_host(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Host {
        Host::parse(text).unwrap()
    }

    #[test]
    fn patterns_match_hosts_and_ports() {
        // (pattern, host, port, matches)
        let cases: &[(&str, &str, u16, bool)] = &[
            ("example.com", "example.com", 443, true),
            ("example.com", "example.com", 80, true),
            ("example.com", "EXAMPLE.com", 443, true),
            ("Example.COM", "example.com.", 443, true),
            ("example.com", "example.com", 8443, false),
            ("example.com", "www.example.com", 443, false),
            ("example.com", "badexample.com", 443, false),
            ("example.com", "example.com.evil.net", 443, false),
            ("*.example.com", "www.example.com", 443, true),
            ("*.example.com", "a.b.example.com", 80, true),
            ("*.example.com", "example.com", 443, false),
            ("*.example.com", "badexample.com", 443, false),
            ("*.example.com", "x.badexample.com", 443, false),
            ("example.com:8443", "example.com", 8443, true),
            ("example.com:8443", "example.com", 443, false),
            ("*.example.com:22", "git.example.com", 22, true),
            ("203.0.113.7", "203.0.113.7", 443, true),
            ("203.0.113.7", "203.0.113.8", 443, false),
            ("[2001:db8::1]:8080", "[2001:db8::1]", 8080, true),
            ("[2001:db8::1]", "[2001:db8::1]", 443, true),
            // A name never matches an IP entry and the other way round.
            ("203.0.113.7", "example.com", 443, false),
            ("example.com", "93.184.216.34", 443, false),
        ];
        for (pattern, target, port, want) in cases {
            let parsed: DomainPattern = pattern.parse().unwrap();
            assert_eq!(parsed.matches(&host(target), *port), *want, "{pattern} vs {target}:{port}");
        }
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "is empty"),
            ("https://example.com", "write the name alone"),
            ("example.com/path", "write the name alone"),
            ("*", "every domain"),
            ("ex*ample.com", "`*` only as its whole first label"),
            ("*.*.example.com", "`*` only as its whole first label"),
            ("bücher.de", "punycode"),
            ("exa mple.com", "only letters"),
            ("-bad.com", "starts or ends with `-`"),
            ("a..b", "empty label"),
            ("example.com:0", "bad port"),
            ("example.com:http", "bad port"),
            ("example.com:65536", "bad port"),
            ("2001:db8::1", "in brackets"),
            ("[2001:db8::1", "closing `]`"),
            ("127.1", "looks like an IP address"),
            ("0x7f.1", "looks like an IP address"),
        ];
        for (entry, needle) in cases {
            let error = entry.parse::<DomainPattern>().unwrap_err();
            assert!(error.to_string().contains(needle), "{entry}: {error}");
            assert!(error.to_string().contains(&format!("`{entry}`")), "{error}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(long.parse::<DomainPattern>().is_err());
        let error = EgressPolicy::parse(["ok.example", "not ok"]).unwrap_err();
        assert_eq!(error.entry, "not ok");
    }

    #[test]
    fn patterns_display_as_written_normalized() {
        for (entry, shown) in [
            ("Example.com", "example.com"),
            ("*.Example.com:8443", "*.example.com:8443"),
            ("[2001:DB8::1]:80", "[2001:db8::1]:80"),
        ] {
            assert_eq!(entry.parse::<DomainPattern>().unwrap().to_string(), shown);
        }
    }

    #[test]
    fn read_only_allows_only_safe_methods() {
        for method in ["GET", "HEAD", "OPTIONS"] {
            assert!(Methods::ReadOnly.allows(method));
        }
        for method in ["POST", "PUT", "DELETE", "PATCH", "CONNECT", "get", "TRACE"] {
            assert!(!Methods::ReadOnly.allows(method), "{method}");
        }
        assert_eq!("read-only".parse::<Methods>().unwrap(), Methods::ReadOnly);
        assert_eq!("ALL".parse::<Methods>().unwrap(), Methods::AllMethods);
        assert!("some".parse::<Methods>().is_err());
    }
}
