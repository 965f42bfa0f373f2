//! An environment: what an attempt's computer holds before the agent starts. A setup script
//! (with network and the environment's secrets) installs dependencies once per (configuration,
//! base commit); what it wrote is frozen as a snapshot (`snapshot.rs`) and reused for
//! [`EnvironmentSpec::snapshot_ttl`]; on reuse the maintenance script, if any, runs instead.
//!
//! Invariant: secret values never leave this struct except into the environment of the setup
//! and maintenance commands. `Debug` hides them; [`EnvironmentSpec::config_hash`] sees only a
//! hash of each; Errand writes them to no file, event or log (see `redact.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::egress::{EgressPolicy, Methods, PolicyError};

mod document;

pub use document::{
    DocumentError, MAX_DOCUMENT_BYTES, SECRET_SHOWN_AS, is_environment_name, redacted_document,
    resolve_document, stored_document,
};

/// Shortest secret value accepted: a shorter one would be redacted out of ordinary words.
pub const MIN_SECRET_LEN: usize = 4;
/// Names of variables the sandbox sets itself; an environment may not replace them.
const RESERVED: &[&str] = &["HOME", "USER", "LOGNAME"];

/// How an attempt's computer is prepared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentMode {
    /// Run the setup script once per (configuration, commit) and reuse the snapshot.
    #[default]
    Setup,
    /// No setup, no snapshot: the base image and the checkout only (ready in milliseconds).
    Ask,
}

/// The agent phase's network beyond none: the domains it may reach through Errand's egress
/// proxy (see `egress/`). In an environment file:
///
/// ```toml
/// [agent_network]
/// allow = ["pypi.org", "*.pythonhosted.org"]   # see egress/policy.rs for the entry forms
/// read_only = false       # true: GET/HEAD/OPTIONS over plain http only (no CONNECT, so no https)
/// allow_private = false   # true: also private, loopback and link-local addresses
/// ```
///
/// Absent (or `agent_network = "none"`): no network at all, a private namespace with only
/// loopback, and no proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentNetwork {
    pub allow: Vec<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub allow_private: bool,
}

impl AgentNetwork {
    /// The proxy's policy; the error names the first bad entry.
    pub fn policy(&self) -> Result<EgressPolicy, PolicyError> {
        let methods = if self.read_only { Methods::ReadOnly } else { Methods::AllMethods };
        Ok(EgressPolicy::parse(&self.allow)?
            .with_methods(methods)
            .with_allow_private(self.allow_private))
    }
}

/// `agent_network`: absent, `"none"`, or an [`AgentNetwork`] table (whose own errors, such as an
/// unknown key, pass through unchanged).
mod agent_network_text {
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, Visitor};
    use serde::{Deserialize, Serializer};

    use super::AgentNetwork;

    pub fn serialize<S: Serializer>(
        value: &Option<AgentNetwork>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            None => serializer.serialize_str("none"),
            Some(network) => serde::Serialize::serialize(network, serializer),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<AgentNetwork>, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Option<AgentNetwork>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"none\" or a table { allow = [\"example.com\", ...] }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                match text {
                    "none" => Ok(None),
                    _ => Err(E::custom(format!(
                        "`{text}` is not a network policy: write \"none\", or a table \
                         {{ allow = [\"example.com\", ...] }}"
                    ))),
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                AgentNetwork::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
            }
        }
        deserializer.deserialize_any(Text)
    }
}

/// A repository's environment, as configured by its user (e.g. an `errand exec --env` file).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    #[serde(default)]
    pub mode: EnvironmentMode,
    /// The base image the snapshot is built over; the local backend knows `host`.
    #[serde(default = "default_image")]
    pub base_image: String,
    /// Bash text run in `/workspace` with network and secrets, once per snapshot.
    #[serde(default)]
    pub setup_script: Option<String>,
    /// Bash text run on each reuse of a snapshot (e.g. `git fetch`, `npm install` to catch up),
    /// with network and secrets, in a layer of the attempt's own.
    #[serde(default)]
    pub maintenance_script: Option<String>,
    /// Plain variables, set in the setup, maintenance and agent phases alike.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Set in the setup and maintenance phases only; redacted from their output.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// How long a snapshot is reused after it was built: `"12h"`, `"30m"`, `"2d"`, or seconds.
    #[serde(default = "default_ttl", with = "duration_text")]
    pub snapshot_ttl: Duration,
    /// Wall clock for the setup script, and again for the maintenance script.
    #[serde(default = "default_setup_timeout", with = "duration_text")]
    pub setup_timeout: Duration,
    /// The agent phase's network: `None` for none, else the domains its egress proxy allows.
    /// Not part of the snapshot (setup always has the host's network).
    #[serde(default, with = "agent_network_text")]
    pub agent_network: Option<AgentNetwork>,
    /// Finish checks: commands Errand runs in the sandbox when the agent says it is done (see
    /// docs/configuration.md, "Finish checks"). Not part of the snapshot.
    #[serde(default)]
    pub checks: Vec<String>,
}

