//! The real services as child processes: the three `ml-inference` voters and the
//! `authoritative-scaler` (log backend), built in the same cargo profile as this benchmark and
//! found next to its executable. Each gets its own topics, consumer group, free port and files in
//! the run's directory (CSV outputs, stdout, logs); all are killed when dropped.

use anyhow::Context;
use models::ModelKind;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The command that builds the services in the release profile.
const BUILD_HINT: &str = "cargo build --release -p ml-inference -p authoritative-scaler";

/// The services' executables.
pub struct Binaries {
    pub inference: PathBuf,
    pub scaler: PathBuf,
}

impl Binaries {
    /// Looks for the services in this executable's directory (the cargo profile it was built
    /// in), so that a release benchmark runs release services.
    pub fn next_to_this_program() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot tell where this program is")?;
        let dir = exe
            .parent()
            .with_context(|| format!("{} has no directory", exe.display()))?;
        let find = |name: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            anyhow::ensure!(
                path.is_file(),
                "{} not found next to this benchmark: build the services in the same profile \
                 (`{BUILD_HINT}` for a release benchmark)",
                path.display()
            );
            Ok(path)
        };
        Ok(Self {
            inference: find("ml-inference")?,
            scaler: find("authoritative-scaler")?,
        })
    }
}

/// The topics of one pipeline run.
pub struct Topics {
    pub metrics: String,
    pub votes: String,
    pub decisions: String,
}

impl Topics {
    /// Fresh names, unused by any earlier run.
    pub fn unique() -> Self {
        Self {
            metrics: testkit::unique("bench-metrics"),
            votes: testkit::unique("bench-model-votes"),
            decisions: testkit::unique("bench-scaling-decisions"),
        }
    }
}

/// What the services are started with.
pub struct Settings<'a> {
    pub binaries: &'a Binaries,
    /// `<models>/<model>/` artifacts and `<models>/evaluation.json`; absolute, since the
    /// services run in `dir`.
    pub models: &'a Path,
    /// The run's directory: every file a service writes.
    pub dir: &'a Path,
    pub bootstrap: &'a str,
    /// `KAFKA_PROPERTIES` entries, as the harness uses them.
    pub kafka_properties: &'a [String],
    pub topics: &'a Topics,
    pub decision_window_sec: u64,
    pub max_vote_age_sec: u64,
}

/// One running service.
pub struct Service {
    /// Its name in docker-compose.yml, for tables and file names.
    pub name: String,
    /// The process; killed on drop.
    child: Child,
    /// Its /metrics and /healthz address (LISTEN_ADDR).
    ops: SocketAddr,
    /// Its stderr (the logs), quoted when it fails.
    log: PathBuf,
}

