//! The Kafka plumbing against a real broker: round trip, bad messages skipped and counted,
//! offsets stored only after the work is done, a sole reader not held up by a killed member.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use contract::{FeatureVector, Features, METRICS_TOPIC, Message};
use service_runtime::kafka::{
    AtLeastOnceConsumer, GroupProbe, JsonProducer, KafkaArgs, KafkaMetrics, ensure_topics,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::Broker;
use tokio_util::sync::CancellationToken;

fn vector(service: &str, window_id: u64) -> FeatureVector {
    let at = Utc.timestamp_opt(window_id as i64, 0).unwrap();
    FeatureVector {
        service: service.into(),
        window_id,
        window_start: at - chrono::Duration::seconds(30),
        window_end: at,
        poll_interval_sec: 30,
        produced_at: at,
        features: Features::from_values(&[1.0; contract::FEATURE_COUNT]).unwrap(),
        consumer_group: None,
    }
}

/// Settings for a test broker: groups without offsets read from the beginning.
fn args(broker: &Broker) -> KafkaArgs {
    let mut args = KafkaArgs::local(broker.bootstrap());
    args.kafka_properties
        .push("auto.offset.reset=earliest".into());
    args
}

fn metrics() -> KafkaMetrics {
    KafkaMetrics::register(&prometheus::Registry::new()).unwrap()
}

/// Consumes in `group` until `expected` windows were handled or 30 s passed, with a handler
/// that fails on its first attempt at each window in `fail_once`. Returns handled window ids.
async fn consume(
    args: &KafkaArgs,
    topic: &str,
    group: &str,
    metrics: &KafkaMetrics,
    expected: usize,
    fail_once: &[u64],
) -> Vec<u64> {
    consume_as(
        AtLeastOnceConsumer::new,
        args,
        topic,
        group,
        metrics,
        expected,
        fail_once,
    )
    .await
}

/// A broker, settings for it, a new topic on it, counters and a producer.
async fn a_topic_on_a_broker() -> (Broker, KafkaArgs, String, KafkaMetrics, JsonProducer) {
    let broker = Broker::start().await;
    let args = args(&broker);
    let topic = testkit::unique(METRICS_TOPIC);
    ensure_topics(&args, &[&topic]).await.unwrap();
    let m = metrics();
    let producer = JsonProducer::new(&args, "test", m.clone()).unwrap();
    (broker, args, topic, m, producer)
}

/// How a consumer is made: [`AtLeastOnceConsumer::new`] or [`AtLeastOnceConsumer::sole`].
type Make = fn(
    &KafkaArgs,
    &str,
    &str,
    &str,
    KafkaMetrics,
) -> Result<AtLeastOnceConsumer, rdkafka::error::KafkaError>;

/// [`consume`] with a consumer made by `make`.
async fn consume_as(
    make: Make,
    args: &KafkaArgs,
    topic: &str,
    group: &str,
    metrics: &KafkaMetrics,
    expected: usize,
    fail_once: &[u64],
) -> Vec<u64> {
    let consumer = make(args, "test", group, topic, metrics.clone()).unwrap();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        stop.cancel();
    });
    let (h, f, s) = (handled.clone(), failed.clone(), shutdown.clone());
    consumer
        .run(&shutdown, |v: &FeatureVector| {
            let result =
                if fail_once.contains(&v.window_id) && !f.lock().unwrap().contains(&v.window_id) {
                    f.lock().unwrap().push(v.window_id);
                    Err(anyhow::anyhow!("simulated failure"))
                } else {
                    let mut handled = h.lock().unwrap();
                    handled.push(v.window_id);
                    if handled.len() >= expected {
                        s.cancel();
                    }
                    Ok(())
                };
            std::future::ready(result)
        })
        .await
        .unwrap();
    timer.abort();
    handled.lock().unwrap().clone()
}