fn default_image() -> String {
    "host".into()
}
fn default_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn default_setup_timeout() -> Duration {
    Duration::from_secs(3600)
}

impl Default for EnvironmentSpec {
    fn default() -> Self {
        EnvironmentSpec {
            mode: EnvironmentMode::Setup,
            base_image: default_image(),
            setup_script: None,
            maintenance_script: None,
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            snapshot_ttl: default_ttl(),
            setup_timeout: default_setup_timeout(),
            agent_network: None,
            checks: Vec::new(),
        }
    }
}

impl fmt::Debug for EnvironmentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets: Vec<&String> = self.secrets.keys().collect();
        f.debug_struct("EnvironmentSpec")
            .field("mode", &self.mode)
            .field("base_image", &self.base_image)
            .field("setup_script", &self.setup_script)
            .field("maintenance_script", &self.maintenance_script)
            .field("env", &self.env)
            .field("secrets (names only)", &secrets)
            .field("snapshot_ttl", &self.snapshot_ttl)
            .field("setup_timeout", &self.setup_timeout)
            .field("agent_network", &self.agent_network)
            .field("checks", &self.checks)
            .finish()
    }
}

/// The most finish checks an environment may name.
const MAX_CHECKS: usize = 20;

/// A configuration Errand refuses, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment `{field}`: {problem}")]
pub struct InvalidEnvironment {
    pub field: String,
    pub problem: String,
}

impl EnvironmentSpec {
    /// Checks what the sandbox relies on: usable variable names, no name both plain and secret,
    /// secrets long enough to redact, a positive TTL, no scripts in ask mode.
    pub fn validate(&self) -> Result<(), InvalidEnvironment> {
        let bad =
            |field: &str, problem: String| Err(InvalidEnvironment { field: field.into(), problem });
        let valid_image = !self.base_image.is_empty()
            && self.base_image.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_image {
            return bad("base_image", format!("`{}` is not an image name", self.base_image));
        }
        for (table, names) in [("env", self.env.keys()), ("secrets", self.secrets.keys())] {
            for name in names {
                if !is_variable_name(name) {
                    return bad(
                        &format!("{table}.{}", shown_name(name)),
                        "a variable name is letters, digits and `_`, not starting with a digit"
                            .into(),
                    );
                }
                if RESERVED.contains(&name.as_str()) {
                    return bad(&format!("{table}.{name}"), "the sandbox sets it itself".into());
                }
            }
        }
        for (name, value) in &self.env {
            if value.contains('\0') {
                return bad(&format!("env.{name}"), "the value contains a NUL byte".into());
            }
            if self.secrets.contains_key(name) {
                return bad(&format!("env.{name}"), "also defined as a secret".into());
            }
        }
        for (name, value) in &self.secrets {
            if value.len() < MIN_SECRET_LEN || value.contains('\0') {
                return bad(
                    &format!("secrets.{name}"),
                    format!(
                        "a secret must be at least {MIN_SECRET_LEN} bytes without NUL (it is \
                         redacted from logs wherever it appears)"
                    ),
                );
            }
        }
        if self.checks.len() > MAX_CHECKS {
            return bad(
                "checks",
                format!("at most {MAX_CHECKS} finish checks, not {}", self.checks.len()),
            );
        }
        for (i, check) in self.checks.iter().enumerate() {
            if check.trim().is_empty() || check.len() > 4096 || check.contains('\0') {
                return bad(
                    &format!("checks[{i}]"),
                    "a check is a shell command line of at most 4096 bytes".into(),
                );
            }
        }
        if self.snapshot_ttl.is_zero() {
            return bad("snapshot_ttl", "must be longer than zero".into());
        }
        if self.setup_timeout.is_zero() {
            return bad("setup_timeout", "must be longer than zero".into());
        }
        if self.mode == EnvironmentMode::Ask
            && (self.setup_script.is_some() || self.maintenance_script.is_some())
        {
            return bad("mode", "ask mode runs no setup; remove the scripts or the mode".into());
        }
        self.egress_policy()?;
        Ok(())
    }

    /// The agent phase's egress policy: `None` without `agent_network` (no network at all).
    pub fn egress_policy(&self) -> Result<Option<EgressPolicy>, InvalidEnvironment> {
        let Some(network) = &self.agent_network else { return Ok(None) };
        if network.allow.is_empty() {
            return Err(InvalidEnvironment {
                field: "agent_network.allow".into(),
                problem: "lists no domain; list the domains the agent may reach (e.g. \
                          [\"pypi.org\"]), or remove agent_network for no network at all"
                    .into(),
            });
        }
        network.policy().map(Some).map_err(|error| InvalidEnvironment {
            field: "agent_network.allow".into(),
            problem: error.to_string(),
        })
    }

