//! One typed configuration: `errand.toml` (from `--config`, `ERRAND_CONFIG`, or
//! `~/.config/errand/errand.toml`) with `ERRAND_*` environment overrides, validated at start with
//! errors that name the key.
//!
//! Security: the configuration is never read from the repository being worked on. A hostile
//! repository's `errand.toml` could otherwise point the model endpoint at its own server and
//! receive the user's API key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub model: ModelSection,
    pub sandbox: SandboxSection,
    pub agent: AgentSection,
    pub store: StoreSection,
    pub server: ServerSection,
    pub client: ClientSection,
    pub git: GitSection,
    /// `[[forges]]`: where pull requests may be opened.
    pub forges: Vec<ForgeSection>,
    /// US dollars per million tokens, by model name: `[prices."gpt-5-codex"]`.
    pub prices: std::collections::BTreeMap<String, errand_protocol::Prices>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// `openai-responses`, `chat-completions` or `anthropic`.
    pub provider: String,
    /// The provider's default model when unset ([`ModelSection::model`]).
    pub model: Option<String>,
    /// The provider's API root when unset ([`ModelSection::base_url`]).
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key; the provider's usual one when unset.
    pub api_key_env: Option<String>,
    pub max_retries: u32,
    pub retry_base_delay_ms: u64,
    pub idle_timeout_secs: u64,
    /// `freeform` (Responses custom tool) or `function` (JSON `{input}`). Chat Completions and
    /// Anthropic have no freeform tools: `errand-model` offers a freeform tool to them as a
    /// function taking one `input` string, so either setting works there.
    pub patch_tool: String,
    pub reasoning_effort: Option<String>,
    /// The most tokens one answer may have; unset: the endpoint's default (Anthropic: 32000).
    pub max_output_tokens: Option<u32>,
    /// The model's context window in input tokens; unset: known models' own, else 128k (32k
    /// for Chat Completions, where local servers often run smaller contexts).
    pub context_window: Option<u64>,
    /// Run tool calls the model writes as text when the endpoint returns none (fenced JSON,
    /// `<tool_call>` tags, a lone ```bash block); off for a model that quotes calls on purpose.
    pub recover_tool_calls: bool,
}

impl Default for ModelSection {
    fn default() -> Self {
        let defaults = errand_model::ModelConfig::default();
        Self {
            provider: errand_model::Provider::Responses.name().into(),
            model: None,
            base_url: None,
            api_key_env: None,
            max_retries: defaults.max_retries,
            retry_base_delay_ms: defaults.retry_base_delay.as_millis() as u64,
            idle_timeout_secs: defaults.idle_timeout.as_secs(),
            patch_tool: "freeform".into(),
            reasoning_effort: None,
            max_output_tokens: None,
            context_window: None,
            recover_tool_calls: true,
        }
    }
}

impl ModelSection {
    /// The configured provider (`validate` has refused unknown names).
    pub fn provider(&self) -> errand_model::Provider {
        errand_model::Provider::from_name(&self.provider).unwrap_or_default()
    }

    /// The model name, or the provider's default.
    pub fn model(&self) -> String {
        self.model.clone().unwrap_or_else(|| self.provider().default_model().into())
    }

    /// The API root without a trailing slash, or the provider's.
    pub fn base_url(&self) -> String {
        let url = self.base_url.as_deref().unwrap_or(self.provider().default_base_url());
        url.trim_end_matches('/').to_string()
    }

    /// The context window compaction works against: configured, known, or a default.
    pub fn context_window(&self) -> u64 {
        self.context_window.or_else(|| errand_model::known_context_window(&self.model())).unwrap_or(
            match self.provider() {
                errand_model::Provider::ChatCompletions => 32_768,
                _ => 128_000,
            },
        )
    }

