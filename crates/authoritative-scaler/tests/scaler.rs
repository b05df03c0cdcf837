//! The scaler as users run it: its binary, votes on a real broker, decision blocks on stdout,
//! records on `scaling-decisions` and in `output/decisions.csv`, replicas changed through the
//! real Docker engine.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::Utc;
use contract::{Action, Anomaly, AnomalyKind, DecisionOutcome, DecisionRecord, Message, Vote};
use service_runtime::kafka::{
    AtLeastOnceConsumer, JsonProducer, KafkaArgs, KafkaMetrics, ensure_topics,
};
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

    /// The next `n` decision blocks, each as its lines and, last, the line saying what was done.
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
            // A block is 10 lines plus one per vote, ending with its third heavy rule; the
            // outcome line follows it.
            if current.iter().filter(|l| l.starts_with("=====")).count() == 3
                && !current[current.len() - 1].starts_with("=====")
            {
                blocks.push(std::mem::take(&mut current));
            }
        }
        blocks
    }

    /// The next stdout line that starts with `prefix`, skipping the others.
    fn line_starting(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line starting with {prefix:?} within {timeout:?}"),
            }
        }
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

/// A compose project of busybox containers that sleep: `web`, opted in, with `labels` besides
/// `autoscaler.enable`, and `others` (not opted in).
fn web_project(prefix: &str, labels: &[(&str, &str)], others: &[&str]) -> ComposeProject {
    let image = busybox_image();
    let service = |name: &str, labels: &str| {
        format!("  {name}:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n{labels}")
    };
    let mut web_labels = "    labels:\n      autoscaler.enable: \"true\"\n".to_owned();
    for (key, value) in labels {
        web_labels.push_str(&format!("      {key}: \"{value}\"\n"));
    }
    let mut yaml = format!("version: '2.4'\nservices:\n{}", service("web", &web_labels));
    for name in others {
        yaml.push_str(&service(name, ""));
    }
    ComposeProject::up(&testkit::unique(prefix).replace('-', ""), &yaml)
}

/// Running containers of `web`.
fn running(project: &ComposeProject) -> usize {
    project.containers("web").iter().filter(|c| c.2).count()
}