#[tokio::test]
async fn round_trip_skips_and_counts_what_it_cannot_read() {
    let broker = Broker::start().await;
    let args = args(&broker);
    let topic = testkit::unique(METRICS_TOPIC);
    ensure_topics(&args, &[&topic]).await.unwrap();
    ensure_topics(&args, &[&topic])
        .await
        .expect("existing topic is fine");

    let m = metrics();
    let producer = JsonProducer::new(&args, "test", m.clone()).unwrap();
    producer.send(&topic, &vector("orders", 1)).await.unwrap();
    producer
        .send_raw(&topic, "orders", b"{not json")
        .await
        .unwrap();
    let mut future = serde_json::to_value(vector("orders", 9)).unwrap();
    future["version"] = "7".into();
    producer
        .send_raw(&topic, "orders", future.to_string().as_bytes())
        .await
        .unwrap();
    producer.send(&topic, &vector("carts", 2)).await.unwrap();
    producer.send(&topic, &vector("orders", 3)).await.unwrap();
    assert_eq!(m.produced.with_label_values(&[&topic]).get(), 5);

    let handled = consume(&args, &topic, &testkit::unique("g"), &m, 3, &[]).await;
    let mut sorted = handled.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 2, 3]);
    assert_eq!(m.consumed.with_label_values(&[&topic]).get(), 3);
    assert_eq!(
        m.skipped
            .with_label_values(&[&topic, "malformed_json"])
            .get(),
        1
    );
    assert_eq!(
        m.skipped
            .with_label_values(&[&topic, "unsupported_version"])
            .get(),
        1
    );
}

/// A group's position read from the broker: what was produced, what the group committed, the
/// lag between, and the rates between two readings.
#[tokio::test]
async fn a_groups_lag_and_rates_are_read_from_the_broker() {
    let (_broker, args, topic, m, producer) = a_topic_on_a_broker().await;
    for w in 1..=30 {
        let service = format!("svc-{}", w % 7);
        producer.send(&topic, &vector(&service, w)).await.unwrap();
    }
    let group = testkit::unique("g");
    let handled = consume(&args, &topic, &group, &m, 10, &[]).await;
    let probe = {
        let (args, group, topic) = (args.clone(), group.clone(), topic.clone());
        move || GroupProbe::new(&args, &group, &topic, Duration::from_secs(10)).unwrap()
    };
    let first = tokio::task::spawn_blocking({
        let probe = probe.clone();
        move || probe().read().unwrap()
    })
    .await
    .unwrap();
    assert!(first.partitions.len() >= 2, "{first:?}");
    let end: i64 = first.partitions.iter().map(|p| p.end - p.start).sum();
    assert_eq!(end, 30, "{first:?}");
    assert_eq!(first.lag(), 30 - handled.len() as i64, "{first:?}");
    assert_eq!(first.members.unwrap_or(0), 0, "the consumer has left");

    for w in 31..=50 {
        let service = format!("svc-{}", w % 7);
        producer.send(&topic, &vector(&service, w)).await.unwrap();
    }
    let second = tokio::task::spawn_blocking(move || probe().read().unwrap())
        .await
        .unwrap();
    let rates = second.since(&first);
    assert_eq!(rates.lag, 50 - handled.len() as i64);
    assert_eq!(rates.lag_per_partition.iter().sum::<i64>(), rates.lag);
    assert!(
        rates.production > 0.0 && rates.consumption == 0.0,
        "{rates:?}"
    );
    assert_eq!(rates.lag_seconds, None, "nothing read since");
    assert_eq!(rates.partitions as usize, first.partitions.len());
}

