//! The demo service's latency really depends on load: requests beyond its concurrency wait.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use demo_service::{Application, DemoConfig, ServiceTimeDistribution};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn start(config: DemoConfig) -> (String, CancellationToken) {
    let app = Application::build(&config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    (base, shutdown)
}

/// Sends `n` requests at once; returns how long the slowest took and every status.
async fn burst(base: &str, n: usize) -> (Duration, Vec<u16>) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let requests = (0..n).map(|_| {
        let request = client.get(format!("{base}/catalogue")).send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(requests).await;
    (started.elapsed(), statuses)
}

#[tokio::test]
async fn requests_beyond_concurrency_queue_and_overflow_is_refused() {
    let mut config = DemoConfig::local("orders", 2, 100.0);
    config.service_time_distribution = ServiceTimeDistribution::Constant;
    config.max_queue = 4;
    let (base, shutdown) = start(config).await;

    // 2 slots of 100 ms: 2 requests take one service time, 6 take three (queued in two rounds).
    let (two, _) = burst(&base, 2).await;
    let (six, statuses) = burst(&base, 6).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(two < Duration::from_millis(190), "2 requests took {two:?}");
    assert!(six >= Duration::from_millis(290), "6 requests took {six:?}");

    // 2 in service + 4 waiting fill it; the rest are refused at once.
    let (_, statuses) = burst(&base, 12).await;
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert!(refused >= 5, "{statuses:?}");

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(
        r#"request_duration_seconds_count{method="GET",route="/catalogue",service="orders",status_code="200"}"#
    ), "{metrics}");
    assert!(metrics.contains(r#"status_code="503""#));
    assert!(metrics.contains("process_cpu_seconds_total"));
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    shutdown.cancel();
}

#[tokio::test]
async fn scrapes_are_recorded_as_route_metrics_only_when_asked() {
    let scrape_count = r#"request_duration_seconds_count{method="GET",route="metrics",service="catalogue",status_code="200"}"#;
    for record in [false, true] {
        let mut config = DemoConfig::local("catalogue", 1, 1.0);
        config.record_scrapes = record;
        let (base, shutdown) = start(config).await;
        let mut last = String::new();
        for _ in 0..3 {
            last = reqwest::get(format!("{base}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
        }
        // Each scrape is recorded after it is answered: the third sees the first two.
        let line = last.lines().find(|l| l.starts_with(scrape_count));
        if record {
            assert_eq!(line, Some(format!("{scrape_count} 2").as_str()), "{last}");
        } else {
            assert!(!last.contains(r#"route="metrics""#), "{last}");
        }
        let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
        shutdown.cancel();
    }
}

/// Issue 15's fault switch: on, every request also waits for the slowed dependency and a share
/// fails; bad settings are refused with their usage; off again, the service is as before. Off
/// by default: the route is then an ordinary request.
#[tokio::test]
async fn the_fault_switch_slows_and_fails_requests_for_a_while() {
    let mut config = DemoConfig::local("orders", 4, 10.0);
    config.service_time_distribution = ServiceTimeDistribution::Constant;
    config.fault_switch = true;
    let (base, shutdown) = start(config).await;
    let client = reqwest::Client::new();
    let bad = client
        .post(format!("{base}/fault?slowdown_ms=-5&for_sec=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("for_sec=S"));
    let on = client
        .post(format!(
            "{base}/fault?slowdown_ms=200&error_ratio=1&for_sec=30"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(on.status(), 200);
    let (took, statuses) = burst(&base, 4).await;
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(statuses.iter().all(|s| *s == 500), "{statuses:?}");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("demo_fault_active 1"), "{metrics}");
    let off = client.delete(format!("{base}/fault")).send().await.unwrap();
    assert_eq!(off.status(), 204);
    let (took, statuses) = burst(&base, 4).await;
    assert!(took < Duration::from_millis(150), "{took:?}");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    // A broken exporter: the scrape fails, the requests are served.
    let on = client
        .post(format!("{base}/fault?metrics_down=true&for_sec=30"))
        .send()
        .await
        .unwrap();
    assert_eq!(on.status(), 200);
    let scrape = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(scrape.status(), 503);
    assert!(scrape.text().await.unwrap().contains("DELETE /fault"));
    let (_, statuses) = burst(&base, 4).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "only /metrics is down");
    client.delete(format!("{base}/fault")).send().await.unwrap();
    let scrape = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(scrape.status(), 200);
    shutdown.cancel();

    let (base, shutdown) = start(DemoConfig::local("orders", 4, 10.0)).await;
    let post = client
        .post(format!("{base}/fault?slowdown_ms=200&for_sec=30"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.status(),
        200,
        "an ordinary request when the switch is off"
    );
    let (took, _) = burst(&base, 4).await;
    assert!(took < Duration::from_millis(150), "{took:?}");
    shutdown.cancel();
}
