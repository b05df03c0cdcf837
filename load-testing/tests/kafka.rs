//! Load as Kafka messages, on a real broker (tansu): every arrival of the schedule is one
//! message on the topic, the partitions get even shares, and each message is a readable work
//! item with its own sequence number.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use clap::Parser;
use load_testing::cli::{Cli, Command, LoadArgs};
use load_testing::kafka::WorkItem;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use service_runtime::config::Validate;
use service_runtime::kafka::KafkaArgs;
use std::collections::BTreeSet;
use std::time::Duration;
use testkit::Broker;
use tokio_util::sync::CancellationToken;

/// A whole test's bound.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn run_args(argv: &[&str]) -> LoadArgs {
    let mut all = vec!["load-testing", "run"];
    all.extend_from_slice(argv);
    let cli = Cli::try_parse_from(all).unwrap();
    cli.validate().unwrap();
    match cli.command {
        Command::Run(load) => load,
        Command::Experiment(_) => unreachable!(),
    }
}

/// Reads `count` messages from every partition of `topic` from its start (no group).
async fn read_all(args: &KafkaArgs, topic: &str, partitions: i32, count: usize) -> Vec<WorkItem> {
    let consumer: StreamConsumer = args
        .consumer_config("test-reader", "unused")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut items = Vec::with_capacity(count);
    while items.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("the messages produced are on the topic")
            .unwrap();
        let item: WorkItem = serde_json::from_slice(message.payload().unwrap()).unwrap();
        assert_eq!(
            message.key(),
            Some(item.seq.to_string().as_bytes()),
            "keyed by its number"
        );
        items.push(item);
    }
    items
}

#[tokio::test]
async fn every_arrival_is_one_message_spread_evenly_over_the_partitions() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let broker = Broker::start().await;
        let topic = testkit::unique("work");
        // 100 messages a second for a second, then 300 for a second: about 400, on a topic
        // load-testing creates with 4 partitions.
        let load = run_args(&[
            "--kafka-topic",
            &topic,
            "--kafka-bootstrap-servers",
            broker.bootstrap(),
            "--kafka-topic-partitions",
            "4",
            "--pattern",
            "step",
            "--levels",
            "100,300",
            "--step-every",
            "1s",
            "--duration",
            "2s",
            "--arrivals",
            "uniform",
        ]);
        let (summary, took) = load_testing::run_load(&load, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(summary.errors(), 0, "{summary:?}");
        assert_eq!(summary.dropped, 0, "{summary:?}");
        assert_eq!(summary.ok, summary.sent, "every message acknowledged");
        assert!(
            (395..=402).contains(&summary.sent),
            "the step pattern's arrivals: {summary:?}"
        );
        let text = load_testing::progress::summary_of(&load, &summary, took);
        assert!(
            text.starts_with(&format!("messages produced {} (", summary.ok)),
            "{text}"
        );
        assert!(text.contains("failed 0"), "{text}");

        // On the broker: exactly those messages, numbered 0..n once each, in even shares.
        let args = KafkaArgs::local(broker.bootstrap());
        let n = usize::try_from(summary.ok).unwrap();
        let items = read_all(&args, &topic, 4, n).await;
        let numbers: BTreeSet<u64> = items.iter().map(|i| i.seq).collect();
        assert_eq!(numbers, (0..summary.ok).collect::<BTreeSet<u64>>());
        let probe = service_runtime::kafka::GroupProbe::new(
            &args,
            "nobody",
            &topic,
            Duration::from_secs(10),
        )
        .unwrap();
        let reading = tokio::task::spawn_blocking(move || probe.read())
            .await
            .unwrap()
            .unwrap();
        let ends: Vec<i64> = reading.partitions.iter().map(|p| p.end).collect();
        assert_eq!(ends.len(), 4);
        assert_eq!(
            ends.iter().sum::<i64>(),
            i64::try_from(n).unwrap(),
            "nothing more"
        );
        let (least, most) = (ends.iter().min().unwrap(), ends.iter().max().unwrap());
        assert!(
            most - least <= 1,
            "round-robin over the partitions: {ends:?}"
        );
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test]
async fn a_missing_topic_is_an_error_when_topics_are_not_created() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let broker = Broker::start().await;
        let load = run_args(&[
            "--kafka-topic",
            "no-such-topic",
            "--kafka-bootstrap-servers",
            broker.bootstrap(),
            "--kafka-create-topics",
            "false",
            "--duration",
            "1s",
        ]);
        let e = load_testing::run_load(&load, &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("topic no-such-topic does not exist"),
            "{e:#}"
        );
    })
    .await
    .expect("the test finishes in time");
}
