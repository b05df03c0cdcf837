//! The aggregator against the real parts: Prometheus (Debian's), the tansu broker, demo replicas
//! whose latency depends on load, and load from load-testing's engine.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{config, drive, replicas, start};
use contract::{FeatureVector, METRICS_TOPIC};
use demo_service::DemoConfig;
use load_testing::pattern::Pattern;
use service_runtime::kafka::{AtLeastOnceConsumer, KafkaArgs, KafkaMetrics};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::{Broker, Prometheus, wait_for};
use tokio_util::sync::CancellationToken;

const SCRAPE: Duration = Duration::from_millis(500);

#[tokio::test]
async fn production_publishes_one_vector_per_service_per_poll() {
    let stop = CancellationToken::new();
    let orders = replicas("orders", 2, 4, 20.0, &stop).await;
    let carts = replicas("carts", 1, 4, 20.0, &stop).await;
    let prometheus = Prometheus::start(
        SCRAPE,
        &[("orders", orders.clone()), ("carts", carts.clone())],
    )
    .await;
    drive(
        &orders,
        Pattern::Constant { rps: 40.0 },
        Duration::from_secs(90),
        &stop,
    );
    drive(
        &carts,
        Pattern::Constant { rps: 10.0 },
        Duration::from_secs(90),
        &stop,
    );

    let broker = Broker::start().await;
    let topic = testkit::unique(METRICS_TOPIC);
    let state = tempfile::tempdir().unwrap();
    let capacity_path = state.path().join("capacity.json");
    // "A day ago" is 24 s here, so that Prometheus has it within the test.
    let aggregator = start(config(&[
        "--mode",
        "production",
        "--poll-interval-sec",
        "2",
        "--prometheus-url",
        prometheus.url(),
        "--kafka-bootstrap-servers",
        broker.bootstrap(),
        "--metrics-topic",
        &topic,
        "--daily-period-sec",
        "24",
        "--weekly-period-sec",
        "600",
        "--capacity-state-path",
        capacity_path.to_str().unwrap(),
    ]))
    .await;

    // Read the topic as a console consumer would, from the beginning.
    let mut args = KafkaArgs::local(broker.bootstrap());
    args.kafka_properties
        .push("auto.offset.reset=earliest".into());
    let registry = prometheus::Registry::new();
    let consumer = AtLeastOnceConsumer::new(
        &args,
        "test",
        &testkit::unique("g"),
        &topic,
        KafkaMetrics::register(&registry).unwrap(),
    )
    .unwrap();
    let seen: Arc<Mutex<Vec<FeatureVector>>> = Arc::default();
    let done = CancellationToken::new();
    let (sink, finished) = (seen.clone(), done.clone());
    let reader = consumer.run(&done, |v: &FeatureVector| {
        let mut seen = sink.lock().unwrap();
        seen.push(v.clone());
        let full_windows = windows(&seen).values().filter(|s| s.len() == 2).count();
        // orders' own (carts may have it a vector earlier in the same window), and a few of them:
        // "a day ago" of the first ones is the start of the scrapes, when rates still ramp.
        let a_day_ago = seen
            .iter()
            .filter(|v| v.service == "orders" && v.features.day_ago_ratio.is_some())
            .count();
        if full_windows >= 4 && a_day_ago >= 5 {
            finished.cancel();
        }
        std::future::ready(Ok(()))
    });
    tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("four full windows and five with the load a day ago within 60 s")
        .unwrap();
    let capacity = aggregator
        .metric("aggregator_capacity_rps{service=\"orders\"}")
        .await;
    aggregator.stop().await;
    // The capacity estimate is exported and kept for the next start.
    assert!(capacity > 0.0, "capacity of orders: {capacity}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&capacity_path).unwrap()).unwrap();
    assert!(
        saved.get("orders").is_some() && saved.get("carts").is_some(),
        "{saved}"
    );

    // Restarted: the history is read back from Prometheus and the estimates from the file, so
    // the first vector has both.
    let again = testkit::unique(METRICS_TOPIC);
    let restarted = start(config(&[
        "--mode",
        "production",
        "--poll-interval-sec",
        "2",
        "--prometheus-url",
        prometheus.url(),
        "--kafka-bootstrap-servers",
        broker.bootstrap(),
        "--metrics-topic",
        &again,
        "--capacity-state-path",
        capacity_path.to_str().unwrap(),
    ]))
    .await;
    let consumer = AtLeastOnceConsumer::new(
        &args,
        "test",
        &testkit::unique("g"),
        &again,
        KafkaMetrics::register(&prometheus::Registry::new()).unwrap(),
    )
    .unwrap();
    let first: Arc<Mutex<Option<FeatureVector>>> = Arc::default();
    let done = CancellationToken::new();
    let (sink, finished) = (first.clone(), done.clone());
    let reader = consumer.run(&done, |v: &FeatureVector| {
        if v.service == "orders" {
            sink.lock().unwrap().get_or_insert_with(|| v.clone());
            finished.cancel();
        }
        std::future::ready(Ok(()))
    });
    tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("a vector of the restarted aggregator within 20 s")
        .unwrap();
    restarted.stop().await;
    stop.cancel();
    let first = first.lock().unwrap().clone().unwrap();
    assert!(
        first.features.rate_cv_long.is_some(),
        "history read back at start: {first:?}"
    );
    assert!(
        first.features.capacity_per_replica >= Some(capacity),
        "capacity restored: {first:?}"
    );

    let seen = seen.lock().unwrap().clone();
    // One vector per service per window, never two.
    let mut keys: Vec<(String, u64)> = seen
        .iter()
        .map(|v| (v.service.clone(), v.window_id))
        .collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "a (service, window) was published twice");
    for v in &seen {
        assert_eq!(v.window_id % 2, 0, "windows are aligned to the interval");
        assert_eq!(v.poll_interval_sec, 2);
    }
    let last_orders = seen.iter().rfind(|v| v.service == "orders").unwrap();
    let last_carts = seen.iter().rfind(|v| v.service == "carts").unwrap();
    let f = &last_orders.features;
    assert_eq!(f.replicas, 2.0);
    assert_eq!(last_carts.features.replicas, 1.0);
    assert!(
        (20.0..60.0).contains(&f.request_rate),
        "orders at ~40 rps: {f:?}"
    );
    assert!((f.request_rate_per_replica * 2.0 - f.request_rate).abs() < 1e-9);
    assert!(f.latency_p95.unwrap() > 0.0 && f.latency_p50.unwrap() <= f.latency_p95.unwrap());
    assert!(
        f.cpu_per_replica.is_some() && f.memory_per_replica.is_some(),
        "process metrics: {f:?}"
    );
    assert!(
        f.request_rate_trend.is_some(),
        "trends from the second window on: {f:?}"
    );
    assert!(
        f.rate_max_recent.is_some() && f.rate_cv_long.is_some(),
        "history from the third window on: {f:?}"
    );
    let a_day_ago = seen
        .iter()
        .rfind(|v| v.service == "orders" && v.features.day_ago_ratio.is_some())
        .unwrap();
    let (ratio, rise) = (
        a_day_ago.features.day_ago_ratio.unwrap(),
        a_day_ago.features.day_ago_rise.unwrap(),
    );
    assert!(
        (0.5..2.0).contains(&ratio) && (0.5..2.0).contains(&rise),
        "steady load, as steady a day ago: {ratio} {rise}"
    );
    assert_eq!(a_day_ago.features.week_ago_ratio, None, "no data that old");
    assert_eq!(f.error_ratio, 0.0);
    assert!(last_carts.features.request_rate < f.request_rate);
}

