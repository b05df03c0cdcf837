//! The edge router as `docker-compose.yml` runs it (HAProxy with `docker/edge-router/haproxy.cfg`,
//! Debian's HAProxy here) in front of demo replicas that share one name and one port at different
//! addresses, as a compose service's replicas do, the name answered by a real DNS server (dnsmasq
//! standing in for Docker's). Under load, a replica added while the router runs must get its
//! share of the requests: the router must re-resolve the name and balance over what it finds.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use demo_service::{Application, DemoConfig};
use load_testing::engine::{Arrivals, RunSpec};
use load_testing::pattern::Pattern;
use load_testing::scenario::Scenario;
use load_testing::stats::Stats;
use load_testing::targets::Targets;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::{Dns, find_binary, free_port, poll_until, wait_for};
use tokio_util::sync::CancellationToken;

/// The load, requests per second: under half of what two replicas carry (4 slots of 20 ms,
/// 200 requests per second each), so the split is the router's doing, not queueing.
const RATE: f64 = 90.0;
/// How long each measurement of the split lasts.
const MEASURE: Duration = Duration::from_secs(6);

/// A demo replica at `ip:port`, as a compose replica is at its own address and the service's port.
async fn replica(ip: Ipv4Addr, port: u16, stop: &CancellationToken) {
    let mut config = DemoConfig::local("front-end", 4, 20.0);
    config.listen_addr = SocketAddr::from((ip, port));
    let app = Application::build(&config).await.unwrap();
    tokio::spawn(app.run(stop.clone()));
}

