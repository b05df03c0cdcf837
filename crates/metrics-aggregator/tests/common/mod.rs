//! Shared set-up of the aggregator's integration tests: demo replicas, load, the aggregator
//! itself, and reading its /metrics.

#![allow(dead_code)]

use demo_service::DemoConfig;
use load_testing::engine::{Arrivals, RunSpec};
use load_testing::pattern::Pattern;
use load_testing::scenario::Scenario;
use load_testing::stats::Stats;
use load_testing::targets::Targets;
use metrics_aggregator::{AggregatorConfig, Application};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts `n` replicas of a demo service; returns their `host:port`.
pub async fn replicas(
    service: &str,
    n: usize,
    concurrency: u32,
    service_time_ms: f64,
    shutdown: &CancellationToken,
) -> Vec<String> {
    let mut addrs = Vec::new();
    for _ in 0..n {
        let app = demo_service::Application::build(&DemoConfig::local(
            service,
            concurrency,
            service_time_ms,
        ))
        .await
        .unwrap();
        addrs.push(app.local_addr().to_string());
        tokio::spawn(app.run(shutdown.clone()));
    }
    addrs
}

/// Drives `pattern` for `duration` against the replicas, open-loop, in the background.
pub fn drive(
    replicas: &[String],
    pattern: Pattern,
    duration: Duration,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let urls: Vec<String> = replicas
        .iter()
        .map(|a| format!("http://{a}/catalogue"))
        .collect();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let spec = RunSpec {
            pattern,
            duration,
            arrivals: Arrivals::Poisson,
            max_in_flight: 10_000,
            timeout: Duration::from_secs(5),
            users: 1,
        };
        let targets = Arc::new(Targets::new(&urls, &[]).await.unwrap());
        let scenario = Scenario::Url {
            path: "/catalogue".into(),
        };
        load_testing::engine::run(
            &spec,
            &scenario,
            targets,
            Arc::new(Stats::default()),
            &shutdown,
        )
        .await
        .unwrap();
    })
}

/// The aggregator's configuration from command-line style arguments (ops on an ephemeral port,
/// capacity estimates in a file of the test's own unless the arguments name one).
pub fn config(args: &[&str]) -> AggregatorConfig {
    use clap::Parser;
    let state = std::env::temp_dir().join(format!(
        "{}-capacity.json",
        testkit::unique("aggregator-test")
    ));
    let mut argv = vec!["metrics-aggregator", "--listen-addr", "127.0.0.1:0"];
    if !args.contains(&"--capacity-state-path") {
        argv.extend([
            "--capacity-state-path",
            state.to_str().unwrap_or("capacity.json"),
        ]);
    }
    argv.extend_from_slice(args);
    AggregatorConfig::try_parse_from(argv).unwrap()
}

/// A running aggregator.
pub struct Running {
    pub ops: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops it and waits for it to finish cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the aggregator stops within 15 s")
            .unwrap()
            .unwrap();
    }

    /// The value of one sample line of /metrics (`name{labels}`), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.ops))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// HTTP status of /healthz.
    pub async fn health(&self) -> u16 {
        reqwest::get(format!("http://{}/healthz", self.ops))
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

pub async fn start(config: AggregatorConfig) -> Running {
    let app = Application::build(config).await.unwrap();
    let ops = app.ops_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    Running {
        ops,
        shutdown,
        task,
    }
}
