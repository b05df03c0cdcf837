//! The inference services against a real broker: every feature vector gets one vote per model,
//! predictions are logged, bad messages are skipped, bad models refused.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use clap::Parser;
use contract::{Action, FeatureVector, Message, Vote};
use ml_inference::{Application, InferenceConfig};
use models::ModelKind;
use service_runtime::kafka::{
    AtLeastOnceConsumer, JsonProducer, KafkaArgs, KafkaMetrics, ensure_topics,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::Broker;
use tokio_util::sync::CancellationToken;
use trainer::synthetic;

fn vector(service: &str, window_id: u64, rate: f64, replicas: u32) -> FeatureVector {
    let at = chrono::DateTime::from_timestamp(window_id as i64, 0).unwrap();
    FeatureVector {
        service: service.into(),
        window_id,
        window_start: at - chrono::Duration::seconds(10),
        window_end: at,
        poll_interval_sec: 10,
        produced_at: at,
        features: synthetic::features(rate, replicas),
        consumer_group: None,
    }
}

fn metrics() -> KafkaMetrics {
    KafkaMetrics::register(&prometheus::Registry::new()).unwrap()
}

/// Trains a synthetic `kind` model under `dir` and starts a voter on it, reading `topics.0` and
/// voting on `topics.1`. Returns its ops address and its task.
async fn start_voter(
    kind: ModelKind,
    dir: &std::path::Path,
    broker: &Broker,
    topics: (&str, &str),
    stop: &CancellationToken,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let model_dir = dir.join(kind.as_str());
    synthetic::train(kind, &model_dir, &synthetic::feature_names()).unwrap();
    let predictions = dir.join(format!("predictions_{kind}.csv"));
    let config = InferenceConfig::try_parse_from([
        "ml-inference",
        "--model",
        kind.as_str(),
        "--model-path",
        model_dir.to_str().unwrap(),
        "--metrics-topic",
        topics.0,
        "--votes-topic",
        topics.1,
        "--consumer-group",
        &testkit::unique(kind.as_str()),
        "--predictions-csv",
        predictions.to_str().unwrap(),
        "--listen-addr",
        "127.0.0.1:0",
        "--kafka-bootstrap-servers",
        broker.bootstrap(),
        "--kafka-property",
        "auto.offset.reset=earliest",
    ])
    .unwrap();
    let app = Application::build(config).await.unwrap();
    (app.ops_addr(), tokio::spawn(app.run(stop.clone())))
}

#[tokio::test]
async fn every_vector_gets_one_vote_per_model_and_is_logged() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (metrics_topic, votes_topic) = (testkit::unique("metrics"), testkit::unique("model-votes"));
    let mut args = KafkaArgs::local(broker.bootstrap());
    args.kafka_properties
        .push("auto.offset.reset=earliest".into());
    ensure_topics(&args, &[&metrics_topic, &votes_topic])
        .await
        .unwrap();

    let stop = CancellationToken::new();
    let (mut services, mut tasks) = (Vec::new(), Vec::new());
    for kind in ModelKind::ALL {
        let topics = (metrics_topic.as_str(), votes_topic.as_str());
        let (ops, task) = start_voter(kind, dir.path(), &broker, topics, &stop).await;
        services.push(ops);
        tasks.push(task);
    }

    let producer = JsonProducer::new(&args, "test", metrics()).unwrap();
    // A consumer group: 60 messages a second on one consumer that reads 20, 3,000 behind (50 s,
    // over its 30 s target), 8 partitions.
    let mut group = vector("workers", 1000, 60.0, 1);
    group.features.capacity_per_replica = Some(20.0);
    group.features.capacity_utilization = Some(3.0);
    group.consumer_group = Some(contract::ConsumerGroup {
        group: "workers".into(),
        topic: "work".into(),
        partitions: 8,
        lag_messages: 3_000.0,
        lag_max_partition: 400.0,
        consumption_rate: 20.0,
        lag_target_sec: 30.0,
    });
    let sent = [
        vector("orders", 1000, 95.0, 2), // far past capacity: scale up
        vector("carts", 1000, 5.0, 4),   // nearly idle on 4: scale down
        vector("orders", 1010, 30.0, 2), // comfortable
        vector("carts", 1010, 20.0, 4),
        group,
    ];
    producer
        .send_raw(&metrics_topic, "orders", b"not json at all")
        .await
        .unwrap();
    for v in &sent {
        producer.send(&metrics_topic, v).await.unwrap();
    }
    let mut future = serde_json::to_value(&sent[0]).unwrap();
    future["version"] = "9".into();
    producer
        .send_raw(&metrics_topic, "orders", future.to_string().as_bytes())
        .await
        .unwrap();

    // Read model-votes as a console consumer would.
    let votes: Arc<Mutex<Vec<Vote>>> = Arc::default();
    let done = CancellationToken::new();
    let (sink, finished) = (votes.clone(), done.clone());
    let consumer = AtLeastOnceConsumer::new(
        &args,
        "test",
        &testkit::unique("reader"),
        &votes_topic,
        metrics(),
    )
    .unwrap();
    let read = consumer.run(&done, |v: &Vote| {
        let mut votes = sink.lock().unwrap();
        votes.push(v.clone());
        if votes.len() >= 15 {
            finished.cancel();
        }
        std::future::ready(Ok(()))
    });
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("15 votes within 60 s")
        .unwrap();

    let votes = votes.lock().unwrap().clone();
    let mut by_window: BTreeMap<(String, u64), Vec<&Vote>> = BTreeMap::new();
    for v in &votes {
        by_window
            .entry((v.service.clone(), v.window_id))
            .or_default()
            .push(v);
    }
    assert_eq!(by_window.len(), 5);
    for ((service, window), votes) in &by_window {
        let mut models: Vec<&str> = votes.iter().map(|v| v.model.as_str()).collect();
        models.sort_unstable();
        assert_eq!(
            models,
            ["logistic_regression", "random_forest", "xgboost"],
            "{service} {window}"
        );
        for v in votes {
            assert!(Vote::decode(&v.encode()).is_ok());
            assert!(v.inference_us > 0.0);
        }
    }
    for v in &by_window[&("orders".to_owned(), 1000)] {
        assert_eq!(v.action, Action::ScaleUp, "{v:?}");
        assert!(v.safe_replicas > 2, "{v:?}");
    }
    for v in &by_window[&("carts".to_owned(), 1000)] {
        assert_eq!(v.action, Action::ScaleDown, "{v:?}");
        assert!(v.safe_replicas < 4, "{v:?}");
    }
    // The group is sized by its rule: at least what reads the production and the lag back
    // within half the target (60 + 3,000 / 15 = 260 a second: all 8), never past the partitions.
    for v in &by_window[&("workers".to_owned(), 1000)] {
        assert_eq!((v.action, v.safe_replicas), (Action::ScaleUp, 8), "{v:?}");
    }

    // Every prediction is logged with its window, features, probability and vote.
    for kind in ModelKind::ALL {
        let path = dir.path().join(format!("predictions_{kind}.csv"));
        let mut reader = csv::Reader::from_path(&path).unwrap();
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            formats::predictions::header()
        );
        assert_eq!(reader.records().count(), 5, "{kind}");
    }
    // The two unreadable messages were skipped and counted by each service.
    for ops in services {
        let text = reqwest::get(format!("http://{ops}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for reason in ["malformed_json", "unsupported_version"] {
            let line = format!(
                "kafka_messages_skipped_total{{reason=\"{reason}\",topic=\"{metrics_topic}\"}} 1"
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        // The online calibration of each HTTP service's forecasts is exported (its windows are
        // too few for an outcome: the offset has not moved); a consumer group's is not
        // calibrated.
        let offsets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("inference_forecast_offset{"))
            .collect();
        assert!(
            !offsets.iter().any(|l| l.contains("service=\"workers\"")),
            "{offsets:?}"
        );
        for service in ["orders", "carts"] {
            for horizon in ["up", "down"] {
                let labels = [
                    format!("service=\"{service}\""),
                    format!("horizon=\"{horizon}\""),
                ];
                assert!(
                    offsets
                        .iter()
                        .any(|l| labels.iter().all(|x| l.contains(x.as_str())) && l.ends_with(" 0")),
                    "{service} {horizon} offset missing from {offsets:?}"
                );
            }
        }
    }
    // Stop the services while the broker still runs.
    stop.cancel();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// Runs the binary, which must exit within 30 s (a refused start is immediate); returns exit
/// code and stderr.
fn run_binary(args: &[&str]) -> (i32, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ml-inference"))
        .env_clear()
        // Keep the library path cargo set up for libxgboost.
        .envs(std::env::var_os("LD_LIBRARY_PATH").map(|v| ("LD_LIBRARY_PATH", v)))
        .args(args)
        .args(["--listen-addr", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "ml-inference {args:?} started instead of refusing: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_or_mismatched_model_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing");
    let (code, stderr) = run_binary(&[
        "--model",
        "xgboost",
        "--model-path",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    let last = stderr.trim().lines().last().unwrap();
    assert!(last.starts_with("ml-inference: cannot start: "), "{stderr}");
    assert!(
        last.contains("no such file") && last.contains("metadata.json"),
        "{stderr}"
    );

    let model_dir = dir.path().join("rf");
    synthetic::train(
        ModelKind::RandomForest,
        &model_dir,
        &synthetic::feature_names(),
    )
    .unwrap();
    let metadata = model_dir.join("metadata.json");
    let text = std::fs::read_to_string(&metadata).unwrap();
    let first = format!("\"{}\"", synthetic::feature_names()[0]);
    assert!(text.contains(&first), "{text}");
    std::fs::write(&metadata, text.replacen(&first, "\"pods\"", 1)).unwrap();
    let (code, stderr) = run_binary(&[
        "--model",
        "random_forest",
        "--model-path",
        model_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("does not match the contract") && stderr.contains("pods"),
        "{stderr}"
    );

    let (code, stderr) = run_binary(&["--model", "lstm"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("MODEL"), "{stderr}");
}

/// Issue 12's poison pills: 100,000 malformed, out-of-bounds and oversized vectors. The voter
/// copies each to the dead-letter topic, counts it, stays healthy, and votes on the next good one.
#[tokio::test]
async fn a_flood_of_bad_vectors_goes_to_the_dead_letter_topic_and_voting_goes_on() {
    const FLOOD: usize = 100_000;
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (metrics_topic, votes_topic) = (testkit::unique("metrics"), testkit::unique("model-votes"));
    let dead = service_runtime::kafka::dead_letter_topic(&metrics_topic);
    let mut args = KafkaArgs::local(broker.bootstrap());
    args.kafka_properties
        .push("auto.offset.reset=earliest".into());
    ensure_topics(&args, &[&metrics_topic, &votes_topic, &dead])
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let topics = (metrics_topic.as_str(), votes_topic.as_str());
    let (ops, task) = start_voter(ModelKind::Xgboost, dir.path(), &broker, topics, &stop).await;

    // Four kinds of bad input, round robin, over a few keys (so over partitions).
    let good: serde_json::Value =
        serde_json::from_slice(&vector("orders", 1000, 30.0, 2).encode()).unwrap();
    let out_of_bounds = |i: usize| {
        let mut v = good.clone();
        match i % 3 {
            0 => v["features"]["replicas"] = 1e9.into(),
            1 => v["features"]["error_ratio"] = 5.into(),
            _ => v["features"]["request_rate"] = (-1).into(),
        }
        v.to_string().into_bytes()
    };
    let payloads: Vec<Vec<u8>> = (0..FLOOD)
        .map(|i| match i % 4 {
            0 => b"{\"version\":\"2\",\"service\":".to_vec(),
            1 | 2 => out_of_bounds(i),
            // Oversized ones are rarer: each is 64 KiB.
            _ if i % 1000 == 3 => vec![b' '; contract::MAX_MESSAGE_BYTES + 1],
            _ => b"[1,2,3]".to_vec(),
        })
        .collect();
    let producer = JsonProducer::new(&args, "test", metrics()).unwrap();
    for chunk in payloads.chunks(5_000) {
        let sends = chunk.iter().enumerate().map(|(i, p)| {
            let key = ["orders", "carts", "front-end", "user"][i % 4];
            producer.send_raw(&metrics_topic, key, p)
        });
        futures::future::try_join_all(sends).await.unwrap();
    }
    producer
        .send(&metrics_topic, &vector("orders", 2000, 30.0, 2))
        .await
        .unwrap();

    // The good vector after the flood is voted on.
    let votes: Arc<Mutex<Vec<Vote>>> = Arc::default();
    let done = CancellationToken::new();
    let (sink, finished) = (votes.clone(), done.clone());
    let consumer = AtLeastOnceConsumer::new(
        &args,
        "test",
        &testkit::unique("reader"),
        &votes_topic,
        metrics(),
    )
    .unwrap();
    let read = consumer.run(&done, |v: &Vote| {
        sink.lock().unwrap().push(v.clone());
        if v.window_id == 2000 {
            finished.cancel();
        }
        std::future::ready(Ok(()))
    });
    tokio::time::timeout(Duration::from_secs(240), read)
        .await
        .expect("the vector after the flood is voted on within 240 s")
        .unwrap();
    let votes = votes.lock().unwrap().clone();
    assert_eq!(
        votes.len(),
        1,
        "only the good vector gets a vote: {votes:?}"
    );

    // The bad vectors sit on four partitions: the last of them may be handled after the good one.
    let topic = format!("topic=\"{metrics_topic}\"");
    let text = testkit::metrics_when(
        &format!("http://{ops}/metrics"),
        "kafka_dead_letters_total{",
        &[&topic],
        FLOOD as f64,
        Duration::from_secs(120),
    )
    .await;
    let counted = |name: &str, reason: &str| testkit::metric_sum(&text, name, &[&topic, reason]);
    assert_eq!(
        counted("kafka_dead_letters_total{", ""),
        FLOOD as f64,
        "{text}"
    );
    // Half the flood is out of bounds, read as JSON and refused by the contract's bounds.
    assert_eq!(
        counted("kafka_dead_letters_total{", "reason=\"invalid\""),
        (FLOOD / 2) as f64,
        "{text}"
    );
    assert_eq!(
        counted("kafka_dead_letters_total{", "reason=\"too_large\""),
        (FLOOD / 1000) as f64,
        "{text}"
    );
    let health = reqwest::get(format!("http://{ops}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "the voter is healthy after the flood");
    assert!(!task.is_finished(), "the voter still runs");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