#[tokio::test]
async fn offsets_are_committed_only_after_the_work_is_done() {
    let (_broker, args, topic, m, producer) = a_topic_on_a_broker().await;
    // One key: one partition, so order is defined.
    for w in 1..=3 {
        producer.send(&topic, &vector("orders", w)).await.unwrap();
    }
    let group = testkit::unique("g");

    // Window 2 fails once: it is retried, not skipped, and handled exactly once here.
    let first = consume(&args, &topic, &group, &m, 3, &[2]).await;
    assert_eq!(first, vec![1, 2, 3]);
    assert_eq!(m.handler_retries.with_label_values(&[&topic]).get(), 1);

    // The same group resumes after the committed offset.
    for w in 4..=5 {
        producer.send(&topic, &vector("orders", w)).await.unwrap();
    }
    let second = consume(&args, &topic, &group, &m, 2, &[]).await;
    assert_eq!(second, vec![4, 5]);

    // A message whose work never finished before shutdown is delivered again.
    producer.send(&topic, &vector("orders", 6)).await.unwrap();
    let never = consume_failing_forever(&args, &topic, &group, &m).await;
    assert_eq!(never, 6, "the consumer saw window 6 before shutting down");
    let third = consume(&args, &topic, &group, &m, 1, &[]).await;
    assert_eq!(third, vec![6]);
}

#[tokio::test]
async fn a_sole_reader_reads_every_partition_whoever_holds_the_group() {
    let (broker, args, topic, m, producer) = a_topic_on_a_broker().await;
    // Several keys: the windows spread over the topic's partitions.
    let send = async |windows: std::ops::RangeInclusive<u64>| {
        for w in windows {
            let service = ["orders", "carts", "payment", "user"][w as usize % 4];
            producer.send(&topic, &vector(service, w)).await.unwrap();
        }
    };
    send(1..=8).await;
    let group = testkit::unique("g");
    let sole = AtLeastOnceConsumer::sole;
    let mut first = consume_as(sole, &args, &topic, &group, &m, 8, &[]).await;
    first.sort_unstable();
    assert_eq!(
        first,
        (1..=8).collect::<Vec<_>>(),
        "every partition is read"
    );

    // A member of the group that took its partitions and was killed without leaving, as the
    // end-to-end run's kill -9 does: a sole reader is not held up by its ghost, and goes on from
    // the offsets committed last.
    send(9..=12).await;
    kill_a_member_after_it_read(&broker, &topic, &group, 4).await;
    send(13..=16).await;
    let mut second = consume_as(sole, &args, &topic, &group, &m, 4, &[]).await;
    second.sort_unstable();
    assert_eq!(
        second,
        vec![13, 14, 15, 16],
        "exactly what was not read yet"
    );

    let missing = AtLeastOnceConsumer::sole(&args, "test", &group, "no-such-topic", m.clone());
    assert!(missing.is_err(), "a sole reader needs its topic to exist");
}

/// Runs [`a_group_member_until_killed`] in a child process, waits until it has read `count`
/// messages of `topic` in `group` and committed them, and kills it with SIGKILL.
async fn kill_a_member_after_it_read(broker: &Broker, topic: &str, group: &str, count: usize) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "a_group_member_until_killed",
            "--nocapture",
        ])
        .env("MEMBER_BOOTSTRAP", broker.bootstrap())
        .env("MEMBER_TOPIC", topic)
        .env("MEMBER_GROUP", group)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut read = 0;
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while read < count {
            match lines.next_line().await.unwrap() {
                Some(line) if line.starts_with("read window") => read += 1,
                Some(_) => {}
                None => panic!("the member ended before it read {count} messages"),
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the member read {read} of {count} messages in 60 s"
    );
    // Offsets are committed every second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    child.kill().await.unwrap();
}

/// Not a test of its own: the group member that [`kill_a_member_after_it_read`] runs and kills.
#[tokio::test]
#[ignore = "run as a child process by a_sole_reader_reads_every_partition_whoever_holds_the_group"]
async fn a_group_member_until_killed() {
    let (Ok(bootstrap), Ok(topic), Ok(group)) = (
        std::env::var("MEMBER_BOOTSTRAP"),
        std::env::var("MEMBER_TOPIC"),
        std::env::var("MEMBER_GROUP"),
    ) else {
        return;
    };
    let mut args = KafkaArgs::local(bootstrap);
    args.kafka_properties
        .push("auto.offset.reset=earliest".into());
    let consumer = AtLeastOnceConsumer::new(&args, "member", &group, &topic, metrics()).unwrap();
    consumer
        .run(&CancellationToken::new(), |v: &FeatureVector| {
            #[allow(clippy::print_stdout)]
            {
                println!("read window {}", v.window_id);
            }
            std::future::ready(Ok(()))
        })
        .await
        .unwrap();
}

