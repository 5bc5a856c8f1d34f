//! The services under test: their settings, in process or as a child process, and waiting for
//! them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::nats::TestStream;
use crate::ports::free_port;
use crate::tokens::action_keys;

/// The settings every service of a test shares, as `(ENVIRONMENT_VARIABLE, value)`: the
/// database, NATS, the stream and subjects, the test signing key, and no rate limits.
pub fn settings(database_url: &str, stream: &TestStream) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_string()),
        ("NATS_URL", stream.nats_url.clone()),
        ("NATS_STREAM", stream.name.clone()),
        ("NATS_SUBJECT_PREFIX", stream.subject_prefix.clone()),
        ("NATS_CHANGES_SUBJECT", stream.changes_subject.clone()),
        ("NATS_CHECKPOINT_SUBJECT", stream.checkpoint_subject.clone()),
        ("NATS_RESULTS_SUBJECT", stream.results_subject.clone()),
    ]
}

/// [`settings`] plus what command-svc needs: the test signing key, and no rate limits.
pub fn command_settings(database_url: &str, stream: &TestStream) -> Vec<(&'static str, String)> {
    let mut settings = settings(database_url, stream);
    settings.extend([
        ("ACTION_KEYS", action_keys()),
        ("RATE_LIMIT_PER_PLAYER", "off".to_string()),
        ("RATE_LIMIT_PER_ADDRESS", "off".to_string()),
    ]);
    settings
}

/// A service's configuration as its binary would read it from `settings` plus `extra` flags
/// (later flags win).
pub fn config<C: clap::Args>(settings: &[(&'static str, String)], extra: &[&str]) -> C {
    #[derive(clap::Parser)]
    #[command(args_override_self = true)]
    struct Cli<C: clap::Args> {
        #[command(flatten)]
        config: C,
    }
    // Each setting becomes the flag that reads the same environment variable.
    let command = <Cli<C> as clap::CommandFactory>::command();
    let flag = |variable: &str| {
        command
            .get_arguments()
            .find(|arg| arg.get_env() == Some(std::ffi::OsStr::new(variable)))
            .and_then(clap::Arg::get_long)
            .unwrap_or_else(|| panic!("{variable} is not a setting of this service"))
    };
    let mut args = vec!["service".to_string()];
    args.extend(settings.iter().map(|(variable, value)| format!("--{}={value}", flag(variable))));
    args.extend(extra.iter().map(ToString::to_string));
    <Cli<C> as clap::Parser>::try_parse_from(args).expect("test configuration parses").config
}

/// A service running inside the test process on a port of its own.
pub struct InProcess {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Starts `run(listener, shutdown)` on a free port and waits until `/readyz` answers 200.
    pub async fn start<F, Fut>(run: F) -> Self
    where
        F: FnOnce(TcpListener, tokio_util::sync::CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), run).await
    }

    /// Starts `run(listener, shutdown)` on `listener` and waits until `/readyz` answers 200.
    pub async fn start_on<F, Fut>(listener: TcpListener, run: F) -> Self
    where
        F: FnOnce(TcpListener, tokio_util::sync::CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let service = Self::spawn_on(listener, run);
        wait_ready(&service.url).await;
        service
    }

    /// Starts `run(listener, shutdown)` on a free port and waits until it answers `/healthz`
    /// (live), whether it is ready or not.
    pub async fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(TcpListener, tokio_util::sync::CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let service = Self::spawn_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), run);
        let client = reqwest::Client::new();
        eventually(Duration::from_secs(15), || async {
            client.get(format!("{}/healthz", service.url)).send().await.ok().filter(|r| r.status().is_success())
        })
        .await;
        service
    }

    fn spawn_on<F, Fut>(listener: TcpListener, run: F) -> Self
    where
        F: FnOnce(TcpListener, tokio_util::sync::CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(run(listener, stop.clone()));
        Self { url, stop, task }
    }

    /// Graceful shutdown; returns what the service's `run` returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.unwrap()
    }
}

/// A service running as its own process.
pub struct Process {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
}

impl Process {
    /// Spawns `binary` with `settings`, listening on a free port through `addr_variable`, and
    /// waits until it is ready.
    pub async fn start(binary: &str, settings: &[(&'static str, String)], addr_variable: &str) -> Self {
        let process = Self::spawn_on(binary, settings, addr_variable, free_port(), Stdio::inherit());
        wait_ready(&process.url).await;
        process
    }

    /// Spawns `binary` with `settings`, listening on `port` through `addr_variable`, its log
    /// going to `log`, without waiting for it (a restart on the port it had, say).
    pub fn spawn_on(
        binary: &str,
        settings: &[(&'static str, String)],
        addr_variable: &str,
        port: u16,
        log: impl Into<Stdio>,
    ) -> Self {
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(binary)
            .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
            .env(addr_variable, &addr)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { url: format!("http://{addr}"), child }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (e.g. `TERM`, `KILL`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it exited successfully.
    pub async fn wait(mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(tokio::time::Instant::now() < deadline, "the process did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory of the process, in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `<url>/readyz` answers 200 (at most 15 s).
pub async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} did not become ready in 15 s");
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, Fut: Future<Output = Option<T>>>(within: Duration, mut check: impl FnMut() -> Fut) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not reached within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `binary` with `args` and only the environment `envs` until it exits (a refusal at
/// start): its exit code, and everything it wrote, errors and log alike.
pub fn run_to_exit(binary: &str, args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = std::process::Command::new(binary)
        .args(args)
        .env_clear()
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (output.status.code(), String::from_utf8_lossy(&[output.stderr, output.stdout].concat()).into_owned())
}
