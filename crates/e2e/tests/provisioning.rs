//! The deployment's files, checked without running them: the compose files as Compose reads
//! them, and the Grafana provisioning as Grafana reads it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use e2e::{dashboard_queries, metric_names, repo};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn compose_files_are_valid_for_compose() {
    for files in [
        vec!["docker-compose.yml"],
        vec!["docker-compose.yml", "docker-compose.local.yml"],
        vec![
            "docker-compose.yml",
            "docker/kafka-security/docker-compose.sasl.yml",
        ],
    ] {
        let mut cmd = Command::new("docker-compose");
        for f in &files {
            cmd.args(["-f", f]);
        }
        let out = cmd
            .args(["config", "-q"])
            .env("COMPOSE_PROFILES", "production,demo,tools")
            .current_dir(repo())
            .output()
            .expect("docker-compose runs");
        assert!(
            out.status.success(),
            "{files:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Scalable services: no fixed container names. The Docker socket: only the guard and
    // cAdvisor mount it (nothing else of /var/run); every published port is on PUBLISH_ADDRESS.
    let compose = yaml(&repo().join("docker-compose.yml"));
    let services = compose["services"].as_mapping().unwrap();
    for (name, service) in services {
        assert!(
            service.get("container_name").is_none(),
            "{name:?} has a container_name"
        );
        let mounts = serde_yaml::to_string(&service["volumes"]).unwrap();
        let allowed = ["docker-guard", "cadvisor"].contains(&name.as_str().unwrap());
        assert!(
            allowed || !mounts.contains("docker.sock"),
            "{name:?} mounts the Docker socket"
        );
        assert!(!mounts.contains("/var/run:"), "{name:?} mounts /var/run");
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(
                port.starts_with("${PUBLISH_ADDRESS:-127.0.0.1}:"),
                "{name:?} publishes {port} on every interface"
            );
        }
    }
    for fleet in [
        "metrics-aggregator",
        "ml-xgboost",
        "ml-random-forest",
        "ml-logistic-regression",
        "authoritative-scaler",
    ] {
        assert!(
            services.contains_key(fleet),
            "the compose service {fleet} is missing"
        );
    }
}

#[test]
fn grafana_provisioning_parses_and_points_at_the_provisioned_datasource() {
    let grafana = repo().join("grafana/provisioning");
    let datasources = yaml(&grafana.join("datasources/prometheus.yml"));
    let uids: BTreeSet<String> = datasources["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|d| d["uid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        datasources["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );
    let providers = yaml(&grafana.join("dashboards/dashboards.yml"));
    assert_eq!(
        providers["providers"][0]["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards")
    );

    let dir = repo().join("grafana/dashboards");
    let mut panels = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            dashboard["uid"].is_string() && dashboard["title"].is_string(),
            "{}",
            path.display()
        );
        for panel in dashboard["panels"].as_array().unwrap() {
            if panel["type"] == "row" {
                continue;
            }
            panels += 1;
            let uid = panel["datasource"]["uid"].as_str().unwrap_or("");
            assert!(
                uids.contains(uid),
                "{}: panel {} uses datasource {uid:?}",
                path.display(),
                panel["title"]
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(
                !targets.is_empty(),
                "{}: panel {} has no query",
                path.display(),
                panel["title"]
            );
        }
    }
    assert!(panels >= 10, "{panels} panels");
    for (file, panel, expr) in dashboard_queries() {
        assert_eq!(
            expr.matches('(').count(),
            expr.matches(')').count(),
            "{file} / {panel}: {expr}"
        );
        assert!(
            !metric_names(&expr).is_empty(),
            "{file} / {panel}: no metric in {expr}"
        );
    }
}

#[test]
fn sock_shop_is_deployed_to_be_scaled() {
    let compose = yaml(&repo().join("docker-compose.yml"));
    let services = &compose["services"];
    // front-end's sessions are shared, in upstream's session-db.
    assert_eq!(
        services["front-end"]["environment"]["SESSION_REDIS"].as_str(),
        Some("true")
    );
    assert!(
        services["session-db"]["image"]
            .as_str()
            .unwrap()
            .starts_with("redis:")
    );
    // The entry re-resolves front-end: the configuration edge_router.rs tests.
    let mounts = serde_yaml::to_string(&services["edge-router"]["volumes"]).unwrap();
    assert!(
        mounts.contains("./docker/edge-router/haproxy.cfg:"),
        "{mounts}"
    );
    // orders' JVM resolves every call again.
    let java = services["orders"]["environment"]["JAVA_OPTS"]
        .as_str()
        .unwrap();
    for flag in ["-Dsun.net.inetaddr.ttl=0", "-Dhttp.keepAlive=false"] {
        assert!(java.contains(flag), "{java}");
    }
    // Only stateless services are opted in to scaling, and SCALED_SERVICES names no other.
    let scaled: Vec<&str> = services
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["labels"]["autoscaler.enable"].as_str() == Some("true"))
        .map(|(name, _)| name.as_str().unwrap())
        .collect();
    let env = std::fs::read_to_string(repo().join(".env")).unwrap();
    let narrowed = env
        .lines()
        .find_map(|l| l.strip_prefix("SCALED_SERVICES="))
        .expect("SCALED_SERVICES in .env");
    for service in narrowed.split(',').filter(|s| !s.is_empty()) {
        assert!(
            scaled.contains(&service),
            "SCALED_SERVICES names {service}, which is not opted in"
        );
    }
    let stateful = [
        "catalogue-db",
        "carts-db",
        "orders-db",
        "user-db",
        "rabbitmq",
        "session-db",
        "edge-router",
    ];
    for service in stateful {
        assert!(!scaled.contains(&service), "{service} must not be scaled");
    }
    assert!(
        scaled.contains(&"front-end") && scaled.contains(&"demo"),
        "{scaled:?}"
    );
}

