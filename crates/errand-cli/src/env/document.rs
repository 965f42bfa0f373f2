//! Environment files: TOML text read into the JSON document the store keeps. Checking,
//! resolving and redacting a document are `errand_sandbox`'s ([`stored_document`],
//! [`resolve_document`]), shared with the HTTP API and the workers; only TOML is the CLI's.

use std::path::Path;

use anyhow::Context;
use errand_sandbox::{EnvironmentSpec, resolve_document, stored_document};

pub(super) fn read_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the environment file {}", path.display()))?;
    document_from_toml(&text).with_context(|| format!("in the environment file {}", path.display()))
}

/// The stored JSON of an environment file: checked exactly like a document sent to the HTTP
/// API, `{ env = "VARIABLE" }` secrets kept as references (their values are only known where the
/// environment is used).
fn document_from_toml(text: &str) -> anyhow::Result<String> {
    let table: toml::Table = toml::from_str(text)?;
    Ok(stored_document(serde_json::to_value(table)?)?)
}

/// The environment an environment file describes, `{ env = "VARIABLE" }` secrets resolved through
/// `host_env`: the stored form of the file, resolved as a stored environment is, so a file and a
/// stored environment are checked and resolved by the same code.
pub(crate) fn spec_from_toml(
    name: &str,
    text: &str,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<EnvironmentSpec> {
    Ok(resolve_document(name, &document_from_toml(text)?, host_env)?)
}

#[cfg(test)]
mod tests {
    use errand_sandbox::{SECRET_SHOWN_AS, redacted_document};
    use serde_json::Value;

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
        let spec = resolve_document("web", &json, &host).unwrap();
        assert_eq!(spec.secrets["FROM_HOST"], "host-value");
        assert_eq!(spec.secrets["INLINE"], "inline-secret-value");
        assert_eq!(spec.setup_script.as_deref(), Some("npm ci"));
        let err = resolve_document("web", &json, &|_| None).unwrap_err();
        assert!(format!("{err:#}").contains("HOST_TOKEN, which is not set"), "{err:#}");
    }

    #[test]
    fn shown_configurations_hold_no_secret_value() {
        let shown = Value::Object(redacted_document(&document_from_toml(FILE).unwrap()).unwrap());
        let text = shown.to_string();
        assert!(!text.contains("inline-secret-value"), "{text}");
        assert_eq!(shown["secrets"]["INLINE"], SECRET_SHOWN_AS);
        assert_eq!(shown["secrets"]["FROM_HOST"]["env"], "HOST_TOKEN");
        assert_eq!(shown["env"]["NODE_ENV"], "test");
    }

    #[test]
    fn a_file_is_stored_as_the_same_document_sent_as_json() {
        let json = serde_json::json!({
            "setup_script": "npm ci",
            "env": { "NODE_ENV": "test" },
            "secrets": { "INLINE": "inline-secret-value", "FROM_HOST": { "env": "HOST_TOKEN" } },
        });
        assert_eq!(document_from_toml(FILE).unwrap(), stored_document(json).unwrap());
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