impl Service {
    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Why the service is not running, if it is not.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status}){}", self.name, self.tail())),
            Ok(None) => None,
            Err(e) => Some(format!("{}: cannot query its state: {e}", self.name)),
        }
    }

    /// The last lines of its log, for error messages.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let last = lines[lines.len().saturating_sub(5)..].join("\n  ");
        format!("; last lines of {}:\n  {last}", self.log.display())
    }

    /// Waits until /healthz answers 200, failing early if the process exits.
    async fn wait_healthy(
        &mut self,
        client: &reqwest::Client,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let url = format!("http://{}/healthz", self.ops);
        loop {
            if let Some(exited) = self.exited() {
                anyhow::bail!("{exited}");
            }
            let answered = client.get(&url).send().await.map(|r| r.status());
            if answered
                .as_ref()
                .is_ok_and(|status| *status == reqwest::StatusCode::OK)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{} did not answer 200 on {url} in time (last: {answered:?}){}",
                    self.name,
                    self.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The pipeline's services: three voters and the scaler.
pub struct Fleet {
    pub services: Vec<Service>,
}

impl Fleet {
    /// Starts every service; they create their topics, join their groups and load their models
    /// on their own (see [`Fleet::wait_healthy`]).
    pub fn start(settings: &Settings<'_>) -> anyhow::Result<Self> {
        let topics = settings.topics;
        let mut services = Vec::new();
        for kind in ModelKind::ALL {
            let model = kind.as_str();
            let name = format!("ml-{}", model.replace('_', "-"));
            let predictions = settings.dir.join(format!("predictions_{model}.csv"));
            let env = [
                ("MODEL", model.to_owned()),
                ("MODEL_PATH", path(&settings.models.join(model))),
                ("METRICS_TOPIC", topics.metrics.clone()),
                ("VOTES_TOPIC", topics.votes.clone()),
                ("CONSUMER_GROUP", testkit::unique(&format!("bench-{name}"))),
                ("PREDICTIONS_CSV", path(&predictions)),
            ];
            services.push(spawn(settings, &settings.binaries.inference, name, &env)?);
        }
        let expected: Vec<&str> = ModelKind::ALL.iter().map(|k| k.as_str()).collect();
        let env = [
            ("SCALER_BACKEND", "log".to_owned()),
            ("VOTES_TOPIC", topics.votes.clone()),
            ("DECISIONS_TOPIC", topics.decisions.clone()),
            (
                "CONSUMER_GROUP",
                testkit::unique("bench-authoritative-scaler"),
            ),
            ("DECISIONS_CSV", path(&settings.dir.join("decisions.csv"))),
            ("EXPECTED_MODELS", expected.join(",")),
            (
                "DECISION_WINDOW_SEC",
                settings.decision_window_sec.to_string(),
            ),
            ("MAX_VOTE_AGE_SEC", settings.max_vote_age_sec.to_string()),
            (
                "EVALUATION_JSON",
                path(&settings.models.join("evaluation.json")),
            ),
        ];
        let scaler = spawn(
            settings,
            &settings.binaries.scaler,
            "authoritative-scaler".into(),
            &env,
        )?;
        services.push(scaler);
        Ok(Self { services })
    }

    /// Waits until every service's /healthz answers 200.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .context("cannot build an HTTP client")?;
        let deadline = Instant::now() + timeout;
        for service in &mut self.services {
            service.wait_healthy(&client, deadline).await?;
        }
        Ok(())
    }

    /// The services that are no longer running, with why.
    pub fn exited(&mut self) -> Vec<String> {
        self.services
            .iter_mut()
            .filter_map(Service::exited)
            .collect()
    }

    /// The scaler's `scaler_votes_total` by outcome (`complete`, `late`, `overflow`, ...), read
    /// from its /metrics; empty when it does not answer.
    pub async fn scaler_votes(&self) -> Vec<(String, u64)> {
        let Some(scaler) = self
            .services
            .iter()
            .find(|s| s.name == "authoritative-scaler")
        else {
            return Vec::new();
        };
        let url = format!("http://{}/metrics", scaler.ops);
        let Ok(response) = reqwest::get(&url).await else {
            return Vec::new();
        };
        let text = response.text().await.unwrap_or_default();
        decision::Added::OUTCOMES
            .iter()
            .map(|outcome| {
                let label = format!("outcome=\"{outcome}\"");
                let sum = testkit::metric_sum(&text, "scaler_votes_total{", &[&label]);
                ((*outcome).to_owned(), sum as u64)
            })
            .collect()
    }

    /// Kills every service and waits for it to go.
    pub async fn stop(mut self) {
        for service in &mut self.services {
            let _ = service.child.kill().await;
        }
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `MALLOC_ARENA_MAX` in the image's environment (Dockerfile).
pub const IMAGE_MALLOC_ARENA_MAX: &str = "1";

/// Starts one service in `settings.dir` with only the environment it needs (nothing from the
/// caller's environment leaks into its settings), stdout and stderr to files.
fn spawn(
    settings: &Settings<'_>,
    binary: &Path,
    name: String,
    env: &[(&str, String)],
) -> anyhow::Result<Service> {
    let listen: SocketAddr = ([127, 0, 0, 1], testkit::free_port()).into();
    let stdout_path = settings.dir.join(format!("{name}.stdout"));
    let log = settings.dir.join(format!("{name}.log"));
    let stdout = File::create(&stdout_path)
        .with_context(|| format!("cannot create {}", stdout_path.display()))?;
    let stderr = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut command = Command::new(binary);
    command.current_dir(settings.dir).env_clear();
    // The library path as the caller has it (no fleet service needs one of its own).
    for inherited in ["PATH", "HOME", "LD_LIBRARY_PATH"] {
        if let Some(value) = std::env::var_os(inherited) {
            command.env(inherited, value);
        }
    }
    // The allocator as the image (Dockerfile) sets it, unless the caller sets it otherwise.
    command.env(
        "MALLOC_ARENA_MAX",
        std::env::var_os("MALLOC_ARENA_MAX").unwrap_or_else(|| IMAGE_MALLOC_ARENA_MAX.into()),
    );
    command
        .env("KAFKA_BOOTSTRAP_SERVERS", settings.bootstrap)
        .env("LISTEN_ADDR", listen.to_string())
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)));
    if !settings.kafka_properties.is_empty() {
        command.env("KAFKA_PROPERTIES", settings.kafka_properties.join(","));
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} ({})", name, binary.display()))?;
    tracing::info!(service = %name, pid = child.id(), %listen, "started");
    Ok(Service {
        name,
        child,
        ops: listen,
        log,
    })
}

#[cfg(test)]
mod tests {
    /// The benchmark measures the services with the allocator setting the image ships.
    #[test]
    fn the_services_run_with_the_images_allocator_setting() {
        let dockerfile = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Dockerfile");
        let dockerfile = std::fs::read_to_string(dockerfile).unwrap();
        let line = format!("ENV MALLOC_ARENA_MAX={}", super::IMAGE_MALLOC_ARENA_MAX);
        assert!(
            dockerfile.lines().any(|l| l.trim() == line),
            "the Dockerfile sets `{line}`"
        );
    }
}
