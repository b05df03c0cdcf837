//! The scaler as users run it: its binary, votes on a real broker, decision blocks on stdout,
//! records on `scaling-decisions` and in `output/decisions.csv`, replicas changed through the
//! real Docker engine.

use chrono::Utc;
use contract::{Action, DecisionOutcome, DecisionRecord, Message, Vote};
use fleet::kafka::{AtLeastOnceConsumer, JsonProducer, KafkaArgs, KafkaMetrics, ensure_topics};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::Broker;
use testkit::docker::{ComposeProject, busybox_image};
use tokio_util::sync::CancellationToken;

const MODELS: [&str; 3] = ["xgboost", "random_forest", "logistic_regression"];

fn vote(
    model: &str,
    service: &str,
    window_id: u64,
    action: Action,
    current: u32,
    safe: u32,
) -> Vote {
    Vote {
        service: service.into(),
        window_id,
        model: model.into(),
        model_version: "test".into(),
        action,
        confidence: 0.8,
        violation_probability: if action == Action::ScaleUp { 0.8 } else { 0.1 },
        current_replicas: current,
        safe_replicas: safe,
        inference_us: 10.0,
        features_produced_at: Utc::now(),
        voted_at: Utc::now(),
    }
}

/// A running scaler binary whose stdout lines arrive on a channel.
struct Scaler {
    child: Child,
    lines: mpsc::Receiver<String>,
    ops: String,
}

