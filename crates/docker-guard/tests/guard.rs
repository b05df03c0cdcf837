//! The guard in front of this machine's real Docker engine, with a Compose project of two
//! services built from a local image: `web`, opted in (`autoscaler.enable=true`, dropped
//! capabilities, a read-only root, a read-only bind), and `db`, not opted in. Requests are made
//! as an attacker would make them, raw; the scaler's own client through the guard is tested in
//! `crates/authoritative-scaler/tests/docker.rs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use docker_guard::{Application, GuardConfig};
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::docker::{ComposeProject, busybox_image, run};
use tokio_util::sync::CancellationToken;

/// Longest a test may take.
const BOUND: Duration = Duration::from_secs(180);

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(BOUND, test)
        .await
        .expect("the test finished within its bound");
}

struct Fixture {
    project: ComposeProject,
    guard: String,
    ops: SocketAddr,
    stop: CancellationToken,
    http: reqwest::Client,
}

impl Fixture {
    async fn start() -> Self {
        let image = busybox_image();
        let yaml = format!(
            "version: '2.4'\nservices:\n  web:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    \
             cap_drop: [ALL]\n    read_only: true\n    volumes: [\"./:/data:ro\"]\n    \
             labels:\n      autoscaler.enable: \"true\"\n  \
             db:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n"
        );
        let project = ComposeProject::up(&testkit::unique("mlguard").replace('-', ""), &yaml);
        let config = GuardConfig {
            engine_timeout_sec: service_runtime::config::Secs::new(30),
            ..GuardConfig::local("/var/run/docker.sock")
        };
        let app = Application::build(config).await.unwrap();
        let (guard, ops) = (format!("http://{}", app.addr()), app.ops_addr());
        let stop = CancellationToken::new();
        tokio::spawn(app.run(stop.clone()));
        Self {
            project,
            guard,
            ops,
            stop,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn name(&self, service: &str, n: u32) -> String {
        format!("{}_{service}_{n}", self.project.name)
    }

    /// Sends a request through the guard: (status, JSON body or null).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.guard));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the guard answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The engine's inspect data of a container, read with the CLI (not through the guard).
    fn inspect(&self, name: &str) -> Value {
        let out = run(&["inspect", name]);
        serde_json::from_str::<Value>(&out).unwrap()[0].clone()
    }

    /// Names of the project's containers, from the engine.
    fn containers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.project.name);
        let mut names: Vec<String> =
            run(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
                .lines()
                .map(str::to_owned)
                .collect();
        names.sort();
        names
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.ops))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A change an attacker makes to a replica's create body.
type Attack = Box<dyn Fn(&mut Value)>;

/// A create body for a replica of `reference`, as the scaler's Compose backend builds it.
fn replica_of(reference: &Value, number: u32) -> Value {
    let config = &reference["Config"];
    let mut labels = config["Labels"].clone();
    labels["com.docker.compose.container-number"] = json!(number.to_string());
    let network = reference["HostConfig"]["NetworkMode"].clone();
    json!({
        "Image": config["Image"],
        "Cmd": config["Cmd"],
        "Env": config["Env"],
        "User": config["User"],
        "Labels": labels,
        "HostConfig": reference["HostConfig"],
        "NetworkingConfig": {"EndpointsConfig": {network.as_str().unwrap(): {"Aliases": ["web"]}}}
    })
}

#[tokio::test]
async fn a_privileged_or_widened_create_is_refused_and_nothing_is_created() {
    bounded(async {
        let f = Fixture::start().await;
        let reference = f.inspect(&f.name("web", 1));
        let before = f.containers();
        let attacks: Vec<(&str, Attack)> = vec![
            ("Privileged", Box::new(|b| b["HostConfig"]["Privileged"] = json!(true))),
            ("Privileged", Box::new(|b| b["HostConfig"]["privileged"] = json!(true))),
            ("PidMode", Box::new(|b| b["HostConfig"]["PidMode"] = json!("host"))),
            ("Binds", Box::new(|b| {
                b["HostConfig"]["Binds"].as_array_mut().unwrap().push(json!("/:/host"))
            })),
            ("Mounts", Box::new(|b| {
                b["HostConfig"]["Mounts"] =
                    json!([{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/docker.sock"}])
            })),
            ("CapAdd", Box::new(|b| b["HostConfig"]["CapAdd"] = json!(["SYS_ADMIN"]))),
            ("CapDrop", Box::new(|b| b["HostConfig"]["CapDrop"] = Value::Null)),
            ("Devices", Box::new(|b| {
                b["HostConfig"]["Devices"] = json!([{"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem", "CgroupPermissions": "rwm"}])
            })),
            ("SecurityOpt", Box::new(|b| b["HostConfig"]["SecurityOpt"] = json!(["apparmor=unconfined"]))),
            ("image", Box::new(|b| b["Image"] = json!("ml-autoscaler/debian:bookworm"))),
            ("Cmd", Box::new(|b| b["Cmd"] = json!(["sh", "-c", "cat /data/*"]))),
            ("autoscaler.enable", Box::new(|b| b["Labels"]["autoscaler.enable"] = json!("false"))),
            ("autoscaler.enable", Box::new(|b| b["Labels"]["com.docker.compose.service"] = json!("db"))),
        ];
        let count = attacks.len() as f64;
        for (i, (what, attack)) in attacks.into_iter().enumerate() {
            let mut body = replica_of(&reference, 10 + i as u32);
            attack(&mut body);
            let name = format!("{}_evil_{i}", f.project.name);
            let (status, answer) = f
                .call(reqwest::Method::POST, &format!("/v1.41/containers/create?name={name}"), Some(&body))
                .await;
            let message = answer["message"].as_str().unwrap_or_default();
            assert_eq!(status, 403, "{what}: {answer}");
            assert!(message.starts_with("docker-guard refused POST /v1.41/containers/create"), "{message}");
            assert!(message.contains(what), "{what}: {message}");
        }
        assert_eq!(f.containers(), before, "nothing was created");
        let refused = f
            .metric("docker_guard_requests_total{call=\"create_container\",outcome=\"refused\"}")
            .await;
        assert_eq!(refused, count, "every refusal is counted");

        // The same body without the attack is a replica: created, started, stopped, removed.
        let name = f.name("web", 2);
        let (status, created) = f
            .call(reqwest::Method::POST, &format!("/containers/create?name={name}"), Some(&replica_of(&reference, 2)))
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["Id"].as_str().unwrap().to_owned();
        let replica = f.inspect(&id);
        assert_eq!(replica["HostConfig"]["Binds"], reference["HostConfig"]["Binds"]);
        assert_eq!(replica["HostConfig"]["CapDrop"], json!(["ALL"]));
        for (method, path, expected) in [
            (reqwest::Method::POST, format!("/containers/{id}/start"), 204),
            (reqwest::Method::POST, format!("/containers/{name}/stop?t=1"), 204),
            (reqwest::Method::DELETE, format!("/containers/{name}?force=true"), 204),
        ] {
            let (status, answer) = f.call(method, &path, None).await;
            assert_eq!(status, expected, "{path}: {answer}");
        }
        assert_eq!(f.containers(), before, "the replica is gone again");
    })
    .await;
}

#[tokio::test]
async fn containers_outside_the_opted_in_services_are_invisible_and_untouchable() {
    bounded(async {
        let f = Fixture::start().await;
        let (web, db) = (f.name("web", 1), f.name("db", 1));
        let filters = json!({"label": [format!("com.docker.compose.project={}", f.project.name)]});
        let query: String = url_encode(&filters.to_string());
        let (status, listed) = f
            .call(
                reqwest::Method::GET,
                &format!("/v1.41/containers/json?all=true&filters={query}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{listed}");
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["Names"][0].as_str())
            .collect();
        assert_eq!(
            names,
            vec![format!("/{web}")],
            "only the opted-in container is listed"
        );

        let (status, _) = f
            .call(
                reqwest::Method::GET,
                &format!("/containers/{web}/json"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        for (method, path) in [
            (reqwest::Method::GET, format!("/containers/{db}/json")),
            (reqwest::Method::POST, format!("/containers/{db}/stop")),
            (
                reqwest::Method::DELETE,
                format!("/containers/{db}?force=true"),
            ),
            (reqwest::Method::POST, format!("/containers/{web}/exec")),
            (reqwest::Method::GET, "/images/json".to_owned()),
            (
                reqwest::Method::GET,
                "/containers/../images/json".to_owned(),
            ),
            (reqwest::Method::POST, "/swarm/leave?force=true".to_owned()),
        ] {
            let (status, answer) = f.call(method.clone(), &path, None).await;
            assert_eq!(status, 403, "{method} {path}: {answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("docker-guard refused")),
                "{answer}"
            );
        }
        assert!(
            f.inspect(&db)["State"]["Running"].as_bool().unwrap(),
            "db is untouched"
        );

        // db cannot join web's network through the guard, nor web another network.
        let network = f.inspect(&web)["HostConfig"]["NetworkMode"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, answer) = f
            .call(
                reqwest::Method::POST,
                &format!("/networks/{network}/connect"),
                Some(&json!({"Container": db})),
            )
            .await;
        assert_eq!(status, 403, "{answer}");
        let (status, answer) = f
            .call(
                reqwest::Method::POST,
                "/networks/bridge/connect",
                Some(&json!({"Container": web})),
            )
            .await;
        assert_eq!(status, 403, "{answer}");

        // Bodies are bounded: the guard answers 413 after 1 MiB and closes the connection,
        // which the client may see as a reset while it is still sending; the count is the proof.
        let huge = json!({"Image": "x".repeat(2 * docker_guard::MAX_BODY)});
        let sent = f
            .http
            .post(format!("{}/containers/create", f.guard))
            .json(&huge)
            .send()
            .await;
        if let Ok(response) = sent {
            assert_eq!(response.status().as_u16(), 413);
        }
        let (status, _) = f.call(reqwest::Method::GET, "/_ping", None).await;
        assert_eq!(status, 200, "the guard still answers");
        assert_eq!(
            f.metric("docker_guard_refusals_total{call=\"create_container\",rule=\"too_large\"}")
                .await,
            1.0
        );
        assert!(
            f.metric("docker_guard_refusals_total{call=\"other\",rule=\"endpoint\"}")
                .await
                >= 3.0
        );
    })
    .await;
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The topology of docker-compose.yml (its provisioning test checks the file has it): the guard
/// on the internal network `docker-api` alone, the scaler on it and on the default network,
/// every other container on the default network. A stand-in answers HTTP where the guard would.
#[tokio::test]
async fn the_guards_network_is_reachable_from_the_scaler_only() {
    bounded(async {
        let image = busybox_image();
        let yaml = format!(
            "version: '2.4'\nservices:\n  \
             docker-guard:\n    image: {image}\n    command: [\"httpd\", \"-f\", \"-p\", \"2375\", \"-h\", \"/etc\"]\n    networks: [docker-api]\n  \
             authoritative-scaler:\n    image: {image}\n    networks: [default, docker-api]\n  \
             front-end:\n    image: {image}\n\
             networks:\n  default: {{}}\n  docker-api:\n    internal: true\n"
        );
        let project = ComposeProject::up(&testkit::unique("mlguardnet").replace('-', ""), &yaml);
        let container = |service: &str| format!("{}_{service}_1", project.name);
        let guard_ip = run(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &container("docker-guard"),
        ]);
        // busybox's own resolver and nc (its wget, linked statically, crashes on this host).
        let exec = |from: &str, script: &str| {
            let out = std::process::Command::new("docker")
                .args(["exec", &container(from), "/bin/busybox", "sh", "-c", script])
                .output()
                .expect("docker exec runs");
            (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let resolves = |from: &str| exec(from, "/bin/busybox nslookup docker-guard").0;
        let fetch = |from: &str| {
            let request = format!(
                "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 {} 2375",
                guard_ip.trim()
            );
            exec(from, &request).1.contains("200 OK")
        };
        assert!(resolves("authoritative-scaler") && fetch("authoritative-scaler"), "the scaler reaches the guard");
        assert!(!resolves("front-end"), "another container cannot resolve the guard's name");
        assert!(!fetch("front-end"), "nor reach its address");
        assert!(project.down());
    })
    .await;
}
