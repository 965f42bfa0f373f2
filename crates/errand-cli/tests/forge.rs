//! Delivery and triggers end to end through the real `errand serve`: a repository served over
//! smart HTTP behind a token, a fake GitHub that checks every request against GitHub's published
//! API description (`errand_testkit::forge`), the scripted model and real sandboxes. A signed
//! webhook for an `@errand` comment starts a task; the server answers on the issue, runs the
//! attempt from its mirror, opens the pull request and reports it on the issue; a follow-up
//! updates the same pull request (`errand task pr`); a replayed delivery does nothing.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use common::server::{ServeOptions, TestServer};
use common::{git, make_repo, model_config, sandbox_available, scratch};
use errand_server::triggers::hmac_sha256;
use errand_testkit::forge::{ConformingForge, ForgeSetup, Kind};
use errand_testkit::git_http::GitHttpServer;
use errand_testkit::{Script, ScriptedModel, wait_until};
use serde_json::{Value, json};

const GIT_TOKEN: &str = "e2e-git-token-31";
const FORGE_TOKEN: &str = "e2e-forge-token-32";
const HOOK_SECRET: &str = "e2e-hook-secret-33";

/// The fix, its report; then a follow-up that documents `add`, and its report.
const SCRIPT: &str = r#"
[[turns]]
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: calc.py
 def add(a, b):
-    return a - b
+    return a + b
*** End Patch
"""

[[turns]]
[[turns.output]]
type = "message"
text = """
Make add() add

`add` subtracted its arguments (calc.py:L1-L2); it now adds them.
"""

[[turns]]
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: calc.py
 def add(a, b):
+    \"\"\"The sum of a and b.\"\"\"
     return a + b
*** End Patch
"""

[[turns]]
[[turns.output]]
type = "message"
text = """
Make add() add, documented

`add` now adds (calc.py:L1-L3) and says so.
"""
"#;

