//! The forge clients against a local forge that checks every request against GitHub's and
//! Gitea's published API descriptions and answers only what those describe
//! (`errand_testkit::forge`). Each flow runs against both forges.

use errand_git::forge::{ForgeClient, ForgeConfig, ForgeError, ForgeKind, NewPullRequest, RepoRef};
use errand_testkit::forge::{ConformingForge, ForgeSetup, Kind, NAME, OWNER, TOKEN};
use serde_json::json;

const KINDS: [Kind; 2] = [Kind::GitHub, Kind::Gitea];

fn repo() -> RepoRef {
    RepoRef::new(OWNER, NAME)
}

/// The client's kind for the forge the fake plays.
fn forge_kind(kind: Kind) -> ForgeKind {
    match kind {
        Kind::GitHub => ForgeKind::GitHub,
        Kind::Gitea => ForgeKind::Gitea,
    }
}

fn client(forge: &ConformingForge) -> ForgeClient {
    ForgeClient::new(ForgeConfig::new(forge_kind(forge.kind), &forge.api_base, TOKEN)).unwrap()
}

/// The user-facing promise: no token in what an error shows or logs.
fn assert_no_token(error: &ForgeError) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(TOKEN), "the token leaked: {shown}");
}

#[tokio::test]
async fn opens_a_pull_request_with_the_title_body_and_branches_given() {
    for kind in KINDS {
        let Some(forge) = ConformingForge::start(kind).await else { return };
        let new = NewPullRequest {
            title: "Fix the flaky parser test".into(),
            body: "Errand's report.\n\n- cites `src/lib.rs` L3-L9".into(),
            head: "errand/task_01J".into(),
            base: "main".into(),
        };
        let pull = client(&forge).open_pull_request(&repo(), &new).await.unwrap();
        assert_eq!(
            (pull.head.as_str(), pull.base.as_str(), pull.state.as_str()),
            ("errand/task_01J", "main", "open")
        );
        assert!(
            pull.url.starts_with(&forge.web_base)
                && pull.url.ends_with(&format!("/{}", pull.number)),
            "{kind}: {}",
            pull.url
        );

        let requests = forge.requests();
        assert_eq!(requests.len(), 1, "{kind}: {requests:?}");
        let sent = &requests[0];
        assert_eq!((sent.method.as_str(), sent.status), ("POST", 201));
        assert_eq!(
            sent.path,
            format!(
                "{}/repos/{OWNER}/{NAME}/pulls",
                forge.api_base.trim_start_matches(&forge.web_base)
            )
        );
        assert_eq!(
            sent.body,
            json!({"title": new.title, "body": new.body, "head": "errand/task_01J", "base": "main"}),
            "{kind}"
        );
        let stored = forge.state().pulls.clone();
        assert_eq!(
            (stored[0].title.as_str(), stored[0].body.as_str()),
            (new.title.as_str(), new.body.as_str())
        );
    }
}

