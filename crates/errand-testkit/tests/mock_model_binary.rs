//! `errand-mock-model` announces its URL on stdout and serves the script.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn binary_serves_a_script_file() {
    let dir = std::env::temp_dir().join(format!("errand-mock-model-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script.toml");
    std::fs::write(&script, "[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"hello\"\n")
        .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_errand-mock-model"))
        .arg("--script")
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("errand-mock-model listening on ").unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"), "{line}");

    let text = reqwest::Client::new()
        .post(format!("{base}/responses"))
        .json(&serde_json::json!({"model": "m", "input": []}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(text.contains("event: response.completed"), "{text}");
    assert!(text.contains("\"text\":\"hello\""), "{text}");
}

#[test]
fn bad_arguments_exit_2_with_usage() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_errand-mock-model")).arg("--bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown argument `--bogus`") && stderr.contains("usage:"), "{stderr}");
}