#[tokio::test]
async fn a_webhook_mention_becomes_a_pull_request_that_a_follow_up_updates() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let served = root.path().join("served");
    std::fs::create_dir_all(served.join("o")).unwrap();
    git(&served.join("o"), &["clone", "-q", "--bare", repo.to_str().unwrap(), "project.git"]);
    let remote = served.join("o/project.git");
    let git_server = GitHttpServer::start(&served, "x-access-token", GIT_TOKEN).await.unwrap();
    let clone_url = git_server.url("o/project.git");
    let setup = ForgeSetup {
        owner: "o".into(),
        name: "project".into(),
        token: FORGE_TOKEN.into(),
        web_base: Some("https://github.example".into()),
        ..ForgeSetup::default()
    };
    let Some(github) = ConformingForge::start_with(Kind::GitHub, setup).await else { return };
    // The issue the delivery below is about; the pull request is numbered after it.
    github.add_issue_numbered(5, "add() is wrong", Some("The test fails."), None);
    let api_base = &github.api_base;
    let model = ScriptedModel::start(Script::from_toml(SCRIPT).unwrap()).await.unwrap();
    let config = format!(
        "{}\n[server]\npublic_url = \"https://errand.example\"\n\n\
         [[forges]]\nkind = \"github\"\nhost = \"127.0.0.1\"\napi_base = \"{api_base}\"\n\
         web_base = \"https://github.example\"\ntoken_env = \"E2E_FORGE_TOKEN\"\n\
         webhook_secret_env = \"E2E_HOOK_SECRET\"\nallowed_users = [\"octocat\"]\n\n\
         [[git.credentials]]\nhost = \"127.0.0.1\"\ntoken_env = \"E2E_GIT_TOKEN\"\n",
        model_config(&model, "openai-responses", 30)
    );
    let options = ServeOptions {
        config,
        workers: Some(1),
        env: vec![
            ("E2E_FORGE_TOKEN".into(), FORGE_TOKEN.into()),
            ("E2E_HOOK_SECRET".into(), HOOK_SECRET.into()),
            ("E2E_GIT_TOKEN".into(), GIT_TOKEN.into()),
        ],
    };
    let server = TestServer::start(root.path(), options).await;

    // The forge tells Errand about a comment.
    let payload = json!({
        "action": "created",
        "issue": {"number": 5, "title": "add() is wrong", "body": "The test fails.", "html_url": "https://github.example/o/project/issues/5"},
        "comment": {"body": "@errand fix the failing test", "user": {"login": "octocat"}},
        "repository": {"full_name": "o/project", "clone_url": clone_url},
        "sender": {"login": "octocat"},
    });
    let body = serde_json::to_vec(&payload).unwrap();
    let signature = format!(
        "sha256={}",
        hmac_sha256(HOOK_SECRET.as_bytes(), &body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let deliver = || {
        reqwest::Client::new()
            .post(format!("{}/hooks/127.0.0.1", server.url()))
            .header("x-github-event", "issue_comment")
            .header("x-github-delivery", "delivery-1")
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
    };
    let response = deliver().await.unwrap();
    assert_eq!(response.status(), 201, "{}", server.log());
    let task = response.json::<Value>().await.unwrap()["task"].as_str().unwrap().to_string();
    let comments = |prefix: &'static str| {
        let github = &github;
        move || async move {
            github.requests().iter().any(|r| {
                r.method == "POST"
                    && r.what == "comments/5"
                    && r.body["body"].as_str().unwrap_or("").starts_with(prefix)
            })
        }
    };
    assert!(comments("On it: https://errand.example/tasks/")().await, "the answer links the task");

    // The attempt runs from the mirror; the server opens the pull request and says so.
    wait_until(
        "the pull request to be reported on the issue",
        // Issues and pull requests share their numbers: the pull request after issue 5 is 6.
        comments("Done: https://github.example/o/project/pull/6"),
    )
    .await;
    let branch = format!("errand/{task}");
    assert_eq!(
        git(&remote, &["show", &format!("{branch}:calc.py")]),
        "def add(a, b):\n    return a + b\n"
    );
    {
        let requests = github.requests();
        let opened: Vec<_> =
            requests.iter().filter(|r| r.method == "POST" && r.what == "pulls").collect();
        assert_eq!(opened.len(), 1);
        assert_eq!(
            (opened[0].body["head"].as_str(), opened[0].body["base"].as_str()),
            (Some(branch.as_str()), Some("main"))
        );
        assert_eq!(opened[0].body["title"], "Make add() add");
    }

    // A follow-up, delivered with `errand task pr`: the same pull request, updated.
    let out =
        server.errand(&repo, &["task", "followup", &task, "also document add", "--follow"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = server.errand(&repo, &["task", "pr", &format!("{task}/1")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "https://github.example/o/project/pull/6"
    );
    assert!(git(&remote, &["show", &format!("{branch}:calc.py")]).contains("The sum of a and b."));
    {
        let requests = github.requests();
        assert_eq!(
            requests.iter().filter(|r| r.method == "POST" && r.what == "pulls").count(),
            1,
            "no second pull request"
        );
        let patched = requests.iter().rev().find(|r| r.method == "PATCH").expect("an update");
        assert_eq!(patched.what, "pulls/6");
        assert_eq!(patched.body["title"], "Make add() add, documented");
    }

    // The same delivery again: nothing new.
    let response = deliver().await.unwrap();
    assert_eq!(response.status(), 200);
    let list = server.errand(&repo, &["task", "list", "--json"]).await;
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
    // No token in the server's data or its log.
    let grep = std::process::Command::new("grep")
        .args(["-r", "-l", "-a", "-e", GIT_TOKEN, "-e", FORGE_TOKEN, "-e", HOOK_SECRET])
        .arg(server.data_dir())
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "a secret is in {}", String::from_utf8_lossy(&grep.stdout));
    assert!(!server.log().contains(FORGE_TOKEN) && !server.log().contains(GIT_TOKEN));
    github.assert_conformed();
}