    /// Whether attempts need a snapshot (a setup or maintenance script to run).
    pub fn needs_snapshot(&self) -> bool {
        self.mode == EnvironmentMode::Setup
            && (self.setup_script.is_some() || self.maintenance_script.is_some())
    }

    /// SHA-256 (hex) of everything that shapes the snapshot: base image, scripts, plain
    /// variables, and each secret's name with a hash of its value, so rotating a secret builds
    /// a new snapshot. TTL, timeouts, mode and the agent's network do not change what setup
    /// writes and are left out.
    pub fn config_hash(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            version: u32,
            base_image: &'a str,
            setup_script: Option<&'a str>,
            maintenance_script: Option<&'a str>,
            env: &'a BTreeMap<String, String>,
            secrets: BTreeMap<&'a str, String>,
        }
        let secrets = self
            .secrets
            .iter()
            .map(|(name, value)| (name.as_str(), hex(&Sha256::digest(value.as_bytes()))))
            .collect();
        let canonical = Canonical {
            version: 1,
            base_image: &self.base_image,
            setup_script: self.setup_script.as_deref(),
            maintenance_script: self.maintenance_script.as_deref(),
            env: &self.env,
            secrets,
        };
        // serde_json writes struct fields in declaration order and BTreeMaps sorted: one text
        // per configuration. Serialising strings and maps cannot fail.
        let text = serde_json::to_vec(&canonical).unwrap_or_default();
        hex(&Sha256::digest(&text))
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A name from a user's document as an error shows it: escaped (it may hold control characters)
/// and cut to 64 characters (it may be a megabyte long).
fn shown_name(name: &str) -> String {
    const SHOWN: usize = 64;
    let mut shown: String = name.chars().take(SHOWN).flat_map(char::escape_debug).collect();
    if name.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    shown
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Durations as people write them in TOML: `"12h"`, `"90m"`, `"2d"`, `"45s"`, or seconds.
mod duration_text {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}s", value.as_secs()))
    }

