//! Consumer groups read from a real broker (tansu): lag, rates and partitions on /metrics, and
//! a group that cannot be read counted while the service goes on.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::Utc;
use contract::{FeatureVector, METRICS_TOPIC};
use metrics_aggregator::groups::{GroupMetrics, GroupTarget, GroupWatcher};
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
    }
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

    let registry = prometheus::Registry::new();
    let targets = vec![
        GroupTarget::parse(&format!("shipping={group}@{topic}")).unwrap(),
        GroupTarget::parse("gone=workers@no-such-topic-anywhere").unwrap(),
    ];
    let metrics = GroupMetrics::register(&registry, &targets).unwrap();
    let mut watcher = GroupWatcher::new(args.clone(), targets, metrics);
    watcher.poll().await;
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
    watcher.poll().await;
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
}
