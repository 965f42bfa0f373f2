//! An environment as Errand stores it (a stored environment's `config_json`): a JSON object with
//! every setting of [`EnvironmentSpec`] written out, and secrets as they were given: a value, or
//! a `{"env": "VARIABLE"}` reference resolved only where the environment is used, so a referenced
//! value never reaches the store (docs/security.md).
//!
//! Three operations, shared by every client so that a document is accepted, run and shown by the
//! same rules wherever it comes from (an `errand env` file, an HTTP request, a worker):
//! [`stored_document`] checks what a user gave and returns the text to store;
//! [`resolve_document`] turns stored text into the [`EnvironmentSpec`] to run;
//! [`redacted_document`] is the view that is safe to show.
//!
//! Input may come from anyone with an API token: every refusal is a [`DocumentError`] naming the
//! setting, never a panic, and nothing here recurses over the caller's JSON beyond what serde
//! does (and `serde_json` refuses text nested deeper than 128 levels).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{EnvironmentSpec, InvalidEnvironment, MIN_SECRET_LEN, shown_name};

/// What [`redacted_document`] shows instead of a secret's value.
pub const SECRET_SHOWN_AS: &str = "[secret]";

/// Largest stored document accepted, in bytes of canonical JSON. Every plain variable and secret
/// ends up in the environment of a process, whose whole argument and environment block Linux
/// caps at about 2 MiB (`ARG_MAX`); far below, the scripts and variables of any real project fit.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// The settings of a document: the fields of [`EnvironmentSpec`], checked against its
/// serialised form by a test, so an unknown key is refused with the list of known ones.
const SETTINGS: &[&str] = &[
    "mode",
    "base_image",
    "setup_script",
    "maintenance_script",
    "env",
    "secrets",
    "snapshot_ttl",
    "setup_timeout",
    "agent_network",
    "checks",
];

/// Why a document is refused, or a stored one cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// A setting breaks a rule (unknown key, wrong type, bad secret, what
    /// [`EnvironmentSpec::validate`] refuses); the field names it. The caller's mistake.
    #[error(transparent)]
    Invalid(#[from] InvalidEnvironment),
    /// The document is JSON but not an object of settings.
    #[error("an environment is a JSON object of settings, not {found}")]
    NotAnObject { found: &'static str },
    /// The canonical document would exceed [`MAX_DOCUMENT_BYTES`].
    #[error(
        "the environment is {bytes} bytes as stored; at most {MAX_DOCUMENT_BYTES} are accepted \
         (move large scripts into the repository and call them)"
    )]
    TooLarge { bytes: usize },
    /// Stored text that is not JSON: a damaged row, not the user's doing.
    #[error("the stored environment is not JSON: {0}")]
    NotJson(String),
    /// A secret reference whose variable is not set (or empty) where the environment is used.
    #[error(
        "environment `{environment}`: secrets.{secret} is read from the variable {variable}, \
         which is not set here"
    )]
    MissingVariable { environment: String, secret: String, variable: String },
}

/// Where a secret's value comes from, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretSource {
    /// Given in the document, so stored with it.
    Value(String),
    /// Read from the environment variables of the process that uses the environment.
    Env(String),
}

impl SecretSource {
    fn to_json(&self) -> Value {
        match self {
            SecretSource::Value(value) => Value::String(value.clone()),
            SecretSource::Env(variable) => serde_json::json!({ "env": variable }),
        }
    }
}

/// A document that passed every check: its spec, with a stand-in value for each referenced
/// secret (long enough to pass validation; the real value is checked where it is resolved), and
/// each secret's source.
struct Checked {
    spec: EnvironmentSpec,
    sources: BTreeMap<String, SecretSource>,
}

/// Whether `name` may name an environment: letters, digits, `-` and `_`, at most 64, starting
/// with a letter or digit (so it is never mistaken for an option or a path).
pub fn is_environment_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks an environment document (an object of the settings of [`EnvironmentSpec`]; secrets
/// as `"value"` or `{"env": "VARIABLE"}`) and returns the JSON text to store: every default
/// written out, keys sorted, so equal configurations store equal text (and hash alike).
///
/// Refused with an error naming the setting: unknown keys, values of the wrong type, secrets of
/// any other shape, and whatever [`EnvironmentSpec::validate`] refuses (a secret shorter than
/// [`MIN_SECRET_LEN`], reserved or malformed variable names, …). A referenced secret's value is
/// not known here and is checked by [`resolve_document`].
pub fn stored_document(document: Value) -> Result<String, DocumentError> {
    let Checked { spec, sources } = check(document)?;
    // Serialising the spec cannot fail: its maps have string keys and no field has a fallible
    // serialiser; and a struct serialises to an object.
    let Ok(Value::Object(mut stored)) = serde_json::to_value(&spec) else {
        unreachable!("an EnvironmentSpec serialises to a JSON object")
    };
    stored.retain(|_, value| !value.is_null());
    let secrets = sources.iter().map(|(name, source)| (name.clone(), source.to_json())).collect();
    stored.insert("secrets".into(), Value::Object(secrets));
    let text = Value::Object(stored).to_string();
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge { bytes: text.len() });
    }
    Ok(text)
}