    /// A visitor rather than an untagged enum: serde's error for an untagged enum ("data did
    /// not match any variant") would not tell the user what to write.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration (\"12h\", \"30m\", \"2d\", \"45s\") or whole seconds")
            }
            fn visit_u64<E: Error>(self, seconds: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(seconds))
            }
            fn visit_i64<E: Error>(self, seconds: i64) -> Result<Duration, E> {
                u64::try_from(seconds)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom(format!("{seconds} is not a duration; {EXPECTED}")))
            }
            fn visit_str<E: Error>(self, text: &str) -> Result<Duration, E> {
                parse(text)
                    .ok_or_else(|| E::custom(format!("`{text}` is not a duration; {EXPECTED}")))
            }
        }
        deserializer.deserialize_any(Text)
    }

    const EXPECTED: &str =
        "write e.g. \"12h\", \"30m\", \"2d\" or \"45s\", or a whole number of seconds";

    pub fn parse(text: &str) -> Option<Duration> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit())?;
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().ok()?;
        let seconds = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            _ => return None,
        };
        number.checked_mul(seconds).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> EnvironmentSpec {
        EnvironmentSpec {
            setup_script: Some("npm ci".into()),
            env: [("NODE_ENV".to_string(), "test".to_string())].into(),
            secrets: [("TOKEN".to_string(), "s3cr3t-value".to_string())].into(),
            ..EnvironmentSpec::default()
        }
    }

    #[test]
    fn the_hash_changes_with_what_shapes_the_snapshot_and_only_that() {
        let base = spec().config_hash();
        assert_eq!(base.len(), 64);
        assert_eq!(base, spec().config_hash(), "deterministic");
        let changed = [
            EnvironmentSpec { setup_script: Some("npm install".into()), ..spec() },
            EnvironmentSpec { maintenance_script: Some("git pull".into()), ..spec() },
            EnvironmentSpec { base_image: "debian".into(), ..spec() },
            EnvironmentSpec { env: [("NODE_ENV".into(), "prod".into())].into(), ..spec() },
            EnvironmentSpec {
                secrets: [("TOKEN".into(), "rotated-value".into())].into(),
                ..spec()
            },
            EnvironmentSpec { secrets: [("OTHER".into(), "s3cr3t-value".into())].into(), ..spec() },
        ];
        for other in changed {
            assert_ne!(other.config_hash(), base, "{other:?}");
        }
        let same = [
            EnvironmentSpec { snapshot_ttl: Duration::from_secs(60), ..spec() },
            EnvironmentSpec {
                agent_network: Some(AgentNetwork {
                    allow: vec!["x.org".into()],
                    ..AgentNetwork::default()
                }),
                ..spec()
            },
            EnvironmentSpec { setup_timeout: Duration::from_secs(5), ..spec() },
            EnvironmentSpec { checks: vec!["cargo test".into()], ..spec() },
        ];
        for other in same {
            assert_eq!(other.config_hash(), base, "{other:?}");
        }
    }

    #[test]
    fn debug_output_names_secrets_but_never_shows_their_values() {
        let text = format!("{:?}", spec());
        assert!(text.contains("TOKEN"));
        assert!(!text.contains("s3cr3t-value"));
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (EnvironmentSpec { env: [("1X".into(), "v".into())].into(), ..spec() }, "env.1X"),
            (EnvironmentSpec { env: [("HOME".into(), "/".into())].into(), ..spec() }, "env.HOME"),
            (EnvironmentSpec { env: [("TOKEN".into(), "v".into())].into(), ..spec() }, "env.TOKEN"),
            (
                EnvironmentSpec { secrets: [("T".into(), "abc".into())].into(), ..spec() },
                "secrets.T",
            ),
            (EnvironmentSpec { snapshot_ttl: Duration::ZERO, ..spec() }, "snapshot_ttl"),
            (EnvironmentSpec { mode: EnvironmentMode::Ask, ..spec() }, "mode"),
            (EnvironmentSpec { base_image: "../x".into(), ..spec() }, "base_image"),
        ];
        for (bad, field) in cases {
            assert_eq!(bad.validate().unwrap_err().field, field);
        }
        spec().validate().unwrap();
    }

    #[test]
    fn durations_read_like_people_write_them() {
        let parse = duration_text::parse;
        assert_eq!(parse("12h"), Some(Duration::from_secs(43200)));
        assert_eq!(parse("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse("2d"), Some(Duration::from_secs(172800)));
        assert_eq!(parse("45s"), Some(Duration::from_secs(45)));
        for bad in ["", "h", "12", "1w", "-1h"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let json =
            r#"{"setup_script":"true","snapshot_ttl":"1h","agent_network":{"allow":["a.b"]}}"#;
        let spec: EnvironmentSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.snapshot_ttl, Duration::from_secs(3600));
        assert_eq!(
            spec.agent_network,
            Some(AgentNetwork { allow: vec!["a.b".into()], ..AgentNetwork::default() })
        );
        let seconds: EnvironmentSpec = serde_json::from_str(r#"{"snapshot_ttl":60}"#).unwrap();
        assert_eq!(seconds.snapshot_ttl, Duration::from_secs(60));
    }

    #[test]
    fn agent_network_is_none_or_a_table_checked_by_the_egress_policy() {
        let parse = |json: &str| serde_json::from_str::<EnvironmentSpec>(json);
        assert_eq!(parse("{}").unwrap().agent_network, None);
        assert_eq!(parse(r#"{"agent_network":"none"}"#).unwrap().agent_network, None);
        let spec = parse(
            r#"{"agent_network":{"allow":["pypi.org","*.pythonhosted.org"],"read_only":true,
                "allow_private":true}}"#,
        )
        .unwrap();
        let policy = spec.egress_policy().unwrap().unwrap();
        assert_eq!(policy.allow.len(), 2);
        assert_eq!(policy.methods, Methods::ReadOnly);
        assert!(policy.allow_private);
        let defaults = parse(r#"{"agent_network":{"allow":["pypi.org"]}}"#).unwrap();
        let policy = defaults.egress_policy().unwrap().unwrap();
        assert_eq!((policy.methods, policy.allow_private), (Methods::AllMethods, false));
        // It round-trips, "none" included.
        for spec in [spec, defaults, EnvironmentSpec::default()] {
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(parse(&json).unwrap(), spec, "{json}");
        }

        for (json, needle) in [
            (r#"{"agent_network":"all"}"#, "`all` is not a network policy"),
            (r#"{"agent_network":{"allow":["a.b"],"readonly":true}}"#, "readonly"),
            (r#"{"agent_network":{"read_only":true}}"#, "allow"),
        ] {
            let error = parse(json).unwrap_err().to_string();
            assert!(error.contains(needle), "{json}: {error}");
        }
        for (allow, needle) in [
            (vec![], "lists no domain"),
            (vec!["pypi.org".to_string(), "https://x.org".into()], "`https://x.org`"),
            (vec!["*".to_string()], "every domain"),
        ] {
            let spec = EnvironmentSpec {
                agent_network: Some(AgentNetwork { allow, ..AgentNetwork::default() }),
                ..EnvironmentSpec::default()
            };
            let error = spec.validate().unwrap_err();
            assert_eq!(error.field, "agent_network.allow");
            assert!(error.to_string().contains(needle), "{error}");
        }
    }
}