/// A consumer whose handler always fails; shuts down after the first attempt. Returns the window.
async fn consume_failing_forever(
    args: &KafkaArgs,
    topic: &str,
    group: &str,
    m: &KafkaMetrics,
) -> u64 {
    let consumer = AtLeastOnceConsumer::new(args, "test", group, topic, m.clone()).unwrap();
    let shutdown = CancellationToken::new();
    let seen = Arc::new(Mutex::new(0));
    let (s, stop) = (seen.clone(), shutdown.clone());
    tokio::time::timeout(
        Duration::from_secs(30),
        consumer.run(&shutdown, |v: &FeatureVector| {
            *s.lock().unwrap() = v.window_id;
            stop.cancel();
            std::future::ready(Err(anyhow::anyhow!("never succeeds")))
        }),
    )
    .await
    .expect("consumer stops at shutdown")
    .unwrap();
    *seen.lock().unwrap()
}

#[tokio::test]
async fn waiting_messages_come_in_bounded_batches_and_are_committed_after_them() {
    let (_broker, args, topic, m, producer) = a_topic_on_a_broker().await;
    let sends = (1..=200).map(|w| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move { producer.send(&topic, &vector("orders", w)).await }
    });
    futures::future::try_join_all(sends).await.unwrap();
    producer
        .send_raw(&topic, "orders", b"{not json")
        .await
        .unwrap();
    let group = testkit::unique("g");

    let batches: Arc<Mutex<Vec<Vec<u64>>>> = Arc::default();
    let shutdown = CancellationToken::new();
    let (b, stop) = (batches.clone(), shutdown.clone());
    let consumer = AtLeastOnceConsumer::new(&args, "test", &group, &topic, m.clone()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        consumer.run_batches(&shutdown, 64, |batch: &[FeatureVector]| {
            let mut batches = b.lock().unwrap();
            batches.push(batch.iter().map(|v| v.window_id).collect());
            if batches.iter().map(Vec::len).sum::<usize>() >= 200 {
                stop.cancel();
            }
            std::future::ready(Ok(()))
        }),
    )
    .await
    .expect("200 vectors within 30 s")
    .unwrap();
    let batches = batches.lock().unwrap().clone();
    let mut seen: Vec<u64> = batches.iter().flatten().copied().collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=200).collect::<Vec<_>>(), "each once");
    assert!(
        batches.iter().all(|b| b.len() <= 64),
        "bounded: {batches:?}"
    );
    assert!(
        batches.iter().any(|b| b.len() > 1),
        "what waits comes together: {batches:?}"
    );
    assert_eq!(m.consumed.with_label_values(&[&topic]).get(), 200);
    assert_eq!(
        m.skipped
            .with_label_values(&[&topic, "malformed_json"])
            .get(),
        1
    );
    // The batches' offsets were committed: the group resumes after them.
    drop(consumer);
    producer.send(&topic, &vector("orders", 201)).await.unwrap();
    assert_eq!(consume(&args, &topic, &group, &m, 1, &[]).await, vec![201]);
}

#[test]
fn encoded_vectors_decode() {
    let v = vector("orders", 1);
    assert_eq!(FeatureVector::decode(&v.encode()).unwrap(), v);
}

/// Reads up to `count` raw messages of `topic` from the beginning, within 30 s.
fn read_raw(args: &KafkaArgs, topic: &str, count: usize) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = args
        .consumer_config("test", &testkit::unique("raw"))
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut read = Vec::new();
    while read.len() < count && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            read.push(message.detach());
        }
    }
    read
}