impl Scaler {
    fn start(broker: &Broker, topics: &(String, String), csv: &Path, extra: &[&str]) -> Self {
        let port = testkit::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_authoritative-scaler"))
            .env_clear()
            .args(["--votes-topic", &topics.0, "--decisions-topic", &topics.1])
            .args(["--consumer-group", &testkit::unique("scaler")])
            .args(["--decisions-csv", csv.to_str().unwrap()])
            .args(["--listen-addr", &format!("127.0.0.1:{port}")])
            .args(["--kafka-bootstrap-servers", broker.bootstrap()])
            .args(["--kafka-property", "auto.offset.reset=earliest"])
            .args(["--decision-window-sec", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            ops: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The next `n` decision blocks, each as its lines.
    fn blocks(&self, n: usize, timeout: Duration) -> Vec<Vec<String>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut blocks = Vec::new();
        let mut current: Vec<String> = Vec::new();
        while blocks.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{} of {n} blocks in time", blocks.len()));
            current.push(line);
            // A block is 10 lines plus one per vote: it ends with its third heavy rule.
            if current.iter().filter(|l| l.starts_with("=====")).count() == 3 {
                blocks.push(std::mem::take(&mut current));
            }
        }
        blocks
    }

    /// No stdout line for `quiet`.
    fn silent_for(&self, quiet: Duration) -> bool {
        self.lines.recv_timeout(quiet).is_err()
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = reqwest_get(&format!("{}/metrics", self.ops)).await;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// SIGTERM, and the exit code.
    fn stop(mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Scaler {
    /// A failed test must not leave the scaler running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn reqwest_get(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

async fn setup(broker: &Broker) -> (KafkaArgs, (String, String), JsonProducer) {
    let mut args = KafkaArgs::local(broker.bootstrap());
    args.kafka_properties
        .push("auto.offset.reset=earliest".into());
    let topics = (
        testkit::unique("model-votes"),
        testkit::unique("scaling-decisions"),
    );
    ensure_topics(&args, &[&topics.0, &topics.1]).await.unwrap();
    let producer = JsonProducer::new(
        &args,
        "test",
        KafkaMetrics::register(&prometheus::Registry::new()).unwrap(),
    )
    .unwrap();
    (args, topics, producer)
}

#[tokio::test]
async fn votes_become_decision_blocks_records_and_csv_rows_once() {
    let broker = Broker::start().await;
    let (args, topics, producer) = setup(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("decisions.csv");
    let scaler = Scaler::start(&broker, &topics, &csv, &["--scaler-backend", "log"]);

    let orders = [
        vote(MODELS[0], "orders", 100, Action::ScaleUp, 2, 4),
        vote(MODELS[1], "orders", 100, Action::ScaleUp, 2, 3),
        vote(MODELS[2], "orders", 100, Action::NoAction, 2, 2),
    ];
    for v in &orders {
        producer.send(&topics.0, v).await.unwrap();
    }
    // Only two of three models vote for carts: decided when the window times out.
    producer
        .send(
            &topics.0,
            &vote(MODELS[0], "carts", 100, Action::NoAction, 1, 1),
        )
        .await
        .unwrap();
    producer
        .send(
            &topics.0,
            &vote(MODELS[2], "carts", 100, Action::NoAction, 1, 1),
        )
        .await
        .unwrap();

    let blocks = scaler.blocks(2, Duration::from_secs(60));
    let orders_block = blocks
        .iter()
        .find(|b| b.contains(&"Service: orders".to_owned()))
        .unwrap();
    assert_eq!(orders_block.len(), 13);
    assert_eq!(orders_block[0], "=".repeat(80));
    assert!(
        orders_block[1].starts_with("SCALING DECISION #") && orders_block[1].ends_with(" UTC"),
        "{orders_block:?}"
    );
    assert_eq!(orders_block[4], "-".repeat(60));
    assert_eq!(orders_block[5], "xgboost -> SCALE UP (confidence: 80.00%)");
    assert_eq!(orders_block[9], "DECISION: SCALE UP");
    assert_eq!(
        orders_block[10],
        "Vote Count: 2 SCALE UP, 1 NO ACTION (3 total)"
    );
    assert_eq!(orders_block[11], "Average Confidence: 80.00%");
    let carts_block = blocks
        .iter()
        .find(|b| b.contains(&"Service: carts".to_owned()))
        .unwrap();
    assert!(
        carts_block.contains(&"Vote Count: 2 NO ACTION (2 total)".to_owned()),
        "{carts_block:?}"
    );

    // A replay of the same votes decides nothing again.
    for v in &orders {
        producer.send(&topics.0, v).await.unwrap();
    }
    assert!(
        scaler.silent_for(Duration::from_secs(4)),
        "no second decision for a replayed window"
    );
    assert_eq!(
        scaler.metric(r#"scaler_votes_total{outcome="late"}"#).await,
        3.0
    );
    assert_eq!(scaler.stop(), 0, "SIGTERM stops it cleanly");

    // The records: on the topic and in the CSV, with the proportional target (4: the largest
    // safe count among SCALE_UP votes).
    let records: Arc<Mutex<Vec<DecisionRecord>>> = Arc::default();
    let done = CancellationToken::new();
    let consumer = AtLeastOnceConsumer::new(
        &args,
        "test",
        &testkit::unique("reader"),
        &topics.1,
        KafkaMetrics::register(&prometheus::Registry::new()).unwrap(),
    )
    .unwrap();
    let (sink, finished) = (records.clone(), done.clone());
    let read = consumer.run(&done, move |r: &DecisionRecord| {
        let mut records = sink.lock().unwrap();
        records.push(r.clone());
        if records.len() == 2 {
            finished.cancel();
        }
        std::future::ready(Ok(()))
    });
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap()
        .unwrap();
    let records = records.lock().unwrap().clone();
    let orders_record = records.iter().find(|r| r.service == "orders").unwrap();
    assert_eq!(
        (
            orders_record.current_replicas,
            orders_record.target_replicas
        ),
        (2, 4)
    );
    assert_eq!(orders_record.outcome, DecisionOutcome::Applied);
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 3, "header and two decisions:\n{rows}");

    // A restart goes on numbering and still refuses the decided window.
    let scaler = Scaler::start(&broker, &topics, &csv, &["--scaler-backend", "log"]);
    for v in &orders {
        producer.send(&topics.0, v).await.unwrap();
    }
    producer
        .send(
            &topics.0,
            &vote(MODELS[0], "orders", 110, Action::NoAction, 4, 4),
        )
        .await
        .unwrap();
    let blocks = scaler.blocks(1, Duration::from_secs(60));
    assert!(
        blocks[0][1].starts_with("SCALING DECISION #3 @"),
        "{:?}",
        blocks[0]
    );
    assert!(
        blocks[0].contains(&"Vote Count: 1 NO ACTION (1 total)".to_owned()),
        "window 110, not 100"
    );
    assert_eq!(scaler.stop(), 0);
}

#[tokio::test]
async fn votes_scale_a_compose_service_through_the_docker_engine() {
    let image = busybox_image();
    let project = ComposeProject::up(
        &testkit::unique("mlscaler").replace('-', ""),
        &format!(
            "version: '2.4'\nservices:\n  web:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    \
             labels:\n      autoscaler.enable: \"true\"\n  \
             db:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n"
        ),
    );
    let broker = Broker::start().await;
    let (_, topics, producer) = setup(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("decisions.csv");
    let scaler = Scaler::start(
        &broker,
        &topics,
        &csv,
        &[
            "--scaler-backend",
            "compose",
            "--compose-project",
            &project.name,
            "--max-replicas",
            "3",
            "--stop-timeout-sec",
            "1",
            "--scale-down-cooldown-sec",
            "0",
            "--stabilization-window-sec",
            "0",
            "--max-step-down",
            "1",
        ],
    );

    // All three want 5 replicas: the bound says 3.
    for m in MODELS {
        producer
            .send(&topics.0, &vote(m, "web", 200, Action::ScaleUp, 1, 5))
            .await
            .unwrap();
    }
    let block = &scaler.blocks(1, Duration::from_secs(60))[0];
    assert!(
        block.contains(&"DECISION: SCALE UP".to_owned()),
        "{block:?}"
    );
    let running = |p: &ComposeProject| p.containers("web").iter().filter(|c| c.2).count();
    assert_eq!(
        running(&project),
        3,
        "scaled up to the bound through the Engine API"
    );
    assert_eq!(project.ps("web").len(), 3, "docker-compose ps lists them");

    // Forged votes for a service that is not opted in, and for one that does not exist: held,
    // counted, nothing touched.
    for service in ["db", "kafka"] {
        for m in MODELS {
            producer
                .send(&topics.0, &vote(m, service, 205, Action::ScaleUp, 1, 5))
                .await
                .unwrap();
        }
    }
    for block in scaler.blocks(2, Duration::from_secs(60)) {
        assert!(
            block.contains(&"DECISION: SCALE UP".to_owned()),
            "{block:?}"
        );
    }
    assert_eq!(project.containers("db").len(), 1, "db is untouched");
    for reason in ["not_opted_in", "unknown_service"] {
        let series = format!("scaler_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(scaler.metric(&series).await, 1.0, "{series}");
    }

    for m in MODELS {
        producer
            .send(&topics.0, &vote(m, "web", 210, Action::ScaleDown, 3, 1))
            .await
            .unwrap();
    }
    let block = &scaler.blocks(1, Duration::from_secs(60))[0];
    assert!(
        block.contains(&"DECISION: SCALE DOWN".to_owned()),
        "{block:?}"
    );
    assert_eq!(
        running(&project),
        2,
        "one replica fewer per decision (MAX_STEP_DOWN)"
    );
    assert_eq!(scaler.stop(), 0);
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert!(
        rows.contains(",1,3,applied,") && rows.contains(",3,2,applied,"),
        "{rows}"
    );
    let refused: Vec<&str> = rows
        .lines()
        .filter(|r| r.contains(",held,") && r.contains("refused: "))
        .collect();
    assert_eq!(refused.len(), 2, "{rows}");
    assert!(project.down());
}

/// Issue 12's poison pills on `model-votes`: 100,000 malformed and out-of-bounds votes (a replica
/// count of a billion, a window in the year 3000, an endless model name, oversized messages) go
/// to the dead-letter topic, counted; the scaler stays up and decides the next good ballot.
#[tokio::test]
async fn a_flood_of_bad_votes_goes_to_the_dead_letter_topic_and_deciding_goes_on() {
    const FLOOD: usize = 100_000;
    let broker = Broker::start().await;
    let (_, topics, producer) = setup(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("decisions.csv");
    let mut scaler = Scaler::start(&broker, &topics, &csv, &["--scaler-backend", "log"]);

    let good: serde_json::Value =
        serde_json::from_slice(&vote(MODELS[0], "orders", 100, Action::ScaleUp, 2, 4).encode())
            .unwrap();
    let bad = |i: usize| -> Vec<u8> {
        let mut v = good.clone();
        match i % 6 {
            0 => return b"{\"version\":\"1\",\"service\":\"orders\",".to_vec(),
            1 => v["safe_replicas"] = 1_000_000_000u64.into(),
            2 => v["window_id"] = 32_503_680_000u64.into(),
            3 => v["model"] = "m".repeat(10_000).into(),
            4 if i % 1000 == 4 => return vec![b' '; contract::MAX_MESSAGE_BYTES + 1],
            4 => v["confidence"] = 7.into(),
            _ => v["current_replicas"] = 20_000.into(),
        }
        v.to_string().into_bytes()
    };
    let payloads: Vec<Vec<u8>> = (0..FLOOD).map(bad).collect();
    for chunk in payloads.chunks(5_000) {
        let sends = chunk.iter().enumerate().map(|(i, p)| {
            let key = ["orders", "carts", "front-end", "user"][i % 4];
            producer.send_raw(&topics.0, key, p)
        });
        futures::future::try_join_all(sends).await.unwrap();
    }
    for m in MODELS {
        producer
            .send(&topics.0, &vote(m, "orders", 100, Action::ScaleUp, 2, 4))
            .await
            .unwrap();
    }
    let blocks = scaler.blocks(1, Duration::from_secs(240));
    assert!(
        blocks[0].contains(&"Vote Count: 3 SCALE UP (3 total)".to_owned()),
        "{:?}",
        blocks[0]
    );
    let text = reqwest_get(&format!("{}/metrics", scaler.ops)).await;
    let dead = |reason: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("kafka_dead_letters_total{") && l.contains(reason))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(dead(""), FLOOD as f64, "{text}");
    // A sixth is malformed, 34 are oversized (i = 4 modulo 3,000), the rest out of bounds.
    assert_eq!(dead("reason=\"malformed_json\""), 16_667.0, "{text}");
    assert_eq!(dead("reason=\"too_large\""), 34.0, "{text}");
    assert_eq!(dead("reason=\"invalid\""), 83_299.0, "{text}");
    assert!(
        scaler.child.try_wait().unwrap().is_none(),
        "the scaler still runs"
    );
    assert_eq!(scaler.stop(), 0);
}