#[tokio::test]
async fn finds_the_open_pull_request_of_a_branch_and_only_that_one() {
    for kind in KINDS {
        let Some(forge) = ConformingForge::start(kind).await else { return };
        forge.add_pull("errand/task_a", "closed");
        forge.add_pull_from("errand/task_a", "open", "someone/hello");
        // More open pull requests than one Gitea page holds, so Gitea's search must page.
        for i in 0..60 {
            forge.add_pull(&format!("other-{i}"), "open");
        }
        let wanted = forge.add_pull("errand/task_a", "open");
        let client = client(&forge);

        let found = client.find_open_pull_request(&repo(), "errand/task_a").await.unwrap();
        let found = found.unwrap_or_else(|| panic!("{kind}: not found"));
        assert_eq!(
            (found.number, found.head.as_str(), found.state.as_str()),
            (wanted, "errand/task_a", "open"),
            "{kind}"
        );

        let none = client.find_open_pull_request(&repo(), "errand/task_b").await.unwrap();
        assert_eq!(none, None, "{kind}");
        let lists = forge.requests().into_iter().filter(|r| r.method == "GET").collect::<Vec<_>>();
        assert!(
            lists.iter().all(|r| r.query.contains(&("state".into(), "open".into()))),
            "{kind}: {lists:?}"
        );
        if kind == Kind::GitHub {
            assert!(
                lists[0].query.contains(&("head".into(), format!("{OWNER}:errand/task_a"))),
                "{lists:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_follow_up_updates_the_pull_request_in_place() {
    for kind in KINDS {
        let Some(forge) = ConformingForge::start(kind).await else { return };
        let number = forge.add_pull("errand/task_a", "open");
        let pull = client(&forge)
            .update_pull_request(&repo(), number, "Second try", "New report")
            .await
            .unwrap();
        assert_eq!(pull.number, number);
        let requests = forge.requests();
        assert_eq!(requests[0].method, "PATCH");
        assert!(requests[0].path.ends_with(&format!("/pulls/{number}")));
        assert_eq!(requests[0].body, json!({"title": "Second try", "body": "New report"}));
        // GitHub answers 200 and Gitea 201: both are success.
        assert_eq!(requests[0].status, if kind == Kind::GitHub { 200 } else { 201 });
        let stored = forge.state().pulls[0].clone();
        assert_eq!((stored.title.as_str(), stored.body.as_str()), ("Second try", "New report"));
        assert_eq!(forge.state().pulls.len(), 1);
    }
}

#[tokio::test]
async fn comments_on_and_reads_issues_and_the_default_branch() {
    for kind in KINDS {
        let Some(forge) = ConformingForge::start(kind).await else { return };
        forge.state().default_branch = "trunk".into();
        let number =
            forge.add_issue("Parser fails on tabs", Some("@errand fix this"), Some("alice"));
        let client = client(&forge);

        let issue = client.issue(&repo(), number).await.unwrap();
        assert_eq!(
            (issue.number, issue.title.as_str(), issue.body.as_str()),
            (number, "Parser fails on tabs", "@errand fix this")
        );
        assert_eq!(issue.user_login.as_deref(), Some("alice"));
        assert!(issue.html_url.ends_with(&format!("/issues/{number}")));

        let link = client.comment_on_issue(&repo(), number, "On it: task_01J").await.unwrap();
        assert!(link.starts_with(&forge.web_base) && link.contains("#issuecomment-"), "{link}");
        assert_eq!(forge.state().comments, vec![(number, "On it: task_01J".to_string())]);

        assert_eq!(client.default_branch(&repo()).await.unwrap(), "trunk");
    }
}

#[tokio::test]
async fn an_issue_without_description_or_author_reads_as_empty() {
    // GitHub sends `body: null` and `user: null` (a deleted account); Gitea's description does
    // not allow a null user, so only GitHub is asked.
    let Some(forge) = ConformingForge::start(Kind::GitHub).await else { return };
    let number = forge.add_issue("Untitled", None, None);
    let issue = client(&forge).issue(&repo(), number).await.unwrap();
    assert_eq!((issue.body.as_str(), issue.user_login), ("", None));
}

#[tokio::test]
async fn github_enterprise_under_api_v3_works() {
    let enterprise = ForgeSetup { prefix: Some("/api/v3".into()), ..ForgeSetup::default() };
    let Some(forge) = ConformingForge::start_with(Kind::GitHub, enterprise).await else { return };
    assert!(forge.api_base.ends_with("/api/v3"));
    let branch = client(&forge).default_branch(&repo()).await.unwrap();
    assert_eq!(branch, "main");
    assert_eq!(forge.requests()[0].path, format!("/api/v3/repos/{OWNER}/{NAME}"));
}

#[tokio::test]
async fn a_refused_token_says_so_and_never_shows_the_token() {
    for kind in KINDS {
        let Some(forge) = ConformingForge::start(kind).await else { return };
        let wrong = format!("{TOKEN}-revoked");
        let config = ForgeConfig::new(forge_kind(kind), &forge.api_base, &wrong);
        let client = ForgeClient::new(config).unwrap();
        let error = client.default_branch(&repo()).await.unwrap_err();
        assert!(matches!(error, ForgeError::TokenRefused { .. }), "{kind}: {error:?}");
        let text = error.to_string();
        assert!(text.contains("refused the token") && text.contains(&forge.api_base), "{text}");
        assert!(!format!("{error} {error:?}").contains(&wrong), "{text}");
    }
}

#[tokio::test]
async fn a_token_without_permission_names_the_scope_and_is_not_echoed() {
    for kind in KINDS {
        let Some(forge) = ConformingForge::start(kind).await else { return };
        // A forge that quotes the request back in its message must not carry the token into
        // the error.
        let message = format!("Resource not accessible by token (Authorization: Bearer {TOKEN})");
        let (operation, body) = match kind {
            Kind::GitHub => (
                "issues/create-comment",
                json!({"message": message, "documentation_url": "https://docs.github.com"}),
            ),
            Kind::Gitea => ("issueCreateComment", json!({"message": message, "url": "u"})),
        };
        forge.script(operation, 403, body);
        let number = forge.add_issue("t", Some("b"), Some("alice"));
        let error = client(&forge).comment_on_issue(&repo(), number, "hi").await.unwrap_err();
        assert!(matches!(error, ForgeError::TokenLacksScope { .. }), "{kind}: {error:?}");
        let want = if kind == Kind::GitHub { "Issues: read and write" } else { "write:issue" };
        assert!(error.to_string().contains(want), "{error}");
        assert!(error.to_string().contains("Resource not accessible"), "{error}");
        assert_no_token(&error);
    }
}

#[tokio::test]
async fn an_unknown_repository_is_not_found_in_plain_words() {
    for kind in KINDS {
        let Some(forge) = ConformingForge::start(kind).await else { return };
        let missing = RepoRef::new(OWNER, "nope");
        let error = client(&forge).default_branch(&missing).await.unwrap_err();
        assert!(matches!(error, ForgeError::NotFound { .. }), "{kind}: {error:?}");
        let text = error.to_string();
        assert!(
            text.contains("repository octo/nope was not found") && text.contains("cannot see it"),
            "{text}"
        );
        assert_no_token(&error);

        let error = client(&forge).issue(&repo(), 999).await.unwrap_err();
        assert!(error.to_string().contains("issue #999 of repository octo/hello"), "{error}");
    }
}

#[tokio::test]
async fn a_second_pull_request_for_a_branch_is_refused_with_the_forges_reason() {
    for kind in KINDS {
        let Some(forge) = ConformingForge::start(kind).await else { return };
        forge.add_pull("errand/task_a", "open");
        let new = NewPullRequest {
            title: "t".into(),
            body: "b".into(),
            head: "errand/task_a".into(),
            base: "main".into(),
        };
        let error = client(&forge).open_pull_request(&repo(), &new).await.unwrap_err();
        let ForgeError::Rejected { status, message, .. } = &error else {
            panic!("{kind}: {error:?}")
        };
        // GitHub: 422 "A pull request already exists for octo:errand/task_a."; Gitea: 409.
        assert_eq!(*status, if kind == Kind::GitHub { 422 } else { 409 });
        assert!(message.to_lowercase().contains("pull request already exists"), "{message}");
        assert!(
            error.to_string().contains("refused to open a pull request on octo/hello"),
            "{error}"
        );
        assert_eq!(forge.state().pulls.len(), 1, "nothing half-done");
        assert_no_token(&error);
    }
}

#[tokio::test]
async fn an_unreachable_forge_is_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api_base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    drop(listener);
    let client = ForgeClient::new(ForgeConfig::new(ForgeKind::Gitea, &api_base, TOKEN)).unwrap();
    let error = client.default_branch(&repo()).await.unwrap_err();
    assert!(matches!(error, ForgeError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().starts_with(&format!("cannot reach {api_base}")), "{error}");
    assert_no_token(&error);
}
