//! `errand models check` through the real binary against the scripted model.

use errand_testkit::{Script, ScriptedModel};

async fn check(base_url: &str) -> (Option<i32>, String) {
    check_with(base_url, &[("OPENAI_API_KEY", "test-key")]).await
}

/// `errand models check` with these variables besides the base URL and the model name.
async fn check_with(base_url: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["models", "check"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home.path())
        .env("ERRAND_MODEL_BASE_URL", base_url)
        .env("ERRAND_MODEL", "scripted")
        .env("ERRAND_MODEL_RETRY_BASE_DELAY_MS", "10")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

async fn scripted(script: &str) -> ScriptedModel {
    ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_model_that_calls_the_tool_passes() {
    let model = scripted(
        r#"
[[turns]]
expect.tools = ["echo"]
[[turns.output]]
type = "function_call"
name = "echo"
arguments = { text = "errand" }
"#,
    )
    .await;
    let (code, out) = check(&model.base_url()).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("latency: "), "{out}");
    assert!(out.contains(r#"tool calls: ok (echo {"text":"errand"})"#), "{out}");
    model.verify().unwrap();
}

#[tokio::test]
async fn a_model_that_only_talks_fails_with_advice() {
    let model =
        scripted("[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"errand\"\n").await;
    let (code, out) = check(&model.base_url()).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("tool calls: none — the model answered with text instead: \"errand\""),
        "{out}"
    );
    assert!(out.contains("needs tool calls"), "{out}");
}

#[tokio::test]
async fn a_rejected_key_says_which_variable_to_set() {
    let model = scripted(
        "[[turns]]\n[turns.fault]\nstatus = 401\n[[turns.output]]\ntype = \"message\"\ntext = \"x\"\n",
    )
    .await;
    let (code, out) = check(&model.base_url()).await;
    assert_eq!(code, Some(1), "{out}");
    let error = out.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{out}"));
    assert!(error.contains("set OPENAI_API_KEY to a valid key"), "{out}");
}

#[tokio::test]
async fn nothing_listening_says_to_check_the_url() {
    // Bind then drop a listener: the port is free and nothing answers on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, out) = check(&format!("http://127.0.0.1:{port}/v1")).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot connect to http://127.0.0.1:"), "{out}");
    assert!(out.contains("ERRAND_MODEL_BASE_URL"), "{out}");
}

const CALLS_ECHO: &str = r#"
[[turns]]
expect.tools = ["echo"]
[[turns.output]]
type = "function_call"
name = "echo"
arguments = { text = "errand" }
"#;

#[tokio::test]
async fn anthropic_is_checked_with_its_own_key_variable() {
    let model = scripted(CALLS_ECHO).await;
    let env = [("ERRAND_MODEL_PROVIDER", "anthropic"), ("ANTHROPIC_API_KEY", "sk-ant-check")];
    let (code, out) = check_with(&model.base_url(), &env).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(anthropic)"), "{out}");
    assert!(out.contains(r#"tool calls: ok (echo {"text":"errand"})"#), "{out}");
    assert_eq!(model.request_header(0, "x-api-key").as_deref(), Some("sk-ant-check"));
    assert!(model.requests()[0].get("messages").is_some(), "a Messages request");
    model.verify().unwrap();
}

#[tokio::test]
async fn anthropic_without_a_key_says_to_set_anthropic_api_key() {
    let model = scripted(CALLS_ECHO).await;
    // The OpenAI key is not the Anthropic one.
    let env = [("ERRAND_MODEL_PROVIDER", "anthropic"), ("OPENAI_API_KEY", "sk-openai")];
    let (code, out) = check_with(&model.base_url(), &env).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("note: ANTHROPIC_API_KEY is not set; sending no key"), "{out}");
    let error = out.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{out}"));
    assert!(error.contains("x-api-key header is required"), "{error}");
    assert!(error.contains("set ANTHROPIC_API_KEY to a valid key"), "{error}");
}