/// The scaler's arguments for the compose backend on `project`, then `extra`.
fn on_compose<'a>(project: &'a ComposeProject, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--scaler-backend",
        "compose",
        "--compose-project",
        project.name.as_str(),
    ];
    args.extend_from_slice(extra);
    args
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
    assert_eq!(orders_block.len(), 14);
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
    assert_eq!(orders_block[12], "=".repeat(80));
    assert!(
        orders_block[13].starts_with("APPLIED: orders from 2 to 4 replicas: "),
        "the line after the block says what was done: {orders_block:?}"
    );
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
    let project = web_project("mlscaler", &[], &["db"]);
    let broker = Broker::start().await;
    let (_, topics, producer) = setup(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("decisions.csv");
    let scaler = Scaler::start(
        &broker,
        &topics,
        &csv,
        &on_compose(
            &project,
            &[
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
        ),
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
    assert!(
        block[block.len() - 1].starts_with("APPLIED: web from 1 to 3 replicas"),
        "{block:?}"
    );
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
        let done = &block[block.len() - 1];
        assert!(
            done.starts_with("HELD: ") && done.contains("refused: "),
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
    assert!(
        block[block.len() - 1].starts_with("APPLIED: web from 3 to 2 replicas"),
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

/// Issue 12's controller loop: with no vote at all, the scaler brings a service back within its
/// label's bounds on its own schedule, and once the service has had no votes for
/// NO_VOTES_AFTER_SEC it goes to FALLBACK_REPLICAS and says so (a line, a metric); votes coming
/// again clear the flag.
#[tokio::test]
async fn the_controller_enforces_bounds_and_falls_back_when_votes_stop() {
    let project = web_project(
        "mlctl",
        &[
            ("autoscaler.min_replicas", "2"),
            ("autoscaler.max_replicas", "4"),
        ],
        &[],
    );
    let broker = Broker::start().await;
    let (_, topics, producer) = setup(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("decisions.csv");
    let scaler = Scaler::start(
        &broker,
        &topics,
        &csv,
        &on_compose(
            &project,
            &[
                "--reconcile-interval-sec",
                "1",
                "--no-votes-after-sec",
                "4",
                "--fallback-replicas",
                "3",
            ],
        ),
    );

    let bounds = scaler.line_starting("APPLIED: web", Duration::from_secs(60));
    assert!(
        bounds.starts_with(
            "APPLIED: web from 1 to 2 replicas: controller: 1 replicas is outside the bounds [2, 4]"
        ),
        "{bounds}"
    );
    assert_eq!(running(&project), 2, "the label's minimum, with no vote");

    let fallback = scaler.line_starting("APPLIED: web", Duration::from_secs(60));
    assert!(
        fallback.starts_with("APPLIED: web from 2 to 3 replicas: controller: no votes for ")
            && fallback.contains("FALLBACK_REPLICAS 3"),
        "{fallback}"
    );
    assert_eq!(running(&project), 3);
    let flagged = r#"scaler_without_votes{service="web"}"#;
    assert_eq!(scaler.metric(flagged).await, 1.0);

    for m in MODELS {
        producer
            .send(&topics.0, &vote(m, "web", 600, Action::NoAction, 3, 3))
            .await
            .unwrap();
    }
    let block = &scaler.blocks(1, Duration::from_secs(60))[0];
    assert!(
        block[block.len() - 1].starts_with("UNCHANGED: web stays at 3 replicas"),
        "{block:?}"
    );
    assert_eq!(scaler.metric(flagged).await, 0.0, "votes came again");
    assert_eq!(scaler.stop(), 0);
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        rows.lines().filter(|r| r.contains(",controller,")).count(),
        2,
        "the controller's two changes are journaled:\n{rows}"
    );
    assert!(project.down());
}

/// Issue 12's crash between the engine call and the journal: the scaler is killed (SIGKILL)
/// while it adds replicas. Restarted with every vote replayed, it settles the change in flight
/// against the engine (one record for that window), refuses the replayed votes, and the next
/// window's absolute target is reached and never passed: no replica is added twice.
#[tokio::test]
async fn a_scaler_killed_during_a_scale_up_settles_it_once_after_a_restart() {
    let project = web_project("mlkill", &[], &[]);
    let broker = Broker::start().await;
    let (_, topics, producer) = setup(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("decisions.csv");
    let intent = dir.path().join("decisions.intent.json");
    let args = on_compose(
        &project,
        &["--max-replicas", "5", "--scale-up-cooldown-sec", "0"],
    );

    let mut scaler = Scaler::start(&broker, &topics, &csv, &args);
    for m in MODELS {
        producer
            .send(&topics.0, &vote(m, "web", 300, Action::ScaleUp, 1, 4))
            .await
            .unwrap();
    }
    // The intent is on disk from before the engine call until the row is: kill in between,
    // once the first new replica runs and before the last one does.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !intent.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the scale-up starts within 60 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    while running(&project) < 2 {
        assert!(
            intent.exists(),
            "the scale-up ended before the kill could land"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "a replica starts within 60 s"
        );
    }
    scaler.child.kill().unwrap();
    scaler.child.wait().unwrap();
    assert!(intent.exists(), "killed with the change in flight");
    let at_kill = running(&project);
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert!(!rows.contains(",web,300,"), "no row yet:\n{rows}");

    // Restarted (a new group: every vote comes again), it settles window 300 once.
    let scaler = Scaler::start(&broker, &topics, &csv, &args);
    let block = &scaler.blocks(1, Duration::from_secs(60))[0];
    let done = &block[block.len() - 1];
    assert!(
        done.contains("reconciled at start: the change from 1 to 4"),
        "{block:?}"
    );
    assert!(!intent.exists(), "settled");
    assert!(
        scaler.silent_for(Duration::from_secs(4)),
        "the replayed votes of window 300 decide nothing"
    );
    assert_eq!(
        scaler.metric(r#"scaler_votes_total{outcome="late"}"#).await,
        3.0
    );
    let settled = running(&project);
    assert!(
        (at_kill..=4).contains(&settled),
        "{settled} replicas after the restart, {at_kill} at the kill"
    );

    // The next window asks for 4 again: reached, not passed.
    for m in MODELS {
        producer
            .send(
                &topics.0,
                &vote(m, "web", 310, Action::ScaleUp, settled as u32, 4),
            )
            .await
            .unwrap();
    }
    scaler.blocks(1, Duration::from_secs(60));
    assert_eq!(running(&project), 4, "the target, once");
    assert_eq!(scaler.stop(), 0);
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        rows.lines().filter(|r| r.contains(",web,300,")).count(),
        1,
        "{rows}"
    );
    eprintln!(
        "killed with {at_kill} replicas running; {settled} after the restart; 4 after window 310"
    );
    assert!(project.down());
}

/// Issue 12's one active scaler: two scalers on one journal. The second stands by, reading no
/// vote, until the first is killed (SIGKILL); then it takes over, reads what the first decided
/// (all the votes come again: its group is new) and decides the next window. Every window is
/// decided once.
#[tokio::test]
async fn of_two_scalers_on_one_journal_one_decides_and_the_other_takes_over_when_it_dies() {
    let broker = Broker::start().await;
    let (_, topics, producer) = setup(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("decisions.csv");
    let active = |text: &str| testkit::metric_sum(text, "scaler_active", &[]);
    let mut first = Scaler::start(&broker, &topics, &csv, &["--scaler-backend", "log"]);
    let text = testkit::metrics_when(
        &format!("{}/metrics", first.ops),
        "scaler_active",
        &[],
        1.0,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(active(&text), 1.0, "{text}");
    let second = Scaler::start(&broker, &topics, &csv, &["--scaler-backend", "log"]);
    let text = testkit::metrics_when(
        &format!("{}/metrics", second.ops),
        "scaler_active",
        &[],
        0.0,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(active(&text), 0.0, "the second stands by: {text}");
    let health = reqwest::get(format!("{}/healthz", second.ops))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "a standby is healthy");

    for m in MODELS {
        producer
            .send(&topics.0, &vote(m, "orders", 500, Action::ScaleUp, 2, 4))
            .await
            .unwrap();
    }
    first.blocks(1, Duration::from_secs(60));
    assert!(
        second.silent_for(Duration::from_secs(3)),
        "the standby decides nothing"
    );

    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed = std::time::Instant::now();
    let text = testkit::metrics_when(
        &format!("{}/metrics", second.ops),
        "scaler_active",
        &[],
        1.0,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(active(&text), 1.0, "the second takes over: {text}");
    let takeover = killed.elapsed();
    for m in MODELS {
        producer
            .send(&topics.0, &vote(m, "orders", 510, Action::NoAction, 4, 4))
            .await
            .unwrap();
    }
    let block = &second.blocks(1, Duration::from_secs(60))[0];
    assert!(
        block[1].starts_with("SCALING DECISION #2 @"),
        "numbering goes on from the first's journal: {block:?}"
    );
    assert!(
        block.contains(&"Vote Count: 3 NO ACTION (3 total)".to_owned()),
        "window 510, not the replayed 500: {block:?}"
    );
    assert_eq!(
        second.metric(r#"scaler_votes_total{outcome="late"}"#).await,
        3.0,
        "window 500's votes, replayed, are refused"
    );
    assert_eq!(second.stop(), 0);
    let rows = std::fs::read_to_string(&csv).unwrap();
    for window in [500, 510] {
        assert_eq!(
            rows.lines()
                .filter(|r| r.contains(&format!(",orders,{window},")))
                .count(),
            1,
            "window {window} decided once:\n{rows}"
        );
    }
    eprintln!("the standby was active {takeover:?} after the first was killed");
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
    // The bad votes sit on four partitions: the last of them may be handled after the ballot.
    let text = testkit::metrics_when(
        &format!("{}/metrics", scaler.ops),
        "kafka_dead_letters_total{",
        &[],
        FLOOD as f64,
        Duration::from_secs(120),
    )
    .await;
    let dead = |reason: &str| testkit::metric_sum(&text, "kafka_dead_letters_total{", &[reason]);
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

/// Issue 15: an anomaly on `anomalies` that says the latency is not load holds the scale-up
/// the votes ask for, and the decision block says why; once it is over (its window 30 s or
/// more before the votes'), the same votes scale up.
#[tokio::test]
async fn an_anomaly_holds_a_scale_up_that_would_not_help_and_says_why() {
    let broker = Broker::start().await;
    let (_, topics, producer) = setup(&broker).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("decisions.csv");
    let scaler = Scaler::start(&broker, &topics, &csv, &["--scaler-backend", "log"]);
    let anomaly = Anomaly {
        service: "orders".into(),
        window_id: 600,
        kind: AnomalyKind::LatencyWithoutLoad,
        observed: 0.912,
        expected: 0.181,
        score: 14.2,
        utilization: 0.31,
        detail: "p95 0.912 s at 31 % of capacity, where 0.181 s is normal at 25-50 %: not load"
            .into(),
        detected_at: Utc::now(),
    };
    producer
        .send(contract::ANOMALIES_TOPIC, &anomaly)
        .await
        .unwrap();
    testkit::metrics_when(
        &format!("{}/metrics", scaler.ops),
        "scaler_anomalies_total",
        &["latency_without_load"],
        1.0,
        Duration::from_secs(30),
    )
    .await;
    for m in MODELS {
        producer
            .send(&topics.0, &vote(m, "orders", 610, Action::ScaleUp, 2, 4))
            .await
            .unwrap();
    }
    let block = &scaler.blocks(1, Duration::from_secs(60))[0];
    let text = block.join("\n");
    assert!(
        text.contains("held at 2: a scale-up would not help: latency_without_load (p95 0.912 s"),
        "{text}"
    );
    assert_eq!(
        scaler
            .metric(r#"scaler_anomaly_holds_total{hold="anomaly_not_load"}"#)
            .await,
        1.0
    );
    for m in MODELS {
        producer
            .send(&topics.0, &vote(m, "orders", 640, Action::ScaleUp, 2, 4))
            .await
            .unwrap();
    }
    let block = &scaler.blocks(1, Duration::from_secs(60))[0];
    let done = &block[block.len() - 1];
    assert!(
        done.contains("2 -> 4") || done.contains("to 4"),
        "{block:?}"
    );
    assert!(!block.join("\n").contains("would not help"), "{block:?}");
    assert_eq!(scaler.stop(), 0);
}