fn windows(seen: &[FeatureVector]) -> BTreeMap<u64, Vec<String>> {
    let mut w: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for v in seen {
        w.entry(v.window_id).or_default().push(v.service.clone());
    }
    w
}

/// Rows of the development CSV.
fn rows(path: &std::path::Path) -> (Vec<String>, Vec<FeatureVector>) {
    let text = std::fs::read_to_string(path).unwrap();
    let headers: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("timestamp,"))
        .map(str::to_owned)
        .collect();
    let mut reader = csv::Reader::from_path(path).unwrap();
    let vectors = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let cells: Vec<&str> = r.iter().collect();
            formats::dev_csv::parse_row(&cells).unwrap()
        })
        .collect();
    (headers, vectors)
}

#[tokio::test]
async fn development_rows_show_p95_rising_with_load_and_append_across_restarts() {
    let stop = CancellationToken::new();
    // One replica, one slot of 20 ms: 50 rps capacity. Load steps from 16% to 90% of it.
    let demo = replicas("demo", 1, 1, 20.0, &stop).await;
    let prometheus = Prometheus::start(SCRAPE, &[("demo", demo.clone())]).await;
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("output/sockshop_metrics.csv");
    let csv = csv_path.to_str().unwrap();
    let args = [
        "--mode",
        "development",
        "--poll-interval-sec",
        "2",
        "--rate-window-sec",
        "2",
        "--prometheus-url",
        prometheus.url(),
        "--dev-csv-path",
        csv,
    ];

    let step = Pattern::Step {
        levels: vec![8.0, 45.0],
        every: Duration::from_secs(12),
    };
    let load = drive(&demo, step, Duration::from_secs(26), &stop);
    let aggregator = start(config(&args)).await;
    load.await.unwrap();
    aggregator.stop().await;

    let (headers, first_run) = rows(&csv_path);
    assert_eq!(headers.len(), 1);
    assert!(first_run.len() >= 8, "{} rows", first_run.len());
    // Compare windows by the load measured in them, whatever the window edges.
    let p95_at = |low: f64, high: f64| -> Vec<f64> {
        first_run
            .iter()
            .filter(|v| (low..high).contains(&v.features.request_rate))
            .filter_map(|v| v.features.latency_p95)
            .collect()
    };
    let (light, heavy) = (p95_at(4.0, 14.0), p95_at(38.0, 60.0));
    let median = |mut v: Vec<f64>| {
        assert!(!v.is_empty(), "no window at that load: {first_run:?}");
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (light, heavy) = (median(light), median(heavy));
    assert!(
        heavy > 2.0 * light,
        "p95 {heavy} at 45 rps vs {light} at 8 rps"
    );

    // A restart appends below the same header.
    drive(
        &demo,
        Pattern::Constant { rps: 10.0 },
        Duration::from_secs(8),
        &stop,
    );
    let aggregator = start(config(&args)).await;
    let before = first_run.len();
    wait_for(Duration::from_secs(20), "rows from the second run", || {
        let n = rows(&csv_path).1.len();
        async move { (n > before).then_some(()) }
    })
    .await;
    aggregator.stop().await;
    let (headers, all) = rows(&csv_path);
    assert_eq!(headers.len(), 1, "the header is written once");
    assert_eq!(&all[..first_run.len()], &first_run[..]);
    stop.cancel();
}

/// The value of an instant query's single answer (0 without one).
async fn scalar(prometheus: &Prometheus, promql: &str) -> f64 {
    let result = prometheus.query(promql).await;
    result
        .first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn prometheus_scrapes_recorded_as_requests_are_not_traffic() {
    let stop = CancellationToken::new();
    // A replica that records each scrape of its /metrics as route="metrics", as Sock Shop's
    // catalogue, payment and user do.
    let mut demo = DemoConfig::local("catalogue", 4, 20.0);
    demo.record_scrapes = true;
    let app = demo_service::Application::build(&demo).await.unwrap();
    let replica = vec![app.local_addr().to_string()];
    tokio::spawn(app.run(stop.clone()));
    // Ten scrapes a second against five requests a second of load: counted as traffic, the
    // scrapes would triple the rate and pull the median latency into the lowest bucket.
    let prometheus = Prometheus::start(
        Duration::from_millis(100),
        &[("catalogue", replica.clone())],
    )
    .await;
    let load = drive(
        &replica,
        Pattern::Constant { rps: 5.0 },
        Duration::from_secs(30),
        &stop,
    );
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("metrics.csv");
    let aggregator = start(config(&[
        "--mode",
        "development",
        "--poll-interval-sec",
        "2",
        "--rate-window-sec",
        "6",
        "--prometheus-url",
        prometheus.url(),
        "--dev-csv-path",
        csv_path.to_str().unwrap(),
    ]))
    .await;
    // The first three windows may reach back to before the load began.
    let windows = wait_for(Duration::from_secs(30), "seven windows", || {
        let (_, vectors) = rows(&csv_path);
        async move { (vectors.len() >= 7).then_some(vectors) }
    })
    .await;
    let all_routes = scalar(
        &prometheus,
        r#"sum(rate(request_duration_seconds_count{job="catalogue"}[6s]))"#,
    )
    .await;
    let scrapes = scalar(
        &prometheus,
        r#"sum(rate(request_duration_seconds_count{job="catalogue", route="metrics"}[6s]))"#,
    )
    .await;
    // No cAdvisor here: CPU and memory come from the process metrics, counted.
    let fallbacks = [
        aggregator
            .metric(r#"aggregator_resource_fallbacks_total{resource="cpu"}"#)
            .await,
        aggregator
            .metric(r#"aggregator_resource_fallbacks_total{resource="memory"}"#)
            .await,
    ];
    aggregator.stop().await;
    stop.cancel();
    let _ = load.await;

    assert!(
        fallbacks.iter().all(|n| *n >= 7.0),
        "a fallback per window and resource: {fallbacks:?}"
    );
    eprintln!("Prometheus: {all_routes:.2}/s recorded, {scrapes:.2}/s of them scrapes");
    assert!(
        scrapes > 5.0 && all_routes > scrapes,
        "the scrapes are in Prometheus: {scrapes}/s of {all_routes}/s"
    );
    for v in &windows[3..] {
        let f = &v.features;
        eprintln!(
            "window {}: request_rate {:.2}/s, p50 {:?}",
            v.window_id, f.request_rate, f.latency_p50
        );
        // Nearer the load alone (5/s) than the load with the scrapes (15/s): a load generator
        // catching up on a busy machine read 8.1/s once.
        assert!(
            (2.5..10.0).contains(&f.request_rate),
            "the load alone (5/s), not the scrapes ({scrapes}/s): {f:?}"
        );
        assert!(
            f.latency_p50.is_some_and(|p50| p50 > 0.006),
            "the median of 20 ms requests, not of sub-millisecond scrapes: {f:?}"
        );
    }
}

#[tokio::test]
async fn prometheus_outage_is_survived_without_made_up_values() {
    let stop = CancellationToken::new();
    let demo = replicas("demo", 1, 4, 10.0, &stop).await;
    let mut prometheus = Prometheus::start(SCRAPE, &[("demo", demo.clone())]).await;
    drive(
        &demo,
        Pattern::Constant { rps: 20.0 },
        Duration::from_secs(90),
        &stop,
    );
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("metrics.csv");
    let aggregator = start(config(&[
        "--mode",
        "development",
        "--poll-interval-sec",
        "2",
        "--prometheus-url",
        prometheus.url(),
        "--dev-csv-path",
        csv_path.to_str().unwrap(),
    ]))
    .await;
    let count = || rows(&csv_path).1.len();
    wait_for(Duration::from_secs(20), "rows before the outage", || {
        let n = count();
        async move { (n >= 2).then_some(()) }
    })
    .await;

    prometheus.stop().await;
    let during = count();
    wait_for(Duration::from_secs(20), "the outage to be seen", || async {
        (aggregator.health().await == 503).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !aggregator.task.is_finished(),
        "the aggregator keeps running"
    );
    assert!(
        aggregator
            .metric(r#"aggregator_prometheus_errors_total{kind="unreachable"}"#)
            .await
            >= 1.0
    );
    assert!(
        aggregator
            .metric(r#"aggregator_windows_skipped_total{reason="prometheus_unavailable"}"#)
            .await
            >= 2.0
    );
    assert!(
        count() <= during + 1,
        "nothing is published while Prometheus is down"
    );

    prometheus.restart().await;
    wait_for(Duration::from_secs(30), "rows after the outage", || {
        let n = count();
        async move { (n >= during + 2).then_some(()) }
    })
    .await;
    assert_eq!(aggregator.health().await, 200);
    // The windows of the outage are missing, not invented: a gap in the window ids.
    let ids: Vec<u64> = rows(&csv_path).1.iter().map(|v| v.window_id).collect();
    assert!(
        ids.windows(2).any(|w| w[1] - w[0] >= 6),
        "a gap of at least two windows: {ids:?}"
    );
    aggregator.stop().await;
    stop.cancel();
}

#[tokio::test]
async fn malformed_prometheus_answers_are_counted_not_fatal() {
    // Something that is not Prometheus answers on the URL: a proxy's HTML error page.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router =
        axum::Router::new().fallback(async || axum::response::Html("<html>502 Bad Gateway</html>"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("metrics.csv");
    let aggregator = start(config(&[
        "--mode",
        "development",
        "--poll-interval-sec",
        "1",
        "--prometheus-url",
        &url,
        "--dev-csv-path",
        csv_path.to_str().unwrap(),
    ]))
    .await;
    wait_for(
        Duration::from_secs(15),
        "malformed answers to be counted",
        || async {
            (aggregator
                .metric(r#"aggregator_prometheus_errors_total{kind="malformed"}"#)
                .await
                >= 2.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(aggregator.health().await, 503);
    let text = reqwest::get(format!("http://{}/metrics", aggregator.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for resource in ["cpu", "memory"] {
        let zero = format!(r#"aggregator_resource_fallbacks_total{{resource="{resource}"}} 0"#);
        assert!(text.contains(&zero), "counted from 0: {text}");
    }
    assert!(!aggregator.task.is_finished());
    assert_eq!(rows(&csv_path).1.len(), 0, "nothing made up");
    aggregator.stop().await;
}

/// Runs the binary with a clean environment plus `env`; returns its exit code and stderr.
fn run_binary(env: &[(&str, &str)]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_metrics-aggregator"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn invalid_configuration_exits_with_one_line_naming_the_setting() {
    let cases: [(&[(&str, &str)], &str); 10] = [
        (
            &[("CONSUMER_GROUPS", "a=g1@orders,,a=g2@payments")],
            "CONSUMER_GROUPS",
        ),
        (&[("MODE", "staging")], "MODE"),
        (&[("CONSUMER_GROUPS", "shipping")], "CONSUMER_GROUPS"),
        (
            &[
                ("CONSUMER_GROUPS", "a=g1@orders"),
                ("WATCH_CONSUMER_GROUPS", "a=g2@payments"),
            ],
            "CONSUMER_GROUPS",
        ),
        (
            &[("CONSUMER_LAG_TARGET_SEC", "0")],
            "CONSUMER_LAG_TARGET_SEC",
        ),
        (
            &[("CONSUMER_CAPACITY_PRIOR", "NaN")],
            "CONSUMER_CAPACITY_PRIOR",
        ),
        (&[("POLL_INTERVAL_SEC", "0")], "POLL_INTERVAL_SEC"),
        (&[("POLL_INTERVAL_SEC", "-5")], "POLL_INTERVAL_SEC"),
        (&[("PROMETHEUS_URL", "prometheus:9090")], "PROMETHEUS_URL"),
        (
            &[("KAFKA_BOOTSTRAP_SERVERS", "kafka")],
            "KAFKA_BOOTSTRAP_SERVERS",
        ),
    ];
    for (env, setting) in cases {
        let (code, stderr) = run_binary(env);
        assert_eq!(code, 2, "{env:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{env:?}: one line, got {stderr}"
        );
        assert!(stderr.contains(setting), "{env:?}: {stderr}");
    }
}

#[test]
fn an_existing_csv_with_other_columns_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    std::fs::write(&path, "timestamp,service,cpu\n").unwrap();
    let (code, stderr) = run_binary(&[
        ("MODE", "development"),
        ("DEV_CSV_PATH", path.to_str().unwrap()),
        ("LISTEN_ADDR", "127.0.0.1:0"),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("other columns"), "{stderr}");
}
