//! A real Prometheus (Debian's package) for one test, scraping targets from file-based service
//! discovery so a test can add and remove replicas while it runs.

use crate::{find_binary, free_port, wait_for};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// A running Prometheus; killed on drop, its data directory removed.
pub struct Prometheus {
    /// Base URL of the HTTP API.
    url: String,
    /// `127.0.0.1:port` it listens on, kept across restarts.
    listen: String,
    /// Config, targets and TSDB, removed on drop.
    dir: TempDir,
    /// The process; `None` while stopped.
    child: Option<Child>,
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job, targets)` every `scrape_interval` and waits until
    /// it is ready.
    pub async fn start(scrape_interval: Duration, jobs: &[(&str, Vec<String>)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let interval = format!("{}ms", scrape_interval.as_millis());
        let mut config = format!(
            "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n"
        );
        for (job, _) in jobs {
            let file = dir.path().join(format!("{job}.json"));
            config.push_str(&format!(
                "  - job_name: '{job}'\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
                file.display()
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        let listen = format!("127.0.0.1:{}", free_port());
        let mut prometheus = Self {
            url: format!("http://{listen}"),
            listen,
            dir,
            child: None,
        };
        for (job, targets) in jobs {
            prometheus.set_targets(job, targets);
        }
        prometheus.restart().await;
        prometheus
    }

    /// Base URL of the HTTP API, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replaces the targets of `job` (picked up within about a second).
    pub fn set_targets(&self, job: &str, targets: &[String]) {
        let body = serde_json::json!([{ "targets": targets }]);
        let path = self.dir.path().join(format!("{job}.json"));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body.to_string()).expect("write targets");
        std::fs::rename(&tmp, &path).expect("replace targets");
    }

    /// Stops Prometheus (for outage tests); its data stays for [`Prometheus::restart`].
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts (again) on the same address and data, and waits until ready.
    pub async fn restart(&mut self) {
        self.stop().await;
        let binary = find_binary("prometheus", "PROMETHEUS_BIN");
        let data: PathBuf = self.dir.path().join("data");
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={}", self.listen))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start prometheus");
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url);
        wait_for(Duration::from_secs(30), "Prometheus to be ready", || {
            let ready = ready.clone();
            async move {
                let response = reqwest::get(ready).await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// Runs an instant query and returns the `data.result` array.
    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let response: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
            .expect("query Prometheus")
            .json()
            .await
            .expect("Prometheus answers JSON");
        response["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
