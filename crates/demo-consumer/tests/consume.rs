//! The demo consumer on a real broker (tansu), fed by load-testing: it reads at the capacity
//! its settings give, commits everything it read, shares the partitions with the other
//! replicas of its group, and at shutdown finishes and commits what it holds and leaves.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use clap::Parser;
use demo_consumer::{Application, ConsumerConfig};
use load_testing::cli::{Cli, Command};
use service_runtime::kafka::{GroupProbe, GroupReading, KafkaArgs};
use std::time::{Duration, Instant};
use testkit::{Broker, metric_sum};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A whole test's bound.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// The longest wait for one expected state.
const WAIT: Duration = Duration::from_secs(60);
/// The longest wait for what a member leaving the group changes: well under the broker's
/// session timeout (45 s), after which a member that did not leave is removed anyway.
const LEFT: Duration = Duration::from_secs(25);

/// Produces `rate` messages a second for `secs` seconds to `topic` with load-testing (creating
/// the topic with 8 partitions, as demo-consumer does); returns how many were acknowledged.
async fn produce(bootstrap: &str, topic: &str, rate: u32, secs: u32) -> u64 {
    let (rate, duration) = (rate.to_string(), format!("{secs}s"));
    let cli = Cli::try_parse_from([
        "load-testing",
        "run",
        "--kafka-topic",
        topic,
        "--kafka-bootstrap-servers",
        bootstrap,
        "--kafka-topic-partitions",
        "8",
        "--pattern",
        "constant",
        "--rps",
        &rate,
        "--duration",
        &duration,
        "--arrivals",
        "uniform",
    ])
    .unwrap();
    let Command::Run(load) = cli.command else {
        unreachable!()
    };
    let (summary, _) = load_testing::run_load(&load, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.errors() + summary.dropped, 0, "{summary:?}");
    summary.ok
}

/// A running replica: its /metrics URL, its stop token and its task.
struct Replica {
    metrics_url: String,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    async fn start(config: ConsumerConfig) -> Self {
        let app = Application::build(config).await.unwrap();
        let metrics_url = format!("http://{}/metrics", app.ops_addr());
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run(stop.clone()));
        Self {
            metrics_url,
            stop,
            task,
        }
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(&self.metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric_sum(&text, series, &[])
    }

    /// Waits until `series` satisfies `check`; its value then, and when.
    async fn when(&self, series: &str, check: impl Fn(f64) -> bool) -> (f64, Instant) {
        testkit::wait_for(WAIT, series, || async {
            let value = self.metric(series).await;
            check(value).then(|| (value, Instant::now()))
        })
        .await
    }

    /// Stops the replica (as SIGTERM does) and waits for it to end.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the replica stops in time")
            .unwrap()
            .unwrap();
    }
}

async fn read_group(args: &KafkaArgs, group: &str, topic: &str) -> GroupReading {
    let probe = GroupProbe::new(args, group, topic, Duration::from_secs(10)).unwrap();
    tokio::task::spawn_blocking(move || probe.read())
        .await
        .unwrap()
        .unwrap()
}

/// Waits until the broker lists `count` members of the group (tansu may answer without the
/// group for a moment, during a rebalance).
async fn members(args: &KafkaArgs, group: &str, topic: &str, count: u32) {
    let what = format!("the broker to list {count} members of {group}");
    testkit::wait_for(WAIT, &what, || async {
        let reading = read_group(args, group, topic).await;
        (reading.members == Some(count)).then_some(())
    })
    .await;
}

fn committed(reading: &GroupReading) -> i64 {
    reading.partitions.iter().filter_map(|p| p.committed).sum()
}

#[tokio::test]
async fn reads_at_the_capacity_its_settings_give_and_commits_all_it_read() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let broker = Broker::start().await;
        let (topic, group) = (testkit::unique("work"), testkit::unique("consumers"));
        // A backlog first, so that the replica is never short of work while it is measured.
        let produced = produce(broker.bootstrap(), &topic, 600, 1).await;
        assert!(produced >= 590, "{produced}");

        // 2 messages at once, 20 ms each: 100 messages a second.
        let config = ConsumerConfig::local(broker.bootstrap(), &topic, &group, 20.0, 2);
        assert_eq!(config.capacity_per_second(), 100.0);
        let replica = Replica::start(config).await;
        let count = "demo_consumer_messages_total";
        let (first, from) = replica.when(count, |n| n >= 50.0).await;
        let (last, to) = replica.when(count, |n| n >= 550.0).await;
        let rate = (last - first) / to.duration_since(from).as_secs_f64();
        println!("one replica, MESSAGE_COST_MS=20, CONCURRENCY=2: {rate:.1} messages/s");
        // Two 20-ms sleeps at a time cannot go faster than 100/s; a loaded machine is slower.
        assert!((35.0..=105.0).contains(&rate), "{rate:.1} messages/s");

        // Everything read once, and committed: the group's lag drains to 0.
        replica.when(count, |n| n >= produced as f64).await;
        let args = KafkaArgs::local(broker.bootstrap());
        let reading = testkit::wait_for(WAIT, "the group's lag to reach 0", || async {
            let reading = read_group(&args, &group, &topic).await;
            (reading.lag() == 0).then_some(reading)
        })
        .await;
        assert_eq!(reading.partitions.len(), 8);
        let on_topic: i64 = reading.partitions.iter().map(|p| p.end).sum();
        assert_eq!(committed(&reading), on_topic, "all committed: {reading:?}");
        assert!(
            on_topic >= i64::try_from(produced).unwrap(),
            "{produced} produced: {reading:?}"
        );
        members(&args, &group, &topic, 1).await;
        assert_eq!(
            replica.metric(count).await,
            on_topic as f64,
            "each read once"
        );
        assert_eq!(
            replica.metric("demo_consumer_assigned_partitions").await,
            8.0
        );
        assert_eq!(replica.metric("demo_consumer_in_flight").await, 0.0);
        assert_eq!(
            replica
                .metric("demo_consumer_processing_seconds_count")
                .await,
            on_topic as f64
        );
        // Each message's time is its cost.
        let seconds = replica.metric("demo_consumer_processing_seconds_sum").await;
        let mean_ms = seconds * 1000.0 / on_topic as f64;
        assert!((20.0..200.0).contains(&mean_ms), "{mean_ms:.1} ms");
        replica.stop().await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test]