fn header(message: &rdkafka::message::OwnedMessage, key: &str) -> String {
    use rdkafka::Message as _;
    use rdkafka::message::Headers as _;
    message
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == key))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn what_cannot_be_processed_goes_to_the_dead_letter_topic_and_the_consumer_moves_on() {
    use rdkafka::Message as _;
    let broker = Broker::start().await;
    let args = args(&broker);
    let topic = testkit::unique(METRICS_TOPIC);
    let dead = service_runtime::kafka::dead_letter_topic(&topic);
    ensure_topics(&args, &[&topic, &dead]).await.unwrap();
    let m = metrics();
    let producer = JsonProducer::new(&args, "test", m.clone()).unwrap();
    // One key, one partition: the order is defined.
    producer.send(&topic, &vector("orders", 1)).await.unwrap();
    producer
        .send_raw(&topic, "orders", b"{not json")
        .await
        .unwrap();
    // The poison pill of the issue: a replica count no consumer may size anything by.
    let mut huge: serde_json::Value =
        serde_json::from_slice(&vector("orders", 2).encode()).unwrap();
    huge["features"]["replicas"] = 1e9.into();
    let huge = huge.to_string();
    producer
        .send_raw(&topic, "orders", huge.as_bytes())
        .await
        .unwrap();
    producer
        .send_raw(
            &topic,
            "orders",
            &vec![b' '; contract::MAX_MESSAGE_BYTES + 1],
        )
        .await
        .unwrap();
    // A vector whose handler always fails, then two that succeed.
    for w in [3, 4, 5] {
        producer.send(&topic, &vector("orders", w)).await.unwrap();
    }

    let group = testkit::unique("g");
    let consumer = AtLeastOnceConsumer::new(&args, "test", &group, &topic, m.clone())
        .unwrap()
        .dead_letters(producer.clone());
    let handled: Arc<Mutex<Vec<u64>>> = Arc::default();
    let tries = Arc::new(Mutex::new(0));
    let shutdown = CancellationToken::new();
    let (h, t, stop) = (handled.clone(), tries.clone(), shutdown.clone());
    tokio::time::timeout(
        Duration::from_secs(60),
        consumer.run_batches(&shutdown, 64, |batch: &[FeatureVector]| {
            if batch.iter().any(|v| v.window_id == 3) {
                *t.lock().unwrap() += 1;
                return std::future::ready(Err(anyhow::anyhow!("the model cannot vote on this")));
            }
            let mut handled = h.lock().unwrap();
            handled.extend(batch.iter().map(|v| v.window_id));
            if handled.contains(&5) {
                stop.cancel();
            }
            std::future::ready(Ok(()))
        }),
    )
    .await
    .expect("the consumer moves past what fails")
    .unwrap();
    let mut handled = handled.lock().unwrap().clone();
    handled.sort_unstable();
    handled.dedup();
    assert_eq!(handled, vec![1, 4, 5], "window 3 never succeeded");
    // Window 3 was tried at most MAX_TRIES times alone (and perhaps once in a batch before).
    let tried = *tries.lock().unwrap();
    assert!(
        (service_runtime::kafka::MAX_TRIES..=2 * service_runtime::kafka::MAX_TRIES)
            .contains(&tried),
        "tried {tried} times"
    );

    let letters = read_raw(&args, &dead, 4);
    let reasons: Vec<String> = letters
        .iter()
        .map(|l| header(l, "dead-letter.reason"))
        .collect();
    assert_eq!(
        reasons,
        ["malformed_json", "invalid", "too_large", "handler_failed"],
        "in the topic's order"
    );
    assert_eq!(
        letters[0].payload(),
        Some(&b"{not json"[..]),
        "kept as it came"
    );
    assert_eq!(letters[1].payload(), Some(huge.as_bytes()));
    assert!(
        header(&letters[1], "dead-letter.detail").contains("replicas is 1000000000, outside"),
        "{}",
        header(&letters[1], "dead-letter.detail")
    );
    assert_eq!(header(&letters[1], "dead-letter.topic"), topic);
    assert_eq!(header(&letters[1], "dead-letter.offset"), "2");
    assert_eq!(header(&letters[1], "dead-letter.group"), group);
    assert!(header(&letters[3], "dead-letter.detail").contains("cannot vote"));
    assert_eq!(letters[3].key(), Some(&b"orders"[..]));
    for (reason, n) in [
        ("malformed_json", 1),
        ("invalid", 1),
        ("too_large", 1),
        ("handler_failed", 1),
    ] {
        assert_eq!(
            m.dead_letters.with_label_values(&[&topic, reason]).get(),
            n,
            "{reason}"
        );
    }

    // Their offsets were stored: the group resumes after them.
    drop(consumer);
    producer.send(&topic, &vector("orders", 6)).await.unwrap();
    assert_eq!(consume(&args, &topic, &group, &m, 1, &[]).await, vec![6]);
}