/// The environment a stored document describes, each `{"env": "VARIABLE"}` secret read through
/// `lookup` (the environment variables of the process that runs it, in the CLI and the workers).
/// `name` is the environment's, for the error a missing variable gives.
///
/// The stored text is checked by the same rules as [`stored_document`]'s input, and the
/// resolved secrets once more (a referenced value must be long enough to redact too).
pub fn resolve_document(
    name: &str,
    config_json: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<EnvironmentSpec, DocumentError> {
    let Checked { mut spec, sources } = check(parse_stored(config_json)?)?;
    for (secret, source) in sources {
        if let SecretSource::Env(variable) = source {
            let value = lookup(&variable).filter(|value| !value.is_empty()).ok_or_else(|| {
                DocumentError::MissingVariable {
                    environment: name.to_string(),
                    secret: secret.clone(),
                    variable,
                }
            })?;
            spec.secrets.insert(secret, value);
        }
    }
    spec.validate()?;
    Ok(spec)
}

/// A stored document as it may be shown: every secret value replaced by [`SECRET_SHOWN_AS`],
/// references (`{"env": "VARIABLE"}`) kept, since they hold no secret. Anything else in
/// `secrets` that is not a reference is hidden too, whatever its shape.
pub fn redacted_document(config_json: &str) -> Result<Map<String, Value>, DocumentError> {
    let mut document = match parse_stored(config_json)? {
        Value::Object(document) => document,
        other => return Err(DocumentError::NotAnObject { found: kind(&other) }),
    };
    match document.get_mut("secrets") {
        None => {}
        Some(Value::Object(secrets)) => {
            for value in secrets.values_mut() {
                let reference = matches!(value, Value::Object(reference)
                    if reference.len() == 1 && reference.get("env").is_some_and(Value::is_string));
                if !reference {
                    *value = Value::String(SECRET_SHOWN_AS.into());
                }
            }
        }
        // Not a table of secrets: show nothing of it.
        Some(other) => *other = Value::String(SECRET_SHOWN_AS.into()),
    }
    Ok(document)
}

fn parse_stored(config_json: &str) -> Result<Value, DocumentError> {
    serde_json::from_str(config_json).map_err(|e| DocumentError::NotJson(e.to_string()))
}

/// Every check of a document, shared by what is stored and what is resolved.
fn check(document: Value) -> Result<Checked, DocumentError> {
    let mut document = match document {
        Value::Object(document) => document,
        other => return Err(DocumentError::NotAnObject { found: kind(&other) }),
    };
    if let Some(key) = document.keys().find(|key| !SETTINGS.contains(&key.as_str())) {
        return Err(invalid(
            shown_name(key),
            format!("not a setting; the settings are {}", SETTINGS.join(", ")),
        ));
    }
    let sources = match document.remove("secrets") {
        Some(secrets) => secret_sources(secrets)?,
        None => BTreeMap::new(),
    };
    let rest = Value::Object(document);
    let mut spec = match EnvironmentSpec::deserialize(&rest) {
        Ok(spec) => spec,
        Err(error) => return Err(name_the_setting(&rest, error)),
    };
    spec.secrets = sources
        .iter()
        .map(|(name, source)| {
            let value = match source {
                SecretSource::Value(value) => value.clone(),
                SecretSource::Env(_) => "x".repeat(MIN_SECRET_LEN),
            };
            (name.clone(), value)
        })
        .collect();
    spec.validate()?;
    Ok(Checked { spec, sources })
}

/// `secrets`: an object of `NAME: "value"` or `NAME: {"env": "VARIABLE"}`.
fn secret_sources(secrets: Value) -> Result<BTreeMap<String, SecretSource>, DocumentError> {
    let Value::Object(secrets) = secrets else {
        return Err(invalid(
            "secrets".into(),
            "write an object of NAME: \"value\" or NAME: {\"env\": \"VARIABLE\"}".into(),
        ));
    };
    let mut sources = BTreeMap::new();
    for (name, value) in secrets {
        let Some(source) = secret_source(value) else {
            return Err(invalid(
                format!("secrets.{}", shown_name(&name)),
                "write the value as a string, or {\"env\": \"VARIABLE\"} (in TOML: \
                 { env = \"VARIABLE\" }) to read it from the environment where it is used"
                    .into(),
            ));
        };
        if let SecretSource::Env(variable) = &source {
            // `=` and NUL cannot be in a variable's name: no process environment holds one.
            if variable.is_empty() || variable.contains(['=', '\0']) {
                return Err(invalid(
                    format!("secrets.{}", shown_name(&name)),
                    format!("`{}` cannot name an environment variable", shown_name(variable)),
                ));
            }
        }
        sources.insert(name, source);
    }
    Ok(sources)
}

/// One secret's source, if it has one of the two shapes.
fn secret_source(value: Value) -> Option<SecretSource> {
    match value {
        Value::String(value) => Some(SecretSource::Value(value)),
        Value::Object(mut reference) if reference.len() == 1 => match reference.remove("env") {
            Some(Value::String(variable)) => Some(SecretSource::Env(variable)),
            _ => None,
        },
        _ => None,
    }
}

/// serde_json's error for a whole document names the type it wanted, not the key: read each
/// setting alone to find the one that is wrong. Only on the error path, so the copies are paid
/// for by refused documents alone.
fn name_the_setting(document: &Value, whole: serde_json::Error) -> DocumentError {
    if let Value::Object(settings) = document {
        for (key, value) in settings {
            let alone = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
            if let Err(error) = EnvironmentSpec::deserialize(&alone) {
                return invalid(shown_name(key), error.to_string());
            }
        }
    }
    invalid("(document)".into(), whole.to_string())
}

fn invalid(field: String, problem: String) -> DocumentError {
    DocumentError::Invalid(InvalidEnvironment { field, problem })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_are_the_fields_of_the_spec() {
        let Value::Object(fields) = serde_json::to_value(EnvironmentSpec::default()).unwrap()
        else {
            panic!("not an object")
        };
        let mut fields: Vec<&str> = fields.keys().map(String::as_str).collect();
        let mut settings = SETTINGS.to_vec();
        fields.sort_unstable();
        settings.sort_unstable();
        assert_eq!(fields, settings);
    }
}
