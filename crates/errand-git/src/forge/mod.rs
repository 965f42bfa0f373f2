//! Forge clients (design: errand-git owns "forge clients (GitHub, Gitea/Forgejo) for pull
//! requests and webhooks"): opening and updating pull requests, reading and commenting on
//! issues, over each forge's REST API.
