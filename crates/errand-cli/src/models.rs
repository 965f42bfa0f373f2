//! `errand models check`: is the configured model reachable, how fast, and can it call tools.

use errand_model::{ModelClient, ModelError};

use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Send a tiny request to the configured model: latency, and whether tool calls work.
    Check,
}

pub async fn run(command: ModelsCommand, config: Config) -> anyhow::Result<i32> {
    match command {
        ModelsCommand::Check => check(config).await,
    }
}

async fn check(config: Config) -> anyhow::Result<i32> {
    let mut model_config = config.model_config();
    // A check answers quickly: one retry at most.
    model_config.max_retries = model_config.max_retries.min(1);
    let endpoint = model_config.base_url.clone();
    println!("model {} at {} ({})", model_config.model, endpoint, config.model.provider);
    if model_config.api_key.is_none() {
        println!("note: {} is not set; sending no key", config.model.api_key_env());
    }
    let client = ModelClient::new(model_config)?;
    match errand_agent::check_model(&client).await {
        Ok(check) => {
            println!("latency: {} ms", check.latency.as_millis());
            match (&check.tool_call, check.tool_calls_work) {
                (Some(call), true) => println!("tool calls: ok ({call})"),
                (Some(call), false) => {
                    println!("tool calls: the model called a tool, but not as asked ({call})")
                }
                (None, _) => println!(
                    "tool calls: none — the model answered with text instead{}",
                    if check.text.is_empty() {
                        String::new()
                    } else {
                        format!(": {:?}", shorten(&check.text))
                    }
                ),
            }
            if check.tool_calls_work {
                Ok(0)
            } else {
                println!(
                    "Errand's agent needs tool calls: choose a model or server that supports them"
                );
                Ok(1)
            }
        }
        Err(e) => {
            println!("error: {}", advice(&e, &endpoint, &config.model.api_key_env()));
            Ok(1)
        }
    }
}

/// One line a user can act on.
fn advice(error: &ModelError, endpoint: &str, key_env: &str) -> String {
    match error {
        ModelError::Unauthorized { .. } => {
            format!(
                "the endpoint refused the key ({error}); set {key_env} to a valid key for {endpoint}"
            )
        }
        ModelError::RetriesExhausted { last_error, .. } if last_error.contains("cannot reach") => {
            format!(
                "cannot connect to {endpoint} ({last_error}); is the server running, and is ERRAND_MODEL_BASE_URL right?"
            )
        }
        other => other.to_string(),
    }
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text.to_string()
    }
}
