//! A compose project of the whole system on the real Docker engine, in a copy of the
//! repository's deployment files, with the images a registry would provide swapped for locally
//! built ones (`docker-compose.local.yml`); taken down when dropped. Shared by the end-to-end
//! test and the live trace replay.

use crate::repo;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The services of the production profile, with the demo target.
pub const SERVICES: [&str; 9] = [
    "kafka",
    "prometheus",
    "docker-guard",
    "demo",
    "metrics-aggregator",
    "ml-xgboost",
    "ml-random-forest",
    "ml-logistic-regression",
    "authoritative-scaler",
];

/// The compose project, in a copy of the repository's deployment files, removed on drop.
pub struct Project {
    pub name: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

fn id(flag: &str) -> String {
    Command::new("id")
        .arg(flag)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "1000".into())
}

impl Project {
    /// A project in production mode with the demo and tools profiles, on free host ports, with
    /// `settings` (environment variables the compose file reads) over `.env`.
    pub fn new(settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for item in [
            "docker-compose.yml",
            "docker-compose.local.yml",
            ".env",
            "prometheus",
            "models",
            "docker",
            "grafana",
        ] {
            copy(&repo().join(item), &dir.path().join(item));
        }
        std::fs::create_dir_all(dir.path().join("output")).expect("the output directory");
        let name = format!("mlscale-e2e-{}", std::process::id());
        let port = || testkit::free_port().to_string();
        let mut env: Vec<(String, String)> = [
            ("COMPOSE_PROJECT_NAME", name.clone()),
            ("COMPOSE_PROFILES", "production,demo,tools".into()),
            ("MODE", "production".into()),
            ("POLL_INTERVAL_SEC", "10".into()),
            ("FLEET_UID", id("-u")),
            ("FLEET_GID", id("-g")),
            ("PROMETHEUS_PORT", port()),
            ("KAFKA_PORT", port()),
            ("GRAFANA_PORT", port()),
            ("SOCKSHOP_PORT", port()),
            ("SOCKSHOP_ADMIN_PORT", port()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in settings {
            env.retain(|(k, _)| k != key);
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        Self { name, dir, env }
    }

    /// A setting of the project.
    pub fn var(&self, key: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Runs `docker-compose` with the project's files and settings.
    pub fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .args(["-f", "docker-compose.yml", "-f", "docker-compose.local.yml"])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path())
            .output()
            .expect("docker-compose runs")
    }

    /// Runs `docker-compose`, panicking with its stderr if it fails; its stdout.
    pub fn must(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Builds the local images (`scripts/build-local-images.sh`, cached) and starts
    /// [`SERVICES`].
    pub fn up(&self) {
        self.up_with(&[]);
    }

    /// As [`Project::up`], with `more` services (of the project's profiles) started too.
    pub fn up_with(&self, more: &[&str]) {
        let built = Command::new(repo().join("scripts/build-local-images.sh"))
            .status()
            .expect("scripts/build-local-images.sh runs");
        assert!(built.success(), "scripts/build-local-images.sh failed");
        let mut up = vec!["up", "-d"];
        up.extend(SERVICES);
        up.extend(more);
        self.must(&up);
    }

    /// Runs the load generator against the demo target (`docker-compose run --rm load-testing
    /// run --target http://demo:8080/catalogue` and `args`, its pattern), in the background with
    /// `detach`; what docker-compose printed (the generator's summary, when not detached).
    pub fn demo_load(&self, detach: bool, args: &[&str]) -> String {
        let mut run = vec!["run"];
        if detach {
            run.push("-d");
        }
        run.extend([
            "--rm",
            "load-testing",
            "run",
            "--target",
            "http://demo:8080/catalogue",
        ]);
        run.extend(args);
        self.must(&run)
    }

    /// Prometheus' URL on the host.
    pub fn prometheus(&self) -> String {
        format!("http://127.0.0.1:{}", self.var("PROMETHEUS_PORT"))
    }

    /// The project's `output/` (mounted into the fleet at /app/output).
    pub fn output(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    /// Waits until Prometheus scrapes the demo target and the fleet's five services.
    pub async fn wait_until_scraped(&self) {
        for _ in 0..60 {
            let up = query(&self.prometheus(), r#"count(up{job=~"demo|fleet"} == 1)"#)
                .await
                .unwrap_or(0.0);
            if up >= 6.0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        panic!(
            "the demo target and the fleet are not all scraped:\n{}",
            self.must(&["ps"])
        );
    }

    /// Demo replicas the engine runs, by their compose labels.
    pub fn running_demo_replicas(&self) -> usize {
        self.running_replicas("demo")
    }

    /// Replicas of `service` the engine runs, by their compose labels.
    pub fn running_replicas(&self, service: &str) -> usize {
        self.running_containers(service).len()
    }

    /// The ids of the running containers of `service`, by their compose labels.
    pub fn running_containers(&self, service: &str) -> Vec<String> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.name),
            ])
            .args([
                "--filter",
                &format!("label=com.docker.compose.service={service}"),
            ])
            .output()
            .expect("docker runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "2"]);
    }
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("a directory in the project copy");
        for entry in std::fs::read_dir(from).expect("a readable deployment directory") {
            let entry = entry.expect("a readable directory entry");
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).expect("a copied deployment file");
    }
}

/// One instant query; the first sample's value.
pub async fn query(prometheus: &str, promql: &str) -> Option<f64> {
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}