#[test]
fn only_the_scaler_reaches_the_docker_guard() {
    let compose = yaml(&repo().join("docker-compose.yml"));
    assert_eq!(
        compose["networks"]["docker-api"]["internal"].as_bool(),
        Some(true),
        "the guard's network has no way out"
    );
    let services = compose["services"].as_mapping().unwrap();
    let on_it: Vec<&str> = services
        .iter()
        .filter(|(_, s)| {
            s["networks"]
                .as_sequence()
                .is_some_and(|n| n.iter().any(|n| n.as_str() == Some("docker-api")))
        })
        .map(|(name, _)| name.as_str().unwrap())
        .collect();
    assert_eq!(on_it, ["docker-guard", "authoritative-scaler"]);
    let guard = &services["docker-guard"];
    assert_eq!(
        serde_yaml::to_string(&guard["networks"]).unwrap().trim(),
        "- docker-api",
        "the guard is on no other network"
    );
    assert!(guard.get("ports").is_none(), "the guard publishes no port");
    assert_eq!(
        services["authoritative-scaler"]["environment"]["DOCKER_HOST"].as_str(),
        Some("tcp://docker-guard:2375")
    );
}

/// Seconds of a Prometheus duration such as `2s` or `500ms`.
fn seconds(duration: &serde_yaml::Value) -> f64 {
    let text = duration.as_str().unwrap();
    match text.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().unwrap() / 1000.0,
        None => text.strip_suffix('s').unwrap().parse().unwrap(),
    }
}

#[test]
fn prometheus_configuration_is_valid_and_no_job_is_cut_short_by_the_global_interval() {
    let path = repo().join("prometheus/prometheus.yml");
    let promtool = testkit::find_binary("promtool", "PROMTOOL_BIN");
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(&path)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A job scraped less often than the global interval keeps the global timeout unless it sets
    // its own: cAdvisor would then get 2 s for a scrape it is given 5 s for.
    let config = yaml(&path);
    let global = seconds(&config["global"]["scrape_interval"]);
    let mut slower = Vec::new();
    for job in config["scrape_configs"].as_sequence().unwrap() {
        let name = job["job_name"].as_str().unwrap();
        let Some(interval) = job.get("scrape_interval").map(seconds) else {
            continue;
        };
        if interval > global {
            slower.push(name);
            let timeout = job.get("scrape_timeout").map(seconds);
            assert_eq!(
                timeout,
                Some(interval),
                "{name}: scraped every {interval} s, its timeout is capped at {global} s"
            );
        }
    }
    assert!(slower.contains(&"cadvisor"), "{slower:?}");
}

#[test]
fn dashboards_leave_prometheus_scrapes_out_of_the_request_histograms() {
    // catalogue, payment and user record each scrape of their /metrics as route="metrics".
    let selector =
        regex::Regex::new(r"request_duration_seconds_(count|bucket|sum)(\{[^}]*\})?").unwrap();
    let mut checked = 0;
    for (file, panel, expr) in dashboard_queries() {
        for found in selector.captures_iter(&expr) {
            checked += 1;
            let labels = found.get(2).map_or("", |m| m.as_str());
            assert!(
                labels.contains(r#"route!="metrics""#),
                "{file} / {panel}: {} counts Prometheus' scrapes: {expr}",
                &found[0]
            );
        }
    }
    assert!(checked >= 4, "{checked} request histogram selectors");
}

#[test]
fn metric_names_are_read_from_queries() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (job, le) (rate(request_duration_seconds_bucket[1m]))) / count by (job) (up{job!~"fleet"} == 1) or scaler_target_replicas"#,
    );
    let expected = [
        "request_duration_seconds_bucket",
        "up",
        "scaler_target_replicas",
    ];
    assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());
}
