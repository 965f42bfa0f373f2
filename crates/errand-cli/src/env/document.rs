//! An environment as the store holds it: the JSON of its file with every default written out,
//! and secrets as they were given: a value, or a `{ "env": "VARIABLE" }` reference resolved only
//! where the environment is used. Also the two views of it: resolved (to run it) and redacted (to
//! show it).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use errand_sandbox::{EnvironmentSpec, MIN_SECRET_LEN};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SECRET_SHOWN_AS;

/// Where a secret's value comes from, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum SecretSource {
    /// Written in the environment file, so stored in the database.
    Value(String),
    /// Read from the environment of the process that uses the environment.
    Env { env: String },
}

pub(super) fn read_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the environment file {}", path.display()))?;
    document_from_toml(&text).with_context(|| format!("in the environment file {}", path.display()))
}

/// The stored JSON of an environment file: checked exactly like `errand exec --env FILE` checks
/// it, except that `{ env = "VARIABLE" }` secrets stay references (their values are only known
/// where the environment is used).
fn document_from_toml(text: &str) -> anyhow::Result<String> {
    let mut table: toml::Table = toml::from_str(text)?;
    let mut sources = BTreeMap::new();
    if let Some(secrets) = table.get_mut("secrets") {
        let Some(secrets) = secrets.as_table_mut() else {
            bail!("secrets: write a table of NAME = \"value\" or NAME = {{ env = \"VARIABLE\" }}");
        };
        for (name, value) in secrets.iter_mut() {
            let source = match value {
                toml::Value::String(text) => SecretSource::Value(text.clone()),
                toml::Value::Table(reference) => {
                    match (reference.get("env").and_then(toml::Value::as_str), reference.len()) {
                        (Some(variable), 1) if !variable.is_empty() => {
                            SecretSource::Env { env: variable.to_string() }
                        }
                        _ => bail!(
                            "secrets.{name}: write a value, or {{ env = \"VARIABLE\" }} to read it from the environment"
                        ),
                    }
                }
                _ => bail!("secrets.{name}: write a value in quotes, or {{ env = \"VARIABLE\" }}"),
            };
            // Validation sees a stand-in for a reference, long enough to pass: the real value is
            // checked where the environment is used.
            if let SecretSource::Env { .. } = source {
                *value = toml::Value::String("x".repeat(MIN_SECRET_LEN));
            }
            sources.insert(name.clone(), source);
        }
    }
    let spec: EnvironmentSpec = table.try_into()?;
    spec.validate()?;
    let mut document = match serde_json::to_value(&spec)? {
        Value::Object(document) => document,
        _ => bail!("an environment serialises to a JSON object"),
    };
    document.retain(|_, value| !value.is_null());
    document.insert("secrets".into(), serde_json::to_value(&sources)?);
    Ok(Value::Object(document).to_string())
}

pub(super) fn stored_object(config_json: &str) -> anyhow::Result<Map<String, Value>> {
    match serde_json::from_str(config_json) {
        Ok(Value::Object(document)) => Ok(document),
        Ok(_) => bail!("the stored configuration is not a JSON object"),
        Err(e) => bail!("the stored configuration is not JSON: {e}"),
    }
}

/// The environment an environment file describes, `{ env = "VARIABLE" }` secrets resolved through
/// `host_env`: the stored form of the file, resolved as a stored environment is, so a file and a
/// stored environment are checked and resolved by the same code.
pub(crate) fn spec_from_toml(
    name: &str,
    text: &str,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<EnvironmentSpec> {
    resolve(name, &document_from_toml(text)?, host_env)
}

/// The environment a stored configuration describes, references resolved through `host_env`.
pub(super) fn resolve(
    name: &str,
    config_json: &str,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<EnvironmentSpec> {
    let mut document = stored_object(config_json)?;
    let sources: BTreeMap<String, SecretSource> = match document.remove("secrets") {
        Some(secrets) => serde_json::from_value(secrets).context("the stored secrets")?,
        None => BTreeMap::new(),
    };
    let mut secrets = Map::new();
    for (secret, source) in sources {
        let value = match source {
            SecretSource::Value(value) => value,
            SecretSource::Env { env } => host_env(&env).filter(|v| !v.is_empty()).with_context(
                || {
                    format!(
                        "environment `{name}`: secrets.{secret} is read from the variable {env}, which is not set here"
                    )
                },
            )?,
        };
        secrets.insert(secret, Value::String(value));
    }
    document.insert("secrets".into(), Value::Object(secrets));
    let spec: EnvironmentSpec = serde_json::from_value(Value::Object(document))
        .with_context(|| format!("environment `{name}` as stored"))?;
    spec.validate().with_context(|| format!("environment `{name}`"))?;
    Ok(spec)
}

/// The stored configuration with every secret value replaced by [`SECRET_SHOWN_AS`];
/// references (`{ "env": "VARIABLE" }`) are kept, they hold no secret.
pub(super) fn redacted(config_json: &str) -> anyhow::Result<Map<String, Value>> {
    let mut document = stored_object(config_json)?;
    if let Some(secrets) = document.get_mut("secrets") {
        let sources: BTreeMap<String, SecretSource> =
            serde_json::from_value(secrets.clone()).unwrap_or_default();
        let mut shown = Map::new();
        let names: Vec<String> = match &*secrets {
            Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        for name in names {
            let value = match sources.get(&name) {
                Some(SecretSource::Env { env }) => serde_json::json!({ "env": env }),
                _ => Value::String(SECRET_SHOWN_AS.into()),
            };
            shown.insert(name, value);
        }
        *secrets = Value::Object(shown);
    }
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
setup_script = "npm ci"
[env]
NODE_ENV = "test"
[secrets]
INLINE = "inline-secret-value"
FROM_HOST = { env = "HOST_TOKEN" }
"#;

    #[test]
    fn references_stay_references_and_resolve_at_use() {
        let json = document_from_toml(FILE).unwrap();
        assert!(json.contains(r#""FROM_HOST":{"env":"HOST_TOKEN"}"#), "{json}");
        let host = |var: &str| (var == "HOST_TOKEN").then(|| "host-value".to_string());
        let spec = resolve("web", &json, &host).unwrap();
        assert_eq!(spec.secrets["FROM_HOST"], "host-value");
        assert_eq!(spec.secrets["INLINE"], "inline-secret-value");
        assert_eq!(spec.setup_script.as_deref(), Some("npm ci"));
        let err = resolve("web", &json, &|_| None).unwrap_err();
        assert!(format!("{err:#}").contains("HOST_TOKEN, which is not set"), "{err:#}");
    }

    #[test]
    fn shown_configurations_hold_no_secret_value() {
        let shown = Value::Object(redacted(&document_from_toml(FILE).unwrap()).unwrap());
        let text = shown.to_string();
        assert!(!text.contains("inline-secret-value"), "{text}");
        assert_eq!(shown["secrets"]["INLINE"], SECRET_SHOWN_AS);
        assert_eq!(shown["secrets"]["FROM_HOST"]["env"], "HOST_TOKEN");
        assert_eq!(shown["env"]["NODE_ENV"], "test");
    }

    #[test]
    fn bad_files_name_the_key() {
        for (text, key) in [
            ("setup_scrpit = \"x\"", "setup_scrpit"),
            ("[secrets]\nT = { file = \"x\" }", "secrets.T"),
            ("[secrets]\nT = 5", "secrets.T"),
            ("[secrets]\nT = \"ab\"", "secrets.T"),
            ("[env]\nHOME = \"/\"", "env.HOME"),
        ] {
            let err = format!("{:#}", document_from_toml(text).unwrap_err());
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }
}
