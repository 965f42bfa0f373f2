//! What the client tests of every wire protocol share: a scripted server, a client
//! configuration with fast retries, a turn run that collects progress, and a typical request.

use std::time::Duration;

use errand_model::{
    Item, ModelClient, ModelConfig, ModelError, ModelProgress, ModelRequest, ModelTurn, Provider,
    Role, ToolSpec,
};
use errand_testkit::{Script, ScriptedModel};
use serde_json::json;

pub const PATCH: &str = "*** Begin Patch\n*** Update File: a.rs\n@@\n-x\n+y\n*** End Patch\n";

pub async fn serve(script: &str) -> ScriptedModel {
    ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap()
}

/// `provider` at `base_url`, model `test-model`, key `sk-test`, retries 1 ms apart.
pub fn config(base_url: String, provider: Provider, max_retries: u32) -> ModelConfig {
    ModelConfig {
        base_url,
        model: "test-model".into(),
        api_key: Some("sk-test".into()),
        max_retries,
        retry_base_delay: Duration::from_millis(1),
        idle_timeout: Duration::from_secs(10),
        reasoning_effort: None,
        provider,
        max_output_tokens: None,
    }
}

/// Runs a turn, collecting its progress.
pub async fn run(
    client: &ModelClient,
    request: &ModelRequest,
) -> (Result<ModelTurn, ModelError>, Vec<ModelProgress>) {
    let mut seen = Vec::new();
    let result = client.turn(request, &mut |p| seen.push(p)).await;
    (result, seen)
}

/// AGENTS.md, the task, then `input`; a shell function and a freeform `apply_patch`; parallel
/// calls allowed.
pub fn request(input: Vec<Item>) -> ModelRequest {
    let mut all = vec![
        Item::Message { role: Role::Developer, text: "AGENTS.md: run tests".into() },
        Item::Message { role: Role::User, text: "fix the test".into() },
    ];
    all.extend(input);
    ModelRequest {
        instructions: "You are Errand.".into(),
        input: all,
        tools: vec![
            ToolSpec::Function {
                name: "shell".into(),
                description: "Runs a command.".into(),
                parameters: json!({"type": "object", "properties": {"command": {"type": "array"}}}),
            },
            ToolSpec::Freeform {
                name: "apply_patch".into(),
                description: "Applies a patch.".into(),
                format: None,
            },
        ],
        parallel_tool_calls: true,
    }
}