/// Issue 12's broker restart: the broker (SQLite storage, so it keeps what it had) is killed and
/// started again on the same address in the middle of a burst. Every vector sent, before, during
/// and after, is acknowledged and consumed: none is lost (some may come twice: at least once).
#[tokio::test]
async fn a_broker_restart_during_a_burst_loses_no_message() {
    const BURST: u64 = 3_000;
    const CHUNK: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_persistent(&dir.path().join("tansu.db")).await;
    let args = args(&broker);
    let topic = testkit::unique("restart");
    ensure_topics(&args, &[&topic]).await.unwrap();
    let metrics = metrics();
    let consumer = AtLeastOnceConsumer::new(
        &args,
        "test",
        &testkit::unique("group"),
        &topic,
        metrics.clone(),
    )
    .unwrap();
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = CancellationToken::new();
    let reading = {
        let (sink, stop) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            consumer
                .run(&stop, move |v: &FeatureVector| {
                    sink.lock().unwrap().push(v.window_id);
                    std::future::ready(Ok(()))
                })
                .await
        })
    };
    // The burst: chunks of 100 vectors every 100 ms, each chunk acknowledged before the next.
    let producer = JsonProducer::new(&args, "test", metrics.clone()).unwrap();
    let sending = {
        let topic = topic.clone();
        tokio::spawn(async move {
            for chunk in 0..BURST / CHUNK {
                let vectors: Vec<FeatureVector> = (chunk * CHUNK..(chunk + 1) * CHUNK)
                    .map(|i| vector("orders", i))
                    .collect();
                let sends = vectors.iter().map(|v| producer.send(&topic, v));
                futures::future::try_join_all(sends).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(())
        })
    };
    let unique = |seen: &Arc<Mutex<Vec<u64>>>| {
        let mut ids = seen.lock().unwrap().clone();
        ids.sort_unstable();
        ids.dedup();
        ids.len() as u64
    };
    testkit::wait_for(
        Duration::from_secs(60),
        "a third of the burst consumed",
        || {
            let done = unique(&seen) >= BURST / 3;
            async move { done.then_some(()) }
        },
    )
    .await;
    let before = unique(&seen);
    broker.restart().await;
    let restarted = std::time::Instant::now();
    testkit::wait_for(
        Duration::from_secs(120),
        "a vector consumed after the restart",
        || {
            let done = unique(&seen) > before;
            async move { done.then_some(()) }
        },
    )
    .await;
    let recovery = restarted.elapsed();
    tokio::time::timeout(Duration::from_secs(120), sending)
        .await
        .expect("the burst is acknowledged within 120 s")
        .unwrap()
        .expect("every send is acknowledged");
    testkit::wait_for(Duration::from_secs(120), "every vector consumed", || {
        let done = unique(&seen) == BURST;
        async move { done.then_some(()) }
    })
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let total = seen.lock().unwrap().len();
    eprintln!(
        "{BURST} sent, {BURST} consumed ({} twice); {before} before the restart; the first after it {recovery:?} after the broker was back",
        total as u64 - BURST
    );
}
