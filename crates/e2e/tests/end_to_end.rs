//! The whole system on the real Docker engine, with images built locally: the broker,
//! Prometheus, the demo target and the fleet, from docker-compose.yml with only the images a
//! registry would provide swapped (docker-compose.local.yml). A load burst makes the scaler add
//! demo replicas through the Engine API and latency falls back under the SLA; then the load drops
//! and replicas are removed after the stabilization window.
//!
//!     cargo test -p e2e --test end_to_end -- --ignored --nocapture
//!
//! About ten minutes; `scripts/test.sh` runs it.

use e2e::{dashboard_queries, metric_names, repo};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// SLA of the shipped models' labels: p95 latency at most 0.25 s.
const SLA_P95: f64 = 0.25;

/// Metrics of exporters that the local run does not have (no image here): cAdvisor, and the
/// histogram name of Sock Shop's Java builds.
const EXTERNAL: [&str; 3] = [
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "http_request_duration_seconds_count",
];

/// The compose project, in a copy of the repository's deployment files, removed on drop.
struct Project {
    name: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
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
        std::fs::create_dir_all(dir.path().join("output")).unwrap();
        let name = format!("mlscale-e2e-{}", std::process::id());
        let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
        let gid = String::from_utf8(Command::new("id").arg("-g").output().unwrap().stdout).unwrap();
        let port = |p: u16| p.to_string();
        let env = [
            ("COMPOSE_PROJECT_NAME", name.clone()),
            ("COMPOSE_PROFILES", "production,demo,tools".into()),
            ("MODE", "production".into()),
            ("POLL_INTERVAL_SEC", "10".into()),
            ("DECISION_WINDOW_SEC", "3".into()),
            ("SCALED_SERVICES", "demo".into()),
            ("MAX_REPLICAS", "4".into()),
            ("SCALE_UP_COOLDOWN_SEC", "20".into()),
            ("SCALE_DOWN_COOLDOWN_SEC", "30".into()),
            ("STABILIZATION_WINDOW_SEC", "60".into()),
            ("FLEET_UID", uid.trim().to_owned()),
            ("FLEET_GID", gid.trim().to_owned()),
            ("PROMETHEUS_PORT", port(testkit::free_port())),
            ("KAFKA_PORT", port(testkit::free_port())),
            ("GRAFANA_PORT", port(testkit::free_port())),
            ("SOCKSHOP_PORT", port(testkit::free_port())),
            ("SOCKSHOP_ADMIN_PORT", port(testkit::free_port())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self { name, dir, env }
    }

    fn var(&self, key: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == key).unwrap().1
    }

    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .args(["-f", "docker-compose.yml", "-f", "docker-compose.local.yml"])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn must(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn prometheus(&self) -> String {
        format!("http://127.0.0.1:{}", self.var("PROMETHEUS_PORT"))
    }

    fn output(&self) -> PathBuf {
        self.dir.path().join("output")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "2"]);
    }
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