async fn replicas_share_the_partitions_and_one_that_stops_hands_them_over() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let broker = Broker::start().await;
        let (topic, group) = (testkit::unique("work"), testkit::unique("consumers"));
        let config = ConsumerConfig::local(broker.bootstrap(), &topic, &group, 5.0, 4);
        let first = Replica::start(config.clone()).await;
        first
            .when("demo_consumer_assigned_partitions", |n| n == 8.0)
            .await;
        let second = Replica::start(config).await;
        let args = KafkaArgs::local(broker.bootstrap());
        testkit::wait_for(WAIT, "both replicas to hold partitions", || async {
            let (a, b) = (
                first.metric("demo_consumer_assigned_partitions").await,
                second.metric("demo_consumer_assigned_partitions").await,
            );
            (a > 0.0 && b > 0.0 && a + b == 8.0).then_some(())
        })
        .await;

        // Work produced while both read is read once, between them, and committed; the
        // broker lists both as members.
        let produced = produce(broker.bootstrap(), &topic, 200, 1).await;
        testkit::wait_for(WAIT, "the work to be read", || async {
            let read = first.metric("demo_consumer_messages_total").await
                + second.metric("demo_consumer_messages_total").await;
            (read >= produced as f64).then_some(())
        })
        .await;
        testkit::wait_for(WAIT, "the commits of both members", || async {
            let reading = read_group(&args, &group, &topic).await;
            (committed(&reading) == i64::try_from(produced).unwrap()).then_some(())
        })
        .await;
        members(&args, &group, &topic, 2).await;

        // The second leaves: the first takes every partition back without waiting out a
        // session timeout, and reads what comes next.
        second.stop().await;
        testkit::wait_for(LEFT, "the partitions to be handed over", || async {
            let held = first.metric("demo_consumer_assigned_partitions").await;
            (held == 8.0).then_some(())
        })
        .await;
        let more = produce(broker.bootstrap(), &topic, 200, 1).await;
        testkit::wait_for(WAIT, "the group's lag to reach 0", || async {
            let reading = read_group(&args, &group, &topic).await;
            (reading.lag() == 0 && committed(&reading) == i64::try_from(produced + more).unwrap())
                .then_some(())
        })
        .await;
        members(&args, &group, &topic, 1).await;
        first.stop().await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test]
async fn at_shutdown_it_finishes_and_commits_what_it_holds_and_takes_nothing_more() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let broker = Broker::start().await;
        let (topic, group) = (testkit::unique("work"), testkit::unique("consumers"));
        // One message on each partition; 4 at a time, 3 s each.
        let produced = produce(broker.bootstrap(), &topic, 8, 1).await;
        assert_eq!(produced, 8);
        let config = ConsumerConfig::local(broker.bootstrap(), &topic, &group, 3_000.0, 4);
        let replica = Replica::start(config).await;
        replica.when("demo_consumer_in_flight", |n| n == 4.0).await;
        assert_eq!(replica.metric("demo_consumer_messages_total").await, 0.0);
        replica.stop().await;

        // The four it held were finished and committed, one on each of four partitions; the
        // other four are left for the next replica.
        let args = KafkaArgs::local(broker.bootstrap());
        let reading = read_group(&args, &group, &topic).await;
        assert_eq!(committed(&reading), 4, "{reading:?}");
        assert_eq!(reading.lag(), 4, "{reading:?}");
        testkit::wait_for(LEFT, "the replica to leave the group", || async {
            let reading = read_group(&args, &group, &topic).await;
            matches!(reading.members, None | Some(0)).then_some(())
        })
        .await;
    })
    .await
    .expect("the test finishes in time");
}

#[test]
fn an_invalid_setting_is_one_line_and_a_non_zero_exit() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_demo-consumer"))
        .env("MESSAGE_COST_MS", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("demo-consumer: invalid configuration: MESSAGE_COST_MS"),
        "{stderr}"
    );
}
