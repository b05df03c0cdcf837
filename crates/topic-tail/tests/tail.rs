//! topic-tail prints what is on a topic of a real broker, one message per line.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use contract::{DecodeError, Message, Vote};
use service_runtime::kafka::{JsonProducer, KafkaArgs, KafkaMetrics, ensure_topics};

#[tokio::test]
async fn prints_each_message_on_its_own_line_with_its_key() {
    let broker = testkit::Broker::start().await;
    let args = KafkaArgs::local(broker.bootstrap());
    let topic = testkit::unique("model-votes");
    ensure_topics(&args, &[&topic]).await.unwrap();
    let producer = JsonProducer::new(
        &args,
        "test",
        KafkaMetrics::register(&prometheus::Registry::new()).unwrap(),
    )
    .unwrap();
    let golden = include_bytes!("../../contract/tests/golden/vote_v1.json");
    let vote = Vote::decode(golden).unwrap();
    producer.send(&topic, &vote).await.unwrap();
    producer
        .send_raw(&topic, "carts", b"{\"not\":\"a vote\"}")
        .await
        .unwrap();

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_topic-tail"))
        .args([
            "--topic",
            &topic,
            "--from-beginning",
            "--print-key",
            "--max-messages",
            "2",
        ])
        .args([
            "--idle-timeout-sec",
            "20",
            "--kafka-bootstrap-servers",
            broker.bootstrap(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    // Two keys, two partitions: the order between them is not defined.
    let by_key = |wanted: &str| {
        lines
            .iter()
            .filter_map(|l| l.split_once('\t'))
            .find(|(key, _)| *key == wanted)
            .map(|(_, json)| json)
            .unwrap_or_else(|| panic!("no line with key {wanted}: {stdout}"))
    };
    assert_eq!(Vote::decode(by_key("orders").as_bytes()).unwrap(), vote);
    let err: DecodeError = Vote::decode(by_key("carts").as_bytes()).unwrap_err();
    assert_eq!(err.reason(), "missing_version", "printed as it is, unread");
}
