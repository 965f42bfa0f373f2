//! [`StoreEnvironments`]: a task's environment as a worker runs it, loaded from the store and
//! resolved by [`errand_sandbox::resolve_document`], the same code `errand exec --env NAME` uses.
//!
//! Secret references (`{"env": "VARIABLE"}`) are read from the worker process's environment
//! variables: the service's operator decides what a worker holds. Beware: every user's
//! environment can name *any* variable the worker has, and its setup script runs with network,
//! so until references are limited (an allow-list in the configuration, say) a worker shared by
//! several users must hold no variable that is not meant for all of them: not the store's URL,
//! not the model's key.

use std::sync::Arc;

use errand_sandbox::{DocumentError, EnvironmentSpec, resolve_document};
use errand_store::{Store, StoreError, Task};

use crate::EnvironmentResolver;

/// Where secret references are read: a variable's name to its value, if set.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Loads a task's environment from the store (as its owner, so one user's task never reaches
/// another's environment) and resolves its secret references.
pub struct StoreEnvironments {
    store: Arc<dyn Store>,
    lookup: Box<Lookup>,
}

impl StoreEnvironments {
    /// Secret references read from this process's environment variables.
    pub fn new(store: Arc<dyn Store>) -> StoreEnvironments {
        StoreEnvironments::with_lookup(store, |variable| std::env::var(variable).ok())
    }

    /// Secret references read through `lookup` (tests; a secret manager, some day).
    pub fn with_lookup(
        store: Arc<dyn Store>,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> StoreEnvironments {
        StoreEnvironments { store, lookup: Box::new(lookup) }
    }
}

#[async_trait::async_trait]
impl EnvironmentResolver for StoreEnvironments {
    /// The error is the attempt's failure reason, so it says which environment and what to do.
    async fn resolve(&self, task: &Task) -> Result<EnvironmentSpec, String> {
        let Some(id) = task.environment_id else {
            return Err(format!("task {} names no environment to load", task.id));
        };
        let environment =
            self.store.get_environment(task.user_id, id).await.map_err(|e| match e {
                StoreError::NotFound(_) => format!("environment {id} does not exist (any more)"),
                e => format!("cannot load environment {id}: {e}"),
            })?;
        let name = &environment.name;
        resolve_document(name, &environment.config_json, &*self.lookup).map_err(|e| match e {
            // Names the environment, the secret and the variable already.
            DocumentError::MissingVariable { .. } => format!(
                "{e}; set it in the worker's environment, or store the secret's value \
                 (`errand env update {name}`)"
            ),
            e => format!("environment `{name}` as stored cannot be used: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use errand_store::{NewTask, SqliteStore, TaskMode, UserId};

    use super::*;

    struct World {
        store: Arc<dyn Store>,
        _dir: tempfile::TempDir,
    }

    async fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("errand.db")).await.unwrap();
        World { store: Arc::new(store), _dir: dir }
    }

    async fn task_with(world: &World, user: UserId, config_json: Option<&str>) -> Task {
        let environment_id = match config_json {
            Some(json) => Some(world.store.create_environment(user, "web", json).await.unwrap().id),
            None => None,
        };
        let task = NewTask {
            environment_id,
            repository: "/srv/repo".into(),
            git_ref: "main".into(),
            base_commit: None,
            prompt: "p".into(),
            mode: TaskMode::Code,
            attempts: 1,
        };
        world.store.create_task(user, task).await.unwrap().0
    }

    fn document() -> String {
        errand_sandbox::stored_document(serde_json::json!({
            "setup_script": "npm ci",
            "secrets": { "INLINE": "inline-secret-value", "TOKEN": { "env": "WORKER_TOKEN" } },
        }))
        .unwrap()
    }

    fn worker_env(variable: &str) -> Option<String> {
        (variable == "WORKER_TOKEN").then(|| "value-on-the-worker".to_string())
    }

    #[tokio::test]
    async fn a_stored_environment_resolves_with_the_workers_variables() {
        let world = world().await;
        let user = world.store.create_user("ada").await.unwrap().id;
        let task = task_with(&world, user, Some(&document())).await;
        let resolver = StoreEnvironments::with_lookup(world.store.clone(), worker_env);
        let spec = resolver.resolve(&task).await.unwrap();
        assert_eq!(spec.setup_script.as_deref(), Some("npm ci"));
        assert_eq!(spec.secrets["TOKEN"], "value-on-the-worker");
        assert_eq!(spec.secrets["INLINE"], "inline-secret-value");

        let without = StoreEnvironments::with_lookup(world.store.clone(), |_| None);
        let reason = without.resolve(&task).await.unwrap_err();
        assert!(reason.contains("environment `web`"), "{reason}");
        assert!(reason.contains("secrets.TOKEN") && reason.contains("WORKER_TOKEN"), "{reason}");
        assert!(!reason.contains("inline-secret-value"), "{reason}");
    }

    #[tokio::test]
    async fn another_users_environment_is_not_found() {
        let world = world().await;
        let owner = world.store.create_user("ada").await.unwrap().id;
        let other = world.store.create_user("bob").await.unwrap().id;
        let task = task_with(&world, owner, Some(&document())).await;
        let stolen = Task { user_id: other, ..task };
        let resolver = StoreEnvironments::with_lookup(world.store.clone(), worker_env);
        let reason = resolver.resolve(&stolen).await.unwrap_err();
        assert!(reason.contains("does not exist"), "{reason}");
    }

    #[tokio::test]
    async fn a_damaged_row_or_no_environment_is_a_reason_not_a_panic() {
        let world = world().await;
        let user = world.store.create_user("ada").await.unwrap().id;
        let resolver = StoreEnvironments::with_lookup(world.store.clone(), worker_env);
        let task = task_with(&world, user, Some(r#"{"setup_scrpit":"x"}"#)).await;
        let reason = resolver.resolve(&task).await.unwrap_err();
        assert!(reason.contains("`web` as stored") && reason.contains("setup_scrpit"), "{reason}");
        let plain = task_with(&world, user, None).await;
        let reason = resolver.resolve(&plain).await.unwrap_err();
        assert!(reason.contains("names no environment"), "{reason}");
    }
}