    /// The variable holding the key, or the provider's usual one (`ANTHROPIC_API_KEY`, …).
    pub fn api_key_env(&self) -> String {
        self.api_key_env.clone().unwrap_or_else(|| self.provider().key_env().into())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSection {
    /// Where checkouts and attempt layers live.
    pub data_dir: Option<PathBuf>,
    /// Host uid the sandboxed processes run as (never root).
    pub uid: u32,
    /// Memory of one attempt (all its commands together), in MiB; 0: unlimited.
    pub memory_mb: u64,
    /// Processes and threads of one attempt at once; 0: unlimited.
    pub pids: u64,
    /// CPU of one attempt, in cores (fractions allowed); 0: unlimited.
    pub cpus: f64,
    /// `false`: never create cgroups; the rlimit fallback applies (weaker, see docs/security.md).
    pub cgroups: bool,
}

impl Default for SandboxSection {
    fn default() -> Self {
        let limits = errand_sandbox::Limits::default();
        Self {
            data_dir: None,
            uid: 61000,
            memory_mb: limits.memory_bytes.map_or(0, |b| b >> 20),
            pids: limits.pids.unwrap_or(0),
            cpus: limits.cpu_millicores.map_or(0.0, |m| m as f64 / 1000.0),
            cgroups: limits.use_cgroups,
        }
    }
}

impl SandboxSection {
    /// The limits every attempt's sandbox gets.
    pub fn limits(&self) -> errand_sandbox::Limits {
        errand_sandbox::Limits {
            memory_bytes: (self.memory_mb > 0).then_some(self.memory_mb << 20),
            pids: (self.pids > 0).then_some(self.pids),
            cpu_millicores: (self.cpus > 0.0).then(|| (self.cpus * 1000.0).round() as u64),
            use_cgroups: self.cgroups,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSection {
    pub max_turns: u32,
    /// Stop an attempt once it has used more tokens than this (input + output).
    pub token_budget: Option<u64>,
    /// Stop an attempt once it has cost more than this (needs a price for the model).
    pub cost_budget_usd: Option<f64>,
    pub command_timeout_secs: u64,
    pub attempt_timeout_secs: u64,
    /// Compact the conversation once it fills this percentage of the context window.
    pub auto_compact_percent: u8,
    /// Checks Errand runs itself when the agent says it is done (besides those the
    /// repository's AGENTS.md lists under a `Checks` heading).
    pub finish_checks: Vec<String>,
    /// Times failing finish checks go back to the agent before the attempt ends failed.
    pub finish_check_rounds: u32,
    /// The same tool call with the same result this many times in a row gets a steering
    /// message; once more ends the attempt with the reason `repetition`. 0: never.
    pub repeat_limit: u32,
}

impl Default for AgentSection {
    fn default() -> Self {
        let defaults = errand_agent::AgentConfig::default();
        Self {
            max_turns: defaults.max_turns,
            token_budget: None,
            cost_budget_usd: None,
            command_timeout_secs: defaults.command_timeout.as_secs(),
            attempt_timeout_secs: defaults.attempt_timeout.as_secs(),
            auto_compact_percent: (defaults.auto_compact_ratio * 100.0).round() as u8,
            finish_checks: Vec::new(),
            finish_check_rounds: defaults.gate_rounds,
            repeat_limit: errand_agent::DEFAULT_REPEAT_LIMIT,
        }
    }
}

/// Where Errand keeps its durable state (environments now; tasks and users with the service).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite:///path/errand.db` or `postgres://user@host/db`; unset: a SQLite file in the data
    /// directory ([`Config::store_url`]).
    pub url: Option<String>,
}

/// `errand serve` and `errand worker`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Where `errand serve` listens.
    pub listen: String,
    /// Where people reach this server, for links Errand posts on forges; default
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Attempts this process runs at once (`errand serve`'s in-process workers, or `errand
    /// worker`); 0 with `errand serve`: API only, `errand worker` processes run the attempts.
    pub workers: u32,
    /// A task's repository must be under one of these directories; empty: any absolute path
    /// on the server's machine (fine for one user; set it when several share a server).
    pub repository_roots: Vec<PathBuf>,
    /// Tasks one user may create in any rolling hour.
    pub tasks_per_hour: u32,
    /// Unfinished attempts (queued or running) one user may have at once.
    pub attempts_per_user: u32,
    /// Unfinished attempts of all users at once.
    pub attempts_total: u32,
    /// Seconds a worker's lease on an attempt lasts without a heartbeat; a dead worker's
    /// attempts are taken back after it.
    pub lease_secs: u64,
    /// Variables of the worker's own environment that stored environments may read secrets
    /// from (`{ env = "NAME" }`). Empty by default: with several users, a reference could
    /// otherwise read any of the worker's variables (a model key, the database URL) into a
    /// setup script that has network.
    pub secret_variables: Vec<String>,
    /// Browsers reach the web UI over HTTPS (through a TLS proxy): its cookies are marked
    /// `Secure`. Leave it off for plain HTTP (loopback, the embedded default).
    pub secure_cookies: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        let limits = errand_server::api::ApiLimits::default();
        Self {
            listen: "127.0.0.1:7878".into(),
            public_url: None,
            workers: 2,
            repository_roots: Vec::new(),
            tasks_per_hour: limits.tasks_per_hour,
            attempts_per_user: limits.attempts_per_user,
            attempts_total: limits.attempts_total,
            lease_secs: 30,
            secret_variables: Vec::new(),
            secure_cookies: false,
        }
    }
}

/// Repositories named by URL (`[git]`): their mirrors and the credentials for their hosts.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GitSection {
    /// Where mirrors of remote repositories live; `<data_dir>/mirrors` when unset.
    pub mirrors_dir: Option<PathBuf>,
    /// Hosts a task's URL may name; empty: any. Set it when several people share a server, so
    /// nobody can make it fetch from its own network.
    pub allowed_hosts: Vec<String>,
    /// `[[git.credentials]]`, one per host.
    pub credentials: Vec<GitCredentials>,
}

/// How to authenticate to one host: a token (HTTPS) read from a variable or a file, or an SSH
/// command. Tokens never go into the configuration file itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitCredentials {
    pub host: String,
    /// The user name sent with a token; `x-access-token` when unset (GitHub, Gitea, Forgejo
    /// accept any).
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding the token (its first line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `GIT_SSH_COMMAND` for SSH URLs of this host (name the key and the known-hosts file: git
    /// runs without the server's HOME).
    #[serde(default)]
    pub ssh_command: Option<String>,
}

/// A forge Errand may open pull requests on (`[[forges]]`). Its token also authenticates git
/// fetches and pushes to its host, unless `[[git.credentials]]` names that host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeSection {
    /// `github` (github.com, GitHub Enterprise), `gitea` or `forgejo`.
    pub kind: String,
    /// The host its repositories' URLs name, e.g. `github.com`.
    pub host: String,
    /// The REST API's address; default `https://api.github.com` for github.com,
    /// `https://HOST/api/v3` for other GitHub hosts, `https://HOST/api/v1` for Gitea/Forgejo.
    #[serde(default)]
    pub api_base: Option<String>,
    /// Where its pages are, for links in pull requests; default `https://HOST`.
    #[serde(default)]
    pub web_base: Option<String>,
    /// The environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding the token (its first line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Pull request branches are `<branch_prefix><task id>`; default `errand/`.
    #[serde(default)]
    pub branch_prefix: Option<String>,
    /// Tasks from this forge's webhooks (`POST /hooks/<host>`) need the secret it signs
    /// deliveries with, from a variable or a file.
    #[serde(default)]
    pub webhook_secret_env: Option<String>,
    #[serde(default)]
    pub webhook_secret_file: Option<PathBuf>,
    /// The mention that starts a task in a comment; default `@errand`.
    #[serde(default)]
    pub handle: Option<String>,
    /// A label that starts a task when put on an issue.
    #[serde(default)]
    pub label: Option<String>,
    /// Forge logins that may start tasks (nobody else can).
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// The Errand user triggered tasks belong to; default `local`.
    #[serde(default)]
    pub run_as: Option<String>,
}

/// A token from a variable or a file, for the setting named `key`.
fn read_token(
    key: &str,
    token_env: Option<&str>,
    token_file: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    match (token_env, token_file) {
        (Some(var), None) => Ok(Some(
            std::env::var(var)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .with_context(|| format!("{key}: the variable {var} is not set"))?,
        )),
        (None, Some(file)) => Ok(Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("{key}: cannot read {}", file.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        )),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => bail!("{key}: give token_env or token_file, not both"),
    }
}

/// Where the `errand task …` and `errand apply` commands find the server.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSection {
    /// The server's URL; default: `http://` + `server.listen`.
    pub server: Option<String>,
    /// An API token; default: `ERRAND_TOKEN`, else the token `errand serve` wrote for the local
    /// user in the data directory.
    pub token: Option<String>,
}

/// Reads a variable; `Ok(None)` when unset or empty.
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Config {
    /// Loads the file (if any) and applies `ERRAND_*` overrides from the process environment.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let path = explicit
            .map(Path::to_path_buf)
            .or_else(|| env("ERRAND_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let default = PathBuf::from(env("HOME")?).join(".config/errand/errand.toml");
                default.exists().then_some(default)
            });
        let mut config = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("could not read the configuration file {}", path.display())
                })?;
                Self::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(&env)?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        // toml's message names the key and shows the line.
        toml::from_str(text).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
    }

    fn apply_env(&mut self, env: EnvLookup<'_>) -> anyhow::Result<()> {
        fn number<T: std::str::FromStr>(
            env: EnvLookup<'_>,
            key: &str,
            slot: &mut T,
        ) -> anyhow::Result<()> {
            if let Some(value) = env(key) {
                *slot = value
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{key}={value:?} is not a valid number"))?;
            }
            Ok(())
        }
        /// `number` for a setting that is unset unless given.
        fn optional<T: std::str::FromStr>(
            env: EnvLookup<'_>,
            key: &str,
            slot: &mut Option<T>,
        ) -> anyhow::Result<()> {
            if let Some(value) = env(key) {
                let parsed = value
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{key}={value:?} is not a valid number"))?;
                *slot = Some(parsed);
            }
            Ok(())
        }
        if let Some(v) = env("ERRAND_MODEL_PROVIDER") {
            self.model.provider = v;
        }
        if let Some(v) = env("ERRAND_MODEL") {
            self.model.model = Some(v);
        }
        if let Some(v) = env("ERRAND_MODEL_BASE_URL") {
            self.model.base_url = Some(v);
        }
        if let Some(v) = env("ERRAND_PATCH_TOOL") {
            self.model.patch_tool = v;
        }
        if let Some(v) = env("ERRAND_DATABASE_URL") {
            self.store.url = Some(v);
        }
        if let Some(v) = env("ERRAND_DATA_DIR") {
            self.sandbox.data_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = env("ERRAND_LISTEN") {
            self.server.listen = v;
        }
        if let Some(v) = env("ERRAND_SERVER") {
            self.client.server = Some(v);
        }
        if let Some(v) = env("ERRAND_TOKEN") {
            self.client.token = Some(v);
        }
        number(env, "ERRAND_WORKERS", &mut self.server.workers)?;
        if let Some(v) = env("ERRAND_SECURE_COOKIES") {
            self.server.secure_cookies = match v.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => bail!("ERRAND_SECURE_COOKIES={v:?} must be true or false"),
            };
        }
        if let Some(v) = env("ERRAND_MODEL_RECOVER_TOOL_CALLS") {
            self.model.recover_tool_calls = match v.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => bail!("ERRAND_MODEL_RECOVER_TOOL_CALLS={v:?} must be true or false"),
            };
        }
        number(env, "ERRAND_MODEL_MAX_RETRIES", &mut self.model.max_retries)?;
        number(env, "ERRAND_MODEL_RETRY_BASE_DELAY_MS", &mut self.model.retry_base_delay_ms)?;
        optional(env, "ERRAND_MODEL_MAX_OUTPUT_TOKENS", &mut self.model.max_output_tokens)?;
        optional(env, "ERRAND_MODEL_CONTEXT_WINDOW", &mut self.model.context_window)?;
        number(env, "ERRAND_SANDBOX_UID", &mut self.sandbox.uid)?;
        number(env, "ERRAND_SANDBOX_MEMORY_MB", &mut self.sandbox.memory_mb)?;
        number(env, "ERRAND_SANDBOX_PIDS", &mut self.sandbox.pids)?;
        number(env, "ERRAND_SANDBOX_CPUS", &mut self.sandbox.cpus)?;
        number(env, "ERRAND_MAX_TURNS", &mut self.agent.max_turns)?;
        number(env, "ERRAND_FINISH_CHECK_ROUNDS", &mut self.agent.finish_check_rounds)?;
        number(env, "ERRAND_REPEAT_LIMIT", &mut self.agent.repeat_limit)?;
        optional(env, "ERRAND_TOKEN_BUDGET", &mut self.agent.token_budget)?;
        optional(env, "ERRAND_COST_BUDGET_USD", &mut self.agent.cost_budget_usd)?;
        number(env, "ERRAND_COMMAND_TIMEOUT_SECS", &mut self.agent.command_timeout_secs)?;
        number(env, "ERRAND_ATTEMPT_TIMEOUT_SECS", &mut self.agent.attempt_timeout_secs)?;
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        if errand_model::Provider::from_name(&self.model.provider).is_none() {
            bail!(
                "model.provider = {:?} is not supported; use \"openai-responses\", \"chat-completions\" or \"anthropic\" (ERRAND_MODEL_PROVIDER)",
                self.model.provider
            );
        }
        let base_url = self.model.base_url();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            bail!("model.base_url = {base_url:?} must start with http:// or https://");
        }
        if self.model.model().trim().is_empty() {
            bail!("model.model is empty: set ERRAND_MODEL or [model] model in errand.toml");
        }
        if self.model.max_output_tokens == Some(0) {
            bail!("model.max_output_tokens must be at least 1");
        }
        // Settings a protocol cannot send (e.g. a reasoning effort Anthropic has no mapping of)
        // are refused by `errand_model::ModelClient::new`, which names them.
        if !matches!(self.model.patch_tool.as_str(), "freeform" | "function") {
            bail!(
                "model.patch_tool = {:?} must be \"freeform\" or \"function\"",
                self.model.patch_tool
            );
        }
        if self.sandbox.uid == 0 {
            bail!(
                "sandbox.uid = 0: sandboxed commands must not run as root; pick an unused uid such as 61000"
            );
        }
        if !(self.sandbox.cpus.is_finite() && self.sandbox.cpus >= 0.0) {
            bail!(
                "sandbox.cpus = {} must be a number of cores, or 0 for unlimited",
                self.sandbox.cpus
            );
        }
        if self.sandbox.memory_mb > 0 && self.sandbox.memory_mb < 64 {
            bail!(
                "sandbox.memory_mb = {} is too small to run a shell; use at least 64, or 0 for unlimited",
                self.sandbox.memory_mb
            );
        }
        if self.sandbox.pids > 0 && self.sandbox.pids < 8 {
            bail!(
                "sandbox.pids = {} is too small to run a shell; use at least 8, or 0 for unlimited",
                self.sandbox.pids
            );
        }
        if let Some(budget) = self.agent.cost_budget_usd {
            if !(budget.is_finite() && budget > 0.0) {
                bail!("agent.cost_budget_usd = {budget} must be a positive number of US dollars");
            }
            if !self.prices.contains_key(&self.model.model()) {
                bail!(
                    "agent.cost_budget_usd is set but [prices.\"{}\"] is missing: without the model's prices Errand cannot count its cost",
                    self.model.model()
                );
            }
        }
        for (model, prices) in &self.prices {
            let rates = [prices.input, prices.output, prices.cached_input.unwrap_or(0.0)];
            if rates.iter().any(|r| !r.is_finite() || *r < 0.0) {
                bail!(
                    "prices.\"{model}\": rates must be non-negative numbers (US dollars per million tokens)"
                );
            }
        }
        if self.model.context_window.is_some_and(|w| w < 1_000) {
            bail!("model.context_window must be at least 1000 tokens");
        }
        if self.agent.repeat_limit == 1 {
            bail!(
                "agent.repeat_limit = 1 would stop every call that is run twice; use 2 or more, or 0 to never stop repeats (ERRAND_REPEAT_LIMIT)"
            );
        }
        if !(10..=100).contains(&self.agent.auto_compact_percent) {
            bail!(
                "agent.auto_compact_percent = {} must be between 10 and 100",
                self.agent.auto_compact_percent
            );
        }
        if let Some(url) = &self.store.url {
            let known = ["sqlite://", "postgres://", "postgresql://"];
            if !known.iter().any(|scheme| url.starts_with(scheme)) {
                // Only the scheme: the rest of a PostgreSQL URL may hold a password.
                let scheme = url.split("://").next().unwrap_or_default();
                bail!(
                    "store.url (ERRAND_DATABASE_URL) must be sqlite:///path/to/errand.db or \
                     postgres://user@host/database, not a `{scheme}` URL"
                );
            }
        }
        if self.agent.max_turns == 0 {
            bail!("agent.max_turns must be at least 1");
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            bail!(
                "server.listen = {:?} (ERRAND_LISTEN) must be an address and port such as \"127.0.0.1:7878\"",
                self.server.listen
            );
        }
        if let Some(root) = self.server.repository_roots.iter().find(|r| !r.is_absolute()) {
            bail!("server.repository_roots: {} must be an absolute path", root.display());
        }
        if self.server.tasks_per_hour == 0
            || self.server.attempts_per_user == 0
            || self.server.attempts_total == 0
        {
            bail!("server.tasks_per_hour, attempts_per_user and attempts_total must be at least 1");
        }
        if self.server.lease_secs < 3 {
            bail!("server.lease_secs must be at least 3 (heartbeats come every third of it)");
        }
        if let Some(url) = &self.client.server
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("client.server = {url:?} (ERRAND_SERVER) must start with http:// or https://");
        }
        Ok(())
    }

    /// The data directory. Sandboxed commands run as an unprivileged uid that must be able to
    /// reach the attempt layers, so the default for root is `/var/lib/errand` (root's home is
    /// private); for others it is `~/.local/share/errand`.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.sandbox.data_dir {
            return dir.clone();
        }
        // SAFETY: getuid has no preconditions and cannot fail.
        if unsafe { libc::getuid() } == 0 {
            return PathBuf::from("/var/lib/errand");
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
        PathBuf::from(home).join(".local/share/errand")
    }

    /// The store's URL: `store.url` (`ERRAND_DATABASE_URL`), else `errand.db` in the data
    /// directory.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("errand.db").display()),
        }
    }

    /// The API the client commands talk to: `client.server` (`ERRAND_SERVER`), else the local
    /// `errand serve` at `http://` + `server.listen`; never with a trailing slash.
    pub fn server_url(&self) -> String {
        let url = match &self.client.server {
            Some(url) => url.clone(),
            None => format!("http://{}", self.server.listen),
        };
        url.trim_end_matches('/').to_string()
    }

    /// Where `errand serve` keeps the local user's token for the client commands on this
    /// machine (readable by its owner only).
    pub fn local_token_path(&self) -> PathBuf {
        self.data_dir().join("token")
    }

    /// Mirrors and credentials for repositories named by URL, from `[git]`. Fails naming the
    /// setting when a token's variable or file cannot be read.
    pub fn remotes(&self) -> anyhow::Result<errand_server::remotes::Remotes> {
        let dir = self.git.mirrors_dir.clone().unwrap_or_else(|| self.data_dir().join("mirrors"));
        let mut remotes =
            errand_server::remotes::Remotes::new(dir).allow_hosts(self.git.allowed_hosts.clone());
        for (i, entry) in self.git.credentials.iter().enumerate() {
            let key = format!("git.credentials[{i}] (host {})", entry.host);
            let token = read_token(&key, entry.token_env.as_deref(), entry.token_file.as_deref())?;
            let credentials = match (token, &entry.ssh_command) {
                (Some(token), None) => errand_git::Credentials::Token {
                    user: entry
                        .user
                        .clone()
                        .unwrap_or_else(|| errand_git::DEFAULT_TOKEN_USER.into()),
                    token: token.trim().to_string(),
                },
                (None, Some(command)) => errand_git::Credentials::Ssh { command: command.clone() },
                (None, None) => {
                    bail!("{key}: give a token (token_env or token_file) or an ssh_command")
                }
                (Some(_), Some(_)) => {
                    bail!("{key}: a host takes a token or an ssh_command, not both")
                }
            };
            remotes = remotes.with_credentials(entry.host.clone(), credentials);
        }
        // A forge's token also fetches and pushes, unless the host has credentials of its own.
        for forge in self.forges()?.0 {
            if !remotes.has_credentials(&forge.host) {
                let token = errand_git::Credentials::token(forge.config.token.clone());
                remotes = remotes.with_credentials(forge.host.clone(), token);
            }
        }
        Ok(remotes)
    }

    /// The forges pull requests may be opened on, from `[[forges]]`.
    pub fn forges(&self) -> anyhow::Result<errand_server::delivery::Forges> {
        use errand_git::forge::{ForgeConfig, ForgeKind, GITHUB_API_BASE};
        let mut forges = Vec::new();
        for (i, entry) in self.forges.iter().enumerate() {
            let key = format!("forges[{i}] (host {})", entry.host);
            let host = entry.host.trim().to_ascii_lowercase();
            let kind = match entry.kind.as_str() {
                "github" => ForgeKind::GitHub,
                "gitea" | "forgejo" => ForgeKind::Gitea,
                other => bail!("{key}: kind must be github, gitea or forgejo, not `{other}`"),
            };
            let api_base = entry.api_base.clone().unwrap_or_else(|| match kind {
                ForgeKind::GitHub if host == "github.com" => GITHUB_API_BASE.to_string(),
                ForgeKind::GitHub => format!("https://{host}/api/v3"),
                ForgeKind::Gitea => format!("https://{host}/api/v1"),
            });
            let token = read_token(&key, entry.token_env.as_deref(), entry.token_file.as_deref())?
                .with_context(|| format!("{key}: give a token (token_env or token_file)"))?;
            forges.push(errand_server::delivery::Forge {
                web_base: entry.web_base.clone().unwrap_or_else(|| format!("https://{host}")),
                host,
                kind,
                config: ForgeConfig::new(kind, api_base, token),
                branch_prefix: entry.branch_prefix.clone().unwrap_or_else(|| "errand/".into()),
                trigger: read_token(
                    &format!("{key} webhook secret"),
                    entry.webhook_secret_env.as_deref(),
                    entry.webhook_secret_file.as_deref(),
                )?
                .map(|secret| errand_server::triggers::TriggerConfig {
                    secret,
                    handle: entry.handle.clone().unwrap_or_else(|| "@errand".into()),
                    label: entry.label.clone(),
                    allowed_users: entry.allowed_users.clone(),
                    run_as: entry.run_as.clone().unwrap_or_else(|| "local".into()),
                }),
            });
        }
        Ok(errand_server::delivery::Forges(forges))
    }

    /// What the API enforces, from `[server]`.
    pub fn api_config(&self) -> errand_server::api::ApiConfig {
        errand_server::api::ApiConfig {
            limits: errand_server::api::ApiLimits {
                tasks_per_hour: self.server.tasks_per_hour,
                attempts_per_user: self.server.attempts_per_user,
                attempts_total: self.server.attempts_total,
                ..Default::default()
            },
            repository_roots: self.server.repository_roots.clone(),
            web: errand_server::web::WebConfig { secure_cookies: self.server.secure_cookies },
            ..Default::default()
        }
    }

    pub fn model_config(&self) -> errand_model::ModelConfig {
        let api_key = std::env::var(self.model.api_key_env()).ok().filter(|k| !k.is_empty());
        errand_model::ModelConfig {
            base_url: self.model.base_url(),
            model: self.model.model(),
            api_key,
            max_retries: self.model.max_retries,
            retry_base_delay: Duration::from_millis(self.model.retry_base_delay_ms),
            idle_timeout: Duration::from_secs(self.model.idle_timeout_secs),
            reasoning_effort: self.model.reasoning_effort.clone(),
            provider: self.model.provider(),
            max_output_tokens: self.model.max_output_tokens,
        }
    }

    pub fn agent_config(&self) -> errand_agent::AgentConfig {
        errand_agent::AgentConfig {
            max_turns: self.agent.max_turns,
            command_timeout: Duration::from_secs(self.agent.command_timeout_secs),
            attempt_timeout: Duration::from_secs(self.agent.attempt_timeout_secs),
            prices: self.prices.get(&self.model.model()).copied(),
            token_budget: self.agent.token_budget,
            cost_budget_usd: self.agent.cost_budget_usd,
            context_window: Some(self.model.context_window()),
            auto_compact_ratio: f64::from(self.agent.auto_compact_percent) / 100.0,
            gate_checks: self.agent.finish_checks.clone(),
            gate_rounds: self.agent.finish_check_rounds,
            recover_tool_calls: self.model.recover_tool_calls,
            repeat_limit: self.agent.repeat_limit,
            patch_tool: if self.model.patch_tool == "function" {
                errand_agent::PatchToolMode::Function
            } else {
                errand_agent::PatchToolMode::Freeform
            },
            ..errand_agent::AgentConfig::default()
        }
        .fitted_to_window()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_window_is_configured_known_or_a_default() {
        let window = |toml: &str| Config::from_toml(toml).unwrap().agent_config().context_window;
        assert_eq!(window(""), Some(272_000), "gpt-5-codex by default");
        assert_eq!(window("[model]\nprovider = \"anthropic\"\n"), Some(200_000));
        let local = "[model]\nprovider = \"chat-completions\"\nmodel = \"qwen2.5-coder\"\n";
        assert_eq!(window(local), Some(32_768));
        assert_eq!(window(&format!("{local}context_window = 8192\n")), Some(8_192));
        let ratio = Config::from_toml("[agent]\nauto_compact_percent = 50\n").unwrap();
        assert_eq!(ratio.agent_config().auto_compact_ratio, 0.5);
        let mut tiny = Config::from_toml("[model]\ncontext_window = 10\n").unwrap();
        tiny.apply_env(&|_| None).unwrap();
        assert!(tiny.validate().unwrap_err().to_string().contains("model.context_window"));
    }

    #[test]
    fn sandbox_limits_come_from_the_configuration() {
        let config =
            Config::from_toml("[sandbox]\nmemory_mb = 512\npids = 0\ncpus = 1.5\n").unwrap();
        let limits = config.sandbox.limits();
        assert_eq!(limits.memory_bytes, Some(512 << 20));
        assert_eq!(limits.pids, None, "0 means unlimited");
        assert_eq!(limits.cpu_millicores, Some(1500));
        assert_eq!(Config::default().sandbox.limits(), errand_sandbox::Limits::default());
        let tiny = Config::from_toml("[sandbox]\nmemory_mb = 1\n").unwrap();
        assert!(tiny.validate().unwrap_err().to_string().contains("sandbox.memory_mb"));
    }

    #[test]
    fn git_credentials_come_from_a_file_and_bad_ones_name_their_setting() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "file-token-123\n").unwrap();
        let text = format!(
            "[git]\nallowed_hosts = [\"git.example.com\"]\n[[git.credentials]]\nhost = \"git.example.com\"\ntoken_file = \"{}\"\n",
            token.display()
        );
        let remotes = Config::from_toml(&text).unwrap().remotes().unwrap();
        assert!(remotes.mirrors_dir().ends_with("mirrors"));
        let url = errand_git::RemoteUrl::parse("https://git.example.com/o/r").unwrap();
        assert!(remotes.check(&url).is_ok());
        assert!(
            format!("{remotes:?}").contains("***")
                && !format!("{remotes:?}").contains("file-token-123")
        );
        for (toml, expected) in [
            (
                "[[git.credentials]]\nhost = \"h\"\ntoken_env = \"ERRAND_TEST_NO_SUCH_VARIABLE\"\n",
                "ERRAND_TEST_NO_SUCH_VARIABLE is not set",
            ),
            ("[[git.credentials]]\nhost = \"h\"\n", "give a token"),
            (
                "[[git.credentials]]\nhost = \"h\"\ntoken_file = \"/nonexistent/t\"\n",
                "cannot read /nonexistent/t",
            ),
        ] {
            let err = Config::from_toml(toml).unwrap().remotes().unwrap_err();
            let err = format!("{err:#}");
            assert!(err.contains("git.credentials[0] (host h)") && err.contains(expected), "{err}");
        }
    }

    #[test]
    fn forges_get_their_api_and_web_addresses_and_lend_their_token_to_git() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "forge-token-789\n").unwrap();
        let text = format!(
            "[[forges]]\nkind = \"github\"\nhost = \"github.com\"\ntoken_file = \"{0}\"\n\
             [[forges]]\nkind = \"github\"\nhost = \"ghe.example.com\"\ntoken_file = \"{0}\"\n\
             [[forges]]\nkind = \"forgejo\"\nhost = \"codeberg.org\"\ntoken_file = \"{0}\"\nbranch_prefix = \"bot/\"\n",
            token.display()
        );
        let config = Config::from_toml(&text).unwrap();
        let forges = config.forges().unwrap().0;
        let apis: Vec<_> = forges.iter().map(|f| f.config.api_base.as_str()).collect();
        assert_eq!(
            apis,
            [
                "https://api.github.com",
                "https://ghe.example.com/api/v3",
                "https://codeberg.org/api/v1"
            ]
        );
        assert_eq!(forges[2].web_base, "https://codeberg.org");
        assert_eq!(forges[2].branch_prefix, "bot/");
        assert!(!format!("{forges:?}").contains("forge-token-789"));
        assert!(
            config.remotes().unwrap().has_credentials("codeberg.org"),
            "the forge's token fetches and pushes"
        );
        let err = Config::from_toml("[[forges]]\nkind = \"gitlab\"\nhost = \"h\"\n")
            .unwrap()
            .forges()
            .unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("forges[0] (host h): kind must be github, gitea or forgejo"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[model]\nmodle = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("modle"), "{err}");
    }

    #[test]
    fn env_overrides_and_bad_numbers_name_the_variable() {
        let mut config = Config::default();
        let env = |key: &str| match key {
            "ERRAND_MODEL" => Some("m".to_string()),
            "ERRAND_MAX_TURNS" => Some("ten".to_string()),
            _ => None,
        };
        let err = config.apply_env(&env).unwrap_err().to_string();
        assert!(err.contains("ERRAND_MAX_TURNS=\"ten\""), "{err}");
        assert_eq!(config.model.model(), "m");
    }

    #[test]
    fn recovery_and_repeats_reach_the_agent() {
        let defaults = Config::default().agent_config();
        assert!(defaults.recover_tool_calls);
        assert_eq!(defaults.repeat_limit, 3);
        let config =
            Config::from_toml("[model]\nrecover_tool_calls = false\n[agent]\nrepeat_limit = 5\n")
                .unwrap();
        let agent = config.agent_config();
        assert!(!agent.recover_tool_calls);
        assert_eq!(agent.repeat_limit, 5);
        let mut config = Config::default();
        let env = |key: &str| match key {
            "ERRAND_MODEL_RECOVER_TOOL_CALLS" => Some("false".to_string()),
            "ERRAND_REPEAT_LIMIT" => Some("0".to_string()),
            _ => None,
        };
        config.apply_env(&env).unwrap();
        config.validate().unwrap();
        assert!(!config.agent_config().recover_tool_calls);
        assert_eq!(config.agent_config().repeat_limit, 0);
        let once = Config::from_toml("[agent]\nrepeat_limit = 1\n").unwrap();
        assert!(once.validate().unwrap_err().to_string().contains("agent.repeat_limit = 1"));
        let env = |key: &str| (key == "ERRAND_MODEL_RECOVER_TOOL_CALLS").then(|| "yes".to_string());
        let err = Config::default().apply_env(&env).unwrap_err().to_string();
        assert!(err.contains("ERRAND_MODEL_RECOVER_TOOL_CALLS"), "{err}");
    }

    #[test]
    fn prices_and_budgets_reach_the_agent() {
        let config = Config::from_toml(
            "[model]\nmodel = \"m\"\n[prices.m]\ninput = 1.25\noutput = 10.0\n[agent]\ncost_budget_usd = 2.5\ntoken_budget = 1000\n",
        )
        .unwrap();
        config.validate().unwrap();
        let agent = config.agent_config();
        assert_eq!(agent.prices.unwrap().output, 10.0);
        assert_eq!((agent.token_budget, agent.cost_budget_usd), (Some(1000), Some(2.5)));
    }

    #[test]
    fn a_cost_budget_without_prices_is_refused() {
        let config =
            Config::from_toml("[model]\nmodel = \"m\"\n[agent]\ncost_budget_usd = 1.0\n").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("[prices.\"m\"] is missing"), "{err}");
        let config = Config::from_toml("[prices.m]\ninput = -1.0\noutput = 1.0\n").unwrap();
        assert!(config.validate().unwrap_err().to_string().contains("prices.\"m\""));
    }

    /// With only the provider chosen, everything else follows it; explicit settings still win.
    #[test]
    fn anthropic_defaults_follow_the_provider() {
        let mut config = Config::default();
        let env = |key: &str| match key {
            "ERRAND_MODEL_PROVIDER" => Some("anthropic".to_string()),
            "ERRAND_MODEL_MAX_OUTPUT_TOKENS" => Some("64000".to_string()),
            _ => None,
        };
        config.apply_env(&env).unwrap();
        config.validate().unwrap();
        let model = config.model_config();
        assert_eq!(model.provider, errand_model::Provider::Anthropic);
        assert_eq!(model.base_url, "https://api.anthropic.com/v1");
        assert!(model.model.starts_with("claude-"), "{}", model.model);
        assert_eq!(model.max_output_tokens, Some(64000));
        assert_eq!(config.model.api_key_env(), "ANTHROPIC_API_KEY");
        assert_eq!(config.agent_config().patch_tool, errand_agent::PatchToolMode::Freeform);

        let config = Config::from_toml(
            "[model]\nprovider = \"anthropic\"\nmodel = \"claude-x\"\nbase_url = \"http://proxy/v1/\"\napi_key_env = \"MY_KEY\"\n",
        )
        .unwrap();
        config.validate().unwrap();
        let model = config.model_config();
        assert_eq!(
            (model.model.as_str(), model.base_url.as_str()),
            ("claude-x", "http://proxy/v1")
        );
        assert_eq!(config.model.api_key_env(), "MY_KEY");

        let openai = Config::default();
        assert_eq!(openai.model_config().base_url, "https://api.openai.com/v1");
        assert_eq!(openai.model.api_key_env(), "OPENAI_API_KEY");
    }

    #[test]
    fn unknown_providers_and_efforts_are_refused_by_name() {
        let config = Config::from_toml("[model]\nprovider = \"claude\"\n").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("model.provider = \"claude\"") && err.contains("\"anthropic\""),
            "{err}"
        );
        let config =
            Config::from_toml("[model]\nprovider = \"anthropic\"\nreasoning_effort = \"max\"\n")
                .unwrap();
        config.validate().unwrap();
        let err = errand_model::ModelClient::new(config.model_config()).unwrap_err().to_string();
        assert!(err.contains("model.reasoning_effort = \"max\""), "{err}");
    }

    #[test]
    fn the_store_defaults_to_sqlite_in_the_data_dir() {
        let mut config = Config::from_toml("[sandbox]\ndata_dir = \"/srv/errand\"\n").unwrap();
        assert_eq!(config.store_url(), "sqlite:///srv/errand/errand.db");
        let env = |key: &str| {
            (key == "ERRAND_DATABASE_URL").then(|| "postgres://errand:pw@db/errand".to_string())
        };
        config.apply_env(&env).unwrap();
        config.validate().unwrap();
        assert_eq!(config.store_url(), "postgres://errand:pw@db/errand");
        let bad = Config::from_toml("[store]\nurl = \"mysql://u:hunter2@db/x\"\n").unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("store.url") && err.contains("`mysql`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_server_url_is_the_client_setting_or_the_local_listener() {
        assert_eq!(Config::default().server_url(), "http://127.0.0.1:7878");
        let config = Config::from_toml("[server]\nlisten = \"127.0.0.1:9000\"\n").unwrap();
        assert_eq!(config.server_url(), "http://127.0.0.1:9000");
        let mut config = Config::default();
        let env = |key: &str| (key == "ERRAND_SERVER").then(|| "https://errand.example/".into());
        config.apply_env(&env).unwrap();
        assert_eq!(config.server_url(), "https://errand.example");
    }

    #[test]
    fn validation_names_the_key() {
        let mut config = Config::default();
        config.model.base_url = Some("ftp://x".into());
        assert!(config.validate().unwrap_err().to_string().contains("model.base_url"));
        let mut config = Config::default();
        config.sandbox.uid = 0;
        assert!(config.validate().unwrap_err().to_string().contains("sandbox.uid"));
    }
}