/// Requests a replica has answered (its `request_duration_seconds_count`, every route).
async fn served(ip: Ipv4Addr, port: u16) -> f64 {
    let text = reqwest::get(format!("http://{ip}:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    testkit::metric_sum(&text, "request_duration_seconds_count{", &[])
}

/// Requests per second each replica answered over `MEASURE`.
async fn rates(ips: &[Ipv4Addr], port: u16) -> Vec<f64> {
    let (before, started) = (counts(ips, port).await, Instant::now());
    tokio::time::sleep(MEASURE).await;
    let after = counts(ips, port).await;
    let secs = started.elapsed().as_secs_f64();
    before
        .iter()
        .zip(after)
        .map(|(b, a)| (a - b) / secs)
        .collect()
}

/// Requests each replica has answered so far.
async fn counts(ips: &[Ipv4Addr], port: u16) -> Vec<f64> {
    let mut counts = Vec::new();
    for ip in ips {
        counts.push(served(*ip, port).await);
    }
    counts
}

fn shares(rates: &[f64]) -> Vec<f64> {
    let total: f64 = rates.iter().sum();
    rates.iter().map(|r| r / total).collect()
}

/// What one run saw: requests per second per replica with two replicas, how long after the name
/// answered with a third that replica got its first request, and the rates with three.
struct Split {
    before: Vec<f64>,
    first: Option<Duration>,
    after: Vec<f64>,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rates = |r: &[f64]| {
            r.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        write!(
            f,
            "per-replica requests/s at {RATE}/s: before {}; the added replica's first request {:?} after the name answered with it; after {}",
            rates(&self.before),
            self.first,
            rates(&self.after)
        )
    }
}

/// Runs HAProxy with `config` in front of two replicas under load, adds a third, and measures.
async fn split(config: &std::path::Path) -> Split {
    let stop = CancellationToken::new();
    let port = free_port();
    let ips: Vec<Ipv4Addr> = (2..=4).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let dns = Dns::start().await;
    for ip in &ips[..2] {
        replica(*ip, port, &stop).await;
    }
    dns.set("front-end", &ips[..2]).await;

    let listen = free_port();
    let stats = free_port();
    let _router = tokio::process::Command::new(find_binary("haproxy", "HAPROXY_BIN"))
        .arg("-db")
        .arg("-f")
        .arg(config)
        .env("EDGE_DNS", dns.addr())
        .env("EDGE_BACKEND", format!("front-end:{port}"))
        .env("EDGE_BIND", format!("127.0.0.1:{listen}"))
        .env("EDGE_STATS_BIND", format!("127.0.0.1:{stats}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start haproxy");
    let url = format!("http://127.0.0.1:{listen}/catalogue");
    wait_for(Duration::from_secs(15), "the router to answer", || async {
        let response = reqwest::get(&url).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    // Past the first health checks (every 2 s), so that every replica found can be chosen.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let spec = RunSpec {
        pattern: Pattern::Constant { rps: RATE },
        duration: Duration::from_secs(60),
        arrivals: Arrivals::Uniform,
        max_in_flight: 1_000,
        timeout: Duration::from_secs(5),
        users: 1,
    };
    let targets = Arc::new(Targets::new(std::slice::from_ref(&url), &[]).await.unwrap());
    let load_stop = stop.clone();
    let load = tokio::spawn(async move {
        let scenario = Scenario::Url {
            path: "/catalogue".into(),
        };
        load_testing::engine::run(
            &spec,
            &scenario,
            targets,
            Arc::new(Stats::default()),
            &load_stop,
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rates(&ips[..2], port).await;

    // The scaler adds a replica: it listens, then the name answers with it too.
    replica(ips[2], port, &stop).await;
    let start_count = served(ips[2], port).await;
    dns.set("front-end", &ips).await;
    let added = Instant::now();
    let first = poll_until(Duration::from_secs(15), || async {
        (served(ips[2], port).await > start_count).then(|| added.elapsed())
    })
    .await;
    // Past the router's next health check and resolution.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rates(&ips, port).await;
    stop.cancel();
    let _ = load.await;
    Split {
        before,
        first,
        after,
    }
}

#[tokio::test]
async fn a_replica_added_under_load_gets_its_share_through_the_edge_router() {
    let split = split(&e2e::repo().join("docker/edge-router/haproxy.cfg")).await;
    eprintln!("edge-router: {split}");
    let Split {
        before,
        first,
        after,
    } = split;
    assert!(
        first.is_some(),
        "the added replica got no request within 15 s: {after:?}"
    );
    let total: f64 = after.iter().sum();
    assert!(
        (0.8 * RATE..1.2 * RATE).contains(&total),
        "the load went through the router: {total}/s"
    );
    for share in shares(&before) {
        assert!(
            (0.4..0.6).contains(&share),
            "an even split of two: {before:?}"
        );
    }
    for share in shares(&after) {
        assert!(
            (0.25..0.42).contains(&share),
            "an even split of three, the added replica included: {after:?}"
        );
    }
}

/// The measurement tells the two apart: a hop with one backend address, as upstream's
/// edge-router has one backend URL, sends everything to one replica and nothing to the new one.
#[tokio::test]
async fn a_hop_with_one_backend_address_leaves_the_added_replica_idle() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(e2e::repo().join("docker/edge-router/haproxy.cfg")).unwrap();
    let one = regex::Regex::new(r"(?m)^\s*server-template .*$").unwrap().replace(
        &shipped,
        regex::NoExpand(
            r#"    server front-end "${EDGE_BACKEND}" check inter 2s resolvers docker resolve-prefer ipv4 init-addr none"#,
        ),
    );
    assert_ne!(
        one, shipped,
        "the shipped configuration has a server-template"
    );
    let config = dir.path().join("one-backend.cfg");
    std::fs::write(&config, one.as_bytes()).unwrap();
    let split = split(&config).await;
    eprintln!("one backend address: {split}");
    let pinned = |rates: &[f64]| shares(rates).iter().any(|s| *s > 0.95);
    assert!(
        pinned(&split.before) && pinned(&split.after),
        "one replica takes everything: {split}"
    );
    assert!(
        split.after[2] < 1.0,
        "the added replica stays idle: {split}"
    );
}
