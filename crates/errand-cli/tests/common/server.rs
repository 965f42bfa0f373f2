//! A real `errand serve` for tests: started on a free loopback port with a scratch data
//! directory, ready once `/api/health` answers, killed when dropped. It can be killed with
//! SIGKILL or SIGTERM and started again on the same address and data, for crash and
//! restart tests, and runs client commands (`errand task …`) against itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// How a [`TestServer`] runs.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The whole `errand.toml` (for example [`super::model_config`] plus `[server]` settings).
    pub config: String,
    /// `--workers N`; unset: the configuration's (2 by default).
    pub workers: Option<u32>,
    /// Variables for the server process on top of the clean environment (see [`TestServer::env`]).
    pub env: Vec<(String, String)>,
}

pub struct TestServer {
    root: PathBuf,
    options: ServeOptions,
    address: SocketAddr,
    child: Option<Child>,
    /// Everything every run of the server wrote to stderr.
    log: Arc<Mutex<String>>,
    reader: Option<tokio::task::JoinHandle<()>>,
    token: String,
}

/// How long the server may take to start (a cold SQLite file, migrations).
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl TestServer {
    /// Starts `errand serve` with its configuration in `root/errand.toml` and its data in
    /// `root/data`, on a port the system picks.
    pub async fn start(root: &Path, options: ServeOptions) -> TestServer {
        let mut server = TestServer {
            root: root.to_path_buf(),
            options,
            address: "127.0.0.1:0".parse().unwrap(),
            child: None,
            log: Arc::default(),
            reader: None,
            token: String::new(),
        };
        std::fs::write(server.config_file(), &server.options.config).unwrap();
        server.launch().await;
        server
    }

    /// `http://127.0.0.1:PORT`, the same across restarts.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The local user's token, which `errand serve` wrote to the data directory.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("errand.toml")
    }

    /// What the server printed to stderr so far, for assertion messages.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The server process's id (`None` while it is stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// `kill -9`: no draining, no cleanup; waits until the process is gone.
    pub async fn kill9(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().await.unwrap();
        self.stop_reader().await;
    }

    /// SIGTERM: the server drains and exits; returns its exit status.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let pid = child.id().expect("not yet reaped") as libc::pid_t;
        // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = child.wait().await.unwrap();
        self.stop_reader().await;
        status
    }

    /// Starts the server again on the same address, configuration and data.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        self.launch().await;
    }

    /// The environment every process of this server's tests gets: nothing of the host's but
    /// PATH; HOME is the scratch root, every provider's key is `test-key`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".into(), std::env::var("PATH").unwrap()),
            ("HOME".into(), self.root.display().to_string()),
            ("OPENAI_API_KEY".into(), "test-key".into()),
            ("ANTHROPIC_API_KEY".into(), "test-key".into()),
            ("ERRAND_DATA_DIR".into(), self.data_dir().display().to_string()),
        ];
        env.extend(self.options.env.iter().cloned());
        env
    }

    /// `errand --config <root>/errand.toml …` in `cwd` as a client of this server
    /// (`ERRAND_SERVER` and `ERRAND_TOKEN` set), in the clean environment.
    pub fn client(&self, cwd: &Path) -> Command {
        let mut command = self.errand_command();
        command
            .current_dir(cwd)
            .env("ERRAND_SERVER", self.url())
            .env("ERRAND_TOKEN", &self.token)
            .stdin(Stdio::null());
        command
    }

    /// Runs `errand <args>` as a client of this server and waits for it.
    pub async fn errand(&self, cwd: &Path, args: &[&str]) -> Output {
        self.client(cwd).args(args).output().await.unwrap()
    }

    fn errand_command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_errand"));
        command.arg("--config").arg(self.config_file()).env_clear().envs(self.env());
        command
    }

    async fn launch(&mut self) {
        let mut command = self.errand_command();
        command.arg("serve").arg("--listen").arg(self.address.to_string());
        if let Some(workers) = self.options.workers {
            command.arg("--workers").arg(workers.to_string());
        }
        let mut child = command
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();

        // Drain stderr for the server's whole life (a full pipe would block it), and pass on
        // the address from `errand: serving http://ADDR …`.
        let (serving_tx, mut serving) = watch::channel(None::<SocketAddr>);
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        self.reader = Some(tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("errand: serving http://") {
                    let address = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                    serving_tx.send_replace(address);
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }));

        let started = tokio::time::timeout(START_TIMEOUT, async {
            tokio::select! {
                changed = serving.wait_for(Option::is_some) => Ok(changed.unwrap().unwrap()),
                status = child.wait() => Err(status.unwrap()),
            }
        })
        .await;
        self.address = match started {
            Ok(Ok(address)) => address,
            Ok(Err(status)) => panic!("errand serve exited ({status}):\n{}", self.log()),
            Err(_) => panic!("errand serve did not start in time:\n{}", self.log()),
        };
        self.child = Some(child);
        self.wait_healthy().await;
        self.token = std::fs::read_to_string(self.data_dir().join("token"))
            .unwrap_or_else(|e| panic!("no local token ({e}):\n{}", self.log()))
            .trim()
            .to_string();
    }

    /// Polls `/api/health` until it answers 200: the address is bound before the serving line
    /// is printed, so this normally succeeds at once.
    async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        let health = format!("{}/api/health", self.url());
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            match http.get(&health).send().await {
                Ok(response) if response.status().is_success() => return,
                other if tokio::time::Instant::now() > deadline => {
                    panic!("{health} did not answer 200 ({other:?}):\n{}", self.log())
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn stop_reader(&mut self) {
        // Stderr closes with the process, so the reader ends after the last line, unless a
        // process the server left behind holds the pipe open: then the log ends here.
        if let Some(mut reader) = self.reader.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut reader).await.is_err()
        {
            reader.abort();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}