/// One instant query; the first sample's value.
async fn query(prometheus: &str, promql: &str) -> Option<f64> {
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

/// Demo replicas the engine runs, by their compose labels.
fn running_demo_replicas(project: &str) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .args(["--filter", "label=com.docker.compose.service=demo"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// What was seen at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    replicas: usize,
    p95: Option<f64>,
    rate: Option<f64>,
}

async fn sample(project: &Project, started: Instant) -> Sample {
    let prometheus = project.prometheus();
    let sample = Sample {
        at: started.elapsed(),
        replicas: running_demo_replicas(&project.name),
        p95: query(&prometheus, r#"histogram_quantile(0.95, sum by (le) (rate(request_duration_seconds_bucket{job="demo"}[20s])))"#).await,
        rate: query(&prometheus, r#"sum(rate(request_duration_seconds_count{job="demo"}[20s]))"#).await,
    };
    println!(
        "t={:>4}s demo replicas {} | {:>6.1} req/s | p95 {}",
        sample.at.as_secs(),
        sample.replicas,
        sample.rate.unwrap_or(0.0),
        sample.p95.map_or("-".into(), |p| format!("{:.3} s", p))
    );
    sample
}

/// Samples every 10 s until `done` says so or `limit` passes.
async fn watch(
    project: &Project,
    started: Instant,
    limit: Duration,
    mut done: impl FnMut(&[Sample]) -> bool,
) -> Vec<Sample> {
    let until = Instant::now() + limit;
    let mut samples = Vec::new();
    while Instant::now() < until {
        samples.push(sample(project, started).await);
        if done(&samples) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    samples
}

#[tokio::test]
#[ignore = "about ten minutes on the Docker engine; run by scripts/test.sh"]
async fn a_load_burst_scales_the_demo_target_up_and_back_down() {
    let built = Command::new(repo().join("scripts/build-local-images.sh"))
        .status()
        .unwrap();
    assert!(built.success(), "scripts/build-local-images.sh failed");
    let project = Project::new();
    let services = [
        "kafka",
        "prometheus",
        "docker-proxy",
        "demo",
        "metrics-aggregator",
        "ml-xgboost",
        "ml-random-forest",
        "ml-logistic-regression",
        "authoritative-scaler",
    ];
    let mut up = vec!["up", "-d"];
    up.extend(services);
    project.must(&up);
    let started = Instant::now();

    // Everything scraped: the demo target and the fleet's five /metrics.
    let prometheus = project.prometheus();
    let mut ok = false;
    for _ in 0..60 {
        let up_targets = query(&prometheus, r#"count(up{job=~"demo|fleet"} == 1)"#)
            .await
            .unwrap_or(0.0);
        if up_targets >= 6.0 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        ok,
        "the demo target and the fleet are scraped:\n{}",
        project.must(&["ps"])
    );

    // The burst: 170 req/s against one replica of 80 req/s capacity, then 20 req/s.
    project.must(&[
        "run",
        "-d",
        "--rm",
        "loadgen",
        "run",
        "--target",
        "http://demo:8080/catalogue",
        "--pattern",
        "step",
        "--levels",
        "170,20",
        "--step-every",
        "4m",
        "--duration",
        "9m",
    ]);
    let load_started = Instant::now();
    let burst = watch(&project, started, Duration::from_secs(240), |s| {
        let last = s[s.len() - 1];
        last.replicas >= 3
            && last.p95.is_some_and(|p| p < SLA_P95)
            && load_started.elapsed() > Duration::from_secs(120)
    })
    .await;
    let peak = burst.iter().map(|s| s.replicas).max().unwrap_or(0);
    assert!(
        peak >= 2,
        "the scaler added demo replicas during the burst: {burst:?}"
    );
    let worst = burst.iter().filter_map(|s| s.p95).fold(0.0, f64::max);
    assert!(
        worst > SLA_P95,
        "one replica violated the SLA under the burst (p95 {worst})"
    );
    let recovered = burst
        .iter()
        .rev()
        .take(3)
        .filter_map(|s| s.p95)
        .any(|p| p < SLA_P95);
    assert!(
        recovered,
        "latency came back under the SLA after the scale-up: {burst:?}"
    );
    let listed = project.must(&["ps", "-q", "demo"]).lines().count();
    assert_eq!(
        listed,
        burst.last().unwrap().replicas,
        "docker-compose ps lists the scaler's replicas"
    );

    // The drop: after the stabilization window (60 s) and the cooldown, replicas go.
    let remaining = Duration::from_secs(240).saturating_sub(load_started.elapsed());
    tokio::time::sleep(remaining).await;
    let calm = watch(&project, started, Duration::from_secs(300), |s| {
        s[s.len() - 1].replicas < peak
    })
    .await;
    let last = calm.last().unwrap();
    assert!(
        last.replicas < peak,
        "replicas were removed after the load dropped: {calm:?}"
    );

    // The decision log users tail.
    let logs = project.must(&["logs", "--no-color", "authoritative-scaler"]);
    for needle in [
        "SCALING DECISION #",
        "DECISION: SCALE UP",
        "DECISION: SCALE DOWN",
        "Vote Count:",
        "outcome=\"applied\"",
    ] {
        assert!(
            logs.contains(needle),
            "`{needle}` missing from docker-compose logs authoritative-scaler"
        );
    }
    let decisions = std::fs::read_to_string(project.output().join("decisions.csv")).unwrap();
    assert!(
        decisions.lines().count() > 10,
        "decisions.csv holds the decisions"
    );
    for model in ["xgboost", "random_forest", "logistic_regression"] {
        let predictions =
            std::fs::read_to_string(project.output().join(format!("predictions_{model}.csv")))
                .unwrap();
        assert!(
            predictions.lines().count() > 10,
            "predictions_{model}.csv grows"
        );
    }

    // Every metric the dashboards query is exported by the running system (or by an exporter
    // this local run has no image for).
    let names: serde_json::Value =
        reqwest::get(format!("{prometheus}/api/v1/label/__name__/values"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let exported: BTreeSet<String> = names["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    for (file, panel, expr) in dashboard_queries() {
        for metric in metric_names(&expr) {
            assert!(
                exported.contains(&metric) || EXTERNAL.contains(&metric.as_str()),
                "{file} / {panel}: {metric} is not exported by the running system"
            );
        }
    }
    println!("\n--- docker-compose logs authoritative-scaler (last decisions) ---");
    let tail: Vec<&str> = logs.lines().rev().take(40).collect();
    for line in tail.into_iter().rev() {
        println!("{line}");
    }
    println!("end-to-end run took {:?}", started.elapsed());
}
