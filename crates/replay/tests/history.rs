//! `replay history` against a real Prometheus scraping a demo service under known load: the
//! service's own traffic becomes a trace, and the trace is replayed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use demo_service::DemoConfig;
use load_testing::engine::{Arrivals, RunSpec};
use load_testing::pattern::Pattern;
use load_testing::scenario::Scenario;
use load_testing::stats::Stats;
use load_testing::targets::Targets;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use testkit::Prometheus;
use tokio_util::sync::CancellationToken;

/// Runs the binary on the blocking pool (the test's runtime keeps serving the demo meanwhile).
async fn replay(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || run(&args))
        .await
        .unwrap()
}

fn run(args: &[String]) -> (i32, String, String) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(args)
        .current_dir(&repo)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_services_own_traffic_becomes_a_trace_and_is_replayed() {
    let stop = CancellationToken::new();
    let app = demo_service::Application::build(&DemoConfig::local("orders", 4, 20.0))
        .await
        .unwrap();
    let addr = app.local_addr().to_string();
    tokio::spawn(app.run(stop.clone()));
    let prometheus = Prometheus::start(
        Duration::from_millis(500),
        &[("orders", vec![addr.clone()])],
    )
    .await;
    // 30 requests per second for 45 s.
    let spec = RunSpec {
        pattern: Pattern::Constant { rps: 30.0 },
        duration: Duration::from_secs(45),
        arrivals: Arrivals::Poisson,
        max_in_flight: 1_000,
        timeout: Duration::from_secs(5),
        users: 1,
    };
    let targets = Arc::new(
        Targets::new(&[format!("http://{addr}/catalogue")], &[])
            .await
            .unwrap(),
    );
    load_testing::engine::run(
        &spec,
        &Scenario::Url {
            path: "/catalogue".into(),
        },
        targets,
        Arc::new(Stats::default()),
        &stop,
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders.csv");
    let url = prometheus.url().to_owned();
    let args = [
        "history",
        "--prometheus-url",
        url.as_str(),
        "--service",
        "orders",
        "--since",
        "40s",
        "--step",
        "10s",
        "--out",
        out.to_str().unwrap(),
        "--policy",
        "hpa:70,holt-winters:70",
        "--warmup-minutes",
        "0",
    ];
    let (code, stdout, stderr) = replay(&args).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("4 rows of 10 s"), "{stdout}");
    assert!(
        stdout.contains("| HPA 70% |") && stdout.contains("| Holt-Winters 70% |"),
        "{stdout}"
    );
    let rows: Vec<(u64, f64)> = csv::Reader::from_path(&out)
        .unwrap()
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[1].parse().unwrap())
        })
        .collect();
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        [0, 10, 20, 30]
    );
    // 30 requests per second: about 300 per 10-second row while the load ran (the first row
    // may reach back to before Prometheus had two scrapes of it).
    let steady = rows[1..]
        .iter()
        .filter(|r| (200.0..400.0).contains(&r.1))
        .count();
    assert!(steady >= 2, "{rows:?}");

    // A job Prometheus does not know: one line saying so, exit non-zero.
    let none = dir.path().join("none.csv");
    let args = [
        "history",
        "--prometheus-url",
        url.as_str(),
        "--service",
        "payments",
        "--since",
        "40s",
        "--step",
        "10s",
        "--out",
        none.to_str().unwrap(),
    ];
    let (code, _, stderr) = replay(&args).await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("no request rate of job \"payments\""),
        "{stderr}"
    );
    stop.cancel();
}
