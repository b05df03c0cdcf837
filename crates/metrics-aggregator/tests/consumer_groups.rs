//! Consumer groups read from a real broker (tansu): lag, rates and partitions on /metrics, a
//! group to scale published as a feature vector of its kind, and a group that cannot be read
//! counted while the service goes on.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::Utc;
use contract::{FeatureVector, METRICS_TOPIC};
use metrics_aggregator::groups::{GroupMetrics, GroupTarget, GroupWatcher, VectorSettings};
use metrics_aggregator::sink::Sink;
use service_runtime::kafka::{
    AtLeastOnceConsumer, JsonProducer, KafkaArgs, KafkaMetrics, ensure_topics,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use testkit::{Broker, metric_sum};
use tokio_util::sync::CancellationToken;

fn vector(i: u64) -> FeatureVector {
    let at = Utc::now();
    FeatureVector {
        service: format!("svc-{}", i % 7),
        window_id: i,
        window_start: at - chrono::Duration::seconds(30),
        window_end: at,
        poll_interval_sec: 30,
        produced_at: at,
        features: features::synthetic::features(10.0, 1),
        consumer_group: None,
    }
}

/// The first `expected` messages of `topic` (what came within 30 s if fewer).
async fn read_all(args: &KafkaArgs, topic: &str, expected: usize) -> Vec<FeatureVector> {
    let consumer = AtLeastOnceConsumer::new(
        args,
        "test",
        &testkit::unique("reader"),
        topic,
        KafkaMetrics::register(&prometheus::Registry::new()).unwrap(),
    )
    .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let (s, st) = (seen.clone(), stop.clone());
    let deadline = tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            stop.cancel();
        }
    });
    consumer
        .run(&stop, move |v: &FeatureVector| {
            let mut seen = s.lock().unwrap();
            seen.push(v.clone());
            if seen.len() >= expected {
                st.cancel();
            }
            std::future::ready(Ok(()))
        })
        .await
        .unwrap();
    deadline.abort();
    seen.lock().unwrap().clone()
}

fn exposition(registry: &prometheus::Registry) -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap()
}

#[tokio::test]
async fn a_groups_lag_and_rates_go_to_metrics_and_an_unreadable_one_is_counted() {
    let broker = Broker::start().await;
    let mut args = KafkaArgs::local(broker.bootstrap());
    args.kafka_properties
        .push("auto.offset.reset=earliest".into());
    let topic = testkit::unique(METRICS_TOPIC);
    ensure_topics(&args, &[&topic]).await.unwrap();
    let kafka_metrics = KafkaMetrics::register(&prometheus::Registry::new()).unwrap();
    let producer = JsonProducer::new(&args, "test", kafka_metrics.clone()).unwrap();
    for i in 0..40 {
        producer.send(&topic, &vector(i)).await.unwrap();
    }
    // The group reads 15 and commits them.
    let group = testkit::unique("workers");
    let consumer =
        AtLeastOnceConsumer::new(&args, "test", &group, &topic, kafka_metrics.clone()).unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            stop.cancel();
        })
    };
    let (r, s) = (read.clone(), stop.clone());
    consumer
        .run(&stop, move |_: &FeatureVector| {
            if r.fetch_add(1, Ordering::SeqCst) + 1 >= 15 {
                s.cancel();
            }
            std::future::ready(Ok(()))
        })
        .await
        .unwrap();
    timer.abort();
    let read = read.load(Ordering::SeqCst) as f64;

    // A member that takes a message and never finishes it: the group has a consumer (whatever
    // the broker says of the one that left), and its lag stays. From a reading with members
    // on, the group to scale goes to the topic.
    let stuck_stop = CancellationToken::new();
    let stuck = {
        let consumer =
            AtLeastOnceConsumer::new(&args, "stuck", &group, &topic, kafka_metrics.clone())
                .unwrap();
        let stop = stuck_stop.clone();
        tokio::spawn(async move {
            consumer
                .run(&stop, |_: &FeatureVector| {
                    std::future::ready(Err(anyhow::anyhow!("never done")))
                })
                .await
        })
    };
    let registry = prometheus::Registry::new();
    let targets = vec![
        GroupTarget::parse(&format!("shipping={group}@{topic}")).unwrap(),
        GroupTarget::parse("gone=workers@no-such-topic-anywhere").unwrap(),
        GroupTarget::parse_watched(&format!("watched={group}@{topic}")).unwrap(),
    ];
    let metrics = GroupMetrics::register(&registry, &targets).unwrap();
    let targets_again = targets.clone();
    let vectors_topic = testkit::unique("group-vectors");
    ensure_topics(&args, &[&vectors_topic]).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let state_path = state.path().join("capacity-consumers.json");
    let settings = VectorSettings {
        sink: Sink::Kafka {
            producer: producer.clone(),
            topic: vectors_topic.clone(),
            anomalies_topic: format!("{vectors_topic}-anomalies"),
        },
        interval_secs: 10,
        features: features::FeatureSettings::new(4, 10),
        capacity_prior: 7.0,
        lag_target_sec: 60.0,
        state_path: Some(state_path.clone()),
    };
    let mut watcher =
        GroupWatcher::new(args.clone(), targets.clone(), metrics).with_vectors(settings.clone());
    watcher.poll(1_800_000_000).await;
    let text = exposition(&registry);
    let service = "service=\"shipping\"";
    assert_eq!(
        metric_sum(&text, "aggregator_consumer_lag_messages", &[service]),
        40.0 - read,
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "aggregator_consumer_partitions", &[service]),
        3.0
    );
    for i in 40..65 {
        producer.send(&topic, &vector(i)).await.unwrap();
    }
    watcher.poll(1_800_000_010).await;
    let text = exposition(&registry);
    assert_eq!(
        metric_sum(&text, "aggregator_consumer_lag_messages", &[service]),
        65.0 - read
    );
    assert!(metric_sum(&text, "aggregator_consumer_production_rate", &[service]) > 0.0);
    assert_eq!(
        metric_sum(&text, "aggregator_consumer_consumption_rate", &[service]),
        0.0
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("aggregator_consumer_lag_seconds")
                && l.contains(service)
                && l.to_ascii_lowercase().ends_with("inf")),
        "lag and nothing read: no time to read it\n{text}"
    );
    assert_eq!(
        metric_sum(
            &text,
            "aggregator_consumer_group_errors_total",
            &["service=\"gone\""]
        ),
        2.0,
        "a topic without partitions, at each poll\n{text}"
    );

    let mut at = 1_800_000_010;
    let mut published = metric_sum(&text, "aggregator_consumer_vectors_total", &[service]);
    for _ in 0..30 {
        if published >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        at += 10;
        watcher.poll(at).await;
        let text = exposition(&registry);
        published = metric_sum(&text, "aggregator_consumer_vectors_total", &[service]);
    }
    let vectors = read_all(&args, &vectors_topic, published as usize).await;
    let published_at = at;

    // What was learned is kept across a restart: a new watcher takes up the saved estimate
    // (here made 33 a consumer) instead of the prior.
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert_eq!(saved["shipping"]["estimate"], 7.0, "{saved}");
    saved["shipping"]["estimate"] = 33.0.into();
    std::fs::write(&state_path, saved.to_string()).unwrap();
    let restarted = prometheus::Registry::new();
    let mut watcher = GroupWatcher::new(
        args.clone(),
        targets,
        GroupMetrics::register(&restarted, &targets_again).unwrap(),
    )
    .with_vectors(settings);
    for _ in 0..30 {
        at += 10;
        watcher.poll(at).await;
        if metric_sum(
            &exposition(&restarted),
            "aggregator_consumer_capacity",
            &[service],
        ) > 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        metric_sum(
            &exposition(&restarted),
            "aggregator_consumer_capacity",
            &[service]
        ),
        33.0
    );
    stuck_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), stuck).await;
    assert_eq!(
        vectors.len(),
        1,
        "one vector, of the poll that published: {vectors:?}"
    );
    let v = &vectors[0];
    let g = v
        .consumer_group
        .as_ref()
        .expect("a consumer group's vector");
    assert_eq!(
        (v.service.as_str(), v.window_id),
        ("shipping", published_at)
    );
    assert!(v.features.replicas >= 1.0, "{v:?}");
    assert_eq!(
        (
            g.group.as_str(),
            g.topic.as_str(),
            g.partitions,
            g.lag_messages
        ),
        (group.as_str(), topic.as_str(), 3, 65.0 - read)
    );
    assert!(
        g.lag_max_partition > 0.0 && g.lag_max_partition <= g.lag_messages,
        "{g:?}"
    );
    // It read nothing: the prior stands.
    assert_eq!(v.features.capacity_per_replica, Some(7.0));
    let text = exposition(&registry);
    assert_eq!(
        metric_sum(&text, "aggregator_consumer_capacity", &[service]),
        7.0
    );
    assert_eq!(
        metric_sum(
            &text,
            "aggregator_consumer_vectors_total",
            &["service=\"watched\""]
        ),
        0.0,
        "a watched group is only measured"
    );
}
